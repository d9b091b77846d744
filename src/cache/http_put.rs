//! Uploads to an HTTP (WebDAV) remote, streamed from the file.
//!
//! object_store's `HttpStore` has no multipart upload, so its `put` needs the whole object in
//! memory: a 2 GB chunk file would cost 2 GB of RAM. Here the body streams from disk with its
//! `Content-Length`; a server that wants its collections first (`409`/`404` on a PUT into a
//! missing directory, as WebDAV servers without nginx's `create_full_put_path` answer) gets a
//! `MKCOL` for each parent, then the PUT once more, as object_store does.

use std::path::Path;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue};
use reqwest::{Method, StatusCode};
use url::Url;

/// Why an upload failed, as an object_store error (so the remote tier reports it like the rest).
fn err(msg: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "HTTP",
        source: msg.into(),
    }
}

/// A streaming PUT client for one HTTP remote.
#[derive(Debug, Clone)]
pub(crate) struct HttpPut {
    client: reqwest::Client,
    /// The remote's base URL, without a trailing `/`.
    base: Url,
    auth: Option<HeaderValue>,
}

impl HttpPut {
    /// A client for `base` (no credentials in it), sending `auth` with every request.
    pub(crate) fn new(
        base: &Url,
        auth: Option<HeaderValue>,
        connect_timeout: std::time::Duration,
    ) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let mut base = base.clone();
        let trimmed = base.path().trim_end_matches('/').to_string();
        base.set_path(&trimmed);
        Ok(Self { client, base, auth })
    }

    fn url(&self, path: &str) -> Url {
        let mut u = self.base.clone();
        // An http URL's path is never empty ("/" at least): join without doubling the slash.
        let base = self.base.path().trim_end_matches('/');
        u.set_path(&format!("{base}/{}", path.trim_start_matches('/')));
        u
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, self.url(path));
        if let Some(a) = &self.auth {
            r = r.header(AUTHORIZATION, a.clone());
        }
        r
    }

    async fn put_once(&self, path: &str, file: &Path, size: u64) -> Result<StatusCode, object_store::Error> {
        let f = tokio::fs::File::open(file)
            .await
            .map_err(|e| err(format!("reading {}: {e}", file.display())))?;
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024));
        let resp = self
            .request(Method::PUT, path)
            .header(CONTENT_LENGTH, size)
            .body(body)
            .send()
            .await
            .map_err(|e| err(format!("PUT {path}: {}", crate::error::chain(&e.without_url()))))?;
        Ok(resp.status())
    }

    /// PUTs `file` (`size` bytes) at `path` under the base, creating collections if asked to.
    pub(crate) async fn put_file(&self, path: &str, file: &Path, size: u64) -> Result<(), object_store::Error> {
        let mut status = self.put_once(path, file, size).await?;
        if status == StatusCode::CONFLICT || status == StatusCode::NOT_FOUND {
            let parts: Vec<&str> = path.split('/').collect();
            for i in 1..parts.len() {
                let dir = format!("{}/", parts[..i].join("/"));
                let _ = self
                    .request(Method::from_bytes(b"MKCOL").expect("a valid method"), &dir)
                    .send()
                    .await;
            }
            status = self.put_once(path, file, size).await?;
        }
        if status.is_success() {
            Ok(())
        } else {
            Err(err(format!("PUT {path}: HTTP {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_paths_join_the_base_with_one_slash() {
        for (base, want) in [
            ("http://h:1", "http://h:1/v1/a.parquet"),
            ("http://h:1/", "http://h:1/v1/a.parquet"),
            ("http://h:1/cache", "http://h:1/cache/v1/a.parquet"),
            ("http://h:1/cache/", "http://h:1/cache/v1/a.parquet"),
        ] {
            let put = HttpPut::new(&Url::parse(base).unwrap(), None, std::time::Duration::from_secs(1)).unwrap();
            assert_eq!(put.url("v1/a.parquet").as_str(), want, "{base}");
        }
    }
}
