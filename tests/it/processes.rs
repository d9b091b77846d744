//! Processes sharing a cache directory fetch each chunk once: two, then four, started together
//! on overlapping ranges send Tardis exactly one request per distinct chunk, and their outputs
//! are exact and identical where their requests are.

use std::time::Duration;

use crate::support::{Env, KEY, date, read_parquet, symbol_major};

const DAYS: [&str; 5] = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04", "2024-03-05"];
const SYMBOLS: [&str; 2] = ["BTCUSDT", "ETHUSDT"];

/// A fake Tardis slow to answer (so that the processes overlap), serving 2 symbols × 5 days;
/// the CSVs by day, then symbol.
async fn env() -> (Env, Vec<String>) {
    let env = Env::with(
        fake_tardis::FakeTardis::builder()
            .api_key(KEY)
            .first_byte_latency(Duration::from_millis(150)),
    )
    .await;
    let mut csvs = Vec::new();
    for (d, day) in DAYS.iter().enumerate() {
        for (s, sym) in SYMBOLS.iter().enumerate() {
            csvs.push(env.serve_generated("binance-futures", "trades", sym, date(day), 3_000, (d * 10 + s) as u64));
        }
    }
    (env, csvs)
}

/// Runs one process per `(from day index, to day index)` at once, each into its own output
/// directory; checks every output against the CSVs and returns the outputs' bytes and the
/// chunks each process fetched from Tardis.
async fn together(env: &Env, csvs: &[String], ranges: &[(usize, usize)]) -> (Vec<Vec<u8>>, u64) {
    let outs: Vec<std::path::PathBuf> = (0..ranges.len())
        .map(|i| env.dir.path().join(format!("out{i}")))
        .collect();
    let runs = futures::future::join_all(ranges.iter().zip(&outs).map(|((from, to), out)| {
        let to_day = date(DAYS[*to - 1]).tomorrow().unwrap().to_string();
        let args = [
            "-e".to_string(),
            "binance-futures".into(),
            "-s".into(),
            SYMBOLS.join(","),
            "--from".into(),
            DAYS[*from].into(),
            "--to".into(),
            to_day,
            "-o".into(),
            out.to_str().unwrap().into(),
            "--json".into(),
        ];
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            env.download(&refs).await
        }
    }))
    .await;
    let mut fetched = 0;
    let mut bytes = Vec::new();
    for (((from, to), out), run) in ranges.iter().zip(&outs).zip(&runs) {
        run.ok();
        fetched += run.json()["chunks"]["tardis"].as_u64().unwrap();
        let files = crate::support::files_under(out);
        assert_eq!(files.len(), 1, "{files:?}");
        let refs: Vec<&str> = csvs[from * 2..to * 2].iter().map(String::as_str).collect();
        assert!(
            read_parquet(&files[0]).1 == symbol_major(&refs, SYMBOLS.len()),
            "{}: rows",
            files[0].display()
        );
        bytes.push(std::fs::read(&files[0]).unwrap());
    }
    (bytes, fetched)
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::print_stdout)] // the figures, for the record (cargo test -- --nocapture)
async fn two_then_four_processes_on_overlapping_ranges_fetch_each_chunk_once() {
    // Two processes: days 1-3 and 2-4, 8 distinct chunks.
    let (env, csvs) = env().await;
    let (_, fetched) = together(&env, &csvs, &[(0, 3), (1, 4)]).await;
    let requests = env.dataset_requests();
    println!("2 processes: {requests} dataset requests for 8 distinct chunks");
    assert_eq!(requests, 8, "one request per distinct chunk");
    assert_eq!(
        fetched, 8,
        "each chunk fetched by one process, read from the cache by the other"
    );
    assert!(
        env.cache_files()
            .iter()
            .all(|p| !p.starts_with(env.cache.join("locks")))
    );

    // Four processes on a fresh cache: days 1-3, 2-4, 1-3 again and 3-5: 10 distinct chunks.
    let (env, csvs) = crate::processes::env().await;
    let (bytes, fetched) = together(&env, &csvs, &[(0, 3), (1, 4), (0, 3), (2, 5)]).await;
    let requests = env.dataset_requests();
    println!("4 processes: {requests} dataset requests for 10 distinct chunks");
    assert_eq!(requests, 10, "one request per distinct chunk");
    assert_eq!(fetched, 10);
    assert!(bytes[0] == bytes[2], "the same request gives byte-identical outputs");
    let verify = env.tickvault(&["cache", "verify", "--json"]).await;
    verify.ok();
    assert_eq!(verify.json()["ok"], 10);
}
