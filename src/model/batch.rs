//! Facts about decoded record batches that every stage needs: the `local_timestamp` column, and
//! row count, bounds and order over a stream of batches.

use arrow_array::{RecordBatch, TimestampMicrosecondArray};

use super::LOCAL_TIMESTAMP_INDEX;

/// The `local_timestamp` column of a batch of any data type.
pub fn local_ts(batch: &RecordBatch) -> Option<&TimestampMicrosecondArray> {
    batch
        .columns()
        .get(LOCAL_TIMESTAMP_INDEX)
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
}

/// Tracks row count, `local_timestamp` bounds and order over a stream of batches.
#[derive(Debug, Clone)]
pub struct BatchStats {
    /// Rows seen.
    pub rows: u64,
    /// Smallest `local_timestamp` seen (µs).
    pub min_ts: Option<i64>,
    /// Largest `local_timestamp` seen (µs).
    pub max_ts: Option<i64>,
    last_ts: Option<i64>,
    /// Whether every row so far had a `local_timestamp` no smaller than the previous row's.
    pub sorted: bool,
}

impl Default for BatchStats {
    fn default() -> Self {
        Self {
            rows: 0,
            min_ts: None,
            max_ts: None,
            last_ts: None,
            sorted: true,
        }
    }
}

impl BatchStats {
    /// The statistics of `rows` rows whose `local_timestamp` spans `[min_ts, max_ts]`.
    pub fn of(rows: u64, min_ts: Option<i64>, max_ts: Option<i64>) -> Self {
        Self {
            rows,
            min_ts,
            max_ts,
            last_ts: max_ts,
            sorted: true,
        }
    }

    /// Adds the rows another stream saw, as if they followed (order is not tracked across).
    pub fn absorb(&mut self, other: &BatchStats) {
        self.rows += other.rows;
        self.min_ts = match (self.min_ts, other.min_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max_ts = match (self.max_ts, other.max_ts) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.last_ts = other.last_ts.or(self.last_ts);
    }

    /// Adds a batch's rows.
    pub fn observe(&mut self, batch: &RecordBatch) {
        self.rows += batch.num_rows() as u64;
        let Some(ts) = local_ts(batch) else { return };
        for &v in ts.values().iter() {
            if let Some(last) = self.last_ts
                && v < last
            {
                self.sorted = false;
            }
            self.last_ts = Some(v);
            self.min_ts = Some(self.min_ts.map_or(v, |m| m.min(v)));
            self.max_ts = Some(self.max_ts.map_or(v, |m| m.max(v)));
        }
    }
}
