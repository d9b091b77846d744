//! Validated, immutable settings: command-line flags (and their environment variables) over
//! the config file over defaults. Everything a user can get wrong is checked here, before any
//! network traffic or file write, and reported as a [`UsageError`] (exit code 2).

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::cache::{RemoteMode, RemoteOptions, RemoteStore};
use crate::cli::{CacheArgs, DownloadArgs};
use crate::fetch::RetryPolicy;
use crate::model::{DataType, TimeRange, normalize_symbol, parse_instant, valid_exchange};
use crate::tardis::Secret;

/// Default datasets API base.
pub const DEFAULT_DATASETS_URL: &str = "https://datasets.tardis.dev/v1";
/// Default metadata API base.
pub const DEFAULT_API_URL: &str = "https://api.tardis.dev/v1";
/// Downloads in flight, as in both official clients.
pub const DEFAULT_CONCURRENCY: usize = 20;
/// Default size of the memory tier.
pub const DEFAULT_MEMORY_CACHE_BYTES: u64 = 128 * 1024 * 1024;
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A read silence this long counts as a failed attempt (tardis-node uses 120 s per socket).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);
/// Limit of one remote-cache request before falling back to the next tier.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(60);
/// Environment variable with the remote cache's bearer token (never a flag: flags show in `ps`).
pub const REMOTE_TOKEN_ENV: &str = "TICKVAULT_REMOTE_CACHE_TOKEN";

/// Bad usage or input: reported in one line, exit code 2, nothing fetched or written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
}

/// The config file (TOML). Every key is optional; see `config/default.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub exchange: Option<String>,
    pub symbols: Option<Vec<String>>,
    pub data_types: Option<Vec<String>>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub output: Option<PathBuf>,
    pub partitioned: Option<bool>,
    pub cache_dir: Option<PathBuf>,
    pub remote_cache: Option<String>,
    pub remote_cache_mode: Option<String>,
    pub remote_cache_timeout: Option<String>,
    pub memory_cache: Option<String>,
    pub api_key: Option<String>,
    pub datasets_url: Option<String>,
    pub api_url: Option<String>,
    pub concurrency: Option<usize>,
    pub rate_limit: Option<u32>,
    pub max_retries: Option<u32>,
    pub retry_initial_backoff: Option<String>,
    pub retry_max_backoff: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
}

impl ConfigFile {
    /// Reads a config file.
    ///
    /// # Errors
    /// The file cannot be read or is not valid (unknown keys are errors, to catch typos).
    pub fn load(path: &Path) -> Result<Self, UsageError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read config file {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| {
            let msg = e.message().to_string();
            usage(format!("invalid config file {}: {msg}", path.display()))
        })
    }

    fn load_opt(path: Option<&Path>) -> Result<Self, UsageError> {
        path.map_or_else(|| Ok(Self::default()), Self::load)
    }
}

/// Where the output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSpec {
    /// One merged file per data type in this directory.
    Dir(PathBuf),
    /// One merged file (one data type).
    File(PathBuf),
    /// The Hive layout under this directory.
    Partitioned(PathBuf),
}

/// Where the cache tiers are.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    pub cache_dir: PathBuf,
    pub remote: Option<RemoteOptions>,
    pub memory_cache: u64,
}

/// Everything `tickvault download` needs, validated.
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    pub exchange: String,
    pub symbols: Vec<String>,
    pub data_types: Vec<DataType>,
    pub range: TimeRange,
    pub output: OutputSpec,
    pub cache: CacheSettings,
    pub offline: bool,
    pub refresh: bool,
    pub api_key: Option<Secret>,
    pub datasets_url: Url,
    pub api_url: Url,
    pub concurrency: usize,
    pub rate_limit: Option<NonZeroU32>,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// Chunks decoded at once (CPU bound).
    pub decoders: usize,
    pub json: bool,
}

