//! The command line as typed: raw flags, no validation beyond types. [`crate::settings`] turns
//! them (with the config file and defaults) into validated settings.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Bulk downloader for Tardis.dev historical market data into typed, merged Parquet.
#[derive(Debug, Parser)]
#[command(name = "tickvault", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// More log output on stderr (-v info, -vv debug, -vvv trace). RUST_LOG overrides it.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Never draw a progress bar (bars are drawn only when stderr is a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Download exchange × symbols × data types × date range into Parquet.
    Download(Box<DownloadArgs>),
    /// Inspect and maintain the cache.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// Flags of `tickvault download`. Every value may also come from the config file.
#[derive(Debug, Args, Default)]
pub struct DownloadArgs {
    /// Exchange id, e.g. binance-futures, deribit.
    #[arg(short, long, value_name = "ID")]
    pub exchange: Option<String>,

    /// Comma-separated symbols; grouped symbols (PERPETUALS, SPOT, FUTURES, OPTIONS) allowed.
    #[arg(short, long, value_name = "LIST", value_delimiter = ',')]
    pub symbols: Option<Vec<String>>,

    /// Comma-separated data types [default: trades].
    #[arg(short = 't', long, value_name = "LIST", value_delimiter = ',')]
    pub data_types: Option<Vec<String>>,

    /// Start, YYYY-MM-DD (UTC) or RFC 3339.
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,

    /// End, exclusive [default: from + 1 day].
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,

    /// Output: a directory (one merged file per data type) or a FILE.parquet (one data type)
    /// [default: ./datasets].
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Write DIR/exchange=E/data_type=T/date=YYYY-MM-DD/SYMBOL.parquet instead of merged files.
    #[arg(long)]
    pub partitioned: bool,

    #[command(flatten)]
    pub cache: CacheArgs,

    /// Never contact Tardis; fail naming the chunks no cache tier holds.
    #[arg(long, conflicts_with = "refresh")]
    pub offline: bool,

    /// Fetch every chunk from Tardis again and overwrite the cache tiers.
    #[arg(long)]
    pub refresh: bool,

    /// Tardis API key; never printed, logged or written anywhere.
    #[arg(long, env = "TARDIS_API_KEY", hide_env_values = true, value_name = "KEY")]
    pub api_key: Option<String>,

    /// Base URL of the datasets API [default: https://datasets.tardis.dev/v1].
    #[arg(long, env = "TICKVAULT_DATASETS_URL", value_name = "URL")]
    pub datasets_url: Option<String>,

    /// Base URL of the metadata API [default: https://api.tardis.dev/v1].
    #[arg(long, env = "TICKVAULT_API_URL", value_name = "URL")]
    pub api_url: Option<String>,

    /// Downloads in flight [default: 20].
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,

    /// Requests per second to Tardis (token bucket) [default: unlimited].
    #[arg(long, value_name = "N")]
    pub rate_limit: Option<u32>,

    /// Retries of a failed chunk download [default: 10].
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,

    /// Print a machine-readable summary on stdout (nothing else goes to stdout).
    #[arg(long)]
    pub json: bool,

    /// TOML config file (see config/default.toml).
    #[arg(long, env = "TICKVAULT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Where the cache tiers are.
#[derive(Debug, Args, Default, Clone)]
pub struct CacheArgs {
    /// Local cache directory [default: the platform cache dir + /tickvault].
    #[arg(long, env = "TICKVAULT_CACHE_DIR", value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Shared remote cache: http(s)://, s3://, gs://, az:// or file:// (bearer token from
    /// TICKVAULT_REMOTE_CACHE_TOKEN for http).
    #[arg(long, env = "TICKVAULT_REMOTE_CACHE", value_name = "URL")]
    pub remote_cache: Option<String>,

    /// read-write or read-only (for untrusted jobs) [default: read-write].
    #[arg(long, value_name = "MODE")]
    pub remote_cache_mode: Option<String>,

    /// Size of the in-memory cache, e.g. 512MiB [default: 128MiB].
    #[arg(long, value_name = "SIZE")]
    pub memory_cache: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries and bytes per exchange and data type, per tier.
    Stats(CacheCmdArgs),
    /// Re-check every checksum; report and remove bad entries.
    Verify(CacheCmdArgs),
    /// Remove entries, least recently used first, down to --max-size and/or older than --older-than.
    Prune(PruneArgs),
}

#[derive(Debug, Args, Default, Clone)]
pub struct CacheCmdArgs {
    #[command(flatten)]
    pub cache: CacheArgs,

    /// Machine-readable output on stdout.
    #[arg(long)]
    pub json: bool,

    /// TOML config file (cache keys are read from it).
    #[arg(long, env = "TICKVAULT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args, Default, Clone)]
pub struct PruneArgs {
    #[command(flatten)]
    pub common: CacheCmdArgs,

    /// Keep the local cache at most this big, e.g. 50GiB.
    #[arg(long, value_name = "SIZE")]
    pub max_size: Option<String>,

    /// Remove entries not used for this long, e.g. 30d, 12h.
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
}
