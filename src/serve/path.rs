//! Request paths to chunk keys. A path is parsed into a [`ChunkKey`] and must be that key's
//! canonical path, so nothing a client sends is ever joined onto the disk: `..`, empty
//! segments, unknown data types, bad dates, an unnormalised symbol are all refused (400).
//! Derived chunks (bars) have paths of their own,
//! `/v1/{exchange}/bars-v1-1m-timestamp/{SYMBOL}/{YYYY-MM-DD}.parquet`
//! ([`ChunkKey::from_cache_path`] parses them), so an edge server serves a team's bars too;
//! it never fetches one (a miss is a 404: clients compute bars and PUT them).
//!
//! Two spellings of a key's path are accepted, both exact:
//! - the cache path itself, `/v1/{exchange}/{data_type}/{SYMBOL}/{YYYY-MM-DD}.parquet`, each
//!   segment percent-encoded as in any URL (what curl or a browser sends);
//! - the path object_store's HttpStore sends for that key (the client's remote tier): it
//!   percent-encodes the key's segments once more (`%` → `%25`) before the URL does, so a
//!   symbol such as `??USDT`, `%3F%3FUSDT` in the cache path, arrives as `%25253F%25253FUSDT`.
//!
//! The object_store spelling is tried first. A symbol holding `%` would make the two
//! ambiguous, and no Tardis symbol holds one: it is refused.

use object_store::path::Path as StorePath;

use crate::model::{ChunkKey, normalize_symbol, percent_decode};

