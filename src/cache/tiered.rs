//! The composite: memory → local → remote → Tardis, with back-fill and request coalescing.
//!
//! Concurrent requests for one chunk share a single lookup (and fetch): the first caller's
//! future is stored in an in-flight map and the others await it. A remote hit is written to the
//! local tier and kept in memory; a fetch writes the local tier, then the chunk is uploaded to
//! the remote in the background ([`super::uploader`]). Days Tardis has not finished exporting
//! stay out of the memory and remote tiers and are marked incomplete locally, so they are
//! fetched again next time; the same holds for such a day served by an edge server
//! (`tickvault serve` hands them out, marked incomplete in the chunk file itself).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tracing::{debug, warn};

use super::chunk_file::ChunkData;
use super::uploader::{UploadStats, Uploader};
use super::{Chunk, ChunkStore, LocalStore, MemoryStore, RemoteMode, RemoteStore, StoreError, Tier};
use crate::fetch::{FetchError, Fetcher};
use crate::model::ChunkKey;

/// A chunk ready for the output: its local file (or bytes) and where it came from.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The verified chunk.
    pub chunk: Chunk,
    /// The tier that served it.
    pub source: Tier,
    /// Compressed bytes downloaded from Tardis for it (0 for a cache hit).
    pub downloaded: u64,
}

/// Why a chunk could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// `--offline` and no tier holds it.
    #[error("{chunk}: not in any cache tier and --offline forbids fetching it")]
    NotCached {
        /// The chunk.
        chunk: String,
    },
    /// Fetching from Tardis failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The local tier could not store it.
    #[error("{chunk}")]
    Store {
        /// The chunk.
        chunk: String,
        #[source]
        /// The cause.
        source: StoreError,
    },
}

type Flight = Shared<BoxFuture<'static, Result<Resolved, Arc<ResolveError>>>>;

/// Builds a [`Tiered`]: the local tier is required, the others optional.
#[derive(Debug)]
pub struct TieredBuilder {
    local: LocalStore,
    memory: Option<MemoryStore>,
    remote: Option<RemoteStore>,
    fetcher: Option<Arc<Fetcher>>,
    refresh: bool,
    publish_local: bool,
}

impl TieredBuilder {
    /// Uploads a local hit the remote lacks (one `HEAD` per local hit): a sharded worker
    /// killed before its uploads finished publishes its chunks when run again, so the final
    /// run finds every chunk in the remote.
    #[must_use]
    pub fn publish_local(mut self, on: bool) -> Self {
        self.publish_local = on;
        self
    }

    /// Adds the memory tier.
    #[must_use]
    pub fn memory(mut self, memory: Option<MemoryStore>) -> Self {
        self.memory = memory;
        self
    }

    /// Adds the remote tier.
    #[must_use]
    pub fn remote(mut self, remote: Option<RemoteStore>) -> Self {
        self.remote = remote;
        self
    }

    /// Fetches what no tier holds from Tardis; without a fetcher such a chunk fails
    /// ([`ResolveError::NotCached`], as `--offline` wants).
    #[must_use]
    pub fn fetcher(mut self, fetcher: Option<Arc<Fetcher>>) -> Self {
        self.fetcher = fetcher;
        self
    }

    /// Skips the tiers: fetch every chunk again and overwrite the tiers (`--refresh`).
    #[must_use]
    pub fn refresh(mut self, refresh: bool) -> Self {
        self.refresh = refresh;
        self
    }

    /// The composite.
    pub fn build(self) -> Arc<Tiered> {
        let uploader = self
            .remote
            .as_ref()
            .filter(|r| r.mode() == RemoteMode::ReadWrite)
            .map(|r| Uploader::start(r.clone()));
        Arc::new(Tiered {
            tiers: Arc::new(Tiers {
                memory: self.memory,
                local: self.local,
                remote: self.remote,
                fetcher: self.fetcher,
                refresh: self.refresh,
                publish_local: self.publish_local,
                uploader: Mutex::new(uploader),
                lookups: AtomicU64::new(0),
            }),
            joins: AtomicU64::new(0),
            inflight: Arc::default(),
        })
    }
}

/// The tiers of one run, in lookup order, and the fetcher behind them, with the lookups in
/// flight.
pub struct Tiered {
    tiers: Arc<Tiers>,
    /// A lookup's future holds the tiers and a weak reference to this map (never the
    /// `Tiered`), so an abandoned lookup is dropped with the map, releasing what it holds
    /// (its staged file): no reference cycle keeps it alive.
    inflight: Arc<Mutex<HashMap<ChunkKey, Flight>>>,
    /// Resolves that joined a lookup already in flight.
    joins: AtomicU64,
}

struct Tiers {
    memory: Option<MemoryStore>,
    local: LocalStore,
    remote: Option<RemoteStore>,
    fetcher: Option<Arc<Fetcher>>,
    refresh: bool,
    /// Upload local hits the remote lacks.
    publish_local: bool,
    uploader: Mutex<Option<Uploader>>,
    /// Lookups that actually ran (not coalesced).
    lookups: AtomicU64,
}

