//! The command line: the command tree, built from the option declarations, and the layering of
//! flags, environment variables, the job, the config file and the defaults.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgMatches, Command};
use clap_complete::Shell;

use super::UsageError;
use super::layers::{clap_args, defaults, discover, from_matches};
use super::options::{ALL, Options, for_scope};
use super::spec::Scope;

/// The id of the positional argument of `tickvault exchanges`.
const EXCHANGE_ID: &str = "exchange_id";

/// Which command was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    /// `tickvault download`.
    Download,
    /// `tickvault bars`.
    Bars,
    /// `tickvault cache stats`.
    CacheStats,
    /// `tickvault cache verify`.
    CacheVerify,
    /// `tickvault cache prune`.
    CachePrune,
    /// `tickvault serve`.
    Serve,
    /// `tickvault exchanges [ID]`.
    Exchanges,
    /// `tickvault config`: every option's value and where it came from.
    Config,
    /// `tickvault completions SHELL`.
    Completions(Shell),
    /// `tickvault man [COMMAND]`.
    Man(Option<String>),
}

/// Where an option's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// Its environment variable.
    Env,
    /// `[jobs.NAME]` of the config file.
    Job(String),
    /// The top level of the config file.
    File,
    /// The declared default.
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag => f.write_str("flag"),
            Source::Env => f.write_str("env"),
            Source::Job(name) => write!(f, "job {name}"),
            Source::File => f.write_str("file"),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A parsed command line: the command and every option, layered.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The command.
    pub command: CommandKind,
    /// Flags, environment, job, config file and defaults, layered.
    pub options: Options,
    /// Each layer, highest first (for `tickvault config`).
    pub layers: Vec<(Source, Options)>,
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
}

impl Invocation {
    /// Where the value of option `name` came from (`None`: set nowhere).
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.layers.iter().find(|(_, o)| o.is_set(name)).map(|(s, _)| s)
    }
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// clap's own error (also `--help` and `--version`, which are not failures).
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// A value or the config file was refused.
    #[error(transparent)]
    Usage(#[from] UsageError),
}

fn with_options(cmd: Command, scope: Scope, global: bool) -> Command {
    // The last of a repeated flag wins (a wrapper script's defaults, then the user's "$@").
    cmd.args_override_self(true).args(
        for_scope(scope)
            .filter(|s| global || !s.scope.has(Scope::GLOBAL))
            .flat_map(|s| clap_args(s).into_iter().map(move |a| a.global(global))),
    )
}

const EXAMPLES: &str = "\
Examples:
  A month of trades and quotes from a shell:
    tickvault download -e binance-futures -s BTCUSDT,ETHUSDT -t trades,quotes \\
        --from 2024-03-01 --to 2024-04-01 -o ./lake
  Yesterday, every night from cron (a [jobs.nightly] table in the config file):
    15 7 * * *  tickvault download --job nightly --quiet
  A reproducible CI job: JSON summary on stdout, a progress line every 30 s on stderr:
    tickvault download --job ci --json --progress plain > summary.json
  See what a run would do, without fetching or writing:
    tickvault download --job nightly --dry-run";

const BARS_EXAMPLES: &str = "\
Examples:
  One-minute and hourly bars of two symbols for March:
    tickvault bars -e binance-futures -s BTCUSDT,ETHUSDT --interval 1m,1h \\
        --from 2024-03-01 --to 2024-04-01 -o ./bars
  Daily bars with every empty day filled, keeping only the bars in the cache:
    tickvault bars -e deribit -s BTC-PERPETUAL --interval 1d --fill --no-keep-raw --from 2024-01-01 --to 2025-01-01";

/// The whole command tree.
pub fn command() -> Command {
    let root = Command::new("tickvault")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Bulk downloader for Tardis.dev historical market data into typed, merged Parquet.")
        .after_help(EXAMPLES)
        .max_term_width(100)
        .subcommand_required(true)
        .arg_required_else_help(true);
    with_options(root, Scope::GLOBAL, true)
        .subcommand(
            with_options(
                Command::new("download").about("Download exchange × symbols × data types × date range into Parquet."),
                Scope::DOWNLOAD,
                false,
            )
            .after_help(EXAMPLES),
        )
        .subcommand(
            with_options(
                Command::new("bars").about(
                    "OHLCV bars from trades, exact, cached and shared like chunks: one merged file per interval.",
                ),
                Scope::BARS,
                false,
            )
            .after_help(BARS_EXAMPLES),
        )
        .subcommand(with_options(
            Command::new("exchanges")
                .about("What Tardis has: exchanges (ids, names, data types, dates), or one exchange's symbols.")
                .arg(
                    clap::Arg::new(EXCHANGE_ID)
                        .value_name("ID")
                        .help("An exchange id: list its symbols with their data types and dates"),
                ),
            Scope::EXCHANGES,
            false,
        ))
        .subcommand(with_options(
            Command::new("serve").about(
                "Serve the cache tiers over HTTP: the team's pull-through edge cache (clients point --remote-cache at it).",
            ),
            Scope::SERVE,
            false,
        ))
        .subcommand(cache_command())
        .subcommand(with_options(
            Command::new("config").about(
                "Show the value of every option and where it comes from (flag, env, job, file, default).",
            ),
            ALL,
            false,
        ))
        .subcommand(completions_command())
        .subcommand(man_command())
}