impl DownloadSettings {
    /// Validates flags and the config file into settings.
    ///
    /// # Errors
    /// [`UsageError`] naming the flag or key at fault.
    pub fn resolve(args: &DownloadArgs) -> Result<Self, UsageError> {
        let file = ConfigFile::load_opt(args.config.as_deref())?;

        let exchange = args
            .exchange
            .clone()
            .or(file.exchange.clone())
            .ok_or_else(|| usage("--exchange is required (e.g. --exchange binance-futures)"))?;
        let exchange = exchange.trim().to_string();
        if !valid_exchange(&exchange) {
            return Err(usage(format!(
                "invalid --exchange '{exchange}': expected a Tardis exchange id such as binance-futures or deribit"
            )));
        }

        let raw_symbols = args
            .symbols
            .clone()
            .or(file.symbols.clone())
            .ok_or_else(|| usage("--symbols is required (e.g. --symbols BTCUSDT,ETHUSDT)"))?;
        let mut symbols: Vec<String> = Vec::new();
        for s in raw_symbols
            .iter()
            .map(|s| normalize_symbol(s))
            .filter(|s| !s.is_empty())
        {
            if !symbols.contains(&s) {
                symbols.push(s);
            }
        }
        if symbols.is_empty() {
            return Err(usage("--symbols is empty: give at least one symbol"));
        }

        let raw_types = args
            .data_types
            .clone()
            .or(file.data_types.clone())
            .unwrap_or_else(|| vec!["trades".into()]);
        let mut data_types = Vec::new();
        for t in raw_types.iter().filter(|t| !t.trim().is_empty()) {
            let t: DataType = t
                .parse()
                .map_err(|e: crate::model::UnknownDataType| usage(format!("--data-types: {e}")))?;
            if !data_types.contains(&t) {
                data_types.push(t);
            }
        }
        if data_types.is_empty() {
            return Err(usage("--data-types is empty: give at least one data type"));
        }

        let from = args
            .from
            .clone()
            .or(file.from.clone())
            .ok_or_else(|| usage("--from is required (YYYY-MM-DD or RFC 3339)"))?;
        let from = parse_instant("--from", &from).map_err(|e| usage(e.to_string()))?;
        let to = args
            .to
            .clone()
            .or(file.to.clone())
            .map(|t| parse_instant("--to", &t))
            .transpose()
            .map_err(|e| usage(e.to_string()))?;
        let range = TimeRange::new(from, to).map_err(|e| usage(e.to_string()))?;

        let partitioned = args.partitioned || file.partitioned.unwrap_or(false);
        let out_path = args
            .output
            .clone()
            .or(file.output.clone())
            .unwrap_or_else(|| PathBuf::from("./datasets"));
        let is_file = out_path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
        let output = match (is_file, partitioned) {
            (true, true) => {
                return Err(usage(
                    "--partitioned writes a directory: give --output a directory, not a .parquet file",
                ));
            }
            (true, false) if data_types.len() > 1 => {
                return Err(usage(format!(
                    "--output {} is one file but {} data types were asked for: give a directory instead",
                    out_path.display(),
                    data_types.len()
                )));
            }
            (true, false) => OutputSpec::File(out_path),
            (false, true) => OutputSpec::Partitioned(out_path),
            (false, false) => OutputSpec::Dir(out_path),
        };
        check_output(&output)?;

        let offline = args.offline;
        let refresh = args.refresh;
        if offline && refresh {
            return Err(usage("--offline and --refresh contradict each other"));
        }

        let cache = CacheSettings::resolve(&args.cache, &file)?;
        check_writable_dir("--cache-dir", &cache.cache_dir)?;

        let api_key = args.api_key.clone().or(file.api_key.clone()).and_then(Secret::new);
        let datasets_url = http_url(
            "--datasets-url",
            args.datasets_url
                .as_deref()
                .or(file.datasets_url.as_deref())
                .unwrap_or(DEFAULT_DATASETS_URL),
        )?;
        let api_url = http_url(
            "--api-url",
            args.api_url
                .as_deref()
                .or(file.api_url.as_deref())
                .unwrap_or(DEFAULT_API_URL),
        )?;

        let concurrency = args.concurrency.or(file.concurrency).unwrap_or(DEFAULT_CONCURRENCY);
        if !(1..=1000).contains(&concurrency) {
            return Err(usage(format!(
                "invalid --concurrency {concurrency}: expected 1 to 1000"
            )));
        }
        let rate_limit = match args.rate_limit.or(file.rate_limit) {
            None => None,
            Some(n) => Some(
                NonZeroU32::new(n)
                    .ok_or_else(|| usage("invalid --rate-limit 0: expected at least 1 request per second"))?,
            ),
        };
        let defaults = RetryPolicy::default();
        let retry = RetryPolicy {
            max_retries: args.max_retries.or(file.max_retries).unwrap_or(defaults.max_retries),
            initial_backoff: duration("retry_initial_backoff", file.retry_initial_backoff.as_deref())?
                .unwrap_or(defaults.initial_backoff),
            max_backoff: duration("retry_max_backoff", file.retry_max_backoff.as_deref())?
                .unwrap_or(defaults.max_backoff),
        };
        if retry.max_retries > 100 {
            return Err(usage(format!(
                "invalid --max-retries {}: expected at most 100",
                retry.max_retries
            )));
        }
        let connect_timeout =
            duration("connect_timeout", file.connect_timeout.as_deref())?.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        let read_timeout = duration("read_timeout", file.read_timeout.as_deref())?.unwrap_or(DEFAULT_READ_TIMEOUT);
        let decoders = std::thread::available_parallelism().map_or(2, |n| n.get());

        Ok(Self {
            exchange,
            symbols,
            data_types,
            range,
            output,
            cache,
            offline,
            refresh,
            api_key,
            datasets_url,
            api_url,
            concurrency,
            rate_limit,
            retry,
            connect_timeout,
            read_timeout,
            decoders,
            json: args.json,
        })
    }
}

