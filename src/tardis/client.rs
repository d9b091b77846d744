//! The Tardis.dev HTTP APIs: the datasets host (day-files) and the metadata API (exchanges).
//!
//! Behaviour follows the official clients (tardis-python 5.0.4 `download_datasets.py`/`_http.py`,
//! tardis-node `downloaddatasets.ts`/`handy.ts`): `Authorization: Bearer` only when a key is
//! set, `Accept-Encoding: gzip` with the body kept compressed (never decoded transparently:
//! whether the host sets `Content-Encoding` is unconfirmed), `?retryAttempt=N` on retries.
//! No retry happens here; see [`HttpError::retryable`] and [`crate::fetch`].

use std::time::Duration;

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use url::Url;

use super::error::HttpError;
use super::secret::{Secret, redact_url};
use crate::model::ChunkKey;

/// Settings of the HTTP client.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base of the datasets API.
    pub datasets_url: Url,
    /// Base of the metadata API.
    pub api_url: Url,
    /// The API key; sent only as a bearer token.
    pub api_key: Option<Secret>,
    /// Limit on connecting.
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

    /// The client's settings.
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
    /// [`HttpError::Status`], [`HttpError::QuotaExhausted`] or [`HttpError::Transport`].
    pub async fn get_dataset(&self, key: &ChunkKey, attempt: u32) -> Result<reqwest::Response, HttpError> {
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
        let resp = req.send().await.map_err(|e| HttpError::Transport {
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

    /// The body of a metadata API document, `{api_url}/{path}` (no API key is sent). A body
    /// over `limit` bytes is refused rather than held in memory.
    ///
    /// # Errors
    /// [`HttpError::Status`] (404 for an unknown exchange), [`HttpError::Transport`],
    /// [`HttpError::TooLarge`].
    pub async fn get_api(&self, path: &str, limit: u64) -> Result<bytes::Bytes, HttpError> {
        let url = join(&self.config.api_url, path);
        let shown = redact_url(&url);
        let transport = |what, e: reqwest::Error| HttpError::Transport {
            url: shown.clone(),
            what,
            source: e.without_url(),
        };
        let resp = self.http.get(url.clone()).send().await.map_err(|e| {
            let what = if e.is_connect() {
                "connect failed"
            } else {
                "request failed"
            };
            transport(what, e)
        })?;
        let mut resp = check_status(resp, shown.clone()).await?;
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(HttpError::TooLarge { url: shown, limit });
        }
        let mut body = Vec::new();
        while let Some(piece) = resp.chunk().await.map_err(|e| transport("body interrupted", e))? {
            if body.len() as u64 + piece.len() as u64 > limit {
                return Err(HttpError::TooLarge { url: shown, limit });
            }
            body.extend_from_slice(&piece);
        }
        Ok(body.into())
    }
}

/// Joins a relative path onto a base URL, keeping the base's path (`…/v1` + `x` = `…/v1/x`).
fn join(base: &Url, path: &str) -> Url {
    let mut u = base.clone();
    let joined = format!("{}/{}", base.path().trim_end_matches('/'), path);
    u.set_path(&joined);
    u
}

async fn check_status(resp: reqwest::Response, url: String) -> Result<reqwest::Response, HttpError> {
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
        return Err(HttpError::QuotaExhausted { url, retry_after: ra });
    }
    Err(HttpError::Status {
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
}
