//! L3: a remote edge cache shared by a team (WebDAV/HTTP, S3, GCS, Azure, a local path).
//!
//! Same relative keys as the local tier, under the URL given by `--remote-cache`. Built on
//! object_store: `http(s)://` uses GET/HEAD/PUT (nginx's dav module is the reference server),
//! `s3://`, `gs://` and `az://` take credentials from their usual environment variables
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), `file://` is a directory. An optional bearer token
//! (`TICKVAULT_REMOTE_CACHE_TOKEN`) is sent to HTTP remotes. Every operation has a timeout;
//! after [`FAILURES_BEFORE_DISABLE`] consecutive failures the remote is skipped for the rest of
//! the run, so a dead remote costs a few seconds, not one timeout per chunk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncReadExt;
use tracing::warn;
use url::Url;

use super::chunk_file::{ChunkData, ChunkMeta, verify_bytes};
use super::store_url::{self, StoreOptions};
use super::{Check, Chunk, ChunkStore, Entry, StoreError};
use crate::model::{CACHE_LAYOUT_VERSION, ChunkKey};
use crate::parquet::sealed::SealedError;
use crate::tardis::{Secret, redact_url};

/// Consecutive failures after which the remote is skipped for the rest of the run.
pub const FAILURES_BEFORE_DISABLE: u32 = 3;
/// Files above this size are uploaded in parts where the store supports it.
const MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;
const PART_SIZE: usize = 16 * 1024 * 1024;

/// Whether this run may write to the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteMode {
    /// Read, and upload what this run fetched.
    #[default]
    ReadWrite,
    /// Only read (e.g. untrusted CI jobs that must not publish).
    ReadOnly,
}

impl std::str::FromStr for RemoteMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read-write" => Ok(Self::ReadWrite),
            "read-only" => Ok(Self::ReadOnly),
            other => Err(format!(
                "invalid remote cache mode '{other}' (expected read-write or read-only)"
            )),
        }
    }
}

/// How to reach the remote.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The URL, without credentials.
    pub url: Url,
    /// Bearer token for HTTP remotes.
    pub token: Option<Secret>,
    /// Whether this run may write to the remote.
    pub mode: RemoteMode,
    /// Limit on one request (a GET of a whole chunk, a PUT).
    pub timeout: Duration,
    /// Limit on connecting.
    pub connect_timeout: Duration,
}

/// The remote tier.
#[derive(Debug, Clone)]
pub struct RemoteStore {
    store: Arc<dyn ObjectStore>,
    shown: String,
    mode: RemoteMode,
    timeout: Duration,
    failures: Arc<AtomicU32>,
    disabled: Arc<AtomicBool>,
    supports_multipart: bool,
}

/// Why a remote cache URL was refused.
#[derive(Debug, thiserror::Error)]
#[error("invalid --remote-cache '{url}': {reason}")]
pub struct RemoteUrlError {
    /// The URL, without credentials.
    pub url: String,
    /// Why it was refused.
    pub reason: String,
}

impl RemoteStore {
    /// Checks a URL as [`Self::open`] would, without building a client or touching the disk.
    ///
    /// # Errors
    /// An unsupported scheme or a URL that cannot name a store.
    pub fn check_url(url: &Url) -> Result<(), RemoteUrlError> {
        store_url::check(url).map_err(|reason| RemoteUrlError {
            url: redact_url(url),
            reason,
        })
    }

    /// Builds the store for a URL (creating a `file://` directory). No request is sent.
    ///
    /// # Errors
    /// An unsupported scheme or a URL the backend refuses.
    pub fn open(opts: &RemoteOptions) -> Result<Self, RemoteUrlError> {
        let shown = redact_url(&opts.url);
        let store_opts = StoreOptions {
            token: opts.token.as_ref(),
            timeout: opts.timeout,
            connect_timeout: opts.connect_timeout,
        };
        let built = store_url::build(&opts.url, &store_opts).map_err(|reason| RemoteUrlError {
            url: shown.clone(),
            reason,
        })?;
        Ok(Self::new(built.store, shown, opts, built.multipart))
    }

    fn new(store: Arc<dyn ObjectStore>, shown: String, opts: &RemoteOptions, supports_multipart: bool) -> Self {
        Self {
            store,
            shown,
            mode: opts.mode,
            timeout: opts.timeout,
            failures: Arc::default(),
            disabled: Arc::default(),
            supports_multipart,
        }
    }

    /// Wraps any object store (e.g. `InMemory` in tests).
    pub fn from_store(store: Arc<dyn ObjectStore>, name: &str, mode: RemoteMode, timeout: Duration) -> Self {
        Self {
            store,
            shown: name.to_string(),
            mode,
            timeout,
            failures: Arc::default(),
            disabled: Arc::default(),
            supports_multipart: true,
        }
    }

    /// Whether this run may write to the remote.
    pub fn mode(&self) -> RemoteMode {
        self.mode
    }

    /// Whether an object is stored for `key`: a HEAD, nothing downloaded or verified
    /// (`--dry-run`).
    ///
    /// # Errors
    /// The remote could not be asked.
    pub async fn exists(&self, key: &ChunkKey) -> Result<bool, StoreError> {
        match self.timed(self.store.head(&Self::location(key))).await {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the remote was switched off after repeated failures.
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Relaxed)
    }

    fn location(key: &ChunkKey) -> StorePath {
        StorePath::from(key.cache_path())
    }

