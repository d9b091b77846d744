//! Fetching one chunk from Tardis into a chunk file, under the run's limits.
//!
//! Policy and mechanism live apart: [`admission`] decides when a request may be sent (download
//! slots, the token bucket, a 429's pause, a stopped run), [`probe`] holds the bulk of the run
//! back until the probe chunks are answered, [`retry`] decides whether and when to try again,
//! and [`body`] is one attempt (GET → spool → decode job, in [`job`]). [`exported`] says
//! whether a day is final. Cache hits never come here: only this module talks to the datasets
//! API.

mod admission;
mod body;
mod error;
mod exported;
mod job;
mod pool;
mod probe;
mod retry;
mod sort;
mod spool;

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tracing::info;

pub use error::FetchError;
pub use retry::RetryPolicy;
pub(crate) use retry::retry;

use self::admission::Admission;
use self::exported::ExportedUntil;
use self::pool::Pool;
use self::probe::Probes;
use crate::cache::Batches;
use crate::cache::chunk_file::ChunkMeta;
use crate::decode::DecodeLimits;
use crate::model::{ChunkKey, MinSpeed};
use crate::parquet::mac::MacKey;
use crate::tardis::TardisClient;

/// Counters of the traffic to Tardis, shared with the summary.
#[derive(Debug, Default)]
pub struct FetchStats {
    /// Dataset requests sent (attempts).
    pub requests: AtomicU64,
    /// Attempts that were retries.
    pub retries: AtomicU64,
    /// Compressed body bytes received, failed attempts included (Tardis bills them all).
    pub bytes: AtomicU64,
    /// Bodies streaming now whose length is known (for progress).
    pub bodies: AtomicU64,
    /// Their `Content-Length`s, summed.
    pub bodies_expected: AtomicU64,
    /// What has arrived of them.
    pub bodies_received: AtomicU64,
    /// Retries by the reason of the failed attempt (`rate_limited`, `server_error`, …).
    pub retry_reasons: Mutex<BTreeMap<&'static str, u64>>,
}

impl FetchStats {
    /// Counts a retry after a failure for `reason`.
    pub fn count_retry(&self, reason: &'static str) {
        *self
            .retry_reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Retries by reason.
    pub fn retries_by_reason(&self) -> BTreeMap<String, u64> {
        self.retry_reasons
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| ((*k).to_string(), *v))
            .collect()
    }

    /// Counts a body of `expected` bytes as streaming until the guard is dropped.
    pub(crate) fn body(&self, expected: Option<u64>) -> BodyProgress<'_> {
        if let Some(n) = expected {
            self.bodies.fetch_add(1, Ordering::Relaxed);
            self.bodies_expected.fetch_add(n, Ordering::Relaxed);
        }
        BodyProgress {
            stats: self,
            expected,
            received: 0,
        }
    }
}

/// One streaming body's share of [`FetchStats`]; taken back out when dropped (done, failed or
/// cancelled alike).
pub(crate) struct BodyProgress<'a> {
    stats: &'a FetchStats,
    expected: Option<u64>,
    received: u64,
}

impl BodyProgress<'_> {
    /// `n` more bytes arrived.
    pub(crate) fn add(&mut self, n: u64) {
        self.stats.bytes.fetch_add(n, Ordering::Relaxed);
        if self.expected.is_some() {
            self.received += n;
            self.stats.bodies_received.fetch_add(n, Ordering::Relaxed);
        }
    }
}

impl Drop for BodyProgress<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.expected {
            self.stats.bodies.fetch_sub(1, Ordering::Relaxed);
            self.stats.bodies_expected.fetch_sub(n, Ordering::Relaxed);
            self.stats.bodies_received.fetch_sub(self.received, Ordering::Relaxed);
        }
    }
}

/// Limits and settings of the fetcher.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Downloads in flight (`--concurrency`).
    pub concurrency: usize,
    /// Requests per second (`--rate-limit`); `None` = unlimited.
    pub rate_limit: Option<NonZeroU32>,
    /// Chunks decoded at once (CPU bound): the number of cores.
    pub decoders: usize,
    /// How failed attempts are retried.
    pub retry: RetryPolicy,
    /// Where spool files go (same file system as the cache).
    pub spool_dir: PathBuf,
    /// Hand back the decoded batches of each fetched chunk, up to this many bytes of them (for
    /// `--order time`: the memory tier's capacity).
    pub keep_decoded: Option<u64>,
    /// `datasets.exportedUntil` of the exchange, when known: later days are fetched but
    /// marked incomplete.
    pub exported_until: Option<jiff::Timestamp>,
    /// The slowest body accepted.
    pub min_speed: MinSpeed,
    /// Limits on what one body may decode to.
    pub limits: DecodeLimits,
    /// The team key: chunk files written carry its MAC.
    pub mac: Option<MacKey>,
}

