//! The composite: memory → local → remote → Tardis, with back-fill and request coalescing.
//!
//! Concurrent requests for one chunk share a single lookup (and fetch): the first caller's
//! future is stored in an in-flight map and the others await it. A remote hit is written to
//! the local tier and kept in memory; a fetch writes the local tier, then the chunk is uploaded
//! to the remote in the background (a bounded queue, awaited by [`Tiered::finish`]; failures
//! are warnings). Days Tardis has not finished exporting stay out of the memory and remote
//! tiers and are marked incomplete locally, so they are fetched again next time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::{Chunk, ChunkStore, LocalStore, MemoryStore, RemoteMode, RemoteStore, StoreError, Tier};
use crate::chunkfile::ChunkData;
use crate::fetch::{Fetcher, ProbeTicket};
use crate::model::ChunkKey;
use crate::tardis::FetchError;

/// Uploads queued before a fetch waits for the queue to drain.
const UPLOAD_QUEUE: usize = 64;
/// Uploads running at once.
const UPLOADS_IN_FLIGHT: usize = 4;

/// Behaviour switches of the composite.
#[derive(Debug, Clone, Copy, Default)]
pub struct TieredOptions {
    /// Never contact Tardis: a chunk no tier holds fails.
    pub offline: bool,
    /// Skip the tiers, fetch from Tardis and overwrite every tier.
    pub refresh: bool,
}

/// A chunk ready for the output: its local file (or bytes) and where it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub chunk: Chunk,
    pub source: Tier,
    /// Compressed bytes downloaded from Tardis for it (0 for a cache hit).
    pub downloaded: u64,
}

/// Why a chunk could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("{chunk}: not in any cache tier and --offline forbids fetching it")]
    NotCached { chunk: String },
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{chunk}: {source}")]
    Store {
        chunk: String,
        #[source]
        source: StoreError,
    },
}

type Flight = Shared<BoxFuture<'static, Result<Resolved, Arc<ResolveError>>>>;

/// Counts of the background uploads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UploadStats {
    pub uploaded: u64,
    pub failed: u64,
}

struct Uploader {
    tx: mpsc::Sender<Chunk>,
    done: tokio::task::JoinHandle<UploadStats>,
}

impl Uploader {
    fn start(remote: RemoteStore) -> Self {
        let (tx, mut rx) = mpsc::channel::<Chunk>(UPLOAD_QUEUE);
        let done = tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(UPLOADS_IN_FLIGHT));
            let mut tasks = JoinSet::new();
            while let Some(chunk) = rx.recv().await {
                let permit = slots.clone().acquire_owned().await.expect("never closed");
                let remote = remote.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    match remote.put(&chunk).await {
                        Ok(()) => {
                            debug!("uploaded {} to {}", chunk.key, remote.describe());
                            true
                        }
                        Err(e) => {
                            warn!(
                                "could not upload {} to remote cache {}: {e}",
                                chunk.key,
                                remote.describe()
                            );
                            false
                        }
                    }
                });
            }
            let mut stats = UploadStats::default();
            while let Some(r) = tasks.join_next().await {
                if r.unwrap_or(false) {
                    stats.uploaded += 1;
                } else {
                    stats.failed += 1;
                }
            }
            stats
        });
        Self { tx, done }
    }
}

/// The tiers of one run, in lookup order, and the fetcher behind them.
pub struct Tiered {
    memory: Option<MemoryStore>,
    local: LocalStore,
    remote: Option<RemoteStore>,
    fetcher: Option<Arc<Fetcher>>,
    options: TieredOptions,
    uploader: Mutex<Option<Uploader>>,
    inflight: Mutex<HashMap<ChunkKey, Flight>>,
    /// Lookups that actually ran (not coalesced), for tests and the summary.
    lookups: AtomicU64,
}

