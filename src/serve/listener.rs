//! The listening socket, with a cap on open connections (`--max-connections`): once the cap is
//! reached, new connections wait in the kernel's backlog until one closes, so a flood of
//! clients costs queueing, not file descriptors or memory.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::error;

use super::metrics::{Connection, Metrics};

/// A TCP listener that holds at most `max` connections open.
#[derive(Debug)]
pub(crate) struct Limited {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    metrics: Metrics,
}

impl Limited {
    pub(crate) fn new(inner: TcpListener, max: usize, metrics: Metrics) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            metrics,
        }
    }
}

impl axum::serve::Listener for Limited {
    type Io = Slot;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let permit = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((io, addr)) => {
                    // Small writes (headers, the end of a body) leave at once.
                    let _ = io.set_nodelay(true);
                    let slot = Slot {
                        io,
                        _permit: permit,
                        _open: self.metrics.connection(),
                    };
                    return (slot, addr);
                }
                // A connection that died before it was accepted concerns only that client.
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors, for example: wait rather than spin.
                    error!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// An accepted connection; closing it frees its slot.
#[derive(Debug)]
pub(crate) struct Slot {
    io: TcpStream,
    _permit: OwnedSemaphorePermit,
    _open: Connection,
}

impl AsyncRead for Slot {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Slot {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
