//! Temporary files have owners. Every temporary file tickvault writes carries the id of the
//! process that made it, after a `tickvault-` mark (so a user's own files in an output folder
//! are never taken for ours): staged writes beside their target are
//! `.{name}.tickvault-{pid}-{random}.tmp` ([`crate::parquet::atomic::AtomicFile`]), spool files,
//! sort runs and remote downloads in `{cache}/tmp` are `tickvault-{pid}-….spool`. A process
//! removes its own on every exit but SIGKILL ([`sweep_own`], from `main`, over the directories
//! [`register_dir`] recorded); a later run that opens the cache
//! or output folder removes those of processes that no longer exist ([`sweep_dead`]), whatever
//! their age; `cache verify` reports and removes them too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use crate::parquet::atomic::TEMP_SUFFIX;

/// Suffix of download spool files and sort runs.
pub const SPOOL_SUFFIX: &str = ".spool";

/// Directories where this process made temporary files (swept at exit).
static DIRS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Records that this process makes temporary files in `dir` (and, for the cache, below it).
pub fn register_dir(dir: &Path) {
    DIRS.lock().unwrap_or_else(|e| e.into_inner()).insert(dir.to_path_buf());
}

/// The mark before the pid in every temporary file name.
const MARK: &str = "tickvault-";

/// The start of this process's spool file names: `tickvault-{pid}-`.
pub fn prefix() -> String {
    format!("{MARK}{}-", std::process::id())
}

/// The process that owns a temporary file, from its name; `None` for names that are not ours.
pub fn owner(name: &str) -> Option<u32> {
    let pid_after = |s: &str| -> Option<u32> {
        let (pid, rest) = s.split_once('-')?;
        if rest.is_empty() {
            return None;
        }
        pid.parse().ok()
    };
    if let Some(stem) = name.strip_suffix(SPOOL_SUFFIX) {
        return pid_after(stem.strip_prefix(MARK)?);
    }
    let stem = name.strip_suffix(TEMP_SUFFIX)?.strip_prefix('.')?;
    let at = stem.rfind(&format!(".{MARK}"))?;
    pid_after(&stem[at + 1 + MARK.len()..])
}

/// Whether process `pid` exists (on this host and in this pid namespace).
pub fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        let Some(p) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
            return false;
        };
        // Permission denied means it exists but belongs to someone else.
        !matches!(rustix::process::test_kill_process(p), Err(e) if e == rustix::io::Errno::SRCH)
    }
    #[cfg(not(unix))]
    {
        true
    }
}

/// Temporary files under `dir` (recursively when `deep`) with their owners.
pub fn list(dir: &Path, deep: bool) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else { continue };
        for e in read.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if deep {
                    stack.push(e.path());
                }
                continue;
            }
            if let Some(pid) = e.file_name().to_str().and_then(owner) {
                out.push((e.path(), pid));
            }
        }
    }
    out.sort();
    out
}

/// Removes the temporary files under `dir` whose process no longer exists. Returns them.
pub fn sweep_dead(dir: &Path, deep: bool) -> Vec<PathBuf> {
    list(dir, deep)
        .into_iter()
        .filter(|(_, pid)| !alive(*pid))
        .filter_map(|(p, _)| std::fs::remove_file(&p).is_ok().then_some(p))
        .collect()
}

/// Removes this process's own temporary files in every directory it registered (at exit).
pub fn sweep_own() {
    let me = std::process::id();
    let dirs = DIRS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for d in dirs {
        for (p, pid) in list(&d, true) {
            if pid == me {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_tell_their_owner() {
        assert_eq!(owner(".2024-01-01.parquet.tickvault-4242-aB3xYz.tmp"), Some(4242));
        assert_eq!(owner(".out.parquet.tickvault-17-x.tmp"), Some(17));
        assert_eq!(owner("tickvault-4242-7.spool"), Some(4242));
        assert_eq!(owner("tickvault-99-run-Ab12.spool"), Some(99));
        assert_eq!(owner("2024-01-01.parquet"), None);
        assert_eq!(owner("notes.tmp"), None);
        assert_eq!(owner(".lock"), None);
        // A user's own files in an output folder are never ours.
        assert_eq!(owner(".report.2024-01.tmp"), None);
        assert_eq!(owner("123-abc.spool"), None);
    }

    #[test]
    fn only_files_of_dead_processes_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("v1/x");
        std::fs::create_dir_all(&sub).unwrap();
        // A pid far above any pid_max is never alive.
        let dead = 999_999_999u32;
        let me = std::process::id();
        let files = [
            sub.join(format!(".a.parquet.tickvault-{dead}-q.tmp")),
            dir.path().join(format!("tickvault-{dead}-1.spool")),
            sub.join(format!(".b.parquet.tickvault-{me}-q.tmp")),
            sub.join("kept.parquet"),
        ];
        for f in &files {
            std::fs::write(f, b"x").unwrap();
        }
        assert!(alive(me) && !alive(dead));
        let swept = sweep_dead(dir.path(), true);
        assert_eq!(swept.len(), 2, "{swept:?}");
        assert!(!files[0].exists() && !files[1].exists());
        assert!(files[2].exists() && files[3].exists());
        register_dir(dir.path());
        sweep_own();
        assert!(!files[2].exists() && files[3].exists());
    }
}
