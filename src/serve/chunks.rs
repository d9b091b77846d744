//! The chunk routes: `GET`/`HEAD`/`PUT` of `/v1/{exchange}/{data_type}/{SYMBOL}/{date}.parquet`,
//! the keys the remote tier uses, so a client's `--remote-cache` can point here unchanged.
//!
//! - `GET` resolves the chunk through the server's tiers (memory → local → remote → Tardis):
//!   concurrent requests for one chunk share one lookup, and a fetch runs under the fetcher's
//!   admission, shared by every client. The lookup runs in its own task, so a client that
//!   disconnects (or a request timeout) never abandons a fetch half-way: it lands in the cache.
//! - `HEAD` says whether the memory or local tier holds the chunk; it never fetches.
//! - `PUT` (write token) streams the body to a temporary file beside the entry, verifies it is
//!   a sound, complete chunk file for the key, then renames it into place.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use http_body_util::LengthLimitError;
use tokio::io::AsyncWriteExt;
use tracing::{debug, warn};

use super::Edge;
use super::auth::{Access, Denied};
use super::body::respond;
use super::failure::Failure;
use super::metrics::ErrorKind;
use super::path::chunk_key;
use crate::cache::chunk_file::{ChunkData, verify_file};
use crate::cache::{Chunk, Resolved};
use crate::model::ChunkKey;
use crate::parquet::sealed::SealedError;

/// Every request that no other route takes: a chunk, or a 400/405.
pub(super) async fn handle(State(edge): State<Arc<Edge>>, req: Request) -> Response {
    let method = req.method().clone();
    let access = match method {
        Method::GET | Method::HEAD => Access::Read,
        Method::PUT => Access::Write,
        _ => {
            let msg = format!("{method} is not served here (GET, HEAD, PUT)");
            return Failure::new(StatusCode::METHOD_NOT_ALLOWED, ErrorKind::Method, msg).respond(&edge.metrics);
        }
    };
    let key = match chunk_key(req.uri().path()) {
        Ok(k) => k,
        Err(e) => {
            return Failure::new(StatusCode::BAD_REQUEST, ErrorKind::BadPath, e.to_string()).respond(&edge.metrics);
        }
    };
    if let Err(denied) = edge.tokens.check(req.headers(), access) {
        return refuse(denied, access).respond(&edge.metrics);
    }
    let result = match method {
        Method::PUT => put(&edge, key, req).await,
        Method::HEAD => head(&edge, &key, req.headers()).await,
        _ => get(&edge, key, req.headers()).await,
    };
    result.unwrap_or_else(|f| f.respond(&edge.metrics))
}

fn refuse(denied: Denied, access: Access) -> Failure {
    match (denied, access) {
        (Denied::Forbidden, _) => Failure::new(
            StatusCode::FORBIDDEN,
            ErrorKind::Forbidden,
            "this token may read but not write",
        ),
        (Denied::Unauthorized, Access::Write) => Failure::new(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Unauthorized,
            "a write token is required (Authorization: Bearer TOKEN)",
        ),
        (Denied::Unauthorized, Access::Read) => Failure::new(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Unauthorized,
            "a read token is required (Authorization: Bearer TOKEN)",
        ),
    }
}

async fn get(edge: &Arc<Edge>, key: ChunkKey, headers: &HeaderMap) -> Result<Response, Failure> {
    let mut looked_again = false;
    loop {
        let flight = edge.metrics.in_flight();
        let resolved = resolve(edge, &key).await?;
        match respond(&resolved, headers, false, &edge.metrics, flight).await {
            Ok(r) => return Ok(r),
            // The entry may be pruned between the lookup and the open: look it up once more.
            Err(e) if !looked_again && e.kind() == std::io::ErrorKind::NotFound => {
                debug!("{key}: the entry went away before it was opened; looking it up again");
                looked_again = true;
            }
            Err(e) => {
                let msg = format!("{key}: reading the cache entry: {e}");
                return Err(Failure::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorKind::Store, msg));
            }
        }
    }
}

