//! Writing the output: one merged Parquet file per data type, or a Hive-partitioned dataset.
//!
//! Files are written to a temporary name in the target directory, synced and renamed, so a
//! reader never sees a partial file, and an interrupted run leaves the previous output intact.
//! A merged file records a fingerprint of its inputs (each chunk's checksum, the range, the
//! version); when the file on disk verifies and carries the same fingerprint, there is nothing
//! to do.

use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use tracing::{debug, warn};
use twox_hash::XxHash3_64;

use crate::cache::Chunk;
use crate::cancel::Cancel;
use crate::chunkfile::{
    ChunkData, ChunkFileError, ChunkFileWriter, SealedWriter, meta_keys, verify_file, verify_sealed_file,
    with_column_encodings,
};
use crate::merge::{MergeError, MergeInput, merge};
use crate::model::{DataType, fs_component};

/// `tickvault.format` of a merged output file.
pub const OUTPUT_FORMAT: &str = "output-v1";
/// Key of the inputs fingerprint in a merged output's footer.
pub const META_INPUTS: &str = "tickvault.inputs";

/// What happened to one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStatus {
    Written,
    /// Already present, verified, and made from exactly these chunks.
    UpToDate,
}

/// One written (or up-to-date) output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OutputResult {
    pub data_type: String,
    pub path: PathBuf,
    pub rows: u64,
    pub bytes: u64,
    pub status: OutputStatus,
}

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: ChunkFileError,
    },
    #[error("merging into {}: {source}", path.display())]
    Merge {
        path: PathBuf,
        #[source]
        source: MergeError<ChunkFileError>,
    },
}

/// Writer properties of merged outputs: zstd(3) for size, page statistics and indexes for
/// readers' pruning, the column encodings of [`with_column_encodings`].
fn output_properties(data_type: DataType) -> WriterProperties {
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(data_type.output_zstd_level()).unwrap_or_default(),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(data_type.row_group_rows()));
    with_column_encodings(builder, data_type).build()
}

/// Threads encoding a merged output's columns.
fn encode_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Describes the run in the output's metadata (no key, no credentials).
#[derive(Debug, Clone)]
pub struct OutputContext {
    pub data_type: DataType,
    /// e.g. `https://datasets.tardis.dev/v1 exchange=deribit symbols=BTC-PERPETUAL from=… to=…`
    pub source: String,
    /// `[from, to)` in µs when rows must be cut (a range not on whole days).
    pub range: Option<(i64, i64)>,
    /// Label of the range for the fingerprint.
    pub range_label: String,
}

/// The fingerprint of a merged output's inputs.
pub fn fingerprint(ctx: &OutputContext, chunks: &[Chunk]) -> String {
    let mut text = format!(
        "{OUTPUT_FORMAT}|{}|{}|{}\n",
        crate::VERSION,
        ctx.data_type,
        ctx.range_label
    );
    for c in chunks {
        text.push_str(&format!("{}:{:016x}\n", c.key, c.meta.checksum));
    }
    format!("{:016x}", XxHash3_64::oneshot_with_seed(0, text.as_bytes()))
}

/// A temporary output file, removed unless renamed into place.
struct TempOutput {
    tmp: PathBuf,
    target: PathBuf,
    done: bool,
}

