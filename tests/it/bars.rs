//! `tickvault bars`: bars equal, cell for cell, a plain fold over the raw trades written here
//! (boundary trades, empty intervals with and without --fill, a day without trades, the real
//! samples); derived chunks cached in every tier (a warm run makes no request and reads no raw
//! trades, a remote-only machine gets bars with no Tardis traffic, a team edge server shares
//! them, an unexported day is never cached as complete); --no-keep-raw.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::civil::Date;

use crate::support::edge::Edge;
use crate::support::nginx::Nginx;
use crate::support::{Cell, Env, Run, date, files_under, parquet_metadata, read_parquet};

const EX: &str = "binance-futures";
const DAY: i64 = 86_400_000_000;

/// One trade as written in the CSV.
#[derive(Debug, Clone)]
struct Trade {
    ts: i64,
    local: i64,
    side: &'static str,
    price: String,
    amount: String,
}

fn day_start(d: Date) -> i64 {
    d.to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_microsecond()
}

/// A day-file of `n` trades (sparse: most minutes are empty), in arrival order, with a few
/// trades in its first seconds timestamped before midnight (they belong to yesterday's last
/// minute).
fn day_trades(rng: &mut fastrand::Rng, d: Date, n: usize, base: f64) -> Vec<Trade> {
    let start = day_start(d);
    let mut locals: Vec<i64> = (0..n).map(|_| rng.i64(start + 65_000_000..start + DAY - 1)).collect();
    // Late arrivals: received just after midnight, traded just before it.
    locals.extend((0..4).map(|i| start + 100_000 + i * 300_000));
    locals.sort_unstable();
    let sides = ["buy", "sell", "unknown"];
    locals
        .into_iter()
        .map(|local| {
            let late = local < start + 2_000_000;
            let lag = if late {
                1_500_000 + rng.i64(0..1_000_000)
            } else {
                rng.i64(0..2_000_000)
            };
            let kinds = if rng.u8(0..10) == 0 { 3 } else { 2 };
            Trade {
                ts: local - lag,
                local,
                side: sides[rng.usize(0..kinds)],
                price: format!("{:.2}", base + rng.f64() * 50.0),
                amount: format!("{:.3}", 0.001 + rng.f64() * 2.0),
            }
        })
        .collect()
}

fn csv(symbol: &str, trades: &[Trade]) -> String {
    let mut s = String::from("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n");
    for (i, t) in trades.iter().enumerate() {
        s.push_str(&format!(
            "{EX},{symbol},{},{},{i},{},{},{}\n",
            t.ts, t.local, t.side, t.price, t.amount
        ));
    }
    s
}

/// The reference: a plain fold over every trade of the files in order, written without any
/// of tickvault's code. `files` are one symbol's day-files, in day order.
#[allow(clippy::too_many_arguments)]
fn reference(
    exchange: &str,
    symbol: &str,
    files: &[Vec<Trade>],
    interval: i64,
    by_local: bool,
    (from, to): (i64, i64),
    fill: bool,
) -> Vec<Vec<Cell>> {
    #[derive(Default, Clone, Copy)]
    struct Agg {
        open: f64,
        high: f64,
        low: f64,
        close: f64,
        volume: f64,
        quote: f64,
        trades: u64,
        buy: f64,
        sell: f64,
    }
    let mut bars: BTreeMap<i64, Agg> = BTreeMap::new();
    for t in files.iter().flatten() {
        let time = if by_local { t.local } else { t.ts };
        let open_time = time - time.rem_euclid(interval);
        if open_time < from || open_time + interval > to {
            continue;
        }
        let (p, a): (f64, f64) = (t.price.parse().unwrap(), t.amount.parse().unwrap());
        let b = bars.entry(open_time).or_default();
        if b.trades == 0 {
            (b.open, b.high, b.low) = (p, p, p);
        } else {
            b.high = b.high.max(p);
            b.low = b.low.min(p);
        }
        b.close = p;
        b.volume += a;
        b.quote += p * a;
        b.trades += 1;
        match t.side {
            "buy" => b.buy += a,
            "sell" => b.sell += a,
            _ => {}
        }
    }
    let row = |t: i64, b: &Agg, vwap: Cell| {
        vec![
            Cell::Str(exchange.into()),
            Cell::Str(symbol.into()),
            Cell::Ts(t),
            Cell::Ts(t + interval),
            Cell::f64(b.open),
            Cell::f64(b.high),
            Cell::f64(b.low),
            Cell::f64(b.close),
            Cell::f64(b.volume),
            Cell::f64(b.quote),
            Cell::U64(b.trades),
            Cell::f64(b.buy),
            Cell::f64(b.sell),
            vwap,
        ]
    };
    let mut out = Vec::new();
    let Some(&first) = bars.keys().next() else { return out };
    let last = if fill {
        (to - to.rem_euclid(interval)) - interval
    } else {
        *bars.keys().last().unwrap()
    };
    let mut close = 0.0;
    let mut t = first;
    while t <= last {
        match bars.get(&t) {
            Some(b) => {
                close = b.close;
                out.push(row(t, b, Cell::f64(b.quote / b.volume)));
            }
            None if fill => {
                let f = Agg {
                    open: close,
                    high: close,
                    low: close,
                    close,
                    ..Agg::default()
                };
                out.push(row(t, &f, Cell::Null));
            }
            None => {}
        }
        t += interval;
    }
    out
}

