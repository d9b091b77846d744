//! `tickvault cache stats | verify | prune`: inspecting and maintaining the tiers.
//!
//! The local tier is walked on disk. The remote tier is listed through object_store where the
//! server can list (S3, GCS, Azure, file://, WebDAV servers with PROPFIND); a plain nginx
//! WebDAV cannot list, which is reported rather than guessed. The memory tier lives only inside
//! a running process, so there is nothing to inspect between runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::TryStreamExt;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;
use tracing::warn;

use crate::cache::{CacheLock, RemoteMode, RemoteStore, StoreError};
use crate::chunkfile::{ChunkFileError, read_meta, verify_bytes, verify_file};
use crate::model::{CACHE_LAYOUT_VERSION, ChunkKey};
use crate::settings::CacheSettings;
use crate::summary::{group, human_bytes};

/// One local cache entry.
#[derive(Debug, Clone)]
pub struct LocalEntry {
    pub key: ChunkKey,
    pub path: PathBuf,
    pub bytes: u64,
    /// Last use (hits refresh it), for least-recently-used pruning.
    pub used: SystemTime,
}

/// Every chunk file under a local cache, and the leftover temporary files.
///
/// # Errors
/// A directory that exists but cannot be read.
pub fn local_entries(root: &Path) -> Result<(Vec<LocalEntry>, Vec<PathBuf>), StoreError> {
    let mut entries = Vec::new();
    let mut temps = Vec::new();
    let base = root.join(CACHE_LAYOUT_VERSION);
    let mut stack = vec![base.clone()];
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
                continue;
            }
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if crate::cache::local_is_temp(name) {
                temps.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .ok()
                .and_then(|p| p.to_str())
                .map(|p| p.replace('\\', "/"));
            if let Some(key) = rel.as_deref().and_then(ChunkKey::from_cache_path) {
                entries.push(LocalEntry {
                    key,
                    path,
                    bytes: meta.len(),
                    used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
    }
    entries.sort_by(|a, b| a.key.cmp(&b.key));
    Ok((entries, temps))
}

/// Entries and bytes of one exchange and data type.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Group {
    pub entries: u64,
    pub bytes: u64,
}

/// One tier's contents.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TierStats {
    pub location: String,
    pub entries: u64,
    pub bytes: u64,
    /// `"exchange/data_type"` → counts.
    pub groups: BTreeMap<String, Group>,
    /// Why the tier could not be listed, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TierStats {
    fn add(&mut self, key: &ChunkKey, bytes: u64) {
        self.entries += 1;
        self.bytes += bytes;
        let g = self
            .groups
            .entry(format!("{}/{}", key.exchange, key.data_type))
            .or_default();
        g.entries += 1;
        g.bytes += bytes;
    }
}

/// `cache stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub local: TierStats,
    /// Local entries of days Tardis had not finished exporting (refetched on use).
    pub local_incomplete: u64,
    pub local_temp_files: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<TierStats>,
    pub memory: String,
}

/// Lists a remote's chunk objects (location, size), if the server can list.
async fn remote_objects(remote: &RemoteStore) -> Result<Vec<(ChunkKey, object_store::path::Path, u64)>, String> {
    let prefix = object_store::path::Path::from(CACHE_LAYOUT_VERSION);
    let listing: Result<Vec<object_store::ObjectMeta>, object_store::Error> =
        remote.store().list(Some(&prefix)).try_collect().await;
    let metas =
        listing.map_err(|e| format!("cannot list the remote ({e}); a plain nginx WebDAV server cannot list"))?;
    Ok(metas
        .into_iter()
        .filter_map(|m| ChunkKey::from_cache_path(m.location.as_ref()).map(|k| (k, m.location, m.size)))
        .collect())
}

