//! The `tickvault` binary: parse, set up logging and the runtime, run, print, exit.

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use anyhow::Context;
use tickvault::commands;
use tickvault::run::exit::ExitCode;
use tickvault::run::progress::BarReporter;
use tickvault::settings::cli::{CommandKind, Invocation, ParseError, parse};
use tickvault::settings::spec::LogFormat;
use tracing_subscriber::EnvFilter;

/// jemalloc rather than glibc malloc: the decode, encode and runtime threads allocate and free
/// large buffers across threads, and glibc's per-thread arenas keep a varying share of them,
/// so the peak RSS of one pull varied by ±15% between runs (issue 4, benches/e2e.py rss).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let invocation = match parse(std::env::args_os()) {
        Ok(i) => i,
        Err(e) => return parse_failure(e),
    };
    let o = &invocation.options;
    let quiet = o.quiet.unwrap_or(false);
    let show_bar = !quiet && o.progress.unwrap_or(true) && std::io::stderr().is_terminal();
    let reporter = Arc::new(BarReporter::new(show_bar));
    init_logging(&invocation, &reporter);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
    {
        Ok(r) => r,
        Err(e) => return fail(&format!("{e:#}"), ExitCode::Failure),
    };
    let result = runtime.block_on(commands::run(&invocation, reporter));
    // Let blocking work notice a cancellation and clean up its temporary files.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    match result {
        Ok(outcome) => {
            if let Some(text) = outcome.stderr.filter(|_| !quiet || outcome.code != ExitCode::Success) {
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
            if let Some(text) = outcome.stdout {
                let mut out = std::io::stdout().lock();
                // A closed pipe (`| head`) is not an error worth reporting.
                let _ = writeln!(out, "{}", text.trim_end()).and_then(|()| out.flush());
            }
            outcome.code.into()
        }
        Err(e) => {
            let code = e.exit_code();
            fail(&format!("{:#}", anyhow::Error::from(e)), code)
        }
    }
}

/// `--help` and `--version` print and succeed; anything else is one line and exit code 2.
fn parse_failure(e: ParseError) -> std::process::ExitCode {
    let e = match e {
        ParseError::Usage(u) => return fail(&u.0, ExitCode::Usage),
        ParseError::Clap(e) => e,
    };
    if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        let _ = e.print();
        return ExitCode::Usage.into();
    }
    if !e.use_stderr() {
        let _ = e.print();
        return ExitCode::Success.into();
    }
    // One line, like every other error; the usage text is one --help away.
    let text = e.render().to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("error: invalid usage")
        .trim_start_matches("error: ");
    fail(&format!("{first} (see tickvault --help)"), ExitCode::Usage)
}

fn init_logging(invocation: &Invocation, reporter: &BarReporter) {
    let o = &invocation.options;
    // A server logs a line per request by default (info); other commands only warnings.
    let base = usize::from(invocation.command == CommandKind::Serve);
    let level = match (
        o.quiet.unwrap_or(false),
        base + usize::from(o.verbose.map_or(0, |c| c.0)),
    ) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("tickvault={level},warn")));
    // Colours only for a terminal: a server's log usually goes to a file or a journal.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(reporter.log_writer())
        .with_ansi(colour)
        .with_target(false);
    if o.log_format == Some(LogFormat::Json) {
        // Machine-read logs carry their time; text logs go to a terminal or a journal that
        // stamps them.
        builder.json().init();
    } else if invocation.command == CommandKind::Serve {
        builder.init();
    } else {
        builder.without_time().init();
    }
}

fn fail(message: &str, code: ExitCode) -> std::process::ExitCode {
    let _ = writeln!(std::io::stderr(), "error: {message}");
    code.into()
}
