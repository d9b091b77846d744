//! The metadata API: `/v1/exchanges` and `/v1/exchanges/{exchange}` in the shape of the real
//! `api.tardis.dev` (tardis-node `src/exchangedetails.ts`), built from the dataset files the
//! fake knows about.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::{Value, json};

use crate::r#gen::DATA_TYPES;

/// Exchange ids the real API lists (tardis-node `src/consts.ts` `EXCHANGES`): these answer
/// 200 even when the fake holds no file for them, as the real API does.
pub(crate) const EXCHANGES: &[&str] = &[
    "aster",
    "aster-futures",
    "bitmex",
    "deribit",
    "binance-futures",
    "binance-delivery",
    "binance-european-options",
    "binance",
    "ftx",
    "okex-futures",
    "okex-options",
    "okex-swap",
    "okex",
    "okex-spreads",
    "huobi-dm",
    "huobi-dm-swap",
    "huobi-dm-linear-swap",
    "huobi",
    "bitfinex-derivatives",
    "bitfinex",
    "coinbase",
    "coinbase-international",
    "cryptofacilities",
    "kraken",
    "bitstamp",
    "gemini",
    "poloniex",
    "bybit",
    "bybit-spot",
    "bybit-options",
    "phemex",
    "delta",
    "ftx-us",
    "binance-us",
    "gate-io-futures",
    "mexc-futures",
    "gate-io",
    "okcoin",
    "bitflyer",
    "hitbtc",
    "coinflex",
    "binance-jersey",
    "binance-dex",
    "upbit",
    "ascendex",
    "dydx",
    "dydx-v4",
    "serum",
    "mango",
    "huobi-dm-options",
    "star-atlas",
    "crypto-com",
    "kucoin",
    "kucoin-futures",
    "bitnomial",
    "woo-x",
    "blockchain-com",
    "bitget",
    "bitget-futures",
    "hyperliquid",
    "lighter",
    "bullish",
    "mexc",
    "polymarket",
];

/// One dataset file the server can serve: `(data_type, date, symbol)` of an exchange.
pub(crate) type FileKey = (String, Date, String);

/// Parses `exchange/type/yyyy/mm/dd/symbol.csv.gz` (a [`FakeTardis::dataset_path`]).
///
/// [`FakeTardis::dataset_path`]: crate::FakeTardis::dataset_path
pub(crate) fn parse_key(path: &str) -> Option<(String, FileKey)> {
    let parts: Vec<&str> = path.split('/').collect();
    let [ex, ty, y, m, d, file] = parts.as_slice() else {
        return None;
    };
    let symbol = file.strip_suffix(".csv.gz")?;
    let date = Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()?;
    Some((ex.to_string(), (ty.to_string(), date, symbol.to_owned())))
}

/// Every `{root}/{exchange}/{type}/{yyyy}/{mm}/{dd}/{symbol}.csv.gz` under `root` (blocking).
pub(crate) fn scan_root(root: &Path, exchange: &str) -> Vec<FileKey> {
    fn dirs(p: &Path) -> Vec<(String, std::path::PathBuf)> {
        let Ok(rd) = std::fs::read_dir(p) else {
            return Vec::new();
        };
        rd.filter_map(Result::ok)
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .collect()
    }
    let mut out = Vec::new();
    for (ty, p1) in dirs(&root.join(exchange)) {
        for (y, p2) in dirs(&p1) {
            for (m, p3) in dirs(&p2) {
                for (d, p4) in dirs(&p3) {
                    for (file, _) in dirs(&p4) {
                        let key = format!("{exchange}/{ty}/{y}/{m}/{d}/{file}");
                        if let Some((_, k)) = parse_key(&key) {
                            out.push(k);
                        }
                    }
                }
            }
        }
    }
    out
}

/// Exchange ids that have a directory under `root` (blocking).
pub(crate) fn root_exchanges(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

/// `2026-11-22T00:00:00.000Z`: the API's timestamp format (milliseconds, `Z`).
pub(crate) fn iso_ms(ts: Timestamp) -> String {
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.subsec_nanosecond() / 1_000_000
    )
}

fn iso_date(d: Date) -> String {
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| iso_ms(z.timestamp()))
        .unwrap_or_default()
}

