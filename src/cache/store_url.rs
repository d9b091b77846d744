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
    /// Limit on one request.
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

/// A store and whether it supports multipart uploads.
pub(crate) struct Built {
    pub store: Arc<dyn ObjectStore>,
    pub multipart: bool,
}

/// A cloud store's builder from the environment, with the URL, the retry policy and the
/// timeouts.
macro_rules! cloud_store {
    ($builder:ty, $client_key:path, $url:expr, $opts:expr, $retry:expr) => {{
        let mut b = <$builder>::from_env().with_url($url.as_str()).with_retry($retry);
        for (k, v) in timeouts($opts) {
            b = b.with_config($client_key(k), v);
        }
        Arc::new(b.build().map_err(|e| e.to_string())?) as Arc<dyn ObjectStore>
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

/// Builds the store for `url` (creating a `file://` directory). No request is sent.
///
/// # Errors
/// A message saying why the URL cannot be a store.
pub(crate) fn build(url: &Url, opts: &StoreOptions<'_>) -> Result<Built, String> {
    check(url)?;
    // Fail fast and fall back to the next tier rather than retrying for minutes.
    let retry = RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: opts.timeout,
    };
    let (store, multipart): (Arc<dyn ObjectStore>, bool) = match url.scheme() {
        "http" | "https" => return http(url, opts, retry),
        "file" => return file(url),
        "s3" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            (
                cloud_store!(AmazonS3Builder, AmazonS3ConfigKey::Client, url, opts, retry),
                true,
            )
        }
        "gs" => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
            (
                cloud_store!(GoogleCloudStorageBuilder, GoogleConfigKey::Client, url, opts, retry),
                true,
            )
        }
        _ => {
            use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
            (
                cloud_store!(MicrosoftAzureBuilder, AzureConfigKey::Client, url, opts, retry),
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
    Ok(Built { store, multipart })
}

/// A request may take a little longer than the whole operation, so the caller's own timeout is
/// what fires, with a message that says so.
fn request_timeout(opts: &StoreOptions<'_>) -> Duration {
    opts.timeout + Duration::from_secs(1)
}

fn http(url: &Url, opts: &StoreOptions<'_>, retry: RetryConfig) -> Result<Built, String> {
    let mut client = ClientOptions::new()
        .with_timeout(request_timeout(opts))
        .with_connect_timeout(opts.connect_timeout)
        .with_allow_http(true);
    if let Some(token) = opts.token {
        let mut headers = object_store::HeaderMap::new();
        let value = object_store::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| "TICKVAULT_REMOTE_CACHE_TOKEN is not a valid header value".to_string())?;
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
    // HttpStore has no multipart upload: files are PUT whole.
    Ok(Built {
        store: Arc::new(store),
        multipart: false,
    })
}

fn file(url: &Url) -> Result<Built, String> {
    let path = url.to_file_path().map_err(|()| "not a local path".to_string())?;
    std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
    let store = object_store::local::LocalFileSystem::new_with_prefix(&path).map_err(|e| e.to_string())?;
    Ok(Built {
        store: Arc::new(store),
        multipart: true,
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
