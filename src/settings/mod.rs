//! Settings: every option declared once ([`options`]), read from flags and their environment
//! variables, the config file and the defaults ([`cli`], [`layers`]), then validated into the
//! immutable settings of a command. Everything a user can get wrong is checked here, before
//! any network traffic or lasting file write, and reported as a [`UsageError`] (exit code 2).

mod bars;
mod checks;
pub mod cli;
mod layers;
pub mod options;
mod parse;
mod serve;
pub mod spec;

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::cache::{RemoteMode, RemoteOptions, RemoteStore};
use crate::decode::DecodeLimits;
use crate::fetch::RetryPolicy;
use crate::model::{DataType, MinSpeed, TimeRange, normalize_symbol, parse_instant_at, valid_exchange};
use crate::output::Order;
use crate::parquet::mac::MacKey;
use crate::run::plan::Request;
use crate::tardis::{ClientConfig, Secret};
pub use bars::BarsSettings;
use options::Options;
pub use serve::ServeSettings;

/// Bad usage or input: reported in one line, exit code 2, nothing fetched or written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(msg: impl Into<String>) -> UsageError {
    UsageError(msg.into())
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

impl OutputSpec {
    /// The directory the output is written in (a file's parent, `.` for a bare file name):
    /// where its staged files live and whose lock guards it.
    pub fn dir(&self) -> PathBuf {
        match self {
            OutputSpec::Dir(d) | OutputSpec::Partitioned(d) => d.clone(),
            OutputSpec::File(p) => p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
        }
    }
}

/// Where the cache tiers are.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// The local tier's directory.
    pub cache_dir: PathBuf,
    /// The remote tier, if any.
    pub remote: Option<RemoteOptions>,
    /// Bytes the memory tier may hold.
    pub memory_cache: u64,
    /// The team key (from `TICKVAULT_REMOTE_CACHE_SECRET`): chunk files carry its MAC, and
    /// remote objects must.
    pub mac: Option<MacKey>,
    /// The slowest transfer accepted from the remote.
    pub min_speed: MinSpeed,
}

/// How Tardis is reached and how hard it is pushed: the key, the two APIs, and the limits on
/// the traffic and on what a body may decode to (`download`, `bars` and `serve` share them).
#[derive(Debug, Clone)]
pub struct TardisSettings {
    /// The Tardis API key.
    pub api_key: Option<Secret>,
    /// Base of the datasets API.
    pub datasets_url: Url,
    /// Base of the metadata API.
    pub api_url: Url,
    /// Downloads in flight.
    pub concurrency: usize,
    /// Requests per second, if limited.
    pub rate_limit: Option<NonZeroU32>,
    /// How failed downloads are retried.
    pub retry: RetryPolicy,
    /// Limit on connecting.
    pub connect_timeout: Duration,
    /// Longest silence while reading a body.
    pub read_timeout: Duration,
    /// Chunks decoded at once (CPU bound).
    pub decoders: usize,
    /// The slowest body accepted from Tardis.
    pub min_speed: MinSpeed,
    /// Limits on what one body may decode to.
    pub limits: DecodeLimits,
}

impl TardisSettings {
    /// Validates the Tardis options.
    ///
    /// # Errors
    /// [`UsageError`] naming the flag or key at fault.
    pub fn resolve(o: &Options) -> Result<Self, UsageError> {
        Ok(Self {
            api_key: o.api_key.clone(),
            datasets_url: parse::http_url("--datasets-url", &defaulted(&o.datasets_url)).map_err(usage)?,
            api_url: parse::http_url("--api-url", &defaulted(&o.api_url)).map_err(usage)?,
            concurrency: concurrency(o)?,
            rate_limit: rate_limit(o)?,
            retry: retry_policy(o)?,
            connect_timeout: defaulted(&o.connect_timeout),
            read_timeout: defaulted(&o.read_timeout),
            decoders: std::thread::available_parallelism().map_or(2, |n| n.get()),
            min_speed: min_speed(o),
            limits: limits(o)?,
        })
    }