    async fn timed<T>(&self, fut: impl Future<Output = Result<T, object_store::Error>>) -> Result<T, StoreError> {
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(object_store::Error::NotFound { path, source })) => {
                self.failures.store(0, Ordering::Relaxed);
                return Err(StoreError::Remote {
                    store: self.shown.clone(),
                    source: object_store::Error::NotFound { path, source },
                });
            }
            Ok(Err(e)) => Err(StoreError::Remote {
                store: self.shown.clone(),
                source: e,
            }),
            Err(_) => Err(StoreError::Timeout {
                store: self.shown.clone(),
                secs: self.timeout.as_secs(),
            }),
        };
        match &result {
            Ok(_) => self.failures.store(0, Ordering::Relaxed),
            Err(e) => {
                let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if n >= FAILURES_BEFORE_DISABLE && !self.disabled.swap(true, Ordering::Relaxed) {
                    warn!(
                        "remote cache {} failed {n} times in a row ({e}); not using it for the rest of this run",
                        self.shown
                    );
                }
            }
        }
        result
    }

    async fn upload_file(&self, location: &StorePath, path: &std::path::Path, size: u64) -> Result<(), StoreError> {
        let io = |e| StoreError::io(format!("reading {}", path.display()), e);
        if !self.supports_multipart || size <= MULTIPART_THRESHOLD {
            let bytes = tokio::fs::read(path).await.map_err(io)?;
            self.timed(self.store.put(location, PutPayload::from(bytes))).await?;
            return Ok(());
        }
        let upload = self.timed(self.store.put_multipart(location)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                break;
            }
            self.timed(writer.wait_for_capacity(4)).await?;
            writer.write(&buf[..n]);
        }
        self.timed(writer.finish()).await?;
        Ok(())
    }
}

fn is_not_found(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Remote {
            source: object_store::Error::NotFound { .. },
            ..
        }
    )
}

impl RemoteStore {
    /// Downloads a chunk's object and verifies it; `None` when there is none.
    async fn fetch_checked(
        &self,
        key: &ChunkKey,
    ) -> Result<Option<(Bytes, Result<ChunkMeta, SealedError>)>, StoreError> {
        let location = Self::location(key);
        let bytes: Bytes = match self
            .timed(async {
                let r = self.store.get(&location).await?;
                r.bytes().await
            })
            .await
        {
            Ok(b) => b,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let data = bytes.clone();
        let key = key.clone();
        let checked = tokio::task::spawn_blocking(move || verify_bytes(&data, Some(&key)))
            .await
            .map_err(|e| StoreError::io("verifying a remote entry", std::io::Error::other(e)))?;
        Ok(Some((bytes, checked)))
    }

    /// Looks a chunk up like [`ChunkStore::get`], but also returns a sound chunk of a day Tardis
    /// had not finished exporting (`meta.complete == false`). Only an edge server
    /// (`tickvault serve`) hands those out, marked as such in the chunk file's own metadata; the
    /// caller uses it without caching it as complete.
    ///
    /// # Errors
    /// The remote could not be asked.
    pub async fn get_any(&self, key: &ChunkKey) -> Result<Option<Chunk>, StoreError> {
        if self.is_disabled() {
            return Ok(None);
        }
        match self.fetch_checked(key).await? {
            Some((bytes, Ok(meta))) => Ok(Some(Chunk {
                key: key.clone(),
                meta,
                data: ChunkData::Bytes(bytes),
            })),
            Some((_, Err(SealedError::Corrupt(why)))) => {
                warn!(
                    "remote cache {}: entry {key} is corrupt ({why}); ignoring it",
                    self.shown
                );
                Ok(None)
            }
            Some((_, Err(e))) => Err(e.into()),
            None => Ok(None),
        }
    }

    fn refuse_read_only(&self) -> Result<(), StoreError> {
        match self.mode {
            RemoteMode::ReadOnly => Err(StoreError::ReadOnly {
                store: self.shown.clone(),
            }),
            RemoteMode::ReadWrite => Ok(()),
        }
    }
}

#[async_trait]
impl ChunkStore for RemoteStore {
    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn get(&self, key: &ChunkKey) -> Result<Option<Chunk>, StoreError> {
        Ok(self.get_any(key).await?.filter(|c| c.meta.complete))
    }

    async fn put(&self, chunk: &Chunk) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        if self.is_disabled() {
            return Ok(());
        }
        let location = Self::location(&chunk.key);
        match &chunk.data {
            ChunkData::Bytes(b) => {
                self.timed(self.store.put(&location, PutPayload::from(b.clone())))
                    .await?;
                Ok(())
            }
            ChunkData::File(p) => self.upload_file(&location, p, chunk.meta.file_bytes).await,
        }
    }

    async fn delete(&self, key: &ChunkKey) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        match self.timed(self.store.delete(&Self::location(key))).await {
            Err(e) if !is_not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }

    async fn check(&self, key: &ChunkKey) -> Result<Check, StoreError> {
        Ok(match self.fetch_checked(key).await? {
            None => Check::Missing,
            Some((_, Ok(meta))) => Check::Sound(meta),
            Some((_, Err(SealedError::Corrupt(why)))) => Check::Corrupt(why),
            Some((_, Err(e))) => return Err(e.into()),
        })
    }

    async fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let prefix = StorePath::from(CACHE_LAYOUT_VERSION);
        let listing: Vec<object_store::ObjectMeta> = self
            .timed(self.store.list(Some(&prefix)).try_collect())
            .await
            .map_err(|e| StoreError::CannotList {
                store: self.shown.clone(),
                source: Box::new(e),
            })?;
        let mut entries: Vec<Entry> = listing
            .into_iter()
            .filter_map(|m| {
                ChunkKey::from_cache_path(m.location.as_ref()).map(|key| Entry {
                    key,
                    bytes: m.size,
                    used: None,
                })
            })
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }
}
