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

/// A symbol declared in the metadata with [`FakeTardis::add_symbol`], whether or not the fake
/// serves any file of it: an entry of `datasets.symbols` (and, unless grouped, of
/// `availableSymbols`) of `/v1/exchanges/{exchange}`.
///
/// [`FakeTardis::add_symbol`]: crate::FakeTardis::add_symbol
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolMeta {
    /// Dataset symbol id, e.g. `BTC-PERPETUAL`, or a grouped id like `PERPETUALS`.
    pub id: String,
    /// `spot`, `future`, `perpetual`, `option`, `combo` or `prediction`.
    pub symbol_type: String,
    /// `availableSince`.
    pub available_since: Timestamp,
    /// `availableTo`, for a delisted symbol; `None` leaves the field out, as the API does for
    /// symbols still listed.
    pub available_to: Option<Timestamp>,
    /// `dataTypes`: the dataset types that exist for this symbol.
    pub data_types: Vec<String>,
}

/// The grouped dataset symbols: one file per day holding every instrument of a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolGroup {
    /// `SPOT`, type `spot`.
    Spot,
    /// `FUTURES`, type `future`.
    Futures,
    /// `PERPETUALS`, type `perpetual`.
    Perpetuals,
    /// `OPTIONS`, type `option`.
    Options,
}

impl SymbolGroup {
    /// The dataset symbol id (`SPOT`, `FUTURES`, `PERPETUALS`, `OPTIONS`).
    pub fn id(self) -> &'static str {
        match self {
            SymbolGroup::Spot => "SPOT",
            SymbolGroup::Futures => "FUTURES",
            SymbolGroup::Perpetuals => "PERPETUALS",
            SymbolGroup::Options => "OPTIONS",
        }
    }

    /// The instrument type the API gives the group.
    pub fn symbol_type(self) -> &'static str {
        match self {
            SymbolGroup::Spot => "spot",
            SymbolGroup::Futures => "future",
            SymbolGroup::Perpetuals => "perpetual",
            SymbolGroup::Options => "option",
        }
    }

    /// The data types served grouped, as observed on the real host (`shared/tardis-api.md`
    /// §1, "Grouped symbols").
    pub fn data_types(self) -> &'static [&'static str] {
        match self {
            SymbolGroup::Spot => &["trades"],
            SymbolGroup::Futures => &["trades", "incremental_book_L2", "derivative_ticker", "liquidations"],
            SymbolGroup::Perpetuals => &["trades", "derivative_ticker", "liquidations"],
            SymbolGroup::Options => &["trades", "quotes", "liquidations", "options_chain"],
        }
    }
}