    /// The HTTP client's configuration.
    pub fn client_config(&self) -> ClientConfig {
        ClientConfig {
            datasets_url: self.datasets_url.clone(),
            api_url: self.api_url.clone(),
            api_key: self.api_key.clone(),
            connect_timeout: self.connect_timeout,
            read_timeout: self.read_timeout,
        }
    }
}

/// Everything `tickvault download` needs, validated.
#[derive(Debug, Clone)]
pub struct DownloadSettings {
    /// What to download.
    pub request: Request,
    /// Where the output goes (for an object-store output, its staging directory).
    pub output: OutputSpec,
    /// The object store the output is published to (`-o s3://bucket/prefix/`), if any.
    pub output_store: Option<Url>,
    /// Row order of merged outputs.
    pub order: Order,
    /// The cache tiers.
    pub cache: CacheSettings,
    /// Never contact Tardis.
    pub offline: bool,
    /// Fetch everything again.
    pub refresh: bool,
    /// Check the request against Tardis's metadata first (`--no-validate` turns it off).
    pub validate: bool,
    /// Use days Tardis has not finished exporting, marked as such.
    pub allow_incomplete: bool,
    /// Wait up to this long for unexported days.
    pub wait: Option<Duration>,
    /// Replace outputs of other requests.
    pub overwrite: bool,
    /// How Tardis is reached, and the limits on the traffic.
    pub tardis: TardisSettings,
    /// A JSON summary on stdout.
    pub json: bool,
    /// Print the plan and stop.
    pub dry_run: bool,
    /// With the dry run: price the plan.
    pub estimate: Option<crate::run::estimate::EstimateParams>,
    /// This worker's share of the chunks (`--shard`).
    pub shard: Option<crate::run::shard::Shard>,
    /// Stop starting chunks after this many bytes from Tardis (`--max-transfer`).
    pub max_transfer: Option<u64>,
}

/// A size for people, in decimal units (`1.5 TB`, `640 MB`), as Tardis states its limits.
pub fn show_bytes(n: u64) -> String {
    let f = n as f64;
    for (unit, scale) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)] {
        if f >= scale {
            let v = f / scale;
            return if v >= 100.0 {
                format!("{v:.0}{unit}")
            } else {
                format!("{}{unit}", (v * 10.0).round() / 10.0)
            };
        }
    }
    format!("{n}B")
}

/// Reads a layered option that has a default.
fn defaulted<T: Clone>(v: &Option<T>) -> T {
    v.clone().expect("options with a declared default are always set")
}

impl DownloadSettings {
    /// Validates the options of `tickvault download`.
    ///
    /// # Errors
    /// [`UsageError`] naming the flag or key at fault.
    pub fn resolve(o: &Options) -> Result<Self, UsageError> {
        let request = request(o)?;
        if defaulted(&o.offline) && defaulted(&o.refresh) {
            return Err(usage("--offline and --refresh contradict each other"));
        }
        let wait = o.wait.filter(|w| !w.is_zero());
        if !defaulted(&o.validate) && wait.is_some() {
            return Err(usage(
                "--no-validate and --wait contradict each other: waiting for exports needs Tardis's metadata API",
            ));
        }
        if defaulted(&o.offline) && wait.is_some() {
            return Err(usage(
                "--offline and --wait contradict each other: waiting for exports needs Tardis's metadata API",
            ));
        }
        let cache = CacheSettings::resolve(o)?;
        checks::check_writable_dir("--cache-dir", &cache.cache_dir)?;
        let (output, output_store) = output(o, &request, &cache.cache_dir)?;
        let tardis = TardisSettings::resolve(o)?;
        let dry_run = defaulted(&o.dry_run);
        let estimate = estimate(o, dry_run)?;
        let shard = o
            .shard
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(|raw| crate::run::shard::parse(raw, &|name| std::env::var(name).ok()))
            .transpose()
            .map_err(usage)?;
        let max_transfer = match o.max_transfer {
            Some(spec::Size(0)) => return Err(usage("invalid --max-transfer 0: expected a size such as 400GB")),
            Some(spec::Size(n)) => Some(n),
            None => None,
        };
        Ok(Self {
            request,
            output,
            output_store,
            order: defaulted(&o.order).parse().map_err(usage)?,
            cache,
            offline: defaulted(&o.offline),
            refresh: defaulted(&o.refresh),
            validate: defaulted(&o.validate),
            allow_incomplete: defaulted(&o.allow_incomplete),
            wait,
            overwrite: defaulted(&o.overwrite),
            tardis,
            json: defaulted(&o.json),
            dry_run,
            estimate,
            shard,
            max_transfer,
        })
    }
}

