//! The routes and the layers around them: a log line per request (one event with its fields,
//! text or JSON as `--log-format` says; a small axum middleware, outermost, so it also sees
//! the layers' own answers), a limit on producing a response (tower-http `TimeoutLayer`, 504)
//! and on upload bodies (`RequestBodyLimitLayer`, 413).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tracing::info;

use super::metrics::{CONTENT_TYPE, ErrorKind, Metrics};
use super::{Edge, chunks, metadata};

/// The server's routes with their layers.
pub(super) fn router(edge: Arc<Edge>, request_timeout: Duration, max_upload: u64) -> Router {
    let metrics = edge.metrics.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/exchanges", get(metadata::list))
        .route("/v1/exchanges/{id}", get(metadata::details))
        .fallback(chunks::handle)
        .layer(RequestBodyLimitLayer::new(
            usize::try_from(max_upload).unwrap_or(usize::MAX),
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            request_timeout,
        ))
        .layer(from_fn_with_state(metrics, log_request))
        .with_state(edge)
}

/// Counts the response and logs one line: method, path (never the query string), status,
/// milliseconds to the response head, the tier that answered, the body's length.
async fn log_request(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let status = resp.status().as_u16();
    metrics.response(status);
    if status == StatusCode::GATEWAY_TIMEOUT.as_u16() && resp.headers().get(header::CONTENT_TYPE).is_none() {
        // The timeout layer's own answer (handlers always set a content type).
        metrics.error(ErrorKind::Timeout);
    }
    let text = |name| resp.headers().get(name).and_then(|v| v.to_str().ok());
    let source = text(super::body::SOURCE_HEADER).unwrap_or("-");
    let bytes = text(header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    let shown_bytes = bytes.map_or_else(|| "-".to_string(), |b| format!("{b} B"));
    info!(
        event = "request",
        method = %method,
        path = %path,
        status,
        ms,
        source,
        bytes = bytes.unwrap_or(0),
        "{method} {path} {status} {ms} ms {source} {shown_bytes}"
    );
    resp
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics_text(State(edge): State<Arc<Edge>>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, CONTENT_TYPE)
        .body(Body::from(edge.metrics.render()))
        .unwrap_or_default()
}
