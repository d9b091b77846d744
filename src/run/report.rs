//! Progress events from the library to whoever shows them (the library never prints).

use crate::cache::Tier;
use crate::model::ChunkKey;

/// Receives progress events. All methods have empty defaults.
pub trait Reporter: Send + Sync {
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