/// The estimate's parameters, with `--dry-run --estimate` only.
fn estimate(o: &Options, dry_run: bool) -> Result<Option<crate::run::estimate::EstimateParams>, UsageError> {
    if !defaulted(&o.estimate) {
        return Ok(None);
    }
    if !dry_run {
        return Err(usage("--estimate prices a plan: give it with --dry-run"));
    }
    let workers = defaulted(&o.workers);
    if !(1..=crate::run::shard::MAX_SHARDS as usize).contains(&workers) {
        return Err(usage(format!(
            "invalid --workers {workers}: expected 1 to {}",
            crate::run::shard::MAX_SHARDS
        )));
    }
    let throughput = defaulted(&o.throughput).0;
    if throughput == 0 {
        return Err(usage("invalid --throughput 0: expected bytes per second such as 17MB"));
    }
    Ok(Some(crate::run::estimate::EstimateParams {
        workers: workers as u64,
        throughput,
        limit_daily: o.plan_limit_daily.map(|s| s.0).filter(|&n| n > 0),
        limit_requests: o.plan_limit_requests.map(|n| n as u64).filter(|&n| n > 0),
    }))
}

/// Downloads in flight (`--concurrency`), checked.
fn concurrency(o: &Options) -> Result<usize, UsageError> {
    let concurrency = defaulted(&o.concurrency);
    if !(1..=1000).contains(&concurrency) {
        return Err(usage(format!(
            "invalid --concurrency {concurrency}: expected 1 to 1000"
        )));
    }
    Ok(concurrency)
}

/// Requests per second to Tardis (`--rate-limit`), if limited.
fn rate_limit(o: &Options) -> Result<Option<NonZeroU32>, UsageError> {
    o.rate_limit
        .map(|n| {
            NonZeroU32::new(n).ok_or_else(|| usage("invalid --rate-limit 0: expected at least 1 request per second"))
        })
        .transpose()
}

/// How failed downloads are retried.
fn retry_policy(o: &Options) -> Result<RetryPolicy, UsageError> {
    let retry = RetryPolicy {
        max_retries: defaulted(&o.max_retries),
        initial_backoff: defaulted(&o.retry_initial_backoff),
        max_backoff: defaulted(&o.retry_max_backoff),
    };
    if retry.max_retries > 100 {
        return Err(usage(format!(
            "invalid --max-retries {}: expected at most 100",
            retry.max_retries
        )));
    }
    Ok(retry)
}

/// The options every download needs, as flags.
const REQUIRED: [(&str, &str); 3] = [
    ("exchange", "--exchange ID"),
    ("symbols", "--symbols LIST"),
    ("from", "--from DATE"),
];

/// Plans of more chunks than this are refused unless `--yes` (README, "Input limits").
pub const MAX_PLAN_CHUNKS: u64 = 100_000;

fn min_speed(o: &Options) -> MinSpeed {
    MinSpeed {
        bytes_per_sec: defaulted(&o.min_transfer_speed).0,
        window: defaulted(&o.min_speed_window),
    }
}

fn limits(o: &Options) -> Result<DecodeLimits, UsageError> {
    let max_line = defaulted(&o.max_line_size).0;
    if max_line < 1024 {
        return Err(usage(format!(
            "invalid --max-line-size {max_line}: expected at least 1KiB (Tardis rows are up to about 2 KB)"
        )));
    }
    Ok(DecodeLimits {
        max_line: usize::try_from(max_line).unwrap_or(usize::MAX),
        max_inflated: defaulted(&o.max_inflated_size).0,
    })
}

