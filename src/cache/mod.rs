//! The cache tiers: one trait, one implementation per tier, and a composite.
//!
//! Every tier stores the same thing, a sealed chunk file (see [`crate::chunkfile`]), under the
//! same relative key ([`ChunkKey::cache_path`]). A tier verifies what it returns; a corrupt
//! entry is logged, dropped and reported as a miss, never returned. Lookups go memory → local
//! → remote → Tardis in [`Tiered`]; a hit back-fills the faster tiers.

mod local;
mod memory;
mod remote;
mod tiered;

use std::fmt;

use async_trait::async_trait;

pub use local::{CacheLock, LocalStore, StagedFile};
pub(crate) use local::{is_stale_temp as local_is_stale_temp, is_temp_name as local_is_temp};
pub use memory::MemoryStore;
pub use remote::{RemoteMode, RemoteOptions, RemoteStore, RemoteUrlError};
pub use tiered::{ResolveError, Resolved, Tiered, TieredOptions, UploadStats};

use crate::chunkfile::{ChunkData, ChunkMeta};
use crate::model::ChunkKey;

/// Where a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    Memory,
    Local,
    Remote,
    Tardis,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Memory => "memory",
            Tier::Local => "local",
            Tier::Remote => "remote",
            Tier::Tardis => "tardis",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verified chunk file and where its bytes are.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub key: ChunkKey,
    pub meta: ChunkMeta,
    pub data: ChunkData,
}

impl Chunk {
    /// The chunk file's bytes (reads the file for an on-disk chunk).
    ///
    /// # Errors
    /// Fails when the file cannot be read.
    pub async fn bytes(&self) -> std::io::Result<bytes::Bytes> {
        match &self.data {
            ChunkData::Bytes(b) => Ok(b.clone()),
            ChunkData::File(p) => Ok(tokio::fs::read(p).await?.into()),
        }
    }
}

/// Why a tier operation failed (a miss is not an error).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{store}: {source}")]
    Remote {
        /// The remote, without credentials.
        store: String,
        #[source]
        source: object_store::Error,
    },
    #[error("{store}: timed out after {secs} s")]
    Timeout { store: String, secs: u64 },
    #[error("{0}")]
    ChunkFile(#[from] crate::chunkfile::ChunkFileError),
    #[error("{store} is read-only")]
    ReadOnly { store: String },
}

impl StoreError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// One cache tier.
///
/// `get` returns only verified chunks; `put` stores a chunk that the caller has verified.
#[async_trait]
pub trait ChunkStore: Send + Sync + fmt::Debug {
    /// Which tier this is.
    fn tier(&self) -> Tier;

    /// A description for messages (a path or a URL without credentials).
    fn describe(&self) -> String;

    /// Looks a chunk up. `Ok(None)` is a miss (absent, incomplete or corrupt).
    ///
    /// # Errors
    /// The tier could not be asked (I/O error, remote unreachable).
    async fn get(&self, key: &ChunkKey) -> Result<Option<Chunk>, StoreError>;

    /// Stores a chunk, replacing any previous entry.
    ///
    /// # Errors
    /// The tier could not store it.
    async fn put(&self, chunk: &Chunk) -> Result<(), StoreError>;

    /// Removes a chunk; removing an absent chunk is not an error.
    ///
    /// # Errors
    /// The tier could not remove it.
    async fn delete(&self, key: &ChunkKey) -> Result<(), StoreError>;
}
