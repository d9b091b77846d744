//! `tickvault download`: wires the tiers and the fetcher from the settings, runs the plan
//! ([`crate::run::execute`]) and builds the summary.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use crate::cache::{CacheLock, LocalStore, MemoryStore, RemoteStore, RemoteUrlError, StoreError, Tiered};
use crate::fetch::{FetchConfig, FetchStats, Fetcher};
use crate::run::execute::{resolve_all, tally, write_outputs};
use crate::run::exit::RunStatus;
use crate::run::plan::Plan;
use crate::run::report::Reporter;
use crate::run::summary::{Summary, TardisTraffic, Uploads};
use crate::settings::DownloadSettings;
use crate::tardis::{ClientConfig, TardisClient};

/// A failure that stops the run before or outside chunk processing.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The cache directory could not be opened or locked.
    #[error("cache")]
    Cache(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    /// The remote cache could not be opened.
    #[error(transparent)]
    Remote(#[from] RemoteUrlError),
    /// Tardis could not be reached at all (DNS, refused, TLS): the message names the host.
    #[error("{0}")]
    Unreachable(String),
}

/// The fetcher of a run, unless it is `--offline`.
fn fetcher(
    settings: &DownloadSettings,
    local: &LocalStore,
    stats: Arc<FetchStats>,
) -> Result<Option<Arc<Fetcher>>, DownloadError> {
    if settings.offline {
        return Ok(None);
    }
    let client = TardisClient::new(ClientConfig {
        datasets_url: settings.datasets_url.clone(),
        api_url: settings.api_url.clone(),
        api_key: settings.api_key.clone(),
        connect_timeout: settings.connect_timeout,
        read_timeout: settings.read_timeout,
    })
    .map_err(|e| DownloadError::Client(e.without_url()))?;
    let config = FetchConfig {
        concurrency: settings.concurrency,
        rate_limit: settings.rate_limit,
        decoders: settings.decoders,
        retry: settings.retry,
        spool_dir: local.spool_dir(),
        min_speed: settings.min_speed,
        limits: settings.limits,
        mac: settings.cache.mac.clone(),
    };
    let fetcher =
        Fetcher::new(client, config, stats).map_err(|e| StoreError::io("starting the decoding threads", e))?;
    Ok(Some(Arc::new(fetcher)))
}

/// Runs a download. Returns the summary; chunk failures are in it, not errors.
///
/// # Errors
/// [`DownloadError`] when the run cannot start (cache directory, HTTP client).
pub(super) async fn run(
    settings: &DownloadSettings,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
) -> Result<Summary, DownloadError> {
    let started = Instant::now();
    let cache_dir = settings.cache.cache_dir.clone();
    let _lock = tokio::task::spawn_blocking(move || CacheLock::shared(&cache_dir))
        .await
        .map_err(|e| StoreError::io("locking the cache", std::io::Error::other(e)))??;
    let local = LocalStore::open(&settings.cache.cache_dir)?;
    let swept = {
        let local = local.clone();
        tokio::task::spawn_blocking(move || local.sweep_dead_temps())
            .await
            .unwrap_or_default()
    };
    if swept > 0 {
        tracing::info!("removed {swept} temporary files left by processes that no longer run");
    }
    let memory = (settings.cache.memory_cache > 0).then(|| MemoryStore::new(settings.cache.memory_cache));
    let remote = settings
        .cache
        .remote
        .as_ref()
        .map(|o| RemoteStore::open(o).map(|r| r.with_scratch(local.spool_dir())))
        .transpose()?;
    let stats = Arc::new(FetchStats::default());
    let fetcher = fetcher(settings, &local, stats.clone())?;
    let tiered = Tiered::builder(local)
        .memory(memory)
        .remote(remote)
        .fetcher(fetcher.clone())
        .refresh(settings.refresh)
        .build();

    let plan = Plan::new(&settings.request);
    reporter.start(plan.requests.len() as u64);
    let results = resolve_all(
        &tiered,
        fetcher.as_deref(),
        &plan,
        settings.concurrency,
        reporter.as_ref(),
    )
    .await;
    if let Some(f) = &fetcher {
        f.shutdown_decoders().await;
        if let Some(why) = f.unreachable() {
            tiered.finish().await;
            reporter.finish();
            return Err(DownloadError::Unreachable(why));
        }
    }
    let tally = tally(&plan, &results);
    let (outputs, skipped_outputs) = write_outputs(settings, &plan, &results, reporter.as_ref(), &cancel).await;
    let uploaded = tiered.finish().await;
    reporter.finish();

    let failed = tally.counts.failed > 0 || !skipped_outputs.is_empty();
    let mut summary = Summary::begin(&settings.request);
    summary.chunks = tally.counts;
    summary.chunk_rows = tally.chunk_rows;
    summary.bytes_from_cache = tally.bytes_from_cache;
    summary.failures = tally.failures;
    summary.rows = outputs.iter().map(|o| o.rows).sum();
    summary.tardis = TardisTraffic {
        requests: stats.requests.load(Ordering::Relaxed),
        retries: stats.retries.load(Ordering::Relaxed),
        bytes: stats.bytes.load(Ordering::Relaxed),
        retries_by_reason: stats.retries_by_reason(),
    };
    summary.uploads = Uploads {
        uploaded: uploaded.uploaded,
        failed: uploaded.failed,
    };
    summary.outputs = outputs;
    summary.skipped_outputs = skipped_outputs;
    let status = if failed { RunStatus::Failed } else { RunStatus::Ok };
    Ok(summary.end(status, started.elapsed().as_secs_f64()))
}
