//! `tickvault serve`: the team's pull-through edge cache.
//!
//! One box holds the team's Tardis key and cache; every client points `--remote-cache` at it
//! (and `--api-url` at its `/v1`) and needs no key. The server answers the remote tier's own
//! requests (`GET`/`HEAD`/`PUT` of `v1/{exchange}/{data_type}/{SYMBOL}/{date}.parquet`,
//! [`chunks`]) from its tiers (memory holding hot chunk files, local, its own remote) or
//! fetches from Tardis under one admission for all clients, once per chunk however many ask
//! ([`crate::cache::Tiered`] coalesces). It proxies the exchanges metadata ([`metadata`]),
//! answers `/healthz` and `/metrics` ([`metrics`]), logs one line per request, limits
//! connections ([`listener`]), request time and upload size ([`router`]), and on SIGTERM stops
//! accepting and finishes the responses in flight within `--shutdown-timeout`.
//!
//! Days Tardis has not finished exporting are served with `tickvault-chunk-complete: false`
//! (and `Cache-Control: no-store`); the chunk file itself says so too, so neither the server's
//! tiers nor the client's keep them as complete.

pub mod auth;
mod body;
mod chunks;
mod failure;
mod listener;
mod metadata;
pub mod metrics;
mod path;
mod router;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use body::{COMPLETE_HEADER, SOURCE_HEADER};
pub use metadata::CACHE_HEADER;
pub use path::{BadPath, chunk_key};

use self::auth::Tokens;
use self::metadata::MetadataProxy;
use self::metrics::Metrics;
use crate::cache::{LocalStore, Tiered};
use crate::settings::ServeSettings;

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct Edge {
    tiered: Arc<Tiered>,
    local: LocalStore,
    tokens: Tokens,
    metrics: Metrics,
    metadata: MetadataProxy,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        #[source]
        /// The cause.
        source: std::io::Error,
    },
    /// The metadata proxy's HTTP client could not be built.
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    /// Serving failed.
    #[error("serving on {addr}")]
    Serve {
        /// The address.
        addr: SocketAddr,
        #[source]
        /// The cause.
        source: std::io::Error,
    },
}

/// The tiers and counters a server runs over (built by `commands::serve`).
#[derive(Debug)]
pub struct Parts {
    /// The composite, with the fetcher behind it.
    pub tiered: Arc<Tiered>,
    /// The local tier (uploads are staged in it).
    pub local: LocalStore,
    /// The server's metrics (reading the fetcher's counters).
    pub metrics: Metrics,
}

/// Serves until `stop` resolves, then stops accepting and gives the responses in flight
/// `--shutdown-timeout` to finish; then waits for uploads to the server's own remote.
///
/// # Errors
/// [`ServeError`] when the address cannot be bound or the server cannot start.
pub async fn run(settings: &ServeSettings, parts: Parts, stop: impl Future<Output = ()>) -> Result<(), ServeError> {
    let metadata = MetadataProxy::new(
        settings.tardis.api_url.clone(),
        settings.metadata_ttl,
        settings.tardis.connect_timeout,
        settings.tardis.read_timeout,
    )
    .map_err(|e| ServeError::Client(e.without_url()))?;
    let edge = Arc::new(Edge {
        tiered: parts.tiered.clone(),
        local: parts.local,
        tokens: settings.tokens.clone(),
        metrics: parts.metrics.clone(),
        metadata,
    });
    let addr = settings.listen;
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let bound = tcp.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
    let listener = listener::Limited::new(tcp, settings.max_connections, parts.metrics);
    let app = router::router(edge, settings.request_timeout, settings.max_upload);
    let graceful = CancellationToken::new();
    let server = axum::serve(listener, app).with_graceful_shutdown(graceful.clone().cancelled_owned());
    let mut serving = tokio::spawn(async move { server.await });
    info!(
        "listening on http://{bound} (read tokens: {}, write tokens: {})",
        settings.tokens.read_count(),
        settings.tokens.write_count()
    );
    tokio::select! {
        ended = &mut serving => {
            let source = match ended {
                Ok(Ok(())) => std::io::Error::other("the server stopped"),
                Ok(Err(e)) => e,
                Err(e) => std::io::Error::other(e),
            };
            return Err(ServeError::Serve { addr: bound, source });
        }
        () = stop => {}
    }
    let deadline = settings.shutdown_timeout;
    info!(
        "stopping: no new connections; finishing responses in flight (at most {} s)",
        deadline.as_secs()
    );
    graceful.cancel();
    if tokio::time::timeout(deadline, &mut serving).await.is_err() {
        warn!("responses still in flight after {} s are cut", deadline.as_secs());
        serving.abort();
    }
    let uploads = parts.tiered.finish().await;
    info!(
        "stopped ({} chunks uploaded to the server's remote, {} failed)",
        uploads.uploaded, uploads.failed
    );
    Ok(())
}
