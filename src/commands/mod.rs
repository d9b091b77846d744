//! The command dispatcher: a parsed invocation in, an outcome (exit code and text) out.
//! `main.rs` only parses, sets up logging and prints.

mod bars;
mod cache;
mod config;
mod download;
mod exchanges;
mod serve;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use download::DownloadError;
pub use exchanges::ExchangesError;
pub use serve::ServeCommandError;

use crate::cache::StoreError;
use crate::run::exit::{ExitCode, RunStatus};
use crate::run::report::Reporter;
use crate::run::summary::Summary;
use crate::settings::cli::{CommandKind, Invocation, ParseError, official_name_hint};
use crate::settings::{
    BarsSettings, CacheSettings, DownloadSettings, ExchangesSettings, PruneSettings, ServeSettings, UsageError,
};

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
    /// `tickvault exchanges` failed.
    #[error(transparent)]
    Exchanges(#[from] ExchangesError),
    /// The edge server could not start or failed.
    #[error(transparent)]
    Serve(#[from] ServeCommandError),
}

impl Error {
    /// The exit code of a failed command.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::Usage(_) => ExitCode::Usage,
            Error::Download(e) if e.is_usage() => ExitCode::Usage,
            Error::Exchanges(e) if e.is_usage() => ExitCode::Usage,
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
    let (text, json_text) = match &invocation.command {
        CommandKind::Download => {
            let settings = DownloadSettings::resolve(o)?;
            if settings.dry_run {
                return dry_run(&settings).await;
            }
            return run_download(&settings, reporter).await;
        }
        CommandKind::Bars => {
            let settings = BarsSettings::resolve(o)?;
            return run_bars(&settings, reporter).await;
        }
        CommandKind::Serve => {
            // Stopped by SIGTERM or Ctrl-C after a graceful shutdown: the normal end of a server.
            serve::run(&ServeSettings::resolve(o)?).await?;
            return Ok(Outcome {
                code: ExitCode::Success,
                stdout: None,
                stderr: None,
            });
        }
        CommandKind::Config => {
            let c = config::Report::new(invocation);
            (c.render(), json.then(|| to_json(&c)))
        }
        CommandKind::Completions(shell) => (config::completions(*shell), None),
        CommandKind::Man(name) => (config::man(name.as_deref())?, None),
        CommandKind::CacheStats => {
            let s = cache::stats(&CacheSettings::resolve(o)?).await?;
            (s.render(), json.then(|| to_json(&s)))
        }
        CommandKind::CacheVerify => {
            let r = cache::verify(&CacheSettings::resolve(o)?).await?;
            (r.render(), json.then(|| to_json(&r)))
        }
        CommandKind::Exchanges => {
            let text = exchanges::run(&ExchangesSettings::resolve(o)?).await?;
            (text, None)
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

/// The outcome of a failed command: one line (`error: …`) on stderr and, under `--json`, the
/// JSON error document on stdout.
pub fn failure(message: &str, code: ExitCode, json: bool) -> Outcome {
    Outcome {
        code,
        stdout: json.then(|| crate::run::summary::error_json(code, message)),
        stderr: Some(format!("error: {message}\n")),
    }
}

/// The outcome of a command line that [`crate::settings::cli::parse`] refused: clap's whole
/// message (its suggestions and usage included, coloured when `color`), with a tip when a flag
/// is spelled as the official tardis-dev clients spell it; `--help` and `--version` succeed.
pub fn parse_failure(e: ParseError, json: bool, color: bool) -> Outcome {
    let e = match e {
        ParseError::Usage(u) => return failure(&u.0, ExitCode::Usage, json),
        ParseError::Clap(e) => e,
    };
    let rendered = e.render();
    let mut text = if color {
        rendered.ansi().to_string()
    } else {
        rendered.to_string()
    };
    if !e.use_stderr() {
        // --help and --version go to stdout, which may be a pipe: no escape codes.
        return Outcome {
            code: ExitCode::Success,
            stdout: Some(rendered.to_string()),
            stderr: None,
        };
    }
    let plain = rendered.to_string();
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return Outcome {
            code: ExitCode::Usage,
            stdout: json.then(|| crate::run::summary::error_json(ExitCode::Usage, "a command is required")),
            stderr: Some(text),
        };
    }
    let hint = match e.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(arg)) => official_name_hint(arg),
        _ => None,
    };
    if let Some(hint) = &hint {
        text = format!("{}\n\n  {hint}\n", text.trim_end());
    }
    let first = plain
        .lines()
        .next()
        .unwrap_or("invalid usage")
        .trim_start_matches("error: ");
    let message = match &hint {
        Some(h) => format!("{first} ({h})"),
        None => first.to_string(),
    };
    Outcome {
        code: ExitCode::Usage,
        stdout: json.then(|| crate::run::summary::error_json(ExitCode::Usage, &message)),
        stderr: Some(text),
    }
}

fn to_json(v: &impl serde::Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// How long a run may take to wind down after a signal before its summary is written without it.
const WIND_DOWN: std::time::Duration = std::time::Duration::from_secs(5);

async fn run_download(settings: &DownloadSettings, reporter: Arc<dyn Reporter>) -> Result<Outcome, Error> {
    let run = |cancel| download::run(settings, reporter.clone(), cancel);
    let planned = crate::run::shard::planned(&settings.request, settings.shard)
        .requests
        .len() as u64;
    run_with_signals(&settings.request, planned, settings.json, reporter.clone(), run).await
}

async fn run_bars(settings: &BarsSettings, reporter: Arc<dyn Reporter>) -> Result<Outcome, Error> {
    let run = |cancel| bars::run(settings, reporter.clone(), cancel);
    let planned = crate::run::plan::Plan::new(&settings.download.request).requests.len() as u64;
    run_with_signals(
        &settings.download.request,
        planned,
        settings.download.json,
        reporter.clone(),
        run,
    )
    .await
}

/// Runs a download-like command until it ends or a signal stops it, and renders its summary.
async fn run_with_signals<F, Fut>(
    request: &crate::run::plan::Request,
    planned: u64,
    json: bool,
    reporter: Arc<dyn Reporter>,
    run: F,
) -> Result<Outcome, Error>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<Summary, DownloadError>>,
{
    let cancel = CancellationToken::new();
    let started = std::time::Instant::now();
    let watcher = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            interrupted().await;
            cancel.cancel();
        }
    });
    let run = run(cancel.clone());
    let summary = tokio::select! {
        r = run => r?,
        () = async { cancel.cancelled().await; tokio::time::sleep(WIND_DOWN).await } => {
            // The run did not hand back its totals in time: report the plan, nothing done.
            reporter.finish();
            let mut s = Summary::begin(request);
            s.chunks.total = planned;
            s.chunks.pending = s.chunks.total;
            s.end(RunStatus::Interrupted, started.elapsed().as_secs_f64())
        }
    };
    watcher.abort();
    let code = summary.exit();
    Ok(if json {
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

/// `download --dry-run`: the plan on stdout, as a table or JSON.
async fn dry_run(settings: &DownloadSettings) -> Result<Outcome, Error> {
    let plan = crate::run::dry_run::DryRun::build(settings).await?;
    Ok(Outcome {
        code: ExitCode::Success,
        stdout: Some(if settings.json { to_json(&plan) } else { plan.render() }),
        stderr: None,
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
