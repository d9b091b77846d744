//! The fake server against a real HTTP client: auth rules, 404s, every fault, the metadata
//! endpoint, request recording and concurrency.

use std::io::Read;
use std::time::{Duration, Instant};

use fake_tardis::generate::{self, DayParams};
use fake_tardis::{FakeTardis, Fault};
use jiff::civil::{Date, date};

const FREE: Date = date(2024, 1, 1);
const PAID: Date = date(2024, 1, 2);

fn client() -> reqwest::Client {
    // No default features: no gzip auto-decompression, as a downloader must be set up.
    reqwest::Client::builder().build().unwrap()
}

fn csv(rows: usize) -> String {
    generate::day_csv("trades", &DayParams::new("deribit", "BTC-PERPETUAL", PAID, rows))
}

fn gunzip(b: &[u8]) -> std::io::Result<String> {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(b).read_to_string(&mut s)?;
    Ok(s)
}

async fn server_with_files(rows: usize) -> (FakeTardis, String) {
    let t = FakeTardis::builder().api_key("good").api_key("other").start().await;
    let body = csv(rows);
    for d in [FREE, PAID] {
        t.add_csv("deribit", "trades", d, "BTC-PERPETUAL", &body);
    }
    (t, body)
}

fn url(t: &FakeTardis, d: Date) -> String {
    t.dataset_url("deribit", "trades", d, "BTC-PERPETUAL")
}

async fn get(url: &str, auth: Option<&str>) -> reqwest::Response {
    let mut rb = client().get(url);
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    rb.send().await.unwrap()
}

