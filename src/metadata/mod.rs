//! Tardis's exchange metadata as a run uses it: the list of exchanges and each exchange's
//! details ([`crate::tardis::metadata`]), cached as the API's JSON under the cache directory
//! (`{cache-dir}/metadata/exchanges.json`, `{cache-dir}/metadata/exchanges/{id}.json`) for a
//! day ([`METADATA_TTL`]). `--offline` reads the cached copies whatever their age; an answer
//! that is needed and cannot be had is an error ([`MetadataError`]), never a silent pass.
//! [`suggest`] finds the closest valid names for "did you mean".

pub mod suggest;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use crate::fetch::{FetchError, RetryPolicy, retry};
use crate::model::valid_exchange;
use crate::parquet::atomic::AtomicFile;
use crate::tardis::metadata::{ExchangeDetails, ExchangeSummary};
use crate::tardis::{HttpError, TardisClient};

/// How long a cached metadata document is used before it is asked for again.
pub const METADATA_TTL: Duration = Duration::from_secs(24 * 3600);
/// Largest metadata document accepted (the biggest exchanges list every instrument ever
/// traded).
const MAX_DOCUMENT_BYTES: u64 = 256 << 20;
/// Retries of a metadata request: a down API is reported within seconds, so that the user can
/// decide (`--no-validate`) instead of waiting out the datasets' longer policy.
const MAX_METADATA_RETRIES: u32 = 3;

/// How old a cached document may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Younger than [`METADATA_TTL`] (any age when offline).
    Cached,
    /// Asked for now (offline: the cached copy, whatever its age).
    Now,
}

/// A metadata document and when it was fetched.
#[derive(Debug, Clone)]
pub struct Doc<T> {
    /// The document.
    pub value: Arc<T>,
    /// When it was fetched from the API.
    pub fetched: Timestamp,
    /// Whether it came from the cache directory rather than the API in this call.
    pub cached: bool,
}

