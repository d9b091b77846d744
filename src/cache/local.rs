//! L2: one sealed Parquet file per chunk under the cache directory.
//!
//! Layout: `{cache-dir}/v1/{exchange}/{data_type}/{SYMBOL}/{YYYY-MM-DD}.parquet` (see
//! [`ChunkKey::cache_path`]). Writes go to a temporary file in the same directory, are synced and
//! renamed into place, so a reader (in this or another process) sees a whole file or none. Two
//! processes writing the same chunk both rename a complete file; the last one wins, both valid.
//! Downloads hold a shared lock on `{cache-dir}/.lock` for their whole run and maintenance that
//! deletes entries (`cache prune`, `cache verify`) takes it exclusively, so a file a download
//! has verified is never removed under it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tracing::{debug, warn};

use super::{Chunk, ChunkStore, StoreError, Tier};
use crate::chunkfile::{ChunkData, ChunkFileError, verify_file};
use crate::model::ChunkKey;

/// Spool and stage files older than this are leftovers of a killed process.
const STALE_TEMP_AGE: Duration = Duration::from_secs(24 * 3600);

/// The local Parquet tier.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: Arc<Path>,
}

static STAGE_SEQ: AtomicU64 = AtomicU64::new(0);

impl LocalStore {
    /// Opens (creating if needed) a cache directory.
    ///
    /// # Errors
    /// Fails when the directory cannot be created.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root.join("tmp"))
            .map_err(|e| StoreError::io(format!("creating cache directory {}", root.display()), e))?;
        Ok(Self { root: root.into() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a chunk's file lives.
    pub fn path(&self, key: &ChunkKey) -> PathBuf {
        self.root.join(key.cache_path())
    }

    /// The directory for download spool files.
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Removes spool files left behind by killed processes.
    pub fn clean_stale_spools(&self) {
        let Ok(entries) = std::fs::read_dir(self.spool_dir()) else {
            return;
        };
        for e in entries.flatten() {
            if is_stale(&e.path()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// A temporary file beside the chunk's final path, removed unless committed.
    ///
    /// # Errors
    /// Fails when the directory cannot be created.
    pub fn stage(&self, key: &ChunkKey) -> Result<StagedFile, StoreError> {
        let target = self.path(key);
        let dir = target.parent().expect("cache paths have a parent");
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(format!("creating {}", dir.display()), e))?;
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("chunk");
        let seq = STAGE_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(
            ".{name}.{}-{seq}-{:08x}.tmp",
            std::process::id(),
            fastrand::u32(..)
        ));
        Ok(StagedFile {
            tmp,
            target,
            committed: false,
        })
    }

    fn check(&self, key: &ChunkKey, path: &Path) -> Result<Option<Chunk>, StoreError> {
        match verify_file(path, Some(key)) {
            Ok(meta) if !meta.complete => {
                debug!("{key}: local entry is of a day Tardis had not finished exporting; refetching");
                Ok(None)
            }
            Ok(meta) => {
                // Record the use for least-recently-used pruning (atime is often off).
                if let Ok(f) = OpenOptions::new().write(true).open(path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Ok(Some(Chunk {
                    key: key.clone(),
                    meta,
                    data: ChunkData::File(path.into()),
                }))
            }
            Err(ChunkFileError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(ChunkFileError::Corrupt(why)) => {
                warn!("corrupt cache entry {} ({why}); removing it", path.display());
                let _ = std::fs::remove_file(path);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn is_stale(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_TEMP_AGE)
}

/// Whether a file name is one of our temporary files (stage or spool).
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.ends_with(".tmp") || name.ends_with(".spool") || name.ends_with(".sorting")
}

/// Whether a temporary file is old enough to be a leftover.
pub(crate) fn is_stale_temp(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(is_temp_name) && is_stale(path)
}

/// A chunk file being written; renamed into place by [`StagedFile::commit`], removed otherwise.
#[derive(Debug)]
pub struct StagedFile {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl StagedFile {
    /// Where to write.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Atomically moves the written file into place and returns its final path.
    ///
    /// # Errors
    /// Fails when the rename fails.
    pub fn commit(mut self) -> Result<PathBuf, StoreError> {
        std::fs::rename(&self.tmp, &self.target)
            .map_err(|e| StoreError::io(format!("renaming into {}", self.target.display()), e))?;
        if let Some(dir) = self.target.parent()
            && let Ok(d) = File::open(dir)
        {
            // Make the rename itself durable.
            let _ = d.sync_all();
        }
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[async_trait]
impl ChunkStore for LocalStore {
    fn tier(&self) -> Tier {
        Tier::Local
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    async fn get(&self, key: &ChunkKey) -> Result<Option<Chunk>, StoreError> {
        let path = self.path(key);
        let this = self.clone();
        let key = key.clone();
        tokio::task::spawn_blocking(move || this.check(&key, &path))
            .await
            .map_err(|e| StoreError::io("checking a cache entry", std::io::Error::other(e)))?
    }

    async fn put(&self, chunk: &Chunk) -> Result<(), StoreError> {
        let target = self.path(&chunk.key);
        if let ChunkData::File(p) = &chunk.data
            && **p == *target
        {
            return Ok(());
        }
        let staged = self.stage(&chunk.key)?;
        let data = chunk.data.clone();
        tokio::task::spawn_blocking(move || {
            let tmp = staged.path().to_path_buf();
            let write_err = |e| StoreError::io(format!("writing {}", tmp.display()), e);
            match &data {
                ChunkData::Bytes(b) => {
                    let mut f = File::create(&tmp).map_err(write_err)?;
                    f.write_all(b).map_err(write_err)?;
                    f.sync_all().map_err(write_err)?;
                }
                ChunkData::File(src) => {
                    std::fs::copy(src, &tmp).map_err(write_err)?;
                    File::open(&tmp).and_then(|f| f.sync_all()).map_err(write_err)?;
                }
            }
            staged.commit().map(|_| ())
        })
        .await
        .map_err(|e| StoreError::io("storing a cache entry", std::io::Error::other(e)))?
    }

    async fn delete(&self, key: &ChunkKey) -> Result<(), StoreError> {
        let path = self.path(key);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::io(format!("removing {}", path.display()), e))
            }
            _ => Ok(()),
        }
    }
}

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
