//! Every option of tickvault, declared once. The long flag is the name with dashes, the
//! environment variable `TICKVAULT_` + the upper-case name, the config key the name, unless a
//! declaration says otherwise; defaults are written in the option's own grammar.

use std::path::PathBuf;
use std::time::Duration;

use super::spec::{Count, OptValue, Scope, Size, Spec, options};
use crate::tardis::Secret;

/// `--help` sections.
pub(crate) mod heading {
    pub const FETCH: &str = "What to fetch";
    pub const WRITE: &str = "Where to write";
    pub const CACHE: &str = "Cache";
    pub const NETWORK: &str = "Tardis and network";
    pub const TOOL: &str = "Output of the tool";
    pub const PRUNE: &str = "What to prune";
    pub const LIST: &str = "What to list";
    pub const LIMITS: &str = "Limits on hostile input";
    pub const SERVE: &str = "Edge cache server";
    pub const BARS: &str = "Bars";
}

use heading::{BARS, CACHE, FETCH, LIMITS, LIST, NETWORK, PRUNE, SERVE, TOOL, WRITE};

/// `download` and `bars` (every option of `download` that `bars` takes too).
const DL: Scope = Scope::DOWNLOAD_OR_BARS;
const BOTH: Scope = Scope::DOWNLOAD_AND_CACHE.or(Scope::BARS);
/// Options of `download` that `tickvault exchanges` takes too (it reads the metadata API
/// through the same cache directory).
const DL_EXCH: Scope = DL.or(Scope::EXCHANGES);
const ALL_THREE: Scope = BOTH.or(Scope::EXCHANGES);
/// The cache tiers: `download`, the `cache` commands and `serve`.
const TIERS: Scope = BOTH.or(Scope::SERVE);
/// Fetching from Tardis: `download` and `serve`.
const TARDIS: Scope = DL.or(Scope::SERVE);
/// Tardis's APIs: `download`, `exchanges` and `serve`.
const APIS: Scope = DL_EXCH.or(Scope::SERVE);
/// The cache directory and connecting: every command but the listings of the tool.
const ALL_FOUR: Scope = ALL_THREE.or(Scope::SERVE);

