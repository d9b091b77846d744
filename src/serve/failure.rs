//! A failed request: its status, the kind counted in the metrics, and one line of text for the
//! client (naming the chunk or the path, never a token or the API key). How a failed lookup
//! maps to a status: what the client's remote tier should make of it.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::metrics::{ErrorKind, Metrics};
use crate::cache::ResolveError;
use crate::fetch::FetchError;
use crate::tardis::HttpError;

/// A request that failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: StatusCode,
    pub kind: ErrorKind,
    pub message: String,
    /// Seconds the client should wait (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl Failure {
    pub fn new(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Counts the failure and answers it.
    pub fn respond(self, metrics: &Metrics) -> Response {
        metrics.error(self.kind);
        let mut r = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
        if self.status == StatusCode::UNAUTHORIZED {
            r = r.header(header::WWW_AUTHENTICATE, "Bearer");
        }
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            r = r.header(header::ALLOW, HeaderValue::from_static("GET, HEAD, PUT"));
        }
        if let Some(s) = self.retry_after {
            r = r.header(header::RETRY_AFTER, s);
        }
        r.body(Body::from(self.message)).unwrap_or_default()
    }

    /// Why a chunk could not be resolved. A 404 is a miss for the client, which then tries its
    /// own next tier; a 5xx is a failure it retries a little, then warns about.
    pub fn resolve(e: &ResolveError) -> Self {
        let message = crate::error::chain(e);
        match e {
            ResolveError::NotCached { .. } => Self::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, message),
            ResolveError::Store { .. } => Self::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Store, message),
            ResolveError::Fetch(f) => Self::fetch(f, message),
        }
    }

    fn fetch(e: &FetchError, message: String) -> Self {
        let (status, kind) = match e {
            FetchError::GaveUp { last, .. } => return Self::fetch(last, message),
            FetchError::KeyRequired { .. } => (StatusCode::NOT_FOUND, ErrorKind::KeyRequired),
            FetchError::Aborted { .. } => (StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Unavailable),
            FetchError::Local { .. } => (StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Store),
            FetchError::Decode(_) => (StatusCode::BAD_GATEWAY, ErrorKind::Upstream),
            FetchError::Http(h) => match h {
                HttpError::Status { status: 404, .. } => (StatusCode::NOT_FOUND, ErrorKind::NotFound),
                HttpError::Status { status: 429, .. } => (StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Unavailable),
                HttpError::QuotaExhausted { retry_after, .. } => {
                    return Self {
                        retry_after: Some(retry_after.as_secs()),
                        ..Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Unavailable, message)
                    };
                }
                _ => (StatusCode::BAD_GATEWAY, ErrorKind::Upstream),
            },
        };
        Self::new(status, kind, message)
    }
}