impl CacheSettings {
    /// Resolves the cache flags (and their config keys).
    ///
    /// # Errors
    /// [`UsageError`] for a bad size, mode, URL or a missing cache directory.
    pub fn resolve(args: &CacheArgs, file: &ConfigFile) -> Result<Self, UsageError> {
        let cache_dir = match args.cache_dir.clone().or(file.cache_dir.clone()) {
            Some(d) => expand_home(&d),
            None => dirs::cache_dir()
                .map(|d| d.join("tickvault"))
                .ok_or_else(|| usage("no platform cache directory: set --cache-dir or TICKVAULT_CACHE_DIR"))?,
        };
        let memory_cache = match args.memory_cache.as_deref().or(file.memory_cache.as_deref()) {
            Some(s) => parse_size(s).map_err(|e| usage(format!("invalid --memory-cache: {e}")))?,
            None => DEFAULT_MEMORY_CACHE_BYTES,
        };
        let mode: RemoteMode = args
            .remote_cache_mode
            .as_deref()
            .or(file.remote_cache_mode.as_deref())
            .map(str::parse)
            .transpose()
            .map_err(usage)?
            .unwrap_or_default();
        let timeout =
            duration("remote_cache_timeout", file.remote_cache_timeout.as_deref())?.unwrap_or(DEFAULT_REMOTE_TIMEOUT);
        let remote = match args
            .remote_cache
            .clone()
            .or(file.remote_cache.clone())
            .filter(|u| !u.trim().is_empty())
        {
            None => None,
            Some(raw) => {
                let url = parse_remote_url(raw.trim())?;
                let opts = RemoteOptions {
                    url,
                    token: std::env::var(REMOTE_TOKEN_ENV).ok().and_then(Secret::new),
                    mode,
                    timeout,
                    connect_timeout: DEFAULT_CONNECT_TIMEOUT.min(timeout),
                };
                // Builds the client (no traffic) so a bad URL fails now, with exit code 2.
                RemoteStore::open(&opts).map_err(|e| usage(e.to_string()))?;
                Some(opts)
            }
        };
        Ok(Self {
            cache_dir,
            remote,
            memory_cache,
        })
    }

    /// Resolves the cache settings of a `cache` subcommand.
    ///
    /// # Errors
    /// As [`Self::resolve`], plus an unreadable config file.
    pub fn for_command(args: &crate::cli::CacheCmdArgs) -> Result<Self, UsageError> {
        let file = ConfigFile::load_opt(args.config.as_deref())?;
        Self::resolve(&args.cache, &file)
    }
}

fn parse_remote_url(raw: &str) -> Result<Url, UsageError> {
    let bad = |why: String| usage(format!("invalid --remote-cache '{}': {why}", redact_raw(raw)));
    if let Some(path) = raw.strip_prefix("file://") {
        return Url::from_directory_path(path).map_err(|()| bad("file:// needs an absolute path".into()));
    }
    let url = Url::parse(raw).map_err(|e| bad(e.to_string()))?;
    if !matches!(
        url.scheme(),
        "http" | "https" | "s3" | "gs" | "az" | "azure" | "abfs" | "abfss"
    ) {
        return Err(bad(format!(
            "unsupported scheme '{}' (expected http, https, s3, gs, az or file)",
            url.scheme()
        )));
    }
    Ok(url)
}

/// A raw URL for an error message: anything between `//` and `@` is hidden.
fn redact_raw(raw: &str) -> String {
    match (raw.find("//"), raw.find('@')) {
        (Some(s), Some(a)) if a > s => format!("{}***{}", &raw[..s + 2], &raw[a..]),
        _ => raw.split('?').next().unwrap_or(raw).to_string(),
    }
}

fn http_url(flag: &str, raw: &str) -> Result<Url, UsageError> {
    let url = Url::parse(raw.trim()).map_err(|e| usage(format!("invalid {flag} '{}': {e}", redact_raw(raw))))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(usage(format!(
            "invalid {flag} '{}': expected an http or https URL",
            redact_raw(raw)
        )));
    }
    Ok(url)
}

fn expand_home(p: &Path) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => dirs::home_dir().map_or_else(|| p.to_path_buf(), |h| h.join(rest)),
        Err(_) => p.to_path_buf(),
    }
}

