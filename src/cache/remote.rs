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
use object_store::path::Path as StorePath;
use object_store::prefix::PrefixStore;
use object_store::{
    ClientConfigKey, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::AsyncReadExt;
use tracing::warn;
use url::Url;

use super::{Chunk, ChunkStore, StoreError, Tier};
use crate::chunkfile::{ChunkData, ChunkFileError, verify_bytes};
use crate::model::ChunkKey;
use crate::tardis::{Secret, redact_url};

/// Consecutive failures after which the remote is skipped for the rest of the run.
pub const FAILURES_BEFORE_DISABLE: u32 = 3;
/// Files above this size are uploaded in parts where the store supports it.
const MULTIPART_THRESHOLD: u64 = 64 * 1024 * 1024;
const PART_SIZE: usize = 16 * 1024 * 1024;

/// Whether this run may write to the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteMode {
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
    pub url: Url,
    pub token: Option<Secret>,
    pub mode: RemoteMode,
    /// Limit on one request (a GET of a whole chunk, a PUT).
    pub timeout: Duration,
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
    pub url: String,
    pub reason: String,
}

impl RemoteStore {
    /// Builds the store for a URL.
    ///
    /// # Errors
    /// An unsupported scheme or a URL the backend refuses.
    pub fn open(opts: &RemoteOptions) -> Result<Self, RemoteUrlError> {
        let url = &opts.url;
        let shown = redact_url(url);
        let refuse = |reason: String| RemoteUrlError {
            url: shown.clone(),
            reason,
        };
        // Fail fast and fall back to Tardis rather than retrying for minutes.
        let retry = RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                base: 2.0,
            },
            max_retries: 2,
            retry_timeout: opts.timeout,
        };
        // One request may take a little longer than the whole operation, so the operation's
        // own timeout (in `timed`) is what fires, with a message that says so.
        let request_timeout = opts.timeout + Duration::from_secs(1);
        let timeout = format!("{}ms", request_timeout.as_millis());
        let connect = format!("{}ms", opts.connect_timeout.as_millis());
        let mut client = ClientOptions::new()
            .with_timeout(request_timeout)
            .with_connect_timeout(opts.connect_timeout);
        // Everything after the bucket/container (or the URL path for HTTP) is a key prefix.
        let prefix = url.path().trim_matches('/').to_string();
        let (store, supports_multipart): (Arc<dyn ObjectStore>, bool) = match url.scheme() {
            "http" | "https" => {
                if let Some(token) = &opts.token {
                    let mut headers = object_store::HeaderMap::new();
                    let value = object_store::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                        .map_err(|_| refuse("TICKVAULT_REMOTE_CACHE_TOKEN is not a valid header value".into()))?;
                    headers.insert("authorization", value);
                    client = client.with_default_headers(headers);
                }
                client = client.with_allow_http(true);
                // HttpStore joins keys with its own '/': the base must not end with one.
                let mut base = url.clone();
                let trimmed = base.path().trim_end_matches('/').to_string();
                base.set_path(&trimmed);
                let store = object_store::http::HttpBuilder::new()
                    .with_url(base.as_str())
                    .with_client_options(client)
                    .with_retry(retry)
                    .build()
                    .map_err(|e| refuse(e.to_string()))?;
                // HttpStore has no multipart upload: files are PUT whole.
                return Ok(Self::new(Arc::new(store), shown, opts, false));
            }
            // Cloud stores read their credentials and client settings (AWS_ALLOW_HTTP,
            // AWS_ENDPOINT, proxies…) from the environment; only the timeouts are set here, as
            // config keys, so the environment's client settings are kept.
            "s3" => {
                use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey as K};
                let b = AmazonS3Builder::from_env()
                    .with_url(url.as_str())
                    .with_config(K::Client(ClientConfigKey::Timeout), timeout.clone())
                    .with_config(K::Client(ClientConfigKey::ConnectTimeout), connect.clone())
                    .with_retry(retry);
                (Arc::new(b.build().map_err(|e| refuse(e.to_string()))?), true)
            }
            "gs" => {
                use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey as K};
                let b = GoogleCloudStorageBuilder::from_env()
                    .with_url(url.as_str())
                    .with_config(K::Client(ClientConfigKey::Timeout), timeout.clone())
                    .with_config(K::Client(ClientConfigKey::ConnectTimeout), connect.clone())
                    .with_retry(retry);
                (Arc::new(b.build().map_err(|e| refuse(e.to_string()))?), true)
            }
            "az" | "azure" | "abfs" | "abfss" => {
                use object_store::azure::{AzureConfigKey as K, MicrosoftAzureBuilder};
                let b = MicrosoftAzureBuilder::from_env()
                    .with_url(url.as_str())
                    .with_config(K::Client(ClientConfigKey::Timeout), timeout.clone())
                    .with_config(K::Client(ClientConfigKey::ConnectTimeout), connect.clone())
                    .with_retry(retry);
                (Arc::new(b.build().map_err(|e| refuse(e.to_string()))?), true)
            }
            "file" => {
                let path = url.to_file_path().map_err(|()| refuse("not a local path".into()))?;
                std::fs::create_dir_all(&path).map_err(|e| refuse(e.to_string()))?;
                let store =
                    object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|e| refuse(e.to_string()))?;
                return Ok(Self::new(Arc::new(store), shown, opts, true));
            }
            other => {
                return Err(refuse(format!(
                    "unsupported scheme '{other}' (expected http, https, s3, gs, az or file)"
                )));
            }
        };
        // For s3/gs/az the URL path after the bucket is the prefix (the host is the bucket).
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            store
        } else {
            Arc::new(PrefixStore::new(store, prefix.as_str()))
        };
        Ok(Self::new(store, shown, opts, supports_multipart))
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

    pub fn mode(&self) -> RemoteMode {
        self.mode
    }

    /// The underlying store (for cache maintenance).
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
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

#[async_trait]
impl ChunkStore for RemoteStore {
    fn tier(&self) -> Tier {
        Tier::Remote
    }

    fn describe(&self) -> String {
        self.shown.clone()
    }

    async fn get(&self, key: &ChunkKey) -> Result<Option<Chunk>, StoreError> {
        if self.is_disabled() {
            return Ok(None);
        }
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
        let checked = tokio::task::spawn_blocking({
            let key = key.clone();
            move || verify_bytes(&data, Some(&key))
        })
        .await
        .map_err(|e| StoreError::io("verifying a remote entry", std::io::Error::other(e)))?;
        match checked {
            Ok(meta) if meta.complete => Ok(Some(Chunk {
                key: key.clone(),
                meta,
                data: ChunkData::Bytes(bytes),
            })),
            Ok(_) => Ok(None),
            Err(ChunkFileError::Corrupt(why)) => {
                warn!(
                    "remote cache {}: entry {key} is corrupt ({why}); ignoring it",
                    self.shown
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn put(&self, chunk: &Chunk) -> Result<(), StoreError> {
        if self.mode == RemoteMode::ReadOnly {
            return Err(StoreError::ReadOnly {
                store: self.shown.clone(),
            });
        }
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
        if self.mode == RemoteMode::ReadOnly {
            return Err(StoreError::ReadOnly {
                store: self.shown.clone(),
            });
        }
        match self.timed(self.store.delete(&Self::location(key))).await {
            Err(e) if !is_not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }
}
