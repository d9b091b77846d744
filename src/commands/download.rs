//! `tickvault download`: checks the request against Tardis's metadata
//! ([`crate::run::validate`]), wires the tiers and the fetcher from the settings, runs the plan
//! ([`crate::run::execute`]) and builds the summary.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cache::{CacheLock, LocalStore, MemoryStore, RemoteStore, RemoteUrlError, StoreError, Tiered};
use crate::fetch::{FetchConfig, FetchStats, Fetcher};
use crate::metadata::Metadata;
use crate::output::target::check_targets;
use crate::run::execute::{Tally, TransferBudget, Written, resolve_all, tally, write_outputs};
use crate::run::exit::RunStatus;
use crate::run::plan::Plan;
use crate::run::publication::Publication;
use crate::run::report::Reporter;
use crate::run::shard::planned;
use crate::run::summary::{Failure, PublicationSummary, Summary, TardisTraffic, Uploads};
use crate::run::validate::{PreflightError, preflight};
use crate::settings::{DownloadSettings, OutputSpec};
use crate::tardis::TardisClient;

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
    /// The request does not check out, or its metadata cannot be had.
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    /// Tardis could not be reached at all (DNS, refused, TLS): the message names the host.
    #[error("{0}")]
    Unreachable(String),
}

impl DownloadError {
    /// Whether the fix is a different command line (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, DownloadError::Preflight(p) if p.is_usage())
    }
}

/// The HTTP client of the run.
pub(super) fn client(settings: &DownloadSettings) -> Result<TardisClient, DownloadError> {
    TardisClient::new(settings.tardis.client_config()).map_err(|e| DownloadError::Client(e.without_url()))
}

/// The tiers and the fetcher of a run, over the cache directory held shared.
pub(super) struct Wired {
    /// The shared lock of the cache directory, held for the run.
    pub _lock: CacheLock,
    /// The local tier.
    pub local: LocalStore,
    /// The tiers.
    pub tiered: Arc<Tiered>,
    /// The fetcher, unless `--offline`.
    pub fetcher: Option<Arc<Fetcher>>,
    /// Its traffic counters.
    pub stats: Arc<FetchStats>,
}

/// Locks and opens the cache, sweeps dead temporaries, and builds the tiers and the fetcher.
pub(super) async fn wire(
    settings: &DownloadSettings,
    client: Option<TardisClient>,
    publication: &Publication,
) -> Result<Wired, DownloadError> {
    let cache_dir = settings.cache.cache_dir.clone();
    let _lock = tokio::task::spawn_blocking(move || CacheLock::shared(&cache_dir))
        .await
        .map_err(|e| StoreError::io("locking the cache", std::io::Error::other(e)))??;
    let local = LocalStore::open(&settings.cache.cache_dir)?;
    local.sweep_dead_temps_logged().await;
    let memory = (settings.cache.memory_cache > 0).then(|| MemoryStore::new(settings.cache.memory_cache));
    let remote = settings
        .cache
        .remote
        .as_ref()
        .map(|o| RemoteStore::open(o).map(|r| r.with_scratch(local.spool_dir())))
        .transpose()?;
    let stats = Arc::new(FetchStats::default());
    let fetcher = fetcher(settings, client, &local, publication, stats.clone())?;
    let tiered = Tiered::builder(local.clone())
        .memory(memory)
        .remote(remote)
        .fetcher(fetcher.clone())
        .refresh(settings.refresh)
        .publish_local(settings.shard.is_some())
        .build();
    Ok(Wired {
        _lock,
        local,
        tiered,
        fetcher,
        stats,
    })
}

/// The fetcher of a run, unless it is `--offline`.
fn fetcher(
    settings: &DownloadSettings,
    client: Option<TardisClient>,
    local: &LocalStore,
    publication: &Publication,
    stats: Arc<FetchStats>,
) -> Result<Option<Arc<Fetcher>>, DownloadError> {
    let Some(client) = client else {
        return Ok(None);
    };
    let config = FetchConfig {
        concurrency: settings.tardis.concurrency,
        rate_limit: settings.tardis.rate_limit,
        decoders: settings.tardis.decoders,
        retry: settings.tardis.retry,
        spool_dir: local.spool_dir(),
        keep_decoded: (settings.order == crate::output::Order::Time && settings.cache.memory_cache > 0)
            .then(|| MemoryStore::largest_entry(settings.cache.memory_cache)),
        exported_until: publication.exported_until,
        min_speed: settings.tardis.min_speed,
        limits: settings.tardis.limits,
        mac: settings.cache.mac.clone(),
    };
    let fetcher =
        Fetcher::new(client, config, stats).map_err(|e| StoreError::io("starting the decoding threads", e))?;
    Ok(Some(Arc::new(fetcher)))
}

