//! `tickvault serve` through the real binaries: the server and its clients are processes, the
//! server pulls from the fake Tardis. One fetch per chunk for a whole team, clients without a
//! key, tokens, paths that are not keys, clients and servers that die, unexported days, the
//! metadata proxy and the metrics, checked against the requests made; `/healthz`, the limits
//! on uploads, response time and connections, and the JSON request log.

use std::collections::{BTreeMap, HashSet};
use std::io::{Cursor, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType as ArrowType, TimeUnit};
use fake_tardis::{FakeTardis, Fault};
use tickvault::cache::chunk_file::{ChunkFileWriter, read_meta};
use tickvault::model::{ChunkKey, DataType};

use crate::support::edge::{Edge, raw};
use crate::support::{Env, KEY, Run, date, files_under, run};
use crate::tiers::make_chunk;

const EX: &str = "binance-futures";
const SYMBOLS: [&str; 2] = ["BTCUSDT", "ETHUSDT"];
const READ: &str = "team-read-token-5f0c2a9e1b";
const WRITE: &str = "team-write-token-8d41e77c03";

/// Serves `days` (2024-03-DD) of trades for both symbols; returns the distinct chunks.
fn serve_days(env: &Env, days: std::ops::Range<u32>, rows: usize) -> usize {
    for d in days.clone() {
        for (s, sym) in SYMBOLS.iter().enumerate() {
            let day = date(&format!("2024-03-{d:02}"));
            env.serve_generated(EX, "trades", sym, day, rows, u64::from(d) * 10 + s as u64);
        }
    }
    days.len() * SYMBOLS.len()
}

/// A client of `edge`: `download` of both symbols over `[from, to)` into its own cache and
/// output, read-only, with no key unless `key`, with `token` as its remote cache token.
fn client(env: &Env, edge: &Edge, name: &str, from: &str, to: &str, token: Option<&str>) -> std::process::Command {
    let cache = env.dir.path().join(format!("{name}-cache"));
    let out = env.dir.path().join(format!("{name}-out"));
    let mut c = env.cmd();
    c.args([
        "download",
        "-e",
        EX,
        "-s",
        &SYMBOLS.join(","),
        "--from",
        from,
        "--to",
        to,
        "--json",
    ])
    .args(["--remote-cache", &edge.url, "--api-url", &edge.api_url()])
    // A fetch through the edge may queue behind others on a busy test machine.
    .args(["--remote-cache-timeout", "60s"])
    .arg("--cache-dir")
    .arg(cache)
    .arg("-o")
    .arg(out);
    if let Some(t) = token {
        c.env("TICKVAULT_REMOTE_CACHE_TOKEN", t);
    }
    c
}

fn out_file(env: &Env, name: &str, from: &str, to: &str) -> PathBuf {
    env.dir
        .path()
        .join(format!("{name}-out"))
        .join(format!("{EX}_trades_{}_{from}_{to}.parquet", SYMBOLS.join("+")))
}

