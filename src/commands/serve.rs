//! `tickvault serve`: wires the server's tiers (memory holding hot chunk files, the local
//! directory, an optional remote of its own) and the fetcher with the team's key, then serves
//! ([`crate::serve::run`]) until SIGTERM or Ctrl-C.
//!
//! The server takes no lock on the cache directory: `tickvault cache prune` may run beside it
//! (from cron); an entry pruned under a request is looked up again.

use std::sync::Arc;

use crate::cache::{LocalStore, MemoryStore, RemoteStore, StoreError, Tiered};
use crate::fetch::{FetchConfig, FetchStats, Fetcher};
use crate::metadata::Metadata;
use crate::serve::metrics::Metrics;
use crate::serve::{Parts, ServeError};
use crate::settings::ServeSettings;
use crate::tardis::TardisClient;

use super::DownloadError;

/// Why `tickvault serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeCommandError {
    /// The tiers or the fetcher could not be set up.
    #[error(transparent)]
    Setup(#[from] DownloadError),
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}

/// Runs the server until a stop signal.
///
/// # Errors
/// [`ServeCommandError`] when the tiers, the fetcher or the listener cannot be set up.
pub(super) async fn run(settings: &ServeSettings) -> Result<(), ServeCommandError> {
    let local = LocalStore::open(&settings.cache.cache_dir).map_err(DownloadError::Cache)?;
    local.sweep_dead_temps_logged().await;
    let memory = (settings.cache.memory_cache > 0).then(|| MemoryStore::holding_files(settings.cache.memory_cache));
    let remote = settings
        .cache
        .remote
        .as_ref()
        .map(RemoteStore::open)
        .transpose()
        .map_err(DownloadError::Remote)?;
    let stats = Arc::new(FetchStats::default());
    let client =
        TardisClient::new(settings.tardis.client_config()).map_err(|e| DownloadError::Client(e.without_url()))?;
    let config = FetchConfig {
        concurrency: settings.tardis.concurrency,
        rate_limit: settings.tardis.rate_limit,
        decoders: settings.tardis.decoders,
        retry: settings.tardis.retry,
        spool_dir: local.spool_dir(),
        // The memory tier keeps chunk files' bytes, never decoded batches.
        keep_decoded: None,
        // Asked per exchange as chunks come (below): a server fetches any exchange, for weeks.
        exported_until: None,
        min_speed: settings.tardis.min_speed,
        limits: settings.tardis.limits,
        mac: settings.cache.mac.clone(),
    };
    let metadata = Arc::new(Metadata::new(
        &settings.cache.cache_dir,
        Some(client.clone()),
        settings.tardis.retry,
    ));
    let fetcher = Fetcher::new(client, config, stats.clone())
        .map_err(|e| DownloadError::Cache(StoreError::io("starting the decoding threads", e)))?
        .live_exports(metadata);
    if settings.tardis.api_key.is_none() {
        tracing::warn!("no Tardis API key (TARDIS_API_KEY): only cached chunks and first-of-month days can be served");
    }
    let tiered = Tiered::builder(local.clone())
        .memory(memory)
        .remote(remote)
        .fetcher(Some(Arc::new(fetcher)))
        .build();
    let parts = Parts {
        tiered,
        local,
        metrics: Metrics::new(stats),
    };
    crate::serve::run(settings, parts, super::interrupted()).await?;
    Ok(())
}
