//! Merging chunk files into one stream of rows ordered by `local_timestamp`.
//!
//! Each chunk is already ordered (Tardis splits and orders files by arrival time, and a chunk
//! that was not got sorted when fetched). A k-way merge over a heap of chunk heads produces the
//! output; a chunk is opened only when the merge reaches its smallest timestamp (known from its
//! footer), so for a range of days at most the chunks of about one day are open at a time and
//! memory does not grow with the range. Rows with equal timestamps come in chunk order (the
//! order of the inputs), so the output is deterministic.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use arrow_array::{RecordBatch, TimestampMicrosecondArray};
use arrow_schema::ArrowError;
use arrow_schema::SchemaRef;

use crate::cache::Batches;
use crate::cache::chunk_file::{ChunkData, ChunkMeta};
use crate::model::{DataType, local_ts};
use crate::parquet::sealed::SealedError;

/// Runs at least this long are passed on as zero-copy slices instead of being gathered.
const SLICE_RUN: usize = 4096;

/// One input of the merge.
#[derive(Debug, Clone)]
pub struct MergeInput {
    /// A name for errors (the chunk key).
    pub name: String,
    /// Where the chunk file's bytes are.
    pub data: ChunkData,
    /// Its metadata (row count and first timestamp decide when it is opened).
    pub meta: ChunkMeta,
    /// Its decoded batches, when the memory tier holds them (then the file is not read).
    pub decoded: Option<Batches>,
}

impl MergeInput {
    /// An input read from the chunk's file or bytes.
    pub fn of(chunk: &crate::cache::Chunk) -> Self {
        Self {
            name: chunk.key.to_string(),
            data: chunk.data.clone(),
            meta: chunk.meta.clone(),
            decoded: None,
        }
    }
}

/// Batches of one input, read from its file or from memory.
type Reader = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>> + Send>;

enum Slot {
    Pending(MergeInput),
    Open {
        name: String,
        reader: Reader,
        batch: RecordBatch,
        /// Identifies `batch` for the output's gather (unique over the merge).
        seq: u64,
        pos: usize,
    },
    Done,
}

/// Merges `inputs` (in tie-break order) and hands batches of up to `batch_rows` rows to `sink`,
/// keeping only rows with `local_timestamp` in `[from, to)` when `range` is given.
///
/// # Errors
/// A chunk that cannot be read or does not have the data type's schema, or a sink error.
pub fn merge<E>(
    data_type: DataType,
    inputs: Vec<MergeInput>,
    range: Option<(i64, i64)>,
    batch_rows: usize,
    mut sink: impl FnMut(RecordBatch) -> Result<(), E>,
) -> Result<u64, MergeError<E>> {
    let schema = data_type.schema();
    let mut slots: Vec<Slot> = Vec::with_capacity(inputs.len());
    // (timestamp, input order) of each slot's next row (or first row, for pending slots).
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    for (i, input) in inputs.into_iter().enumerate() {
        match (input.meta.rows, input.meta.min_ts) {
            (0, _) => slots.push(Slot::Done),
            (_, min) => {
                heap.push(Reverse((min.unwrap_or(i64::MIN), i)));
                slots.push(Slot::Pending(input));
            }
        }
    }
    let mut out = Output::new(schema.clone(), batch_rows);
    let mut rows = 0u64;
    let mut next_seq = 0u64;
    while let Some(Reverse((_, i))) = heap.pop() {
        if let Slot::Pending(_) = &slots[i] {
            let Slot::Pending(input) = std::mem::replace(&mut slots[i], Slot::Done) else {
                unreachable!()
            };
            if let Some(open) = open(input, batch_rows, &schema, range, &mut next_seq)? {
                if let Slot::Open { batch, .. } = &open {
                    heap.push(Reverse((first_ts(batch), i)));
                }
                slots[i] = open;
            }
            continue;
        }
        let Slot::Open {
            name,
            reader,
            batch,
            seq,
            pos,
        } = &mut slots[i]
        else {
            continue;
        };
        let ts = local_ts(batch).expect("schema checked").values();
        // Take every row that sorts before the next head: (ts, order) < (next_ts, next_order).
        let end = match heap.peek() {
            None => batch.num_rows(),
            Some(Reverse((next_ts, next_i))) => {
                let (next_ts, next_i) = (*next_ts, *next_i);
                *pos + ts[*pos..].partition_point(|&t| t < next_ts || (t == next_ts && i < next_i))
            }
        };
        // The popped head always sorts first, so at least one row is taken.
        let end = end.max(*pos + 1);
        out.push(*seq, batch, *pos, end, &mut sink).map_err(MergeError::Sink)?;
        rows += (end - *pos) as u64;
        *pos = end;
        if *pos < batch.num_rows() {
            heap.push(Reverse((ts[*pos], i)));
        } else {
            match next_batch(reader, name, &schema, range)? {
                Some(b) => {
                    heap.push(Reverse((first_ts(&b), i)));
                    next_seq += 1;
                    *batch = b;
                    *seq = next_seq;
                    *pos = 0;
                }
                None => slots[i] = Slot::Done,
            }
        }
    }
    out.flush(&mut sink).map_err(MergeError::Sink)?;
    Ok(rows)
}

