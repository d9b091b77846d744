//! The decode job of a fetched body, run on a decoder thread: gzip CSV → typed batches → a
//! sealed chunk file at the destination. Tardis orders each file by `local_timestamp`; a file
//! that is not gets its rows sorted (stably, in bounded memory: [`super::sort`]) so the merge
//! can stream.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;

use tracing::{info, warn};

use super::FetchError;
use super::sort::{RUN_BYTES, SortJob, sort_chunk_file};
use crate::cache::chunk_file::{ChunkFileWriter, ChunkMeta};
use crate::decode::{DecodeLimits, decode_gzip_csv_limited};
use crate::model::ChunkKey;
use crate::parquet::mac::MacKey;
use crate::parquet::sealed::{SealedError, reopen_sealed_file};

/// One body to decode into a chunk file.
pub(super) struct DecodeJob {
    /// The chunk.
    pub key: ChunkKey,
    /// The staged chunk file to write.
    pub dest: PathBuf,
    /// Whether Tardis has finished exporting the day.
    pub complete: bool,
    /// Limits on what the body may decode to.
    pub limits: DecodeLimits,
    /// The team key: the chunk file carries its MAC.
    pub mac: Option<MacKey>,
    /// Where sort runs are spilled.
    pub scratch: PathBuf,
    /// Hand back the decoded batches, up to this many bytes of them (the memory tier's
    /// capacity: a day larger than that would not stay resident anyway).
    pub keep_decoded: Option<u64>,
}

/// Decodes a body into the chunk file staged at `job.dest`. Blocking. With `keep_decoded`, the
/// decoded batches are returned too (for a merge that would otherwise read them back).
pub(super) fn write_chunk_file(
    job: &DecodeJob,
    body: impl Read,
) -> Result<(ChunkMeta, Option<Vec<RecordBatch>>), FetchError> {
    let (key, dest) = (&job.key, job.dest.as_path());
    let file = reopen_sealed_file(dest).map_err(|e| FetchError::local(format!("opening {}", dest.display()), e))?;
    let mac = job.mac.as_ref().map(|m| (m, key));
    let mut writer = ChunkFileWriter::with_mac(file, key.data_type, mac).map_err(file_err(dest))?;
    let mut kept = Kept::new(job.keep_decoded);
    decode_gzip_csv_limited(key.data_type, &key.url_path(), body, job.limits, |batch| {
        writer.write(&batch)?;
        kept.push(batch);
        Ok::<_, SealedError>(())
    })?;
    let sorted = writer.stats().sorted;
    let meta = seal(writer, key, dest, job.complete)?;
    if sorted {
        return Ok((meta, kept.batches()));
    }
    warn!("{key}: rows are not ordered by local_timestamp; sorting them");
    let sort = SortJob {
        key,
        complete: job.complete,
        mac: job.mac.as_ref(),
        scratch: &job.scratch,
        run_bytes: RUN_BYTES,
    };
    let meta = sort_chunk_file(&sort, dest)?;
    info!("{key}: sorted {} rows by local_timestamp", meta.rows);
    Ok((meta, None))
}

/// Decoded batches kept for the memory tier, up to a byte budget: past it, none are kept.
struct Kept {
    batches: Vec<RecordBatch>,
    bytes: u64,
    budget: Option<u64>,
}

impl Kept {
    fn new(budget: Option<u64>) -> Self {
        Self {
            batches: Vec::new(),
            bytes: 0,
            budget,
        }
    }

    fn push(&mut self, batch: RecordBatch) {
        let Some(budget) = self.budget else { return };
        self.bytes += batch.get_array_memory_size() as u64;
        if self.bytes > budget {
            self.budget = None;
            self.batches = Vec::new();
        } else {
            self.batches.push(batch);
        }
    }

    fn batches(self) -> Option<Vec<RecordBatch>> {
        self.budget.map(|_| self.batches)
    }
}

/// Seals a chunk file and makes it durable.
fn seal(writer: ChunkFileWriter<File>, key: &ChunkKey, path: &Path, complete: bool) -> Result<ChunkMeta, FetchError> {
    let (meta, file) = writer.finish(key, complete).map_err(file_err(path))?;
    file.sync_all()
        .map_err(|e| FetchError::local(format!("syncing {}", path.display()), e))?;
    Ok(meta)
}

fn file_err(path: &Path) -> impl Fn(SealedError) -> FetchError {
    let what = format!("writing {}", path.display());
    move |e| FetchError::local(what.clone(), e)
}
