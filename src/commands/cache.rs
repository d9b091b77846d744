//! `tickvault cache stats | verify | prune`: inspecting and maintaining the tiers through the
//! [`ChunkStore`] trait (`list`, `check`, `delete`). A remote that cannot list its keys (a plain
//! nginx WebDAV) is reported, not guessed. The memory tier lives only inside a running process,
//! so there is nothing to inspect between runs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use indicatif::{HumanBytes, HumanCount};
use serde::Serialize;
use tracing::warn;

use crate::cache::chunk_file::read_meta;
use crate::cache::{CacheLock, Check, ChunkStore, Entry, LocalStore, RemoteMode, RemoteStore, StoreError};
use crate::settings::{CacheSettings, PruneSettings};

/// Entries and bytes of one exchange and data type.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Group {
    /// Entries.
    pub entries: u64,
    /// Bytes.
    pub bytes: u64,
}

/// One tier's contents.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TierStats {
    /// The tier (a path or a URL without credentials).
    pub location: String,
    /// Entries.
    pub entries: u64,
    /// Bytes.
    pub bytes: u64,
    /// `"exchange/data_type"` (or `"exchange/bars-v1-1m-timestamp"` for derived chunks) → counts.
    pub groups: BTreeMap<String, Group>,
    /// Why the tier could not be listed, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl TierStats {
    fn of(location: String, entries: &[Entry]) -> Self {
        let mut s = Self {
            location,
            ..Self::default()
        };
        for e in entries {
            s.entries += 1;
            s.bytes += e.bytes;
            let g = s
                .groups
                .entry(format!("{}/{}", e.key.exchange, e.key.kind()))
                .or_default();
            g.entries += 1;
            g.bytes += e.bytes;
        }
        s
    }

    fn render(&self, name: &str, out: &mut String) {
        let _ = writeln!(
            out,
            "{name} ({}): {} entries, {}",
            self.location,
            HumanCount(self.entries),
            HumanBytes(self.bytes)
        );
        for (g, c) in &self.groups {
            let _ = writeln!(out, "  {g}: {} entries, {}", HumanCount(c.entries), HumanBytes(c.bytes));
        }
        if let Some(n) = &self.note {
            let _ = writeln!(out, "  {n}");
        }
    }
}

/// `cache stats`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// The local tier.
    pub local: TierStats,
    /// Local entries of days Tardis had not finished exporting (refetched on use).
    pub local_incomplete: u64,
    /// Temporary files in the local tier.
    pub local_temp_files: u64,
    /// The remote tier, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<TierStats>,
    /// The memory tier.
    pub memory: String,
}

fn open_remote(settings: &CacheSettings) -> Result<Option<RemoteStore>, StoreError> {
    settings
        .remote
        .as_ref()
        .map(|opts| {
            RemoteStore::open(opts).map_err(|e| StoreError::io("opening the remote cache", std::io::Error::other(e)))
        })
        .transpose()
}

/// The note for a tier that cannot be listed.
fn list_note(e: &StoreError) -> String {
    format!(
        "cannot list the remote ({}); a plain nginx WebDAV server cannot list",
        crate::error::chain(e)
    )
}

/// Counts entries per tier.
///
/// # Errors
/// The local cache cannot be read.
pub(super) async fn stats(settings: &CacheSettings) -> Result<Stats, StoreError> {
    let local = LocalStore::at(&settings.cache_dir);
    let entries = local.list().await?;
    let incomplete = entries
        .iter()
        .filter(|e| read_meta(&local.path(&e.key)).is_ok_and(|m| !m.complete))
        .count() as u64;
    let temps = local.temp_files().len() as u64;
    let remote = match open_remote(settings)? {
        None => None,
        Some(store) => Some(match store.list().await {
            Ok(entries) => TierStats::of(store.describe(), &entries),
            Err(e) => TierStats {
                location: store.describe(),
                note: Some(list_note(&e)),
                ..TierStats::default()
            },
        }),
    };
    Ok(Stats {
        local: TierStats::of(settings.cache_dir.display().to_string(), &entries),
        local_incomplete: incomplete,
        local_temp_files: temps,
        remote,
        memory: "per process: empty between runs".into(),
    })
}

impl Stats {
    /// For people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.local.render("local", &mut s);
        if let Some(r) = &self.remote {
            r.render("remote", &mut s);
        }
        if self.local_incomplete > 0 {
            let _ = writeln!(
                s,
                "local: {} entries of days not yet fully exported",
                self.local_incomplete
            );
        }
        if self.local_temp_files > 0 {
            let _ = writeln!(
                s,
                "local: {} temporary files (in use, or left by a killed run)",
                self.local_temp_files
            );
        }
        let _ = writeln!(s, "memory: {}", self.memory);
        s
    }
}

/// What a verification of one tier found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TierVerify {
    /// Entries checked.
    pub checked: u64,
    /// Sound entries.
    pub ok: u64,
    /// Entries that failed their check and were removed.
    pub removed: Vec<String>,
    /// Why the tier could not be verified, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `cache verify`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// The local tier.
    #[serde(flatten)]
    pub local: TierVerify,
    /// Temporary files of processes that no longer exist, removed.
    pub temp_files_removed: u64,
    /// Temporary files of processes still running, left alone.
    pub temp_files_in_use: u64,
    /// The remote tier, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<TierVerify>,
}

