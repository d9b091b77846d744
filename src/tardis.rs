//! The Tardis.dev HTTP APIs: the datasets host (day-files) and the metadata API (exchanges).
//!
//! Behaviour follows the official clients (tardis-python 5.0.4 `download_datasets.py`/`_http.py`,
//! tardis-node `downloaddatasets.ts`/`handy.ts`): `Authorization: Bearer` only when a key is
//! set, `Accept-Encoding: gzip` with the body kept compressed (never decoded transparently:
//! whether the host sets `Content-Encoding` is unconfirmed), `?retryAttempt=N` on retries.
//! No retry happens here; see [`FetchError::retryable`] and `fetch.rs`.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use url::Url;

use crate::decode::DecodeError;
use crate::model::ChunkKey;

/// A secret (API key or token): never shown by `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value; empty or blank values mean "no secret".
    pub fn new(value: impl Into<String>) -> Option<Self> {
        let v = value.into().trim().to_string();
        (!v.is_empty()).then_some(Self(v))
    }
    /// The secret itself, for building a header. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A URL as it may be shown to a user: no user-info, no query string, no fragment (either
/// may carry credentials).
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// Why a request to Tardis failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A non-200 answer.
    #[error("{url}: HTTP {status}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Status {
        url: String,
        status: u16,
        retry_after: Option<Duration>,
        message: Option<String>,
    },
    /// Connecting, sending or receiving failed (reset, timeout, body cut mid-stream).
    #[error("{url}: {what}: {source}")]
    Transport {
        url: String,
        what: &'static str,
        #[source]
        source: reqwest::Error,
    },
    /// The body ended before `Content-Length` bytes arrived.
    #[error("{url}: body ended after {received} of {expected} bytes")]
    ShortBody { url: String, received: u64, expected: u64 },
    /// The body could not be decoded; gzip and input errors are transient, the rest are not.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// HTTP 429 with a `Retry-After` beyond what a run should wait: the account's data-transfer
    /// quota is used up (tardis-python treats > 300 s the same way).
    #[error("{url}: Tardis quota exhausted: HTTP 429 asks to retry after {} s; stopping (quotas reset at 00:00 UTC daily and on the 1st monthly)", retry_after.as_secs())]
    QuotaExhausted { url: String, retry_after: Duration },
    /// Without an API key only the first day of each month may be downloaded.
    #[error(
        "{chunk}: an API key is required for days other than the first of the month (set --api-key or TARDIS_API_KEY)"
    )]
    KeyRequired { chunk: String },
    /// A local file operation failed (spool, chunk file).
    #[error("{what}: {source}")]
    Local {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Not attempted because the run was stopped by an earlier fatal answer.
    #[error("{chunk}: not attempted: {reason}")]
    Aborted { chunk: String, reason: String },
    /// Retries were exhausted, or a later attempt failed for good.
    #[error("{last} (gave up after {attempts} attempts over {:.1} s)", elapsed.as_secs_f64())]
    GaveUp {
        attempts: u32,
        elapsed: Duration,
        #[source]
        last: Box<FetchError>,
    },
}

impl FetchError {
    /// Whether another attempt may succeed. Each case gives its reason.
    pub fn retryable(&self) -> bool {
        match self {
            FetchError::Status { status, message, .. } => match *status {
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
            FetchError::Transport { source, .. } => !source.is_builder(),
            FetchError::ShortBody { .. } => true,
            // A truncated gzip or one failing its CRC is a damaged transfer: fetch again.
            // A header mismatch or an unparsable row is in the file itself: retrying cannot help.
            FetchError::Decode(e) => matches!(e, DecodeError::Gzip { .. } | DecodeError::Input { .. }),
            FetchError::QuotaExhausted { .. }
            | FetchError::KeyRequired { .. }
            | FetchError::Local { .. }
            | FetchError::Aborted { .. }
            | FetchError::GaveUp { .. } => false,
        }
    }

    /// The server's `Retry-After`, if it sent one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the answer means the key cannot fetch this data at all (401/403), so the rest of
    /// the run would fail the same way.
    pub fn is_auth(&self) -> bool {
        match self {
            FetchError::Status { status, .. } => matches!(status, 401 | 403),
            FetchError::GaveUp { last, .. } => last.is_auth(),
            _ => false,
        }
    }

    /// The error behind retries.
    pub fn root(&self) -> &FetchError {
        match self {
            FetchError::GaveUp { last, .. } => last.root(),
            e => e,
        }
    }
}

/// Settings of the HTTP client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub datasets_url: Url,
    pub api_url: Url,
    pub api_key: Option<Secret>,
    pub connect_timeout: Duration,
    /// Longest silence while reading a response before it counts as a transient failure.
    pub read_timeout: Duration,
}

/// A client for the datasets host and the metadata API.
#[derive(Debug, Clone)]
pub struct TardisClient {
    http: reqwest::Client,
    config: ClientConfig,
}

