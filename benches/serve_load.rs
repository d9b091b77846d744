//! Load test of `tickvault serve`: the latency of a memory-tier hit and of a local-tier hit,
//! and the throughput of serving chunk files to 64 concurrent clients.
//!
//! The real server binary runs as a process over an in-process fake Tardis; the clients are
//! reqwest (HTTP/1.1, keep-alive, one connection per client) in this process. Every request
//! reads the whole body. Steps:
//!
//! 1. A server with the memory tier (`--memory-cache 1GiB`) fetches every chunk once (warm-up).
//! 2. Latency, memory hits: one client, sequential GETs of one chunk; p50/p99.
//! 3. A second server on the same cache directory with `--memory-cache 0`: every GET is a
//!    local hit (the chunk file is verified, then streamed from disk); p50/p99.
//! 4. Throughput: `--clients` (64) clients GET the chunks round-robin for `--seconds` from the
//!    memory tier: MB/s and requests/s served.
//!
//! Client and server share the machine: on 2 cores the clients take CPU the server could have
//! used, so the throughput is a floor.
//!
//! Run: `cargo bench --bench serve_load` (about a minute after the build), or
//! `cargo bench --bench serve_load -- --seconds 5 --rows 50000 --requests 200`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fake_tardis::FakeTardis;
use fake_tardis::generate::{DayParams, day_csv, gzip};
use jiff::civil::{Date, date};

const KEY: &str = "bench-key-0123456789";
const EXCHANGE: &str = "binance-futures";
const DAY: Date = date(2024, 3, 2);

struct Opts {
    /// Rows of each (large) chunk served in the throughput run.
    rows: usize,
    /// Large chunks (one symbol each).
    chunks: usize,
    /// Rows of the small chunk used for latency.
    small_rows: usize,
    /// Sequential requests per latency measurement.
    requests: usize,
    /// Clients of the throughput run.
    clients: usize,
    /// Length of the throughput run.
    seconds: u64,
}

impl Opts {
    fn parse() -> Opts {
        let mut o = Opts {
            rows: 200_000,
            chunks: 8,
            small_rows: 1_000,
            requests: 500,
            clients: 64,
            seconds: 10,
        };
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut i = 0;
        while i < args.len() {
            let value = || args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
            let known = match args[i].as_str() {
                "--rows" => value().map(|v| o.rows = v),
                "--chunks" => value().map(|v| o.chunks = v),
                "--small-rows" => value().map(|v| o.small_rows = v),
                "--requests" => value().map(|v| o.requests = v),
                "--clients" => value().map(|v| o.clients = v),
                "--seconds" => value().map(|v| o.seconds = v as u64),
                // cargo bench passes --bench; the test harness flags are ignored.
                _ => None,
            };
            i += if known.is_some() { 2 } else { 1 };
        }
        o
    }
}

/// A server process; killed when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(tardis: &FakeTardis, cache: &std::path::Path, memory: &str) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tickvault"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--memory-cache",
                memory,
                "--cache-dir",
            ])
            .arg(cache)
            .args(["--datasets-url", &tardis.datasets_url(), "--api-url", &tardis.api_url()])
            .env("TARDIS_API_KEY", KEY)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tickvault serve starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the server logs where it listens").unwrap();
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        // Keep draining the request log, as a journal would.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            url: format!("http://{addr}/"),
        }
    }

    fn chunk_url(&self, symbol: &str) -> String {
        format!("{}v1/{EXCHANGE}/trades/{symbol}/{DAY}.parquet", self.url)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_day(tardis: &FakeTardis, symbol: &str, rows: usize, seed: u64) {
    let csv = day_csv("trades", &DayParams::new(EXCHANGE, symbol, DAY, rows).with_seed(seed));
    tardis.add_gz(EXCHANGE, "trades", DAY, symbol, gzip(csv.as_bytes()));
}

/// GETs `url` and reads the whole body; returns its length.
async fn fetch(client: &reqwest::Client, url: &str) -> u64 {
    let r = client.get(url).send().await.expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.bytes().await.expect("body").len() as u64
}

/// Sequential GETs of `url`: (p50, p99, bytes per response).
async fn latency(url: &str, n: usize) -> (Duration, Duration, u64) {
    let client = reqwest::Client::new();
    let bytes = fetch(&client, url).await;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        fetch(&client, url).await;
        times.push(t.elapsed());
    }
    times.sort();
    (times[n / 2], times[(n * 99 / 100).min(n - 1)], bytes)
}

