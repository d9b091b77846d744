//! The `tickvault` binary: parse, set up logging and progress, run on the async runtime, print,
//! exit. Everything else is in the library.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::sync::Arc;

use tickvault::commands::{self, Outcome, failure, parse_failure};
use tickvault::redact::redact;
use tickvault::run::exit::ExitCode;
use tickvault::run::logging::{self, LogStyle, stderr_text};
use tickvault::run::progress::{Display, Progress};
use tickvault::settings::ToolSettings;
use tickvault::settings::cli::{CommandKind, color_arg, parse, wants_json};
use tracing::Level;

/// jemalloc rather than glibc malloc: the decode, encode and runtime threads allocate and free
/// large buffers across threads, and glibc's per-thread arenas keep a varying share of them,
/// so the peak RSS of one pull varied by ±15% between runs (issue 4, benches/e2e.py rss).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let invocation = match parse(args.clone()) {
        Ok(i) => i,
        Err(e) => {
            tickvault::redact::register_env();
            let color = clap_color(color_arg(&args).as_deref());
            return print(parse_failure(e, wants_json(&args), color), false, None);
        }
    };
    register_secrets(&invocation.options);
    let mut tool = match ToolSettings::resolve(&invocation.options) {
        Ok(t) => t,
        Err(e) => return print(failure(&e.0, ExitCode::Usage, wants_json(&args)), false, None),
    };
    let serving = invocation.command == CommandKind::Serve;
    if serving {
        // A server logs a line per request by default (info), and has no progress to show.
        tool.verbose = tool.verbose.saturating_add(1);
    }
    let stderr_is_terminal = std::io::stderr().is_terminal();
    let display = if serving {
        Display::Off
    } else {
        Display::decide(tool.progress, tool.log_format, stderr_is_terminal)
    };
    let progress = Arc::new(Progress::new(display));
    let style = LogStyle::for_process(&tool);
    logging::init(&tool, style, progress.log_writer());

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            let message = format!("cannot start the async runtime: {e}");
            return print(failure(&message, ExitCode::Failure, tool.json), tool.quiet, Some(style));
        }
    };
    let result = runtime.block_on(commands::run(&invocation, progress));
    // Let blocking work notice a cancellation and clean up its temporary files.
    runtime.shutdown_timeout(std::time::Duration::from_secs(10));
    // Whatever ended the run (an error, an interruption, success), this process's temporary
    // files go with it; only SIGKILL leaves any, and the next run removes those.
    tickvault::cache::temps::sweep_own();
    let outcome = result.unwrap_or_else(|e| {
        let code = e.exit_code();
        failure(&format!("{:#}", anyhow::Error::from(e)), code, tool.json)
    });
    print(outcome, tool.quiet, Some(style))
}

/// Prints an outcome (stderr only on failure when `quiet`; as a JSON line when logs are JSON)
/// and returns its exit code.
fn print(outcome: Outcome, quiet: bool, style: Option<LogStyle>) -> std::process::ExitCode {
    if let Some(text) = outcome.stderr.filter(|_| !quiet || outcome.code != ExitCode::Success) {
        let text = match style {
            Some(style) if outcome.code == ExitCode::Success => stderr_text(style, Level::INFO, "summary", &text),
            Some(style) => stderr_text(style, Level::ERROR, "summary", &text),
            None => text,
        };
        let _ = std::io::stderr().write_all(redact(&text).as_bytes());
    }
    if let Some(text) = outcome.stdout {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = writeln!(out, "{}", redact(text.trim_end())).and_then(|()| out.flush());
    }
    outcome.code.into()
}

/// Whether clap's messages are coloured: `--color`, else only on a terminal without NO_COLOR.
fn clap_color(choice: Option<&str>) -> bool {
    match choice {
        Some("always") => true,
        Some("never") => false,
        _ => std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}

/// Registers every secret of this process with the redaction layer before anything is printed.
fn register_secrets(o: &tickvault::settings::options::Options) {
    for s in [&o.api_key, &o.remote_cache_token, &o.remote_cache_secret]
        .into_iter()
        .flatten()
    {
        tickvault::redact::register(s.expose());
    }
    for url in [&o.remote_cache, &o.datasets_url, &o.api_url].into_iter().flatten() {
        tickvault::redact::register_url_credentials(url);
    }
    tickvault::redact::register_env();
}
