//! The decode job of a fetched body, run on a decoder thread: gzip CSV → typed batches → a
//! sealed chunk file at the destination. Tardis orders each file by `local_timestamp`; a file
//! that is not gets its rows sorted (stably) so the merge can stream.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use arrow_array::{ArrayRef, RecordBatch};
use tracing::{info, warn};

use super::FetchError;
use crate::cache::chunk_file::{ChunkData, ChunkFileWriter, ChunkMeta};
use crate::decode::decode_gzip_csv;
use crate::model::{ChunkKey, DataType, local_ts};
use crate::parquet::atomic::AtomicFile;
use crate::parquet::sealed::{SealedError, reopen_sealed_file};

/// Decodes a body into the chunk file staged at `dest`. Blocking. With `keep_decoded`, the
/// decoded batches are returned too (for a merge that would otherwise read them back).
pub(super) fn write_chunk_file(
    key: &ChunkKey,
    body: impl Read,
    dest: &Path,
    complete: bool,
    keep_decoded: bool,
) -> Result<(ChunkMeta, Option<Vec<RecordBatch>>), FetchError> {
    let file = reopen_sealed_file(dest).map_err(|e| FetchError::local(format!("opening {}", dest.display()), e))?;
    let mut writer = ChunkFileWriter::new(file, key.data_type).map_err(file_err(dest))?;
    let mut kept = Vec::new();
    decode_gzip_csv(key.data_type, &key.url_path(), body, |batch| {
        writer.write(&batch)?;
        if keep_decoded {
            kept.push(batch);
        }
        Ok::<_, SealedError>(())
    })?;
    let sorted = writer.stats().sorted;
    let meta = seal(writer, key, dest, complete)?;
    if sorted {
        return Ok((meta, keep_decoded.then_some(kept)));
    }
    warn!("{key}: rows are not ordered by local_timestamp; sorting them");
    let meta = rewrite_sorted(key, dest, complete)?;
    info!("{key}: sorted {} rows by local_timestamp", meta.rows);
    Ok((meta, None))
}

/// Rewrites the chunk file at `dest` with its rows sorted. Holds the whole day in memory, so it
/// is a last resort.
fn rewrite_sorted(key: &ChunkKey, dest: &Path, complete: bool) -> Result<ChunkMeta, FetchError> {
    let batches = ChunkData::File(dest.into())
        .reader(key.data_type.batch_rows())
        .map_err(file_err(dest))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(dest)(e.into()))?;
    let all = sort_by_local_ts(key.data_type, &batches).map_err(file_err(dest))?;
    let tmp = AtomicFile::create(dest)
        .map_err(|e| FetchError::local(format!("creating a file beside {}", dest.display()), e))?;
    let handle = tmp
        .handle()
        .map_err(|e| FetchError::local(format!("opening {}", tmp.path().display()), e))?;
    let mut writer = ChunkFileWriter::new(handle, key.data_type).map_err(file_err(tmp.path()))?;
    writer.write(&all).map_err(file_err(tmp.path()))?;
    let meta = seal(writer, key, tmp.path(), complete)?;
    tmp.commit()
        .map_err(|e| FetchError::local(format!("replacing {}", dest.display()), e))?;
    Ok(meta)
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

/// Stable-sorts all rows of `batches` by `local_timestamp` (rows with equal timestamps keep
/// their file order).
fn sort_by_local_ts(data_type: DataType, batches: &[RecordBatch]) -> Result<RecordBatch, SealedError> {
    let all = arrow_select::concat::concat_batches(&data_type.schema(), batches)?;
    let Some(ts) = local_ts(&all) else {
        return Ok(all);
    };
    let values = ts.values();
    let mut idx: Vec<u32> = (0..all.num_rows() as u32).collect();
    idx.sort_by_key(|&i| values[i as usize]);
    let indices = arrow_array::UInt32Array::from(idx);
    let columns: Vec<ArrayRef> = all
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c.as_ref(), &indices, None))
        .collect::<Result<_, _>>()?;
    Ok(RecordBatch::try_new(data_type.schema(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::StringArray;

    #[test]
    fn sorting_is_stable() {
        let batch = crate::model::testing::trades_batch("A", &[5, 1, 5, 0]);
        let sorted = sort_by_local_ts(DataType::Trades, &[batch]).unwrap();
        let ts = local_ts(&sorted).unwrap().values().to_vec();
        assert_eq!(ts, vec![0, 1, 5, 5]);
        let ids = sorted.column(4).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((ids.value(2), ids.value(3)), ("A0", "A2"));
    }
}
