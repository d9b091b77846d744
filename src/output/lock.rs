//! One writer at a time per output directory, across processes: the check of what a target
//! path holds, the write and the rename happen under an exclusive lock, so a second process
//! writing the same path waits, then finds the first one's output (the same request: nothing
//! to do; another request: refused), and two never interleave.
//!
//! On Unix the lock is an `flock` on the directory itself, so nothing is added to the output
//! directory and the kernel releases the lock when a process dies (no stale locks). Elsewhere
//! it is a `.tickvault-output.lock` file in the directory.

use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

/// An exclusive lock on an output directory, released when dropped.
#[derive(Debug)]
pub struct OutputLock {
    _file: File,
}

impl OutputLock {
    /// Locks `dir` (created if needed), waiting for another process that holds it; gives up
    /// when `cancel` fires. Blocking: call it off the async runtime.
    ///
    /// # Errors
    /// The directory cannot be created or opened, the lock fails, or the run was interrupted.
    pub fn acquire(dir: &Path, cancel: &CancellationToken) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = open(dir)?;
        let mut warned = false;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
            if cancel.is_cancelled() {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            if !warned {
                warn!("waiting for another tickvault process writing into {}", dir.display());
                warned = true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(unix)]
fn open(dir: &Path) -> io::Result<File> {
    File::open(dir)
}

#[cfg(not(unix))]
fn open(dir: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".tickvault-output.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cancel = CancellationToken::new();
        let first = OutputLock::acquire(&out, &cancel).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let path = out.clone();
        let waiter = std::thread::spawn(move || {
            let lock = OutputLock::acquire(&path, &CancellationToken::new()).unwrap();
            tx.send(()).unwrap();
            drop(lock);
        });
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "must wait");
        drop(first);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("gets the lock once released");
        waiter.join().unwrap();
        assert_eq!(
            std::fs::read_dir(&out).unwrap().count(),
            0,
            "nothing left in the directory"
        );
        cancel.cancel();
        let _held = OutputLock::acquire(&out, &CancellationToken::new()).unwrap();
        let e = OutputLock::acquire(&out, &cancel).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::Interrupted);
    }
}
