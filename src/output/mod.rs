//! Writing the outputs: one merged Parquet file per data type ([`merged`], rows interleaved by
//! `local_timestamp` through [`merge`]), or a Hive-partitioned table per data type
//! ([`partitioned`]). [`target`] names them and refuses to replace another request's output;
//! [`lock`] keeps two processes from writing one directory at once.
//!
//! Files are written atomically ([`crate::parquet::atomic`]), so a reader never sees a partial
//! file and an interrupted run leaves the previous output intact.

mod concat;
pub mod lock;
pub mod merge;
mod merged;
mod partitioned;
pub mod store;
pub mod target;

use std::path::PathBuf;

use serde::Serialize;

pub(crate) use merged::{fingerprint, write_merged};
pub(crate) use partitioned::write_partitioned;

use crate::model::DataType;
use crate::parquet::sealed::SealedError;
use merge::MergeError;

/// What happened to one output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStatus {
    /// Written by this run.
    Written,
    /// Already present, verified, and made from exactly these chunks.
    UpToDate,
}

/// One written (or up-to-date) output.
#[derive(Debug, Clone, Serialize)]
pub struct OutputResult {
    /// The data type it holds.
    pub data_type: String,
    /// The file, or the dataset's root directory.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Whether it was written or already up to date.
    pub status: OutputStatus,
    /// Chunks whose rows were read decoded from the memory tier rather than from their files.
    pub chunks_from_memory: u64,
    /// `false` when some of its days were not final (written with `--allow-incomplete`).
    pub complete: bool,
    /// For an incomplete output, `datasets.exportedUntil` of the exchange when it was
    /// written, when known (RFC 3339).
    pub exported_until: Option<String>,
}

/// Why an output could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file operation failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        #[source]
        /// The cause.
        source: std::io::Error,
    },
    /// Encoding the file failed.
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        #[source]
        /// The cause.
        source: SealedError,
    },
    /// The path holds the output of another request, and `--overwrite` was not given.
    #[error("{}", target::refusal(path, what))]
    Refused {
        /// The file.
        path: PathBuf,
        /// What it holds.
        what: String,
    },
    /// Reading the chunks or merging them failed.
    #[error("merging into {}", path.display())]
    Merge {
        /// The file.
        path: PathBuf,
        #[source]
        /// The cause.
        source: MergeError<SealedError>,
    },
}

/// Runs an output's blocking work (encoding, copying, renaming) on tokio's blocking pool; a
/// task that panicked is an error of writing.
pub(crate) async fn on_blocking_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, OutputError> + Send + 'static,
) -> Result<T, OutputError> {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(OutputError::Io {
            what: "writing",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })
    })
}

impl OutputError {
    pub(crate) fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Io { what, path, source }
    }

    fn write(path: &std::path::Path) -> impl Fn(SealedError) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Write {
            path: path.clone(),
            source,
        }
    }

    fn merge(path: &std::path::Path) -> impl FnOnce(MergeError<SealedError>) -> Self {
        let path = path.to_path_buf();
        move |source| Self::Merge { path, source }
    }
}

/// The row order of a merged output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Symbols in the order given, each symbol's days in order, rows within a day in file
    /// (`local_timestamp`) order: the chunks' column chunks copied without re-encoding.
    #[default]
    Symbol,
    /// Every symbol's rows interleaved by `local_timestamp` (ties: day, then symbol as given,
    /// then file order), for replay: decoded and encoded again.
    Time,
}

impl std::str::FromStr for Order {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "symbol" => Ok(Order::Symbol),
            "time" => Ok(Order::Time),
            other => Err(format!("invalid --order '{other}' (expected symbol or time)")),
        }
    }
}

impl std::fmt::Display for Order {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Order::Symbol => "symbol",
            Order::Time => "time",
        })
    }
}

/// Describes the run in the output's metadata (no key, no credentials).
#[derive(Debug, Clone)]
pub struct OutputContext {
    /// The data type written.
    pub data_type: DataType,
    /// The row order of a merged output.
    pub order: Order,
    /// e.g. `https://datasets.tardis.dev/v1 exchange=deribit symbols=BTC-PERPETUAL from=… to=…`
    pub source: String,
    /// `[from, to)` in µs when rows must be cut (a range not on whole days).
    pub range: Option<(i64, i64)>,
    /// Label of the range for the fingerprint.
    pub range_label: String,
    /// Decoded batches of chunks the memory tier holds (read instead of their files by an
    /// interleaving merge).
    pub resident: std::collections::HashMap<crate::model::ChunkKey, crate::cache::Batches>,
    /// The request, as a merged output records it ([`target::request_identity`]).
    pub identity: String,
    /// The request's symbols, sorted.
    pub symbols: Vec<String>,
    /// `datasets.exportedUntil` of the exchange, when known.
    pub exported_until: Option<jiff::Timestamp>,
    /// Replace outputs of other requests.
    pub overwrite: bool,
}

impl OutputContext {
    /// [`OutputResult::exported_until`].
    fn exported_until_text(&self) -> Option<String> {
        self.exported_until.map(crate::run::validate::iso)
    }
}

/// An error that stops writing once the run is interrupted.
fn cancelled(cancel: &tokio_util::sync::CancellationToken) -> Result<(), SealedError> {
    if cancel.is_cancelled() {
        Err(SealedError::io(
            "writing the output",
            std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"),
        ))
    } else {
        Ok(())
    }
}
