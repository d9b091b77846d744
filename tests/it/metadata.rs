//! The request checked against Tardis's metadata before any download: typos get "did you
//! mean", dates outside a symbol's range and days that have not begun are refused (exit 2,
//! nothing fetched); a metadata API that is down is an error unless --no-validate; the
//! metadata is cached for a day and read offline; `tickvault exchanges` shows it.

use fake_tardis::{SymbolGroup, SymbolMeta};

use crate::support::{Env, date};

/// binance-futures with BTCUSDT and ETHUSDT (files for 2024-03-01), a delisted quarterly
/// future and the PERPETUALS group declared.
fn declare(env: &Env) {
    for sym in ["BTCUSDT", "ETHUSDT"] {
        env.serve_generated("binance-futures", "trades", sym, date("2024-03-01"), 500, 1);
        env.tardis
            .add_symbol("binance-futures", SymbolMeta::new(sym, "perpetual", date("2019-09-08")));
    }
    env.tardis.add_symbol(
        "binance-futures",
        SymbolMeta::new("BTCUSDT_210326", "future", date("2020-12-25")).until(date("2021-03-26")),
    );
    env.tardis.add_symbol(
        "binance-futures",
        SymbolMeta::grouped(SymbolGroup::Perpetuals, date("2020-01-01")),
    );
}

/// `download -e EXCHANGE -s SYMBOLS --from FROM --to TO [-t TYPES]` into the output dir.
async fn pull(env: &Env, exchange: &str, symbols: &str, from: &str, to: &str, extra: &[&str]) -> crate::support::Run {
    let out = env.out.to_str().unwrap().to_string();
    let mut args = vec!["-e", exchange, "-s", symbols, "--from", from, "--to", to, "-o", &out];
    args.extend_from_slice(extra);
    env.download(&args).await
}