/// Resolves `key` in a task of its own (so nothing abandons it), counting the tier or the join.
async fn resolve(edge: &Arc<Edge>, key: &ChunkKey) -> Result<Resolved, Failure> {
    let tiered = edge.tiered.clone();
    let k = key.clone();
    let task = tokio::spawn(async move { tiered.resolve_joined(&k).await });
    let (result, joined) = task.await.map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Store,
            format!("{key}: lookup failed: {e}"),
        )
    })?;
    let resolved = result.map_err(|e| {
        let f = Failure::resolve(&e);
        if f.status.is_server_error() {
            warn!("{}", f.message);
        }
        f
    })?;
    if joined {
        edge.metrics.join();
    } else {
        edge.metrics.hit(resolved.source);
    }
    Ok(resolved)
}

async fn head(edge: &Arc<Edge>, key: &ChunkKey, headers: &HeaderMap) -> Result<Response, Failure> {
    let Some(resolved) = edge.tiered.peek(key).await else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            ErrorKind::NotFound,
            format!("{key}: not cached here (a GET fetches it)"),
        ));
    };
    respond(&resolved, headers, true, &edge.metrics, edge.metrics.in_flight())
        .await
        .map_err(|e| Failure::new(StatusCode::NOT_FOUND, ErrorKind::NotFound, format!("{key}: {e}")))
}

async fn put(edge: &Arc<Edge>, key: ChunkKey, req: Request) -> Result<Response, Failure> {
    let _flight = edge.metrics.in_flight();
    let store_err = |what: &str, e: &dyn std::fmt::Display| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Store,
            format!("{key}: {what}: {e}"),
        )
    };
    let local = edge.local.clone();
    let k = key.clone();
    let staged = tokio::task::spawn_blocking(move || local.stage(&k))
        .await
        .map_err(|e| store_err("staging", &e))?
        .map_err(|e| store_err("staging", &crate::error::chain(&e)))?;
    let handle = staged.handle().map_err(|e| store_err("staging", &e))?;
    let mut file = tokio::fs::File::from_std(handle);
    let mut body = req.into_body().into_data_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| body_failure(&key, &e))?;
        file.write_all(&piece).await.map_err(|e| store_err("writing", &e))?;
    }
    file.flush().await.map_err(|e| store_err("writing", &e))?;
    drop(file);
    let k = key.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let meta = verify_file(staged.path(), Some(&k));
        (staged, meta)
    })
    .await
    .map_err(|e| store_err("verifying", &e))?;
    let (staged, meta) = checked;
    let meta = match meta {
        Ok(m) if m.complete => m,
        Ok(_) => {
            let msg = format!("{key}: a chunk of a day Tardis had not finished exporting is never stored");
            return Err(Failure::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorKind::Rejected, msg));
        }
        Err(SealedError::Corrupt(why)) => {
            let msg = format!("{key}: not a sound chunk file for this key: {why}");
            return Err(Failure::new(StatusCode::UNPROCESSABLE_ENTITY, ErrorKind::Rejected, msg));
        }
        Err(e) => return Err(store_err("verifying", &crate::error::chain(&e))),
    };
    let path = tokio::task::spawn_blocking(move || staged.commit())
        .await
        .map_err(|e| store_err("storing", &e))?
        .map_err(|e| store_err("storing", &e))?;
    let etag = format!("\"{:016x}\"", meta.checksum);
    let chunk = Chunk {
        key,
        meta,
        data: ChunkData::File(path.into()),
    };
    edge.tiered.accept(&chunk).await;
    edge.metrics.upload();
    debug!("stored {} from an upload", chunk.key);
    Ok(Response::builder()
        .status(StatusCode::CREATED)
        .header(header::ETAG, etag)
        .body(axum::body::Body::empty())
        .unwrap_or_default())
}

/// An upload body that failed: too large (413), or cut (400).
fn body_failure(key: &ChunkKey, e: &axum::Error) -> Failure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<LengthLimitError>() {
            return Failure::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::Rejected,
                format!("{key}: the upload is larger than --max-upload"),
            );
        }
        source = s.source();
    }
    Failure::new(
        StatusCode::BAD_REQUEST,
        ErrorKind::Rejected,
        format!("{key}: the upload was cut: {e}"),
    )
}
