//! The server's metrics, exposed at `/metrics` in the Prometheus text format (0.0.4) with
//! prometheus-client: chunk lookups by the tier that answered, single-flight joins, requests
//! and connections in flight, bytes served, uploads, metadata cache hits, errors by kind,
//! responses by status, and the traffic to Tardis (read from the fetcher's own counters at
//! scrape time, so they are exactly what the fetcher counted).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::cache::Tier;
use crate::fetch::FetchStats;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Why a request failed, as counted in `tickvault_errors_total{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The path is not a chunk key (400).
    BadPath,
    /// No or an unknown token (401).
    Unauthorized,
    /// A token without the scope asked for (403).
    Forbidden,
    /// A method the path does not take (405).
    Method,
    /// Tardis has no such file (404).
    NotFound,
    /// The server has no API key for a day that needs one (404).
    KeyRequired,
    /// Tardis failed or refused (502).
    Upstream,
    /// Fetching is stopped for now: quota exhausted or the key refused (503).
    Unavailable,
    /// A local file operation failed (500).
    Store,
    /// An upload that is not a sound, complete chunk file for its key (413, 422).
    Rejected,
    /// No response within `--request-timeout` (504).
    Timeout,
    /// The client went away before the whole body was sent.
    ClientGone,
}

impl ErrorKind {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadPath => "bad_path",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Method => "method",
            ErrorKind::NotFound => "not_found",
            ErrorKind::KeyRequired => "key_required",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Store => "store",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ClientGone => "client_gone",
        }
    }
}

type Labels = [(&'static str, &'static str); 1];
type StatusLabels = [(&'static str, String); 1];

/// The counters and gauges of one server. Clones share them.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    hits: Family<Labels, Counter>,
    joins: Counter,
    in_flight: Gauge,
    connections: Gauge,
    bytes_served: Counter,
    uploads: Counter,
    metadata: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    responses: Family<StatusLabels, Counter>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics, reading Tardis traffic from `fetch`.
    pub fn new(fetch: Arc<FetchStats>) -> Self {
        let mut registry = Registry::default();
        let hits = Family::<Labels, Counter>::default();
        let joins = Counter::default();
        let in_flight = Gauge::default();
        let connections = Gauge::default();
        let bytes_served = Counter::default();
        let uploads = Counter::default();
        let metadata = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let responses = Family::<StatusLabels, Counter>::default();
        registry.register(
            "tickvault_chunk_hits",
            "Chunk lookups by the tier that answered them (memory, local, remote, tardis); joins are counted apart",
            hits.clone(),
        );
        registry.register(
            "tickvault_singleflight_joins",
            "Chunk requests that joined a lookup of the same chunk already in flight",
            joins.clone(),
        );
        registry.register(
            "tickvault_requests_in_flight",
            "Requests being answered, bodies still streaming included",
            in_flight.clone(),
        );
        registry.register(
            "tickvault_connections_open",
            "Client connections open",
            connections.clone(),
        );
        registry.register(
            "tickvault_bytes_served",
            "Chunk file bytes sent to clients",
            bytes_served.clone(),
        );
        registry.register("tickvault_uploads", "Chunk files stored by PUT", uploads.clone());
        registry.register(
            "tickvault_metadata_requests",
            "Exchange metadata requests, by whether the cache answered (hit) or the metadata API (miss)",
            metadata.clone(),
        );
        registry.register("tickvault_errors", "Failed requests by kind", errors.clone());
        registry.register(
            "tickvault_http_responses",
            "HTTP responses by status code",
            responses.clone(),
        );
        registry.register_collector(Box::new(TardisTraffic(fetch)));
        // Make every labelled series visible from the start, at 0.
        for tier in [Tier::Memory, Tier::Local, Tier::Remote, Tier::Tardis] {
            let _ = hits.get_or_create(&[("tier", tier.as_str())]);
        }
        Self(Arc::new(Inner {
            registry,
            hits,
            joins,
            in_flight,
            connections,
            bytes_served,
            uploads,
            metadata,
            errors,
            responses,
        }))
    }

    /// A lookup answered by `tier`.
    pub fn hit(&self, tier: Tier) {
        self.0.hits.get_or_create(&[("tier", tier.as_str())]).inc();
    }

    /// A request that joined a lookup in flight.
    pub fn join(&self) {
        self.0.joins.inc();
    }

    /// Chunk bytes sent.
    pub fn served(&self, bytes: u64) {
        self.0.bytes_served.inc_by(bytes);
    }

    /// A stored upload.
    pub fn upload(&self) {
        self.0.uploads.inc();
    }

    /// A metadata request, answered from the cache or not.
    pub fn metadata(&self, hit: bool) {
        let label = if hit { "hit" } else { "miss" };
        self.0.metadata.get_or_create(&[("cache", label)]).inc();
    }

    /// A failed request.
    pub fn error(&self, kind: ErrorKind) {
        self.0.errors.get_or_create(&[("kind", kind.as_str())]).inc();
    }

    /// A response sent with `status`.
    pub fn response(&self, status: u16) {
        self.0.responses.get_or_create(&[("code", status.to_string())]).inc();
    }

    /// Counts a request in flight until the guard is dropped.
    pub fn in_flight(&self) -> InFlight {
        self.0.in_flight.inc();
        InFlight(self.clone())
    }

    /// Counts an open connection until the guard is dropped.
    pub fn connection(&self) -> Connection {
        self.0.connections.inc();
        Connection(self.clone())
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.0.registry);
        out
    }
}

/// A request in flight; dropping it ends it.
#[derive(Debug)]
pub struct InFlight(Metrics);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.in_flight.dec();
    }
}

/// An open connection; dropping it closes it.
#[derive(Debug)]
pub struct Connection(Metrics);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.0.connections.dec();
    }
}

/// The fetcher's counters, read at scrape time.
#[derive(Debug)]
struct TardisTraffic(Arc<FetchStats>);

impl Collector for TardisTraffic {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let s = &self.0;
        for (name, help, value) in [
            (
                "tickvault_tardis_requests",
                "Dataset requests sent to Tardis, retries included",
                &s.requests,
            ),
            (
                "tickvault_tardis_retries",
                "Dataset requests that were retries",
                &s.retries,
            ),
            (
                "tickvault_tardis_bytes",
                "Compressed bytes received from Tardis (what Tardis bills)",
                &s.bytes,
            ),
        ] {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_prometheus_text_format() {
        let stats = Arc::new(FetchStats::default());
        stats.requests.store(3, Ordering::Relaxed);
        let m = Metrics::new(stats);
        m.hit(Tier::Local);
        m.hit(Tier::Local);
        m.join();
        m.error(ErrorKind::BadPath);
        m.response(400);
        m.served(1234);
        let flight = m.in_flight();
        let text = m.render();
        for line in [
            "tickvault_chunk_hits_total{tier=\"local\"} 2",
            "tickvault_chunk_hits_total{tier=\"tardis\"} 0",
            "tickvault_singleflight_joins_total 1",
            "tickvault_errors_total{kind=\"bad_path\"} 1",
            "tickvault_http_responses_total{code=\"400\"} 1",
            "tickvault_bytes_served_total 1234",
            "tickvault_requests_in_flight 1",
            "tickvault_tardis_requests_total 3",
            "# TYPE tickvault_tardis_bytes_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line:?} in\n{text}");
        }
        drop(flight);
        assert!(m.render().lines().any(|l| l == "tickvault_requests_in_flight 0"));
    }
}
