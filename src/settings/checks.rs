//! Checks of paths on disk that leave nothing behind: an output or cache directory must be
//! writable (or creatable under its nearest existing ancestor).

use std::path::{Path, PathBuf};

use super::{OutputSpec, UsageError};

/// Checks that the output can be written, without writing anything lasting.
pub(super) fn check_output(output: &OutputSpec) -> Result<(), UsageError> {
    match output {
        OutputSpec::File(path) => {
            if path.is_dir() {
                return Err(UsageError(format!(
                    "--output {} is a directory, not a .parquet file",
                    path.display()
                )));
            }
            check_writable_dir("--output", &output.dir())
        }
        OutputSpec::Dir(dir) | OutputSpec::Partitioned(dir) => {
            if dir.exists() && !dir.is_dir() {
                return Err(UsageError(format!(
                    "--output {} exists and is not a directory",
                    dir.display()
                )));
            }
            check_writable_dir("--output", dir)
        }
    }
}

/// Checks that `dir` exists and is writable, or could be created under its nearest existing
/// ancestor. Probes with a temporary file that is removed at once.
pub(super) fn check_writable_dir(flag: &str, dir: &Path) -> Result<(), UsageError> {
    let mut probe_dir = dir.to_path_buf();
    while !probe_dir.exists() {
        match probe_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => probe_dir = p.to_path_buf(),
            _ => {
                probe_dir = PathBuf::from(".");
                break;
            }
        }
    }
    if !probe_dir.is_dir() {
        return Err(UsageError(format!(
            "{flag} {}: {} is not a directory",
            dir.display(),
            probe_dir.display()
        )));
    }
    let probe = probe_dir.join(format!(
        ".tickvault-probe-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(UsageError(format!("{flag} {} is not writable: {e}", dir.display()))),
    }
}