/// `tickvault cache stats|verify|prune`.
fn cache_command() -> Command {
    let cache_cmd =
        |name: &'static str, about: &'static str| with_options(Command::new(name).about(about), Scope::CACHE, false);
    Command::new("cache")
        .about("Inspect and maintain the cache.")
        .subcommand_required(true)
        .arg_required_else_help(true)
        .subcommand(cache_cmd(
            "stats",
            "Entries and bytes per exchange and data type, per tier.",
        ))
        .subcommand(cache_cmd(
            "verify",
            "Re-check every checksum; report and remove bad entries.",
        ))
        .subcommand(with_options(
            cache_cmd(
                "prune",
                "Remove entries, least recently used first, down to --max-size and/or older than --older-than.",
            ),
            Scope::PRUNE,
            false,
        ))
}

/// `tickvault completions SHELL`.
fn completions_command() -> Command {
    Command::new("completions")
        .about("Print a shell completion script, e.g. tickvault completions bash > ~/.local/share/bash-completion/completions/tickvault")
        .arg(
            Arg::new("shell")
                .value_name("SHELL")
                .required(true)
                .value_parser(["bash", "zsh", "fish", "powershell", "elvish"]),
        )
}

/// `tickvault man [COMMAND]`.
fn man_command() -> Command {
    Command::new("man")
        .about("Print the man page (roff) of tickvault or of one command, e.g. tickvault man download | man -l -")
        .arg(Arg::new("command").value_name("COMMAND"))
}