impl std::fmt::Debug for Tiered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiered")
            .field("local", &self.tiers.local)
            .field("remote", &self.tiers.remote)
            .field("refresh", &self.tiers.refresh)
            .finish_non_exhaustive()
    }
}

impl Tiered {
    /// A builder over the local tier.
    pub fn builder(local: LocalStore) -> TieredBuilder {
        TieredBuilder {
            local,
            memory: None,
            remote: None,
            fetcher: None,
            refresh: false,
            publish_local: false,
        }
    }

    /// Lookups that ran (coalesced requests count once).
    pub fn lookups(&self) -> u64 {
        self.tiers.lookups.load(Ordering::Relaxed)
    }

    /// Resolves that joined a lookup already in flight instead of starting one.
    pub fn joins(&self) -> u64 {
        self.joins.load(Ordering::Relaxed)
    }

    /// Resolves a chunk through the tiers, fetching it when no tier holds it. Concurrent calls
    /// for the same key share one lookup.
    ///
    /// # Errors
    /// [`ResolveError`]: offline miss, fetch failure, or a local store failure.
    pub async fn resolve(&self, key: &ChunkKey) -> Result<Resolved, Arc<ResolveError>> {
        self.resolve_joined(key).await.0
    }

    /// [`Self::resolve`], also saying whether this call joined a lookup already in flight
    /// (`true`) rather than running its own.
    pub async fn resolve_joined(&self, key: &ChunkKey) -> (Result<Resolved, Arc<ResolveError>>, bool) {
        let (flight, joined) = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get(key) {
                Some(f) => {
                    self.joins.fetch_add(1, Ordering::Relaxed);
                    (f.clone(), true)
                }
                None => {
                    let tiers = self.tiers.clone();
                    let map = Arc::downgrade(&self.inflight);
                    let k = key.clone();
                    let f = async move {
                        let r = tiers.lookup(&k).await.map_err(Arc::new);
                        if let Some(map) = map.upgrade() {
                            map.lock().unwrap_or_else(|e| e.into_inner()).remove(&k);
                        }
                        r
                    }
                    .boxed()
                    .shared();
                    inflight.insert(key.clone(), f.clone());
                    (f, false)
                }
            }
        };
        (flight.await, joined)
    }

    /// What the memory or local tier holds for `key`, complete, without asking the remote or
    /// fetching (to answer `HEAD`).
    pub async fn peek(&self, key: &ChunkKey) -> Option<Resolved> {
        let hit = |chunk, source| Resolved {
            chunk,
            source,
            downloaded: 0,
        };
        if let Some(m) = &self.tiers.memory
            && let Ok(Some(c)) = m.get(key).await
        {
            return Some(hit(c, Tier::Memory));
        }
        match self.tiers.local.get(key).await {
            Ok(Some(c)) => Some(hit(c, Tier::Local)),
            _ => None,
        }
    }

    /// What the tiers hold for `key` (memory, local, then remote, back-filling the faster
    /// ones), complete, without fetching; `None` with `--refresh`. Derived chunks are looked
    /// up this way: they are computed, never fetched.
    pub async fn cached(&self, key: &ChunkKey) -> Option<Resolved> {
        if self.tiers.refresh {
            return None;
        }
        match self.tiers.lookup_tiers(key).await {
            Ok(Some(r)) if r.chunk.meta.complete => Some(r),
            _ => None,
        }
    }

    /// Takes in a complete chunk a client stored in the local tier (a `PUT` to the edge
    /// server): replaces the memory tier's copy and uploads it to the remote.
    pub async fn accept(&self, chunk: &Chunk) {
        if let Some(m) = &self.tiers.memory {
            let _ = m.delete(&chunk.key).await;
        }
        self.tiers.remember(chunk).await;
        self.tiers.upload(chunk).await;
    }

    /// The decoded batches of `key`, if the memory tier holds them.
    pub async fn decoded(&self, key: &ChunkKey) -> Option<super::Batches> {
        match &self.tiers.memory {
            Some(m) => m.decoded(key).await,
            None => None,
        }
    }

    /// Waits for the queued uploads; call once, before exiting.
    pub async fn finish(&self) -> UploadStats {
        let uploader = self.tiers.uploader.lock().unwrap_or_else(|e| e.into_inner()).take();
        match uploader {
            Some(u) => u.finish().await,
            None => UploadStats::default(),
        }
    }
}

