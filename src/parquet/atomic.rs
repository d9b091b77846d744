//! Atomic file writes: a temporary file in the target's directory, synced, renamed into place,
//! and the directory synced, so a reader (in this or another process) sees the whole new file
//! or the old one, never a torn one (uv's `write_atomic` is the model). The temporary name
//! carries the process id (`.{name}.tickvault-{pid}-{random}.tmp`, see
//! [`crate::cache::temps`]), and the file is removed when the guard is dropped without
//! [`AtomicFile::commit`].

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Suffix of every temporary file tickvault writes beside its targets.
pub const TEMP_SUFFIX: &str = ".tmp";

/// A file being written; renamed over `target` by [`Self::commit`], removed otherwise.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: NamedTempFile,
    target: PathBuf,
}

impl AtomicFile {
    /// Creates the temporary file beside `target`, creating the directory if needed.
    ///
    /// # Errors
    /// The directory or the file cannot be created.
    pub fn create(target: &Path) -> io::Result<Self> {
        let dir = parent_dir(target);
        std::fs::create_dir_all(dir)?;
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.tickvault-{}-", std::process::id()))
            .suffix(TEMP_SUFFIX)
            .tempfile_in(dir)?;
        Ok(Self {
            tmp,
            target: target.to_path_buf(),
        })
    }

    /// Where the bytes go until the commit.
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// A second handle on the temporary file (read and write), e.g. for a Parquet writer.
    ///
    /// # Errors
    /// The handle cannot be duplicated.
    pub fn handle(&self) -> io::Result<File> {
        self.tmp.as_file().try_clone()
    }

    /// Syncs the file, renames it over the target and syncs the directory. Returns the target.
    ///
    /// # Errors
    /// Syncing or renaming failed; the temporary file is then removed.
    pub fn commit(self) -> io::Result<PathBuf> {
        self.tmp.as_file().sync_all()?;
        let target = self.target;
        self.tmp.persist(&target).map_err(|e| e.error)?;
        if let Ok(d) = File::open(parent_dir(&target)) {
            // Make the rename itself durable.
            let _ = d.sync_all();
        }
        Ok(target)
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_commit_replaces_the_target_and_a_drop_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/out.parquet");
        let a = AtomicFile::create(&target).unwrap();
        let name = a.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            name.starts_with(&format!(".out.parquet.tickvault-{}-", std::process::id())),
            "{name}"
        );
        assert!(name.ends_with(TEMP_SUFFIX));
        a.handle().unwrap().write_all(b"one").unwrap();
        a.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"one");
        let b = AtomicFile::create(&target).unwrap();
        b.handle().unwrap().write_all(b"two").unwrap();
        drop(b);
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"one",
            "an abandoned write changes nothing"
        );
        assert_eq!(std::fs::read_dir(target.parent().unwrap()).unwrap().count(), 1);
    }
}
