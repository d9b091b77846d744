//! Chunk keys: the unit of fetching, caching and retrying (exchange × data type × symbol × UTC
//! day), how a key becomes a dataset URL path and a cache path, and symbol normalisation.

use std::fmt;
use std::sync::Arc;

use jiff::civil::Date;

use super::DataType;
use super::derivation::Derivation;
use super::range::day_start;

/// Identifies one Tardis day-file: `{exchange}/{data_type}/{YYYY}/{MM}/{DD}/{SYMBOL}.csv.gz`,
/// or, with a [`Derivation`], what is computed from that file and cached like it (a derived
/// chunk, e.g. the bars of one symbol-day-interval).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkKey {
    /// The Tardis exchange id.
    pub exchange: Arc<str>,
    /// The data type expected.
    pub data_type: DataType,
    /// The normalised (dataset) symbol, e.g. `BTCUSDT`, `BTC-PERPETUAL`, `OPTIONS`.
    pub symbol: Arc<str>,
    /// The UTC day.
    pub date: Date,
    /// `None` for the raw day-file; what is computed from it for a derived chunk.
    pub derivation: Option<Derivation>,
}

/// Version of the cache layout and chunk file format. Bump it (and the directory name it gives)
/// whenever the decoded schema or the chunk file metadata changes meaning; old entries then
/// become misses instead of being misread.
pub const CACHE_LAYOUT_VERSION: &str = "v1";

impl ChunkKey {
    /// A key from its parts.
    pub fn new(exchange: impl Into<Arc<str>>, data_type: DataType, symbol: impl Into<Arc<str>>, date: Date) -> Self {
        Self {
            exchange: exchange.into(),
            data_type,
            symbol: symbol.into(),
            date,
            derivation: None,
        }
    }

    /// The derived chunk `derivation` of this key's raw day-file.
    #[must_use]
    pub fn derived(&self, derivation: Derivation) -> Self {
        Self {
            derivation: Some(derivation),
            ..self.raw()
        }
    }

    /// The raw day-file a (derived) key comes from.
    #[must_use]
    pub fn raw(&self) -> Self {
        Self {
            derivation: None,
            ..self.clone()
        }
    }

    /// The second segment of the key's path and name: the data type, or the derivation's
    /// label for a derived chunk (`bars-v1-1m-timestamp`).
    pub fn kind(&self) -> String {
        match &self.derivation {
            None => self.data_type.to_string(),
            Some(d) => d.label(),
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

    /// The cache key relative to a cache root: `v1/{exchange}/{data_type}/{SYMBOL}/{YYYY-MM-DD}.parquet`,
    /// with the derivation's label in place of the data type for a derived chunk
    /// (`v1/{exchange}/bars-v1-1m-timestamp/{SYMBOL}/{YYYY-MM-DD}.parquet`; bars derive from trades).
    /// This is the only place cache paths are built; the local and remote tiers share it.
    pub fn cache_path(&self) -> String {
        format!(
            "{CACHE_LAYOUT_VERSION}/{}/{}/{}/{}.parquet",
            self.exchange,
            self.kind(),
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
        let kind = parts.next()?;
        let (data_type, derivation) = match kind.parse::<DataType>() {
            Ok(t) => (t, None),
            Err(_) => (DataType::Trades, Some(Derivation::parse_label(kind)?)),
        };
        let symbol = percent_decode(parts.next()?)?;
        let date: Date = parts.next()?.strip_suffix(".parquet")?.parse().ok()?;
        if parts.next().is_some() || !valid_exchange(exchange) {
            return None;
        }
        Some(Self {
            derivation,
            ..Self::new(exchange, data_type, symbol, date)
        })
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
        write!(f, "{}/{}/{}/{}", self.exchange, self.kind(), self.symbol, self.date)
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

/// Percent-decodes one path segment; `None` for a bad escape or bytes that are not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
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
    fn derived_keys_have_their_own_paths_and_parse_back() {
        use crate::model::{BarTime, Derivation};
        let raw = ChunkKey::new("binance", DataType::Trades, "BTCUSDT", date(2024, 3, 1));
        let d = Derivation::Bars {
            interval: "5m".parse().unwrap(),
            by: BarTime::Timestamp,
        };
        let k = raw.derived(d);
        assert_eq!(
            k.cache_path(),
            "v1/binance/bars-v1-5m-timestamp/BTCUSDT/2024-03-01.parquet"
        );
        assert_eq!(k.to_string(), "binance/bars-v1-5m-timestamp/BTCUSDT/2024-03-01");
        assert_eq!(ChunkKey::from_cache_path(&k.cache_path()), Some(k.clone()));
        assert_ne!(k, raw);
        assert_eq!(k.raw(), raw);
        assert_eq!(k.url_path(), raw.url_path(), "a derived chunk names its source file");
        assert_eq!(
            ChunkKey::from_cache_path("v1/binance/bars-v9-5m-timestamp/BTCUSDT/2024-03-01.parquet"),
            None
        );
    }
}