async fn json(resp: reqwest::Response) -> serde_json::Value {
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

async fn json_error(resp: reqwest::Response, code: u16) -> String {
    assert_eq!(resp.status().as_u16(), code);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: serde_json::Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!(v["code"], code);
    v["message"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn auth_rules() {
    let (t, body) = server_with_files(100).await;
    // Free first day of the month: no header, an empty header (tardis-node), or "Bearer ".
    for auth in [None, Some(""), Some("Bearer "), Some("Bearer good")] {
        let r = get(&url(&t, FREE), auth).await;
        assert_eq!(r.status(), 200, "{auth:?}");
        assert_eq!(gunzip(&r.bytes().await.unwrap()).unwrap(), body);
    }
    // Any other day needs a valid key.
    for auth in [None, Some(""), Some("Bearer ")] {
        let msg = json_error(get(&url(&t, PAID), auth).await, 401).await;
        assert!(msg.contains("API key"), "{msg}");
    }
    for key in ["Bearer good", "Bearer other", "bearer good"] {
        assert_eq!(get(&url(&t, PAID), Some(key)).await.status(), 200, "{key}");
    }
    // A wrong key fails even on a free day.
    for d in [FREE, PAID] {
        let msg = json_error(get(&url(&t, d), Some("Bearer nope")).await, 401).await;
        assert_eq!(msg, "Invalid API key");
        assert_eq!(get(&url(&t, d), Some("good")).await.status(), 401, "scheme is required");
    }
}

#[tokio::test]
async fn success_headers_query_and_encoded_symbols() {
    let (t, body) = server_with_files(3_000).await;
    let r = get(&format!("{}?retryAttempt=2", url(&t, PAID)), Some("Bearer good")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv");
    assert!(r.headers().get("content-encoding").is_none());
    let len: usize = r.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let bytes = r.bytes().await.unwrap();
    assert_eq!(bytes.len(), len);
    assert_eq!(&bytes[..2], &[0x1f, 0x8b]);
    assert_eq!(gunzip(&bytes).unwrap(), body);

    t.add_gz("bitget", "trades", FREE, "??USDT", &b"raw bytes, served as-is"[..]);
    let u = t.dataset_url("bitget", "trades", FREE, "??USDT");
    assert!(u.ends_with("/bitget/trades/2024/01/01/%3F%3FUSDT.csv.gz"), "{u}");
    let r = get(&u, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], b"raw bytes, served as-is");

    let reqs = t.dataset_requests();
    assert_eq!(reqs[0].query.as_deref(), Some("retryAttempt=2"));
    assert_eq!(
        reqs[0].path,
        "/datasets/v1/deribit/trades/2024/01/02/BTC-PERPETUAL.csv.gz"
    );
    assert_eq!(reqs[1].path, "/datasets/v1/bitget/trades/2024/01/01/??USDT.csv.gz");
    assert_eq!(reqs[1].authorization, None);
}

#[tokio::test]
async fn not_found() {
    let (t, _) = server_with_files(10).await;
    let missing = t.dataset_url("deribit", "trades", FREE, "ETH-PERPETUAL");
    let msg = json_error(get(&missing, None).await, 404).await;
    assert!(msg.contains("ETH-PERPETUAL"), "{msg}");
    // Auth comes before the lookup: a missing paid day without a key is a 401.
    let missing_paid = t.dataset_url("deribit", "trades", PAID, "ETH-PERPETUAL");
    json_error(get(&missing_paid, None).await, 401).await;
    json_error(
        get(&format!("{}/deribit/trades/2024/01/01", t.datasets_url()), None).await,
        404,
    )
    .await;
    json_error(get(&format!("{}/nothing/here", t.base_url()), None).await, 404).await;
    // A bare HEAD 404s on the real host.
    let r = client().head(url(&t, FREE)).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn status_faults_pop_in_order_then_serve() {
    let (t, body) = server_with_files(100).await;
    let path = FakeTardis::dataset_path("deribit", "trades", PAID, "BTC-PERPETUAL");
    assert_eq!(path, "deribit/trades/2024/01/02/BTC-PERPETUAL.csv.gz");
    t.script(
        &path,
        [
            Fault::too_many_requests(Some(2)),
            Fault::internal_error(),
            Fault::status_with_body(400, "Invalid 'from' param, use ISO 8601 format"),
            Fault::too_many_requests(None),
        ],
    );
    let auth = Some("Bearer good");
    // A 401 is decided before the script and does not use up a fault.
    assert_eq!(get(&url(&t, PAID), None).await.status(), 401);
    let r = get(&url(&t, PAID), auth).await;
    assert_eq!(r.headers()["retry-after"], "2");
    json_error(r, 429).await;
    json_error(get(&url(&t, PAID), auth).await, 500).await;
    let r = get(&url(&t, PAID), auth).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("ISO 8601 format"));
    let r = get(&url(&t, PAID), auth).await;
    assert!(r.headers().get("retry-after").is_none());
    assert_eq!(r.status(), 429);
    let r = get(&url(&t, PAID), auth).await;
    assert_eq!(r.status(), 200);
    assert_eq!(gunzip(&r.bytes().await.unwrap()).unwrap(), body);
    let statuses: Vec<u16> = t.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 429, 500, 400, 429, 200]);
}

#[tokio::test]
async fn delay_fault_and_first_byte_latency() {
    let ms = Duration::from_millis;
    let t = FakeTardis::builder().first_byte_latency(ms(300)).start().await;
    t.add_csv("deribit", "trades", FREE, "BTC-PERPETUAL", &csv(10));
    let path = FakeTardis::dataset_path("deribit", "trades", FREE, "BTC-PERPETUAL");
    t.script(&path, [Fault::Delay(ms(500))]);
    let start = Instant::now();
    assert_eq!(get(&url(&t, FREE), None).await.status(), 200);
    assert!(start.elapsed() >= ms(800), "{:?}", start.elapsed());
    let start = Instant::now();
    assert_eq!(get(&url(&t, FREE), None).await.status(), 200);
    let took = start.elapsed();
    assert!(took >= ms(300) && took < ms(790), "the Delay was used up: {took:?}");
    t.set_first_byte_latency(Duration::ZERO);
    let start = Instant::now();
    get(&url(&t, FREE), None).await;
    assert!(start.elapsed() < ms(290));
    // The latency also applies to error answers, and not to the API host.
    t.set_first_byte_latency(ms(300));
    let start = Instant::now();
    assert_eq!(get(&url(&t, PAID), None).await.status(), 401);
    assert!(start.elapsed() >= ms(300));
    let start = Instant::now();
    get(&format!("{}/exchanges/deribit", t.api_url()), None).await;
    assert!(start.elapsed() < ms(290));
}

/// Reads the body piece by piece: the bytes received and the error that ended it, if any.
async fn read_body(mut r: reqwest::Response) -> (Vec<u8>, Option<reqwest::Error>) {
    let mut got = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

#[tokio::test]
async fn drop_after_aborts_the_body() {
    let (t, _) = server_with_files(20_000).await;
    let full = get(&url(&t, FREE), None).await.bytes().await.unwrap();
    assert!(full.len() > 200_000, "spans several 64 KiB pieces: {}", full.len());
    let path = FakeTardis::dataset_path("deribit", "trades", FREE, "BTC-PERPETUAL");
    for n in [0, 1_000, 100_000, usize::MAX] {
        t.script(&path, [Fault::DropAfter(n)]);
        let r = get(&url(&t, FREE), None).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.content_length(), Some(full.len() as u64));
        let (got, err) = read_body(r).await;
        assert!(err.is_some(), "DropAfter({n}) must end in a body error");
        let expect = n.min(full.len() - 1);
        assert_eq!(got.len(), expect, "DropAfter({n})");
        assert_eq!(&got[..], &full[..expect]);
    }
    assert_eq!(t.dataset_requests().last().unwrap().status, 200);
}

#[tokio::test]
async fn truncate_is_a_complete_but_short_response() {
    let (t, body) = server_with_files(5_000).await;
    let path = FakeTardis::dataset_path("deribit", "trades", FREE, "BTC-PERPETUAL");
    t.script(&path, [Fault::Truncate(5_000)]);
    let r = get(&url(&t, FREE), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(5_000));
    let (got, err) = read_body(r).await;
    assert!(err.is_none());
    assert_eq!(got.len(), 5_000);
    assert!(gunzip(&got).is_err(), "a truncated gzip must not decode");
    // Next request: served whole again.
    let r = get(&url(&t, FREE), None).await;
    assert_eq!(gunzip(&r.bytes().await.unwrap()).unwrap(), body);
}

#[tokio::test]
async fn corrupt_crc_fails_the_checksum_only() {
    let (t, _) = server_with_files(5_000).await;
    let full = get(&url(&t, FREE), None).await.bytes().await.unwrap();
    let path = FakeTardis::dataset_path("deribit", "trades", FREE, "BTC-PERPETUAL");
    t.script(&path, [Fault::CorruptCrc]);
    let got = get(&url(&t, FREE), None).await.bytes().await.unwrap();
    assert_eq!(got.len(), full.len());
    let diff: Vec<usize> = (0..got.len()).filter(|&i| got[i] != full[i]).collect();
    assert_eq!(diff, [full.len() - 8]);
    let err = gunzip(&got).unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("crc") || err.kind() == std::io::ErrorKind::InvalidInput,
        "{err}"
    );

    // On a multi-member file only the last member's trailer is hit.
    let data = csv(5_000);
    t.add_gz(
        "deribit",
        "trades",
        FREE,
        "MULTI",
        generate::gzip_members(data.as_bytes(), 3),
    );
    t.script(
        &FakeTardis::dataset_path("deribit", "trades", FREE, "MULTI"),
        [Fault::CorruptCrc],
    );
    let got = get(&t.dataset_url("deribit", "trades", FREE, "MULTI"), None)
        .await
        .bytes()
        .await
        .unwrap();
    assert!(gunzip(&got).is_err());
    let mut first = String::new();
    flate2::read::GzDecoder::new(&got[..])
        .read_to_string(&mut first)
        .unwrap();
    assert!(data.starts_with(&first));
}

