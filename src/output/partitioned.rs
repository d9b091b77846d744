//! The Hive-partitioned dataset: `DIR/exchange=E/data_type=T/date=YYYY-MM-DD/SYMBOL.parquet`,
//! one file per chunk: a copy of the chunk file, or, on the first and last day of a range not
//! on whole days, a new chunk file of the rows in range.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::merge::{MergeInput, merge};
use super::{OutputContext, OutputError, OutputResult, OutputStatus, cancelled};
use crate::cache::Chunk;
use crate::cache::chunk_file::{ChunkData, ChunkFileWriter, verify_file};
use crate::model::fs_component;
use crate::parquet::atomic::AtomicFile;

/// The partition file of a chunk.
fn partition_path(dir: &Path, chunk: &Chunk) -> PathBuf {
    let k = &chunk.key;
    dir.join(format!("exchange={}", k.exchange))
        .join(format!("data_type={}", k.data_type))
        .join(format!("date={}", k.date))
        .join(format!("{}.parquet", fs_component(&k.symbol)))
}

/// Writes (or confirms) the partition files of one data type.
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
    };
    for chunk in chunks {
        cancelled(cancel).map_err(OutputError::write(dir))?;
        let dest = partition_path(dir, chunk);
        let day_start = chunk.key.day_start_micros();
        let cut = ctx
            .range
            .filter(|(from, to)| *from > day_start || *to < day_start + 86_400_000_000);
        let (rows, bytes, written) = match cut {
            None => copy_partition(chunk, &dest)?,
            Some(range) => filter_partition(ctx, chunk, &dest, range, cancel)?,
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
    match (&chunk.data, chunk.data.path()) {
        (ChunkData::Bytes(b), _) => std::fs::write(tmp.path(), b).map_err(OutputError::io("writing", dest))?,
        (_, src) => {
            std::fs::copy(src.unwrap_or(Path::new("")), tmp.path()).map_err(OutputError::io("copying into", dest))?;
        }
    }
    tmp.commit().map_err(OutputError::io("renaming into", dest))?;
    Ok((chunk.meta.rows, chunk.meta.file_bytes, true))
}

fn filter_partition(
    ctx: &OutputContext,
    chunk: &Chunk,
    dest: &Path,
    range: (i64, i64),
    cancel: &CancellationToken,
) -> Result<(u64, u64, bool), OutputError> {
    let tmp = AtomicFile::create(dest).map_err(OutputError::io("creating a file beside", dest))?;
    let file = tmp.handle().map_err(OutputError::io("opening", tmp.path()))?;
    let write_err = OutputError::write(dest);
    let mut writer = ChunkFileWriter::new(file, ctx.data_type).map_err(&write_err)?;
    let input = MergeInput {
        name: chunk.key.to_string(),
        data: chunk.data.clone(),
        meta: chunk.meta.clone(),
    };
    merge(
        ctx.data_type,
        vec![input],
        Some(range),
        ctx.data_type.batch_rows(),
        |b| {
            cancelled(cancel)?;
            writer.write(&b)
        },
    )
    .map_err(OutputError::merge(dest))?;
    let (meta, _) = writer.finish(&chunk.key, chunk.meta.complete).map_err(&write_err)?;
    tmp.commit().map_err(OutputError::io("renaming into", dest))?;
    Ok((meta.rows, meta.file_bytes, true))
}
