//! A Parquet writer that can encode columns on several threads.
//!
//! Parquet encoding (dictionaries, compression) is most of the CPU of writing a merged output,
//! and `ArrowWriter` does it column after column on the calling thread. Here the columns of each
//! row group are spread over worker threads that each own the column writers of their columns
//! and receive every batch (cheap: arrays are reference-counted); the caller keeps producing
//! batches meanwhile, so merging and encoding overlap too. Columns are assigned to workers
//! longest-first by the encoding time measured in the previous row group. The bytes are the
//! same as with one thread: column chunks are appended in schema order.
//!
//! With one thread no worker is started and columns are encoded inline.

use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::{DataType as ArrowType, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{KeyValue, ParquetMetaData};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::ChunkReader;
use parquet::file::writer::SerializedFileWriter;

/// Batches queued per worker before the producer waits.
const QUEUE: usize = 2;

enum Msg {
    /// The writers of this worker's columns for a new row group: (column index, writer).
    Start(Vec<(usize, ArrowColumnWriter)>),
    Batch(RecordBatch),
    /// Close the row group and send back (column index, chunk, time spent encoding it).
    Close(SyncSender<Result<Vec<(usize, ArrowColumnChunk, Duration)>>>),
}

struct Worker {
    tx: SyncSender<Msg>,
    handle: Option<JoinHandle<()>>,
}

fn worker_loop(schema: SchemaRef, rx: Receiver<Msg>) {
    let mut writers: Vec<(usize, ArrowColumnWriter, Duration)> = Vec::new();
    let mut failed: Option<ParquetError> = None;
    for msg in rx {
        match msg {
            Msg::Start(ws) => {
                writers = ws.into_iter().map(|(i, w)| (i, w, Duration::ZERO)).collect();
                failed = None;
            }
            Msg::Batch(batch) => {
                if failed.is_some() {
                    continue;
                }
                for (i, w, spent) in &mut writers {
                    let t = Instant::now();
                    if let Err(e) = write_column(&schema, *i, &batch, w) {
                        failed = Some(e);
                        break;
                    }
                    *spent += t.elapsed();
                }
            }
            Msg::Close(reply) => {
                let result = match failed.take() {
                    Some(e) => Err(e),
                    None => std::mem::take(&mut writers)
                        .into_iter()
                        .map(|(i, w, spent)| {
                            let t = Instant::now();
                            w.close().map(|c| (i, c, spent + t.elapsed()))
                        })
                        .collect(),
                };
                let _ = reply.send(result);
            }
        }
    }
}

/// Writes column `i` of `batch` (our schemas are flat: one leaf per column).
fn write_column(schema: &SchemaRef, i: usize, batch: &RecordBatch, w: &mut ArrowColumnWriter) -> Result<()> {
    for leaf in compute_leaves(schema.field(i), batch.column(i))? {
        w.write(&leaf)?;
    }
    Ok(())
}

enum Encoder {
    Inline(Vec<ArrowColumnWriter>),
    Pool {
        workers: Vec<Worker>,
        /// Measured encoding time per column, for assigning columns to workers.
        cost: Vec<Duration>,
    },
}

/// Streams record batches into a Parquet file, row group by row group.
pub struct ParallelWriter<W: Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    encoder: Encoder,
    /// Whether the current row group's column writers exist.
    open: bool,
    rows_in_group: usize,
    row_group_rows: usize,
    row_groups: usize,
}

