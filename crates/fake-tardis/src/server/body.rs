//! Streaming dataset bodies in 64 KiB pieces, from memory or from disk, with the byte-level
//! faults applied on the way (truncation, an altered CRC, a stall, a dropped connection, a
//! trickle).

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use tokio::io::AsyncReadExt;

/// Size of each body piece: what the real host's chunks look like, and small enough that a
/// 17 MB benchmark file is never read whole.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Where the file's bytes come from.
pub(crate) enum Source {
    Memory(Bytes),
    File(tokio::fs::File),
}

/// What to send: the `Content-Length`, and the faults to apply while streaming.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// Bytes announced and (unless aborted) sent.
    pub(crate) len: u64,
    /// Offset of a byte to invert (the gzip CRC).
    pub(crate) corrupt_at: Option<u64>,
    /// Pause once this many bytes are sent.
    pub(crate) stall: Option<(u64, Duration)>,
    /// Abort the connection once this many bytes are sent.
    pub(crate) abort_at: Option<u64>,
    /// Send at most this many bytes per second over the whole body.
    pub(crate) rate: Option<u64>,
}

struct State {
    src: Source,
    plan: Plan,
    sent: u64,
    stalled: bool,
    done: bool,
    /// When the first piece was asked for (the clock of a trickle).
    started: Option<tokio::time::Instant>,
}

/// The body as a stream of pieces; an `Err` item makes hyper abort the connection.
pub(crate) fn stream(src: Source, plan: Plan) -> impl Stream<Item = io::Result<Bytes>> + Send {
    let state = State {
        src,
        plan,
        sent: 0,
        stalled: false,
        done: false,
        started: None,
    };
    futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        if st.plan.abort_at == Some(st.sent) {
            // Let hyper flush what was sent before the abort: an error item right after data
            // could otherwise tear the connection down with those bytes still buffered.
            tokio::time::sleep(Duration::from_millis(50)).await;
            st.done = true;
            let err = io::Error::new(io::ErrorKind::ConnectionAborted, "fake-tardis: DropAfter fault");
            return Some((Err(err), st));
        }
        if let Some((at, pause)) = st.plan.stall
            && !st.stalled
            && st.sent == at
        {
            st.stalled = true;
            tokio::time::sleep(pause).await;
        }
        if st.sent >= st.plan.len {
            return None;
        }
        let mut max = (st.plan.len - st.sent).min(CHUNK as u64);
        if let Some(rate) = st.plan.rate {
            max = max.min((rate / 10).max(1));
        }
        if let Some(at) = st.plan.abort_at.filter(|&at| at > st.sent) {
            max = max.min(at - st.sent);
        }
        if let Some((at, _)) = st.plan.stall.filter(|&(at, _)| !st.stalled && at > st.sent) {
            max = max.min(at - st.sent);
        }
        if let Some(rate) = st.plan.rate {
            // The piece's last byte leaves no earlier than `rate` allows since the start.
            let start = *st.started.get_or_insert_with(tokio::time::Instant::now);
            let due = Duration::from_secs_f64((st.sent + max) as f64 / rate.max(1) as f64);
            tokio::time::sleep_until(start + due).await;
        }
        let piece = match read(&mut st.src, st.sent, max as usize).await {
            Ok(p) => p,
            Err(e) => {
                st.done = true;
                return Some((Err(e), st));
            }
        };
        let piece = match st.plan.corrupt_at {
            Some(at) if at >= st.sent && at < st.sent + piece.len() as u64 => {
                let mut m = BytesMut::from(&piece[..]);
                m[(at - st.sent) as usize] ^= 0xFF;
                m.freeze()
            }
            _ => piece,
        };
        st.sent += piece.len() as u64;
        Some((Ok(piece), st))
    })
}

/// Up to `max` bytes at `offset` (a file is read sequentially, so `offset` is implied).
async fn read(src: &mut Source, offset: u64, max: usize) -> io::Result<Bytes> {
    match src {
        Source::Memory(b) => {
            let start = offset as usize;
            let end = (start + max).min(b.len());
            if start >= end {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than announced",
                ));
            }
            Ok(b.slice(start..end))
        }
        Source::File(f) => {
            let mut buf = BytesMut::zeroed(max);
            let mut filled = 0;
            while filled < max {
                let n = f.read(&mut buf[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being served",
                ));
            }
            buf.truncate(filled);
            Ok(buf.freeze())
        }
    }
}