impl std::fmt::Debug for Tiered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiered")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Tiered {
    /// `fetcher` may be `None` only when `options.offline`.
    pub fn new(
        memory: Option<MemoryStore>,
        local: LocalStore,
        remote: Option<RemoteStore>,
        fetcher: Option<Arc<Fetcher>>,
        options: TieredOptions,
    ) -> Arc<Self> {
        let uploader = remote
            .as_ref()
            .filter(|r| r.mode() == RemoteMode::ReadWrite)
            .map(|r| Uploader::start(r.clone()));
        Arc::new(Self {
            memory,
            local,
            remote,
            fetcher,
            options,
            uploader: Mutex::new(uploader),
            inflight: Mutex::new(HashMap::new()),
            lookups: AtomicU64::new(0),
        })
    }

    pub fn local(&self) -> &LocalStore {
        &self.local
    }

    pub fn memory(&self) -> Option<&MemoryStore> {
        self.memory.as_ref()
    }

    pub fn remote(&self) -> Option<&RemoteStore> {
        self.remote.as_ref()
    }

    /// Lookups that ran (coalesced requests count once).
    pub fn lookups(&self) -> u64 {
        self.lookups.load(Ordering::Relaxed)
    }

    /// Resolves a chunk through the tiers, fetching it when no tier holds it. Concurrent calls
    /// for the same key share one lookup.
    ///
    /// # Errors
    /// [`ResolveError`]: offline miss, fetch failure, or a local store failure.
    pub async fn resolve(
        self: &Arc<Self>,
        key: &ChunkKey,
        probe: Option<ProbeTicket>,
    ) -> Result<Resolved, Arc<ResolveError>> {
        let flight = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(key) {
                Some(f) => f.clone(),
                None => {
                    let this = self.clone();
                    let k = key.clone();
                    let f = async move {
                        let r = this.lookup(&k, probe).await.map_err(Arc::new);
                        this.inflight.lock().unwrap_or_else(|e| e.into_inner()).remove(&k);
                        r
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        flight.await
    }

    async fn lookup(&self, key: &ChunkKey, probe: Option<ProbeTicket>) -> Result<Resolved, ResolveError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let hit = |chunk: Chunk, source| Resolved {
            chunk,
            source,
            downloaded: 0,
        };
        if !self.options.refresh {
            if let Some(m) = &self.memory
                && let Ok(Some(c)) = m.get(key).await
            {
                return Ok(hit(c, Tier::Memory));
            }
            match self.local.get(key).await {
                Ok(Some(c)) => {
                    self.remember(&c).await;
                    return Ok(hit(c, Tier::Local));
                }
                Ok(None) => {}
                Err(e) => warn!("local cache lookup of {key} failed ({e}); treating it as a miss"),
            }
            if let Some(r) = &self.remote {
                match r.get(key).await {
                    Ok(Some(c)) => {
                        // Back-fill: the local tier (the output reads from it) and memory.
                        self.local.put(&c).await.map_err(|e| ResolveError::Store {
                            chunk: key.to_string(),
                            source: e,
                        })?;
                        self.remember(&c).await;
                        let local = Chunk {
                            data: ChunkData::File(self.local.path(key).into()),
                            ..c
                        };
                        return Ok(hit(local, Tier::Remote));
                    }
                    Ok(None) => {}
                    Err(e) => warn!(
                        "remote cache {}: lookup of {key} failed ({e}); trying the next tier",
                        r.describe()
                    ),
                }
            }
        }
        if self.options.offline {
            return Err(ResolveError::NotCached { chunk: key.to_string() });
        }
        let fetcher = self.fetcher.as_ref().expect("a fetcher is configured unless offline");
        let complete = fetcher.is_exported(key).await;
        let store_err = |e| ResolveError::Store {
            chunk: key.to_string(),
            source: e,
        };
        let staged = self.local.stage(key).map_err(store_err)?;
        let fetched = fetcher.fetch(key, staged.path(), complete, probe).await?;
        let path = staged.commit().map_err(store_err)?;
        let chunk = Chunk {
            key: key.clone(),
            meta: fetched.meta,
            data: ChunkData::File(path.into()),
        };
        if complete {
            self.remember(&chunk).await;
            self.upload(&chunk).await;
        } else {
            warn!("{key}: Tardis has not finished exporting this day; it is used now but not cached as complete");
        }
        Ok(Resolved {
            chunk,
            source: Tier::Tardis,
            downloaded: fetched.body_bytes,
        })
    }

    async fn remember(&self, chunk: &Chunk) {
        if let Some(m) = &self.memory
            && let Err(e) = m.put(chunk).await
        {
            debug!("memory tier refused {}: {e}", chunk.key);
        }
    }

    async fn upload(&self, chunk: &Chunk) {
        let tx = self
            .uploader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|u| u.tx.clone());
        if let Some(tx) = tx {
            // A full queue makes the fetch wait: uploads are bounded, never dropped.
            let _ = tx.send(chunk.clone()).await;
        }
    }

    /// Waits for the queued uploads; call once, before exiting.
    pub async fn finish(&self) -> UploadStats {
        let uploader = self.uploader.lock().unwrap_or_else(|e| e.into_inner()).take();
        match uploader {
            Some(u) => {
                drop(u.tx);
                u.done.await.unwrap_or_default()
            }
            None => UploadStats::default(),
        }
    }
}