/// Why a path is not a chunk key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a chunk path: {0}")]
pub struct BadPath(pub &'static str);

/// The chunk key a request path names.
///
/// # Errors
/// [`BadPath`] saying what is wrong.
pub fn chunk_key(raw: &str) -> Result<ChunkKey, BadPath> {
    let rel = raw.strip_prefix('/').ok_or(BadPath(
        "expected /v1/{exchange}/{data_type}/{SYMBOL}/{YYYY-MM-DD}.parquet",
    ))?;
    let segments: Vec<String> = rel
        .split('/')
        .map(|s| percent_decode(s).ok_or(BadPath("bad percent-encoding")))
        .collect::<Result<_, _>>()?;
    if segments.iter().any(|s| s.is_empty() || s == "." || s == "..") {
        return Err(BadPath("empty, '.' or '..' segment"));
    }
    if segments.iter().any(|s| s.contains('/')) {
        return Err(BadPath("'/' inside a segment"));
    }
    let joined = segments.join("/");
    let key = store_encoded(&segments, &joined)
        .or_else(|| direct(&joined))
        .ok_or(BadPath(
            "expected /v1/{exchange}/{data_type}/{SYMBOL}/{YYYY-MM-DD}.parquet with a known data type, a valid date and a normalised symbol",
        ))?;
    if normalize_symbol(&key.symbol) != *key.symbol {
        return Err(BadPath("the symbol is not normalised (upper case, no ':' or '/')"));
    }
    // No Tardis symbol holds a '%'; refusing it keeps the two spellings unambiguous.
    if key.symbol.contains('%') {
        return Err(BadPath("a symbol holds no '%'"));
    }
    Ok(key)
}

/// `joined` is a key's cache path, exactly.
fn direct(joined: &str) -> Option<ChunkKey> {
    ChunkKey::from_cache_path(joined).filter(|k| k.cache_path() == joined)
}

/// `segments` are object_store path parts of a key's cache path, exactly.
fn store_encoded(segments: &[String], joined: &str) -> Option<ChunkKey> {
    let inner: Vec<String> = segments.iter().map(|s| percent_decode(s)).collect::<Option<_>>()?;
    let key = direct(&inner.join("/"))?;
    (StorePath::from(key.cache_path()).as_ref() == joined).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DataType;
    use jiff::civil::date;

    fn wire(key: &ChunkKey) -> String {
        // What object_store's HttpStore puts on the wire for a key (as the client sends it).
        let mut url = url::Url::parse("http://edge:8080/").unwrap();
        url.path_segments_mut()
            .unwrap()
            .extend(StorePath::from(key.cache_path()).parts());
        url.path().to_string()
    }

    #[test]
    fn plain_and_object_store_paths_give_the_key() {
        let k = ChunkKey::new("deribit", DataType::Trades, "BTC-PERPETUAL", date(2024, 1, 2));
        assert_eq!(
            chunk_key("/v1/deribit/trades/BTC-PERPETUAL/2024-01-02.parquet"),
            Ok(k.clone())
        );
        assert_eq!(chunk_key(&wire(&k)), Ok(k));
        for symbol in ["??USDT", "BTC-USD.P", "A B", "ÄX"] {
            let k = ChunkKey::new("bitget", DataType::IncrementalBookL2, symbol, date(2026, 3, 16));
            assert_eq!(chunk_key(&wire(&k)), Ok(k.clone()), "{symbol}: {}", wire(&k));
            let plain: String = k
                .cache_path()
                .split('/')
                .map(|s| s.replace('%', "%25"))
                .collect::<Vec<_>>()
                .join("/");
            assert_eq!(chunk_key(&format!("/{plain}")), Ok(k), "{symbol}");
        }
    }

    #[test]
    fn derived_chunks_are_served_under_their_own_paths() {
        use crate::model::{BarTime, Derivation};
        let k =
            ChunkKey::new("binance-futures", DataType::Trades, "BTCUSDT", date(2024, 3, 1)).derived(Derivation::Bars {
                interval: "15m".parse().unwrap(),
                by: BarTime::Timestamp,
            });
        let path = format!("/{}", k.cache_path());
        assert_eq!(
            path,
            "/v1/binance-futures/bars-v1-15m-timestamp/BTCUSDT/2024-03-01.parquet"
        );
        assert_eq!(chunk_key(&path), Ok(k.clone()));
        let store = format!("/{}", StorePath::from(k.cache_path()).as_ref());
        assert_eq!(chunk_key(&store), Ok(k));
        for bad in [
            "/v1/binance-futures/bars-v1-60s-timestamp/BTCUSDT/2024-03-01.parquet",
            "/v1/binance-futures/bars-v2-1m-timestamp/BTCUSDT/2024-03-01.parquet",
            "/v1/binance-futures/bars-v1-7m-timestamp/BTCUSDT/2024-03-01.parquet",
        ] {
            assert!(chunk_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "/",
            "v1/deribit/trades/BTC-PERPETUAL/2024-01-02.parquet",
            "/v1/../../etc/passwd",
            "/v1/deribit/trades/../2024-01-02.parquet",
            "/v1/deribit/trades/%2e%2e/2024-01-02.parquet",
            "/v1/deribit/trades/%2E%2E/2024-01-02.parquet",
            "//etc/passwd",
            "/v1//deribit/trades/X/2024-01-02.parquet",
            "/v1/deribit/trades/A%2FB/2024-01-02.parquet",
            "/v1/deribit/candles/BTC-PERPETUAL/2024-01-02.parquet",
            "/v1/deribit/trades/BTC-PERPETUAL/2024-02-30.parquet",
            "/v1/deribit/trades/BTC-PERPETUAL/2024-1-2.parquet",
            "/v1/deribit/trades/BTC-PERPETUAL/2024-01-02.parquet/x",
            "/v1/deribit/trades/BTC-PERPETUAL/2024-01-02.csv.gz",
            "/v2/deribit/trades/BTC-PERPETUAL/2024-01-02.parquet",
            "/v1/Deribit/trades/BTC-PERPETUAL/2024-01-02.parquet",
            "/v1/deribit/trades/btc-perpetual/2024-01-02.parquet",
            "/v1/deribit/trades/BTC%3APERP/2024-01-02.parquet",
            "/v1/deribit/trades/%ZZ/2024-01-02.parquet",
            "/v1/deribit/trades/%FF/2024-01-02.parquet",
            "/v1/deribit/trades/A%2525B/2024-01-02.parquet",
            "/v1/exchanges",
        ] {
            assert!(chunk_key(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
