//! The routes and the layers around them: a request log line per response (tower-http
//! `TraceLayer`; text or JSON as `--log-format` says), a limit on producing a response
//! (`TimeoutLayer`, 504) and on upload bodies (`RequestBodyLimitLayer`, 413).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::{Span, info, info_span};

use super::metrics::{CONTENT_TYPE, ErrorKind, Metrics};
use super::{Edge, chunks, metadata};

/// The server's routes with their layers.
pub(super) fn router(edge: Arc<Edge>, request_timeout: Duration, max_upload: u64) -> Router {
    let metrics = edge.metrics.clone();
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<Body>| {
            // The path only: a query string is never logged.
            info_span!("request", method = %req.method(), path = %req.uri().path())
        })
        .on_request(())
        .on_response(move |resp: &Response, latency: Duration, _span: &Span| {
            log_response(&metrics, resp, latency);
        })
        .on_body_chunk(())
        .on_eos(())
        .on_failure(());
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
        .layer(trace)
        .with_state(edge)
}

fn log_response(metrics: &Metrics, resp: &Response, latency: Duration) {
    let status = resp.status().as_u16();
    metrics.response(status);
    if status == StatusCode::GATEWAY_TIMEOUT.as_u16() && resp.headers().get(header::CONTENT_TYPE).is_none() {
        // The timeout layer's own answer (handlers always set a content type).
        metrics.error(ErrorKind::Timeout);
    }
    let source = resp
        .headers()
        .get(super::body::SOURCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    info!(status, ms = latency.as_millis() as u64, source, bytes, "answered");
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
