//! An object store from a URL: `http(s)://` (WebDAV GET/HEAD/PUT, nginx's dav module is the
//! reference server), `s3://`, `gs://`, `az://` (credentials and client settings from their
//! usual environment: `AWS_*`, `GOOGLE_*`, `AZURE_*`) and `file://` (a directory).

use std::sync::Arc;
use std::time::Duration;

use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ClientOptions, ObjectStore, RetryConfig};
use url::Url;

use crate::tardis::Secret;

/// The schemes [`build`] accepts, for messages.
pub(crate) const SCHEMES: &str = "http, https, s3, gs, az or file";

/// How to reach a store.
pub(crate) struct StoreOptions<'a> {
    /// Bearer token for HTTP stores.
    pub token: Option<&'a Secret>,
    /// Basic credentials for HTTP stores (from the URL's user-info).
    pub basic: Option<&'a (String, Secret)>,
    /// Limit on one request.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

/// A store and whether it supports multipart uploads.
pub(crate) struct Built {
    pub store: Arc<dyn ObjectStore>,
    pub multipart: bool,
    /// For HTTP remotes: uploads streamed from the file (HttpStore would hold it whole).
    pub http_put: Option<super::http_put::HttpPut>,
}

/// A cloud store's builder from the environment, with the URL, the retry policy and the
/// timeouts.
macro_rules! cloud_store {
    ($builder:ty, $client_key:path, $url:expr, $opts:expr, $retry:expr) => {{
        let mut b = <$builder>::from_env().with_url($url.as_str()).with_retry($retry);
        for (k, v) in timeouts($opts) {
            b = b.with_config($client_key(k), v);
        }
        Arc::new(b.build().map_err(|e| e.to_string())?)
    }};
}

/// Checks a URL's scheme and shape without building anything or touching the disk.
///
/// # Errors
/// A message saying why the URL cannot be a store.
pub(crate) fn check(url: &Url) -> Result<(), String> {
    match url.scheme() {
        "http" | "https" | "s3" | "gs" | "az" | "azure" | "abfs" | "abfss" => Ok(()),
        "file" => url.to_file_path().map(|_| ()).map_err(|()| "not a local path".into()),
        other => Err(format!("unsupported scheme '{other}' (expected {SCHEMES})")),
    }
}

/// Fail fast and fall back to the next tier rather than retrying for minutes.
fn retry(opts: &StoreOptions<'_>) -> RetryConfig {
    RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: opts.timeout,
    }
}

/// The multipart interface of an `s3`, `gs` or `az` URL's store, whose uploads have ids that
/// can be recorded and aborted later; its keys are not prefixed (see [`key_prefix`]). `None`
/// for other schemes.
///
/// # Errors
/// A message saying why the URL cannot be a store.
pub(crate) fn multipart_store(
    url: &Url,
    opts: &StoreOptions<'_>,
) -> Result<Option<Arc<dyn object_store::multipart::MultipartStore>>, String> {
    use object_store::multipart::MultipartStore;
    check(url)?;
    let retry = retry(opts);
    Ok(Some(match url.scheme() {
        "s3" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            cloud_store!(AmazonS3Builder, AmazonS3ConfigKey::Client, url, opts, retry) as Arc<dyn MultipartStore>
        }
        "gs" => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
            cloud_store!(GoogleCloudStorageBuilder, GoogleConfigKey::Client, url, opts, retry)
                as Arc<dyn MultipartStore>
        }
        "az" | "azure" | "abfs" | "abfss" => {
            use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
            cloud_store!(MicrosoftAzureBuilder, AzureConfigKey::Client, url, opts, retry) as Arc<dyn MultipartStore>
        }
        _ => return Ok(None),
    }))
}

/// The key prefix of an `s3`/`gs`/`az` URL: its path after the bucket, without slashes.
pub(crate) fn key_prefix(url: &Url) -> String {
    url.path().trim_matches('/').to_string()
}

