//! Derived chunks of bars: the partial bars of one trades file for one interval, as a sealed
//! chunk file (the same verification, MAC and tiers as a raw chunk), and the one pass over a
//! raw trades chunk that computes them for every interval asked.

use std::io::{Read, Seek, Write};
use std::sync::{Arc, OnceLock};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType, UInt64Type};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, TimestampMicrosecondArray, UInt64Array};
use arrow_schema::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};

use super::fold::{DayFold, Partial, Row, TradeColumns};
use crate::cache::chunk_file::{ChunkData, ChunkFileWriter, ChunkMeta};
use crate::model::{BarTime, ChunkKey, Derivation, Interval};
use crate::parquet::encodings::bars_properties;
use crate::parquet::mac::MacKey;
use crate::parquet::sealed::SealedError;

/// Rows per batch when reading trades for the fold.
const READ_BATCH_ROWS: usize = 64 * 1024;

/// The columns of a derived chunk: the start of the interval and the partial bar.
pub fn schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            let f = |name: &str| Field::new(name, ArrowType::Float64, false);
            Arc::new(Schema::new(vec![
                Field::new(
                    "open_time",
                    ArrowType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    false,
                ),
                f("open"),
                f("high"),
                f("low"),
                f("close"),
                f("volume"),
                f("quote_volume"),
                Field::new("trades", ArrowType::UInt64, false),
                f("buy_volume"),
                f("sell_volume"),
            ]))
        })
        .clone()
}

/// The rows as one batch of [`schema`].
pub fn to_batch(rows: &[Row]) -> RecordBatch {
    let col = |get: fn(&Partial) -> f64| Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, p)| get(p))));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|(t, _)| *t)).with_timezone("UTC")),
        col(|p| p.open),
        col(|p| p.high),
        col(|p| p.low),
        col(|p| p.close),
        col(|p| p.volume),
        col(|p| p.quote_volume),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|(_, p)| p.trades))),
        col(|p| p.buy_volume),
        col(|p| p.sell_volume),
    ];
    RecordBatch::try_new(schema(), columns).expect("the derived bars schema")
}

/// The rows of a batch of [`schema`].
///
/// # Errors
/// [`SealedError::Corrupt`] when the batch is not of the schema.
pub fn from_batch(batch: &RecordBatch, out: &mut Vec<Row>) -> Result<(), SealedError> {
    if batch.schema().fields() != schema().fields() {
        return Err(SealedError::corrupt("not a derived bars chunk (columns differ)"));
    }
    let f = |i: usize| batch.column(i).as_primitive::<Float64Type>().values();
    let t = batch.column(0).as_primitive::<TimestampMicrosecondType>().values();
    let trades = batch.column(7).as_primitive::<UInt64Type>().values();
    let (open, high, low, close, vol, quote, buy, sell) = (f(1), f(2), f(3), f(4), f(5), f(6), f(8), f(9));
    out.extend((0..batch.num_rows()).map(|i| {
        (
            t[i],
            Partial {
                open: open[i],
                high: high[i],
                low: low[i],
                close: close[i],
                volume: vol[i],
                quote_volume: quote[i],
                trades: trades[i],
                buy_volume: buy[i],
                sell_volume: sell[i],
            },
        )
    }));
    Ok(())
}

/// Reads every row of a derived chunk (a day's bars: at most one row per interval of the day,
/// plus the spill).
///
/// # Errors
/// Fails when the file cannot be read or is not a derived bars chunk.
pub fn read_rows(data: &ChunkData) -> Result<Vec<Row>, SealedError> {
    let mut rows = Vec::new();
    for batch in data.reader(READ_BATCH_ROWS)? {
        from_batch(&batch?, &mut rows)?;
    }
    Ok(rows)
}