/// Parses a command line (the first item is the program name) and layers the options.
///
/// # Errors
/// [`ParseError::Clap`] for what clap refuses (and `--help`/`--version`), [`ParseError::Usage`]
/// for a bad value or config file.
pub fn parse(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> Result<Invocation, ParseError> {
    let matches = command().try_get_matches_from(args)?;
    let (command, leaf, scope) = leaf(&matches)?;
    let (flags, env) = from_matches(leaf, for_scope(scope).chain(for_scope(Scope::GLOBAL)))?;
    let given = flags.clone().or(env.clone());
    let file = discover(given.config.as_deref())?;
    let job = match (&given.job, &file) {
        (None, _) => None,
        (Some(name), Some(f)) => Some((name.clone(), f.job(name)?)),
        (Some(name), None) => {
            let place =
                super::layers::default_config_path().map_or_else(|| "one".to_string(), |p| p.display().to_string());
            return Err(UsageError(format!(
                "--job {name}: no config file (give --config FILE or TICKVAULT_CONFIG, or create {place})"
            ))
            .into());
        }
    };
    let mut layers = vec![(Source::Flag, flags), (Source::Env, env)];
    if let Some((name, options)) = job {
        layers.push((Source::Job(name), options));
    }
    if let Some(f) = &file {
        layers.push((Source::File, f.top.clone()));
    }
    layers.push((Source::Default, defaults()));
    let mut options = layers
        .iter()
        .rev()
        .fold(Options::default(), |lower, (_, o)| o.clone().or(lower));
    if command == CommandKind::Exchanges {
        // The positional ID, never a download job's `exchange` from the config file.
        options.exchange = leaf.get_one::<String>(EXCHANGE_ID).cloned();
    }
    Ok(Invocation {
        command,
        options,
        layers,
        config_file: file.map(|f| f.path),
    })
}

/// The subcommand's matches, which command it is and the options it takes.
fn leaf(m: &ArgMatches) -> Result<(CommandKind, &ArgMatches, Scope), ParseError> {
    Ok(match m.subcommand() {
        Some(("cache", c)) => match c.subcommand() {
            Some(("verify", l)) => (CommandKind::CacheVerify, l, Scope::CACHE),
            Some(("prune", l)) => (CommandKind::CachePrune, l, Scope::PRUNE.or(Scope::CACHE)),
            Some((_, l)) => (CommandKind::CacheStats, l, Scope::CACHE),
            None => (CommandKind::CacheStats, c, Scope::CACHE),
        },
        Some(("serve", l)) => (CommandKind::Serve, l, Scope::SERVE),
        Some(("bars", l)) => (CommandKind::Bars, l, Scope::BARS),
        Some(("exchanges", l)) => (CommandKind::Exchanges, l, Scope::EXCHANGES),
        Some(("config", l)) => (CommandKind::Config, l, ALL),
        Some(("completions", l)) => {
            let name = l.get_one::<String>("shell").map_or("bash", String::as_str);
            let shell = name
                .parse::<Shell>()
                .map_err(|e| UsageError(format!("completions: {e}")))?;
            (CommandKind::Completions(shell), l, Scope::GLOBAL)
        }
        Some(("man", l)) => (
            CommandKind::Man(l.get_one::<String>("command").cloned()),
            l,
            Scope::GLOBAL,
        ),
        Some((_, l)) => (CommandKind::Download, l, Scope::DOWNLOAD),
        None => (CommandKind::Download, m, Scope::DOWNLOAD),
    })
}

/// Whether a command line asks for `--json` (or `TICKVAULT_JSON` does), read without parsing
/// it, so that even a command line clap refuses gets its error as JSON.
pub fn wants_json(args: &[OsString]) -> bool {
    last_flag(args, "json").unwrap_or_else(|| {
        std::env::var("TICKVAULT_JSON")
            .ok()
            .and_then(|v| <bool as super::spec::OptValue>::parse(&v).ok().flatten())
            .unwrap_or(false)
    })
}

/// `--NAME` or `--no-NAME`, whichever comes last before `--`.
fn last_flag(args: &[OsString], name: &str) -> Option<bool> {
    let (on, off) = (format!("--{name}"), format!("--no-{name}"));
    args.iter()
        .skip(1)
        .map(|a| a.to_string_lossy())
        .take_while(|a| a != "--")
        .filter_map(|a| {
            if a == on {
                Some(true)
            } else if a == off {
                Some(false)
            } else {
                None
            }
        })
        .last()
}

/// The `--color` asked for on a command line (or by `TICKVAULT_COLOR`), read without parsing
/// it, for clap's own messages.
pub fn color_arg(args: &[OsString]) -> Option<String> {
    let mut found = None;
    let mut it = args.iter().skip(1).map(|a| a.to_string_lossy().into_owned());
    while let Some(a) = it.next() {
        if a == "--" {
            break;
        } else if a == "--color" {
            found = it.next();
        } else if let Some(v) = a.strip_prefix("--color=") {
            found = Some(v.to_string());
        } else if a == "--no-color" {
            found = Some("never".into());
        }
    }
    found.or_else(|| std::env::var("TICKVAULT_COLOR").ok())
}

/// The official clients' names for our options, as a user may type them: (theirs, ours).
const OFFICIAL_NAMES: &[(&str, &str)] = &[
    ("from-date", "--from"),
    ("from_date", "--from"),
    ("fromDate", "--from"),
    ("to-date", "--to"),
    ("to_date", "--to"),
    ("toDate", "--to"),
    ("download-dir", "--output"),
    ("download_dir", "--output"),
    ("downloadDir", "--output"),
    ("data_types", "--data-types"),
    ("dataTypes", "--data-types"),
    ("data-type", "--data-types"),
    ("api_key", "--api-key"),
    ("apiKey", "--api-key"),
];

/// A hint for a flag the official tardis-dev clients spell differently, if `arg` is one.
pub fn official_name_hint(arg: &str) -> Option<String> {
    let name = arg.trim_start_matches('-');
    let name = name.split('=').next().unwrap_or(name);
    OFFICIAL_NAMES
        .iter()
        .find(|(theirs, _)| *theirs == name)
        .map(|(theirs, ours)| format!("tip: tardis-dev's '{theirs}' is '{ours}' in tickvault"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_tree_is_valid() {
        command().debug_assert();
    }

    #[test]
    fn flags_override_the_defaults_and_booleans_turn_off() {
        let inv = parse([
            "tickvault",
            "download",
            "-e",
            "x",
            "--partitioned",
            "--no-partitioned",
            "-s",
            "A",
            "-s",
            "B,C",
        ])
        .unwrap();
        assert_eq!(inv.command, CommandKind::Download);
        assert_eq!(inv.options.partitioned, Some(false));
        assert_eq!(inv.options.symbols, Some(vec!["A".into(), "B".into(), "C".into()]));
        assert_eq!(inv.options.concurrency, Some(20), "the default");
        let inv = parse(["tickvault", "cache", "prune", "--max-size", "1GiB", "-q"]).unwrap();
        assert_eq!(inv.command, CommandKind::CachePrune);
        assert_eq!(inv.options.prune_max_size.map(|s| s.0), Some(1 << 30));
        assert_eq!(inv.options.quiet, Some(true));
    }
}
