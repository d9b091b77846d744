use std::io::Read;

use super::*;

fn params(exchange: &str, symbol: &str, rows: usize) -> DayParams {
    DayParams::new(exchange, symbol, jiff::civil::date(2024, 1, 2), rows).with_seed(42)
}

/// A realistic symbol for each type (grouped OPTIONS for the options chain).
fn symbol_for(data_type: &str) -> (&'static str, &'static str) {
    match data_type {
        "options_chain" => ("deribit", "OPTIONS"),
        "book_ticker" | "book_snapshot_5" | "book_snapshot_25" => ("binance-futures", "BTCUSDT"),
        "quotes" => ("binance-futures", "ETHUSDT"),
        _ => ("deribit", "BTC-PERPETUAL"),
    }
}

/// The headers exactly as `shared/tardis-api.md` §2 gives them.
#[test]
fn headers_match_the_spec() {
    let keys = "exchange,symbol,timestamp,local_timestamp";
    let expect = [
        ("trades", format!("{keys},id,side,price,amount")),
        ("incremental_book_L2", format!("{keys},is_snapshot,side,price,amount")),
        ("quotes", format!("{keys},ask_amount,ask_price,bid_price,bid_amount")),
        (
            "book_ticker",
            format!("{keys},ask_amount,ask_price,bid_price,bid_amount"),
        ),
        (
            "derivative_ticker",
            format!(
                "{keys},funding_timestamp,funding_rate,predicted_funding_rate,open_interest,last_price,index_price,mark_price"
            ),
        ),
        ("liquidations", format!("{keys},id,side,price,amount")),
        (
            "options_chain",
            format!(
                "{keys},type,strike_price,expiration,open_interest,last_price,bid_price,bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,underlying_index,underlying_price,delta,gamma,vega,theta,rho"
            ),
        ),
        (
            "book_snapshot_5",
            format!(
                "{keys},asks[0].price,asks[0].amount,bids[0].price,bids[0].amount,asks[1].price,asks[1].amount,bids[1].price,bids[1].amount,asks[2].price,asks[2].amount,bids[2].price,bids[2].amount,asks[3].price,asks[3].amount,bids[3].price,bids[3].amount,asks[4].price,asks[4].amount,bids[4].price,bids[4].amount"
            ),
        ),
    ];
    for (t, h) in &expect {
        assert_eq!(header(t).as_deref(), Some(h.as_str()), "{t}");
    }
    let h25 = header("book_snapshot_25").unwrap();
    assert_eq!(h25.split(',').count(), 104);
    assert!(h25.ends_with(",asks[24].price,asks[24].amount,bids[24].price,bids[24].amount"));
    assert!(h25.starts_with(&header("book_snapshot_5").unwrap()));
    assert_eq!(header("book_snapshot_10"), None);
    for t in DATA_TYPES {
        assert!(header(t).is_some(), "{t}");
    }
}

/// Cross-checks against the spec document and the real samples when the shared folder sits
/// beside the repository (it does locally and in CI); silently skipped otherwise.
#[test]
fn headers_match_shared_doc_and_real_samples() {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if let Ok(doc) = std::fs::read_to_string(shared.join("tardis-api.md")) {
        for t in DATA_TYPES {
            let h = header(t).unwrap();
            if t.starts_with("book_snapshot") {
                continue; // the doc abbreviates these with "…"
            }
            assert!(doc.lines().any(|l| l == h), "{t}: {h} not in tardis-api.md");
        }
    }
    let real = shared.join("data/real/nautilus_trader");
    for (file, t) in [
        ("trades.csv", "trades"),
        ("quotes.csv", "quotes"),
        ("deribit_incremental_book_L2_BTC-PERPETUAL.csv", "incremental_book_L2"),
        ("binance-futures_book_snapshot_25_BTCUSDT.csv", "book_snapshot_25"),
        ("binance-futures_book_snapshot_5_BTCUSDT.csv", "book_snapshot_5"),
        ("deribit_derivative_ticker.csv", "derivative_ticker"),
    ] {
        if let Ok(s) = std::fs::read_to_string(real.join(file)) {
            assert_eq!(s.lines().next(), header(t).as_deref(), "{file}");
        }
    }
}

