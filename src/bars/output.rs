//! The bars outputs: their schema, their names, and the writers (one merged file per
//! interval, symbol-major, or a partitioned table per interval), sealed and written
//! atomically like every other output, and refused over another request's file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};

use super::assemble::Bar;
use crate::model::{BarTime, Interval, fs_component};
use crate::output::target::{self, Holder, OUTPUT_FORMAT, merged_holder};
use crate::output::{OutputError, OutputResult, OutputStatus};
use crate::parquet::atomic::AtomicFile;
use crate::parquet::encodings::bars_properties;
use crate::parquet::sealed::{SealedWriter, keys};
use crate::run::plan::Request;

/// Bars per record batch written.
const BATCH_ROWS: usize = 64 * 1024;

/// The columns of a bars output.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let ts = || ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let f = |name: &str| Field::new(name, ArrowType::Float64, false);
            Arc::new(Schema::new(vec![
                Field::new("exchange", ArrowType::Utf8, false),
                Field::new("symbol", ArrowType::Utf8, false),
                Field::new("open_time", ts(), false),
                Field::new("close_time", ts(), false),
                f("open"),
                f("high"),
                f("low"),
                f("close"),
                f("volume"),
                f("quote_volume"),
                Field::new("trades", ArrowType::UInt64, false),
                f("buy_volume"),
                f("sell_volume"),
                Field::new("vwap", ArrowType::Float64, true),
            ]))
        })
        .clone()
}

/// The name of an interval's output: `bars-1m`, or `bars-1m-local_timestamp` with `--by
/// local_timestamp`.
pub fn kind(interval: Interval, by: BarTime) -> String {
    match by {
        BarTime::Timestamp => format!("bars-{interval}"),
        BarTime::LocalTimestamp => format!("bars-{interval}-local_timestamp"),
    }
}

/// The request an interval's merged output answers, as its footer records it: the kind (with
/// ` fill` when empty intervals are filled) in the place of a download's data type.
pub fn identity(request: &Request, kind: &str, fill: bool) -> String {
    let kind = if fill { format!("{kind} fill") } else { kind.to_string() };
    target::request_identity(request, kind)
}

/// The partition file of one symbol-day: `DIR/{kind}/exchange=E/date=D/SYMBOL.parquet`.
pub fn partition_path(dir: &Path, kind: &str, exchange: &str, date: jiff::civil::Date, symbol: &str) -> PathBuf {
    dir.join(kind)
        .join(format!("exchange={exchange}"))
        .join(format!("date={date}"))
        .join(format!("{}.parquet", fs_component(symbol)))
}

/// Accumulates bars into record batches of the output schema.
#[derive(Debug)]
pub struct BarBatcher {
    exchange: Arc<str>,
    symbol: Arc<str>,
    interval: i64,
    rows: Vec<Bar>,
}

impl BarBatcher {
    /// Bars of one symbol.
    pub fn new(exchange: &str, symbol: &str, interval: Interval) -> Self {
        Self {
            exchange: exchange.into(),
            symbol: symbol.into(),
            interval: interval.micros(),
            rows: Vec::new(),
        }
    }

    /// Adds a bar; returns a full batch when one is ready.
    pub fn push(&mut self, bar: Bar) -> Option<RecordBatch> {
        self.rows.push(bar);
        (self.rows.len() >= BATCH_ROWS).then(|| self.take())
    }

    /// Whether no bar is waiting.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The bars waiting, as a batch.
    pub fn take(&mut self) -> RecordBatch {
        let rows = std::mem::take(&mut self.rows);
        let n = rows.len();
        let f = |get: fn(&Bar) -> f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(get))) as ArrayRef;
        let ts = |v: Vec<i64>| Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) as ArrayRef;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(&*self.exchange, n))),
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(&*self.symbol, n))),
            ts(rows.iter().map(|b| b.open_time).collect()),
            ts(rows.iter().map(|b| b.open_time + self.interval).collect()),
            f(|b| b.partial.open),
            f(|b| b.partial.high),
            f(|b| b.partial.low),
            f(|b| b.partial.close),
            f(|b| b.partial.volume),
            f(|b| b.partial.quote_volume),
            Arc::new(UInt64Array::from_iter_values(rows.iter().map(|b| b.partial.trades))),
            f(|b| b.partial.buy_volume),
            f(|b| b.partial.sell_volume),
            Arc::new(Float64Array::from_iter(
                rows.iter()
                    .map(|b| if b.partial.trades == 0 { None } else { b.partial.vwap() }),
            )),
        ];
        RecordBatch::try_new(schema(), columns).expect("the bars output schema")
    }
}

/// A bars file being written: refused over another request's output, sealed, renamed into
/// place by [`Self::commit`].
pub struct BarsFile {
    path: PathBuf,
    identity: String,
    tmp: AtomicFile,
    writer: SealedWriter<std::fs::File>,
}

impl BarsFile {
    /// Starts the file at `path`, for the request `identity`.
    ///
    /// # Errors
    /// [`OutputError::Refused`] when `path` holds another request's output and not
    /// `overwrite`; I/O and encoding errors.
    pub fn create(path: &Path, identity: &str, overwrite: bool) -> Result<Self, OutputError> {
        refuse_other(path, identity, overwrite)?;
        let tmp = AtomicFile::create(path).map_err(OutputError::io("creating a file beside", path))?;
        let file = tmp.handle().map_err(OutputError::io("opening", tmp.path()))?;
        let writer = SealedWriter::new(file, schema(), bars_properties(), 1).map_err(write_err(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            identity: identity.to_string(),
            tmp,
            writer,
        })
    }

    /// Writes a batch of bars.
    ///
    /// # Errors
    /// Encoding or I/O errors.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), OutputError> {
        self.writer.write(batch).map_err(write_err(&self.path))
    }

    /// Seals the file and renames it into place.
    ///
    /// # Errors
    /// Encoding or I/O errors.
    pub fn commit(self, kind: &str, source: &str, complete: bool) -> Result<OutputResult, OutputError> {
        let rows = self.writer.stats().rows;
        let kv = vec![
            (keys::FORMAT, OUTPUT_FORMAT.to_string()),
            (keys::VERSION, crate::VERSION.to_string()),
            (keys::SOURCE, source.to_string()),
            (keys::ROWS, rows.to_string()),
            (target::keys::REQUEST, self.identity.clone()),
            (target::keys::COMPLETE, complete.to_string()),
        ];
        let (sealed, _) = self.writer.finish(kv).map_err(write_err(&self.path))?;
        self.tmp
            .commit()
            .map_err(OutputError::io("renaming into", &self.path))?;
        Ok(OutputResult {
            data_type: kind.to_string(),
            path: self.path,
            rows,
            bytes: sealed.file_bytes,
            status: OutputStatus::Written,
            chunks_from_memory: 0,
            complete,
            exported_until: None,
        })
    }
}

/// Refuses `path` when it holds another request's output (unless `overwrite`).
///
/// # Errors
/// [`OutputError::Refused`].
pub fn refuse_other(path: &Path, identity: &str, overwrite: bool) -> Result<(), OutputError> {
    match merged_holder(path, identity) {
        Holder::Other(what) if !overwrite => Err(OutputError::Refused {
            path: path.to_path_buf(),
            what,
        }),
        _ => Ok(()),
    }
}

fn write_err(path: &Path) -> impl Fn(crate::parquet::sealed::SealedError) -> OutputError {
    let path = path.to_path_buf();
    move |source| OutputError::Write {
        path: path.clone(),
        source,
    }
}
