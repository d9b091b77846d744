//! One fetch per chunk across processes: a process about to fetch a chunk from Tardis first
//! takes an exclusive lock on the chunk's key under the cache directory
//! (`{cache-dir}/locks/{key}.lock`), holds it while the chunk is fetched and written to the
//! local tier, then removes the file and lets go. Another process wanting the same chunk waits
//! for the lock, then finds the chunk in the local tier.
//!
//! The lock is an `flock` (`std::fs::File::try_lock`), which the kernel releases when a process
//! dies, so a crashed holder never leaves a stale lock: the lock file may stay behind, but it
//! is free, and the next process takes it. The holder unlinks the file before unlocking; a
//! process that was waiting on the unlinked file sees that the path no longer names the file
//! it locked and starts over, so two processes never both believe they hold one key.
//! Waiting polls (every 20 to 250 ms) on the async runtime, so an interrupted run stops at once.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::debug;

use crate::model::{ChunkKey, fs_component};

/// An exclusive lock on one chunk key, shared by every process using the cache directory.
#[derive(Debug)]
pub struct ChunkLock {
    file: Option<File>,
    path: PathBuf,
}

/// Longest pause between two tries of a held lock.
const MAX_POLL: Duration = Duration::from_millis(250);

impl ChunkLock {
    /// The lock file of `key` under `cache_dir`.
    pub fn path(cache_dir: &Path, key: &ChunkKey) -> PathBuf {
        cache_dir
            .join("locks")
            .join(format!("{}.lock", fs_component(&key.cache_path())))
    }

    /// Takes the lock of `key`, waiting while another process (or task) holds it. Returns the
    /// lock and whether it had to wait (then the holder has probably stored the chunk).
    ///
    /// # Errors
    /// The lock file cannot be created or locked.
    pub async fn acquire(cache_dir: &Path, key: &ChunkKey) -> io::Result<(Self, bool)> {
        let path = Self::path(cache_dir, key);
        let mut waited = false;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(lock) = Self::try_once(&path)? {
                if waited {
                    debug!("{key}: another process held it; lock taken");
                }
                return Ok((lock, waited));
            }
            if !waited {
                debug!("{key}: another process is fetching it; waiting");
            }
            waited = true;
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_POLL);
        }
    }

    /// One try: the lock, or `None` while another holds it.
    fn try_once(path: &Path) -> io::Result<Option<Self>> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        if !still_named(&file, path) {
            // The holder removed the file between our open and our lock: try the new one.
            return Ok(None);
        }
        Ok(Some(Self {
            file: Some(file),
            path: path.to_path_buf(),
        }))
    }
}

/// Whether `path` still names the file `file` has open.
#[cfg(unix)]
fn still_named(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_named(_file: &File, _path: &Path) -> bool {
    true
}

impl Drop for ChunkLock {
    fn drop(&mut self) {
        // Unlink while still holding the lock, then close (which unlocks): a waiter on the old
        // file notices the path changed. Elsewhere than Unix the file is kept (it cannot be
        // told apart from a new one), which is harmless.
        #[cfg(unix)]
        {
            let _ = std::fs::remove_file(&self.path);
        }
        drop(self.file.take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DataType;

    #[tokio::test]
    async fn holders_take_turns_and_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let key = ChunkKey::new("x", DataType::Trades, "BTC/USD", jiff::civil::date(2024, 3, 1));
        let (first, waited) = ChunkLock::acquire(dir.path(), &key).await.unwrap();
        assert!(!waited);
        assert!(ChunkLock::path(dir.path(), &key).exists());
        let d = dir.path().to_path_buf();
        let k = key.clone();
        let second = tokio::spawn(async move { ChunkLock::acquire(&d, &k).await.unwrap() });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!second.is_finished(), "the second waits while the first holds the key");
        drop(first);
        let (second, waited) = tokio::time::timeout(Duration::from_secs(10), second)
            .await
            .unwrap()
            .unwrap();
        assert!(waited);
        drop(second);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("locks")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
        // Another key is independent.
        let other = ChunkKey::new("x", DataType::Trades, "ETH", jiff::civil::date(2024, 3, 1));
        let (_a, _) = ChunkLock::acquire(dir.path(), &key).await.unwrap();
        let (_b, waited) = ChunkLock::acquire(dir.path(), &other).await.unwrap();
        assert!(!waited);
    }
}