/// Opens a pending input at its first batch in range (`None` if it has none).
fn open<E>(
    input: MergeInput,
    batch_rows: usize,
    schema: &SchemaRef,
    range: Option<(i64, i64)>,
    next_seq: &mut u64,
) -> Result<Option<Slot>, MergeError<E>> {
    let mut reader: Reader = match input.decoded {
        Some(batches) => Box::new((0..batches.len()).map(move |i| Ok(batches[i].clone()))),
        None => Box::new(input.data.reader(batch_rows).map_err(MergeError::Chunk)?),
    };
    let Some(batch) = next_batch(&mut reader, &input.name, schema, range)? else {
        return Ok(None);
    };
    *next_seq += 1;
    Ok(Some(Slot::Open {
        name: input.name,
        reader,
        batch,
        seq: *next_seq,
        pos: 0,
    }))
}

/// Why a merge failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeError<E> {
    /// A chunk file could not be read.
    #[error("reading a chunk file")]
    Chunk(#[source] SealedError),
    /// A chunk file does not have the data type's columns.
    #[error("{name}: {reason}")]
    Schema {
        /// The chunk.
        name: String,
        /// What differs.
        reason: String,
    },
    /// The sink failed.
    #[error(transparent)]
    Sink(E),
}

fn first_ts(batch: &RecordBatch) -> i64 {
    local_ts(batch).expect("schema checked").value(0)
}

/// The next non-empty batch of a chunk, cut to `range`; `None` when the chunk is exhausted
/// (or its rows are past the range's end).
fn next_batch<E>(
    reader: &mut Reader,
    name: &str,
    schema: &SchemaRef,
    range: Option<(i64, i64)>,
) -> Result<Option<RecordBatch>, MergeError<E>> {
    for batch in reader.by_ref() {
        let batch = batch.map_err(|e| MergeError::Chunk(SealedError::Arrow(e)))?;
        if batch.schema().fields() != schema.fields() {
            return Err(MergeError::Schema {
                name: name.to_string(),
                reason: "chunk file columns differ from the data type's schema".into(),
            });
        }
        let batch = match range {
            None => batch,
            Some((from, to)) => {
                let ts: &TimestampMicrosecondArray = local_ts(&batch).expect("schema checked");
                let v = ts.values();
                let start = v.partition_point(|&t| t < from);
                let end = v.partition_point(|&t| t < to);
                if start == v.len() {
                    continue;
                }
                if end == 0 {
                    return Ok(None);
                }
                batch.slice(start, end - start)
            }
        };
        if batch.num_rows() > 0 {
            return Ok(Some(batch));
        }
    }
    Ok(None)
}

/// Gathers merged rows into output batches.
struct Output {
    schema: SchemaRef,
    batch_rows: usize,
    /// Distinct source batches referenced by `indices`, and their sequence numbers.
    sources: Vec<RecordBatch>,
    seqs: Vec<u64>,
    indices: Vec<(usize, usize)>,
}

impl Output {
    fn new(schema: SchemaRef, batch_rows: usize) -> Self {
        Self {
            schema,
            batch_rows,
            sources: Vec::new(),
            seqs: Vec::new(),
            indices: Vec::new(),
        }
    }

    fn push<E>(
        &mut self,
        seq: u64,
        batch: &RecordBatch,
        start: usize,
        end: usize,
        sink: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        if end - start >= SLICE_RUN {
            self.flush(sink)?;
            return sink(batch.slice(start, end - start));
        }
        // Few distinct batches are live at once (about one per open chunk): a linear search.
        let src = match self.seqs.iter().position(|s| *s == seq) {
            Some(i) => i,
            None => {
                self.sources.push(batch.clone());
                self.seqs.push(seq);
                self.sources.len() - 1
            }
        };
        self.indices.extend((start..end).map(|r| (src, r)));
        if self.indices.len() >= self.batch_rows {
            self.flush(sink)?;
        }
        Ok(())
    }