/// Two symbols, the days 2024-02-29 to 2024-03-04 (the range is 03-01 to 03-04; the days
/// around it are read for the boundary bars); ETHUSDT has no trade on 03-02.
struct Market {
    files: BTreeMap<&'static str, Vec<Vec<Trade>>>,
}

const SYMBOLS: [&str; 2] = ["BTCUSDT", "ETHUSDT"];
const FILE_DAYS: [&str; 5] = ["2024-02-29", "2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"];
const RANGE: [&str; 4] = ["--from", "2024-03-01", "--to", "2024-03-04"];

fn market(env: &Env) -> Market {
    let mut rng = fastrand::Rng::with_seed(16);
    let mut files = BTreeMap::new();
    for (s, symbol) in SYMBOLS.iter().enumerate() {
        let mut days = Vec::new();
        for day in FILE_DAYS {
            let d = date(day);
            let trades = if *symbol == "ETHUSDT" && day == "2024-03-02" {
                Vec::new()
            } else {
                day_trades(&mut rng, d, 400, 1000.0 * (s + 1) as f64)
            };
            if trades.is_empty() {
                env.tardis
                    .add_gz(EX, "trades", d, symbol, fake_tardis::generate::gzip(b""));
            } else {
                env.tardis.add_csv(EX, "trades", d, symbol, &csv(symbol, &trades));
            }
            days.push(trades);
        }
        files.insert(*symbol, days);
    }
    Market { files }
}

impl Market {
    fn expected(&self, interval: i64, by_local: bool, fill: bool) -> Vec<Vec<Cell>> {
        let range = (day_start(date("2024-03-01")), day_start(date("2024-03-04")));
        SYMBOLS
            .iter()
            .flat_map(|s| reference(EX, s, &self.files[s], interval, by_local, range, fill))
            .collect()
    }
}

async fn bars(env: &Env, args: &[&str]) -> Run {
    let mut c = env.cmd();
    c.args(["bars", "--api-key", crate::support::KEY, "--json"]).args(args);
    crate::support::run(c).await
}

fn out_file(dir: &Path, kind: &str) -> PathBuf {
    dir.join(format!("{EX}_{kind}_BTCUSDT+ETHUSDT_2024-03-01_2024-03-04.parquet"))
}

fn check(dir: &Path, kind: &str, expected: &[Vec<Cell>]) {
    let (schema, rows) = read_parquet(&out_file(dir, kind));
    assert_eq!(
        schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>(),
        [
            "exchange",
            "symbol",
            "open_time",
            "close_time",
            "open",
            "high",
            "low",
            "close",
            "volume",
            "quote_volume",
            "trades",
            "buy_volume",
            "sell_volume",
            "vwap"
        ]
    );
    assert_eq!(schema.field(2).data_type().to_string(), "Timestamp(µs, \"UTC\")");
    assert_eq!(rows.len(), expected.len(), "{kind}: rows");
    for (i, (got, want)) in rows.iter().zip(expected).enumerate() {
        assert_eq!(got, want, "{kind}: row {i} differs");
    }
}