fn check_file(data_type: &str, p: &DayParams) {
    let csv = day_csv(data_type, p);
    assert!(csv.ends_with('\n'), "{data_type}: trailing newline");
    assert!(!csv.contains('\r'));
    let mut lines = csv.lines();
    let head = lines.next().unwrap();
    assert_eq!(Some(head.to_owned()), header(data_type));
    let cols = head.split(',').count();
    let start = day_start_us(p.date);
    let end = start + DAY_US;
    let mut last_local = start;
    let mut n = 0;
    for line in lines {
        n += 1;
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), cols, "{data_type}: {line}");
        assert_eq!(cells[0], p.exchange);
        if data_type != "options_chain" {
            assert_eq!(cells[1], p.symbol);
        }
        let ts: i64 = cells[2].parse().unwrap();
        let local: i64 = cells[3].parse().unwrap();
        assert!(local >= last_local, "{data_type}: local_timestamp decreased at {line}");
        assert!(local < end, "{data_type}: past the day: {line}");
        assert!(
            ts <= local && ts > local - 60_000_000,
            "{data_type}: timestamp {ts} vs {local}"
        );
        last_local = local;
        for c in &cells[2..] {
            if c.parse::<f64>().is_ok() {
                // Plain decimals only: digits, one optional '-' and '.', no "1e-05".
                assert!(
                    c.trim_start_matches('-')
                        .chars()
                        .all(|ch| ch.is_ascii_digit() || ch == '.'),
                    "{data_type}: {c:?} in {line}"
                );
                // Shortest form: no trailing zeros after a point, no "x.0", no "-0".
                if c.contains('.') {
                    assert!(!c.ends_with('0') && !c.ends_with('.'), "{data_type}: {c:?} in {line}");
                }
                assert!(*c != "-0" && !c.starts_with("00"), "{data_type}: {c:?}");
            }
        }
    }
    assert_eq!(n, p.rows, "{data_type}");
}

#[test]
fn every_type_is_well_formed() {
    for t in DATA_TYPES {
        let (ex, sym) = symbol_for(t);
        for rows in [0, 1, 7, 3_000] {
            check_file(t, &params(ex, sym, rows));
        }
    }
    // Other venues and coins take other branches (contracts, uuids, funding columns).
    for (ex, sym) in [
        ("bitmex", "XBTUSD"),
        ("okex-swap", "BTC-USDT-SWAP"),
        ("binance", "SOLUSDT"),
        ("binance-futures", "ETHUSDT"),
    ] {
        for t in [
            "trades",
            "derivative_ticker",
            "liquidations",
            "incremental_book_L2",
            "quotes",
        ] {
            check_file(t, &params(ex, sym, 2_000));
        }
    }
}

#[test]
fn no_exponent_notation_anywhere() {
    for t in DATA_TYPES {
        let (ex, sym) = symbol_for(t);
        let csv = day_csv(t, &params(ex, sym, 5_000));
        for line in csv.lines().skip(1) {
            for cell in line.split(',').skip(2) {
                let numeric_exponent = cell.contains(['e', 'E'])
                    && cell
                        .trim_start_matches('-')
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_digit())
                    && cell
                        .chars()
                        .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'));
                assert!(!numeric_exponent, "{t}: {cell} in {line}");
            }
        }
    }
}

#[test]
fn deterministic_per_params() {
    for t in DATA_TYPES {
        let (ex, sym) = symbol_for(t);
        let p = params(ex, sym, 500);
        assert_eq!(day_csv(t, &p), day_csv(t, &p), "{t}");
        assert_ne!(day_csv(t, &p), day_csv(t, &p.clone().with_seed(43)), "{t}");
    }
}

