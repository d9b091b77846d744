//! The cache tiers: one trait, one implementation per tier, and a composite.
//!
//! Every tier stores the same thing, a sealed chunk file ([`chunk_file`]), under the same
//! relative key ([`ChunkKey::cache_path`]). A tier verifies what it returns; a corrupt entry is
//! logged, dropped and reported as a miss, never returned. Lookups go memory → local → remote →
//! Tardis in [`Tiered`]; a hit back-fills the faster tiers.

pub mod chunk_file;
mod chunk_lock;
mod http_put;
mod local;
mod lock;
mod memory;
mod remote;
pub(crate) mod store_url;
pub mod temps;
mod tiered;
mod uploader;

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;

pub use chunk_lock::ChunkLock;
pub use local::LocalStore;
pub use lock::CacheLock;
pub use memory::{Batches, MemoryStore};
pub use remote::{RemoteMode, RemoteOptions, RemoteStore, RemoteUrlError};
pub use tiered::{ResolveError, Resolved, Tiered, TieredBuilder};
pub use uploader::UploadStats;

use crate::cache::chunk_file::{ChunkData, ChunkMeta};
use crate::model::ChunkKey;
use crate::parquet::sealed::SealedError;

/// Where a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// The in-process memory tier.
    Memory,
    /// The local cache directory.
    Local,
    /// The shared remote cache.
    Remote,
    /// Fetched from the Tardis datasets API.
    Tardis,
}

impl Tier {
    /// The tier's name in summaries.
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
    /// The chunk's key.
    pub key: ChunkKey,
    /// What the chunk file says about itself.
    pub meta: ChunkMeta,
    /// Where its bytes are.
    pub data: ChunkData,
}

impl Chunk {
    /// The chunk file's bytes (reads the file for an on-disk chunk).
    ///
    /// # Errors
    /// Fails when the file cannot be read.
    pub async fn bytes(&self) -> std::io::Result<bytes::Bytes> {
        match (&self.data, self.data.path()) {
            (ChunkData::Bytes(b), _) => Ok(b.clone()),
            (_, p) => Ok(tokio::fs::read(p.unwrap_or(std::path::Path::new(""))).await?.into()),
        }
    }
}

/// What a tier holds for a key, checked against the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Nothing stored.
    Missing,
    /// A sound chunk file (complete or not: see [`ChunkMeta::complete`]).
    Sound(ChunkMeta),
    /// Something that is not a sound chunk file for the key, and why.
    Corrupt(String),
}

/// One stored entry, as a listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The chunk key the entry is stored under.
    pub key: ChunkKey,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its last use (hits refresh it), where the tier records one.
    pub used: Option<SystemTime>,
}

/// Why a tier operation failed (a miss is not an error).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A local file operation failed.
    #[error("{what}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        #[source]
        /// The cause.
        source: std::io::Error,
    },
    /// The remote store answered with an error.
    #[error("{store}")]
    Remote {
        /// The remote, without credentials.
        store: String,
        #[source]
        /// The cause.
        source: object_store::Error,
    },
    /// The remote did not answer in time.
    #[error("{store}: timed out after {secs} s")]
    Timeout {
        /// The remote, without credentials.
        store: String,
        /// The limit.
        secs: u64,
    },
    /// A chunk file could not be read or written.
    #[error("chunk file")]
    ChunkFile(#[from] SealedError),
    /// A transfer from the remote was slower than the minimum speed over a whole window.
    #[error("{store}: too slow: {bytes} bytes in {secs} s (--min-transfer-speed)")]
    TooSlow {
        /// The remote, without credentials.
        store: String,
        /// Bytes received in the window.
        bytes: u64,
        /// The window.
        secs: u64,
    },
    /// An upload refused because the chunk file carries no valid team MAC.
    #[error(
        "{chunk}: not uploaded: its chunk file carries no valid team MAC (fetched before TICKVAULT_REMOTE_CACHE_SECRET was set?)"
    )]
    NoMac {
        /// The chunk.
        chunk: String,
    },
    /// A write to a read-only remote.
    #[error("{store} is read-only")]
    ReadOnly {
        /// The remote, without credentials.
        store: String,
    },
    /// The tier cannot list its entries (a plain WebDAV server).
    #[error("{store}: cannot list entries")]
    CannotList {
        /// The remote, without credentials.
        store: String,
        #[source]
        /// The cause.
        source: Box<StoreError>,
    },
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
/// `get` returns only verified, complete chunks; `put` stores a chunk that the caller has
/// verified; `check` and `list` serve maintenance.
#[async_trait]
pub trait ChunkStore: Send + Sync + fmt::Debug {
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

    /// Verifies what is stored for `key` without serving or removing it.
    ///
    /// # Errors
    /// The tier could not be asked.
    async fn check(&self, key: &ChunkKey) -> Result<Check, StoreError>;

    /// Every entry stored, in key order.
    ///
    /// # Errors
    /// The tier cannot be listed ([`StoreError::CannotList`]) or read.
    async fn list(&self) -> Result<Vec<Entry>, StoreError>;
}