    fn flush<E>(&mut self, sink: &mut impl FnMut(RecordBatch) -> Result<(), E>) -> Result<(), E> {
        if self.indices.is_empty() {
            self.sources.clear();
            self.seqs.clear();
            return Ok(());
        }
        let refs: Vec<&RecordBatch> = self.sources.iter().collect();
        let batch =
            arrow_select::interleave::interleave_record_batch(&refs, &self.indices).expect("sources share the schema");
        debug_assert_eq!(batch.schema().fields(), self.schema.fields());
        self.sources.clear();
        self.seqs.clear();
        self.indices.clear();
        sink(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::chunk_file::ChunkFileWriter;
    use crate::model::ChunkKey;
    use arrow_array::{Array, StringArray};
    use bytes::Bytes;
    use jiff::civil::date;

    fn chunk(symbol: &str, day: i8, ts: &[i64]) -> MergeInput {
        let batch = crate::model::testing::trades_batch(symbol, ts);
        let n = ts.len();
        let key = ChunkKey::new("x", DataType::Trades, symbol, date(2024, 1, day));
        let mut w = ChunkFileWriter::new(std::io::Cursor::new(Vec::new()), DataType::Trades).unwrap();
        // Small row groups and batches so runs cross batch boundaries.
        for s in 0..n.div_ceil(3) {
            w.write(&batch.slice(s * 3, 3.min(n - s * 3))).unwrap();
        }
        let (meta, bytes) = w.finish(&key, true).unwrap();
        MergeInput {
            name: key.to_string(),
            data: ChunkData::Bytes(Bytes::from(bytes.into_inner())),
            meta,
            decoded: None,
        }
    }

    fn run(inputs: Vec<MergeInput>, range: Option<(i64, i64)>, batch_rows: usize) -> Vec<(i64, String)> {
        let mut out = Vec::new();
        merge(DataType::Trades, inputs, range, batch_rows, |b| {
            let ts = local_ts(&b).unwrap();
            let ids = b.column(4).as_any().downcast_ref::<StringArray>().unwrap();
            for r in 0..b.num_rows() {
                out.push((ts.value(r), ids.value(r).to_string()));
            }
            Ok::<_, std::convert::Infallible>(())
        })
        .unwrap();
        out
    }

    #[test]
    fn interleaves_symbols_by_local_timestamp_with_stable_ties() {
        let a = chunk("A", 1, &[1, 3, 3, 5, 7, 9, 9]);
        let b = chunk("B", 1, &[2, 3, 4, 9, 10]);
        let got = run(vec![a, b], None, 4);
        let ts: Vec<i64> = got.iter().map(|r| r.0).collect();
        assert_eq!(ts, vec![1, 2, 3, 3, 3, 4, 5, 7, 9, 9, 9, 10]);
        let ids: Vec<&str> = got.iter().map(|r| r.1.as_str()).collect();
        // Ties: all of A's rows before B's at the same timestamp, each in file order.
        assert_eq!(&ids[2..5], &["A1", "A2", "B1"]);
        assert_eq!(&ids[8..11], &["A5", "A6", "B3"]);
    }

    #[test]
    fn days_follow_each_other_and_empty_chunks_are_skipped() {
        let d1 = chunk("A", 1, &[10, 11, 12, 13]);
        let empty = chunk("A", 2, &[]);
        let d3 = chunk("A", 3, &[30, 31]);
        let got = run(vec![d3, empty, d1], None, 1024);
        let ts: Vec<i64> = got.iter().map(|r| r.0).collect();
        assert_eq!(ts, vec![10, 11, 12, 13, 30, 31]);
    }

    #[test]
    fn the_range_cuts_rows_outside_it() {
        let a = chunk("A", 1, &[1, 2, 3, 4, 5, 6, 7, 8]);
        let b = chunk("B", 1, &[2, 4, 6, 8]);
        let got = run(vec![a, b], Some((3, 7)), 1024);
        let ts: Vec<i64> = got.iter().map(|r| r.0).collect();
        assert_eq!(ts, vec![3, 4, 4, 5, 6, 6]);
    }

    #[test]
    fn long_runs_pass_through_and_short_runs_gather() {
        let many: Vec<i64> = (0..10_000).collect();
        let a = chunk("A", 1, &many);
        let b = chunk("B", 1, &[5_000]);
        let got = run(vec![a, b], None, 100);
        assert_eq!(got.len(), 10_001);
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0));
        assert_eq!(got[5_001].1, "B0");
    }
}