#[test]
fn trades_look_like_trades() {
    let p = params("binance-futures", "BTCUSDT", 200_000);
    let csv = day_csv("trades", &p);
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    // Consecutive ids.
    let first: u64 = rows[0][4].parse().unwrap();
    for (i, r) in rows.iter().enumerate() {
        assert_eq!(r[4].parse::<u64>().unwrap(), first + i as u64);
        assert!(r[5] == "buy" || r[5] == "sell");
    }
    // Bursts share timestamps; exchange time is not monotonic; sometimes equals local.
    let same_ts = rows.windows(2).filter(|w| w[0][2] == w[1][2]).count();
    assert!(same_ts > rows.len() / 10, "{same_ts}");
    let backwards = rows
        .windows(2)
        .filter(|w| w[1][2].parse::<i64>().unwrap() < w[0][2].parse::<i64>().unwrap())
        .count();
    assert!(backwards > 0);
    // Spread over the day, not squeezed into its first minutes.
    let start = day_start_us(p.date);
    let last_local: i64 = rows.last().unwrap()[3].parse().unwrap();
    assert!(last_local - start > DAY_US * 9 / 10);
    // Heavy-tailed sizes: many small, a few large.
    let amounts: Vec<f64> = rows.iter().map(|r| r[7].parse().unwrap()).collect();
    let small = amounts.iter().filter(|&&a| a <= 0.01).count();
    let max = amounts.iter().cloned().fold(0.0, f64::max);
    assert!(small > rows.len() / 20 && max > 20.0, "small {small} max {max}");
    // Prices on the 0.1 grid, formatted from integers.
    for r in &rows {
        let frac = r[6].split('.').nth(1).unwrap_or("");
        assert!(frac.len() <= 1, "{}", r[6]);
    }
}

#[test]
fn bitmex_trades_have_uuid_ids() {
    let csv = day_csv("trades", &params("bitmex", "XBTUSD", 50));
    for line in csv.lines().skip(1) {
        let id = line.split(',').nth(4).unwrap();
        let parts: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
        assert!(
            id.chars()
                .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
    }
}

#[test]
fn l2_starts_with_a_snapshot_then_updates() {
    let csv = day_csv("incremental_book_L2", &params("deribit", "BTC-PERPETUAL", 5_000));
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert!(rows[..50].iter().all(|r| r[4] == "true" && r[3] == rows[0][3]));
    assert_eq!(rows[..50].iter().filter(|r| r[5] == "ask").count(), 25);
    assert_eq!(rows[..50].iter().filter(|r| r[5] == "bid").count(), 25);
    assert!(
        rows[50..]
            .iter()
            .all(|r| r[4] == "false" && (r[5] == "bid" || r[5] == "ask"))
    );
    assert!(rows[50..].iter().any(|r| r[7] == "0"), "deletions");
    let shared_local = rows[50..].windows(2).filter(|w| w[0][3] == w[1][3]).count();
    assert!(shared_local > 100, "multi-row messages");
    // Replaying the book never crosses it.
    let mut bids = std::collections::BTreeMap::<i64, String>::new();
    let mut asks = std::collections::BTreeMap::<i64, String>::new();
    for r in &rows {
        let price = (r[6].parse::<f64>().unwrap() * 10.0).round() as i64;
        let book = if r[5] == "bid" { &mut bids } else { &mut asks };
        if r[7] == "0" {
            assert!(book.remove(&price).is_some(), "deleting a missing level {r:?}");
        } else {
            book.insert(price, r[7].to_owned());
        }
        if let (Some((b, _)), Some((a, _))) = (bids.last_key_value(), asks.first_key_value()) {
            assert!(b < a, "crossed book at {r:?}");
        }
    }
}

#[test]
fn snapshots_are_ordered_and_sometimes_thin() {
    for depth in [5usize, 25] {
        let t = format!("book_snapshot_{depth}");
        let csv = day_csv(&t, &params("binance-futures", "BTCUSDT", 10_000));
        let mut thin = 0;
        for line in csv.lines().skip(1) {
            let cells: Vec<&str> = line.split(',').collect();
            let level = |side: usize, i: usize| -> Option<f64> { cells[4 + 4 * i + 2 * side].parse().ok() };
            let (asks, bids): (Vec<_>, Vec<_>) = (
                (0..depth).map_while(|i| level(0, i)).collect(),
                (0..depth).map_while(|i| level(1, i)).collect(),
            );
            assert!(asks.windows(2).all(|w| w[0] < w[1]), "{line}");
            assert!(bids.windows(2).all(|w| w[0] > w[1]), "{line}");
            assert!(bids[0] < asks[0], "{line}");
            if asks.len() < depth || bids.len() < depth {
                thin += 1;
            }
        }
        assert!(thin > 0 && thin < 2_000, "{t}: {thin} thin rows");
    }
}

#[test]
fn quotes_sometimes_miss_a_side() {
    let csv = day_csv("quotes", &params("binance-futures", "BTCUSDT", 50_000));
    let mut empty_sides = 0;
    for line in csv.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        assert_eq!(c[4].is_empty(), c[5].is_empty());
        assert_eq!(c[6].is_empty(), c[7].is_empty());
        if c[4].is_empty() || c[6].is_empty() {
            empty_sides += 1;
        } else {
            assert!(c[6].parse::<f64>().unwrap() < c[5].parse::<f64>().unwrap(), "{line}");
        }
    }
    assert!(empty_sides > 0 && empty_sides < 500, "{empty_sides}");
}