/// Why metadata could not be had.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// The API does not know the exchange (HTTP 404 for its details).
    #[error("unknown exchange '{id}'")]
    UnknownExchange {
        /// The exchange id asked for.
        id: String,
    },
    /// The API could not be asked or did not answer.
    #[error("cannot read Tardis's metadata ({what}){}", cached_hint(*cached))]
    Unavailable {
        /// The document.
        what: String,
        /// When an older copy was cached (usable with `--offline`).
        cached: Option<Timestamp>,
        /// The last attempt's error.
        #[source]
        source: Box<FetchError>,
    },
    /// `--offline` and no cached copy.
    #[error("--offline: no cached metadata for {what}; run once without --offline to cache it")]
    NotCached {
        /// The document.
        what: String,
    },
    /// The answer is not the document expected.
    #[error("{what}: not the metadata document expected")]
    Invalid {
        /// The document (URL, without credentials).
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The cached copy could not be written.
    #[error("{what}")]
    Io {
        /// What was being done, naming the file.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn cached_hint(cached: Option<Timestamp>) -> String {
    cached.map_or_else(String::new, |t| {
        format!(
            "; --offline uses the copy cached at {}",
            t.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
    })
}

/// The metadata of a run: the API behind a cache directory.
#[derive(Debug)]
pub struct Metadata {
    dir: PathBuf,
    client: Option<TardisClient>,
    retry: RetryPolicy,
    requests: AtomicU64,
    /// Whether fetched documents are written to the cache (not for a dry run).
    store: bool,
}

impl Metadata {
    /// Metadata cached under `cache_dir`, asked of `client` when needed; without a client
    /// (`--offline`) only the cached copies are read.
    pub fn new(cache_dir: &Path, client: Option<TardisClient>, retry: RetryPolicy) -> Self {
        Self {
            dir: cache_dir.join("metadata"),
            client,
            retry: RetryPolicy {
                max_retries: retry.max_retries.min(MAX_METADATA_RETRIES),
                ..retry
            },
            requests: AtomicU64::new(0),
            store: true,
        }
    }

    /// Reads the cache but never writes it (a dry run writes nothing).
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.store = false;
        self
    }

    /// Whether the API is never asked.
    pub fn offline(&self) -> bool {
        self.client.is_none()
    }

    /// Requests sent to the metadata API so far (attempts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `GET /v1/exchanges`.
    ///
    /// # Errors
    /// See [`MetadataError`].
    pub async fn exchanges(&self, fresh: Freshness) -> Result<Doc<Vec<ExchangeSummary>>, MetadataError> {
        self.document(Path::new("exchanges.json"), "exchanges", fresh).await
    }

    /// `GET /v1/exchanges/{id}`.
    ///
    /// # Errors
    /// [`MetadataError::UnknownExchange`] for a 404 (or an id that cannot be one); others
    /// see [`MetadataError`].
    pub async fn exchange(&self, id: &str, fresh: Freshness) -> Result<Doc<ExchangeDetails>, MetadataError> {
        if !valid_exchange(id) {
            return Err(MetadataError::UnknownExchange { id: id.to_string() });
        }
        let rel = PathBuf::from("exchanges").join(format!("{id}.json"));
        match self.document(&rel, &format!("exchanges/{id}"), fresh).await {
            Err(MetadataError::Unavailable { source, .. }) if is_not_found(&source) => {
                Err(MetadataError::UnknownExchange { id: id.to_string() })
            }
            other => other,
        }
    }

    /// The cached copy of `/v1/exchanges/{id}`, whatever its age; the API is not asked.
    pub async fn exchange_cached(&self, id: &str) -> Option<Doc<ExchangeDetails>> {
        if !valid_exchange(id) {
            return None;
        }
        let path = self.dir.join("exchanges").join(format!("{id}.json"));
        read_cached(&path).await.map(|(value, fetched)| Doc {
            value,
            fetched,
            cached: true,
        })
    }

    /// A document from the cache (fresh enough) or the API (then cached).
    async fn document<T>(&self, rel: &Path, api_path: &str, fresh: Freshness) -> Result<Doc<T>, MetadataError>
    where
        T: DeserializeOwned + Send + Sync + 'static,
    {
        let path = self.dir.join(rel);
        let cached = read_cached::<T>(&path).await;
        let Some(client) = &self.client else {
            return cached
                .map(|(value, fetched)| Doc {
                    value,
                    fetched,
                    cached: true,
                })
                .ok_or_else(|| MetadataError::NotCached {
                    what: api_path.to_string(),
                });
        };
        if fresh == Freshness::Cached
            && let Some((value, fetched)) = &cached
            && Timestamp::now().duration_since(*fetched).unsigned_abs() < METADATA_TTL
        {
            debug!("metadata {api_path}: cached at {fetched}");
            return Ok(Doc {
                value: value.clone(),
                fetched: *fetched,
                cached: true,
            });
        }
        let body = retry(
            &self.retry,
            |_| async {
                self.requests.fetch_add(1, Ordering::Relaxed);
                client
                    .get_api(api_path, MAX_DOCUMENT_BYTES)
                    .await
                    .map_err(FetchError::from)
            },
            |e, delay, n| {
                warn!(
                    "metadata {api_path}: attempt {n} failed: {}; retrying in {:.1} s",
                    crate::error::chain(e),
                    delay.as_secs_f64()
                );
            },
        )
        .await
        .map_err(|source| MetadataError::Unavailable {
            what: redact(client, api_path),
            cached: cached.as_ref().map(|c| c.1),
            source: Box::new(source),
        })?;
        let what = redact(client, api_path);
        let value = parse::<T>(body.clone(), what.clone()).await?;
        if self.store {
            store(&path, body).await?;
        }
        Ok(Doc {
            value,
            fetched: Timestamp::now(),
            cached: false,
        })
    }
}

/// The URL of a metadata document, as it may be shown.
fn redact(client: &TardisClient, api_path: &str) -> String {
    let base = crate::tardis::redact_url(&client.config().api_url);
    format!("{}/{api_path}", base.trim_end_matches('/'))
}

fn is_not_found(e: &FetchError) -> bool {
    match e {
        FetchError::Http(HttpError::Status { status: 404, .. }) => true,
        FetchError::GaveUp { last, .. } => is_not_found(last),
        _ => false,
    }
}

/// Parses a document off the async runtime (the largest are tens of megabytes).
async fn parse<T: DeserializeOwned + Send + Sync + 'static>(
    body: bytes::Bytes,
    what: String,
) -> Result<Arc<T>, MetadataError> {
    tokio::task::spawn_blocking(move || {
        serde_json::from_slice::<T>(&body)
            .map(Arc::new)
            .map_err(|source| MetadataError::Invalid { what, source })
    })
    .await
    .unwrap_or_else(|e| {
        Err(MetadataError::Io {
            what: "parsing metadata".into(),
            source: std::io::Error::other(e),
        })
    })
}

/// The cached copy at `path` and when it was fetched; a copy that does not parse is removed.
async fn read_cached<T: DeserializeOwned + Send + Sync + 'static>(path: &Path) -> Option<(Arc<T>, Timestamp)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let bytes = std::fs::read(&path).ok()?;
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
        match serde_json::from_slice::<T>(&bytes) {
            Ok(v) => Some((Arc::new(v), to_timestamp(modified))),
            Err(e) => {
                warn!("cached metadata {} does not parse ({e}); removing it", path.display());
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    })
    .await
    .ok()
    .flatten()
}

fn to_timestamp(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Writes the cached copy atomically.
async fn store(path: &Path, body: bytes::Bytes) -> Result<(), MetadataError> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let io = |e| MetadataError::Io {
            what: format!("caching metadata in {}", path.display()),
            source: e,
        };
        let tmp = AtomicFile::create(&path).map_err(io)?;
        std::io::Write::write_all(&mut tmp.handle().map_err(io)?, &body).map_err(io)?;
        tmp.commit().map_err(io)?;
        Ok(())
    })
    .await
    .unwrap_or_else(|e| {
        Err(MetadataError::Io {
            what: "caching metadata".into(),
            source: std::io::Error::other(e),
        })
    })
}