options! {
    /// Exchange id, e.g. binance-futures, deribit.
    exchange: String { short: Some('e'), value_name: "ID", heading: FETCH }
    /// Comma-separated symbols; grouped symbols (PERPETUALS, SPOT, FUTURES, OPTIONS) allowed.
    symbols: Vec<String> { short: Some('s'), value_name: "LIST", heading: FETCH }
    /// Comma-separated data types: trades, incremental_book_L2, book_snapshot_25,
    /// book_snapshot_5, quotes, book_ticker, derivative_ticker, liquidations, options_chain.
    data_types: Vec<String> { short: Some('t'), value_name: "LIST", heading: FETCH, scope: Scope::DOWNLOAD, default: Some("trades") }
    /// Start (UTC): YYYY-MM-DD, RFC 3339, or relative: today, yesterday, today-7d, -7d (= today-7d),
    /// now-6h.
    from: String { value_name: "DATE", heading: FETCH }
    /// End, exclusive, in the same grammar as --from [default: from + 1 day].
    to: String { value_name: "DATE", heading: FETCH }
    /// Run the [jobs.NAME] table of the config file; flags and environment variables override it.
    job: String { value_name: "NAME", heading: FETCH, scope: Scope::GLOBAL, in_file: false }
    /// Print the plan (each chunk, the tier expected to serve it, whether its day is exported,
    /// the outputs) and exit; no dataset request, nothing written.
    dry_run: bool { heading: FETCH, scope: Scope::DOWNLOAD, default: Some("false") }
    /// The instant relative dates count from, RFC 3339 [default: the clock]; replays a nightly
    /// job as of another day.
    now: String { value_name: "TIME", heading: FETCH, in_file: false }
    /// Check exchange, symbols, data types and dates against Tardis's metadata before fetching
    /// (--no-validate skips it, e.g. while the metadata API is down).
    validate: bool { heading: FETCH, default: Some("true") }
    /// Use days Tardis has not finished exporting, marked incomplete in the outputs (else such
    /// days are withheld and the run exits 3).
    allow_incomplete: bool { heading: FETCH, default: Some("false") }
    /// Wait up to this long for unexported days to be exported (polling the metadata), then run.
    wait: Duration { value_name: "DURATION", heading: FETCH }

    /// A directory (one merged file per data type) or a FILE.parquet (one data type).
    output: PathBuf { short: Some('o'), value_name: "PATH", heading: WRITE, default: Some("./datasets") }
    /// Write DIR/{data_type}/exchange=E/date=YYYY-MM-DD/SYMBOL.parquet (one table per data type)
    /// instead of merged files.
    partitioned: bool { heading: WRITE, default: Some("false") }
    /// Row order of a merged file: symbol (symbols as given, days in order; copied from the cache
    /// without re-encoding) or time (all symbols interleaved by local_timestamp; re-encoded).
    order: String { value_name: "symbol|time", heading: WRITE, scope: Scope::DOWNLOAD, default: Some("symbol") }
    /// Replace an output that holds the data of another request (else exit 2).
    overwrite: bool { heading: WRITE, default: Some("false") }

    /// Local cache directory [default: the platform cache dir + /tickvault].
    cache_dir: PathBuf { value_name: "DIR", heading: CACHE, scope: ALL_FOUR }
    /// Shared remote cache: http(s)://, s3://, gs://, az:// or file://.
    remote_cache: String { value_name: "URL", heading: CACHE, scope: TIERS }
    /// Bearer token for an http(s) remote cache; prefer the environment variable (flags show in `ps`).
    remote_cache_token: Secret { value_name: "TOKEN", heading: CACHE, scope: TIERS, secret: true }
    /// Team secret: chunk files written to the remote carry a keyed MAC (BLAKE3) over their
    /// bytes and key, and remote objects without a valid one are refetched. Without it the
    /// remote is trusted as a whole. Prefer the environment variable.
    remote_cache_secret: Secret { value_name: "SECRET", heading: CACHE, scope: TIERS, secret: true }
    /// read-write, or read-only for untrusted jobs.
    remote_cache_mode: String { value_name: "MODE", heading: CACHE, scope: TIERS, default: Some("read-write") }
    /// Limit of one remote cache request; then the next tier is used.
    remote_cache_timeout: Duration { value_name: "DURATION", heading: CACHE, scope: TIERS, default: Some("60s") }
    /// Size of the in-memory cache.
    memory_cache: Size { value_name: "SIZE", heading: CACHE, scope: TIERS, default: Some("128MiB") }
    /// Never contact Tardis: use the cache tiers and the cached metadata; fail naming what they
    /// lack.
    offline: bool { heading: CACHE, scope: DL_EXCH, default: Some("false") }
    /// Fetch every chunk from Tardis again and overwrite the cache tiers.
    refresh: bool { heading: CACHE, default: Some("false") }

    /// Tardis API key; never printed, logged or written anywhere.
    api_key: Secret { value_name: "KEY", heading: NETWORK, scope: TARDIS, env: Some("TARDIS_API_KEY"), secret: true }
    /// Base URL of the datasets API.
    datasets_url: String { value_name: "URL", heading: NETWORK, scope: TARDIS, default: Some("https://datasets.tardis.dev/v1") }
    /// Base URL of the metadata API.
    api_url: String { value_name: "URL", heading: NETWORK, scope: APIS, default: Some("https://api.tardis.dev/v1") }
    /// Downloads in flight (20, as the official clients).
    concurrency: usize { value_name: "N", heading: NETWORK, scope: TARDIS, default: Some("20") }
    /// Requests per second to Tardis (token bucket) [default: unlimited].
    rate_limit: u32 { value_name: "N", heading: NETWORK, scope: TARDIS }
    /// Retries of a failed chunk download (429, 5xx, connection errors, damaged bodies); 29 as
    /// the official client (30 attempts).
    max_retries: u32 { value_name: "N", heading: NETWORK, scope: APIS, default: Some("29") }
    /// Delay before the first retry; doubles per retry (twice after a 500), plus up to 0.5 s of
    /// jitter; Retry-After is honoured.
    retry_initial_backoff: Duration { value_name: "DURATION", heading: NETWORK, scope: APIS, default: Some("2s") }
    /// Cap on one retry delay, jitter included.
    retry_max_backoff: Duration { value_name: "DURATION", heading: NETWORK, scope: APIS, default: Some("120s") }
    /// Limit on connecting to Tardis or the remote cache.
    connect_timeout: Duration { value_name: "DURATION", heading: NETWORK, scope: ALL_FOUR, default: Some("10s") }
    /// Silence while reading a body before the attempt fails.
    read_timeout: Duration { value_name: "DURATION", heading: NETWORK, scope: APIS, default: Some("120s") }
    /// Slowest transfer accepted: a body (from Tardis or the remote cache) that brings fewer
    /// bytes per second than this over a whole --min-speed-window fails its attempt (retried).
    min_transfer_speed: Size { value_name: "SIZE", heading: LIMITS, scope: TIERS, default: Some("4KiB") }
    /// The window over which --min-transfer-speed is measured.
    min_speed_window: Duration { value_name: "DURATION", heading: LIMITS, scope: TIERS, default: Some("30s") }
    /// Longest CSV line accepted; a longer one fails the chunk naming the line (bounds memory).
    max_line_size: Size { value_name: "SIZE", heading: LIMITS, scope: TARDIS, default: Some("1MiB") }
    /// Most bytes one day-file may inflate to; a larger one fails the chunk (a gzip bomb). The
    /// largest real days (options_chain, 9.5 GB of gzip) inflate to tens of GB.
    max_inflated_size: Size { value_name: "SIZE", heading: LIMITS, scope: TARDIS, default: Some("256GiB") }
    /// This worker's share of the chunks: K/N (1-based, 1/3 to 3/3), or auto (auto/N) from the
    /// scheduler's environment: JOB_COMPLETION_INDEX (Kubernetes Indexed Job), SLURM_ARRAY_TASK_*,
    /// AWS_BATCH_JOB_ARRAY_INDEX, CI_NODE_INDEX/CI_NODE_TOTAL (GitLab), CIRCLE_NODE_* (CircleCI).
    shard: String { value_name: "K/N", heading: FETCH, scope: Scope::DOWNLOAD, in_file: false }
    /// Stop starting chunks once this many bytes were fetched from Tardis in this run, and exit 3
    /// (retry later); the next run resumes.
    max_transfer: Size { value_name: "SIZE", heading: FETCH, scope: Scope::DOWNLOAD }
    /// With --dry-run: price the plan (bytes and requests to Tardis, time for --workers at
    /// --throughput) and check it against --plan-limit-daily and --plan-limit-requests.
    estimate: bool { heading: FETCH, scope: Scope::DOWNLOAD, default: Some("false") }
    /// Workers (shards) the estimate splits the plan between.
    workers: usize { value_name: "N", heading: FETCH, scope: Scope::DOWNLOAD, default: Some("1") }
    /// Bytes from Tardis per second one worker brings in (gzip; measured on 2 cores, README
    /// "Scale out").
    throughput: Size { value_name: "SIZE", heading: FETCH, scope: Scope::DOWNLOAD, default: Some("17MB") }
    /// The key's daily transfer limit (Tardis's plans: 0.5TB to 50TB a day), for the estimate.
    plan_limit_daily: Size { value_name: "SIZE", heading: FETCH, scope: Scope::DOWNLOAD }
    /// The key's daily request limit, for the estimate.
    plan_limit_requests: usize { value_name: "N", heading: FETCH, scope: Scope::DOWNLOAD }
    /// Accept a plan of more chunks than the limit (100,000) without asking.
    yes: bool { heading: FETCH, default: Some("false") }

    /// Print a machine-readable summary on stdout (nothing else goes to stdout), failures included.
    json: bool { heading: TOOL, scope: ALL_THREE, default: Some("false") }
    /// More log output on stderr: -v one line per chunk and output and every retry, -vv debug,
    /// -vvv trace; RUST_LOG overrides it.
    verbose: Count { short: Some('v'), heading: TOOL, scope: Scope::GLOBAL, default: Some("0") }
    /// Only errors on stderr.
    quiet: bool { short: Some('q'), heading: TOOL, scope: Scope::GLOBAL, default: Some("false") }
    /// Logs on stderr as text, or json (one object per line: time, level, event, chunk, tier, ...).
    log_format: String { value_name: "FORMAT", heading: TOOL, scope: Scope::GLOBAL, default: Some("text") }
    /// Colour in logs: auto (only when stderr is a terminal and NO_COLOR is unset), always, never.
    color: String { value_name: "WHEN", heading: TOOL, scope: Scope::GLOBAL, default: Some("auto"), no: Some("never") }
    /// auto (a bar when stderr is a terminal), plain (a line every --progress-interval, for CI
    /// logs), never.
    progress: String { value_name: "MODE", heading: TOOL, scope: Scope::GLOBAL, default: Some("auto"), no: Some("never") }
    /// How often --progress plain prints a line.
    progress_interval: Duration { value_name: "DURATION", heading: TOOL, scope: Scope::GLOBAL, default: Some("10s") }
    /// TOML config file [default: the platform config dir + /tickvault/config.toml, if it exists].
    config: PathBuf { value_name: "FILE", heading: TOOL, scope: Scope::GLOBAL, in_file: false }

    /// Address to listen on, e.g. 0.0.0.0:8080 for the whole network.
    listen: String { value_name: "ADDR", heading: SERVE, scope: Scope::SERVE, default: Some("127.0.0.1:8080") }
    /// File of access tokens, one per line: `read TOKEN` or `write TOKEN` (# comments).
    tokens_file: PathBuf { value_name: "FILE", heading: SERVE, scope: Scope::SERVE }
    /// Comma-separated tokens that may GET chunks; without any read token, GETs are open.
    /// Prefer the environment variable or --tokens-file (flags show in `ps`).
    read_tokens: Secret { value_name: "TOKENS", heading: SERVE, scope: Scope::SERVE, secret: true }
    /// Comma-separated tokens that may GET and PUT chunks (clients that fetched with their own key).
    write_tokens: Secret { value_name: "TOKENS", heading: SERVE, scope: Scope::SERVE, secret: true }
    /// Connections served at once; further ones wait to be accepted.
    max_connections: usize { value_name: "N", heading: SERVE, scope: Scope::SERVE, default: Some("1024") }
    /// Limit on producing a response, a fetch from Tardis included; then 504.
    request_timeout: Duration { value_name: "DURATION", heading: SERVE, scope: Scope::SERVE, default: Some("10m") }
    /// Largest chunk file a client may PUT.
    max_upload: Size { value_name: "SIZE", heading: SERVE, scope: Scope::SERVE, default: Some("4GiB") }
    /// After SIGTERM or Ctrl-C, time given to responses in flight before the server exits.
    shutdown_timeout: Duration { value_name: "DURATION", heading: SERVE, scope: Scope::SERVE, default: Some("30s") }
    /// How long proxied exchange metadata (/v1/exchanges...) is kept.
    metadata_ttl: Duration { value_name: "DURATION", heading: SERVE, scope: Scope::SERVE, default: Some("10m") }

    /// Comma-separated bar lengths, each dividing a day: 1s, 1m, 5m, 15m, 1h, 4h, 1d (the UTC day).
    interval: Vec<String> { value_name: "LIST", heading: BARS, scope: Scope::BARS }
    /// The timestamp that puts a trade in its bar: timestamp (the exchange's) or local_timestamp
    /// (arrival at Tardis).
    by: String { value_name: "COLUMN", heading: BARS, scope: Scope::BARS, default: Some("timestamp") }
    /// Add the empty intervals after a symbol's first trade: open, high, low and close the
    /// previous close, zero volumes and trades, no vwap.
    fill: bool { heading: BARS, scope: Scope::BARS, default: Some("false") }
    /// Keep the raw trades chunks in the cache tiers (--no-keep-raw computes the bars and
    /// stores only them).
    keep_raw: bool { heading: BARS, scope: Scope::BARS, default: Some("true") }

    /// Keep the local cache at most this big, e.g. 50GiB.
    prune_max_size: Size { flag: Some("max-size"), value_name: "SIZE", heading: PRUNE, scope: Scope::PRUNE }
    /// Remove entries not used for this long, e.g. 30d, 12h.
    prune_older_than: Duration { flag: Some("older-than"), value_name: "AGE", heading: PRUNE, scope: Scope::PRUNE }

    /// Only the symbols matching this pattern (`*` and `?` wildcards; else a substring), any case.
    exchanges_symbol: String { flag: Some("symbol"), value_name: "PATTERN", heading: LIST, scope: Scope::EXCHANGES }
}