fn raw_entries(cache: &Path) -> Vec<PathBuf> {
    files_under(&cache.join(format!("v1/{EX}/trades")))
}

fn derived_entries(cache: &Path) -> Vec<PathBuf> {
    files_under(&cache.join(format!("v1/{EX}")))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/bars-v1-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn bars_equal_a_plain_fold_and_a_warm_run_reads_no_trades() {
    let env = Env::new().await;
    let m = market(&env);
    let out = env.out.join("a");
    let mut args = vec!["-e", EX, "-s", "BTCUSDT,ETHUSDT", "--interval", "1m,15m,1d", "-o"];
    let o = out.to_str().unwrap().to_string();
    args.push(&o);
    args.extend(RANGE);
    let cold = bars(&env, &args).await;
    cold.ok();
    let s = cold.json();
    assert_eq!(
        s["chunks"]["tardis"], 10,
        "5 files per symbol: the range and a day either side"
    );
    assert_eq!(s["bars"]["derived_computed"], 30);
    assert_eq!(s["bars"]["raw_chunks_read"], 10);
    // The boundary trades are in the data: some of them sit in each next file.
    let spill = m.files["BTCUSDT"][2]
        .iter()
        .filter(|t| t.ts < day_start(date("2024-03-02")))
        .count();
    assert_eq!(spill, 4);
    for (kind, interval) in [("bars-1m", 60_000_000), ("bars-15m", 900_000_000), ("bars-1d", DAY)] {
        check(&out, kind, &m.expected(interval, false, false));
    }
    assert_eq!(derived_entries(&env.cache).len(), 30);

    // By arrival time, from the cached trades: no request.
    env.tardis.clear_requests();
    let out_local = env.out.join("local");
    let local = bars(
        &env,
        &[
            "-e",
            EX,
            "-s",
            "BTCUSDT,ETHUSDT",
            "--interval",
            "1h",
            "--by",
            "local_timestamp",
            "-o",
            out_local.to_str().unwrap(),
            RANGE[0],
            RANGE[1],
            RANGE[2],
            RANGE[3],
        ],
    )
    .await;
    local.ok();
    assert_eq!(env.dataset_requests(), 0);
    check(
        &out_local,
        "bars-1h-local_timestamp",
        &m.expected(3_600_000_000, true, false),
    );

    // Warm: the raw trades are gone from the cache; the bars come from the derived chunks.
    for p in raw_entries(&env.cache) {
        std::fs::remove_file(p).unwrap();
    }
    env.tardis.clear_requests();
    let out_fill = env.out.join("fill");
    let warm = bars(
        &env,
        &[
            "-e",
            EX,
            "-s",
            "BTCUSDT,ETHUSDT",
            "--interval",
            "1m,15m,1d",
            "--fill",
            "-o",
            out_fill.to_str().unwrap(),
            RANGE[0],
            RANGE[1],
            RANGE[2],
            RANGE[3],
        ],
    )
    .await;
    warm.ok();
    let s = warm.json();
    assert_eq!(env.dataset_requests(), 0, "a warm run makes no dataset request");
    assert_eq!(s["bars"]["raw_chunks_read"], 0, "and reads no raw trades");
    assert_eq!(s["bars"]["derived_from_cache"], 30);
    assert_eq!(s["chunks"]["local"], 10);
    for (kind, interval) in [("bars-1m", 60_000_000), ("bars-15m", 900_000_000), ("bars-1d", DAY)] {
        let expected = m.expected(interval, false, true);
        check(&out_fill, kind, &expected);
    }
    // The day without trades is filled with ETHUSDT's last close of 03-01, for 1440 minutes.
    let (_, rows) = read_parquet(&out_file(&out_fill, "bars-1m"));
    let d2 = day_start(date("2024-03-02"));
    let eth_d2: Vec<&Vec<Cell>> = rows
        .iter()
        .filter(|r| r[1] == Cell::Str("ETHUSDT".into()) && matches!(r[2], Cell::Ts(t) if (d2..d2 + DAY).contains(&t)))
        .collect();
    assert_eq!(eth_d2.len(), 1440);
    assert!(
        eth_d2[..1439]
            .iter()
            .all(|r| r[10] == Cell::U64(0) && r[13] == Cell::Null)
    );
    // Its last minute holds the trades of 03-03's file timestamped before midnight.
    assert_eq!(eth_d2[1439][10], Cell::U64(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_real_samples_fold_exactly() {
    let env = Env::new().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real/nautilus_trader");
    for (file, exchange, symbol, day) in [
        ("trades.csv", "binance-futures", "BTCUSDT", "2020-02-22"),
        ("bitmex_trades_XBTUSD.csv", "bitmex", "XBTUSD", "2020-03-01"),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let d = date(day);
        env.tardis.add_csv(exchange, "trades", d, symbol, &text);
        for n in [d.yesterday().unwrap(), d.tomorrow().unwrap()] {
            env.tardis
                .add_gz(exchange, "trades", n, symbol, fake_tardis::generate::gzip(b""));
        }
        let trades: Vec<Trade> = text
            .lines()
            .skip(1)
            .map(|l| {
                let c: Vec<&str> = l.split(',').collect();
                Trade {
                    ts: c[2].parse().unwrap(),
                    local: c[3].parse().unwrap(),
                    side: match c[5] {
                        "buy" => "buy",
                        "sell" => "sell",
                        _ => "unknown",
                    },
                    price: c[6].into(),
                    amount: c[7].into(),
                }
            })
            .collect();
        let out = env.out.join(format!("{exchange}.parquet"));
        for (interval, micros) in [("1s", 1_000_000), ("1m", 60_000_000)] {
            let run = bars(
                &env,
                &[
                    "-e",
                    exchange,
                    "-s",
                    symbol,
                    "--interval",
                    interval,
                    "--from",
                    day,
                    "-o",
                    out.to_str().unwrap(),
                    "--overwrite",
                ],
            )
            .await;
            run.ok();
            let start = day_start(d);
            let expected = reference(
                exchange,
                symbol,
                &[vec![], trades.clone(), vec![]],
                micros,
                false,
                (start, start + DAY),
                false,
            );
            let (_, rows) = read_parquet(&out);
            assert!(!rows.is_empty());
            assert_eq!(rows, expected, "{file} {interval}");
        }
        // The partitioned layout: one file per symbol-day, the same rows.
        let lake = env.out.join(format!("{exchange}-lake"));
        let run = bars(
            &env,
            &[
                "-e",
                exchange,
                "-s",
                symbol,
                "--interval",
                "1m",
                "--from",
                day,
                "--partitioned",
                "-o",
                lake.to_str().unwrap(),
            ],
        )
        .await;
        run.ok();
        let part = lake.join(format!("bars-1m/exchange={exchange}/date={day}/{symbol}.parquet"));
        assert_eq!(files_under(&lake), vec![part.clone()]);
        let start = day_start(d);
        let expected = reference(
            exchange,
            symbol,
            &[vec![], trades.clone(), vec![]],
            60_000_000,
            false,
            (start, start + DAY),
            false,
        );
        assert_eq!(read_parquet(&part).1, expected, "{file} partitioned");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_only_machine_gets_the_bars_with_no_tardis_traffic() {
    let env = Env::new().await;
    let m = market(&env);
    let nginx = Nginx::start(None);
    let run = |cache: PathBuf, out: PathBuf, extra: Vec<&'static str>| {
        let mut c = env.cmd();
        c.args(["bars", "--json", "-e", EX, "-s", "BTCUSDT,ETHUSDT", "--interval", "15m"])
            .args(RANGE)
            .arg("--cache-dir")
            .arg(cache)
            .arg("-o")
            .arg(out)
            .args(["--remote-cache", &nginx.url()])
            .args(extra);
        crate::support::run(c)
    };
    let a = run(
        env.dir.path().join("a-cache"),
        env.dir.path().join("a-out"),
        vec!["--api-key", crate::support::KEY, "--no-keep-raw"],
    )
    .await;
    a.ok();
    assert_eq!(a.json()["uploads"]["uploaded"], 10, "only the derived chunks");
    let remote = files_under(&nginx.root());
    assert!(
        remote.iter().all(|p| !p.to_string_lossy().contains("/trades/")),
        "{remote:?}"
    );
    assert!(raw_entries(&env.dir.path().join("a-cache")).is_empty(), "--no-keep-raw");

    env.tardis.fail_all(Some(500));
    env.tardis.clear_requests();
    let b_out = env.dir.path().join("b-out");
    let b = run(env.dir.path().join("b-cache"), b_out.clone(), vec!["--no-validate"]).await;
    b.ok();
    assert_eq!(env.tardis.requests().len(), 0, "no request to Tardis at all");
    let s = b.json();
    assert_eq!(s["chunks"]["remote"], 10);
    assert_eq!(s["bars"]["raw_chunks_read"], 0);
    check(&b_out, "bars-15m", &m.expected(900_000_000, false, false));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_team_edge_server_shares_the_bars() {
    const WRITE: &str = "team-write-token-8d41e77c03";
    let env = Env::new().await;
    let m = market(&env);
    // An edge without a Tardis key: the bars it serves are those a client contributed.
    let edge = Edge::start(&env, &env.dir.path().join("edge"), &["--write-tokens", WRITE], &[]);
    let run = |name: &str, extra: Vec<&str>, token: Option<&str>| {
        let mut c = env.cmd();
        c.args(["bars", "--json", "-e", EX, "-s", "BTCUSDT,ETHUSDT", "--interval", "15m"])
            .args(RANGE)
            .arg("--cache-dir")
            .arg(env.dir.path().join(format!("{name}-cache")))
            .arg("-o")
            .arg(env.dir.path().join(format!("{name}-out")))
            .args(["--remote-cache", &edge.url])
            .args(extra);
        if let Some(t) = token {
            c.env("TICKVAULT_REMOTE_CACHE_TOKEN", t);
        }
        crate::support::run(c)
    };
    let a = run(
        "a",
        vec!["--api-key", crate::support::KEY, "--no-keep-raw"],
        Some(WRITE),
    )
    .await;
    a.ok();
    assert_eq!(a.json()["uploads"]["uploaded"], 10, "only the derived chunks");
    let stored = files_under(&edge.cache);
    let derived: Vec<_> = stored
        .iter()
        .filter(|p| p.to_string_lossy().contains("/bars-v1-15m-"))
        .collect();
    assert_eq!(derived.len(), 10, "{stored:?}");

    // A machine with no key, validating through the edge's metadata proxy: neither it nor the
    // edge asks Tardis for data.
    env.tardis.clear_requests();
    let b = run("b", vec!["--api-url", &edge.api_url()], None).await;
    b.ok();
    assert_eq!(env.tardis.dataset_requests().len(), 0, "no dataset request to Tardis");
    let s = b.json();
    assert_eq!(s["chunks"]["remote"], 10);
    assert_eq!(s["bars"]["raw_chunks_read"], 0);
    check(
        &env.dir.path().join("b-out"),
        "bars-15m",
        &m.expected(900_000_000, false, false),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bars_of_an_unexported_day_are_never_cached_as_complete() {
    let env = Env::new().await;
    let m = market(&env);
    // 03-04 (the day after the range, read for the boundary bars) is not exported yet.
    env.tardis
        .set_exported_until(EX, "2024-03-04T00:00:00Z".parse().unwrap());
    let out = env.out.join("x");
    let args = |extra: &'static [&'static str]| {
        let mut a = vec!["-e", EX, "-s", "BTCUSDT,ETHUSDT", "--interval", "1m", "-o"];
        a.push(Box::leak(out.to_str().unwrap().to_string().into_boxed_str()));
        a.extend(RANGE);
        a.extend_from_slice(extra);
        a
    };
    let withheld = bars(&env, &args(&[])).await;
    withheld.code(3);
    assert!(!out_file(&out, "bars-1m").exists());

    let used = bars(&env, &args(&["--allow-incomplete"])).await;
    used.ok();
    assert_eq!(used.json()["chunks"]["incomplete"], 2);
    let meta = parquet_metadata(&out_file(&out, "bars-1m"));
    let kv = meta.file_metadata().key_value_metadata().unwrap();
    assert!(
        kv.iter()
            .any(|k| k.key == "tickvault.complete" && k.value.as_deref() == Some("false"))
    );
    // The derived chunks of 03-04 are stored marked incomplete: a miss for the next run.
    let d4: Vec<PathBuf> = derived_entries(&env.cache)
        .into_iter()
        .filter(|p| p.ends_with("2024-03-04.parquet"))
        .collect();
    assert_eq!(d4.len(), 2);
    for p in &d4 {
        let kv = parquet_metadata(p)
            .file_metadata()
            .key_value_metadata()
            .unwrap()
            .clone();
        assert!(
            kv.iter()
                .any(|k| k.key == "tickvault.complete" && k.value.as_deref() == Some("false"))
        );
    }
    // Once exported, the next run fetches that day again (and only it) and is complete.
    env.tardis
        .set_exported_until(EX, "2024-03-06T00:00:00Z".parse().unwrap());
    env.tardis.clear_requests();
    let done = bars(&env, &args(&[])).await;
    done.ok();
    assert_eq!(env.dataset_requests(), 2, "{:?}", env.tardis.dataset_paths());
    check(&out, "bars-1m", &m.expected(60_000_000, false, false));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_intervals_and_one_file_for_two_intervals_are_usage_errors() {
    let env = Env::new().await;
    for (args, text) in [
        (vec!["--interval", "7m"], "invalid interval '7m'"),
        (vec!["--interval", "1m", "--by", "arrival"], "invalid --by 'arrival'"),
        (vec![], "missing --interval"),
        (vec!["--interval", "1m,1h", "-o", "x.parquet"], "2 intervals"),
    ] {
        let mut full = vec!["-e", EX, "-s", "BTCUSDT", "--from", "2024-03-01"];
        full.extend(args);
        bars(&env, &full).await.code(2).stderr_has(text);
    }
    assert_eq!(env.tardis.requests().len(), 0);
}

/// README's DuckDB query, run as written (the path made absolute) over bars of the real
/// sample, agrees with the same figures computed from the bars themselves.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_duckdb_query_runs_over_the_output() {
    let python = std::env::var_os("TICKVAULT_TEST_PYTHON")
        .map(PathBuf::from)
        .expect("TICKVAULT_TEST_PYTHON must name a python with duckdb (scripts/test.sh installs it)");
    let readme = include_str!("../../README.md");
    let section = &readme[readme.find("## Bars").expect("a Bars section")..];
    let start = section.find("```sql\n").expect("a sql block") + 7;
    let sql = &section[start..start + section[start..].find("```").unwrap()];
    let env = Env::new().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real/nautilus_trader");
    let d = date("2020-02-22");
    let text = std::fs::read_to_string(root.join("trades.csv")).unwrap();
    env.tardis.add_csv(EX, "trades", d, "BTCUSDT", &text);
    for n in [d.yesterday().unwrap(), d.tomorrow().unwrap()] {
        env.tardis
            .add_gz(EX, "trades", n, "BTCUSDT", fake_tardis::generate::gzip(b""));
    }
    let out = env.out.join("bars");
    bars(
        &env,
        &[
            "-e",
            EX,
            "-s",
            "BTCUSDT",
            "--interval",
            "1m",
            "--from",
            "2020-02-22",
            "-o",
            out.to_str().unwrap(),
        ],
    )
    .await
    .ok();
    let file = out.join(format!("{EX}_bars-1m_BTCUSDT_2020-02-22_2020-02-23.parquet"));
    let readme_path = "bars/binance-futures_bars-1m_BTCUSDT+ETHUSDT_2024-03-01_2024-04-01.parquet";
    assert!(sql.contains(readme_path), "{sql}");
    let sql = sql.replace(readme_path, file.to_str().unwrap());
    let csv_out = env.dir.path().join("query.csv");
    let script = "import duckdb, sys\nduckdb.sql(sys.argv[1]).write_csv(sys.argv[2])";
    let out = std::process::Command::new(&python)
        .args(["-c", script, &sql, csv_out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Vec<String>> = std::fs::read_to_string(&csv_out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    // The sample spans three hours: three rows, busiest first, whose volumes add up to the
    // trades'.
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|r| r[0] == "BTCUSDT"));
    let volumes: Vec<f64> = rows.iter().map(|r| r[2].parse().unwrap()).collect();
    assert!(volumes.windows(2).all(|w| w[0] >= w[1]), "{volumes:?}");
    let volume: f64 = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(7).unwrap().parse::<f64>().unwrap())
        .sum();
    let got: f64 = volumes.iter().sum();
    assert!((got - volume).abs() < 1e-6 * volume, "{got} vs {volume}");
}
