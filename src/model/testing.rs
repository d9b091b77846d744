//! Batches for unit tests.

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};

use super::DataType;

/// A trades batch of `symbol` whose timestamps are `ts` and whose ids are `{symbol}{i}`.
pub(crate) fn trades_batch(symbol: &str, ts: &[i64]) -> RecordBatch {
    let n = ts.len();
    let t = || Arc::new(TimestampMicrosecondArray::from(ts.to_vec()).with_timezone("UTC")) as ArrayRef;
    RecordBatch::try_new(
        DataType::Trades.schema(),
        vec![
            Arc::new(StringArray::from(vec!["deribit"; n])),
            Arc::new(StringArray::from(vec![symbol; n])),
            t(),
            t(),
            Arc::new(StringArray::from(
                (0..n).map(|i| format!("{symbol}{i}")).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(vec!["buy"; n])),
            Arc::new(Float64Array::from(vec![42000.5; n])),
            Arc::new(Float64Array::from(vec![0.001; n])),
        ],
    )
    .expect("the trades schema")
}