impl Tiers {
    async fn lookup(&self, key: &ChunkKey) -> Result<Resolved, ResolveError> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        if !self.refresh
            && let Some(hit) = self.lookup_tiers(key).await?
        {
            return Ok(hit);
        }
        // A derived chunk (bars) is computed by its command from the raw chunk, never
        // fetched: an edge server answers 404 for one it does not hold.
        let Some(fetcher) = self.fetcher.as_ref().filter(|_| key.derivation.is_none()) else {
            return Err(ResolveError::NotCached { chunk: key.to_string() });
        };
        let store_err = |source| ResolveError::Store {
            chunk: key.to_string(),
            source,
        };
        // One fetch per chunk across processes: wait our turn (probes first, holding nothing),
        // take the key's lock, and look again: another process may have just stored it.
        fetcher.wait_turn(key).await;
        let (lock, waited) = self.local.lock(key).await.map_err(store_err)?;
        if !self.refresh
            && let Ok(Some(c)) = self.local.get(key).await
        {
            debug!(
                "{key}: stored by another process{}",
                if waited { " while we waited" } else { "" }
            );
            self.remember(&c).await;
            return Ok(Resolved {
                chunk: c,
                source: Tier::Local,
                downloaded: 0,
            });
        }
        let staged = self.local.stage(key).map_err(store_err)?;
        let fetched = fetcher.fetch(key, staged.path()).await?;
        let path = staged
            .commit()
            .map_err(|e| store_err(StoreError::io(format!("storing {key}"), e)))?;
        drop(lock);
        let chunk = Chunk {
            key: key.clone(),
            meta: fetched.meta,
            data: ChunkData::File(path.into()),
        };
        if chunk.meta.complete {
            match (&self.memory, fetched.decoded) {
                (Some(m), Some(batches)) => m.put_decoded(&chunk, batches).await,
                _ => self.remember(&chunk).await,
            }
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

    /// Memory, then local, then remote (back-filling local and memory).
    async fn lookup_tiers(&self, key: &ChunkKey) -> Result<Option<Resolved>, ResolveError> {
        let hit = |chunk: Chunk, source| Resolved {
            chunk,
            source,
            downloaded: 0,
        };
        if let Some(m) = &self.memory
            && let Ok(Some(c)) = m.get(key).await
        {
            return Ok(Some(hit(c, Tier::Memory)));
        }
        match self.local.get(key).await {
            Ok(Some(c)) => {
                self.remember(&c).await;
                self.publish(&c).await;
                return Ok(Some(hit(c, Tier::Local)));
            }
            Ok(None) => {}
            Err(e) => warn!(
                "local cache lookup of {key} failed ({}); treating it as a miss",
                crate::error::chain(&e)
            ),
        }
        let Some(r) = &self.remote else { return Ok(None) };
        if r.is_disabled() {
            return Ok(None);
        }
        let store_err = |source| ResolveError::Store {
            chunk: key.to_string(),
            source,
        };
        // The object streams straight into a staged local file (the back-fill), verified
        // there: never held in memory, renamed into the local tier only when sound.
        let staged = self.local.stage(key).map_err(store_err)?;
        match r.get_into_any(key, staged.path()).await {
            Ok(Some(meta)) => {
                let path = staged
                    .commit()
                    .map_err(|e| store_err(StoreError::io(format!("storing {key}"), e)))?;
                let local = Chunk {
                    key: key.clone(),
                    meta,
                    data: ChunkData::File(path.into()),
                };
                // A day Tardis had not finished exporting (from an edge server) stays marked
                // incomplete in its file, so the local tier treats it as a miss next time, and
                // memory keeps none.
                if local.meta.complete {
                    self.remember(&local).await;
                } else {
                    warn!(
                        "{key}: Tardis has not finished exporting this day; the copy from {} is used now but not cached as complete",
                        r.describe()
                    );
                }
                Ok(Some(hit(local, Tier::Remote)))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                warn!(
                    "remote cache {}: lookup of {key} failed ({}); trying the next tier",
                    r.describe(),
                    crate::error::chain(&e)
                );
                Ok(None)
            }
        }
    }

    async fn remember(&self, chunk: &Chunk) {
        if let Some(m) = &self.memory
            && let Err(e) = m.put(chunk).await
        {
            debug!("memory tier refused {}: {e}", chunk.key);
        }
    }

    /// With [`TieredBuilder::publish_local`]: queues a complete local hit for upload when the
    /// remote does not hold it.
    async fn publish(&self, chunk: &Chunk) {
        let Some(r) = self.remote.as_ref().filter(|r| self.publish_local && !r.is_disabled()) else {
            return;
        };
        if chunk.meta.complete && r.mode() == RemoteMode::ReadWrite && matches!(r.exists(&chunk.key).await, Ok(false)) {
            debug!(
                "{}: in the local cache only; uploading it to {}",
                chunk.key,
                r.describe()
            );
            self.upload(chunk).await;
        }
    }

    async fn upload(&self, chunk: &Chunk) {
        let tx = self
            .uploader
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(Uploader::sender);
        if let Some(tx) = tx {
            // A full queue makes the fetch wait: uploads are bounded, never dropped.
            let _ = tx.send(chunk.clone()).await;
        }
    }
}
