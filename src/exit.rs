//! Process exit codes, documented in README.md.

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every chunk and output is done.
    Success,
    /// Some chunks (or outputs) failed; what succeeded is cached. Also any runtime error.
    Failure,
    /// Bad usage or input: nothing fetched, nothing written.
    Usage,
    /// Interrupted by SIGINT/SIGTERM.
    Interrupted,
}

impl ExitCode {
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::Usage => 2,
            ExitCode::Interrupted => 130,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(c: ExitCode) -> Self {
        std::process::ExitCode::from(c.code())
    }
}
