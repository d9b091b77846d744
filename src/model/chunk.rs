//! Chunks: the unit of fetching, caching and retrying (exchange × data type × symbol × UTC day),
//! and the time range a download covers.

use std::fmt;
use std::sync::Arc;

use jiff::civil::Date;
use jiff::{Timestamp, ToSpan};

use super::DataType;

/// Identifies one Tardis day-file: `{exchange}/{data_type}/{YYYY}/{MM}/{DD}/{SYMBOL}.csv.gz`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    pub exchange: Arc<str>,
    pub data_type: DataType,
    /// The normalised (dataset) symbol, e.g. `BTCUSDT`, `BTC-PERPETUAL`, `OPTIONS`.
    pub symbol: Arc<str>,
    pub date: Date,
}

/// Version of the cache layout and chunk file format. Bump it (and the directory name it gives)
/// whenever the decoded schema or the chunk file metadata changes meaning; old entries then
/// become misses instead of being misread.
pub const CACHE_LAYOUT_VERSION: &str = "v1";

impl ChunkKey {
    pub fn new(exchange: impl Into<Arc<str>>, data_type: DataType, symbol: impl Into<Arc<str>>, date: Date) -> Self {
        Self {
            exchange: exchange.into(),
            data_type,
            symbol: symbol.into(),
            date,
        }
    }

    /// The dataset path relative to the datasets base URL, with the symbol percent-encoded the
    /// way the official clients encode it (`encodeURIComponent` / `quote(symbol, safe='')`).
    pub fn url_path(&self) -> String {
        format!(
            "{}/{}/{}/{}.csv.gz",
            self.exchange,
            self.data_type,
            self.date.strftime("%Y/%m/%d"),
            encode_component(&self.symbol)
        )
    }

    /// The cache key relative to a cache root: `v1/{exchange}/{data_type}/{SYMBOL}/{YYYY-MM-DD}.parquet`.
    /// This is the only place cache paths are built; the local and remote tiers share it.
    pub fn cache_path(&self) -> String {
        format!(
            "{CACHE_LAYOUT_VERSION}/{}/{}/{}/{}.parquet",
            self.exchange,
            self.data_type,
            fs_component(&self.symbol),
            self.date
        )
    }

    /// Parses a [`Self::cache_path`] back into a key (for cache maintenance).
    pub fn from_cache_path(path: &str) -> Option<Self> {
        let mut parts = path.split('/');
        if parts.next()? != CACHE_LAYOUT_VERSION {
            return None;
        }
        let exchange = parts.next()?;
        let data_type: DataType = parts.next()?.parse().ok()?;
        let symbol = decode_component(parts.next()?)?;
        let date: Date = parts.next()?.strip_suffix(".parquet")?.parse().ok()?;
        if parts.next().is_some() || !valid_exchange(exchange) {
            return None;
        }
        Some(Self::new(exchange, data_type, symbol, date))
    }

    /// Start of the chunk's UTC day, in microseconds since the epoch.
    pub fn day_start_micros(&self) -> i64 {
        day_start(self.date).as_microsecond()
    }

    /// Whether Tardis serves this day without an API key (the first day of every month).
    pub fn is_free_day(&self) -> bool {
        self.date.day() == 1
    }
}

impl fmt::Display for ChunkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.exchange, self.data_type, self.symbol, self.date)
    }
}

/// Whether `s` looks like a Tardis exchange id (`binance-futures`, `deribit`, `okex-swap`).
pub fn valid_exchange(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Normalises a symbol the way both official clients do before building the URL:
/// `:` and `/` become `-`, and letters are upper-cased (tardis-python `_normalize_symbol`,
/// tardis-node `s.replace(/\/|:/g, '-').toUpperCase()`).
pub fn normalize_symbol(symbol: &str) -> String {
    symbol.trim().replace([':', '/'], "-").to_uppercase()
}

/// Percent-encodes everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )`, like `encodeURIComponent`.
fn encode_component(s: &str) -> String {
    encode(s, |b| b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b))
}

/// Percent-encodes everything but `A-Z a-z 0-9 - _ .`: safe as a file or object name on every
/// platform and store, and injective, so two symbols never share a cache entry.
pub fn fs_component(s: &str) -> String {
    encode(s, |b| {
        b.is_ascii_alphanumeric() || b"-_".contains(&b) || (b == b'.' && s != "." && s != "..")
    })
}

fn encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_component(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Midnight UTC at the start of `date`.
pub fn day_start(date: Date) -> Timestamp {
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MIN)
}

/// The half-open time range `[from, to)` of a download, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Timestamp,
    pub to: Timestamp,
}

/// Why a `--from`/`--to` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("invalid {flag} '{value}': expected YYYY-MM-DD or an RFC 3339 timestamp such as 2024-01-02T03:04:05Z")]
    Malformed { flag: &'static str, value: String },
    #[error("--to ({to}) must be after --from ({from})")]
    Reversed { from: String, to: String },
}

/// Parses `YYYY-MM-DD` (midnight UTC) or an RFC 3339 timestamp (any offset, converted to UTC).
pub fn parse_instant(flag: &'static str, value: &str) -> Result<Timestamp, RangeError> {
    let v = value.trim();
    let malformed = || RangeError::Malformed {
        flag,
        value: value.to_string(),
    };
    if v.len() == 10 {
        let date: Date = v.parse().map_err(|_| malformed())?;
        return Ok(day_start(date));
    }
    v.parse::<Timestamp>().map_err(|_| malformed())
}

