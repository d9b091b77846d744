//! The command dispatcher: validated settings in, an outcome (exit code and text) out.
//! `main.rs` only parses, sets up logging and prints.

use std::sync::Arc;

use crate::cache_cmd;
use crate::cancel::Cancel;
use crate::cli::{CacheCommand, Command};
use crate::download::{self, DownloadError};
use crate::exit::ExitCode;
use crate::report::Reporter;
use crate::settings::{CacheSettings, DownloadSettings, UsageError, parse_age, parse_size};
use crate::summary::{RunStatus, Summary};

/// What to print and how to exit.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub code: ExitCode,
    /// For stdout (JSON, or a command's listing).
    pub stdout: Option<String>,
    /// For stderr (the human summary).
    pub stderr: Option<String>,
}

/// A failure of a whole command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Download(#[from] DownloadError),
    #[error(transparent)]
    Cache(#[from] crate::cache::StoreError),
}

impl Error {
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
pub async fn run(command: &Command, reporter: Arc<dyn Reporter>) -> Result<Outcome, Error> {
    match command {
        Command::Download(args) => {
            let settings = DownloadSettings::resolve(args)?;
            let cancel = Cancel::default();
            let started = std::time::Instant::now();
            let summary = tokio::select! {
                r = download::run(&settings, reporter.clone(), cancel.clone()) => r?,
                () = interrupted() => {
                    cancel.cancel();
                    reporter.finish();
                    interrupted_summary(&settings, started.elapsed().as_secs_f64())
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
        Command::Cache(cmd) => run_cache(cmd).await,
    }
}

async fn run_cache(cmd: &CacheCommand) -> Result<Outcome, Error> {
    let (text, json) = match cmd {
        CacheCommand::Stats(a) => {
            let s = cache_cmd::stats(&CacheSettings::for_command(a)?).await?;
            (
                s.render(),
                a.json.then(|| serde_json::to_string(&s).unwrap_or_default()),
            )
        }
        CacheCommand::Verify(a) => {
            let r = cache_cmd::verify(&CacheSettings::for_command(a)?).await?;
            (
                r.render(),
                a.json.then(|| serde_json::to_string(&r).unwrap_or_default()),
            )
        }
        CacheCommand::Prune(p) => {
            let settings = CacheSettings::for_command(&p.common)?;
            let max = p
                .max_size
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(|e| UsageError(format!("invalid --max-size: {e}")))?;
            let age = p
                .older_than
                .as_deref()
                .map(parse_age)
                .transpose()
                .map_err(|e| UsageError(format!("invalid --older-than: {e}")))?;
            if max.is_none() && age.is_none() {
                return Err(UsageError("cache prune needs --max-size SIZE and/or --older-than AGE".into()).into());
            }
            let root = settings.cache_dir.clone();
            let r = tokio::task::spawn_blocking(move || cache_cmd::prune(&root, max, age))
                .await
                .map_err(|e| crate::cache::StoreError::io("pruning", std::io::Error::other(e)))??;
            (
                r.render(),
                p.common.json.then(|| serde_json::to_string(&r).unwrap_or_default()),
            )
        }
    };
    Ok(match json {
        Some(j) => Outcome {
            code: ExitCode::Success,
            stdout: Some(j),
            stderr: None,
        },
        None => Outcome {
            code: ExitCode::Success,
            stdout: Some(text),
            stderr: None,
        },
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

fn interrupted_summary(settings: &DownloadSettings, seconds: f64) -> Summary {
    Summary {
        status: RunStatus::Interrupted,
        exit_code: i32::from(ExitCode::Interrupted.code()),
        exchange: settings.exchange.clone(),
        symbols: settings.symbols.clone(),
        data_types: settings.data_types.iter().map(ToString::to_string).collect(),
        from: settings.range.from.to_string(),
        to: settings.range.to.to_string(),
        chunks: Default::default(),
        chunk_rows: 0,
        rows: 0,
        tardis: Default::default(),
        bytes_from_cache: 0,
        uploads: Default::default(),
        outputs: Vec::new(),
        skipped_outputs: Vec::new(),
        failures: Vec::new(),
        seconds,
    }
}
