//! Progress events from the library to whoever shows them (the library never prints).

use std::sync::Arc;

use crate::cache::Tier;
use crate::fetch::FetchStats;
use crate::model::ChunkKey;

/// Receives progress events. All methods have empty defaults.
pub trait Reporter: Send + Sync {
    /// The fetcher's counters, read on every tick (bytes move while bodies stream).
    fn track_traffic(&self, _stats: Arc<FetchStats>) {}
    /// The run will resolve `chunks` chunks.
    fn start(&self, _chunks: u64) {}
    /// A chunk is ready.
    fn chunk_done(&self, _key: &ChunkKey, _source: Tier, _downloaded_bytes: u64) {}
    /// A chunk failed for good.
    fn chunk_failed(&self, _key: &ChunkKey, _error: &str) {}
    /// An output is being written.
    fn writing(&self, _what: &str) {}
    /// The run is over (clear any bar).
    fn finish(&self) {}
}
