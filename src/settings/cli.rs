//! The command line: the command tree, built from the option declarations, and the layering of
//! flags and environment variables over the config file over the defaults.

use std::ffi::OsString;

use clap::{ArgMatches, Command};

use super::UsageError;
use super::layers::{clap_args, defaults, from_file, from_matches};
use super::options::{Options, for_scope};
use super::spec::Scope;

/// Which command was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// `tickvault download`.
    Download,
    /// `tickvault cache stats`.
    CacheStats,
    /// `tickvault cache verify`.
    CacheVerify,
    /// `tickvault cache prune`.
    CachePrune,
    /// `tickvault serve`.
    Serve,
}

/// A parsed command line: the command and every option, layered.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The command.
    pub command: CommandKind,
    /// Flags and environment over the config file over the defaults.
    pub options: Options,
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
    cmd.args(
        for_scope(scope)
            .filter(|s| global || !s.scope.has(Scope::GLOBAL))
            .flat_map(|s| clap_args(s).into_iter().map(move |a| a.global(global))),
    )
}

/// The whole command tree.
pub fn command() -> Command {
    let cache_cmd =
        |name: &'static str, about: &'static str| with_options(Command::new(name).about(about), Scope::CACHE, false);
    let root = Command::new("tickvault")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Bulk downloader for Tardis.dev historical market data into typed, merged Parquet.")
        .max_term_width(100)
        .subcommand_required(true)
        .arg_required_else_help(true);
    with_options(root, Scope::GLOBAL, true)
        .subcommand(with_options(
            Command::new("download").about("Download exchange × symbols × data types × date range into Parquet."),
            Scope::DOWNLOAD,
            false,
        ))
        .subcommand(with_options(
            Command::new("serve").about(
                "Serve the cache tiers over HTTP: the team's pull-through edge cache (clients point --remote-cache at it).",
            ),
            Scope::SERVE,
            false,
        ))
        .subcommand(
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
                )),
        )
}

/// Parses a command line (the first item is the program name) and layers the options.
///
/// # Errors
/// [`ParseError::Clap`] for what clap refuses (and `--help`/`--version`), [`ParseError::Usage`]
/// for a bad value or config file.
pub fn parse(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> Result<Invocation, ParseError> {
    let matches = command().try_get_matches_from(args)?;
    let (command, leaf, scope) = leaf(&matches);
    let given = from_matches(leaf, for_scope(scope).chain(for_scope(Scope::GLOBAL)))?;
    let file = match &given.config {
        Some(path) => from_file(path)?,
        None => Options::default(),
    };
    Ok(Invocation {
        command,
        options: given.or(file).or(defaults()),
    })
}

/// The subcommand's matches, which command it is and the options it takes.
fn leaf(m: &ArgMatches) -> (CommandKind, &ArgMatches, Scope) {
    match m.subcommand() {
        Some(("cache", c)) => match c.subcommand() {
            Some(("verify", l)) => (CommandKind::CacheVerify, l, Scope::CACHE),
            Some(("prune", l)) => (CommandKind::CachePrune, l, Scope::PRUNE.or(Scope::CACHE)),
            Some((_, l)) => (CommandKind::CacheStats, l, Scope::CACHE),
            None => (CommandKind::CacheStats, c, Scope::CACHE),
        },
        Some(("serve", l)) => (CommandKind::Serve, l, Scope::SERVE),
        Some((_, l)) => (CommandKind::Download, l, Scope::DOWNLOAD),
        None => (CommandKind::Download, m, Scope::DOWNLOAD),
    }
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
