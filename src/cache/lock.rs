//! A lock on a cache directory: shared while downloading, exclusive while deleting entries, so
//! a file a download has verified is never removed under it.

use std::fs::{File, OpenOptions};
use std::path::Path;

use tracing::warn;

use super::StoreError;

/// A lock on a cache directory: shared while downloading, exclusive while deleting entries.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
}

impl CacheLock {
    fn open(root: &Path) -> Result<File, StoreError> {
        std::fs::create_dir_all(root)
            .map_err(|e| StoreError::io(format!("creating cache directory {}", root.display()), e))?;
        let path = root.join(".lock");
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(format!("opening {}", path.display()), e))
    }

    /// Takes the lock shared (many downloads at once), waiting for an exclusive holder.
    ///
    /// # Errors
    /// Fails when the lock file cannot be opened or locked.
    pub fn shared(root: &Path) -> Result<Self, StoreError> {
        let file = Self::open(root)?;
        if file.try_lock_shared().is_err() {
            warn!("waiting for cache maintenance on {} to finish", root.display());
            file.lock_shared()
                .map_err(|e| StoreError::io(format!("locking {}", root.display()), e))?;
        }
        Ok(Self { _file: file })
    }

    /// Takes the lock exclusively, waiting for running downloads to finish.
    ///
    /// # Errors
    /// Fails when the lock file cannot be opened or locked.
    pub fn exclusive(root: &Path) -> Result<Self, StoreError> {
        let file = Self::open(root)?;
        if file.try_lock().is_err() {
            warn!(
                "waiting for other tickvault processes using {} to finish",
                root.display()
            );
            file.lock()
                .map_err(|e| StoreError::io(format!("locking {}", root.display()), e))?;
        }
        Ok(Self { _file: file })
    }
}
