//! Fetching one chunk from Tardis into a chunk file, under the run's limits.
//!
//! Each attempt: wait for a download slot (`--concurrency`, a semaphore) and a token
//! (`--rate-limit`, a governor token bucket), GET the day-file, stream the body into a spool file
//! while a decoder (one per core) turns the spool into a chunk file. Failures are classified by
//! [`FetchError::retryable`]; transient ones are retried with exponential backoff and jitter
//! (backon), honouring `Retry-After`, and every retry starts again from byte 0. Cache hits
//! never touch these limits: only this module talks to Tardis.

use std::collections::HashMap;
use std::fs::File;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use jiff::Timestamp;
use tokio::sync::{Notify, OnceCell, Semaphore};
use tracing::{debug, info, warn};

use crate::chunkfile::{ChunkFileWriter, ChunkMeta, sort_by_local_ts};
use crate::decode::decode_gzip_csv;
use crate::model::{ChunkKey, day_start};
use crate::pool::Pool;
use crate::spool::spool;
use crate::tardis::{FetchError, TardisClient};

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Delay before the first retry; doubles each time, with jitter.
    pub initial_backoff: Duration,
    /// Cap on one delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 retries, 1 s doubling to 60 s: about five minutes of trying, enough to ride out a
    /// short outage in an unattended nightly run.
    fn default() -> Self {
        Self {
            max_retries: 10,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Counters of the traffic to Tardis, shared with the summary.
#[derive(Debug, Default)]
pub struct FetchStats {
    /// Dataset requests sent (attempts).
    pub requests: AtomicU64,
    /// Attempts that were retries.
    pub retries: AtomicU64,
    /// Compressed body bytes received, failed attempts included (Tardis bills them all).
    pub bytes: AtomicU64,
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
    pub retry: RetryPolicy,
    /// Where spool files go (same file system as the cache).
    pub spool_dir: PathBuf,
}

/// The outcome of a successful fetch: the chunk file written at the requested path.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub meta: ChunkMeta,
    /// Compressed bytes of the final, successful body.
    pub body_bytes: u64,
}

/// Fetches chunks from Tardis. Shared by all chunk tasks of a run.
pub struct Fetcher {
    client: TardisClient,
    downloads: Arc<Semaphore>,
    /// One thread per core decoding spooled bodies into chunk files.
    decoders: Arc<Pool>,
    rate: Option<DefaultDirectRateLimiter>,
    retry: RetryPolicy,
    spool_dir: PathBuf,
    stats: Arc<FetchStats>,
    /// Set once a fatal answer (bad key, exhausted quota) makes the rest of the run pointless.
    abort: Mutex<Option<String>>,
    /// Until when every request waits, after a 429 (so one rate-limit answer slows everyone).
    pause_until: Mutex<Option<tokio::time::Instant>>,
    probes: Arc<ProbeGate>,
    exported: Mutex<HashMap<String, Arc<OnceCell<Option<Timestamp>>>>>,
    spool_seq: AtomicU64,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// # Errors
    /// The decoding threads cannot be started.
    pub fn new(client: TardisClient, config: FetchConfig, stats: Arc<FetchStats>) -> std::io::Result<Self> {
        let decoders = Arc::new(Pool::new("decode", config.decoders.max(1))?);
        Ok(Self {
            client,
            downloads: Arc::new(Semaphore::new(config.concurrency.max(1))),
            decoders,
            rate: config.rate_limit.map(|n| RateLimiter::direct(Quota::per_second(n))),
            retry: config.retry,
            spool_dir: config.spool_dir,
            stats,
            abort: Mutex::new(None),
            pause_until: Mutex::new(None),
            probes: Arc::default(),
            exported: Mutex::new(HashMap::new()),
            spool_seq: AtomicU64::new(0),
        })
    }

    pub fn client(&self) -> &TardisClient {
        &self.client
    }

    /// The gate that holds non-probe fetches until the probe chunks have been answered.
    pub fn probes(&self) -> &ProbeGate {
        &self.probes
    }

    /// Stops the decoding threads once no more fetches will come, so the memory their
    /// allocator caches hold is returned before the outputs are written.
    pub async fn shutdown_decoders(&self) {
        let pool = self.decoders.clone();
        let _ = tokio::task::spawn_blocking(move || pool.shutdown()).await;
    }

    /// A ticket for one probe chunk (see [`ProbeGate`]).
    pub fn probes_ticket(&self) -> ProbeTicket {
        self.probes.ticket()
    }

    /// Why the run stopped fetching, if it did.
    pub fn aborted(&self) -> Option<String> {
        self.abort.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops the run on answers that every other request would get too.
    fn note_fatal(&self, err: &FetchError) {
        match err {
            FetchError::QuotaExhausted { .. } => self.set_abort(err.to_string()),
            // 401 means the key is invalid for everything; a 403 may only concern this symbol.
            FetchError::Status { status: 401, .. } => self.set_abort(format!("Tardis refused the API key ({err})")),
            _ => {}
        }
    }

    fn set_abort(&self, reason: String) {
        let mut a = self.abort.lock().unwrap_or_else(|e| e.into_inner());
        if a.is_none() {
            warn!("stopping downloads: {reason}");
            *a = Some(reason);
        }
    }

    /// Whether Tardis has finished exporting `key`'s day (so it may be cached as complete).
    /// Asks `/v1/exchanges/{exchange}` once per exchange and run; if that fails, assumes a day
    /// is complete a full day after it ended (exports land about 6 h after midnight UTC).
    pub async fn is_exported(&self, key: &ChunkKey) -> bool {
        let day_end = day_start(key.date) + jiff::SignedDuration::from_hours(24);
        let cell = {
            let mut m = self.exported.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(key.exchange.to_string()).or_default().clone()
        };
        let until = cell
            .get_or_init(|| async {
                match self.client.exported_until(&key.exchange).await {
                    Ok(t) => {
                        debug!("{}: exported until {t}", key.exchange);
                        Some(t)
                    }
                    Err(e) => {
                        warn!(
                            "could not read datasets.exportedUntil for {} ({e}); treating days as final one day after they end",
                            key.exchange
                        );
                        None
                    }
                }
            })
            .await;
        match until {
            Some(t) => day_end <= *t,
            None => day_end + jiff::SignedDuration::from_hours(24) <= Timestamp::now(),
        }
    }

    /// Fetches `key` and writes its chunk file at `dest` (created or truncated). `probe` marks
    /// one of the first/last-day chunks fetched before the rest.
    ///
    /// # Errors
    /// The last attempt's error, wrapped in [`FetchError::GaveUp`] after retries.
    pub async fn fetch(
        &self,
        key: &ChunkKey,
        dest: &Path,
        complete: bool,
        probe: Option<ProbeTicket>,
    ) -> Result<Fetched, FetchError> {
        if self.client.config().api_key.is_none() && !key.is_free_day() {
            return Err(FetchError::KeyRequired { chunk: key.to_string() });
        }
        let mut probe = probe;
        if probe.is_none() {
            self.probes.wait().await;
        }
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.initial_backoff)
            .with_max_delay(self.retry.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.retry.max_retries as usize)
            .build();
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some(reason) = self.aborted() {
                return Err(FetchError::Aborted {
                    chunk: key.to_string(),
                    reason,
                });
            }
            let result = self.attempt(key, dest, complete, attempt, &mut probe).await;
            let err = match result {
                Ok(f) => return Ok(f),
                Err(e) => e,
            };
            let gave_up = |last: FetchError| {
                if attempt > 1 {
                    FetchError::GaveUp {
                        attempts: attempt,
                        elapsed: start.elapsed(),
                        last: Box::new(last),
                    }
                } else {
                    last
                }
            };
            if !err.retryable() {
                return Err(gave_up(err));
            }
            let Some(mut delay) = backoff.next() else {
                return Err(gave_up(err));
            };
            if let Some(ra) = err.retry_after() {
                // Honour the server, plus up to 1 s of jitter so waiters don't return in step.
                delay = ra + Duration::from_millis(fastrand::u64(0..1000));
                let until = tokio::time::Instant::now() + ra;
                let mut p = self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
                if p.is_none_or(|t| t < until) {
                    *p = Some(until);
                }
            }
            warn!(
                "{key}: attempt {attempt} failed: {err}; retrying in {:.1} s",
                delay.as_secs_f64()
            );
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        key: &ChunkKey,
        dest: &Path,
        complete: bool,
        attempt: u32,
        probe: &mut Option<ProbeTicket>,
    ) -> Result<Fetched, FetchError> {
        let paused = *self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = paused {
            tokio::time::sleep_until(t).await;
        }
        let permit = self
            .downloads
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closed");
        if let Some(rate) = &self.rate {
            rate.until_ready().await;
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if attempt > 1 {
            self.stats.retries.fetch_add(1, Ordering::Relaxed);
        }
        debug!("GET {} (attempt {attempt})", key.url_path());
        let response = self.client.get_dataset(key, attempt).await;
        if let Err(e) = &response {
            self.note_fatal(e);
        }
        // The answer's status is known (and a fatal one recorded): the other chunks may start.
        if let Some(t) = probe.take() {
            t.arrive();
        }
        let response = response?;
        let url = crate::tardis::redact_url(&self.client.dataset_url(key));
        let expected = response.content_length();

        let seq = self.spool_seq.fetch_add(1, Ordering::Relaxed);
        let spool_path = self.spool_dir.join(format!("{}-{seq}.spool", std::process::id()));
        let (mut writer, reader) =
            spool(spool_path.clone()).map_err(local_err(format!("creating spool file {}", spool_path.display())))?;

        // Decode on a pool thread once one is free; meanwhile the body keeps spooling.
        let decoders = self.decoders.clone();
        let (dkey, ddest) = (key.clone(), dest.to_path_buf());
        let name = key.to_string();
        let decode = tokio::spawn(async move {
            decoders
                .run(move || write_chunk_file(&dkey, reader, &ddest, complete))
                .await
                .unwrap_or_else(|e| {
                    Err(FetchError::Local {
                        what: format!("decoding {name}"),
                        source: Box::new(e),
                    })
                })
        });

        let mut stream = response.bytes_stream();
        let mut failure = None;
        while let Some(piece) = stream.next().await {
            match piece {
                Ok(bytes) => {
                    self.stats.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    match writer.append(&bytes) {
                        Ok(true) => {}
                        // The decoder stopped (its error is the one to report).
                        Ok(false) => break,
                        Err(e) => {
                            failure = Some(local_err(format!("writing spool file {}", spool_path.display()))(e));
                            break;
                        }
                    }
                }
                Err(e) => {
                    failure = Some(FetchError::Transport {
                        url: url.clone(),
                        what: "body interrupted",
                        source: e.without_url(),
                    });
                    break;
                }
            }
        }
        let received = writer.written();
        if failure.is_none()
            && let Some(expected) = expected
            && received < expected
            && !decode.is_finished()
        {
            failure = Some(FetchError::ShortBody {
                url,
                received,
                expected,
            });
        }
        drop(permit);
        match failure {
            Some(err) => {
                writer.fail(err.to_string());
                // Wait for the decoder to let go of `dest` before the next attempt reuses it.
                let _ = decode.await;
                Err(err)
            }
            None => {
                writer.finish();
                let meta = decode.await.map_err(|e| FetchError::Local {
                    what: format!("decoding {key}"),
                    source: Box::new(e),
                })??;
                Ok(Fetched {
                    meta,
                    body_bytes: received,
                })
            }
        }
    }
}

/// Decodes a spooled body into a chunk file at `dest` (blocking).
fn write_chunk_file(
    key: &ChunkKey,
    body: impl std::io::Read,
    dest: &Path,
    complete: bool,
) -> Result<ChunkMeta, FetchError> {
    let label = key.url_path();
    let file = crate::chunkfile::create_sealed_file(dest).map_err(local_err(format!("creating {}", dest.display())))?;
    let mut writer = ChunkFileWriter::new(file, key.data_type).map_err(file_err(dest))?;
    decode_gzip_csv(key.data_type, &label, body, |batch| writer.write(&batch))?;
    let sorted = writer.stats().sorted;
    let meta = seal(writer, key, dest, complete)?;
    if sorted {
        return Ok(meta);
    }
    // Tardis files are ordered by local_timestamp; one that is not gets sorted (stably) so the
    // merge can stream. Sorting holds the whole day in memory, so it is a last resort.
    warn!("{key}: rows are not ordered by local_timestamp; sorting them");
    let batches = crate::chunkfile::ChunkData::File(dest.into())
        .reader(key.data_type.batch_rows())
        .map_err(file_err(dest))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(dest)(e.into()))?;
    let all = sort_by_local_ts(key.data_type, &batches).map_err(file_err(dest))?;
    let tmp = dest.with_extension("sorting");
    let file = crate::chunkfile::create_sealed_file(&tmp).map_err(local_err(format!("creating {}", tmp.display())))?;
    let mut writer = ChunkFileWriter::new(file, key.data_type).map_err(file_err(&tmp))?;
    writer.write(&all).map_err(file_err(&tmp))?;
    let meta = seal(writer, key, &tmp, complete)?;
    std::fs::rename(&tmp, dest).map_err(local_err(format!("renaming {}", tmp.display())))?;
    info!("{key}: sorted {} rows by local_timestamp", meta.rows);
    Ok(meta)
}

/// Seals a chunk file and makes it durable.
fn seal(writer: ChunkFileWriter<File>, key: &ChunkKey, path: &Path, complete: bool) -> Result<ChunkMeta, FetchError> {
    let (meta, file) = writer.finish(key, complete).map_err(file_err(path))?;
    file.sync_all()
        .map_err(local_err(format!("syncing {}", path.display())))?;
    Ok(meta)
}

fn local_err(what: String) -> impl FnOnce(std::io::Error) -> FetchError {
    move |e| FetchError::Local {
        what,
        source: Box::new(e),
    }
}

fn file_err(path: &Path) -> impl Fn(crate::chunkfile::ChunkFileError) -> FetchError {
    let what = format!("writing {}", path.display());
    move |e| FetchError::Local {
        what: what.clone(),
        source: Box::new(e),
    }
}

/// Holds back the bulk of a run's downloads until the "probe" chunks (the last and first day
/// of each symbol and data type) have been answered, as the official clients do: a bad key or
/// a missing symbol then shows up in seconds, not after the whole range was requested.
#[derive(Debug, Default)]
pub struct ProbeGate {
    pending: AtomicUsize,
    sealed: AtomicBool,
    notify: Notify,
}

impl ProbeGate {
    /// A ticket for one probe chunk; the gate opens when every ticket handed out before
    /// [`Self::seal`] has arrived (or been dropped).
    pub fn ticket(self: &Arc<Self>) -> ProbeTicket {
        self.pending.fetch_add(1, Ordering::SeqCst);
        ProbeTicket {
            gate: Some(self.clone()),
        }
    }

    /// No more tickets will be handed out.
    pub fn seal(&self) {
        self.sealed.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_open(&self) -> bool {
        self.sealed.load(Ordering::SeqCst) && self.pending.load(Ordering::SeqCst) == 0
    }

    /// Waits until the gate is open.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_open() {
                return;
            }
            notified.await;
        }
    }
}

/// See [`ProbeGate`]. Arrives when dropped, if not before.
#[derive(Debug)]
pub struct ProbeTicket {
    gate: Option<Arc<ProbeGate>>,
}

impl ProbeTicket {
    pub fn arrive(mut self) {
        self.release();
    }

    fn release(&mut self) {
        if let Some(g) = self.gate.take() {
            g.pending.fetch_sub(1, Ordering::SeqCst);
            g.notify.notify_waiters();
        }
    }
}

impl Drop for ProbeTicket {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_probe_gate_opens_when_every_ticket_arrived() {
        let gate = Arc::new(ProbeGate::default());
        let a = gate.ticket();
        let b = gate.ticket();
        gate.seal();
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.wait().await }
        });
        a.arrive();
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn a_gate_without_probes_is_open_once_sealed() {
        let gate = Arc::new(ProbeGate::default());
        gate.seal();
        tokio::time::timeout(Duration::from_secs(1), gate.wait()).await.unwrap();
    }
}
