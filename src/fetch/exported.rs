//! Whether Tardis has finished exporting a day, from `datasets.exportedUntil` of the
//! exchange's metadata. A download reads it once before the run ([`crate::run::validate`]) and
//! the fetcher asks no metadata of its own ([`ExportedUntil::Known`]). A long-running
//! `tickvault serve` fetches for any exchange, for weeks: it asks each exchange's metadata on
//! first use, and again after [`RECHECK_AFTER`] while the answer calls a day unexported, so it
//! sees the exports advance ([`ExportedUntil::Live`]). A day that is not exported is still
//! served, but is never cached as complete.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use crate::metadata::{Freshness, Metadata};
use crate::model::{ChunkKey, day_start};

/// How old an answer may be before a day it calls unexported is asked about again.
pub(crate) const RECHECK_AFTER: Duration = Duration::from_secs(300);

type Cell = Arc<OnceCell<Option<Timestamp>>>;

/// Where the exported-until instant comes from.
#[derive(Debug)]
pub(crate) enum ExportedUntil {
    /// The run's exchange's, when the metadata gave it.
    Known(Option<Timestamp>),
    /// Each exchange's, asked of the metadata API as chunks come.
    Live(Live),
}

/// Each exchange's exported-until instant, asked on first use and rechecked.
#[derive(Debug)]
pub(crate) struct Live {
    metadata: Arc<Metadata>,
    cells: Mutex<HashMap<String, (Instant, Cell)>>,
}

impl ExportedUntil {
    /// Asks `metadata` per exchange (see [`Live`]).
    pub(crate) fn live(metadata: Arc<Metadata>) -> Self {
        Self::Live(Live {
            metadata,
            cells: Mutex::default(),
        })
    }

    /// Whether `key`'s day is exported and final. Without metadata, a day is taken as final a
    /// full day after it ended (exports land about 6 h after midnight UTC).
    pub(crate) async fn is_exported(&self, key: &ChunkKey) -> bool {
        let until = match self {
            Self::Known(until) => *until,
            Self::Live(live) => live.exported_until(key).await,
        };
        exported(key, until)
    }
}

fn exported(key: &ChunkKey, until: Option<Timestamp>) -> bool {
    let day_end = day_start(key.date) + SignedDuration::from_hours(24);
    match until {
        Some(t) => day_end <= t,
        None => day_end + SignedDuration::from_hours(24) <= Timestamp::now(),
    }
}

impl Live {
    async fn exported_until(&self, key: &ChunkKey) -> Option<Timestamp> {
        let cell = self.cell(key);
        *cell
            .get_or_init(|| async {
                match self.metadata.exchange(&key.exchange, Freshness::Now).await {
                    Ok(doc) => {
                        let until = doc.value.exported_until();
                        debug!("{}: exported until {until:?}", key.exchange);
                        until
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
            .await
    }

    /// The exchange's cell; a fresh one when its answer is older than [`RECHECK_AFTER`] and
    /// calls `key`'s day unexported.
    fn cell(&self, key: &ChunkKey) -> Cell {
        let mut m = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        let (asked, cell) = m
            .entry(key.exchange.to_string())
            .or_insert_with(|| (Instant::now(), Cell::default()));
        if let Some(until) = cell.get().copied()
            && asked.elapsed() >= RECHECK_AFTER
            && !exported(key, until)
        {
            *asked = Instant::now();
            *cell = Cell::default();
        }
        cell.clone()
    }
}