#[tokio::test]
async fn stall_pauses_mid_body() {
    let (t, body) = server_with_files(5_000).await;
    let path = FakeTardis::dataset_path("deribit", "trades", FREE, "BTC-PERPETUAL");
    t.script(
        &path,
        [Fault::Stall {
            after: 1_000,
            duration: Duration::from_millis(400),
        }],
    );
    let mut r = get(&url(&t, FREE), None).await;
    let first = r.chunk().await.unwrap().unwrap();
    assert_eq!(first.len(), 1_000);
    let start = Instant::now();
    let (rest, err) = read_body(r).await;
    assert!(err.is_none());
    assert!(start.elapsed() >= Duration::from_millis(350), "{:?}", start.elapsed());
    let mut all = first.to_vec();
    all.extend(rest);
    assert_eq!(gunzip(&all).unwrap(), body);
}

#[tokio::test]
async fn same_path_is_served_concurrently() {
    let (t, _) = server_with_files(2_000).await;
    let path = FakeTardis::dataset_path("deribit", "trades", FREE, "BTC-PERPETUAL");
    t.script(
        &path,
        [Fault::Stall {
            after: 10,
            duration: Duration::from_secs(2),
        }],
    );
    let stalled = tokio::spawn({
        let u = url(&t, FREE);
        async move { get(&u, None).await.bytes().await.unwrap().len() }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    let r = get(&url(&t, FREE), None).await;
    r.bytes().await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "blocked by the stalled request"
    );
    assert!(!stalled.is_finished());
    assert!(stalled.await.unwrap() > 10);
}

#[tokio::test]
async fn fail_all_hits_everything_until_reset() {
    let (t, _) = server_with_files(10).await;
    t.fail_all(Some(503));
    json_error(get(&url(&t, FREE), None).await, 503).await;
    json_error(get(&format!("{}/exchanges/deribit", t.api_url()), None).await, 503).await;
    // fail_all comes before auth.
    json_error(get(&url(&t, PAID), None).await, 503).await;
    t.fail_all(None);
    assert_eq!(get(&url(&t, FREE), None).await.status(), 200);
    assert_eq!(
        get(&format!("{}/exchanges/deribit", t.api_url()), None).await.status(),
        200
    );
}

#[tokio::test]
async fn content_encoding_gzip_is_opt_in() {
    let t = FakeTardis::builder().content_encoding_gzip(true).start().await;
    let body = csv(100);
    t.add_csv("deribit", "trades", FREE, "BTC-PERPETUAL", &body);
    let r = get(&url(&t, FREE), None).await;
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["content-type"], "text/csv");
    assert_eq!(gunzip(&r.bytes().await.unwrap()).unwrap(), body);
}