/// Counts entries per tier.
///
/// # Errors
/// The local cache cannot be read.
pub async fn stats(settings: &CacheSettings) -> Result<Stats, StoreError> {
    let root = settings.cache_dir.clone();
    let (entries, temps) = tokio::task::spawn_blocking(move || local_entries(&root))
        .await
        .map_err(|e| StoreError::io("listing the cache", std::io::Error::other(e)))??;
    let mut local = TierStats {
        location: settings.cache_dir.display().to_string(),
        ..TierStats::default()
    };
    let mut incomplete = 0;
    for e in &entries {
        local.add(&e.key, e.bytes);
        if read_meta(&e.path).is_ok_and(|m| !m.complete) {
            incomplete += 1;
        }
    }
    let remote = match &settings.remote {
        None => None,
        Some(opts) => {
            let store = RemoteStore::open(opts)
                .map_err(|e| StoreError::io("opening the remote cache", std::io::Error::other(e.to_string())))?;
            let mut s = TierStats {
                location: store_name(&store),
                ..TierStats::default()
            };
            match remote_objects(&store).await {
                Ok(objects) => objects.iter().for_each(|(k, _, size)| s.add(k, *size)),
                Err(note) => s.note = Some(note),
            }
            Some(s)
        }
    };
    Ok(Stats {
        local,
        local_incomplete: incomplete,
        local_temp_files: temps.len() as u64,
        remote,
        memory: "per process: empty between runs".into(),
    })
}

fn store_name(store: &RemoteStore) -> String {
    use crate::cache::ChunkStore;
    store.describe()
}

/// `cache verify`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub checked: u64,
    pub ok: u64,
    /// Entries that failed their check and were removed.
    pub removed: Vec<String>,
    pub temp_files_removed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteVerify>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoteVerify {
    pub checked: u64,
    pub ok: u64,
    pub removed: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Re-checks every local entry (and remote entry, where the remote can list), removing bad ones.
///
/// # Errors
/// The cache cannot be locked or read.
pub async fn verify(settings: &CacheSettings) -> Result<VerifyReport, StoreError> {
    let root = settings.cache_dir.clone();
    let mut report = tokio::task::spawn_blocking(move || -> Result<VerifyReport, StoreError> {
        let _lock = CacheLock::exclusive(&root)?;
        let (entries, temps) = local_entries(&root)?;
        let mut report = VerifyReport::default();
        for e in &entries {
            report.checked += 1;
            match verify_file(&e.path, Some(&e.key)) {
                Ok(_) => report.ok += 1,
                Err(ChunkFileError::Corrupt(why)) => {
                    warn!("{}: {why}; removing it", e.path.display());
                    std::fs::remove_file(&e.path)
                        .map_err(|err| StoreError::io(format!("removing {}", e.path.display()), err))?;
                    report.removed.push(e.key.to_string());
                }
                Err(other) => return Err(other.into()),
            }
        }
        for t in temps.iter().filter(|t| crate::cache::local_is_stale_temp(t)) {
            if std::fs::remove_file(t).is_ok() {
                report.temp_files_removed += 1;
            }
        }
        Ok(report)
    })
    .await
    .map_err(|e| StoreError::io("verifying the cache", std::io::Error::other(e)))??;

    if let Some(opts) = &settings.remote {
        let store = RemoteStore::open(opts)
            .map_err(|e| StoreError::io("opening the remote cache", std::io::Error::other(e.to_string())))?;
        let mut rv = RemoteVerify::default();
        match remote_objects(&store).await {
            Err(note) => rv.note = Some(note),
            Ok(objects) => {
                for (key, location, _) in objects {
                    rv.checked += 1;
                    let bytes = match store.store().get(&location).await {
                        Ok(r) => r.bytes().await,
                        Err(e) => Err(e),
                    };
                    let sound = bytes.as_ref().is_ok_and(|b| verify_bytes(b, Some(&key)).is_ok());
                    if sound {
                        rv.ok += 1;
                    } else if store.mode() == RemoteMode::ReadWrite {
                        warn!("remote entry {key} failed its check; removing it");
                        if store.store().delete(&location).await.is_ok() {
                            rv.removed.push(key.to_string());
                        }
                    } else {
                        warn!("remote entry {key} failed its check (read-only: left in place)");
                    }
                }
            }
        }
        report.remote = Some(rv);
    }
    Ok(report)
}

/// `cache prune`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub removed_entries: u64,
    pub removed_bytes: u64,
    pub kept_entries: u64,
    pub kept_bytes: u64,
}

