//! Probes: the bulk of a run's downloads waits until the "probe" chunks (the last and first day
//! of each symbol and data type) have been answered, as the official clients do, so a bad key
//! or a missing symbol shows up in seconds, not after the whole range was requested.
//!
//! The run names its probes before any chunk is resolved ([`Probes::set`]); each holds a ticket
//! that arrives when Tardis has answered its request (the status is known), or when the chunk
//! was resolved without a fetch (a cache hit, a failure before sending).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::model::ChunkKey;

/// The chunks that must be answered before the others are fetched.
#[derive(Debug, Default)]
pub(crate) struct Probes {
    pending: AtomicUsize,
    notify: Notify,
    tickets: Mutex<HashSet<ChunkKey>>,
}

impl Probes {
    /// Names the probe chunks; until each arrives, other fetches wait.
    pub(crate) fn set(&self, keys: impl IntoIterator<Item = ChunkKey>) {
        let mut tickets = self.tickets.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            if tickets.insert(key) {
                self.pending.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Whether `key` is a probe that has not arrived yet.
    pub(crate) fn is_pending(&self, key: &ChunkKey) -> bool {
        self.tickets.lock().unwrap_or_else(|e| e.into_inner()).contains(key)
    }

    /// Marks `key` answered (a no-op for other keys and for keys already answered).
    pub(crate) fn arrive(&self, key: &ChunkKey) {
        let removed = self.tickets.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
        if removed {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            self.notify.notify_waiters();
        }
    }

    /// Waits until every probe has arrived.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DataType;
    use std::sync::Arc;
    use std::time::Duration;

    fn key(day: i8) -> ChunkKey {
        ChunkKey::new("x", DataType::Trades, "A", jiff::civil::date(2024, 1, day))
    }

    #[tokio::test]
    async fn the_others_wait_until_every_probe_arrived() {
        let probes = Arc::new(Probes::default());
        probes.set([key(1), key(4)]);
        assert!(probes.is_pending(&key(1)) && !probes.is_pending(&key(2)));
        let waiter = tokio::spawn({
            let probes = probes.clone();
            async move { probes.wait().await }
        });
        probes.arrive(&key(1));
        probes.arrive(&key(1));
        probes.arrive(&key(2));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one probe is still out");
        probes.arrive(&key(4));
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn without_probes_nothing_waits() {
        let probes = Probes::default();
        tokio::time::timeout(Duration::from_secs(1), probes.wait())
            .await
            .unwrap();
    }
}
