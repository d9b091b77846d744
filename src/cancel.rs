//! Cooperative cancellation for work on blocking threads (which cannot be aborted).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once the run is interrupted; long blocking loops check it between batches.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// An error to stop a blocking loop with.
    pub fn check(&self) -> std::io::Result<()> {
        if self.is_cancelled() {
            Err(std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"))
        } else {
            Ok(())
        }
    }
}
