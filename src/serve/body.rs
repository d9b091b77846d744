//! Chunk file responses: the headers (length, ETag, completeness), single byte ranges (which
//! object_store asks for when it resumes a body cut mid-stream), and bodies streamed from
//! memory or from the file with [`ReaderStream`], counted as they go. A client that goes away
//! mid-body drops the stream: the file is closed and the response counted as `client_gone`;
//! nothing else is affected.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::metrics::{ErrorKind, InFlight, Metrics};
use crate::cache::Resolved;
use crate::cache::chunk_file::ChunkData;

/// Says whether the chunk file is of a day Tardis had finished exporting (`true`) or not
/// (`false`: use it, never cache it as complete). The file's own metadata says the same.
pub const COMPLETE_HEADER: &str = "tickvault-chunk-complete";
/// The tier that answered the lookup (`memory`, `local`, `remote`, `tardis`).
pub const SOURCE_HEADER: &str = "tickvault-source";
/// The media type of chunk files.
const PARQUET: &str = "application/vnd.apache.parquet";
/// Pieces a body is sent in.
const PIECE: usize = 256 * 1024;

/// A byte range asked for, resolved against the file's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Range {
    /// The whole file.
    Full,
    /// Bytes `start..end` (end exclusive).
    Part(u64, u64),
    /// Nothing of the file is in the range: 416.
    Unsatisfiable,
}

/// Reads a `Range` header. Only one `bytes=` range is honoured; several ranges or another
/// unit get the whole file (RFC 9110 allows ignoring `Range`).
pub(crate) fn range(header: Option<&HeaderValue>, len: u64) -> Range {
    let Some(spec) = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Range::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => b.parse::<u64>().ok().map(|n| (len.saturating_sub(n), len, n > 0)),
        // bytes=A-: from A to the end.
        (false, true) => a.parse::<u64>().ok().map(|s| (s, len, true)),
        // bytes=A-B: inclusive.
        (false, false) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(s), Ok(e)) if s <= e => Some((s, (e + 1).min(len), true)),
            _ => None,
        },
        (true, true) => None,
    };
    match parsed {
        None => Range::Full,
        Some((start, end, nonempty)) if nonempty && start < end => Range::Part(start, end),
        Some(_) => Range::Unsatisfiable,
    }
}

/// The response for a resolved chunk: its headers, and its body unless `head`.
///
/// # Errors
/// The chunk's file could not be opened or read (it may have been pruned since).
pub(crate) async fn respond(
    resolved: &Resolved,
    request: &HeaderMap,
    head: bool,
    metrics: &Metrics,
    flight: InFlight,
) -> std::io::Result<Response> {
    let meta = &resolved.chunk.meta;
    let etag = format!("\"{:016x}\"", meta.checksum);
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, PARQUET)
        .header(header::ETAG, &etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(COMPLETE_HEADER, if meta.complete { "true" } else { "false" })
        .header(SOURCE_HEADER, resolved.source.as_str())
        // A day not yet exported must not be kept by any cache on the way; a complete chunk
        // file never changes.
        .header(
            header::CACHE_CONTROL,
            if meta.complete {
                "public, max-age=86400"
            } else {
                "no-store"
            },
        );
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if not_modified {
        return Ok(builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default());
    }
    // The file's own length, from the open handle: what is sent is what was measured.
    let (source, len) = match &resolved.chunk.data {
        ChunkData::Bytes(b) => (Source::Bytes(b.clone()), b.len() as u64),
        ChunkData::File(p) => open(p).await?,
        ChunkData::Temp(t) => open(t).await?,
    };
    let (status, start, end) = match range(request.get(header::RANGE), len) {
        Range::Full => (StatusCode::OK, 0, len),
        Range::Part(s, e) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {s}-{}/{len}", e - 1));
            (StatusCode::PARTIAL_CONTENT, s, e)
        }
        Range::Unsatisfiable => {
            return Ok(builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{len}"))
                .body(Body::empty())
                .unwrap_or_default());
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, end - start);
    let body = if head {
        Body::empty()
    } else {
        Body::from_stream(Counted {
            inner: source.stream(start, end).await?,
            metrics: metrics.clone(),
            left: end - start,
            _flight: flight,
        })
    };
    Ok(builder.body(body).unwrap_or_default())
}

enum Source {
    Bytes(Bytes),
    File(tokio::fs::File),
}

type Pieces = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

impl Source {
    async fn stream(self, start: u64, end: u64) -> std::io::Result<Pieces> {
        Ok(match self {
            Source::Bytes(b) => {
                let part = b.slice(start as usize..end as usize);
                let pieces: Vec<std::io::Result<Bytes>> = (0..part.len())
                    .step_by(PIECE)
                    .map(|i| Ok(part.slice(i..(i + PIECE).min(part.len()))))
                    .collect();
                Box::pin(futures::stream::iter(pieces))
            }
            Source::File(mut f) => {
                f.seek(std::io::SeekFrom::Start(start)).await?;
                Box::pin(ReaderStream::with_capacity(f.take(end - start), PIECE))
            }
        })
    }
}

/// A body that counts the bytes it hands out, and counts a response the client abandoned.
struct Counted {
    inner: Pieces,
    metrics: Metrics,
    left: u64,
    _flight: InFlight,
}

impl Stream for Counted {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(piece))) = &polled {
            let n = piece.len() as u64;
            self.metrics.served(n);
            self.left = self.left.saturating_sub(n);
        }
        polled
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.left > 0 {
            self.metrics.error(ErrorKind::ClientGone);
        }
    }
}

/// The file to stream, and its length from the open handle.
async fn open(path: &std::path::Path) -> std::io::Result<(Source, u64)> {
    let f = tokio::fs::File::open(path).await?;
    let len = f.metadata().await?.len();
    Ok((Source::File(f), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str, len: u64) -> Range {
        range(Some(&HeaderValue::from_str(v).unwrap()), len)
    }

    #[test]
    fn single_byte_ranges_are_honoured() {
        assert_eq!(range(None, 10), Range::Full);
        assert_eq!(r("bytes=0-3", 10), Range::Part(0, 4));
        assert_eq!(r("bytes=4-", 10), Range::Part(4, 10));
        assert_eq!(r("bytes=-3", 10), Range::Part(7, 10));
        assert_eq!(r("bytes=-30", 10), Range::Part(0, 10));
        assert_eq!(r("bytes=5-100", 10), Range::Part(5, 10), "an end past the file is cut");
        assert_eq!(r("bytes=10-", 10), Range::Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), Range::Unsatisfiable);
        assert_eq!(r("bytes=0-1,4-5", 10), Range::Full, "several ranges: the whole file");
        assert_eq!(r("items=0-1", 10), Range::Full);
        assert_eq!(r("bytes=5-2", 10), Range::Full, "an invalid range is ignored");
        assert_eq!(r("bytes=x-", 10), Range::Full);
    }
}