/// Midnight UTC of `d`.
pub(crate) fn midnight(d: Date) -> Timestamp {
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

impl SymbolMeta {
    /// A listed symbol available since midnight UTC of `available_since`, with the data types
    /// a symbol of that type usually has: book and trade types for all; `derivative_ticker`
    /// and `liquidations` too for `perpetual` and `future`; `book_ticker` for `spot`,
    /// `perpetual` and `future`. Change them with [`with_data_types`](Self::with_data_types).
    pub fn new(id: impl Into<String>, symbol_type: impl Into<String>, available_since: Date) -> SymbolMeta {
        let symbol_type = symbol_type.into();
        let mut types = vec![
            "trades",
            "incremental_book_L2",
            "book_snapshot_25",
            "book_snapshot_5",
            "quotes",
        ];
        match symbol_type.as_str() {
            "perpetual" | "future" => types.extend(["book_ticker", "derivative_ticker", "liquidations"]),
            "spot" => types.push("book_ticker"),
            _ => {}
        }
        SymbolMeta {
            id: id.into(),
            symbol_type,
            available_since: midnight(available_since),
            available_to: None,
            data_types: types.into_iter().map(str::to_owned).collect(),
        }
    }

    /// A grouped symbol (`PERPETUALS`, ...) with its type and usual grouped data types.
    pub fn grouped(group: SymbolGroup, available_since: Date) -> SymbolMeta {
        SymbolMeta {
            id: group.id().to_owned(),
            symbol_type: group.symbol_type().to_owned(),
            available_since: midnight(available_since),
            available_to: None,
            data_types: group.data_types().iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Delisted: `availableTo` is midnight UTC of `available_to`.
    #[must_use]
    pub fn until(mut self, available_to: Date) -> SymbolMeta {
        self.available_to = Some(midnight(available_to));
        self
    }

    /// Replaces the data types.
    #[must_use]
    pub fn with_data_types<I, S>(mut self, types: I) -> SymbolMeta
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.data_types = types.into_iter().map(Into::into).collect();
        self
    }
}

/// What tests declared about one exchange's metadata, on top of what its files imply.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExchangeConfig {
    pub(crate) exported_until: Option<Timestamp>,
    pub(crate) exported_from: Option<Timestamp>,
    pub(crate) available_since: Option<Timestamp>,
    pub(crate) available_to: Option<Timestamp>,
    pub(crate) symbols: BTreeMap<String, SymbolMeta>,
}

/// One dataset symbol, merged from the files held and a declaration.
struct Entry {
    symbol_type: String,
    since: Option<Timestamp>,
    to: Option<Timestamp>,
    types: BTreeSet<String>,
}

/// The symbols of an exchange and what they imply for the exchange.
struct Merged {
    symbols: BTreeMap<String, Entry>,
    /// Earliest `availableSince` of any symbol.
    since: Option<Timestamp>,
    trades: u64,
    book: u64,
}

/// Files give a symbol's data types and first day; a declaration overrides the type and the
/// dates and adds its data types.
fn merge(id: &str, files: &[FileKey], cfg: &ExchangeConfig) -> Merged {
    let mut symbols: BTreeMap<String, Entry> = BTreeMap::new();
    let (mut trades, mut book) = (0u64, 0u64);
    for (ty, date, sym) in files {
        let e = symbols.entry(sym.clone()).or_insert_with(|| Entry {
            symbol_type: symbol_type(id, sym).to_owned(),
            since: None,
            to: None,
            types: BTreeSet::new(),
        });
        let at = midnight(*date);
        e.since = Some(e.since.map_or(at, |s| s.min(at)));
        e.types.insert(ty.clone());
        match ty.as_str() {
            "trades" => trades += 1,
            "incremental_book_L2" => book += 1,
            _ => {}
        }
    }
    for (sym, m) in &cfg.symbols {
        let e = symbols.entry(sym.clone()).or_insert_with(|| Entry {
            symbol_type: String::new(),
            since: None,
            to: None,
            types: BTreeSet::new(),
        });
        e.symbol_type.clone_from(&m.symbol_type);
        e.since = Some(m.available_since);
        e.to = m.available_to;
        e.types.extend(m.data_types.iter().cloned());
    }
    let since = symbols.values().filter_map(|e| e.since).min();
    Merged {
        symbols,
        since,
        trades,
        book,
    }
}

fn is_group(sym: &str) -> bool {
    matches!(sym, "SPOT" | "FUTURES" | "PERPETUALS" | "OPTIONS")
}

/// `availableSince` and, if set, `availableTo` of a symbol.
fn dates(obj: &mut serde_json::Map<String, Value>, e: &Entry) {
    obj.insert("availableSince".into(), e.since.map(iso_ms).into());
    if let Some(to) = e.to {
        obj.insert("availableTo".into(), iso_ms(to).into());
    }
}

/// `availableSince`, and `availableTo` with `delisted: true` for a delisted exchange.
fn exchange_dates(obj: &mut serde_json::Map<String, Value>, since: Timestamp, cfg: &ExchangeConfig) {
    obj.insert("availableSince".into(), iso_ms(since).into());
    if let Some(to) = cfg.available_to {
        obj.insert("delisted".into(), true.into());
        obj.insert("availableTo".into(), iso_ms(to).into());
    }
}

/// The `/v1/exchanges/{id}` document.
pub(crate) fn details(id: &str, files: &[FileKey], cfg: &ExchangeConfig, exported_until: Timestamp) -> Value {
    let m = merge(id, files, cfg);
    let exported_from = cfg.exported_from.or(m.since).unwrap_or(exported_until);
    let since = cfg.available_since.or(m.since).unwrap_or(exported_until);
    let dataset_symbols: Vec<Value> = m
        .symbols
        .iter()
        .map(|(sym, e)| {
            // Keep the official type order rather than alphabetical.
            let types: Vec<&str> = DATA_TYPES.iter().copied().filter(|t| e.types.contains(*t)).collect();
            let extra = e
                .types
                .iter()
                .filter(|t| !DATA_TYPES.contains(&t.as_str()))
                .map(String::as_str);
            let mut obj = serde_json::Map::new();
            obj.insert("id".into(), sym.as_str().into());
            obj.insert("type".into(), e.symbol_type.as_str().into());
            dates(&mut obj, e);
            obj.insert(
                "dataTypes".into(),
                types.into_iter().chain(extra).collect::<Vec<_>>().into(),
            );
            Value::Object(obj)
        })
        .collect();
    let available_symbols: Vec<Value> = m
        .symbols
        .iter()
        .filter(|(sym, _)| !is_group(sym))
        .map(|(sym, e)| {
            // Binance venues list their native (lower-case) ids here; others match the dataset id.
            let native = if id.starts_with("binance") {
                sym.to_ascii_lowercase()
            } else {
                sym.clone()
            };
            let mut obj = serde_json::Map::new();
            obj.insert("id".into(), native.into());
            obj.insert("type".into(), e.symbol_type.as_str().into());
            dates(&mut obj, e);
            Value::Object(obj)
        })
        .collect();
    let mut doc = serde_json::Map::new();
    doc.insert("id".into(), id.into());
    doc.insert("name".into(), display_name(id).into());
    doc.insert("enabled".into(), true.into());
    doc.insert("supportsDatasets".into(), true.into());
    exchange_dates(&mut doc, since, cfg);
    doc.insert("availableChannels".into(), channels(id).into());
    doc.insert("availableSymbols".into(), available_symbols.into());
    doc.insert("incidentReports".into(), json!([]));
    doc.insert(
        "datasets".into(),
        json!({
            "formats": ["csv"],
            "exportedFrom": iso_ms(exported_from),
            "exportedUntil": iso_ms(exported_until),
            // The fake does not count rows; these count the files of each kind instead.
            "stats": { "trades": m.trades, "bookChanges": m.book },
            "symbols": dataset_symbols,
        }),
    );
    Value::Object(doc)
}

/// One item of the `/v1/exchanges` list.
pub(crate) fn summary(id: &str, files: &[FileKey], cfg: &ExchangeConfig, exported_until: Timestamp) -> Value {
    let m = merge(id, files, cfg);
    let since = cfg.available_since.or(m.since).unwrap_or(exported_until);
    let mut obj = serde_json::Map::new();
    obj.insert("id".into(), id.into());
    obj.insert("name".into(), display_name(id).into());
    obj.insert("enabled".into(), true.into());
    obj.insert("supportsDatasets".into(), true.into());
    exchange_dates(&mut obj, since, cfg);
    obj.insert("availableChannels".into(), channels(id).into());
    Value::Object(obj)
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

    #[test]
    fn declared_symbols_merge_with_files() {
        let d = jiff::civil::date;
        let files = vec![
            ("trades".to_owned(), d(2024, 1, 5), "BTC-PERPETUAL".to_owned()),
            ("trades".to_owned(), d(2024, 1, 3), "ETH-PERPETUAL".to_owned()),
        ];
        let mut cfg = ExchangeConfig::default();
        for m in [
            SymbolMeta::new("BTC-PERPETUAL", "perpetual", d(2019, 3, 30)).with_data_types(["quotes"]),
            SymbolMeta::new("BTC-29MAR19", "future", d(2018, 12, 28)).until(d(2019, 3, 30)),
            SymbolMeta::grouped(SymbolGroup::Perpetuals, d(2020, 1, 1)),
        ] {
            cfg.symbols.insert(m.id.clone(), m);
        }
        let until: Timestamp = "2024-02-01T00:00:00Z".parse().unwrap();
        let v = details("deribit", &files, &cfg, until);
        let syms = v["datasets"]["symbols"].as_array().unwrap();
        let by_id = |id: &str| syms.iter().find(|s| s["id"] == id).unwrap().clone();
        let btc = by_id("BTC-PERPETUAL");
        assert_eq!(btc["availableSince"], "2019-03-30T00:00:00.000Z");
        assert_eq!(btc["dataTypes"], json!(["trades", "quotes"]));
        assert!(btc.get("availableTo").is_none());
        let fut = by_id("BTC-29MAR19");
        assert_eq!(fut["type"], "future");
        assert_eq!(fut["availableTo"], "2019-03-30T00:00:00.000Z");
        let eth = by_id("ETH-PERPETUAL");
        assert_eq!(eth["availableSince"], "2024-01-03T00:00:00.000Z");
        let perps = by_id("PERPETUALS");
        assert_eq!(perps["type"], "perpetual");
        assert_eq!(
            perps["dataTypes"],
            json!(["trades", "derivative_ticker", "liquidations"])
        );
        let listed: Vec<&str> = v["availableSymbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ["BTC-29MAR19", "BTC-PERPETUAL", "ETH-PERPETUAL"]);
        assert_eq!(v["availableSince"], "2018-12-28T00:00:00.000Z");
        assert_eq!(v["datasets"]["exportedFrom"], "2018-12-28T00:00:00.000Z");
        assert!(v.get("availableTo").is_none() && v.get("delisted").is_none());

        cfg.available_since = Some("2017-01-01T00:00:00Z".parse().unwrap());
        cfg.available_to = Some("2022-11-14T00:00:00Z".parse().unwrap());
        cfg.exported_from = Some("2019-01-01T00:00:00Z".parse().unwrap());
        for v in [
            details("deribit", &files, &cfg, until),
            summary("deribit", &files, &cfg, until),
        ] {
            assert_eq!(v["availableSince"], "2017-01-01T00:00:00.000Z");
            assert_eq!(v["availableTo"], "2022-11-14T00:00:00.000Z");
            assert_eq!(v["delisted"], true);
        }
        let v = details("deribit", &files, &cfg, until);
        assert_eq!(v["datasets"]["exportedFrom"], "2019-01-01T00:00:00.000Z");
    }
}
