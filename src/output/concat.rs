//! Symbol-major assembly: a merged output is the concatenation of its chunks' row groups —
//! symbols in the order given, each symbol's days in order, rows within a day in file
//! (`local_timestamp`) order — copied as encoded column chunks, never decoded or re-encoded
//! (parquet's `append_column`, as the crate's `parquet-concat` does). Only a day that the range
//! cuts (a `--from`/`--to` inside a day) is decoded, filtered and encoded again. Every
//! symbol-day is at least one row group, so readers prune by symbol and time from statistics.

use std::fs::File;
use std::io::{Read, Seek, Write};

use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::ChunkReader;
use tokio_util::sync::CancellationToken;

use super::merge::{MergeError, MergeInput, merge};
use super::{OutputContext, cancelled};
use crate::cache::Chunk;
use crate::cache::chunk_file::ChunkData;
use crate::model::BatchStats;
use crate::parquet::sealed::{SealedError, SealedWriter};

/// `chunks` (given day by day, symbols in request order) in symbol-major order: a stable sort
/// by the position of each chunk's symbol in the request.
pub(super) fn symbol_major(chunks: &[Chunk]) -> Vec<&Chunk> {
    let mut symbols: Vec<&str> = Vec::new();
    for c in chunks {
        if !symbols.contains(&&*c.key.symbol) {
            symbols.push(&c.key.symbol);
        }
    }
    let mut ordered: Vec<&Chunk> = chunks.iter().collect();
    ordered.sort_by_key(|c| symbols.iter().position(|s| *s == &*c.key.symbol));
    ordered
}

/// Writes `chunks` into `writer` in symbol-major order. Returns the rows written.
///
/// # Errors
/// A chunk that cannot be read or has another schema, an encoding error, or an interruption.
pub(super) fn concat<W: Write + Read + Seek + Send>(
    ctx: &OutputContext,
    writer: &mut SealedWriter<W>,
    chunks: &[Chunk],
    cancel: &CancellationToken,
) -> Result<u64, MergeError<SealedError>> {
    for chunk in symbol_major(chunks) {
        cancelled(cancel).map_err(MergeError::Sink)?;
        let day_start = chunk.key.day_start_micros();
        let cut = ctx
            .range
            .filter(|(from, to)| *from > day_start || *to < day_start + 86_400_000_000);
        match cut {
            None => append_chunk(writer, chunk).map_err(MergeError::Chunk)?,
            Some(range) => {
                write_cut(ctx, writer, chunk, range, cancel)?;
            }
        }
    }
    Ok(writer.stats().rows)
}

/// Decodes the rows of `chunk` inside `range` and encodes them as row groups of their own.
fn write_cut<W: Write + Read + Seek + Send>(
    ctx: &OutputContext,
    writer: &mut SealedWriter<W>,
    chunk: &Chunk,
    range: (i64, i64),
    cancel: &CancellationToken,
) -> Result<(), MergeError<SealedError>> {
    let input = MergeInput::of(chunk);
    merge(
        ctx.data_type,
        vec![input],
        Some(range),
        ctx.data_type.batch_rows(),
        |b| {
            cancelled(cancel)?;
            writer.write(&b)
        },
    )?;
    writer.flush().map_err(MergeError::Sink)
}

/// Copies every row group of a chunk file into `writer`.
fn append_chunk<W: Write + Read + Seek + Send>(writer: &mut SealedWriter<W>, chunk: &Chunk) -> Result<(), SealedError> {
    let stats = BatchStats::of(chunk.meta.rows, chunk.meta.min_ts, chunk.meta.max_ts);
    match &chunk.data {
        ChunkData::File(path) => {
            let file = File::open(path).map_err(|e| SealedError::io(format!("opening {}", path.display()), e))?;
            writer.append_row_groups(&file, &metadata(&file)?, &stats)
        }
        ChunkData::Bytes(bytes) => writer.append_row_groups(bytes, &metadata(bytes)?, &stats),
    }
}

/// A Parquet file's metadata with its page indexes, where present.
fn metadata<R: ChunkReader>(source: &R) -> Result<ParquetMetaData, SealedError> {
    Ok(ParquetMetaDataReader::new()
        .with_page_index_policy(PageIndexPolicy::Optional)
        .parse_and_finish(source)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::chunk_file::ChunkFileWriter;
    use crate::model::{ChunkKey, DataType};
    use bytes::Bytes;
    use jiff::civil::date;

    fn chunk(symbol: &str, day: i8) -> Chunk {
        let key = ChunkKey::new("x", DataType::Trades, symbol, date(2024, 1, day));
        let mut w = ChunkFileWriter::new(std::io::Cursor::new(Vec::new()), DataType::Trades).unwrap();
        w.write(&crate::model::testing::trades_batch(symbol, &[i64::from(day)]))
            .unwrap();
        let (meta, bytes) = w.finish(&key, true).unwrap();
        Chunk {
            key,
            meta,
            data: ChunkData::Bytes(Bytes::from(bytes.into_inner())),
        }
    }

    #[test]
    fn symbols_come_in_request_order_each_with_its_days_in_order() {
        let chunks = vec![chunk("B", 1), chunk("A", 1), chunk("B", 2), chunk("A", 2)];
        let order: Vec<String> = symbol_major(&chunks)
            .iter()
            .map(|c| format!("{}{}", c.key.symbol, c.key.date.day()))
            .collect();
        assert_eq!(order, ["B1", "B2", "A1", "A2"]);
    }
}