/// Longest `Retry-After` honoured; a longer one means the quota is exhausted (tardis-python).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl TardisClient {
    /// # Errors
    /// Fails when the TLS backend cannot be initialised.
    pub fn new(config: ClientConfig) -> Result<Self, reqwest::Error> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        let http = reqwest::Client::builder()
            .user_agent(concat!("tickvault/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .tcp_nodelay(true)
            // Tardis recommends HTTP/1.1 ("HTTP 2 was noticeably slower"); one connection per
            // download keeps bodies from sharing a window.
            .http1_only()
            .build()?;
        Ok(Self { http, config })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The URL of a chunk's day-file.
    pub fn dataset_url(&self, key: &ChunkKey) -> Url {
        join(&self.config.datasets_url, &key.url_path())
    }

    /// Sends the GET for a day-file and returns the response once its status is 200.
    /// `attempt` ≥ 2 adds `?retryAttempt=N-1`, as the official clients do.
    ///
    /// # Errors
    /// [`FetchError::Status`], [`FetchError::QuotaExhausted`] or [`FetchError::Transport`].
    pub async fn get_dataset(&self, key: &ChunkKey, attempt: u32) -> Result<reqwest::Response, FetchError> {
        let mut url = self.dataset_url(key);
        if attempt > 1 {
            url.query_pairs_mut()
                .append_pair("retryAttempt", &(attempt - 1).to_string());
        }
        let shown = redact_url(&url);
        let mut req = self.http.get(url);
        if let Some(key) = &self.config.api_key {
            req = req.header(AUTHORIZATION, format!("Bearer {}", key.expose()));
        }
        let resp = req.send().await.map_err(|e| FetchError::Transport {
            url: shown.clone(),
            what: if e.is_connect() {
                "connect failed"
            } else {
                "request failed"
            },
            source: e.without_url(),
        })?;
        check_status(resp, shown).await
    }

    /// `datasets.exportedUntil` of `/v1/exchanges/{exchange}`: data before this instant is
    /// exported and final.
    ///
    /// # Errors
    /// Any HTTP or transport failure, or a body without the field.
    pub async fn exported_until(&self, exchange: &str) -> Result<Timestamp, FetchError> {
        let url = join(&self.config.api_url, &format!("exchanges/{exchange}"));
        let shown = redact_url(&url);
        let transport = |what, e: reqwest::Error| FetchError::Transport {
            url: shown.clone(),
            what,
            source: e.without_url(),
        };
        let resp = self
            .http
            .get(url.clone())
            .send()
            .await
            .map_err(|e| transport("request failed", e))?;
        let resp = check_status(resp, shown.clone()).await?;
        let body = resp.bytes().await.map_err(|e| transport("reading body", e))?;
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        body.pointer("/datasets/exportedUntil")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<Timestamp>().ok())
            .ok_or_else(|| FetchError::Status {
                url: shown,
                status: 200,
                retry_after: None,
                message: Some("no valid datasets.exportedUntil in the response".into()),
            })
    }
}

/// Joins a relative path onto a base URL, keeping the base's path (`…/v1` + `x` = `…/v1/x`).
fn join(base: &Url, path: &str) -> Url {
    let mut u = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    u.set_path(&joined);
    u
}

async fn check_status(resp: reqwest::Response, url: String) -> Result<reqwest::Response, FetchError> {
    let status = resp.status();
    if status == StatusCode::OK {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    // Error bodies are JSON `{"code":…,"message":"…"}` on api.tardis.dev; keep a short excerpt.
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .or_else(|| {
            let t = body.trim();
            (!t.is_empty()).then(|| t.chars().take(200).collect())
        });
    if status == StatusCode::TOO_MANY_REQUESTS
        && let Some(ra) = retry_after
        && ra > MAX_RETRY_AFTER
    {
        return Err(FetchError::QuotaExhausted { url, retry_after: ra });
    }
    Err(FetchError::Status {
        url,
        status: status.as_u16(),
        retry_after,
        message,
    })
}

/// `Retry-After` as whole seconds (what Tardis sends) or an HTTP date.
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let secs = (when - Timestamp::now()).get_seconds().max(0);
    Some(Duration::from_secs(secs.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-abc").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(Secret::new("  ").is_none());
    }

    #[test]
    fn urls_lose_credentials_when_shown() {
        let u: Url = "https://user:pw@datasets.example/v1/x.csv.gz?token=t#f"
            .parse()
            .unwrap();
        assert_eq!(redact_url(&u), "https://datasets.example/v1/x.csv.gz");
    }

    #[test]
    fn paths_join_under_the_base() {
        let base: Url = "http://127.0.0.1:9/datasets/v1/".parse().unwrap();
        assert_eq!(
            join(&base, "a/b.csv.gz").as_str(),
            "http://127.0.0.1:9/datasets/v1/a/b.csv.gz"
        );
        let base: Url = "https://datasets.tardis.dev/v1".parse().unwrap();
        assert_eq!(join(&base, "a").as_str(), "https://datasets.tardis.dev/v1/a");
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn which_statuses_retry() {
        let st = |status, message: Option<&str>| FetchError::Status {
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
        assert!(st(401, None).is_auth() && st(403, None).is_auth() && !st(404, None).is_auth());
    }
}