#[tokio::test]
async fn serves_a_directory_tree_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let p = DayParams::new("binance-futures", "BTCUSDT", PAID, 50_000).with_seed(9);
    let file = dir
        .path()
        .join(FakeTardis::dataset_path("binance-futures", "trades", PAID, "BTCUSDT"));
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let gz = generate::write_day_gz("trades", &p, 2, None, Vec::new()).unwrap();
    std::fs::write(&file, &gz).unwrap();
    let t = FakeTardis::builder().root(dir.path()).api_key("k").start().await;
    // In-memory files win over the tree.
    t.add_csv("binance-futures", "trades", FREE, "BTCUSDT", "in memory");
    let r = get(
        &t.dataset_url("binance-futures", "trades", PAID, "BTCUSDT"),
        Some("Bearer k"),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(gz.len() as u64));
    let got = r.bytes().await.unwrap();
    assert_eq!(got, gz);
    assert_eq!(gunzip(&got).unwrap(), generate::day_csv("trades", &p));
    let r = get(&t.dataset_url("binance-futures", "trades", FREE, "BTCUSDT"), None).await;
    assert_eq!(gunzip(&r.bytes().await.unwrap()).unwrap(), "in memory");
    // Faults apply to files on disk too.
    let path = FakeTardis::dataset_path("binance-futures", "trades", PAID, "BTCUSDT");
    t.script(
        &path,
        [Fault::CorruptCrc, Fault::Truncate(70_000), Fault::DropAfter(100_000)],
    );
    let url = t.dataset_url("binance-futures", "trades", PAID, "BTCUSDT");
    let got = get(&url, Some("Bearer k")).await.bytes().await.unwrap();
    assert_eq!(got.len(), gz.len());
    assert_eq!(got[gz.len() - 8], !gz[gz.len() - 8]);
    assert_eq!(get(&url, Some("Bearer k")).await.bytes().await.unwrap(), &gz[..70_000]);
    let (got, err) = read_body(get(&url, Some("Bearer k")).await).await;
    assert!(err.is_some());
    assert_eq!(got, &gz[..100_000]);
    // No escaping the root.
    let escape = format!(
        "{}/binance-futures/trades/2024/01/01/..%2F..%2F..%2Fetc.csv.gz",
        t.datasets_url()
    );
    assert_eq!(get(&escape, None).await.status(), 404);
}

