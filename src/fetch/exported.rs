//! Whether Tardis has finished exporting a day, from `datasets.exportedUntil` of the
//! exchange's metadata, read once before the run ([`crate::run::validate`]): the fetcher asks
//! no metadata of its own. A day that is not exported is still served, but is never cached as
//! complete.

use jiff::{SignedDuration, Timestamp};

use crate::model::{ChunkKey, day_start};

/// The exported-until instant of the run's exchange, when the metadata gave it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExportedUntil(pub(crate) Option<Timestamp>);

impl ExportedUntil {
    /// Whether `key`'s day is exported and final. Without metadata, a day is taken as final a
    /// full day after it ended (exports land about 6 h after midnight UTC).
    pub(crate) fn is_exported(&self, key: &ChunkKey) -> bool {
        let day_end = day_start(key.date) + SignedDuration::from_hours(24);
        match self.0 {
            Some(t) => day_end <= t,
            None => day_end + SignedDuration::from_hours(24) <= Timestamp::now(),
        }
    }
}