impl TimeRange {
    /// Builds the range; `to` defaults to `from` + 1 day, and must be after `from`.
    pub fn new(from: Timestamp, to: Option<Timestamp>) -> Result<Self, RangeError> {
        let to = match to {
            Some(t) => t,
            None => from.checked_add(24.hours()).map_err(|_| RangeError::Malformed {
                flag: "--from",
                value: from.to_string(),
            })?,
        };
        if to <= from {
            return Err(RangeError::Reversed {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        Ok(Self { from, to })
    }

    /// The UTC days that intersect the range, in order.
    pub fn days(&self) -> Vec<Date> {
        let utc = jiff::tz::TimeZone::UTC;
        let first = self.from.to_zoned(utc.clone()).date();
        // `to` is exclusive: the last day is the one holding the instant just before `to`.
        let last = (self.to - 1.microsecond()).to_zoned(utc).date();
        let mut days = Vec::new();
        let mut d = first;
        while d <= last {
            days.push(d);
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => break,
            }
        }
        days
    }

    /// Whether the range covers whole UTC days only (no row filtering needed).
    pub fn is_whole_days(&self) -> bool {
        let midnight = |t: Timestamp| t.as_microsecond().rem_euclid(86_400_000_000) == 0;
        midnight(self.from) && midnight(self.to)
    }

    /// `[from, to)` in microseconds since the epoch.
    pub fn micros(&self) -> (i64, i64) {
        (self.from.as_microsecond(), self.to.as_microsecond())
    }

    /// A compact, file-name-safe rendering of one end of the range: `2024-01-02` at midnight,
    /// `20240102T030405Z` otherwise.
    pub fn label(t: Timestamp) -> String {
        if t.as_microsecond().rem_euclid(86_400_000_000) == 0 {
            t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
        } else {
            t.strftime("%Y%m%dT%H%M%SZ").to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn symbols_normalise_like_official_clients() {
        assert_eq!(normalize_symbol("btc/usd"), "BTC-USD");
        assert_eq!(normalize_symbol(" eth:usdt "), "ETH-USDT");
        assert_eq!(normalize_symbol("BTC-PERPETUAL"), "BTC-PERPETUAL");
        assert_eq!(normalize_symbol("perpetuals"), "PERPETUALS");
    }

    #[test]
    fn url_paths_follow_the_datasets_template() {
        let k = ChunkKey::new("deribit", DataType::Trades, "BTC-PERPETUAL", date(2019, 11, 1));
        assert_eq!(k.url_path(), "deribit/trades/2019/11/01/BTC-PERPETUAL.csv.gz");
        let k = ChunkKey::new("bitget", DataType::Trades, "??USDT", date(2026, 3, 16));
        assert_eq!(k.url_path(), "bitget/trades/2026/03/16/%3F%3FUSDT.csv.gz");
    }

    #[test]
    fn cache_paths_are_versioned_safe_and_reversible() {
        let k = ChunkKey::new("bitget", DataType::IncrementalBookL2, "??USDT", date(2026, 3, 16));
        let p = k.cache_path();
        assert_eq!(p, "v1/bitget/incremental_book_L2/%3F%3FUSDT/2026-03-16.parquet");
        assert_eq!(ChunkKey::from_cache_path(&p), Some(k));
        let dots = ChunkKey::new("x", DataType::Trades, "..", date(2024, 1, 1));
        assert!(!dots.cache_path().contains("/../"));
        assert_eq!(ChunkKey::from_cache_path(&dots.cache_path()), Some(dots));
        assert_eq!(ChunkKey::from_cache_path("v0/a/trades/X/2024-01-01.parquet"), None);
        assert_eq!(ChunkKey::from_cache_path("v1/a/trades/X/2024-01-01.parquet.tmp"), None);
    }

    #[test]
    fn ranges_split_into_utc_days_with_exclusive_end() {
        let r = TimeRange::new(
            parse_instant("--from", "2024-01-30").unwrap(),
            Some(parse_instant("--to", "2024-02-02").unwrap()),
        )
        .unwrap();
        assert_eq!(r.days(), vec![date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1)]);
        assert!(r.is_whole_days());
        let one = TimeRange::new(parse_instant("--from", "2024-02-28").unwrap(), None).unwrap();
        assert_eq!(one.days(), vec![date(2024, 2, 28)]);
        let partial = TimeRange::new(
            parse_instant("--from", "2024-01-01T12:00:00Z").unwrap(),
            Some(parse_instant("--to", "2024-01-02T00:00:01+00:00").unwrap()),
        )
        .unwrap();
        assert_eq!(partial.days(), vec![date(2024, 1, 1), date(2024, 1, 2)]);
        assert!(!partial.is_whole_days());
        assert_eq!(TimeRange::label(partial.from), "20240101T120000Z");
        assert_eq!(TimeRange::label(r.to), "2024-02-02");
    }

    #[test]
    fn offsets_convert_to_utc() {
        let t = parse_instant("--from", "2024-01-02T01:00:00+02:00").unwrap();
        assert_eq!(t, parse_instant("--from", "2024-01-01T23:00:00Z").unwrap());
    }

    #[test]
    fn bad_ranges_are_refused() {
        for bad in ["2024-13-01", "2024/01/01", "yesterday", "", "2024-01-01T25:00:00Z"] {
            assert!(
                matches!(parse_instant("--from", bad), Err(RangeError::Malformed { .. })),
                "{bad}"
            );
        }
        let a = parse_instant("--from", "2024-01-02").unwrap();
        let b = parse_instant("--to", "2024-01-01").unwrap();
        assert!(matches!(TimeRange::new(a, Some(b)), Err(RangeError::Reversed { .. })));
        assert!(matches!(TimeRange::new(a, Some(a)), Err(RangeError::Reversed { .. })));
    }
}