/// Exchange, symbols, data types and range.
fn request(o: &Options) -> Result<Request, UsageError> {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|(name, _)| !o.is_set(name))
        .map(|(_, flag)| *flag)
        .collect();
    if !missing.is_empty() {
        return Err(usage(format!(
            "missing {}: give them as flags, environment variables or in a config file job (--job NAME); e.g. -e binance-futures -s BTCUSDT --from yesterday",
            missing.join(", ")
        )));
    }
    let exchange = o.exchange.clone().unwrap_or_default();
    if !valid_exchange(&exchange) {
        return Err(usage(format!(
            "invalid --exchange '{exchange}': expected a Tardis exchange id such as binance-futures or deribit"
        )));
    }
    let raw_symbols = o.symbols.clone().unwrap_or_default();
    let symbols = dedup(
        raw_symbols
            .iter()
            .map(|s| normalize_symbol(s))
            .filter(|s| !s.is_empty()),
    );
    if symbols.is_empty() {
        return Err(usage("--symbols is empty: give at least one symbol"));
    }
    let mut data_types = Vec::new();
    for t in defaulted(&o.data_types).iter().filter(|t| !t.trim().is_empty()) {
        let t: DataType = t.parse().map_err(|e| usage(format!("--data-types: {e}")))?;
        data_types.push(t);
    }
    let data_types = dedup(data_types.into_iter());
    if data_types.is_empty() {
        return Err(usage("--data-types is empty: give at least one data type"));
    }
    let now = now(o)?;
    let from =
        parse_instant_at("--from", o.from.as_deref().unwrap_or_default(), now).map_err(|e| usage(e.to_string()))?;
    let to =
        o.to.as_deref()
            .map(|t| parse_instant_at("--to", t, now))
            .transpose()
            .map_err(|e| usage(e.to_string()))?;
    let range = TimeRange::new(from, to).map_err(|e| usage(e.to_string()))?;
    // Counted, not built: a plan of a million chunks must be refused before it costs anything.
    let chunks = range.day_count() * symbols.len() as u64 * data_types.len() as u64;
    if chunks > MAX_PLAN_CHUNKS && !defaulted(&o.yes) {
        return Err(usage(format!(
            "the request is {chunks} chunks ({} symbols × {} data types × {} days), over the limit of {MAX_PLAN_CHUNKS}: \
             narrow it, or pass --yes to go ahead",
            symbols.len(),
            data_types.len(),
            range.day_count()
        )));
    }
    Ok(Request {
        exchange,
        symbols,
        data_types,
        range,
    })
}

/// The instant relative dates count from: `--now`, else the clock.
fn now(o: &Options) -> Result<jiff::Timestamp, UsageError> {
    match &o.now {
        None => Ok(jiff::Timestamp::now()),
        Some(raw) => raw.trim().parse().map_err(|_| {
            usage(format!(
                "invalid --now '{raw}': expected an RFC 3339 timestamp such as 2024-03-06T07:00:00Z"
            ))
        }),
    }
}

/// The items in first-seen order, without repeats.
fn dedup<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// An object-store output URL (`s3://`, `gs://`, `az://`, `file://`), if `-o` is one.
fn output_url(raw: &Path) -> Result<Option<Url>, UsageError> {
    let Some(text) = raw.to_str().filter(|t| t.contains("://")) else {
        return Ok(None);
    };
    let mut url = Url::parse(text).map_err(|e| usage(format!("invalid --output URL: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(usage(
            "--output URL must not hold credentials: give them in the store's environment (AWS_*, GOOGLE_*, AZURE_*)",
        ));
    }
    let scheme = url.scheme();
    if scheme != "file" && !crate::output::store::OUTPUT_SCHEMES.contains(&scheme) {
        return Err(usage(format!(
            "invalid --output URL: scheme '{scheme}' (expected s3, gs, az or file, or a local path)"
        )));
    }
    crate::cache::store_url::check(&url).map_err(|e| usage(format!("invalid --output URL: {e}")))?;
    // A directory URL ends with '/', so that keys join under it.
    if !url.path().ends_with(".parquet") && !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    Ok(Some(url))
}