/// `clients` clients GET `urls` round-robin for `secs`: (bytes, requests, elapsed).
async fn throughput(urls: Arc<Vec<String>>, clients: usize, secs: u64) -> (u64, u64, Duration) {
    let bytes = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (urls, bytes, requests) = (urls.clone(), bytes.clone(), requests.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut i = c;
                while Instant::now() < until {
                    let n = fetch(&client, &urls[i % urls.len()]).await;
                    bytes.fetch_add(n, Ordering::Relaxed);
                    requests.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("a client task");
    }
    (
        bytes.load(Ordering::Relaxed),
        requests.load(Ordering::Relaxed),
        started.elapsed(),
    )
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[allow(clippy::print_stdout)] // a benchmark's report
fn main() {
    let o = Opts::parse();
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        // `cargo test --benches` / `cargo bench -- --list`: nothing to run quickly here.
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let tardis = FakeTardis::builder().api_key(KEY).start().await;
        let symbols: Vec<String> = (0..o.chunks).map(|i| format!("SYM{i}USDT")).collect();
        for (i, s) in symbols.iter().enumerate() {
            serve_day(&tardis, s, o.rows, i as u64);
        }
        serve_day(&tardis, "SMALLUSDT", o.small_rows, 99);
        let dir = tempfile::tempdir().expect("a temp dir");
        let cache = dir.path().join("edge");

        let memory = Server::start(&tardis, &cache, "1GiB");
        let urls: Vec<String> = symbols.iter().map(|s| memory.chunk_url(s)).collect();
        let warm = reqwest::Client::new();
        let mut file_bytes = 0;
        for u in urls.iter().chain([&memory.chunk_url("SMALLUSDT")]) {
            file_bytes += fetch(&warm, u).await;
        }
        println!(
            "tickvault serve load test: {} chunks of {} trades rows + 1 of {} ({:.1} MB of chunk files), {} requests per latency run",
            o.chunks,
            o.rows,
            o.small_rows,
            file_bytes as f64 / 1e6,
            o.requests
        );
        println!("| measurement | chunk file | p50 | p99 |");
        println!("|---|---|---|---|");
        for (what, server) in [("memory hit", &memory)] {
            for sym in ["SMALLUSDT", symbols[0].as_str()] {
                let (p50, p99, b) = latency(&server.chunk_url(sym), o.requests).await;
                println!("| {what} | {b} B | {} | {} |", ms(p50), ms(p99));
            }
        }
        let local = Server::start(&tardis, &cache, "0");
        for sym in ["SMALLUSDT", symbols[0].as_str()] {
            let (p50, p99, b) = latency(&local.chunk_url(sym), o.requests).await;
            println!("| local hit | {b} B | {} | {} |", ms(p50), ms(p99));
        }
        drop(local);

        let (bytes, requests, took) = throughput(Arc::new(urls), o.clients, o.seconds).await;
        let secs = took.as_secs_f64();
        println!(
            "\nthroughput, {} clients, memory tier, {:.1} s: {:.0} MB/s ({:.0} MiB/s), {:.0} requests/s, {} requests",
            o.clients,
            secs,
            bytes as f64 / secs / 1e6,
            bytes as f64 / secs / f64::from(1 << 20),
            requests as f64 / secs,
            requests
        );
        assert_eq!(
            tardis.dataset_requests().len(),
            o.chunks + 1,
            "one Tardis request per chunk, whatever the load"
        );
    });
}