/// Start of the current UTC day: the default `exportedUntil` (data is exported daily).
pub(crate) fn start_of_today() -> Timestamp {
    let s = Timestamp::now().as_second();
    Timestamp::from_second(s - s.rem_euclid(86_400)).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn display_name(id: &str) -> String {
    match id {
        "bitmex" => "BitMEX".to_owned(),
        "deribit" => "Deribit".to_owned(),
        "binance" => "Binance".to_owned(),
        "binance-futures" => "Binance USDT Futures".to_owned(),
        "binance-delivery" => "Binance COIN Futures".to_owned(),
        "okex" => "OKX Spot".to_owned(),
        "okex-swap" => "OKX Swap".to_owned(),
        "okex-futures" => "OKX Futures".to_owned(),
        "bybit" => "Bybit Derivatives".to_owned(),
        _ => id
            .split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_uppercase().chain(c).collect::<String>())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

fn channels(id: &str) -> Vec<&'static str> {
    match id {
        "deribit" => vec![
            "book",
            "deribit_price_index",
            "platform_state",
            "quote",
            "ticker",
            "trades",
            "perpetual",
        ],
        "bitmex" => vec![
            "trade",
            "orderBookL2",
            "quote",
            "instrument",
            "liquidation",
            "funding",
            "settlement",
        ],
        "binance-futures" | "binance-delivery" => vec![
            "trade",
            "aggTrade",
            "bookTicker",
            "depth",
            "depthSnapshot",
            "markPrice",
            "openInterest",
            "forceOrder",
        ],
        "binance" => vec!["trade", "bookTicker", "depth", "depthSnapshot"],
        _ => vec!["trades", "book", "ticker"],
    }
}

/// The instrument type the API would give a dataset symbol (`spot|future|perpetual|option`),
/// guessed from the symbol's shape and the venue, since the fake has no instrument list.
fn symbol_type(exchange: &str, symbol: &str) -> &'static str {
    match symbol {
        "SPOT" => return "spot",
        "FUTURES" => return "future",
        "PERPETUALS" => return "perpetual",
        "OPTIONS" => return "option",
        _ => {}
    }
    let parts: Vec<&str> = symbol.split('-').collect();
    let is_option = parts.len() >= 4
        && matches!(parts.last(), Some(&("C" | "P")))
        && parts[parts.len() - 2].chars().all(|c| c.is_ascii_digit() || c == 'd');
    if is_option {
        return "option";
    }
    if symbol.contains("PERP") || symbol.ends_with("SWAP") {
        return "perpetual";
    }
    // A trailing expiry such as BTC-29MAR24, BTCUSD_240329 or XBTH24.
    let tail = symbol.rsplit(['-', '_']).next().unwrap_or("");
    let dated = tail.len() >= 3 && tail != symbol && tail.chars().filter(char::is_ascii_digit).count() >= 2;
    if dated && tail.chars().any(|c| c.is_ascii_digit()) && !tail.starts_with("USD") {
        return "future";
    }
    let derivatives_venue = [
        "futures",
        "swap",
        "derivatives",
        "bitmex",
        "bybit",
        "deribit",
        "delivery",
        "huobi-dm",
    ]
    .iter()
    .any(|k| exchange.contains(k));
    if derivatives_venue { "perpetual" } else { "spot" }
}

/// Per-symbol summary of the files held.
#[derive(Default)]
struct SymbolFiles {
    since: Option<Date>,
    types: BTreeSet<String>,
}

