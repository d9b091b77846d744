//! The command dispatcher: a parsed invocation in, an outcome (exit code and text) out.
//! `main.rs` only parses, sets up logging and prints.

mod cache;
mod download;
mod serve;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use download::DownloadError;
pub use serve::ServeCommandError;

use crate::cache::StoreError;
use crate::run::exit::{ExitCode, RunStatus};
use crate::run::report::Reporter;
use crate::run::summary::Summary;
use crate::settings::cli::{CommandKind, Invocation};
use crate::settings::{CacheSettings, DownloadSettings, PruneSettings, ServeSettings, UsageError};

/// What to print and how to exit.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How to exit.
    pub code: ExitCode,
    /// For stdout (JSON, or a command's listing).
    pub stdout: Option<String>,
    /// For stderr (the human summary).
    pub stderr: Option<String>,
}

/// A failure of a whole command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad usage or input.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// The download could not run.
    #[error(transparent)]
    Download(#[from] DownloadError),
    /// The cache could not be read or maintained.
    #[error(transparent)]
    Cache(#[from] StoreError),
    /// The edge server could not start or failed.
    #[error(transparent)]
    Serve(#[from] ServeCommandError),
}

impl Error {
    /// The exit code of a failed command.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            _ => ExitCode::Failure,
        }
    }
}

/// Runs a command.
///
/// # Errors
/// [`Error::Usage`] for bad input (exit 2), others for failures that stop the command (exit 1).
pub async fn run(invocation: &Invocation, reporter: Arc<dyn Reporter>) -> Result<Outcome, Error> {
    let o = &invocation.options;
    let json = o.json.unwrap_or(false);
    let (text, json_text) = match invocation.command {
        CommandKind::Download => return run_download(&DownloadSettings::resolve(o)?, reporter).await,
        CommandKind::Serve => {
            // Stopped by SIGTERM or Ctrl-C after a graceful shutdown: the normal end of a server.
            serve::run(&ServeSettings::resolve(o)?).await?;
            return Ok(Outcome {
                code: ExitCode::Success,
                stdout: None,
                stderr: None,
            });
        }
        CommandKind::CacheStats => {
            let s = cache::stats(&CacheSettings::resolve(o)?).await?;
            (s.render(), json.then(|| to_json(&s)))
        }
        CommandKind::CacheVerify => {
            let r = cache::verify(&CacheSettings::resolve(o)?).await?;
            (r.render(), json.then(|| to_json(&r)))
        }
        CommandKind::CachePrune => {
            let r = cache::prune(&CacheSettings::resolve(o)?, PruneSettings::resolve(o)?).await?;
            (r.render(), json.then(|| to_json(&r)))
        }
    };
    Ok(Outcome {
        code: ExitCode::Success,
        stdout: Some(json_text.unwrap_or(text)),
        stderr: None,
    })
}

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

async fn run_download(settings: &DownloadSettings, reporter: Arc<dyn Reporter>) -> Result<Outcome, Error> {
    let cancel = CancellationToken::new();
    let started = std::time::Instant::now();
    let summary = tokio::select! {
        r = download::run(settings, reporter.clone(), cancel.clone()) => r?,
        () = interrupted() => {
            cancel.cancel();
            reporter.finish();
            Summary::begin(&settings.request).end(RunStatus::Interrupted, started.elapsed().as_secs_f64())
        }
    };
    let code = summary.exit();
    Ok(if settings.json {
        Outcome {
            code,
            stdout: Some(summary.to_json()),
            stderr: (code != ExitCode::Success).then(|| summary.render()),
        }
    } else {
        Outcome {
            code,
            stdout: None,
            stderr: Some(summary.render()),
        }
    })
}

/// Resolves on SIGINT or SIGTERM (cron and CI stop jobs with SIGTERM).
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