/// Where the output goes, checked writable: a local path, or an object-store URL whose
/// output is staged under the cache directory.
fn output(o: &Options, request: &Request, cache_dir: &Path) -> Result<(OutputSpec, Option<Url>), UsageError> {
    let partitioned = defaulted(&o.partitioned);
    let raw = defaulted(&o.output);
    let url = output_url(&raw)?;
    let out_path = match &url {
        None => raw,
        Some(u) => {
            let staging = crate::output::store::staging_dir(cache_dir, u);
            match u.path().rsplit('/').next().filter(|n| n.ends_with(".parquet")) {
                Some(name) => staging.join(name),
                None => staging,
            }
        }
    };
    let is_file = out_path.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let spec = match (is_file, partitioned) {
        (true, true) => {
            return Err(usage(
                "--partitioned writes a directory: give --output a directory, not a .parquet file",
            ));
        }
        (true, false) if request.data_types.len() > 1 => {
            return Err(usage(format!(
                "--output {} is one file but {} data types were asked for: give a directory instead",
                out_path.display(),
                request.data_types.len()
            )));
        }
        (true, false) => OutputSpec::File(out_path),
        (false, true) => OutputSpec::Partitioned(out_path),
        (false, false) => OutputSpec::Dir(out_path),
    };
    checks::check_output(&spec)?;
    Ok((spec, url))
}

impl CacheSettings {
    /// Validates the cache options (any command).
    ///
    /// # Errors
    /// [`UsageError`] for a bad mode or URL, or no cache directory.
    pub fn resolve(o: &Options) -> Result<Self, UsageError> {
        let cache_dir = cache_dir(o)?;
        let mode: RemoteMode = defaulted(&o.remote_cache_mode).parse().map_err(usage)?;
        let timeout = defaulted(&o.remote_cache_timeout);
        let remote = match &o.remote_cache {
            None => None,
            Some(raw) => {
                let mut url = parse::remote_url(raw).map_err(usage)?;
                // A bad URL fails now, with exit code 2; nothing is built or created yet.
                RemoteStore::check_url(&url).map_err(|e| usage(e.to_string()))?;
                // Credentials never stay in a URL that could be stored or shown: they become
                // a Basic authorization header.
                let basic = Secret::new(url.password().unwrap_or_default()).map(|p| (url.username().to_string(), p));
                let _ = url.set_username("");
                let _ = url.set_password(None);
                Some(RemoteOptions {
                    url,
                    basic,
                    secret: o.remote_cache_secret.clone(),
                    min_speed: min_speed(o),
                    token: o.remote_cache_token.clone(),
                    mode,
                    timeout,
                    connect_timeout: defaulted(&o.connect_timeout).min(timeout),
                })
            }
        };
        Ok(Self {
            cache_dir,
            remote,
            memory_cache: defaulted(&o.memory_cache).0,
            mac: o.remote_cache_secret.as_ref().map(|s| MacKey::from_secret(s.expose())),
            min_speed: min_speed(o),
        })
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Lines for people.
    Text,
    /// One JSON object per line.
    Json,
}

/// When to colour logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    /// Only when stderr is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, else nothing.
    Auto,
    /// A line every interval, terminal or not.
    Plain(Duration),
    /// Nothing.
    Never,
}

/// How the tool talks on stderr: log level and format, colour, progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolSettings {
    /// Only errors.
    pub quiet: bool,
    /// `-v` count.
    pub verbose: u8,
    /// Log format.
    pub log_format: LogFormat,
    /// Colour.
    pub color: ColorChoice,
    /// Progress.
    pub progress: ProgressMode,
    /// A JSON document on stdout.
    pub json: bool,
}

impl ToolSettings {
    /// Validates the options every command takes.
    ///
    /// # Errors
    /// [`UsageError`] for an unknown format, colour or progress mode.
    pub fn resolve(o: &Options) -> Result<Self, UsageError> {
        let bad = |flag: &str, v: &str, expected: &str| usage(format!("invalid --{flag} '{v}': expected {expected}"));
        let log_format = match defaulted(&o.log_format).as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            v => return Err(bad("log-format", v, "text or json")),
        };
        let color = match defaulted(&o.color).as_str() {
            "auto" => ColorChoice::Auto,
            "always" => ColorChoice::Always,
            "never" => ColorChoice::Never,
            v => return Err(bad("color", v, "auto, always or never")),
        };
        let interval = defaulted(&o.progress_interval);
        if interval < Duration::from_millis(100) {
            return Err(usage(format!(
                "invalid --progress-interval {}: expected at least 100ms",
                parse::show_duration(interval)
            )));
        }
        let quiet = defaulted(&o.quiet);
        let progress = match defaulted(&o.progress).as_str() {
            "auto" => ProgressMode::Auto,
            "plain" => ProgressMode::Plain(interval),
            "never" => ProgressMode::Never,
            v => return Err(bad("progress", v, "auto, plain or never")),
        };
        let progress = if quiet { ProgressMode::Never } else { progress };
        Ok(Self {
            quiet,
            verbose: defaulted(&o.verbose).0,
            log_format,
            color,
            progress,
            json: defaulted(&o.json),
        })
    }
}

