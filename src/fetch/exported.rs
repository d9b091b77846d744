//! Whether Tardis has finished exporting a day, from `datasets.exportedUntil` of
//! `/v1/exchanges/{exchange}` (asked once per exchange and run). A day that is not exported is
//! still served, but is never cached as complete.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};
use tokio::sync::OnceCell;
use tracing::{debug, warn};

use crate::model::{ChunkKey, day_start};
use crate::tardis::TardisClient;

/// The exported-until instant of each exchange, fetched on first use.
#[derive(Debug)]
pub(crate) struct ExportedUntil {
    client: TardisClient,
    cells: Mutex<HashMap<String, Arc<OnceCell<Option<Timestamp>>>>>,
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
        let cell = {
            let mut m = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(key.exchange.to_string()).or_default().clone()
        };
        let until = cell
            .get_or_init(|| async {
                match self.client.exported_until(&key.exchange).await {
                    Ok(t) => {
                        debug!("{}: exported until {t}", key.exchange);
                        Some(t)
                    }
                    // Tardis itself unreachable: the dataset request says so, once.
                    Err(e @ crate::tardis::HttpError::Transport { .. }) => {
                        debug!("{}: exportedUntil unavailable: {}", key.exchange, crate::error::chain(&e));
                        None
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
}