/// Every option of every command (`tickvault config` shows them all).
pub(crate) const ALL: Scope = Scope::ANY;

/// The options a command takes.
pub(crate) fn for_scope(scope: Scope) -> impl Iterator<Item = &'static Spec> {
    SPECS.iter().filter(move |s| s.scope.has(scope))
}

/// The declaration of `name`.
pub(crate) fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_parses_and_names_are_unique() {
        let mut o = Options::default();
        for s in SPECS {
            if let Some(d) = s.default {
                o.set_str(s.name, d).unwrap_or_else(|e| panic!("{}: {e}", s.name));
            }
            assert_eq!(SPECS.iter().filter(|t| t.long() == s.long()).count(), 1, "{}", s.name);
            assert_eq!(
                SPECS.iter().filter(|t| t.env_var() == s.env_var()).count(),
                1,
                "{}",
                s.name
            );
            assert!(!s.help_text().is_empty(), "{} has help", s.name);
        }
    }

    #[test]
    fn the_help_lists_every_data_type() {
        let help = spec("data_types").unwrap().help_text();
        for t in crate::model::DataType::ALL {
            assert!(help.contains(&format!(" {t}")), "{t} missing from: {help}");
        }
    }

    #[test]
    fn defaults_agree_with_the_retry_policy() {
        let p = crate::fetch::RetryPolicy::default();
        let d = |n: &str| spec(n).and_then(|s| s.default).unwrap();
        let size = |n: &str| super::super::parse::size(d(n)).unwrap();
        let limits = crate::decode::DecodeLimits::default();
        assert_eq!(size("max_line_size"), limits.max_line as u64);
        assert_eq!(size("max_inflated_size"), limits.max_inflated);
        assert_eq!(size("throughput"), crate::run::estimate::MEASURED_THROUGHPUT);
        let speed = crate::model::MinSpeed::default();
        assert_eq!(size("min_transfer_speed"), speed.bytes_per_sec);
        assert_eq!(
            super::super::parse::duration(d("min_speed_window")).unwrap(),
            speed.window
        );
        assert_eq!(d("max_retries"), p.max_retries.to_string());
        assert_eq!(
            super::super::parse::duration(d("retry_initial_backoff")).unwrap(),
            p.initial_backoff
        );
        assert_eq!(
            super::super::parse::duration(d("retry_max_backoff")).unwrap(),
            p.max_backoff
        );
    }
}