fn read_only(mut c: std::process::Command) -> std::process::Command {
    c.args(["--remote-cache-mode", "read-only"]);
    c
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::print_stderr)] // prints the single-flight figures (see below)
async fn eight_clients_without_keys_cost_one_tardis_request_per_chunk() {
    // Latency on every Tardis answer, so clients asking for one chunk overlap.
    let env = Env::with(
        FakeTardis::builder()
            .api_key(KEY)
            .first_byte_latency(Duration::from_millis(300)),
    )
    .await;
    let distinct = serve_days(&env, 2..8, 2_000);
    let edge = Edge::start(&env, &env.dir.path().join("edge"), &[], &[("TARDIS_API_KEY", KEY)]);

    // Eight clients started together over overlapping three-day windows, no key at all.
    let windows: Vec<(String, String)> = (0..8)
        .map(|i| {
            let from = 2 + i % 4;
            (format!("2024-03-{from:02}"), format!("2024-03-{:02}", from + 3))
        })
        .collect();
    let runs: Vec<Run> = futures::future::join_all(
        windows
            .iter()
            .enumerate()
            .map(|(i, (from, to))| run(read_only(client(&env, &edge, &format!("c{i}"), from, to, None)))),
    )
    .await;
    let mut gets = 0;
    let mut bytes = 0;
    for r in &runs {
        let s = r.ok().json();
        assert_eq!(s["chunks"]["remote"], 6, "{}", r.stderr);
        assert_eq!(s["tardis"]["requests"], 0, "no client talks to Tardis");
        gets += 6;
        bytes += s["bytes_from_cache"].as_u64().unwrap();
    }

    // One request to Tardis per distinct chunk, for the whole team.
    let requested: Vec<String> = env.tardis.dataset_requests().into_iter().map(|r| r.path).collect();
    assert_eq!(requested.len(), distinct, "{requested:#?}");
    assert_eq!(requested.iter().collect::<HashSet<_>>().len(), distinct);
    assert!(
        env.tardis
            .dataset_requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some(&format!("Bearer {KEY}"))),
        "the server fetches with its key"
    );

    // The metrics agree with the requests made.
    let m = edge.metrics().await;
    let hits: f64 = ["memory", "local", "remote", "tardis"]
        .iter()
        .map(|t| m[&format!("tickvault_chunk_hits_total{{tier=\"{t}\"}}")])
        .sum();
    let joins = m["tickvault_singleflight_joins_total"];
    assert_eq!(hits + joins, gets as f64, "every chunk GET is a lookup or a join");
    assert_eq!(m["tickvault_chunk_hits_total{tier=\"tardis\"}"], distinct as f64);
    assert_eq!(m["tickvault_tardis_requests_total"], requested.len() as f64);
    assert_eq!(
        m["tickvault_bytes_served_total"], bytes as f64,
        "what the clients got from the cache"
    );
    let metadata = m["tickvault_metadata_requests_total{cache=\"hit\"}"]
        + m.get("tickvault_metadata_requests_total{cache=\"miss\"}")
            .copied()
            .unwrap_or(0.0);
    assert_eq!(
        m["tickvault_http_responses_total{code=\"200\"}"],
        gets as f64 + metadata,
        "chunk GETs and the clients' metadata checks"
    );
    assert_eq!(m["tickvault_requests_in_flight"], 0.0);
    assert!(!m.keys().any(|k| k.starts_with("tickvault_errors_total")), "{m:?}");
    // The figures for the record: `cargo test --test it serve::eight -- --nocapture`.
    eprintln!(
        "single-flight: {gets} chunk GETs from 8 clients, {distinct} distinct chunks, {} Tardis requests; \
         lookups by tier: memory {} local {} tardis {}; joins {joins}",
        requested.len(),
        m["tickvault_chunk_hits_total{tier=\"memory\"}"],
        m["tickvault_chunk_hits_total{tier=\"local\"}"],
        m["tickvault_chunk_hits_total{tier=\"tardis\"}"],
    );

    // Each client's output is byte-identical to a direct pull of the same window.
    for (from, to) in &windows[..4] {
        let direct = env.dir.path().join(format!("direct-{from}"));
        env.download(&[
            "-e",
            EX,
            "-s",
            &SYMBOLS.join(","),
            "--from",
            from,
            "--to",
            to,
            "--cache-dir",
            env.dir.path().join("direct-cache").to_str().unwrap(),
            "-o",
            direct.to_str().unwrap(),
        ])
        .await
        .ok();
        let name = format!("{EX}_trades_{}_{from}_{to}.parquet", SYMBOLS.join("+"));
        let expected = std::fs::read(direct.join(name)).unwrap();
        for (i, w) in windows.iter().enumerate().filter(|(_, w)| w.0 == *from) {
            let got = std::fs::read(out_file(&env, &format!("c{i}"), &w.0, &w.1)).unwrap();
            assert!(got == expected, "client c{i}'s output differs from a direct pull");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_exchanges_metadata_is_proxied_and_kept() {
    let env = Env::new().await;
    serve_days(&env, 2..3, 100);
    let edge = Edge::start(&env, &env.dir.path().join("edge"), &[], &[("TARDIS_API_KEY", KEY)]);
    let direct = reqwest::get(format!("{}/exchanges/{EX}", env.tardis.api_url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let before = env.tardis.api_requests().len();
    for expected_cache in ["miss", "hit", "hit"] {
        let r = reqwest::get(format!("{}/exchanges/{EX}", edge.api_url()))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["tickvault-metadata-cache"], expected_cache);
        assert_eq!(r.text().await.unwrap(), direct, "the same document as the metadata API");
    }
    let list = reqwest::get(format!("{}/exchanges", edge.api_url())).await.unwrap();
    assert_eq!(list.status(), 200);
    let unknown = reqwest::get(format!("{}/exchanges/no-such-exchange", edge.api_url()))
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404, "upstream's 404 passes through");
    let bad = reqwest::get(format!("{}/exchanges/Bad%20Id", edge.api_url()))
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(
        env.tardis.api_requests().len() - before,
        3,
        "one upstream request per path, whatever the clients ask"
    );
    assert_eq!(edge.metric("tickvault_metadata_requests_total{cache=\"hit\"}").await, 2);
    assert_eq!(
        edge.metric("tickvault_metadata_requests_total{cache=\"miss\"}").await,
        3
    );
    // A client without a key validates against the proxy and gets its day from the edge.
    let run_ = run(read_only(client(&env, &edge, "k", "2024-03-02", "2024-03-03", None))).await;
    assert_eq!(run_.ok().json()["chunks"]["remote"], 2);
}

/// A chunk PUT to the edge: its status.
async fn put(edge: &Edge, key: &ChunkKey, token: Option<&str>, body: Vec<u8>) -> u16 {
    let mut req = reqwest::Client::new()
        .put(format!("{}{}", edge.url, key.cache_path()))
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn get_status(edge: &Edge, key: &ChunkKey, token: Option<&str>) -> u16 {
    let mut req = reqwest::Client::new().get(format!("{}{}", edge.url, key.cache_path()));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_decide_who_reads_and_who_contributes() {
    let env = Env::new().await;
    serve_days(&env, 2..6, 1_000);
    let tokens = env.dir.path().join("tokens");
    std::fs::write(&tokens, format!("# the team\nread {READ}\nwrite {WRITE}\n")).unwrap();
    // A server without a Tardis key: what it has, clients contributed.
    let edge = Edge::start(
        &env,
        &env.dir.path().join("edge"),
        &["--tokens-file", tokens.to_str().unwrap()],
        &[],
    );
    let k = ChunkKey::new(EX, DataType::Trades, "BTCUSDT", date("2024-03-02"));
    assert_eq!(get_status(&edge, &k, None).await, 401, "reads need a token");
    assert_eq!(get_status(&edge, &k, Some("not-a-team-token-123")).await, 401);
    assert_eq!(
        get_status(&edge, &k, Some(READ)).await,
        404,
        "no key, nothing cached: a miss"
    );

    // A client with its own key and the write token contributes what it fetched.
    let mut a = client(&env, &edge, "a", "2024-03-02", "2024-03-04", Some(WRITE));
    a.args(["--api-key", KEY]);
    let a = run(a).await;
    let sa = a.ok().json();
    assert_eq!(
        (sa["chunks"]["tardis"].as_u64(), sa["uploads"]["uploaded"].as_u64()),
        (Some(4), Some(4))
    );
    // A client with the read token and no key gets them from the edge.
    let b = run(read_only(client(
        &env,
        &edge,
        "b",
        "2024-03-02",
        "2024-03-04",
        Some(READ),
    )))
    .await;
    assert_eq!(b.ok().json()["chunks"]["remote"], 4);
    assert_eq!(
        std::fs::read(out_file(&env, "a", "2024-03-02", "2024-03-04")).unwrap(),
        std::fs::read(out_file(&env, "b", "2024-03-02", "2024-03-04")).unwrap()
    );
    // A client with only the read token cannot contribute: its uploads are refused (403).
    let mut c = client(&env, &edge, "c", "2024-03-04", "2024-03-06", Some(READ));
    c.args(["--api-key", KEY]);
    let c = run(c).await;
    let sc = c.ok().json();
    // (After three failures in a row the client stops using the remote for the run.)
    let refused = sc["uploads"]["failed"].as_u64().unwrap();
    assert!(refused >= 3, "{}", c.stderr);
    assert!(c.stderr.contains("403"), "{}", c.stderr);
    let stored: Vec<PathBuf> = files_under(&edge.cache.join("v1"));
    assert_eq!(stored.len(), 4, "only the write token's uploads are stored: {stored:?}");
    assert!(stored.iter().all(|p| {
        let p = p.to_str().unwrap();
        p.contains("2024-03-02") || p.contains("2024-03-03")
    }));

    // PUT directly: scopes, then only sound, complete chunk files for the key.
    let k5 = ChunkKey::new(EX, DataType::Trades, "BTCUSDT", date("2024-03-05"));
    let good = make_chunk(&k5, 300, 7, true).bytes().await.unwrap().to_vec();
    assert_eq!(put(&edge, &k5, None, good.clone()).await, 401);
    assert_eq!(put(&edge, &k5, Some(READ), good.clone()).await, 403);
    assert_eq!(put(&edge, &k5, Some(WRITE), b"not parquet".to_vec()).await, 422);
    let other = ChunkKey::new(EX, DataType::Trades, "ETHUSDT", date("2024-03-05"));
    assert_eq!(
        put(&edge, &other, Some(WRITE), good.clone()).await,
        422,
        "a file for another key"
    );
    let incomplete = make_chunk(&k5, 300, 7, false).bytes().await.unwrap().to_vec();
    assert_eq!(
        put(&edge, &k5, Some(WRITE), incomplete).await,
        422,
        "an unexported day is never stored"
    );
    assert_eq!(
        files_under(&edge.cache.join("v1")).len(),
        4,
        "refused uploads leave nothing"
    );
    assert_eq!(put(&edge, &k5, Some(WRITE), good.clone()).await, 201);
    let back = reqwest::Client::new()
        .get(format!("{}{}", edge.url, k5.cache_path()))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap();
    assert_eq!(back.bytes().await.unwrap().to_vec(), good);

    let m = edge.metrics().await;
    assert_eq!(m["tickvault_uploads_total"], 5.0);
    assert_eq!(
        m["tickvault_errors_total{kind=\"forbidden\"}"],
        (refused + 1) as f64,
        "client c's uploads and one PUT"
    );
    assert_eq!(m["tickvault_errors_total{kind=\"unauthorized\"}"], 3.0);
    assert_eq!(m["tickvault_errors_total{kind=\"rejected\"}"], 3.0);
    assert!(
        env.tardis.dataset_requests().iter().all(|r| r.authorization.is_some()),
        "only clients fetched"
    );
    let log = edge.log();
    for secret in [READ, WRITE, KEY] {
        assert!(!log.contains(secret), "a secret in the server's log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn paths_that_are_not_chunk_keys_are_400_and_touch_nothing() {
    let env = Env::new().await;
    serve_days(&env, 2..3, 100);
    std::fs::write(env.dir.path().join("secret.txt"), "do-not-serve-me").unwrap();
    let cache = env.dir.path().join("edge");
    let edge = Edge::start(&env, &cache, &["--write-tokens", WRITE], &[("TARDIS_API_KEY", KEY)]);
    let ok = format!("/v1/{EX}/trades/BTCUSDT/2024-03-02.parquet");
    let bad = [
        "/v1/../../etc/passwd".to_string(),
        "/v1/../secret.txt".to_string(),
        "//etc/passwd".to_string(),
        "/".to_string(),
        "/v1/binance-futures/trades/..%2F..%2Fsecret.txt/2024-03-02.parquet".to_string(),
        "/v1/binance-futures/trades/%2e%2e/2024-03-02.parquet".to_string(),
        "/v1/binance-futures/candles/BTCUSDT/2024-03-02.parquet".to_string(),
        "/v1/binance-futures/trades/BTCUSDT/2024-02-30.parquet".to_string(),
        "/v1/binance-futures/trades/BTCUSDT/20240302.parquet".to_string(),
        "/v1/binance-futures/trades/btcusdt/2024-03-02.parquet".to_string(),
        "/v1/Binance/trades/BTCUSDT/2024-03-02.parquet".to_string(),
        format!("{ok}/../../../../secret.txt"),
        "/v2/binance-futures/trades/BTCUSDT/2024-03-02.parquet".to_string(),
    ];
    let auth = format!("Authorization: Bearer {WRITE}\r\n");
    for path in &bad {
        for (method, body) in [("GET", ""), ("HEAD", ""), ("PUT", "x")] {
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: edge\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let (status, resp) = raw(&edge.addr(), &req);
            assert_eq!(status, 400, "{method} {path}: {}", String::from_utf8_lossy(&resp));
            assert!(!String::from_utf8_lossy(&resp).contains("do-not-serve-me"));
        }
    }
    let (status, _) = raw(
        &edge.addr(),
        &format!("DELETE {ok} HTTP/1.1\r\nHost: edge\r\n{auth}Connection: close\r\n\r\n"),
    );
    assert_eq!(status, 405);
    assert_eq!(env.tardis.dataset_requests().len(), 0, "nothing was fetched");
    assert!(files_under(&cache.join("v1")).is_empty(), "nothing was written");
    assert_eq!(
        edge.metric("tickvault_errors_total{kind=\"bad_path\"}").await,
        bad.len() as u64 * 3
    );
    // The one good path works; HEAD never fetches.
    let request = |method: &str| format!("{method} {ok} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n");
    assert_eq!(
        raw(&edge.addr(), &request("HEAD")).0,
        404,
        "not held, and HEAD does not fetch"
    );
    assert_eq!(env.tardis.dataset_requests().len(), 0);
    assert_eq!(raw(&edge.addr(), &request("GET")).0, 200);
    let (status, resp) = raw(&edge.addr(), &request("HEAD"));
    let resp = String::from_utf8_lossy(&resp);
    assert_eq!(status, 200);
    assert!(resp.contains("content-length: ") && resp.contains("etag: "), "{resp}");
    assert_eq!(env.tardis.dataset_requests().len(), 1);
}

/// A sealed trades chunk file of `rows` rows of random numbers (which compress poorly), so
/// its body outlasts the socket buffers; quick to build.
fn big_chunk(key: &ChunkKey, rows: usize) -> Vec<u8> {
    let schema = DataType::Trades.schema();
    let mut rng = fastrand::Rng::with_seed(7);
    let base = key.day_start_micros();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.data_type() {
                ArrowType::Utf8 => Arc::new(StringArray::from_iter_values((0..rows).map(
                    |i| match f.name().as_str() {
                        "exchange" => key.exchange.to_string(),
                        "symbol" => key.symbol.to_string(),
                        "side" => if i % 2 == 0 { "buy" } else { "sell" }.to_string(),
                        _ => format!("{:016x}", rng.u64(..)),
                    },
                ))),
                ArrowType::Timestamp(TimeUnit::Microsecond, tz) => Arc::new(
                    TimestampMicrosecondArray::from_iter_values((0..rows as i64).map(|i| base + i * 10))
                        .with_timezone_opt(tz.clone()),
                ),
                ArrowType::Boolean => Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 2 == 0)))),
                _ => Arc::new(Float64Array::from_iter_values((0..rows).map(|_| rng.f64() * 1e5))),
            }
        })
        .collect();
    let batch = RecordBatch::try_new(schema, columns).unwrap();
    let mut w = ChunkFileWriter::new(Cursor::new(Vec::new()), DataType::Trades).unwrap();
    w.write(&batch).unwrap();
    w.finish(key, true).unwrap().1.into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_gone_mid_body_or_mid_fetch_costs_only_its_response() {
    let env = Env::new().await;
    serve_days(&env, 2..4, 500);
    let edge = Edge::start(
        &env,
        &env.dir.path().join("edge"),
        &["--write-tokens", WRITE, "--memory-cache", "0"],
        &[("TARDIS_API_KEY", KEY)],
    );
    // A chunk far larger than what the sockets buffer (a few MB on loopback).
    let big = ChunkKey::new(EX, DataType::Trades, "BIG", date("2024-03-02"));
    let file = big_chunk(&big, 1_000_000);
    assert!(file.len() > 12 << 20, "{} bytes", file.len());
    assert_eq!(put(&edge, &big, Some(WRITE), file.clone()).await, 201);

    // A client reads the head and 64 KiB of the body, then dies.
    {
        let mut s = std::net::TcpStream::connect(edge.addr()).unwrap();
        write!(s, "GET /{} HTTP/1.1\r\nHost: edge\r\n\r\n", big.cache_path()).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        s.read_exact(&mut buf).unwrap();
        assert!(buf.starts_with(b"HTTP/1.1 200"));
    }
    assert_eq!(
        edge.wait_metric("tickvault_errors_total{kind=\"client_gone\"}", |v| v == 1)
            .await,
        1
    );
    assert_eq!(edge.wait_metric("tickvault_requests_in_flight", |v| v == 0).await, 0);
    assert!(edge.metric("tickvault_bytes_served_total").await < file.len() as u64);
    // The next client gets the whole file.
    let whole = reqwest::get(format!("{}{}", edge.url, big.cache_path())).await.unwrap();
    assert!(whole.bytes().await.unwrap().to_vec() == file);

    // A client that leaves while the server is fetching from Tardis: the fetch still lands.
    let slow = ChunkKey::new(EX, DataType::Trades, "ETHUSDT", date("2024-03-03"));
    let tardis_path = FakeTardis::dataset_path(EX, "trades", slow.date, "ETHUSDT");
    env.tardis
        .script(&tardis_path, [Fault::Delay(Duration::from_millis(1500))]);
    {
        let mut s = std::net::TcpStream::connect(edge.addr()).unwrap();
        write!(s, "GET /{} HTTP/1.1\r\nHost: edge\r\n\r\n", slow.cache_path()).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let entry = edge.cache.join(slow.cache_path());
    for _ in 0..200 {
        if entry.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(entry.exists(), "the abandoned fetch completed into the local tier");
    let r = run(read_only(client(
        &env,
        &edge,
        "after",
        "2024-03-03",
        "2024-03-04",
        None,
    )))
    .await;
    assert_eq!(r.ok().json()["chunks"]["remote"], 2);
    let fetched: Vec<String> = env.tardis.dataset_requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        fetched.len(),
        2,
        "one request per chunk, the abandoned one included: {fetched:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_server_restarts_with_its_local_tier_and_sigterm_finishes_responses() {
    let env = Env::new().await;
    let distinct = serve_days(&env, 2..5, 500);
    let cache = env.dir.path().join("edge");
    let mut first = Edge::start(&env, &cache, &[], &[("TARDIS_API_KEY", KEY)]);
    run(read_only(client(&env, &first, "a", "2024-03-02", "2024-03-05", None)))
        .await
        .ok();
    assert_eq!(env.tardis.dataset_requests().len(), distinct);
    first.kill();

    let mut second = Edge::start(&env, &cache, &[], &[("TARDIS_API_KEY", KEY)]);
    let b = run(read_only(client(&env, &second, "b", "2024-03-02", "2024-03-05", None))).await;
    assert_eq!(b.ok().json()["chunks"]["remote"], distinct as u64);
    assert_eq!(env.tardis.dataset_requests().len(), distinct, "nothing fetched again");
    assert_eq!(
        second.metric("tickvault_chunk_hits_total{tier=\"local\"}").await,
        distinct as u64
    );
    assert_eq!(second.metric("tickvault_chunk_hits_total{tier=\"tardis\"}").await, 0);

    // SIGTERM while a response waits on a slow fetch: it is finished, then the server exits 0.
    let slow = ChunkKey::new(EX, DataType::Trades, "BTCUSDT", date("2024-03-06"));
    env.serve_generated(EX, "trades", "BTCUSDT", slow.date, 500, 99);
    let tardis_path = FakeTardis::dataset_path(EX, "trades", slow.date, "BTCUSDT");
    env.tardis
        .script(&tardis_path, [Fault::Delay(Duration::from_millis(1500))]);
    let url = format!("{}{}", second.url, slow.cache_path());
    let pending = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    second.terminate();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        std::net::TcpStream::connect(second.addr()).is_err(),
        "no new connections after SIGTERM"
    );
    assert_eq!(
        pending.await.unwrap().unwrap(),
        200,
        "the response in flight was finished"
    );
    assert_eq!(second.wait_exit(), Some(0));
    assert!(second.log().contains("stopping"), "{}", second.log());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unexported_day_is_cached_by_neither_side() {
    let env = Env::new().await;
    serve_days(&env, 2..4, 500);
    env.tardis
        .set_exported_until(EX, "2024-03-03T00:00:00Z".parse().unwrap());
    let edge = Edge::start(&env, &env.dir.path().join("edge"), &[], &[("TARDIS_API_KEY", KEY)]);
    let unexported = |name: &str| {
        let mut c = read_only(client(&env, &edge, name, "2024-03-02", "2024-03-04", None));
        c.arg("--allow-incomplete");
        c
    };
    let first = run(unexported("c")).await;
    let s = first.ok().stderr_has("has not finished exporting").json();
    assert_eq!(s["chunks"]["remote"], 4);
    assert_eq!(s["chunks"]["incomplete"], 2, "2024-03-03, both symbols");

    // The edge says so in a header, and no cache on the way may keep it.
    let k = ChunkKey::new(EX, DataType::Trades, "BTCUSDT", date("2024-03-03"));
    let r = reqwest::get(format!("{}{}", edge.url, k.cache_path())).await.unwrap();
    assert_eq!(r.headers()["tickvault-chunk-complete"], "false");
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["tickvault-source"], "tardis", "fetched again, not kept");
    let exported = ChunkKey::new(EX, DataType::Trades, "BTCUSDT", date("2024-03-02"));
    let r = reqwest::get(format!("{}{}", edge.url, exported.cache_path()))
        .await
        .unwrap();
    assert_eq!(r.headers()["tickvault-chunk-complete"], "true");

    // Neither side kept it as complete: the client's entry says incomplete, the next run asks
    // the edge again, and the edge asks Tardis again.
    let client_entry = env.dir.path().join("c-cache").join(k.cache_path());
    assert!(!read_meta(&client_entry).unwrap().complete);
    let again = run(unexported("c")).await;
    let s = again.ok().json();
    assert_eq!(
        (s["chunks"]["local"].as_u64(), s["chunks"]["remote"].as_u64()),
        (Some(2), Some(2))
    );
    let per_path: BTreeMap<String, usize> =
        env.tardis
            .dataset_requests()
            .into_iter()
            .fold(BTreeMap::new(), |mut m, r| {
                *m.entry(r.path).or_default() += 1;
                m
            });
    for (path, n) in &per_path {
        // The unexported day is fetched on every request: two client runs, and our GET of
        // BTCUSDT's.
        let expected = match (path.contains("/2024/03/03/"), path.contains("BTCUSDT")) {
            (true, true) => 3,
            (true, false) => 2,
            (false, _) => 1,
        };
        assert_eq!(*n, expected, "{path}: {per_path:#?}");
    }
    let edge_entry = edge.cache.join(k.cache_path());
    assert!(
        !read_meta(&edge_entry).unwrap().complete,
        "the edge's copy is marked incomplete"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_limits_and_json_request_logs() {
    let env = Env::new().await;
    serve_days(&env, 2..4, 500);
    let edge = Edge::start(
        &env,
        &env.dir.path().join("edge"),
        &[
            "--write-tokens",
            WRITE,
            "--max-upload",
            "64KiB",
            "--request-timeout",
            "1s",
            "--max-connections",
            "2",
            "--log-format",
            "json",
        ],
        &[("TARDIS_API_KEY", KEY)],
    );
    let healthz = format!("{}healthz", edge.url);
    let h = reqwest::get(&healthz).await.unwrap();
    assert_eq!(h.status().as_u16(), 200);
    assert_eq!(h.text().await.unwrap(), "ok\n");

    // A chunk file over --max-upload is refused whole and stores nothing.
    let big = ChunkKey::new(EX, DataType::Trades, "BIG", date("2024-03-02"));
    let file = big_chunk(&big, 20_000);
    assert!(file.len() > 64 << 10, "{} bytes", file.len());
    assert_eq!(put(&edge, &big, Some(WRITE), file).await, 413);
    assert!(!edge.cache.join(big.cache_path()).exists());

    // Tardis answers after 3 s; the response is given up at --request-timeout.
    let slow = ChunkKey::new(EX, DataType::Trades, "ETHUSDT", date("2024-03-03"));
    let tardis_path = FakeTardis::dataset_path(EX, "trades", slow.date, "ETHUSDT");
    env.tardis.script(&tardis_path, [Fault::Delay(Duration::from_secs(3))]);
    assert_eq!(get_status(&edge, &slow, None).await, 504);

    // Two idle connections hold --max-connections 2: a third is not served until one closes.
    // (The scrape's own connection is the one open besides those that have not closed yet.)
    assert_eq!(edge.wait_metric("tickvault_connections_open", |v| v == 1).await, 1);
    let first = std::net::TcpStream::connect(edge.addr()).unwrap();
    let _second = std::net::TcpStream::connect(edge.addr()).unwrap();
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(1500))
        .build()
        .unwrap();
    assert!(
        impatient.get(&healthz).send().await.is_err(),
        "a third connection is not served while two are open"
    );
    drop(first);
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    assert_eq!(patient.get(&healthz).send().await.unwrap().status().as_u16(), 200);

    // One JSON object per line, one per request, with method, path, status and time.
    let log = edge.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<(String, String, u64)> = lines
        .iter()
        .filter(|v| v["event"] == "request")
        .map(|v| {
            assert!(v["ms"].is_u64() && v["time"].is_string(), "{v}");
            (
                v["method"].as_str().unwrap().to_string(),
                v["path"].as_str().unwrap().to_string(),
                v["status"].as_u64().unwrap(),
            )
        })
        .collect();
    for want in [
        ("GET".to_string(), "/healthz".to_string(), 200),
        ("PUT".to_string(), format!("/{}", big.cache_path()), 413),
        ("GET".to_string(), format!("/{}", slow.cache_path()), 504),
    ] {
        assert!(requests.contains(&want), "{want:?} not in {requests:?}");
    }
    assert!(!log.contains(WRITE) && !log.contains(KEY), "no secret in the log");
}