fn duration(key: &str, raw: Option<&str>) -> Result<Option<Duration>, UsageError> {
    let Some(raw) = raw else { return Ok(None) };
    let d: jiff::SignedDuration = raw.trim().parse().map_err(|_| {
        usage(format!(
            "invalid {key} '{raw}': expected a duration such as 500ms, 10s or 2m"
        ))
    })?;
    Duration::try_from(d)
        .map(Some)
        .map_err(|_| usage(format!("invalid {key} '{raw}': must not be negative")))
}

/// Parses a size: bytes, or a number with KB/MB/GB/TB (×1000) or K/M/G/T, KiB/MiB/GiB/TiB (×1024).
///
/// # Errors
/// A message saying what was expected.
pub fn parse_size(raw: &str) -> Result<u64, String> {
    let s = raw.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("'{raw}' is not a size such as 512MiB or 2GB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit '{other}' in '{raw}' (use B, KB, MB, GB, KiB, MiB, GiB)"
            ));
        }
    };
    Ok((value * mult as f64) as u64)
}

/// Parses an age such as `30d`, `12h`, `90m`.
///
/// # Errors
/// A message saying what was expected.
pub fn parse_age(raw: &str) -> Result<Duration, String> {
    let s = raw.trim();
    let bad = || format!("'{raw}' is not an age such as 30d, 12h or 90m");
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs(n * secs))
}

/// Checks that the output can be written, without writing anything lasting.
fn check_output(output: &OutputSpec) -> Result<(), UsageError> {
    match output {
        OutputSpec::File(path) => {
            if path.is_dir() {
                return Err(usage(format!(
                    "--output {} is a directory, not a .parquet file",
                    path.display()
                )));
            }
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            check_writable_dir("--output", parent)
        }
        OutputSpec::Dir(dir) | OutputSpec::Partitioned(dir) => {
            if dir.exists() && !dir.is_dir() {
                return Err(usage(format!(
                    "--output {} exists and is not a directory",
                    dir.display()
                )));
            }
            check_writable_dir("--output", dir)
        }
    }
}

/// Checks that `dir` exists and is writable, or could be created under its nearest existing
/// ancestor. Probes with a temporary file that is removed at once.
fn check_writable_dir(flag: &str, dir: &Path) -> Result<(), UsageError> {
    let mut probe_dir = dir.to_path_buf();
    while !probe_dir.exists() {
        match probe_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => probe_dir = p.to_path_buf(),
            _ => {
                probe_dir = PathBuf::from(".");
                break;
            }
        }
    }
    if !probe_dir.is_dir() {
        return Err(usage(format!(
            "{flag} {}: {} is not a directory",
            dir.display(),
            probe_dir.display()
        )));
    }
    let probe = probe_dir.join(format!(
        ".tickvault-probe-{}-{:08x}",
        std::process::id(),
        fastrand::u32(..)
    ));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(usage(format!("{flag} {} is not writable: {e}", dir.display()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("0").unwrap(), 0);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5XB").is_err());
    }

    #[test]
    fn ages_parse() {
        assert_eq!(parse_age("30d").unwrap(), Duration::from_secs(30 * 86_400));
        assert_eq!(parse_age("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert!(parse_age("d").is_err() && parse_age("3 days").is_err());
    }

    #[test]
    fn the_shipped_config_file_is_valid() {
        let f: ConfigFile = toml::from_str(include_str!("../config/default.toml")).unwrap();
        assert_eq!(f.concurrency, Some(DEFAULT_CONCURRENCY));
        assert_eq!(
            parse_size(f.memory_cache.as_deref().unwrap()).unwrap(),
            DEFAULT_MEMORY_CACHE_BYTES
        );
        assert_eq!(
            duration("read_timeout", f.read_timeout.as_deref()).unwrap(),
            Some(DEFAULT_READ_TIMEOUT)
        );
        assert_eq!(f.datasets_url.as_deref(), Some(DEFAULT_DATASETS_URL));
        let retry = RetryPolicy::default();
        assert_eq!(f.max_retries, Some(retry.max_retries));
        assert_eq!(
            duration("x", f.retry_max_backoff.as_deref()).unwrap(),
            Some(retry.max_backoff)
        );
    }

    #[test]
    fn credentials_in_urls_are_hidden_in_errors() {
        let e = parse_remote_url("ftp://user:secret@host/x").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
        let e = http_url("--datasets-url", "ftp://u:secret@h").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn unknown_config_keys_are_errors() {
        let e = toml::from_str::<ConfigFile>("concurency = 3").unwrap_err();
        assert!(e.message().contains("concurency"));
    }
}
