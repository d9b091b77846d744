//! Process exit codes, documented in README.md, and the one mapping from a run's status to
//! its code.

use serde::Serialize;

/// How a download run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every chunk and output is done.
    Ok,
    /// Some chunks or outputs failed; the rest are cached and a re-run fetches only what is missing.
    Failed,
    /// Some days are not published by Tardis yet: their outputs were withheld; retry later.
    NotPublished,
    /// `--max-transfer` bytes were fetched from Tardis: chunks were left for the next run.
    TransferLimit,
    /// An output path holds the output of another request (and `--overwrite` was not given).
    Refused,
    /// Stopped by Ctrl-C / SIGTERM.
    Interrupted,
}

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every chunk and output is done.
    Success,
    /// Some chunks (or outputs) failed; what succeeded is cached. Also any runtime error.
    Failure,
    /// Bad usage or input: nothing fetched, nothing written.
    Usage,
    /// Data not yet published by Tardis, or the transfer budget is spent: retry later.
    NotPublished,
    /// Interrupted by SIGINT/SIGTERM.
    Interrupted,
}

impl ExitCode {
    /// The process's exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::Usage => 2,
            ExitCode::NotPublished => 3,
            ExitCode::Interrupted => 130,
        }
    }
}

impl From<RunStatus> for ExitCode {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Ok => ExitCode::Success,
            RunStatus::Failed => ExitCode::Failure,
            RunStatus::NotPublished | RunStatus::TransferLimit => ExitCode::NotPublished,
            RunStatus::Refused => ExitCode::Usage,
            RunStatus::Interrupted => ExitCode::Interrupted,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}
