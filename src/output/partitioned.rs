//! The Hive-partitioned dataset: one table per data type,
//! `DIR/{data_type}/exchange=E/date=YYYY-MM-DD/SYMBOL.parquet` ([`super::target`]), one file
//! per chunk: a copy of the chunk file, or, on the first and last day of a range not on whole
//! days, a new chunk file of the rows in range that records the range (and for a day not
//! exported yet, used with `--allow-incomplete`, one that records the exported-until time). Every root reads as one
//! table (pyarrow.dataset, polars, DuckDB with Hive partitioning), pruned by exchange and
//! date; `exchange` is both a key and a column, with the same value, which all three accept
//! (tests/it/lake.rs).

use std::path::Path;

use tokio_util::sync::CancellationToken;

use super::merge::{MergeInput, merge};
use super::target::{self, Holder, partition_holder, partition_path, partition_range, range_value};
use super::{OutputContext, OutputError, OutputResult, OutputStatus, cancelled};
use crate::cache::Chunk;
use crate::cache::chunk_file::{ChunkData, ChunkFileWriter, verify_file};
use crate::parquet::atomic::AtomicFile;

/// Writes (or confirms) the partition files of one data type under its table's root `dir`.
///
/// # Errors
/// See [`OutputError`].
pub(crate) fn write_partitioned(
    ctx: &OutputContext,
    dir: &Path,
    chunks: &[Chunk],
    cancel: &CancellationToken,
) -> Result<OutputResult, OutputError> {
    let mut result = OutputResult {
        data_type: ctx.data_type.to_string(),
        path: dir.to_path_buf(),
        rows: 0,
        bytes: 0,
        status: OutputStatus::UpToDate,
        chunks_from_memory: 0,
        complete: super::merged::complete(chunks),
        exported_until: (!super::merged::complete(chunks))
            .then(|| ctx.exported_until_text())
            .flatten(),
    };
    for chunk in chunks {
        cancelled(cancel).map_err(OutputError::write(dir))?;
        let dest = partition_path(dir, &chunk.key);
        if let Holder::Other(what) = partition_holder(&dest, &chunk.key, ctx.range)
            && !ctx.overwrite
        {
            return Err(OutputError::Refused { path: dest, what });
        }
        let range = partition_range(&chunk.key, ctx.range);
        let (rows, bytes, written) = if range.is_none() && chunk.meta.complete {
            copy_partition(chunk, &dest)?
        } else {
            rewrite_partition(ctx, chunk, &dest, range, cancel)?
        };
        result.rows += rows;
        result.bytes += bytes;
        if written {
            result.status = OutputStatus::Written;
        }
    }
    Ok(result)
}

fn copy_partition(chunk: &Chunk, dest: &Path) -> Result<(u64, u64, bool), OutputError> {
    if let Ok(meta) = verify_file(dest, Some(&chunk.key))
        && meta.checksum == chunk.meta.checksum
    {
        return Ok((meta.rows, meta.file_bytes, false));
    }
    let tmp = AtomicFile::create(dest).map_err(OutputError::io("creating a file beside", dest))?;
    match &chunk.data {
        ChunkData::File(src) => {
            std::fs::copy(src, tmp.path()).map_err(OutputError::io("copying into", dest))?;
        }
        ChunkData::Bytes(b) => std::fs::write(tmp.path(), b).map_err(OutputError::io("writing", dest))?,
    }
    tmp.commit().map_err(OutputError::io("renaming into", dest))?;
    Ok((chunk.meta.rows, chunk.meta.file_bytes, true))
}

/// Writes the partition as a new chunk file: the rows in `range` (the whole day if `None`),
/// recording the range, and for a day Tardis had not finished exporting, when it had
/// exported up to.
fn rewrite_partition(
    ctx: &OutputContext,
    chunk: &Chunk,
    dest: &Path,
    range: Option<(i64, i64)>,
    cancel: &CancellationToken,
) -> Result<(u64, u64, bool), OutputError> {
    let tmp = AtomicFile::create(dest).map_err(OutputError::io("creating a file beside", dest))?;
    let file = tmp.handle().map_err(OutputError::io("opening", tmp.path()))?;
    let write_err = OutputError::write(dest);
    let mut writer = ChunkFileWriter::new(file, ctx.data_type).map_err(&write_err)?;
    let input = MergeInput::of(chunk);
    merge(ctx.data_type, vec![input], range, ctx.data_type.batch_rows(), |b| {
        cancelled(cancel)?;
        writer.write(&b)
    })
    .map_err(OutputError::merge(dest))?;
    let mut extra = Vec::new();
    if let Some(r) = range {
        extra.push((target::keys::ROW_RANGE, range_value(r)));
    }
    if !chunk.meta.complete
        && let Some(t) = ctx.exported_until_text()
    {
        extra.push((target::keys::EXPORTED_UNTIL, t));
    }
    let (meta, _) = writer
        .finish_with(&chunk.key, chunk.meta.complete, extra)
        .map_err(&write_err)?;
    tmp.commit().map_err(OutputError::io("renaming into", dest))?;
    Ok((meta.rows, meta.file_bytes, true))
}