/// Removes local entries older than `older_than`, then the least recently used ones until the
/// cache is at most `max_size` bytes.
///
/// # Errors
/// The cache cannot be locked, read, or an entry cannot be removed.
pub fn prune(root: &Path, max_size: Option<u64>, older_than: Option<Duration>) -> Result<PruneReport, StoreError> {
    let _lock = CacheLock::exclusive(root)?;
    let (mut entries, _) = local_entries(root)?;
    entries.sort_by_key(|e| e.used);
    let now = SystemTime::now();
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut report = PruneReport::default();
    for e in &entries {
        let too_old = older_than.is_some_and(|age| now.duration_since(e.used).is_ok_and(|d| d > age));
        let too_big = max_size.is_some_and(|max| total > max);
        if too_old || too_big {
            std::fs::remove_file(&e.path)
                .map_err(|err| StoreError::io(format!("removing {}", e.path.display()), err))?;
            total -= e.bytes;
            report.removed_entries += 1;
            report.removed_bytes += e.bytes;
        } else {
            report.kept_entries += 1;
            report.kept_bytes += e.bytes;
        }
    }
    remove_empty_dirs(&root.join(CACHE_LAYOUT_VERSION));
    Ok(report)
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

impl Stats {
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut tier = |name: &str, t: &TierStats| {
            s.push_str(&format!(
                "{name} ({}): {} entries, {}\n",
                t.location,
                group(t.entries),
                human_bytes(t.bytes)
            ));
            for (g, c) in &t.groups {
                s.push_str(&format!(
                    "  {g}: {} entries, {}\n",
                    group(c.entries),
                    human_bytes(c.bytes)
                ));
            }
            if let Some(n) = &t.note {
                s.push_str(&format!("  {n}\n"));
            }
        };
        tier("local", &self.local);
        if let Some(r) = &self.remote {
            tier("remote", r);
        }
        let mut s2 = s;
        if self.local_incomplete > 0 {
            s2.push_str(&format!(
                "local: {} entries of days not yet fully exported\n",
                self.local_incomplete
            ));
        }
        if self.local_temp_files > 0 {
            s2.push_str(&format!(
                "local: {} temporary files (in use, or left by a killed run)\n",
                self.local_temp_files
            ));
        }
        s2.push_str(&format!("memory: {}\n", self.memory));
        s2
    }
}

impl VerifyReport {
    pub fn render(&self) -> String {
        let mut s = format!(
            "local: {} entries checked, {} ok, {} removed\n",
            self.checked,
            self.ok,
            self.removed.len()
        );
        for r in &self.removed {
            s.push_str(&format!("  removed {r}\n"));
        }
        if self.temp_files_removed > 0 {
            s.push_str(&format!(
                "local: {} stale temporary files removed\n",
                self.temp_files_removed
            ));
        }
        if let Some(r) = &self.remote {
            match &r.note {
                Some(n) => s.push_str(&format!("remote: not verified: {n}\n")),
                None => s.push_str(&format!(
                    "remote: {} entries checked, {} ok, {} removed\n",
                    r.checked,
                    r.ok,
                    r.removed.len()
                )),
            }
        }
        s
    }

    /// Whether bad entries were found.
    pub fn found_bad(&self) -> bool {
        !self.removed.is_empty() || self.remote.as_ref().is_some_and(|r| r.checked > r.ok)
    }
}

impl PruneReport {
    pub fn render(&self) -> String {
        format!(
            "removed {} entries ({}); kept {} entries ({})\n",
            group(self.removed_entries),
            human_bytes(self.removed_bytes),
            group(self.kept_entries),
            human_bytes(self.kept_bytes)
        )
    }
}