#[tokio::test]
async fn exchange_details_endpoint() {
    let t = FakeTardis::start().await;
    t.add_csv("deribit", "trades", date(2024, 1, 1), "BTC-PERPETUAL", "x");
    t.add_csv("deribit", "trades", date(2023, 12, 5), "BTC-PERPETUAL", "x");
    t.add_csv("deribit", "incremental_book_L2", date(2024, 1, 3), "BTC-PERPETUAL", "x");
    t.add_csv("deribit", "options_chain", date(2024, 1, 2), "OPTIONS", "x");
    t.add_csv("binance", "trades", date(2024, 1, 2), "BTCUSDT", "x");
    let r = get(&format!("{}/exchanges/deribit", t.api_url()), None).await;
    assert_eq!(r.status(), 200);
    let v = json(r).await;
    assert_eq!(v["id"], "deribit");
    assert_eq!(v["enabled"], true);
    assert!(v["name"].is_string() && v["availableChannels"].is_array() && v["availableSymbols"].is_array());
    let ds = &v["datasets"];
    assert_eq!(ds["formats"], serde_json::json!(["csv"]));
    assert_eq!(ds["exportedFrom"], "2023-12-05T00:00:00.000Z");
    assert_eq!(v["availableSince"], "2023-12-05T00:00:00.000Z");
    let s = jiff::Timestamp::now().as_second();
    let today = jiff::Timestamp::from_second(s - s.rem_euclid(86_400)).unwrap();
    assert_eq!(
        ds["exportedUntil"],
        today.strftime("%Y-%m-%dT%H:%M:%S.000Z").to_string()
    );
    assert!(ds["stats"].is_object());
    let symbols = ds["symbols"].as_array().unwrap();
    assert_eq!(symbols.len(), 2);
    let perp = symbols.iter().find(|s| s["id"] == "BTC-PERPETUAL").unwrap();
    assert_eq!(perp["type"], "perpetual");
    assert_eq!(perp["availableSince"], "2023-12-05T00:00:00.000Z");
    assert_eq!(perp["dataTypes"], serde_json::json!(["trades", "incremental_book_L2"]));
    let opts = symbols.iter().find(|s| s["id"] == "OPTIONS").unwrap();
    assert_eq!(opts["type"], "option");
    assert_eq!(opts["dataTypes"], serde_json::json!(["options_chain"]));

    t.set_exported_until("deribit", "2026-11-22T00:00:00Z".parse().unwrap());
    let v = json(get(&format!("{}/exchanges/deribit", t.api_url()), None).await).await;
    assert_eq!(v["datasets"]["exportedUntil"], "2026-11-22T00:00:00.000Z");

    // Known but empty exchange: 200 with no symbols. Unknown: 404 JSON.
    let v = json(get(&format!("{}/exchanges/kraken", t.api_url()), None).await).await;
    assert_eq!(v["datasets"]["symbols"], serde_json::json!([]));
    json_error(
        get(&format!("{}/exchanges/nope-exchange", t.api_url()), None).await,
        404,
    )
    .await;

    let list = json(get(&format!("{}/exchanges", t.api_url()), None).await).await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"deribit") && ids.contains(&"binance"));
}

#[tokio::test]
async fn requests_are_recorded_with_their_status() {
    let (t, _) = server_with_files(10).await;
    let path = FakeTardis::dataset_path("deribit", "trades", FREE, "BTC-PERPETUAL");
    t.script(&path, [Fault::status(502)]);
    client()
        .get(url(&t, FREE))
        .header(
            "user-agent",
            "tardis-dev/5.0.4 (+https://github.com/tardis-dev/tardis-python)",
        )
        .header("accept-encoding", "gzip")
        .header("range", "bytes=0-")
        .send()
        .await
        .unwrap();
    get(&url(&t, FREE), None).await;
    get(&url(&t, PAID), Some("Bearer good")).await;
    get(&url(&t, PAID), Some("Bearer bad")).await;
    get(&t.dataset_url("deribit", "trades", FREE, "NOPE"), None).await;
    get(&format!("{}/exchanges/deribit", t.api_url()), None).await;
    let all = t.requests();
    let statuses: Vec<u16> = all.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [502, 200, 200, 401, 404, 200]);
    assert_eq!(all[0].method, "GET");
    assert!(all[0].user_agent.as_deref().unwrap().starts_with("tardis-dev/"));
    assert_eq!(all[0].accept_encoding.as_deref(), Some("gzip"));
    assert_eq!(all[0].range.as_deref(), Some("bytes=0-"));
    assert_eq!(all[2].authorization.as_deref(), Some("Bearer good"));
    assert_eq!(all[5].path, "/api/v1/exchanges/deribit");
    assert_eq!(t.dataset_requests().len(), 5);
    t.clear_requests();
    assert!(t.requests().is_empty());
}

#[tokio::test]
async fn shutdown_stops_listening() {
    let t = FakeTardis::start().await;
    let base = t.base_url();
    let clone = t.clone();
    drop(clone);
    assert_eq!(
        get(&format!("{base}/x"), None).await.status(),
        404,
        "a dropped clone does not stop it"
    );
    t.shutdown();
    // A new client each time: no pooled keep-alive connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while reqwest::Client::new().get(format!("{base}/x")).send().await.is_ok() {
        assert!(Instant::now() < deadline, "server still answering after shutdown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