#[test]
fn derivative_ticker_is_sparse_and_funds_every_8h() {
    let csv = day_csv("derivative_ticker", &params("binance-futures", "BTCUSDT", 5_000));
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().any(|r| r.iter().any(|c| c.is_empty())));
    for r in rows.iter().filter(|r| !r[4].is_empty()) {
        let f: i64 = r[4].parse().unwrap();
        let ts: i64 = r[2].parse().unwrap();
        assert_eq!(f % (8 * 3_600_000_000), 0);
        assert!(f > ts && f - ts <= 8 * 3_600_000_000);
    }
    let deribit = day_csv("derivative_ticker", &params("deribit", "BTC-PERPETUAL", 500));
    assert!(deribit.lines().skip(1).all(|l| {
        let c: Vec<&str> = l.split(',').collect();
        c[4].is_empty() && c[6].is_empty()
    }));
}

#[test]
fn options_chain_varies_symbols() {
    let csv = day_csv("options_chain", &params("deribit", "OPTIONS", 5_000));
    let mut symbols = std::collections::BTreeSet::new();
    let (mut puts, mut calls, mut empty_bids, mut syn) = (0, 0, 0, 0);
    for line in csv.lines().skip(1) {
        let c: Vec<&str> = line.split(',').collect();
        symbols.insert(c[1].to_owned());
        let parts: Vec<&str> = c[1].split('-').collect();
        assert_eq!(parts.len(), 4, "{}", c[1]);
        assert_eq!(c[5], parts[2], "strike");
        match c[4] {
            "put" => {
                puts += 1;
                assert_eq!(parts[3], "P");
            }
            "call" => {
                calls += 1;
                assert_eq!(parts[3], "C");
            }
            other => panic!("type {other}"),
        }
        assert!(c[17] == format!("{}-{}", parts[0], parts[1]) || c[17] == format!("SYN.{}-{}", parts[0], parts[1]));
        syn += usize::from(c[17].starts_with("SYN."));
        empty_bids += usize::from(c[9].is_empty() || c[11].is_empty());
        let expiration: i64 = c[6].parse().unwrap();
        assert!(expiration > c[3].parse::<i64>().unwrap());
    }
    assert!(symbols.len() > 100, "{}", symbols.len());
    assert!(puts > 1_000 && calls > 1_000);
    assert!(empty_bids > 0 && syn > 0);
}

#[test]
fn gzip_round_trips_including_members() {
    let csv = day_csv("trades", &params("deribit", "BTC-PERPETUAL", 2_000));
    for parts in [0, 1, 3, 10] {
        let gz = gzip_members(csv.as_bytes(), parts);
        if parts > 1 {
            let members = gz.windows(3).filter(|w| w == &[0x1f, 0x8b, 8]).count();
            assert!(members >= parts, "{members}");
        }
        let mut out = String::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, csv);
    }
    assert_eq!(gzip(csv.as_bytes()), gzip(csv.as_bytes()));
}