impl TempOutput {
    fn new(target: &Path) -> Result<Self, OutputError> {
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|source| OutputError::Io {
            what: "creating directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("output");
        let tmp = dir.join(format!(".{name}.{}-{:08x}.tmp", std::process::id(), fastrand::u32(..)));
        Ok(Self {
            tmp,
            target: target.to_path_buf(),
            done: false,
        })
    }

    /// Creates the temporary file, opened for a [`SealedWriter`].
    fn create_file(&self) -> Result<File, OutputError> {
        crate::chunkfile::create_sealed_file(&self.tmp).map_err(|source| OutputError::Io {
            what: "creating",
            path: self.tmp.clone(),
            source,
        })
    }

    fn commit(mut self) -> Result<(), OutputError> {
        std::fs::rename(&self.tmp, &self.target).map_err(|source| OutputError::Io {
            what: "renaming into",
            path: self.target.clone(),
            source,
        })?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempOutput {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes (or confirms) one merged file from `chunks`, given in tie-break order.
///
/// # Errors
/// See [`OutputError`].
pub fn write_merged(
    ctx: &OutputContext,
    path: &Path,
    chunks: &[Chunk],
    cancel: &Cancel,
) -> Result<OutputResult, OutputError> {
    let fp = fingerprint(ctx, chunks);
    if path.exists() {
        match verify_sealed_file(path) {
            Ok(footer)
                if footer.get(meta_keys::FORMAT) == Some(OUTPUT_FORMAT)
                    && footer.get(META_INPUTS) == Some(fp.as_str()) =>
            {
                debug!("{} is up to date", path.display());
                return Ok(OutputResult {
                    data_type: ctx.data_type.to_string(),
                    path: path.to_path_buf(),
                    rows: footer.num_rows,
                    bytes: footer.file_bytes,
                    status: OutputStatus::UpToDate,
                });
            }
            Ok(_) => debug!("{} was made from other inputs; rewriting it", path.display()),
            Err(e) => warn!("replacing {}: {e}", path.display()),
        }
    }
    let tmp = TempOutput::new(path)?;
    let write_err = |source| OutputError::Write {
        path: path.to_path_buf(),
        source,
    };
    let file = tmp.create_file()?;
    let mut writer = SealedWriter::new(
        file,
        ctx.data_type.schema(),
        output_properties(ctx.data_type),
        encode_threads(),
    )
    .map_err(write_err)?;
    let inputs = chunks
        .iter()
        .map(|c| MergeInput {
            name: c.key.to_string(),
            data: c.data.clone(),
            meta: c.meta.clone(),
        })
        .collect();
    let rows = merge(ctx.data_type, inputs, ctx.range, ctx.data_type.batch_rows(), |b| {
        cancel
            .check()
            .map_err(|e| ChunkFileError::io("writing the output", e))?;
        writer.write(&b)
    })
    .map_err(|source| OutputError::Merge {
        path: path.to_path_buf(),
        source,
    })?;
    let kv = vec![
        (meta_keys::FORMAT, OUTPUT_FORMAT.to_string()),
        (meta_keys::VERSION, crate::VERSION.to_string()),
        (meta_keys::SOURCE, ctx.source.clone()),
        (meta_keys::ROWS, rows.to_string()),
        (META_INPUTS, fp),
    ];
    let (sealed, file) = writer.finish(kv).map_err(write_err)?;
    file.sync_all().map_err(|source| OutputError::Io {
        what: "syncing",
        path: tmp.tmp.clone(),
        source,
    })?;
    tmp.commit()?;
    Ok(OutputResult {
        data_type: ctx.data_type.to_string(),
        path: path.to_path_buf(),
        rows,
        bytes: sealed.file_bytes,
        status: OutputStatus::Written,
    })
}

/// The partition file of a chunk: `DIR/exchange=E/data_type=T/date=YYYY-MM-DD/SYMBOL.parquet`.
pub fn partition_path(dir: &Path, chunk: &Chunk) -> PathBuf {
    let k = &chunk.key;
    dir.join(format!("exchange={}", k.exchange))
        .join(format!("data_type={}", k.data_type))
        .join(format!("date={}", k.date))
        .join(format!("{}.parquet", fs_component(&k.symbol)))
}

/// Writes (or confirms) the partition files of one data type. Each is a copy of the chunk
/// file, or, on the first and last day of a range not on whole days, the chunk's rows in range.
///
/// # Errors
/// See [`OutputError`].
pub fn write_partitioned(
    ctx: &OutputContext,
    dir: &Path,
    chunks: &[Chunk],
    cancel: &Cancel,
) -> Result<OutputResult, OutputError> {
    let mut result = OutputResult {
        data_type: ctx.data_type.to_string(),
        path: dir.to_path_buf(),
        rows: 0,
        bytes: 0,
        status: OutputStatus::UpToDate,
    };
    for chunk in chunks {
        if cancel.is_cancelled() {
            return Err(OutputError::Io {
                what: "writing",
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"),
            });
        }
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
    let tmp = TempOutput::new(dest)?;
    let io = |what, source| OutputError::Io {
        what,
        path: dest.to_path_buf(),
        source,
    };
    match &chunk.data {
        ChunkData::File(src) => {
            std::fs::copy(src, &tmp.tmp).map_err(|e| io("copying into", e))?;
        }
        ChunkData::Bytes(b) => std::fs::write(&tmp.tmp, b).map_err(|e| io("writing", e))?,
    }
    File::open(&tmp.tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("syncing", e))?;
    tmp.commit()?;
    Ok((chunk.meta.rows, chunk.meta.file_bytes, true))
}

fn filter_partition(
    ctx: &OutputContext,
    chunk: &Chunk,
    dest: &Path,
    range: (i64, i64),
    cancel: &Cancel,
) -> Result<(u64, u64, bool), OutputError> {
    let tmp = TempOutput::new(dest)?;
    let write_err = |source| OutputError::Write {
        path: dest.to_path_buf(),
        source,
    };
    let file = tmp.create_file()?;
    let mut writer = ChunkFileWriter::new(file, ctx.data_type).map_err(write_err)?;
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
            cancel
                .check()
                .map_err(|e| ChunkFileError::io("writing the output", e))?;
            writer.write(&b)
        },
    )
    .map_err(|source| OutputError::Merge {
        path: dest.to_path_buf(),
        source,
    })?;
    let (meta, file) = writer.finish(&chunk.key, chunk.meta.complete).map_err(write_err)?;
    file.sync_all().map_err(|source| OutputError::Io {
        what: "syncing",
        path: tmp.tmp.clone(),
        source,
    })?;
    tmp.commit()?;
    Ok((meta.rows, meta.file_bytes, true))
}
