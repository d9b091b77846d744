//! The core pipeline end to end: exact values for every data type, merging, warm runs, the
//! self-repairing local cache, output layouts.

use std::path::Path;

use tickvault::model::DataType;

use crate::support::{Env, csv_rows, date, merged, parquet_metadata, read_parquet, symbol_major};

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Downloads one chunk into `out/NAME.parquet` and checks the file against the CSV exactly.
async fn round_trip(env: &Env, csv: &str, exchange: &str, data_type: &str, symbol: &str, day: &str, name: &str) {
    let out = env.out.join(format!("{name}.parquet"));
    env.download(&[
        "-e",
        exchange,
        "-s",
        symbol,
        "-t",
        data_type,
        "--from",
        day,
        "-o",
        out.to_str().unwrap(),
    ])
    .await
    .ok();
    let (schema, rows) = read_parquet(&out);
    let t: DataType = data_type.parse().unwrap();
    assert_eq!(schema.fields(), t.schema().fields(), "{name}: schema");
    let (header, expected) = csv_rows(csv);
    assert_eq!(header.join(","), t.header(), "{name}: header");
    assert_eq!(rows.len(), expected.len(), "{name}: row count");
    for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "{name}: row {i} differs");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_real_sample_round_trips_exactly() {
    let env = Env::new().await;
    let samples = [
        (
            "nautilus_trader/trades.csv",
            "binance-futures",
            "trades",
            "BTCUSDT",
            "2020-02-22",
        ),
        (
            "nautilus_trader/bitmex_trades_XBTUSD.csv",
            "bitmex",
            "trades",
            "XBTUSD",
            "2020-03-01",
        ),
        (
            "nautilus_trader/quotes.csv",
            "binance-futures",
            "quotes",
            "BTCUSDT",
            "2020-02-22",
        ),
        (
            "nautilus_trader/huobi-dm-swap_quotes_BTC-USD.csv",
            "huobi-dm-swap",
            "quotes",
            "BTC-USD",
            "2020-05-01",
        ),
        (
            "nautilus_trader/huobi-dm-swap_quotes_BTC-USD.csv",
            "huobi-dm-swap",
            "book_ticker",
            "BTC-USD",
            "2020-05-01",
        ),
        (
            "nautilus_trader/deribit_incremental_book_L2_BTC-PERPETUAL.csv",
            "deribit",
            "incremental_book_L2",
            "BTC-PERPETUAL",
            "2020-04-01",
        ),
        (
            "nautilus_trader/binance-futures_book_snapshot_25_BTCUSDT.csv",
            "binance-futures",
            "book_snapshot_25",
            "BTCUSDT",
            "2020-09-01",
        ),
        (
            "nautilus_trader/binance-futures_book_snapshot_5_BTCUSDT.csv",
            "binance-futures",
            "book_snapshot_5",
            "BTCUSDT",
            "2020-09-01",
        ),
        (
            "nautilus_trader/deribit_derivative_ticker.csv",
            "deribit",
            "derivative_ticker",
            "BTC-PERPETUAL",
            "2026-08-10",
        ),
        (
            "nautilus_trader/okex_futures_xperp_derivative_ticker.csv",
            "okex-futures",
            "derivative_ticker",
            "BTC-USD_UM_XPERP-310404",
            "2026-08-10",
        ),
        // Two days spliced together: rows keep their own timestamps.
        (
            "nautilus_trader/okex_swap_usdc_index_migration.csv",
            "okex-swap",
            "derivative_ticker",
            "BTC-USDC-SWAP",
            "2023-04-01",
        ),
        // Hand-picked rows, not in local_timestamp order: the output is sorted (stably).
        (
            "riskpremia/tardis_deribit_options_sample.csv",
            "deribit",
            "options_chain",
            "OPTIONS",
            "2024-01-01",
        ),
    ];
    for (i, (file, exchange, data_type, symbol, day)) in samples.iter().enumerate() {
        let csv = fixture(file);
        env.tardis.add_csv(exchange, data_type, date(day), symbol, &csv);
        round_trip(&env, &csv, exchange, data_type, symbol, day, &format!("sample{i}")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_days_of_all_nine_types_round_trip_exactly() {
    let env = Env::new().await;
    for (i, t) in DataType::ALL.iter().enumerate() {
        let symbol = if *t == DataType::OptionsChain {
            "OPTIONS"
        } else {
            "BTC-PERPETUAL"
        };
        let csv = env.serve_generated("deribit", t.as_str(), symbol, date("2024-03-05"), 3000, i as u64);
        round_trip(&env, &csv, "deribit", t.as_str(), symbol, "2024-03-05", t.as_str()).await;
    }
}

const DAYS: [&str; 3] = ["2024-03-01", "2024-03-02", "2024-03-03"];

/// Serves 2 symbols × 3 days of trades; returns the CSVs in tie-break order (day, then symbol).
fn serve_range(env: &Env, rows: usize) -> Vec<String> {
    let mut csvs = Vec::new();
    for (d, day) in DAYS.iter().enumerate() {
        for (s, sym) in ["BTCUSDT", "ETHUSDT"].iter().enumerate() {
            csvs.push(env.serve_generated("binance-futures", "trades", sym, date(day), rows, (d * 10 + s) as u64));
        }
    }
    csvs
}

/// The merged output of [`RANGE`].
const MERGED: &str = "binance-futures_trades_BTCUSDT+ETHUSDT_2024-03-01_2024-03-04.parquet";

const RANGE: [&str; 8] = [
    "-e",
    "binance-futures",
    "-s",
    "BTCUSDT,ethusdt",
    "--from",
    "2024-03-01",
    "--to",
    "2024-03-04",
];

#[tokio::test(flavor = "multi_thread")]
async fn symbols_and_days_merge_symbol_by_symbol() {
    let env = Env::new().await;
    let csvs = serve_range(&env, 20_000);
    let mut args = RANGE.to_vec();
    args.extend(["-o", env.out.to_str().unwrap(), "--json"]);
    let run = env.download(&args).await;
    run.ok();
    let summary = run.json();
    assert_eq!(summary["chunks"]["tardis"], 6);
    assert_eq!(summary["rows"], 120_000);
    assert_eq!(summary["status"], "ok");
    let out = env.out.join(MERGED);
    assert_eq!(summary["outputs"][0]["path"], out.to_str().unwrap());
    let (_, rows) = read_parquet(&out);
    let refs: Vec<&str> = csvs.iter().map(String::as_str).collect();
    assert!(
        rows == symbol_major(&refs, 2),
        "merged rows differ from the CSVs, symbol by symbol, day by day"
    );
    // The order of requests: the last and the first day of each symbol before the middle day.
    let paths: Vec<String> = env.tardis.dataset_requests().iter().map(|r| r.path.clone()).collect();
    let middle = paths.iter().position(|p| p.contains("/2024/03/02/")).unwrap();
    assert!(middle >= 4, "probes first: {paths:?}");
    // Each symbol-day is its own row groups, so readers prune by symbol and time.
    let meta = parquet_metadata(&out);
    let mut groups: Vec<(String, i64, i64)> = Vec::new();
    for rg in meta.row_groups() {
        let symbol = rg
            .column(1)
            .statistics()
            .and_then(|s| s.min_bytes_opt())
            .map(|b| String::from_utf8_lossy(b).into_owned());
        let ts = rg.column(3).statistics().unwrap();
        let bound = |b: Option<&[u8]>| i64::from_le_bytes(b.unwrap().try_into().unwrap());
        groups.push((
            symbol.unwrap_or_default(),
            bound(ts.min_bytes_opt()),
            bound(ts.max_bytes_opt()),
        ));
    }
    assert!(groups.len() >= 6, "at least one row group per symbol-day: {groups:?}");
    assert_eq!(
        groups.first().unwrap().0,
        "BTCUSDT",
        "symbols in request order: {groups:?}"
    );
    assert_eq!(groups.last().unwrap().0, "ETHUSDT", "{groups:?}");
    assert!(
        groups
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && (w[0].0 != w[1].0 || w[0].2 <= w[1].1)),
        "one symbol per row group, its days in order: {groups:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn order_time_interleaves_symbols_by_local_timestamp() {
    let env = Env::new().await;
    let csvs = serve_range(&env, 20_000);
    let mut args = RANGE.to_vec();
    args.extend(["-o", env.out.to_str().unwrap(), "--order", "time", "--json"]);
    let run = env.download(&args).await;
    run.ok();
    let fetched = run.json();
    assert_eq!(
        fetched["outputs"][0]["chunks_from_memory"], 6,
        "the merge read what this run fetched from the memory tier, not from the files"
    );
    let out = env.out.join(MERGED);
    let (_, rows) = read_parquet(&out);
    let refs: Vec<&str> = csvs.iter().map(String::as_str).collect();
    assert!(
        rows == merged(&refs),
        "rows differ from the CSVs sorted by local_timestamp"
    );
    // From the local tier (a fresh output dir), the same rows, read from the files.
    let other = env.dir.path().join("other");
    let mut warm = RANGE.to_vec();
    warm.extend(["-o", other.to_str().unwrap(), "--order", "time", "--json"]);
    let run = env.download(&warm).await;
    assert_eq!(run.json()["outputs"][0]["chunks_from_memory"], 0);
    assert!(read_parquet(&other.join(MERGED)).1 == rows);
    // Switching the order back rewrites the file; the same order again is a no-op.
    let mut symbol = RANGE.to_vec();
    symbol.extend(["-o", env.out.to_str().unwrap(), "--json"]);
    let run = env.download(&symbol).await;
    assert_eq!(run.json()["outputs"][0]["status"], "written");
    assert!(read_parquet(&out).1 == symbol_major(&refs, 2));
    let run = env.download(&symbol).await;
    assert_eq!(run.json()["outputs"][0]["status"], "up_to_date");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_warm_rerun_makes_no_requests_and_gives_identical_output() {
    let env = Env::new().await;
    serve_range(&env, 5_000);
    let mut args = RANGE.to_vec();
    args.extend(["-o", env.out.to_str().unwrap()]);
    env.download(&args).await.ok();
    assert_eq!(env.dataset_requests(), 6);
    let out = env.out.join(MERGED);
    let first = std::fs::read(&out).unwrap();
    let modified = std::fs::metadata(&out).unwrap().modified().unwrap();

    // The identical command: nothing to fetch, nothing to write.
    let mut json_args = args.clone();
    json_args.push("--json");
    let again = env.download(&json_args).await;
    again.ok();
    assert_eq!(env.dataset_requests(), 6, "a warm run must not contact Tardis");
    let s = again.json();
    assert_eq!(s["chunks"]["local"], 6);
    assert_eq!(s["outputs"][0]["status"], "up_to_date");
    assert_eq!(std::fs::metadata(&out).unwrap().modified().unwrap(), modified);

    // A fresh output path: merged again from the cache, byte for byte the same.
    let other = env.dir.path().join("other");
    let mut fresh = RANGE.to_vec();
    fresh.extend(["-o", other.to_str().unwrap()]);
    env.download(&fresh).await.ok();
    assert_eq!(env.dataset_requests(), 6);
    let second = std::fs::read(other.join(MERGED)).unwrap();
    assert!(first == second, "outputs of the same chunks must be identical");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_or_truncated_cache_entry_is_detected_and_fetched_again() {
    let env = Env::new().await;
    let csvs = serve_range(&env, 5_000);
    let mut args = RANGE.to_vec();
    args.extend(["-o", env.out.to_str().unwrap()]);
    env.download(&args).await.ok();
    let entries = env.cache_entries();
    assert_eq!(entries.len(), 6);

    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&entries[0], &bytes).unwrap();
    let cut = std::fs::read(&entries[1]).unwrap();
    std::fs::write(&entries[1], &cut[..cut.len() - 100]).unwrap();

    let other = env.dir.path().join("other");
    let mut fresh = RANGE.to_vec();
    fresh.extend(["-o", other.to_str().unwrap()]);
    let run = env.download(&fresh).await;
    run.ok().stderr_has("corrupt cache entry");
    assert_eq!(
        env.dataset_requests(),
        8,
        "exactly the two damaged chunks are fetched again"
    );
    let (_, rows) = read_parquet(&other.join(MERGED));
    let refs: Vec<&str> = csvs.iter().map(String::as_str).collect();
    assert!(rows == symbol_major(&refs, 2));
    // And the repaired entries verify again.
    env.download(&fresh).await.ok();
    assert_eq!(env.dataset_requests(), 8);
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_output_has_one_file_per_chunk_in_the_hive_layout() {
    let env = Env::new().await;
    let csvs = serve_range(&env, 2_000);
    let mut args = RANGE.to_vec();
    args.extend(["-o", env.out.to_str().unwrap(), "--partitioned"]);
    env.download(&args).await.ok();
    let files = env.out_files();
    assert_eq!(files.len(), 6, "{files:?}");
    let mut i = 0;
    for day in DAYS {
        for sym in ["BTCUSDT", "ETHUSDT"] {
            let p = env
                .out
                .join(format!("trades/exchange=binance-futures/date={day}/{sym}.parquet"));
            let (_, rows) = read_parquet(&p);
            assert!(rows == csv_rows(&csvs[i]).1, "{}", p.display());
            i += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_inside_days_keeps_only_its_rows() {
    let env = Env::new().await;
    let csvs = serve_range(&env, 5_000);
    let (from, to) = ("2024-03-01T06:00:00Z", "2024-03-02T12:30:00+00:00");
    env.download(&[
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT,ETHUSDT",
        "--from",
        from,
        "--to",
        to,
        "-o",
        env.out.to_str().unwrap(),
    ])
    .await
    .ok();
    assert_eq!(env.dataset_requests(), 4, "only the two days the range touches");
    let out = env
        .out
        .join("binance-futures_trades_BTCUSDT+ETHUSDT_20240301T060000Z_20240302T123000Z.parquet");
    let (_, rows) = read_parquet(&out);
    let lo = jiff::Timestamp::from_str_ok(from);
    let hi = jiff::Timestamp::from_str_ok(to);
    let refs: Vec<&str> = csvs[..4].iter().map(String::as_str).collect();
    let expected: Vec<_> = symbol_major(&refs, 2)
        .into_iter()
        .filter(|r| matches!(r[3], crate::support::Cell::Ts(t) if t >= lo && t < hi))
        .collect();
    assert!(!expected.is_empty() && rows == expected);
}

trait FromStrOk {
    fn from_str_ok(s: &str) -> i64;
}

impl FromStrOk for jiff::Timestamp {
    fn from_str_ok(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_microsecond()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_gzip_and_empty_body_are_days_without_rows() {
    let env = Env::new().await;
    env.tardis.add_gz(
        "deribit",
        "trades",
        date("2024-05-01"),
        "BTC-PERPETUAL",
        fake_tardis::generate::gzip(b""),
    );
    env.tardis.add_gz(
        "deribit",
        "trades",
        date("2024-05-02"),
        "BTC-PERPETUAL",
        Vec::<u8>::new(),
    );
    let out = env.out.join("t.parquet");
    let run = env
        .download(&[
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-05-01",
            "--to",
            "2024-05-03",
            "-o",
            out.to_str().unwrap(),
            "--json",
        ])
        .await;
    run.ok();
    assert_eq!(run.json()["rows"], 0);
    let (schema, rows) = read_parquet(&out);
    assert!(rows.is_empty());
    assert_eq!(schema.fields(), DataType::Trades.schema().fields());
    // The empty days are cached like any other.
    let other = env.dir.path().join("t2.parquet");
    env.download(&[
        "-e",
        "deribit",
        "-s",
        "BTC-PERPETUAL",
        "--from",
        "2024-05-01",
        "--to",
        "2024-05-03",
        "-o",
        other.to_str().unwrap(),
    ])
    .await
    .ok();
    assert_eq!(env.dataset_requests(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn gzip_with_content_encoding_is_not_decoded_twice() {
    let env = Env::with(
        fake_tardis::FakeTardis::builder()
            .api_key(crate::support::KEY)
            .content_encoding_gzip(true),
    )
    .await;
    let csv = env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-05"), 1000, 7);
    round_trip(&env, &csv, "deribit", "trades", "BTC-PERPETUAL", "2024-03-05", "ce").await;
}