#[test]
fn streamed_gzip_matches_day_csv() {
    let p = params("deribit", "BTC-PERPETUAL", 30_000);
    let csv = day_csv("trades", &p);
    for members in [1, 4] {
        let gz = write_day_gz("trades", &p, members, Some("fake-tardis test"), Vec::new()).unwrap();
        let mut out = String::new();
        let mut dec = flate2::read::MultiGzDecoder::new(&gz[..]);
        dec.read_to_string(&mut out).unwrap();
        assert_eq!(out, csv);
        // Every member but the last ends on a line boundary.
        let mut single = flate2::read::GzDecoder::new(&gz[..]);
        let mut first = String::new();
        single.read_to_string(&mut first).unwrap();
        assert!(first.ends_with('\n'));
        assert_eq!(
            single.header().and_then(|h| h.comment()),
            Some(&b"fake-tardis test"[..])
        );
        if members == 4 {
            assert_eq!(first.lines().count(), 30_001usize.div_ceil(4));
        }
    }
    let empty = write_day_gz("trades", &params("deribit", "X", 0), 3, None, Vec::new()).unwrap();
    let mut out = String::new();
    flate2::read::MultiGzDecoder::new(&empty[..])
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, format!("{}\n", header("trades").unwrap()));
    assert!(write_day_gz("nope", &p, 1, None, Vec::new()).is_err());
}

#[test]
#[ignore = "prints samples for eyeballing: cargo test -p fake-tardis print_samples -- --ignored --nocapture"]
fn print_samples() {
    for t in DATA_TYPES {
        let (ex, sym) = symbol_for(t);
        let csv = day_csv(t, &params(ex, sym, 12));
        println!("== {t}\n{csv}");
    }
    for (ex, sym) in [("bitmex", "XBTUSD"), ("okex-swap", "BTC-USDT-SWAP")] {
        println!("{}", day_csv("trades", &params(ex, sym, 5)));
        println!("{}", day_csv("derivative_ticker", &params(ex, sym, 5)));
        println!("{}", day_csv("liquidations", &params(ex, sym, 5)));
    }
}

#[test]
fn rewound_days_step_back_once_and_change_nothing_else() {
    let back = 3_600_000_000;
    for ty in DATA_TYPES {
        let (ex, sym) = symbol_for(ty);
        let p = params(ex, sym, 2_000);
        let plain = day_csv(ty, &p);
        let rewound = day_csv_rewound(
            ty,
            &p,
            Rewind {
                at_row: 1_000,
                back_us: back,
            },
        );
        let a: Vec<&str> = plain.lines().collect();
        let b: Vec<&str> = rewound.lines().collect();
        assert_eq!(a.len(), b.len(), "{ty}");
        assert_eq!(a[0], b[0]);
        let local = |l: &str| -> i64 { l.split(',').nth(3).unwrap().parse().unwrap() };
        let mut backwards = Vec::new();
        for i in 1..a.len() {
            let (ca, cb): (Vec<&str>, Vec<&str>) = (a[i].split(',').collect(), b[i].split(',').collect());
            let row = i - 1;
            let expect = if row >= 1_000 { local(a[i]) - back } else { local(a[i]) };
            assert_eq!(local(b[i]), expect, "{ty} row {row}");
            for c in (0..ca.len()).filter(|&c| c != 3) {
                assert_eq!(ca[c], cb[c], "{ty} row {row} column {c}");
            }
            if i > 1 && local(b[i]) < local(b[i - 1]) {
                backwards.push(row);
            }
        }
        assert_eq!(backwards, [1_000], "{ty}: exactly one step back");
    }
    // Never before midnight.
    let p = params("deribit", "BTC-PERPETUAL", 100);
    let csv = day_csv_rewound(
        "trades",
        &p,
        Rewind {
            at_row: 1,
            back_us: i64::MAX / 2,
        },
    );
    let midnight = day_start_us(p.date);
    assert!(
        csv.lines()
            .skip(2)
            .all(|l| l.split(',').nth(3).unwrap() == midnight.to_string())
    );
}
