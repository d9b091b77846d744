//! L3: a remote edge cache shared by a team (WebDAV/HTTP, S3, GCS, Azure, a local path).
//!
//! Same relative keys as the local tier, under the URL given by `--remote-cache`. Built on
//! object_store: `http(s)://` uses GET/HEAD/PUT (nginx's dav module is the reference server),
//! `s3://`, `gs://` and `az://` take credentials from their usual environment variables
//! (`AWS_*`, `GOOGLE_*`, `AZURE_*`), `file://` is a directory. An optional bearer token
//! (`TICKVAULT_REMOTE_CACHE_TOKEN`) is sent to HTTP remotes. Every operation has a timeout;
//! after [`FAILURES_BEFORE_DISABLE`] consecutive failures the remote is skipped for the rest of
//! the run, so a dead remote costs a few seconds, not one timeout per chunk.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::warn;
use url::Url;

use super::chunk_file::{ChunkData, ChunkMeta, verify_bytes_mac, verify_file_mac};
use super::store_url::{self, StoreOptions};
use super::{Check, Chunk, ChunkStore, Entry, StoreError};
use crate::model::{CACHE_LAYOUT_VERSION, ChunkKey, MinSpeed, SpeedMeter};
use crate::parquet::mac::MacKey;
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
    /// User and password from the URL's user-info, sent as Basic authorization to HTTP remotes
    /// (the URL itself never keeps them).
    pub basic: Option<(String, Secret)>,
    /// The team secret: chunk files carry a keyed MAC (see [`super::mac`]).
    pub secret: Option<Secret>,
    /// Whether this run may write to the remote.
    pub mode: RemoteMode,
    /// Limit on one request (a GET of a whole chunk, a PUT).
    pub timeout: Duration,
    /// Limit on connecting.
    pub connect_timeout: Duration,
    /// The slowest object download accepted.
    pub min_speed: MinSpeed,
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
    /// With a team secret: objects must carry a valid MAC, uploads must have one.
    mac: Option<MacKey>,
    min_speed: MinSpeed,
    /// Where objects are streamed to by [`ChunkStore::get`] (default: the system's temp dir).
    scratch: Option<PathBuf>,
    /// HTTP remotes: uploads streamed from the file.
    http_put: Option<super::http_put::HttpPut>,
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
            basic: opts.basic.as_ref(),
            timeout: opts.timeout,
            connect_timeout: opts.connect_timeout,
        };
        let built = store_url::build(&opts.url, &store_opts).map_err(|reason| RemoteUrlError {
            url: shown.clone(),
            reason,
        })?;
        let mut store = Self::new(built.store, shown, opts, built.multipart);
        store.http_put = built.http_put;
        Ok(store)
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
            mac: opts.secret.as_ref().map(|s| MacKey::from_secret(s.expose())),
            min_speed: opts.min_speed,
            scratch: None,
            http_put: None,
        }
    }

    /// Streams objects fetched by [`ChunkStore::get`] into temporary files in `dir`.
    #[must_use]
    pub fn with_scratch(mut self, dir: PathBuf) -> Self {
        self.scratch = Some(dir);
        self
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
            mac: None,
            min_speed: MinSpeed::default(),
            scratch: None,
            http_put: None,
        }
    }

    /// Requires (and gives uploads) the team MAC of `key`.
    #[must_use]
    pub fn with_mac(mut self, key: Option<MacKey>) -> Self {
        self.mac = key;
        self
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
        self.timed_within(self.timeout, fut).await
    }

    /// The deadline of sending `size` bytes: the request timeout plus the time the minimum
    /// transfer speed allows for them (a 500 MB chunk on a slow link is not cut at 60 s, and a
    /// stalled upload does not hang the run).
    fn deadline_for(&self, size: u64) -> Duration {
        let per_sec = self.min_speed.bytes_per_sec.max(1);
        self.timeout + Duration::from_secs(size.div_ceil(per_sec))
    }

    async fn timed_within<T>(
        &self,
        limit: Duration,
        fut: impl Future<Output = Result<T, object_store::Error>>,
    ) -> Result<T, StoreError> {
        let secs = limit.as_secs();
        let result = match tokio::time::timeout(limit, fut).await {
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
                secs,
            }),
        };
        self.record(result)
    }

    /// Counts a success or failure; after [`FAILURES_BEFORE_DISABLE`] failures in a row the
    /// remote is switched off for the run.
    fn record<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
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
        if let Some(put) = &self.http_put {
            return self
                .timed_within(self.deadline_for(size), put.put_file(location.as_ref(), path, size))
                .await;
        }
        if !self.supports_multipart || size <= MULTIPART_THRESHOLD {
            let bytes = tokio::fs::read(path).await.map_err(io)?;
            self.timed_within(
                self.deadline_for(size),
                self.store.put(location, PutPayload::from(bytes)),
            )
            .await?;
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
            self.timed_within(self.deadline_for(4 * PART_SIZE as u64), writer.wait_for_capacity(4))
                .await?;
            writer.write(&buf[..n]);
        }
        self.timed_within(self.deadline_for(4 * PART_SIZE as u64), writer.finish())
            .await?;
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
    /// Streams a chunk's object into `dest` (created or emptied), never holding it whole, under
    /// the request timeout (for the answer, then for each silence) and the minimum speed.
    /// `Ok(false)` when there is no such object.
    async fn download(&self, key: &ChunkKey, dest: &Path) -> Result<bool, StoreError> {
        let location = Self::location(key);
        let answer = match self.timed(self.store.get(&location)).await {
            Ok(a) => a,
            Err(e) if is_not_found(&e) => return Ok(false),
            Err(e) => return Err(e),
        };
        let io = |e| StoreError::io(format!("writing {}", dest.display()), e);
        let mut file = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut stream = answer.into_stream();
        let mut meter = SpeedMeter::start(self.min_speed, Instant::now());
        let mut last_data = Instant::now();
        loop {
            let now = Instant::now();
            let idle_left = self.timeout.saturating_sub(now - last_data);
            let wait = meter.time_left(now).map_or(idle_left, |l| l.min(idle_left));
            match tokio::time::timeout(wait, stream.next()).await {
                Ok(None) => break,
                Ok(Some(Ok(bytes))) => {
                    file.write_all(&bytes).await.map_err(io)?;
                    last_data = Instant::now();
                    if let Err(slow) = meter.add(bytes.len() as u64, last_data) {
                        return self.record(Err(self.too_slow(slow.bytes)));
                    }
                }
                Ok(Some(Err(e))) => {
                    return self.record(Err(StoreError::Remote {
                        store: self.shown.clone(),
                        source: e,
                    }));
                }
                Err(_) => {
                    let now = Instant::now();
                    if let Err(slow) = meter.check(now) {
                        return self.record(Err(self.too_slow(slow.bytes)));
                    }
                    if now - last_data >= self.timeout {
                        return self.record(Err(StoreError::Timeout {
                            store: self.shown.clone(),
                            secs: self.timeout.as_secs(),
                        }));
                    }
                }
            }
        }
        file.flush().await.map_err(io)?;
        self.record(Ok(true))
    }

    fn too_slow(&self, bytes: u64) -> StoreError {
        StoreError::TooSlow {
            store: self.shown.clone(),
            bytes,
            secs: self.min_speed.window.as_secs(),
        }
    }

    /// Streams a chunk's object into `dest` and verifies it there (checksum, key and, with a
    /// team secret, the MAC). `Ok(None)` is a miss: no object, an incomplete day, or an object
    /// that fails verification (warned about, never used).
    ///
    /// # Errors
    /// The remote could not be asked or `dest` written.
    pub async fn get_into(&self, key: &ChunkKey, dest: &Path) -> Result<Option<ChunkMeta>, StoreError> {
        Ok(self.get_into_any(key, dest).await?.filter(|meta| meta.complete))
    }

    /// As [`Self::get_into`], but also keeps a sound chunk of a day Tardis had not finished
    /// exporting (`meta.complete == false`). Only an edge server (`tickvault serve`) hands
    /// those out, marked as such in the chunk file's own metadata; the caller uses it without
    /// caching it as complete.
    ///
    /// # Errors
    /// The remote could not be asked, or `dest` could not be written.
    pub async fn get_into_any(&self, key: &ChunkKey, dest: &Path) -> Result<Option<ChunkMeta>, StoreError> {
        if self.is_disabled() || !self.download(key, dest).await? {
            return Ok(None);
        }
        match self.verify(key, dest).await? {
            Ok(meta) => Ok(Some(meta)),
            Err(why) => {
                warn!(
                    "remote cache {}: entry {key} is corrupt ({why}); ignoring it",
                    self.shown
                );
                Ok(None)
            }
        }
    }

    /// Verifies a downloaded object: `Ok(Err(why))` when it is not a sound, authentic chunk
    /// file for `key`.
    async fn verify(&self, key: &ChunkKey, path: &Path) -> Result<Result<ChunkMeta, String>, StoreError> {
        let (key, path, mac) = (key.clone(), path.to_path_buf(), self.mac.clone());
        let checked = tokio::task::spawn_blocking(move || verify_file_mac(&path, &key, mac.as_ref()))
            .await
            .map_err(|e| StoreError::io("verifying a remote entry", std::io::Error::other(e)))?;
        match checked {
            Ok(meta) => Ok(Ok(meta)),
            Err(SealedError::Corrupt(why)) => Ok(Err(why)),
            Err(e) => Err(e.into()),
        }
    }

    /// A temporary file for one object, named for this process (see [`super::temps`]).
    fn scratch_file(&self) -> Result<tempfile::TempPath, StoreError> {
        let dir = self.scratch.clone().unwrap_or_else(std::env::temp_dir);
        tempfile::Builder::new()
            .prefix(&format!("{}remote-", super::temps::prefix()))
            .suffix(super::temps::SPOOL_SUFFIX)
            .tempfile_in(&dir)
            .map(tempfile::NamedTempFile::into_temp_path)
            .map_err(|e| StoreError::io(format!("creating a file in {}", dir.display()), e))
    }

    /// With a team secret, a chunk is uploaded only if its file carries a valid MAC.
    async fn check_mac_for_upload(&self, chunk: &Chunk) -> Result<(), StoreError> {
        let Some(mac) = self.mac.clone() else { return Ok(()) };
        let key = chunk.key.clone();
        let data = chunk.data.clone();
        let ok = tokio::task::spawn_blocking(move || match (&data, data.path()) {
            (ChunkData::Bytes(b), _) => verify_bytes_mac(b, &key, Some(&mac)).is_ok(),
            (_, p) => p.is_some_and(|p| verify_file_mac(p, &key, Some(&mac)).is_ok()),
        })
        .await
        .unwrap_or(false);
        if ok {
            Ok(())
        } else {
            Err(StoreError::NoMac {
                chunk: chunk.key.to_string(),
            })
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
        if self.is_disabled() {
            return Ok(None);
        }
        let tmp = self.scratch_file()?;
        Ok(self.get_into(key, &tmp).await?.map(|meta| Chunk {
            key: key.clone(),
            meta,
            data: ChunkData::Temp(Arc::new(tmp)),
        }))
    }

    async fn put(&self, chunk: &Chunk) -> Result<(), StoreError> {
        self.refuse_read_only()?;
        if self.is_disabled() {
            return Ok(());
        }
        self.check_mac_for_upload(chunk).await?;
        let location = Self::location(&chunk.key);
        match (&chunk.data, chunk.data.path()) {
            (ChunkData::Bytes(b), _) => {
                let limit = self.deadline_for(b.len() as u64);
                self.timed_within(limit, self.store.put(&location, PutPayload::from(b.clone())))
                    .await?;
                Ok(())
            }
            (_, p) => {
                let p = p.unwrap_or(Path::new(""));
                self.upload_file(&location, p, chunk.meta.file_bytes).await
            }
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
        let tmp = self.scratch_file()?;
        if !self.download(key, &tmp).await? {
            return Ok(Check::Missing);
        }
        Ok(match self.verify(key, &tmp).await? {
            Ok(meta) => Check::Sound(meta),
            Err(why) => Check::Corrupt(why),
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