/// Everything `tickvault exchanges [ID]` needs, validated.
#[derive(Debug, Clone)]
pub struct ExchangesSettings {
    /// One exchange's symbols, or (`None`) the list of exchanges.
    pub exchange: Option<String>,
    /// Only the symbols matching this pattern.
    pub symbol_pattern: Option<String>,
    /// Where the metadata is cached.
    pub cache_dir: PathBuf,
    /// Read the cached metadata only.
    pub offline: bool,
    /// Base of the metadata API.
    pub api_url: Url,
    /// How failed requests are retried.
    pub retry: RetryPolicy,
    /// Limit on connecting.
    pub connect_timeout: Duration,
    /// Longest silence while reading an answer.
    pub read_timeout: Duration,
    /// JSON on stdout instead of tables.
    pub json: bool,
}

impl ExchangesSettings {
    /// Validates the options of `tickvault exchanges`.
    ///
    /// # Errors
    /// [`UsageError`] naming the value at fault.
    pub fn resolve(o: &Options) -> Result<Self, UsageError> {
        if let Some(id) = &o.exchange
            && !valid_exchange(id)
        {
            return Err(usage(format!(
                "invalid exchange id '{id}': expected a Tardis exchange id such as binance-futures or deribit"
            )));
        }
        if o.exchange.is_none() && o.exchanges_symbol.is_some() {
            return Err(usage(
                "--symbol filters the symbols of one exchange: give its id (tickvault exchanges ID --symbol PATTERN)",
            ));
        }
        Ok(Self {
            exchange: o.exchange.clone(),
            symbol_pattern: o.exchanges_symbol.clone(),
            cache_dir: cache_dir(o)?,
            offline: defaulted(&o.offline),
            api_url: parse::http_url("--api-url", &defaulted(&o.api_url)).map_err(usage)?,
            retry: RetryPolicy {
                max_retries: defaulted(&o.max_retries),
                initial_backoff: defaulted(&o.retry_initial_backoff),
                max_backoff: defaulted(&o.retry_max_backoff),
            },
            connect_timeout: defaulted(&o.connect_timeout),
            read_timeout: defaulted(&o.read_timeout),
            json: defaulted(&o.json),
        })
    }
}

/// `--cache-dir`, or the platform cache dir + `/tickvault`.
fn cache_dir(o: &Options) -> Result<PathBuf, UsageError> {
    match &o.cache_dir {
        Some(d) => Ok(d.clone()),
        None => dirs::cache_dir()
            .map(|d| d.join("tickvault"))
            .ok_or_else(|| usage("no platform cache directory: set --cache-dir or TICKVAULT_CACHE_DIR")),
    }
}

/// What `tickvault cache prune` removes.
#[derive(Debug, Clone, Copy)]
pub struct PruneSettings {
    /// Keep the local cache at most this many bytes.
    pub max_size: Option<u64>,
    /// Remove entries unused for this long.
    pub older_than: Option<Duration>,
}

impl PruneSettings {
    /// Validates the prune options.
    ///
    /// # Errors
    /// [`UsageError`] when neither limit is given.
    pub fn resolve(o: &Options) -> Result<Self, UsageError> {
        let s = Self {
            max_size: o.prune_max_size.map(|s| s.0),
            older_than: o.prune_older_than,
        };
        if s.max_size.is_none() && s.older_than.is_none() {
            return Err(usage("cache prune needs --max-size SIZE and/or --older-than AGE"));
        }
        Ok(s)
    }
}
