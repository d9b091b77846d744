//! The exchanges metadata proxy: `/v1/exchanges` and `/v1/exchanges/{id}`, answered with the
//! same bodies and statuses as `{--api-url}/exchanges…` (api.tardis.dev needs no key for
//! them) and kept for `--metadata-ttl`, so clients pointing `--api-url` at the server validate
//! their requests and learn `datasets.exportedUntil` without a key, and a team asks the
//! metadata API once per TTL. Concurrent misses for one path share one upstream request;
//! answers are bounded in size; only 200 and 404 are kept.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use moka::future::Cache;
use url::Url;

use super::Edge;
use super::failure::Failure;
use super::metrics::ErrorKind;
use crate::model::valid_exchange;
use crate::tardis::redact_url;

/// Largest metadata document read from upstream (the biggest exchange details are a few MB).
const MAX_DOCUMENT: usize = 64 * 1024 * 1024;
/// Paths kept at once (the list and one per exchange id asked for).
const MAX_ENTRIES: u64 = 1024;
/// Says whether the answer came from the proxy's cache (`hit`) or from upstream (`miss`).
pub const CACHE_HEADER: &str = "tickvault-metadata-cache";

/// An upstream answer worth keeping.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: Option<HeaderValue>,
    body: Bytes,
}

/// The proxy: an HTTP client for the metadata API and the answers kept.
#[derive(Debug)]
pub(crate) struct MetadataProxy {
    http: reqwest::Client,
    base: Url,
    cache: Cache<String, Arc<Answer>>,
}

impl MetadataProxy {
    /// A proxy of `base` (e.g. `https://api.tardis.dev/v1`) keeping answers for `ttl`.
    ///
    /// # Errors
    /// The HTTP client cannot be built.
    pub(crate) fn new(
        base: Url,
        ttl: Duration,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("tickvault/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .build()?;
        let cache = Cache::builder().max_capacity(MAX_ENTRIES).time_to_live(ttl).build();
        Ok(Self { http, base, cache })
    }

    /// The answer for `rel` (`exchanges` or `exchanges/{id}`), and whether it was kept.
    async fn answer(&self, rel: String) -> Result<(Arc<Answer>, bool), Failure> {
        let entry = self
            .cache
            .entry(rel.clone())
            .or_try_insert_with(self.fetch(&rel))
            .await
            .map_err(|f: Arc<Failure>| Failure::new(f.status, f.kind, f.message.clone()))?;
        Ok((entry.value().clone(), !entry.is_fresh()))
    }

    async fn fetch(&self, rel: &str) -> Result<Arc<Answer>, Failure> {
        let mut url = self.base.clone();
        let path = format!("{}/{rel}", self.base.path().trim_end_matches('/'));
        url.set_path(&path);
        let shown = redact_url(&url);
        let upstream = |what: String| Failure::new(StatusCode::BAD_GATEWAY, ErrorKind::Upstream, what);
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| upstream(format!("{shown}: {}", crate::error::chain(&e.without_url()))))?;
        let status = resp.status();
        let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
        let mut body = BytesMut::new();
        let mut resp = resp;
        while let Some(piece) = resp
            .chunk()
            .await
            .map_err(|e| upstream(format!("{shown}: reading: {}", crate::error::chain(&e.without_url()))))?
        {
            if body.len() + piece.len() > MAX_DOCUMENT {
                return Err(upstream(format!("{shown}: answer larger than {MAX_DOCUMENT} bytes")));
            }
            body.extend_from_slice(&piece);
        }
        if status != StatusCode::OK && status != StatusCode::NOT_FOUND {
            return Err(upstream(format!("{shown}: HTTP {}", status.as_u16())));
        }
        Ok(Arc::new(Answer {
            status: StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
            content_type: content_type.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()),
            body: body.freeze(),
        }))
    }
}

/// `GET /v1/exchanges`.
pub(super) async fn list(State(edge): State<Arc<Edge>>) -> Response {
    proxy(&edge, "exchanges".to_string()).await
}

/// `GET /v1/exchanges/{id}`.
pub(super) async fn details(State(edge): State<Arc<Edge>>, Path(id): Path<String>) -> Response {
    if !valid_exchange(&id) {
        let msg = "not an exchange id (lower-case letters, digits and '-')";
        return Failure::new(StatusCode::BAD_REQUEST, ErrorKind::BadPath, msg).respond(&edge.metrics);
    }
    proxy(&edge, format!("exchanges/{id}")).await
}

async fn proxy(edge: &Edge, rel: String) -> Response {
    match edge.metadata.answer(rel).await {
        Ok((answer, hit)) => {
            edge.metrics.metadata(hit);
            let mut r = Response::builder()
                .status(answer.status)
                .header(CACHE_HEADER, if hit { "hit" } else { "miss" });
            if let Some(ct) = &answer.content_type {
                r = r.header(header::CONTENT_TYPE, ct);
            }
            r.body(Body::from(answer.body.clone())).unwrap_or_default()
        }
        Err(f) => {
            edge.metrics.metadata(false);
            f.respond(&edge.metrics)
        }
    }
}
