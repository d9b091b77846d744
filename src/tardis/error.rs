//! How a request to Tardis can fail, and which failures another attempt may cure.

use std::time::Duration;

/// Why a request to Tardis failed (HTTP and transport only; decoding and local failures are
/// [`crate::fetch::FetchError`]s).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A non-200 answer.
    #[error("{url}: HTTP {status}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Status {
        /// The URL, without credentials.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
        /// The error message of the body (JSON `message`, or an excerpt of the text).
        message: Option<String>,
    },
    /// Connecting, sending or receiving failed (reset, timeout, body cut mid-stream).
    #[error("{url}: {what}")]
    Transport {
        /// The URL, without credentials.
        url: String,
        /// What failed.
        what: &'static str,
        #[source]
        /// The cause.
        source: reqwest::Error,
    },
    /// The body ended before `Content-Length` bytes arrived.
    #[error("{url}: body ended after {received} of {expected} bytes")]
    ShortBody {
        /// The URL, without credentials.
        url: String,
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        expected: u64,
    },
    /// A metadata document larger than the limit (never held in memory whole).
    #[error("{url}: the answer is larger than {limit} bytes")]
    TooLarge {
        /// The URL, without credentials.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// HTTP 429 with a `Retry-After` beyond what a run should wait: the account's data-transfer
    /// quota is used up (tardis-python treats > 300 s the same way).
    #[error("{url}: Tardis quota exhausted: HTTP 429 asks to retry after {} s; stopping (quotas reset at 00:00 UTC daily and on the 1st monthly)", retry_after.as_secs())]
    QuotaExhausted {
        /// The URL, without credentials.
        url: String,
        /// The server's `Retry-After`.
        retry_after: Duration,
    },
}

impl HttpError {
    /// Whether another attempt may succeed. Each case gives its reason.
    pub fn retryable(&self) -> bool {
        match self {
            HttpError::Status { status, message, .. } => match *status {
                // Rate limited: wait (Retry-After) and retry.
                429 => true,
                // Request timeout and server errors are transient.
                408 | 500..=599 => true,
                // tardis-python retries a 400 only for this transient server-side message.
                400 => message.as_deref().is_some_and(|m| m.contains("ISO 8601 format")),
                // 401 bad/missing key, 403 no access, 404 no such file: retrying cannot help
                // (tardis-python 73a8239 "Stop retrying non-retryable 403/404").
                _ => false,
            },
            // Connection refused/reset, timeouts, a body cut mid-stream: transient.
            HttpError::Transport { source, .. } => !source.is_builder(),
            HttpError::ShortBody { .. } => true,
            HttpError::QuotaExhausted { .. } | HttpError::TooLarge { .. } => false,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether every other request of the run would get the same answer, so the run stops:
    /// an exhausted quota, or a key Tardis refuses (401; a 403 may concern one symbol only).
    pub fn stops_the_run(&self) -> bool {
        matches!(
            self,
            HttpError::QuotaExhausted { .. } | HttpError::Status { status: 401, .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_statuses_retry() {
        let st = |status, message: Option<&str>| HttpError::Status {
            url: String::new(),
            status,
            retry_after: None,
            message: message.map(str::to_string),
        };
        let retried: Vec<u16> = [400, 401, 403, 404, 408, 409, 429, 500, 502, 503, 504]
            .into_iter()
            .filter(|s| st(*s, None).retryable())
            .collect();
        assert_eq!(retried, vec![408, 429, 500, 502, 503, 504]);
        assert!(st(400, Some("Invalid 'from' param - ISO 8601 format expected")).retryable());
        assert!(st(401, None).stops_the_run() && !st(403, None).stops_the_run());
    }
}
