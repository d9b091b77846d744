//! The `tickvault` binary: parse, set up logging and the runtime, run, print, exit.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser as _;
use tickvault::cli::Cli;
use tickvault::exit::ExitCode;
use tickvault::progress::BarReporter;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than glibc malloc: the decode, encode and runtime threads allocate and free
/// large buffers across threads, and glibc's per-thread arenas keep a varying share of them,
/// so the peak RSS of one pull varied by ±15% between runs (issue 4, benches/e2e.py rss).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return ExitCode::Usage.into();
        }
        Err(e) if e.use_stderr() => {
            // One line, like every other error; the usage text is one --help away.
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("error: invalid usage")
                .trim_start_matches("error: ");
            return fail(&format!("{first} (see tickvault --help)"), ExitCode::Usage);
        }
        Err(e) => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::Success.into();
        }
    };
    let show_bar = !cli.quiet && !cli.no_progress && std::io::stderr().is_terminal();
    let reporter = Arc::new(BarReporter::new(show_bar));
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("tickvault={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(reporter.log_writer())
        .with_target(false)
        .without_time()
        .init();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("{e:#}"), ExitCode::Failure),
    };
    let result = runtime.block_on(tickvault::app::run(&cli.command, reporter));
    // Let blocking work notice a cancellation and clean up its temporary files.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    match result {
        Ok(outcome) => {
            if let Some(text) = outcome
                .stderr
                .filter(|_| !cli.quiet || outcome.code != ExitCode::Success)
            {
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
            if let Some(text) = outcome.stdout {
                let mut out = std::io::stdout().lock();
                // A closed pipe (`| head`) is not an error worth reporting.
                let _ = writeln!(out, "{}", text.trim_end()).and_then(|()| out.flush());
            }
            outcome.code.into()
        }
        // Library errors carry their causes in their one-line message.
        Err(e) => fail(&e.to_string(), e.exit_code()),
    }
}

fn fail(message: &str, code: ExitCode) -> std::process::ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    code.into()
}