/// Builds the store for `url` (creating a `file://` directory). No request is sent.
///
/// # Errors
/// A message saying why the URL cannot be a store.
pub(crate) fn build(url: &Url, opts: &StoreOptions<'_>) -> Result<Built, String> {
    check(url)?;
    let retry = retry(opts);
    let (store, multipart): (Arc<dyn ObjectStore>, bool) = match url.scheme() {
        "http" | "https" => return http(url, opts, retry),
        "file" => return file(url),
        "s3" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            (
                cloud_store!(AmazonS3Builder, AmazonS3ConfigKey::Client, url, opts, retry) as Arc<dyn ObjectStore>,
                true,
            )
        }
        "gs" => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
            (
                cloud_store!(GoogleCloudStorageBuilder, GoogleConfigKey::Client, url, opts, retry)
                    as Arc<dyn ObjectStore>,
                true,
            )
        }
        _ => {
            use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
            (
                cloud_store!(MicrosoftAzureBuilder, AzureConfigKey::Client, url, opts, retry) as Arc<dyn ObjectStore>,
                true,
            )
        }
    };
    // For s3/gs/az the URL path after the bucket is a key prefix (the host is the bucket).
    let prefix = url.path().trim_matches('/');
    let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    };
    Ok(Built {
        store,
        multipart,
        http_put: None,
    })
}

/// The HTTP client's own limit on a whole request: only a backstop. The remote tier sets the
/// real deadlines itself (the request timeout for an answer and for each silence, the minimum
/// transfer speed for bodies, a deadline from the size for uploads), so a big object on a slow
/// but steady link is not cut at the request timeout.
fn request_timeout(opts: &StoreOptions<'_>) -> Duration {
    (opts.timeout + Duration::from_secs(1)).max(Duration::from_secs(6 * 3600))
}

fn http(url: &Url, opts: &StoreOptions<'_>, retry: RetryConfig) -> Result<Built, String> {
    let mut client = ClientOptions::new()
        .with_timeout(request_timeout(opts))
        .with_connect_timeout(opts.connect_timeout)
        .with_allow_http(true);
    let auth = authorization(opts)?;
    if let Some(value) = auth.clone() {
        let mut headers = object_store::HeaderMap::new();
        headers.insert("authorization", value);
        client = client.with_default_headers(headers);
    }
    // HttpStore joins keys with its own '/': the base must not end with one.
    let mut base = url.clone();
    let trimmed = base.path().trim_end_matches('/').to_string();
    base.set_path(&trimmed);
    let store = object_store::http::HttpBuilder::new()
        .with_url(base.as_str())
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| e.to_string())?;
    // HttpStore has no multipart upload: files are PUT streamed, by our own client.
    let http_put = super::http_put::HttpPut::new(&base, auth, opts.connect_timeout)?;
    Ok(Built {
        store: Arc::new(store),
        multipart: false,
        http_put: Some(http_put),
    })
}

/// The `Authorization` header of an HTTP store: the bearer token, else Basic credentials.
pub(crate) fn authorization(opts: &StoreOptions<'_>) -> Result<Option<object_store::HeaderValue>, String> {
    let text = match (opts.token, opts.basic) {
        (Some(token), _) => format!("Bearer {}", token.expose()),
        (None, Some((user, pass))) => {
            use base64_encode as b64;
            format!("Basic {}", b64(format!("{user}:{}", pass.expose()).as_bytes()))
        }
        (None, None) => return Ok(None),
    };
    let mut value = object_store::HeaderValue::from_str(&text)
        .map_err(|_| "the remote cache credentials are not a valid header value".to_string())?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// Standard base64 with padding (for Basic authorization).
fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn file(url: &Url) -> Result<Built, String> {
    let path = url.to_file_path().map_err(|()| "not a local path".to_string())?;
    std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|e| e.to_string())?;
    Ok(Built {
        store: Arc::new(store),
        multipart: true,
        http_put: None,
    })
}

/// The timeouts as config keys, so the environment's other client settings (AWS_ALLOW_HTTP,
/// AWS_ENDPOINT, proxies…) are kept.
fn timeouts(opts: &StoreOptions<'_>) -> [(ClientConfigKey, String); 2] {
    [
        (
            ClientConfigKey::Timeout,
            format!("{}ms", request_timeout(opts).as_millis()),
        ),
        (
            ClientConfigKey::ConnectTimeout,
            format!("{}ms", opts.connect_timeout.as_millis()),
        ),
    ]
}
