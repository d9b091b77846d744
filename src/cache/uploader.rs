//! Background uploads to the remote tier: a bounded queue (a full queue makes the fetch that
//! feeds it wait, so uploads are never dropped), a few uploads at once, failures as warnings.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::{debug, warn};

use super::{Chunk, ChunkStore, RemoteStore};

/// Uploads queued before a fetch waits for the queue to drain.
const UPLOAD_QUEUE: usize = 64;
/// Uploads running at once.
const UPLOADS_IN_FLIGHT: usize = 4;

/// Counts of the background uploads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UploadStats {
    /// Chunks uploaded.
    pub uploaded: u64,
    /// Uploads that failed (warned about).
    pub failed: u64,
}

pub(super) struct Uploader {
    tx: mpsc::Sender<Chunk>,
    done: tokio::task::JoinHandle<UploadStats>,
}

impl Uploader {
    pub(super) fn start(remote: RemoteStore) -> Self {
        let (tx, rx) = mpsc::channel::<Chunk>(UPLOAD_QUEUE);
        let done = tokio::spawn(run(remote, rx));
        Self { tx, done }
    }

    /// A sender for chunks to upload.
    pub(super) fn sender(&self) -> mpsc::Sender<Chunk> {
        self.tx.clone()
    }

    /// Waits for every queued upload.
    pub(super) async fn finish(self) -> UploadStats {
        drop(self.tx);
        self.done.await.unwrap_or_default()
    }
}

async fn run(remote: RemoteStore, mut rx: mpsc::Receiver<Chunk>) -> UploadStats {
    let slots = Arc::new(Semaphore::new(UPLOADS_IN_FLIGHT));
    let mut tasks = JoinSet::new();
    while let Some(chunk) = rx.recv().await {
        let permit = slots.clone().acquire_owned().await.expect("never closed");
        let remote = remote.clone();
        tasks.spawn(async move {
            let _permit = permit;
            match remote.put(&chunk).await {
                Ok(()) => {
                    debug!("uploaded {} to {}", chunk.key, remote.describe());
                    true
                }
                Err(e) => {
                    warn!(
                        "could not upload {} to remote cache {}: {}",
                        chunk.key,
                        remote.describe(),
                        crate::error::chain(&e)
                    );
                    false
                }
            }
        });
    }
    let mut stats = UploadStats::default();
    while let Some(r) = tasks.join_next().await {
        if r.unwrap_or(false) {
            stats.uploaded += 1;
        } else {
            stats.failed += 1;
        }
    }
    stats
}