/// The outcome of a successful fetch: the chunk file written at the requested path.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The chunk file's metadata (`complete` says whether the day was final).
    pub meta: ChunkMeta,
    /// Compressed bytes of the final, successful body.
    pub body_bytes: u64,
    /// The decoded batches, when the fetcher keeps them (see [`FetchConfig::keep_decoded`]).
    pub decoded: Option<Batches>,
}

/// Fetches chunks from Tardis. Shared by all chunk tasks of a run.
pub struct Fetcher {
    client: TardisClient,
    admission: Admission,
    probes: Probes,
    exported: ExportedUntil,
    /// One thread per core decoding spooled bodies into chunk files.
    decoders: Arc<Pool>,
    retry: RetryPolicy,
    spool_dir: PathBuf,
    keep_decoded: Option<u64>,
    stats: Arc<FetchStats>,
    spool_seq: AtomicU64,
    min_speed: MinSpeed,
    limits: DecodeLimits,
    mac: Option<MacKey>,
    /// Set when Tardis could not be reached at all: the run stops and says why, once.
    unreachable: Mutex<Option<String>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher with its decoding threads started.
    ///
    /// # Errors
    /// The decoding threads cannot be started.
    pub fn new(client: TardisClient, config: FetchConfig, stats: Arc<FetchStats>) -> std::io::Result<Self> {
        Ok(Self {
            exported: ExportedUntil::Known(config.exported_until),
            client,
            admission: Admission::new(config.concurrency, config.rate_limit),
            probes: Probes::default(),
            decoders: Arc::new(Pool::new("decode", config.decoders.max(1))?),
            retry: config.retry,
            spool_dir: config.spool_dir,
            keep_decoded: config.keep_decoded,
            stats,
            spool_seq: AtomicU64::new(0),
            min_speed: config.min_speed,
            limits: config.limits,
            mac: config.mac,
            unreachable: Mutex::new(None),
        })
    }

    /// Asks each exchange's `datasets.exportedUntil` of `metadata` as chunks come, and again
    /// while a day is unexported, instead of the one instant of [`FetchConfig::exported_until`]:
    /// for `tickvault serve`, which fetches any exchange for weeks.
    #[must_use]
    pub fn live_exports(mut self, metadata: Arc<crate::metadata::Metadata>) -> Self {
        self.exported = ExportedUntil::live(metadata);
        self
    }

    /// Names the probe chunks: other fetches wait until each has been answered (or resolved
    /// otherwise, see [`Self::resolved`]).
    pub fn set_probes(&self, keys: impl IntoIterator<Item = ChunkKey>) {
        self.probes.set(keys);
    }

    /// Tells the fetcher a chunk is resolved, by whatever tier: a probe served by a cache no
    /// longer holds the others back.
    pub fn resolved(&self, key: &ChunkKey) {
        self.probes.arrive(key);
    }

    /// Stops the decoding threads once no more fetches will come, so the memory their
    /// allocator caches hold is returned before the outputs are written.
    pub async fn shutdown_decoders(&self) {
        let pool = self.decoders.clone();
        let _ = tokio::task::spawn_blocking(move || pool.shutdown()).await;
    }

    /// Waits until `key` may be fetched: a chunk that is not a probe waits for the probes to be
    /// answered. Call it before taking the chunk's cross-process lock, so that no process
    /// holds a chunk while waiting for a probe that another process holds.
    pub async fn wait_turn(&self, key: &ChunkKey) {
        if !self.probes.is_pending(key) {
            self.probes.wait().await;
        }
    }

    /// Why Tardis could not be reached at all, if it could not (the run then stops).
    pub fn unreachable(&self) -> Option<String> {
        self.unreachable.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records that Tardis cannot be reached.
    fn set_unreachable(&self, why: String) {
        self.unreachable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(why);
    }

    /// Fetches `key` and writes its chunk file into the staged file `dest`. The chunk is
    /// marked complete when Tardis has finished exporting its day.
    ///
    /// # Errors
    /// The last attempt's error, wrapped in [`FetchError::GaveUp`] after retries.
    pub async fn fetch(&self, key: &ChunkKey, dest: &Path) -> Result<Fetched, FetchError> {
        if self.client.config().api_key.is_none() && !key.is_free_day() {
            self.probes.arrive(key);
            return Err(FetchError::KeyRequired { chunk: key.to_string() });
        }
        self.wait_turn(key).await;
        let complete = self.exported.is_exported(key).await;
        let result = retry::retry(
            &self.retry,
            |n| self.attempt(key, dest, complete, n),
            |err, delay, n| {
                self.stats.count_retry(err.reason());
                if let Some(ra) = err.retry_after() {
                    self.admission.pause_for(ra);
                }
                let reason = crate::error::chain(err);
                info!(
                    event = "retry",
                    chunk = %key,
                    attempt = n,
                    reason = %reason,
                    delay_seconds = delay.as_secs_f64(),
                    "{key}: attempt {n} failed: {reason}; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
            },
        )
        .await;
        self.probes.arrive(key);
        result
    }
}
