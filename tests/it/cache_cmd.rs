//! `tickvault cache stats | verify | prune`, and two processes sharing one cache directory.

use std::time::{Duration, SystemTime};

use crate::support::{Env, csv_rows, date, read_parquet, symbol_major};

fn serve(env: &Env, days: &[&str], rows: usize) -> Vec<String> {
    let mut csvs = Vec::new();
    for (d, day) in days.iter().enumerate() {
        for (s, sym) in ["BTCUSDT", "ETHUSDT"].iter().enumerate() {
            csvs.push(env.serve_generated("binance-futures", "trades", sym, date(day), rows, (d * 10 + s) as u64));
        }
    }
    csvs
}

async fn fill(env: &Env) {
    serve(env, &["2024-03-01", "2024-03-02", "2024-03-03"], 1_000);
    env.serve_generated("deribit", "quotes", "BTC-PERPETUAL", date("2024-03-01"), 500, 1);
    env.download(&[
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT,ETHUSDT",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-04",
        "-o",
        env.out.to_str().unwrap(),
    ])
    .await
    .ok();
    env.download(&[
        "-e",
        "deribit",
        "-s",
        "BTC-PERPETUAL",
        "-t",
        "quotes",
        "--from",
        "2024-03-01",
        "-o",
        env.out.to_str().unwrap(),
    ])
    .await
    .ok();
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_count_entries_and_bytes_per_exchange_and_data_type() {
    let env = Env::new().await;
    fill(&env).await;
    let run = env.tickvault(&["cache", "stats", "--json"]).await;
    run.ok();
    let s = run.json();
    assert_eq!(s["local"]["entries"], 7);
    assert_eq!(s["local"]["groups"]["binance-futures/trades"]["entries"], 6);
    assert_eq!(s["local"]["groups"]["deribit/quotes"]["entries"], 1);
    let on_disk: u64 = env
        .cache_entries()
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(s["local"]["bytes"], on_disk);
    let text = env.tickvault(&["cache", "stats"]).await;
    text.ok();
    assert!(
        text.stdout.contains("binance-futures/trades: 6 entries"),
        "{}",
        text.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_include_a_listable_remote() {
    let env = Env::new().await;
    serve(&env, &["2024-03-01"], 500);
    let remote = env.dir.path().join("remote");
    let url = format!("file://{}", remote.display());
    env.download(&[
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT,ETHUSDT",
        "--from",
        "2024-03-01",
        "-o",
        env.out.to_str().unwrap(),
        "--remote-cache",
        &url,
    ])
    .await
    .ok();
    let s = env
        .tickvault(&["cache", "stats", "--json", "--remote-cache", &url])
        .await;
    s.ok();
    assert_eq!(s.json()["remote"]["entries"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_and_removes_bad_entries_and_the_next_run_refetches_them() {
    let env = Env::new().await;
    fill(&env).await;
    let entries = env.cache_entries();
    let victim = entries
        .iter()
        .find(|p| p.to_str().unwrap().contains("ETHUSDT/2024-03-02"))
        .unwrap()
        .clone();
    let mut b = std::fs::read(&victim).unwrap();
    let n = b.len();
    b[n - 20] ^= 0xff; // inside the footer
    std::fs::write(&victim, b).unwrap();
    let run = env.tickvault(&["cache", "verify", "--json"]).await;
    run.ok();
    let r = run.json();
    assert_eq!(r["checked"], 7);
    assert_eq!(r["ok"], 6);
    assert_eq!(r["removed"][0], "binance-futures/trades/ETHUSDT/2024-03-02");
    assert!(!victim.exists());
    let before = env.dataset_requests();
    env.download(&[
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT,ETHUSDT",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-04",
        "-o",
        env.out.to_str().unwrap(),
    ])
    .await
    .ok();
    assert_eq!(env.dataset_requests() - before, 1);
}

fn age(path: &std::path::Path, days: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_removes_old_entries_then_least_recently_used_ones() {
    let env = Env::new().await;
    fill(&env).await;
    let entries = env.cache_entries();
    // The deribit entry was last used 40 days ago; the trades of 2024-03-01 ten days ago.
    for p in &entries {
        let s = p.to_str().unwrap();
        if s.contains("deribit") {
            age(p, 40);
        } else if s.contains("2024-03-01") {
            age(p, 10);
        }
    }
    let run = env
        .tickvault(&["cache", "prune", "--older-than", "30d", "--json"])
        .await;
    run.ok();
    assert_eq!(run.json()["removed_entries"], 1);
    assert!(
        !env.cache_entries()
            .iter()
            .any(|p| p.to_str().unwrap().contains("deribit"))
    );

    // Keep about half of the remaining bytes: the least recently used (2024-03-01) go first.
    let sizes: Vec<u64> = env
        .cache_entries()
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    let total: u64 = sizes.iter().sum();
    let max = total - 1;
    let run = env
        .tickvault(&["cache", "prune", "--max-size", &max.to_string(), "--json"])
        .await;
    run.ok();
    assert_eq!(run.json()["removed_entries"], 1);
    let left: Vec<String> = env.cache_entries().iter().map(|p| p.display().to_string()).collect();
    assert_eq!(left.iter().filter(|p| p.contains("2024-03-01")).count(), 1, "{left:?}");

    let run = env.tickvault(&["cache", "prune", "--max-size", "0"]).await;
    run.ok();
    assert!(env.cache_entries().is_empty());
    assert!(run.stdout.contains("removed 5 entries"), "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_processes_sharing_a_cache_directory_never_corrupt_it() {
    let env = Env::with(
        fake_tardis::FakeTardis::builder()
            .api_key(crate::support::KEY)
            .first_byte_latency(Duration::from_millis(50)),
    )
    .await;
    let days = ["2024-03-01", "2024-03-02", "2024-03-03", "2024-03-04"];
    let csvs = serve(&env, &days, 5_000);
    // Two cron jobs with overlapping ranges, at the same time, same cache.
    let out1 = env.dir.path().join("o1");
    let out2 = env.dir.path().join("o2");
    let args1 = [
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT,ETHUSDT",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-04",
        "-o",
        out1.to_str().unwrap(),
    ];
    let args2 = [
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT,ETHUSDT",
        "--from",
        "2024-03-02",
        "--to",
        "2024-03-05",
        "-o",
        out2.to_str().unwrap(),
    ];
    let (a, b) = tokio::join!(env.download(&args1), env.download(&args2));
    a.ok();
    b.ok();
    let refs: Vec<&str> = csvs.iter().map(String::as_str).collect();
    let (_, rows1) = read_parquet(&out1.join("binance-futures_trades_BTCUSDT+ETHUSDT_2024-03-01_2024-03-04.parquet"));
    let (_, rows2) = read_parquet(&out2.join("binance-futures_trades_BTCUSDT+ETHUSDT_2024-03-02_2024-03-05.parquet"));
    assert!(rows1 == symbol_major(&refs[..6], 2));
    assert!(rows2 == symbol_major(&refs[2..], 2));
    let verify = env.tickvault(&["cache", "verify", "--json"]).await;
    verify.ok();
    assert_eq!(verify.json()["ok"], 8);
    assert!(
        env.cache_files().iter().all(|p| !p.to_str().unwrap().ends_with(".tmp")),
        "no temporary files left"
    );
    // While a download runs, a prune waits for it instead of deleting its inputs.
    env.tardis.set_first_byte_latency(Duration::from_millis(800));
    let out3 = env.dir.path().join("o3");
    let more = env.serve_generated("binance-futures", "trades", "BTCUSDT", date("2024-03-05"), 1_000, 77);
    let args3 = [
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT",
        "--from",
        "2024-03-04",
        "--to",
        "2024-03-06",
        "-o",
        out3.to_str().unwrap(),
    ];
    let (c, p) = tokio::join!(env.download(&args3), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        env.tickvault(&["cache", "prune", "--max-size", "0"]).await
    });
    c.ok();
    p.ok();
    let (_, rows3) = read_parquet(&out3.join("binance-futures_trades_BTCUSDT_2024-03-04_2024-03-06.parquet"));
    assert_eq!(rows3.len(), 5_000 + csv_rows(&more).1.len());
}
