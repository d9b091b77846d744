//! Whether Tardis has finished exporting a day, from `datasets.exportedUntil` of
//! `/v1/exchanges/{exchange}` (asked once per exchange and run, and again after
//! [`RECHECK_AFTER`] while a day is not exported: a long-running `tickvault serve` sees the
//! exports advance). A day that is not exported is still served, but is never cached as
//! complete.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use crate::model::{ChunkKey, day_start};
use crate::tardis::TardisClient;

/// How old an answer may be before a day it calls unexported is asked about again.
pub(crate) const RECHECK_AFTER: Duration = Duration::from_secs(300);

type Cell = Arc<OnceCell<Option<Timestamp>>>;

/// The exported-until instant of each exchange, fetched on first use.
#[derive(Debug)]
pub(crate) struct ExportedUntil {
    client: TardisClient,
    cells: Mutex<HashMap<String, (Instant, Cell)>>,
}

impl ExportedUntil {
    pub(crate) fn new(client: TardisClient) -> Self {
        Self {
            client,
            cells: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key`'s day is exported and final. If the metadata cannot be read, a day is
    /// taken as final a full day after it ended (exports land about 6 h after midnight UTC).
    pub(crate) async fn is_exported(&self, key: &ChunkKey) -> bool {
        let day_end = day_start(key.date) + SignedDuration::from_hours(24);
        let cell = self.cell(&key.exchange, |until| until.is_some_and(|t| day_end <= t));
        let until = cell
            .get_or_init(|| async {
                match self.client.exported_until(&key.exchange).await {
                    Ok(t) => {
                        debug!("{}: exported until {t}", key.exchange);
                        Some(t)
                    }
                    Err(e) => {
                        warn!(
                            "could not read datasets.exportedUntil for {} ({}); treating days as final one day after they end",
                            key.exchange,
                            crate::error::chain(&e)
                        );
                        None
                    }
                }
            })
            .await;
        match until {
            Some(t) => day_end <= *t,
            None => day_end + SignedDuration::from_hours(24) <= Timestamp::now(),
        }
    }

    /// The exchange's cell; a fresh one when the answer is older than [`RECHECK_AFTER`] and
    /// `settled` says it does not settle the question.
    fn cell(&self, exchange: &str, settled: impl Fn(Option<Timestamp>) -> bool) -> Cell {
        let mut m = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let (asked, cell) = m
            .entry(exchange.to_string())
            .or_insert_with(|| (Instant::now(), Cell::default()));
        let answer = cell.get().copied();
        if let Some(answer) = answer
            && asked.elapsed() >= RECHECK_AFTER
            && !settled(answer)
        {
            *asked = Instant::now();
            *cell = Cell::default();
        }
        cell.clone()
    }
}