/// The `/v1/exchanges/{id}` document.
pub(crate) fn details(id: &str, files: &[FileKey], exported_until: Timestamp) -> Value {
    let mut symbols: BTreeMap<&str, SymbolFiles> = BTreeMap::new();
    let mut from: Option<Date> = None;
    let (mut trades, mut book) = (0u64, 0u64);
    for (ty, date, sym) in files {
        let s = symbols.entry(sym).or_default();
        s.since = Some(s.since.map_or(*date, |d| d.min(*date)));
        s.types.insert(ty.clone());
        from = Some(from.map_or(*date, |d| d.min(*date)));
        match ty.as_str() {
            "trades" => trades += 1,
            "incremental_book_L2" => book += 1,
            _ => {}
        }
    }
    let exported_from = from.map_or_else(|| iso_ms(exported_until), iso_date);
    let dataset_symbols: Vec<Value> = symbols
        .iter()
        .map(|(sym, f)| {
            // Keep the official type order rather than alphabetical.
            let types: Vec<&str> = DATA_TYPES.iter().copied().filter(|t| f.types.contains(*t)).collect();
            let extra = f
                .types
                .iter()
                .filter(|t| !DATA_TYPES.contains(&t.as_str()))
                .map(String::as_str);
            json!({
                "id": sym,
                "type": symbol_type(id, sym),
                "availableSince": f.since.map(iso_date),
                "dataTypes": types.into_iter().chain(extra).collect::<Vec<_>>(),
            })
        })
        .collect();
    let available_symbols: Vec<Value> = symbols
        .iter()
        .filter(|(sym, _)| !matches!(**sym, "SPOT" | "FUTURES" | "PERPETUALS" | "OPTIONS"))
        .map(|(sym, f)| {
            // Binance venues list their native (lower-case) ids here; others match the dataset id.
            let native = if id.starts_with("binance") {
                sym.to_ascii_lowercase()
            } else {
                (*sym).to_owned()
            };
            json!({
                "id": native,
                "type": symbol_type(id, sym),
                "availableSince": f.since.map(iso_date),
            })
        })
        .collect();
    json!({
        "id": id,
        "name": display_name(id),
        "enabled": true,
        "supportsDatasets": true,
        "availableSince": exported_from,
        "availableChannels": channels(id),
        "availableSymbols": available_symbols,
        "incidentReports": [],
        "datasets": {
            "formats": ["csv"],
            "exportedFrom": exported_from,
            "exportedUntil": iso_ms(exported_until),
            // The fake does not count rows; these count the files of each kind instead.
            "stats": { "trades": trades, "bookChanges": book },
            "symbols": dataset_symbols,
        },
    })
}

/// One item of the `/v1/exchanges` list.
pub(crate) fn summary(id: &str, since: Option<Date>, exported_until: Timestamp) -> Value {
    json!({
        "id": id,
        "name": display_name(id),
        "enabled": true,
        "supportsDatasets": true,
        "availableSince": since.map_or_else(|| iso_ms(exported_until), iso_date),
        "availableChannels": channels(id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_types() {
        assert_eq!(symbol_type("deribit", "BTC-PERPETUAL"), "perpetual");
        assert_eq!(symbol_type("deribit", "BTC-29MAR24"), "future");
        assert_eq!(symbol_type("deribit", "BTC-29MAR24-43000-P"), "option");
        assert_eq!(symbol_type("deribit", "OPTIONS"), "option");
        assert_eq!(symbol_type("binance", "BTCUSDT"), "spot");
        assert_eq!(symbol_type("binance-futures", "BTCUSDT"), "perpetual");
        assert_eq!(symbol_type("binance-delivery", "BTCUSD_240329"), "future");
        assert_eq!(symbol_type("okex-swap", "BTC-USDT-SWAP"), "perpetual");
        assert_eq!(symbol_type("bitmex", "XBTUSD"), "perpetual");
    }

    #[test]
    fn iso_has_millis_and_z() {
        let ts: Timestamp = "2026-11-22T00:00:00Z".parse().unwrap();
        assert_eq!(iso_ms(ts), "2026-11-22T00:00:00.000Z");
        let ts: Timestamp = "2020-01-02T03:04:05.678901Z".parse().unwrap();
        assert_eq!(iso_ms(ts), "2020-01-02T03:04:05.678Z");
    }

    #[test]
    fn parses_dataset_paths() {
        let (ex, (ty, date, sym)) = parse_key("deribit/trades/2024/01/02/BTC-PERPETUAL.csv.gz").unwrap();
        assert_eq!(
            (ex.as_str(), ty.as_str(), sym.as_str()),
            ("deribit", "trades", "BTC-PERPETUAL")
        );
        assert_eq!(date, jiff::civil::date(2024, 1, 2));
        assert!(parse_key("deribit/trades/2024/13/02/X.csv.gz").is_none());
        assert!(parse_key("deribit/trades/2024/01/02/X.csv").is_none());
    }
}