/// Checks every listed entry of `store`; removes the bad ones when `remove`.
async fn verify_tier(store: &dyn ChunkStore, remove: bool) -> Result<TierVerify, StoreError> {
    let mut report = TierVerify::default();
    for e in store.list().await? {
        report.checked += 1;
        match store.check(&e.key).await? {
            Check::Sound(_) => report.ok += 1,
            Check::Missing => report.checked -= 1,
            Check::Corrupt(why) if remove => {
                warn!("{}: {} {why}; removing it", store.describe(), e.key);
                store.delete(&e.key).await?;
                report.removed.push(e.key.to_string());
            }
            Check::Corrupt(why) => warn!("{}: {} {why} (read-only: left in place)", store.describe(), e.key),
        }
    }
    Ok(report)
}

/// Re-checks every local entry (and remote entry, where the remote can list), removing bad ones.
///
/// # Errors
/// The cache cannot be locked or read.
pub(super) async fn verify(settings: &CacheSettings) -> Result<VerifyReport, StoreError> {
    let root = settings.cache_dir.clone();
    let _lock = tokio::task::spawn_blocking(move || CacheLock::exclusive(&root))
        .await
        .map_err(|e| StoreError::io("locking the cache", std::io::Error::other(e)))??;
    let local = LocalStore::at(&settings.cache_dir);
    let mut report = VerifyReport {
        local: verify_tier(&local, true).await?,
        ..VerifyReport::default()
    };
    for (temp, dead) in local.temp_files() {
        if !dead {
            report.temp_files_in_use += 1;
        } else if std::fs::remove_file(&temp).is_ok() {
            warn!(
                "removed {}, a temporary file of a process that no longer runs",
                temp.display()
            );
            report.temp_files_removed += 1;
        }
    }
    if let Some(store) = open_remote(settings)? {
        let writable = store.mode() == RemoteMode::ReadWrite;
        report.remote = Some(match verify_tier(&store, writable).await {
            Ok(r) => r,
            Err(e @ StoreError::CannotList { .. }) => TierVerify {
                note: Some(list_note(&e)),
                ..TierVerify::default()
            },
            Err(e) => return Err(e),
        });
    }
    Ok(report)
}

impl VerifyReport {
    /// For people.
    pub fn render(&self) -> String {
        let l = &self.local;
        let mut s = format!(
            "local: {} entries checked, {} ok, {} removed\n",
            l.checked,
            l.ok,
            l.removed.len()
        );
        for r in &l.removed {
            let _ = writeln!(s, "  removed {r}");
        }
        if self.temp_files_removed > 0 {
            let _ = writeln!(
                s,
                "local: {} temporary files of processes that no longer run removed",
                self.temp_files_removed
            );
        }
        if self.temp_files_in_use > 0 {
            let _ = writeln!(
                s,
                "local: {} temporary files in use by running processes",
                self.temp_files_in_use
            );
        }
        if let Some(r) = &self.remote {
            match &r.note {
                Some(n) => {
                    let _ = writeln!(s, "remote: not verified: {n}");
                }
                None => {
                    let _ = writeln!(
                        s,
                        "remote: {} entries checked, {} ok, {} removed",
                        r.checked,
                        r.ok,
                        r.removed.len()
                    );
                }
            }
        }
        s
    }
}

/// `cache prune`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Entries removed.
    pub removed_entries: u64,
    /// Bytes removed.
    pub removed_bytes: u64,
    /// Entries kept.
    pub kept_entries: u64,
    /// Bytes kept.
    pub kept_bytes: u64,
}

/// Removes local entries older than `older_than`, then the least recently used ones until the
/// cache is at most `max_size` bytes.
///
/// # Errors
/// The cache cannot be locked, read, or an entry cannot be removed.
pub(super) async fn prune(settings: &CacheSettings, limits: PruneSettings) -> Result<PruneReport, StoreError> {
    let root = settings.cache_dir.clone();
    let _lock = tokio::task::spawn_blocking(move || CacheLock::exclusive(&root))
        .await
        .map_err(|e| StoreError::io("locking the cache", std::io::Error::other(e)))??;
    let local = LocalStore::at(&settings.cache_dir);
    let mut entries = local.list().await?;
    entries.sort_by_key(|e| e.used.unwrap_or(SystemTime::UNIX_EPOCH));
    let now = SystemTime::now();
    let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
    let mut report = PruneReport::default();
    let too_old = |e: &Entry| {
        limits.older_than.is_some_and(|age: Duration| {
            now.duration_since(e.used.unwrap_or(SystemTime::UNIX_EPOCH))
                .is_ok_and(|d| d > age)
        })
    };
    for e in &entries {
        if too_old(e) || limits.max_size.is_some_and(|max| total > max) {
            local.delete(&e.key).await?;
            total -= e.bytes;
            report.removed_entries += 1;
            report.removed_bytes += e.bytes;
        } else {
            report.kept_entries += 1;
            report.kept_bytes += e.bytes;
        }
    }
    local.remove_empty_dirs();
    Ok(report)
}

impl PruneReport {
    /// For people.
    pub fn render(&self) -> String {
        format!(
            "removed {} entries ({}); kept {} entries ({})\n",
            HumanCount(self.removed_entries),
            HumanBytes(self.removed_bytes),
            HumanCount(self.kept_entries),
            HumanBytes(self.kept_bytes)
        )
    }
}
