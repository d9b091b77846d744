//! L2: one sealed Parquet file per chunk under the cache directory.
//!
//! Layout: `{cache-dir}/v1/{exchange}/{data_type}/{SYMBOL}/{YYYY-MM-DD}.parquet` (see
//! [`ChunkKey::cache_path`]). Writes are atomic ([`AtomicFile`]), so a reader in this or
//! another process sees a whole file or none. Two processes writing the same chunk both rename a
//! complete file; the last one wins, both valid. Downloads hold a shared [`super::CacheLock`]
//! and maintenance that deletes entries takes it exclusively.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use tracing::{debug, warn};

use super::chunk_file::{ChunkData, verify_file};
use super::temps;
use super::{Check, Chunk, ChunkStore, Entry, StoreError};
use crate::model::{CACHE_LAYOUT_VERSION, ChunkKey};
use crate::parquet::atomic::AtomicFile;
use crate::parquet::sealed::SealedError;

/// The local Parquet tier.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: Arc<Path>,
}

impl LocalStore {
    /// Opens (creating if needed) a cache directory.
    ///
    /// # Errors
    /// Fails when the directory cannot be created.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(root.join("tmp"))
            .map_err(|e| StoreError::io(format!("creating cache directory {}", root.display()), e))?;
        temps::register_dir(root);
        Ok(Self { root: root.into() })
    }

    /// A cache directory as it is, created or not (for maintenance, which creates nothing).
    pub fn at(root: &Path) -> Self {
        Self { root: root.into() }
    }

    /// Where a chunk's file lives.
    pub fn path(&self, key: &ChunkKey) -> PathBuf {
        self.root.join(key.cache_path())
    }

    /// Takes the cross-process lock of `key` ([`super::ChunkLock`]); `true` if it had to wait.
    ///
    /// # Errors
    /// The lock file cannot be created or locked.
    pub async fn lock(&self, key: &ChunkKey) -> Result<(super::ChunkLock, bool), StoreError> {
        super::ChunkLock::acquire(&self.root, key)
            .await
            .map_err(|e| StoreError::io(format!("locking {} in {}", key, self.root.display()), e))
    }

    /// The directory for download spool files.
    pub fn spool_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Removes the temporary files (spools, sort runs, staged entries) of processes that no
    /// longer exist, however recent. Returns how many. Blocking: it walks the cache.
    pub fn sweep_dead_temps(&self) -> usize {
        temps::sweep_dead(&self.root, true).len()
    }

    /// [`Self::sweep_dead_temps`] off the async runtime, logging what it removed (at the start
    /// of a run or of a server).
    pub async fn sweep_dead_temps_logged(&self) {
        let local = self.clone();
        let swept = tokio::task::spawn_blocking(move || local.sweep_dead_temps())
            .await
            .unwrap_or_default();
        if swept > 0 {
            tracing::info!("removed {swept} temporary files left by processes that no longer run");
        }
    }

    /// A temporary file beside the chunk's final path, renamed into place by its commit.
    ///
    /// # Errors
    /// Fails when the directory or the file cannot be created.
    pub fn stage(&self, key: &ChunkKey) -> Result<AtomicFile, StoreError> {
        let target = self.path(key);
        AtomicFile::create(&target)
            .map_err(|e| StoreError::io(format!("creating a file beside {}", target.display()), e))
    }

    /// Temporary files under the cache (in use by a running process, or left by one that no
    /// longer exists), and whether each one's process is gone.
    pub fn temp_files(&self) -> Vec<(PathBuf, bool)> {
        temps::list(&self.root, true)
            .into_iter()
            .map(|(p, pid)| (p, !temps::alive(pid)))
            .collect()
    }

    /// Removes directories left empty under the layout (after pruning).
    pub fn remove_empty_dirs(&self) {
        remove_empty_dirs(&self.root.join(CACHE_LAYOUT_VERSION));
    }

    fn check_blocking(&self, key: &ChunkKey) -> Result<Check, StoreError> {
        match verify_file(&self.path(key), Some(key)) {
            Ok(meta) => Ok(Check::Sound(meta)),
            Err(SealedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(Check::Missing),
            Err(SealedError::Corrupt(why)) => Ok(Check::Corrupt(why)),
            Err(e) => Err(e.into()),
        }
    }

    fn get_blocking(&self, key: &ChunkKey) -> Result<Option<Chunk>, StoreError> {
        let path = self.path(key);
        match self.check_blocking(key)? {
            Check::Missing => Ok(None),
            Check::Sound(meta) if !meta.complete => {
                debug!("{key}: local entry is of a day Tardis had not finished exporting; refetching");
                Ok(None)
            }
            Check::Sound(meta) => {
                // Record the use for least-recently-used pruning (atime is often off).
                if let Ok(f) = OpenOptions::new().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Ok(Some(Chunk {
                    key: key.clone(),
                    meta,
                    data: ChunkData::File(path.into()),
                }))
            }
            Check::Corrupt(why) => {
                warn!("corrupt cache entry {} ({why}); removing it", path.display());
                let _ = std::fs::remove_file(&path);
                Ok(None)
            }
        }
    }

    fn put_blocking(&self, chunk: &Chunk) -> Result<(), StoreError> {
        let staged = self.stage(&chunk.key)?;
        let tmp = staged.path().to_path_buf();
        let write_err = |e| StoreError::io(format!("writing {}", tmp.display()), e);
        match (&chunk.data, chunk.data.path()) {
            (ChunkData::Bytes(b), _) => staged.handle().and_then(|mut f| f.write_all(b)).map_err(write_err)?,
            (_, src) => {
                std::fs::copy(src.unwrap_or(Path::new("")), &tmp).map_err(write_err)?;
            }
        }
        staged
            .commit()
            .map_err(|e| StoreError::io(format!("renaming into {}", self.path(&chunk.key).display()), e))?;
        Ok(())
    }

    fn list_blocking(&self) -> Result<Vec<Entry>, StoreError> {
        let mut entries = Vec::new();
        walk(&self.root.join(CACHE_LAYOUT_VERSION), &mut |path, meta| {
            let rel = path
                .strip_prefix(&*self.root)
                .ok()
                .and_then(|p| p.to_str())
                .map(|p| p.replace('\\', "/"));
            if let Some(key) = rel.as_deref().and_then(ChunkKey::from_cache_path) {
                entries.push(Entry {
                    key,
                    bytes: meta.len(),
                    used: meta.modified().ok(),
                });
            }
        })?;
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    /// Runs blocking file work off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        what: &'static str,
        f: impl FnOnce(LocalStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(this))
            .await
            .map_err(|e| StoreError::io(what, std::io::Error::other(e)))?
    }
}