/// Why a raw chunk could not be folded.
#[derive(Debug, thiserror::Error)]
pub enum DeriveError {
    /// Reading the raw chunk failed.
    #[error("reading the trades")]
    Read(#[from] SealedError),
    /// Reading the raw chunk failed while decoding.
    #[error("reading the trades")]
    Decode(#[from] arrow_schema::ArrowError),
    /// The raw chunk is not a trades chunk.
    #[error(transparent)]
    NotTrades(#[from] super::fold::NotTrades),
}

/// One pass over a raw trades chunk: the partial bars of each interval, in `intervals` order.
/// Reads only the four columns the fold needs.
///
/// # Errors
/// [`DeriveError`] when the chunk cannot be read or is not trades.
pub fn derive(
    raw: &ChunkData,
    day_start: i64,
    intervals: &[Interval],
    by: BarTime,
) -> Result<Vec<Vec<Row>>, DeriveError> {
    let full = TradeColumns::full(by);
    let projection = [full.time, full.side, full.price, full.amount];
    // The projected batch holds the columns in file order: time, side, price, amount.
    let cols = TradeColumns {
        time: 0,
        side: 1,
        price: 2,
        amount: 3,
    };
    let mut folds: Vec<DayFold> = intervals.iter().map(|i| DayFold::new(*i, day_start)).collect();
    for batch in raw.reader_of(READ_BATCH_ROWS, Some(&projection))? {
        let batch = batch?;
        for f in &mut folds {
            f.push_batch(&batch, cols)?;
        }
    }
    Ok(folds.into_iter().map(DayFold::finish).collect())
}

/// Writes the derived chunk `key` (rows from [`derive`]) and seals it; `complete` is the raw
/// chunk's (a day Tardis had not finished exporting gives an incomplete derived chunk too).
///
/// # Errors
/// Fails on an encoding or I/O error.
pub fn write<W: Write + Read + Seek + Send>(
    inner: W,
    key: &ChunkKey,
    rows: &[Row],
    complete: bool,
    mac: Option<&MacKey>,
) -> Result<ChunkMeta, SealedError> {
    debug_assert!(matches!(key.derivation, Some(Derivation::Bars { .. })));
    let mut w = ChunkFileWriter::with_schema(inner, schema(), bars_properties(), mac.map(|m| (m, key)))?;
    if !rows.is_empty() {
        w.write(&to_batch(rows))?;
    }
    let trades: u64 = rows.iter().map(|(_, p)| p.trades).sum();
    let (meta, _) = w.finish_with(key, complete, vec![("tickvault.bars.trades", trades.to_string())])?;
    Ok(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::chunk_file::verify_bytes;
    use crate::model::DataType;
    use crate::model::testing::trades_batch;
    use jiff::civil::date;

    #[test]
    fn derived_chunks_round_trip_and_verify_under_their_key() {
        let raw_key = ChunkKey::new("deribit", DataType::Trades, "BTC-PERPETUAL", date(2024, 1, 1));
        // A raw chunk file of three trades in two minutes.
        let day = raw_key.day_start_micros();
        let mut w = ChunkFileWriter::new(std::io::Cursor::new(Vec::new()), DataType::Trades).unwrap();
        w.write(&trades_batch("BTC-PERPETUAL", &[day + 1, day + 2, day + 61_000_000]))
            .unwrap();
        let (_, cur) = w.finish(&raw_key, true).unwrap();
        let raw = ChunkData::Bytes(cur.into_inner().into());
        let minute: Interval = "1m".parse().unwrap();
        let per = derive(&raw, day, &[minute, "1d".parse().unwrap()], BarTime::Timestamp).unwrap();
        assert_eq!(per[0].len(), 2);
        assert_eq!(per[1].len(), 1);
        assert_eq!(per[1][0].1.trades, 3);

        let key = raw_key.derived(Derivation::Bars {
            interval: minute,
            by: BarTime::Timestamp,
        });
        let mut buf = std::io::Cursor::new(Vec::new());
        let meta = write(&mut buf, &key, &per[0], true, None).unwrap();
        let bytes = buf.into_inner();
        assert_eq!(verify_bytes(&bytes, Some(&key)).unwrap(), meta);
        assert!(
            verify_bytes(&bytes, Some(&raw_key)).is_err(),
            "never taken for the raw chunk"
        );
        let back = read_rows(&ChunkData::Bytes(bytes.into())).unwrap();
        assert_eq!(back, per[0]);
    }
}