/// Runs a download. Returns the summary; chunk failures are in it, not errors.
///
/// # Errors
/// [`DownloadError`] when the run cannot start (a request that does not check out, its
/// metadata, the cache directory, the HTTP client).
pub(super) async fn run(
    settings: &DownloadSettings,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
) -> Result<Summary, DownloadError> {
    let started = Instant::now();
    let client = (!settings.offline).then(|| client(settings)).transpose()?;
    let metadata = Metadata::new(&settings.cache.cache_dir, client.clone(), settings.tardis.retry);
    let publication = preflight(settings, &metadata).await?;
    let withhold = !settings.allow_incomplete;
    let plan = planned(&settings.request, settings.shard).withhold(|k| withhold && !publication.is_final(k.date));
    check_targets(settings, &plan).map_err(PreflightError::Invalid)?;
    let Wired {
        _lock,
        tiered,
        fetcher,
        stats,
        ..
    } = wire(settings, client, &publication).await?;

    log_plan(settings, &plan);
    reporter.track_traffic(stats.clone());
    reporter.start(plan.requests.len() as u64);
    let results = resolve_all(
        &tiered,
        fetcher.as_deref(),
        &plan,
        settings.tardis.concurrency,
        settings.max_transfer.map(|max| TransferBudget { stats: &stats, max }),
        reporter.as_ref(),
        &cancel,
    )
    .await;
    stop_if_unreachable(fetcher.as_deref(), &tiered, reporter.as_ref()).await?;
    let tally = tally(&plan, &results);
    let interrupted = cancel.is_cancelled();
    let (written, uploaded) = if interrupted {
        // Stop now: no output from a partial run, no waiting for uploads.
        (Written::default(), Uploads::default())
    } else {
        if let Some(f) = &fetcher {
            f.shutdown_decoders().await;
        }
        let written = if settings.shard.is_some() && !matches!(settings.output, OutputSpec::Partitioned(_)) {
            // A merged output needs every shard's chunks: one final run without --shard
            // writes it from the shared tiers.
            Written::default()
        } else {
            write_outputs(
                settings,
                &tiered,
                &plan,
                &results,
                &publication,
                reporter.as_ref(),
                &cancel,
            )
            .await
        };
        (written, tiered.finish().await.into())
    };
    reporter.finish();
    // A signal during the outputs' writing or upload interrupts the run too.
    let interrupted = interrupted || cancel.is_cancelled();
    let status = run_status(settings, &tally, &written, &stats, interrupted);
    let mut summary = Summary::begin(&settings.request);
    summary.shard = settings.shard.map(|s| s.to_string());
    summary.chunks = tally.counts;
    summary.chunk_rows = tally.chunk_rows;
    summary.bytes_from_cache = tally.bytes_from_cache;
    summary.failures = tally.failures;
    summary.tardis = TardisTraffic::new(&stats, metadata.requests());
    summary.uploads = uploaded;
    summary.publication = PublicationSummary::new(&publication, withhold);
    written.fill(&mut summary);
    if !interrupted {
        summary.skipped_outputs.extend(shard_skips(settings));
    }
    Ok(summary.end(status, started.elapsed().as_secs_f64()))
}

/// Ends a run that found Tardis unreachable: stops the decoders and the uploads, and returns
/// the error that names the host.
pub(super) async fn stop_if_unreachable(
    fetcher: Option<&Fetcher>,
    tiered: &Tiered,
    reporter: &dyn Reporter,
) -> Result<(), DownloadError> {
    let Some(why) = fetcher.and_then(Fetcher::unreachable) else {
        return Ok(());
    };
    if let Some(f) = fetcher {
        f.shutdown_decoders().await;
    }
    tiered.finish().await;
    reporter.finish();
    Err(DownloadError::Unreachable(why))
}

/// The status of a download that ran: `--max-transfer` spent (with nothing else wrong) is
/// "retry later", else as [`status`] says.
fn run_status(
    settings: &DownloadSettings,
    tally: &Tally,
    written: &Written,
    stats: &FetchStats,
    interrupted: bool,
) -> RunStatus {
    let budget_spent = tally.counts.pending > 0
        && settings
            .max_transfer
            .is_some_and(|m| stats.bytes.load(Ordering::Relaxed) >= m);
    if interrupted {
        RunStatus::Interrupted
    } else if budget_spent && tally.counts.failed == 0 && written.refused.is_empty() {
        RunStatus::TransferLimit
    } else {
        status(tally.counts.failed, written)
    }
}

/// A sharded run with a merged output writes none: one line per data type says so.
fn shard_skips(settings: &DownloadSettings) -> Vec<Failure> {
    let Some(shard) = settings.shard else {
        return Vec::new();
    };
    if matches!(settings.output, OutputSpec::Partitioned(_)) {
        return Vec::new();
    }
    settings
        .request
        .data_types
        .iter()
        .map(|t| Failure {
            chunk: t.to_string(),
            error: format!(
                "shard {shard} holds part of the chunks: the merged file is written by one final run without --shard"
            ),
        })
        .collect()
}

/// The resolved request, at info level (relative dates show what they meant).
fn log_plan(settings: &DownloadSettings, plan: &Plan) {
    let r = &settings.request;
    let data_types: Vec<String> = r.data_types.iter().map(ToString::to_string).collect();
    info!(
        event = "plan",
        exchange = %r.exchange,
        symbols = %r.symbols.join(","),
        data_types = %data_types.join(","),
        from = %r.range.from,
        to = %r.range.to,
        chunks = plan.requests.len(),
        "{} {} {}: {} to {}, {} chunks",
        r.exchange,
        data_types.join(","),
        r.symbols.join(","),
        r.range.from,
        r.range.to,
        plan.requests.len()
    );
}

/// How the run ended: a refused output (the command must change) before failures (a re-run
/// may fix them) before unpublished days (a later run will).
pub(super) fn status(failed_chunks: u64, written: &Written) -> RunStatus {
    if !written.refused.is_empty() {
        RunStatus::Refused
    } else if failed_chunks > 0 || !written.failed.is_empty() {
        RunStatus::Failed
    } else if !written.withheld.is_empty() {
        RunStatus::NotPublished
    } else {
        RunStatus::Ok
    }
}