/// Exit 2, one `error:` line holding every needle, no dataset request, no output.
async fn refused(env: &Env, exchange: &str, symbols: &str, from: &str, to: &str, extra: &[&str], needles: &[&str]) {
    let run = pull(env, exchange, symbols, from, to, extra).await;
    run.code(2);
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {}", run.stderr);
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {}", lines[0]);
    }
    assert_eq!(env.dataset_requests(), 0, "nothing fetched for {symbols} {from}");
    assert!(!env.out.exists(), "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn typos_get_the_closest_valid_names_and_nothing_is_fetched() {
    let env = Env::new().await;
    declare(&env);
    let day = ("2024-03-01", "2024-03-02");
    refused(
        &env,
        "binance-future",
        "BTCUSDT",
        day.0,
        day.1,
        &[],
        &["error: unknown exchange 'binance-future' (did you mean binance-futures?)"],
    )
    .await;
    refused(
        &env,
        "binance-futures",
        "BTCUSD",
        day.0,
        day.1,
        &[],
        &[
            "unknown symbol 'BTCUSD' (did you mean BTCUSDT, BTCUSDT_210326?) on binance-futures",
            "`tickvault exchanges binance-futures` lists its symbols",
        ],
    )
    .await;
    // Grouped symbols are symbols too.
    refused(
        &env,
        "binance-futures",
        "perpetual",
        day.0,
        day.1,
        &[],
        &["unknown symbol 'PERPETUAL' (did you mean PERPETUALS?)"],
    )
    .await;
    refused(
        &env,
        "binance-futures",
        "BTCUSDT",
        day.0,
        day.1,
        &["-t", "trades,options_chain"],
        &["BTCUSDT on binance-futures has no options_chain data (it has trades, incremental_book_L2"],
    )
    .await;
    refused(
        &env,
        "binance-futures",
        "PERPETUALS",
        day.0,
        day.1,
        &["-t", "quotes"],
        &["PERPETUALS on binance-futures has no quotes data (it has trades, derivative_ticker, liquidations)"],
    )
    .await;
    // Each run asked at most once: a request refused against the cached copy is checked
    // against a fresh one (a symbol listed today) before it is refused.
    assert_eq!(
        env.tardis
            .api_requests()
            .iter()
            .filter(|r| r.path.ends_with("/exchanges/binance-futures"))
            .count(),
        4,
        "four runs on binance-futures"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dates_outside_a_symbols_range_or_not_begun_are_refused() {
    let env = Env::new().await;
    declare(&env);
    refused(
        &env,
        "binance-futures",
        "BTCUSDT",
        "2019-09-01",
        "2019-09-10",
        &[],
        &["BTCUSDT on binance-futures has data from 2019-09-08 (availableSince 2019-09-08T00:00:00Z); the range starts 2019-09-01"],
    )
    .await;
    refused(
        &env,
        "binance-futures",
        "BTCUSDT_210326",
        "2021-03-20",
        "2021-03-28",
        &[],
        &["BTCUSDT_210326 on binance-futures has data until 2021-03-25 (availableTo 2021-03-26T00:00:00Z); the range ends 2021-03-27"],
    )
    .await;
    let next_year = (jiff::Zoned::now().year() + 1).to_string();
    let (from, to) = (format!("{next_year}-01-01"), format!("{next_year}-01-03"));
    refused(
        &env,
        "binance-futures",
        "BTCUSDT",
        &from,
        &to,
        &[],
        &[&format!("the range reaches {from}, which has not begun yet")],
    )
    .await;
    // Inside the ranges the check passes: a grouped symbol without a file for the day is
    // then a failed chunk (exit 1), not a refusal.
    pull(
        &env,
        "binance-futures",
        "BTCUSDT,PERPETUALS",
        "2024-03-01",
        "2024-03-02",
        &[],
    )
    .await
    .code(1)
    .stderr_has("PERPETUALS.csv.gz: HTTP 404");
    pull(&env, "binance-futures", "BTCUSDT", "2024-03-01", "2024-03-02", &[])
        .await
        .ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metadata_api_that_is_down_is_an_error_unless_no_validate() {
    let env = Env::new().await;
    declare(&env);
    env.tardis.fail_api(Some(503));
    let run = pull(&env, "binance-futures", "BTCUSDT", "2024-03-01", "2024-03-02", &[]).await;
    run.code(1)
        .stderr_has("cannot check the request against Tardis's metadata (--no-validate skips the check)")
        .stderr_has("/api/v1/exchanges/binance-futures")
        .stderr_has("HTTP 503");
    assert_eq!(env.dataset_requests(), 0, "no download without the check");
    assert!(!env.out.exists());
    let api_calls = env.tardis.api_requests().len();
    assert_eq!(api_calls, 4, "the first try and three retries");

    let run = pull(
        &env,
        "binance-futures",
        "BTCUSDT",
        "2024-03-01",
        "2024-03-02",
        &["--no-validate", "--json"],
    )
    .await;
    run.ok()
        .stderr_has("--no-validate: the exchange, symbols, data types and dates are not checked");
    assert_eq!(
        env.tardis.api_requests().len(),
        api_calls,
        "--no-validate asks no metadata"
    );
    let s = run.json();
    assert_eq!(s["rows"], 500);
    assert_eq!(s["publication"]["assumed"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn metadata_is_cached_for_a_day_and_read_offline() {
    let env = Env::new().await;
    declare(&env);
    let details = |env: &Env| {
        env.tardis
            .api_requests()
            .iter()
            .filter(|r| r.path == "/api/v1/exchanges/binance-futures")
            .count()
    };
    pull(&env, "binance-futures", "BTCUSDT", "2024-03-01", "2024-03-02", &[])
        .await
        .ok();
    assert_eq!(details(&env), 1, "one metadata request per exchange and run");
    pull(&env, "binance-futures", "ETHUSDT", "2024-03-01", "2024-03-02", &[])
        .await
        .ok();
    assert_eq!(details(&env), 1, "a second run reads the cached copy");
    let cached = env.cache.join("metadata/exchanges/binance-futures.json");
    assert!(cached.exists());

    // Offline: the cached copy checks the request, whatever its age.
    age(&cached, 3);
    env.tardis.fail_all(Some(500));
    let other = env.dir.path().join("offline-out");
    let out = other.to_str().unwrap();
    let args = [
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT",
        "--from",
        "2024-03-01",
        "-o",
        out,
        "--offline",
    ];
    env.download(&args).await.ok();
    let mut typo = args.to_vec();
    typo[3] = "BTCUSTD";
    env.download(&typo)
        .await
        .code(2)
        .stderr_has("unknown symbol 'BTCUSTD' (did you mean BTCUSDT");
    assert_eq!(details(&env), 1);

    // Online again, past the day's time to live: asked again.
    env.tardis.fail_all(None);
    pull(&env, "binance-futures", "BTCUSDT", "2024-03-01", "2024-03-02", &[])
        .await
        .ok();
    assert_eq!(details(&env), 2);
}

/// Makes a file look `days` old.
fn age(path: &std::path::Path, days: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn exchanges_lists_what_tardis_has() {
    let env = Env::new().await;
    declare(&env);
    env.tardis.add_symbol(
        "deribit",
        SymbolMeta::new("BTC-PERPETUAL", "perpetual", date("2019-03-30")).with_data_types(["trades", "quotes"]),
    );
    let list = env.tickvault(&["exchanges", "--json"]).await;
    list.ok();
    let doc = list.json();
    assert_eq!(doc["schema"], 1);
    let ex = doc["exchanges"].as_array().unwrap();
    let find = |id: &str| ex.iter().find(|e| e["id"] == id).unwrap().clone();
    let bf = find("binance-futures");
    assert_eq!(bf["name"], "Binance USDT Futures");
    assert_eq!(bf["available_since"], "2019-09-08T00:00:00Z");
    let types = bf["data_types"].as_array().unwrap();
    assert!(types.iter().any(|t| t == "derivative_ticker") && types.iter().any(|t| t == "liquidations"));
    assert_eq!(find("deribit")["data_types"], serde_json::json!(["trades", "quotes"]));

    let table = env.tickvault(&["exchanges"]).await;
    table.ok();
    let line = table
        .stdout
        .lines()
        .find(|l| l.starts_with("deribit "))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    assert!(line.contains("2019-03-30") && line.ends_with("trades,quotes"), "{line}");

    let one = env
        .tickvault(&["exchanges", "binance-futures", "--symbol", "btc*", "--json"])
        .await;
    one.ok();
    let doc = one.json();
    let ids: Vec<&str> = doc["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["BTCUSDT", "BTCUSDT_210326"]);
    assert_eq!(doc["symbols"][1]["available_to"], "2021-03-26T00:00:00Z");
    assert_eq!(doc["exchange"]["id"], "binance-futures");

    let text = env
        .tickvault(&["exchanges", "binance-futures", "--symbol", "PERP"])
        .await;
    text.ok();
    assert!(
        text.stdout.contains("PERPETUALS  perpetual  2020-01-01"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("1 of 4 symbols matching 'PERP'"),
        "{}",
        text.stdout
    );

    env.tickvault(&["exchanges", "binance-future"])
        .await
        .code(2)
        .stderr_has("unknown exchange 'binance-future' (did you mean binance-futures?)");
    assert_eq!(env.dataset_requests(), 0, "exchanges asks no dataset");
}