impl<W: Write + Send> ParallelWriter<W> {
    /// `threads` ≤ 1 encodes inline; otherwise up to that many workers (never more than columns).
    ///
    /// # Errors
    /// The schema cannot be written with these properties.
    pub fn try_new(inner: W, schema: SchemaRef, props: WriterProperties, threads: usize) -> Result<Self> {
        let row_group_rows = props.max_row_group_row_count().unwrap_or(1024 * 1024).max(1);
        let (file, factory) = ArrowWriter::try_new(inner, schema.clone(), Some(props))?.into_serialized_writer()?;
        let columns = schema.fields().len();
        let threads = threads.min(columns);
        let encoder = if threads <= 1 {
            Encoder::Inline(Vec::new())
        } else {
            let workers = (0..threads)
                .map(|n| {
                    let (tx, rx) = sync_channel(QUEUE);
                    let s = schema.clone();
                    let handle = std::thread::Builder::new()
                        .name(format!("parquet-encode-{n}"))
                        .spawn(move || worker_loop(s, rx))
                        .map_err(|e| ParquetError::External(Box::new(e)))?;
                    Ok(Worker {
                        tx,
                        handle: Some(handle),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let cost = schema.fields().iter().map(|f| initial_cost(f.data_type())).collect();
            Encoder::Pool { workers, cost }
        };
        Ok(Self {
            file,
            factory,
            schema,
            encoder,
            open: false,
            rows_in_group: 0,
            row_group_rows,
            row_groups: 0,
        })
    }

    /// Writes a batch (split across row groups as needed).
    ///
    /// # Errors
    /// An encoding error, or a worker that died.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if !self.open {
                self.start_group()?;
            }
            let n = (batch.num_rows() - offset).min(self.row_group_rows - self.rows_in_group);
            let part = if offset == 0 && n == batch.num_rows() {
                batch.clone()
            } else {
                batch.slice(offset, n)
            };
            match &mut self.encoder {
                Encoder::Inline(writers) => {
                    for (i, w) in writers.iter_mut().enumerate() {
                        write_column(&self.schema, i, &part, w)?;
                    }
                }
                Encoder::Pool { workers, .. } => {
                    for w in workers.iter() {
                        w.tx.send(Msg::Batch(part.clone())).map_err(|_| worker_gone())?;
                    }
                }
            }
            self.rows_in_group += n;
            offset += n;
            if self.rows_in_group == self.row_group_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn start_group(&mut self) -> Result<()> {
        let writers = self.factory.create_column_writers(self.row_groups)?;
        match &mut self.encoder {
            Encoder::Inline(ws) => *ws = writers,
            Encoder::Pool { workers, cost } => {
                for (w, assigned) in workers.iter().zip(assign(cost, writers, workers.len())) {
                    w.tx.send(Msg::Start(assigned)).map_err(|_| worker_gone())?;
                }
            }
        }
        self.open = true;
        Ok(())
    }

    /// Closes the current row group, if it has rows.
    ///
    /// # Errors
    /// An encoding or I/O error.
    pub fn flush(&mut self) -> Result<()> {
        if !self.open {
            return Ok(());
        }
        self.open = false;
        let mut chunks: Vec<(usize, ArrowColumnChunk)> = match &mut self.encoder {
            Encoder::Inline(ws) => std::mem::take(ws)
                .into_iter()
                .enumerate()
                .map(|(i, w)| w.close().map(|c| (i, c)))
                .collect::<Result<_>>()?,
            Encoder::Pool { workers, cost } => {
                let mut replies = Vec::new();
                for w in workers.iter() {
                    let (tx, rx) = sync_channel(1);
                    w.tx.send(Msg::Close(tx)).map_err(|_| worker_gone())?;
                    replies.push(rx);
                }
                let mut all = Vec::new();
                for rx in replies {
                    for (i, chunk, spent) in rx.recv().map_err(|_| worker_gone())?? {
                        cost[i] = spent;
                        all.push((i, chunk));
                    }
                }
                all
            }
        };
        chunks.sort_by_key(|(i, _)| *i);
        let mut rg = self.file.next_row_group()?;
        for (_, chunk) in chunks {
            chunk.append_to_row_group(&mut rg)?;
        }
        rg.close()?;
        self.rows_in_group = 0;
        self.row_groups += 1;
        Ok(())
    }

    /// Appends every row group of another Parquet file of the same schema, copying its encoded
    /// column chunks (and their page indexes) without decoding them. An open row group is closed
    /// first, so copied row groups never mix with encoded rows.
    ///
    /// # Errors
    /// A schema mismatch, or an I/O error reading `source` or writing.
    pub fn append_row_groups<R: ChunkReader>(&mut self, source: &R, metadata: &ParquetMetaData) -> Result<()> {
        self.flush()?;
        let page_index = metadata.page_index();
        for (rg_idx, rg) in metadata.row_groups().iter().enumerate() {
            let mut out = self.file.next_row_group()?;
            for (col_idx, column) in rg.columns().iter().enumerate() {
                let close = ColumnCloseResult {
                    bytes_written: column.compressed_size() as u64,
                    rows_written: rg.num_rows() as u64,
                    metadata: column.clone(),
                    bloom_filter: None,
                    column_index: page_index.and_then(|pi| pi.column_index(rg_idx, col_idx)).cloned(),
                    offset_index: page_index.and_then(|pi| pi.offset_index(rg_idx, col_idx)).cloned(),
                };
                out.append_column(source, close)?;
            }
            out.close()?;
            self.row_groups += 1;
        }
        Ok(())
    }

    /// Adds key/value metadata to the footer.
    pub fn append_key_value_metadata(&mut self, kv: KeyValue) {
        self.file.append_key_value_metadata(kv);
    }

    /// Flushes, writes the footer and returns the inner writer.
    ///
    /// # Errors
    /// An encoding or I/O error.
    pub fn into_inner(mut self) -> Result<W> {
        self.flush()?;
        let Self { file, encoder, .. } = self;
        drop(encoder);
        file.into_inner()
    }
}

impl Drop for Worker {
    /// Closing the queue ends the worker (after it finishes what it holds); wait for it, so no
    /// thread outlives the writer. An abandoned writer (error, cancellation) ends the same way.
    fn drop(&mut self) {
        let (closed, _) = sync_channel(0);
        drop(std::mem::replace(&mut self.tx, closed));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn worker_gone() -> ParquetError {
    ParquetError::General("a Parquet encoding thread stopped unexpectedly".into())
}

/// A first guess of a column's relative encoding cost, before anything is measured.
fn initial_cost(t: &ArrowType) -> Duration {
    Duration::from_micros(match t {
        ArrowType::Utf8 => 3,
        ArrowType::Boolean => 1,
        _ => 2,
    })
}

/// Which worker encodes each column: longest first, each to the least loaded worker.
fn owners(cost: &[Duration], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..cost.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(cost[i]));
    let mut load = vec![Duration::ZERO; n.max(1)];
    let mut owner = vec![0; cost.len()];
    for i in order {
        let w = (0..load.len()).min_by_key(|&w| load[w]).unwrap_or(0);
        load[w] += cost[i];
        owner[i] = w;
    }
    owner
}

/// Hands each worker the writers of its columns.
fn assign(cost: &[Duration], writers: Vec<ArrowColumnWriter>, n: usize) -> Vec<Vec<(usize, ArrowColumnWriter)>> {
    let owner = owners(cost, n);
    let mut out: Vec<Vec<(usize, ArrowColumnWriter)>> = (0..n).map(|_| Vec::new()).collect();
    for (i, w) in writers.into_iter().enumerate() {
        out[owner[i]].push((i, w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::sync::Arc;

    fn batch(start: i64, n: usize) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", ArrowType::Int64, false),
            Field::new("s", ArrowType::Utf8, true),
            Field::new("f", ArrowType::Float64, false),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(start..start + n as i64)),
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| (i % 3 != 0).then(|| format!("v{i}"))),
            )),
            Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64 / 7.0))),
        ];
        RecordBatch::try_new(schema, cols).unwrap()
    }

    fn write(threads: usize) -> Vec<u8> {
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1000))
            .build();
        let mut w = ParallelWriter::try_new(Vec::new(), batch(0, 1).schema(), props, threads).unwrap();
        for k in 0..7 {
            w.write(&batch(k * 700, 700)).unwrap();
        }
        w.into_inner().unwrap()
    }

    #[test]
    fn threads_give_the_same_bytes_as_inline_encoding() {
        let one = write(1);
        assert_eq!(one, write(2));
        assert_eq!(one, write(3));
        let r = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(one)).unwrap();
        assert_eq!(r.metadata().num_row_groups(), 5, "4 900 rows in groups of 1 000");
        let rows: usize = r.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
        assert_eq!(rows, 4900);
    }

    #[test]
    fn columns_are_balanced_longest_first() {
        let cost = [5, 1, 4, 2, 3].map(Duration::from_millis);
        let owner = owners(&cost, 2);
        let load = |w| {
            cost.iter()
                .zip(&owner)
                .filter(|(_, o)| **o == w)
                .map(|(c, _)| *c)
                .sum::<Duration>()
        };
        assert_eq!(load(0).max(load(1)), Duration::from_millis(8), "{owner:?}");
        assert_eq!(owners(&cost, 1), vec![0; 5]);
    }
}