/// Calls `visit` for every file under `dir` (a missing directory has none).
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path, &std::fs::Metadata)) -> Result<(), StoreError> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::io(format!("reading {}", dir.display()), e)),
        };
        for e in read.flatten() {
            let path = e.path();
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                stack.push(path);
            } else {
                visit(&path, &meta);
            }
        }
    }
    Ok(())
}

fn remove_empty_dirs(dir: &Path) {
    if let Ok(read) = std::fs::read_dir(dir) {
        for e in read.flatten() {
            if e.path().is_dir() {
                remove_empty_dirs(&e.path());
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

#[async_trait]
impl ChunkStore for LocalStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    async fn get(&self, key: &ChunkKey) -> Result<Option<Chunk>, StoreError> {
        let key = key.clone();
        self.blocking("checking a cache entry", move |s| s.get_blocking(&key))
            .await
    }

    async fn put(&self, chunk: &Chunk) -> Result<(), StoreError> {
        if let ChunkData::File(p) = &chunk.data
            && **p == *self.path(&chunk.key)
        {
            return Ok(());
        }
        let chunk = chunk.clone();
        self.blocking("storing a cache entry", move |s| s.put_blocking(&chunk))
            .await
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

    async fn check(&self, key: &ChunkKey) -> Result<Check, StoreError> {
        let key = key.clone();
        self.blocking("checking a cache entry", move |s| s.check_blocking(&key))
            .await
    }

    async fn list(&self) -> Result<Vec<Entry>, StoreError> {
        self.blocking("listing the cache", |s| s.list_blocking()).await
    }
}
