//! Hostile bodies against a real HTTP client: HTML pages, trickles, streamed gzip bombs,
//! enormous lines, out-of-order days, echoed secrets and seeded fault storms.

use std::io::Read;
use std::time::{Duration, Instant};

use fake_tardis::generate::{self, DayParams, GzipBomb, Rewind};
use fake_tardis::{FakeTardis, Fault, StormMix};
use jiff::civil::{Date, date};

const FREE: Date = date(2024, 1, 1);
const PAID: Date = date(2024, 1, 2);
const KEY: &str = "sk-LEAKCHECK-7f3a9c";

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn get(url: &str, auth: Option<&str>) -> reqwest::Response {
    let mut rb = client().get(url);
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    rb.send().await.unwrap()
}

fn gunzip(b: &[u8]) -> std::io::Result<String> {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(b).read_to_string(&mut s)?;
    Ok(s)
}

fn csv(rows: usize) -> String {
    generate::day_csv("trades", &DayParams::new("deribit", "BTC-PERPETUAL", PAID, rows))
}

fn path(d: Date) -> String {
    FakeTardis::dataset_path("deribit", "trades", d, "BTC-PERPETUAL")
}

async fn server() -> (FakeTardis, String) {
    let t = FakeTardis::builder().api_key(KEY).start().await;
    let body = csv(2_000);
    for d in [FREE, PAID] {
        t.add_csv("deribit", "trades", d, "BTC-PERPETUAL", &body);
    }
    (t, body)
}

fn url(t: &FakeTardis, d: Date) -> String {
    t.dataset_url("deribit", "trades", d, "BTC-PERPETUAL")
}

/// Reads the body piece by piece: the bytes received and whether it ended in an error.
async fn read_body(mut r: reqwest::Response) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    loop {
        match r.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => return (got, false),
            Err(_) => return (got, true),
        }
    }
}

#[tokio::test]
async fn html_pages_stand_in_for_the_file() {
    let (t, body) = server().await;
    let missing = FakeTardis::dataset_path("deribit", "trades", FREE, "NOPE");
    t.script(&path(FREE), [Fault::html(), Fault::Html { status: 502 }]);
    t.script(&missing, [Fault::html()]);
    for (u, status, needle) in [
        (url(&t, FREE), 200, "Sign in"),
        (url(&t, FREE), 502, "502 Bad Gateway"),
        // A captive portal answers whatever was asked, file or not.
        (t.dataset_url("deribit", "trades", FREE, "NOPE"), 200, "Sign in"),
    ] {
        let r = get(&u, None).await;
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        let text = r.text().await.unwrap();
        assert!(text.starts_with("<!DOCTYPE html>") && text.contains(needle), "{text}");
    }
    // Used up: the file again.
    let r = get(&url(&t, FREE), None).await;
    assert_eq!(gunzip(&r.bytes().await.unwrap()).unwrap(), body);
}

#[tokio::test]
async fn trickle_sends_the_whole_body_at_the_rate() {
    let t = FakeTardis::start().await;
    let raw: Vec<u8> = (0..1_500u32).map(|i| i as u8).collect();
    t.add_gz("deribit", "trades", FREE, "BTC-PERPETUAL", raw.clone());
    t.script(&path(FREE), [Fault::trickle(1_000)]);
    let start = Instant::now();
    let mut r = get(&url(&t, FREE), None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.content_length(), Some(1_500));
    let first = r.chunk().await.unwrap().unwrap();
    let first_at = start.elapsed();
    assert!(first.len() <= 100, "small pieces: {}", first.len());
    assert!(
        first_at < Duration::from_millis(800),
        "the first bytes come early: {first_at:?}"
    );
    let (rest, err) = read_body(r).await;
    let took = start.elapsed();
    assert!(!err);
    assert!(took >= Duration::from_millis(1_500), "1500 B at 1000 B/s took {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let mut all = first.to_vec();
    all.extend(rest);
    assert_eq!(all, raw);
    // Next request: at full speed.
    let start = Instant::now();
    get(&url(&t, FREE), None).await.bytes().await.unwrap();
    assert!(start.elapsed() < Duration::from_millis(500));
}

/// Inflates `gz` in 64 KiB steps, checking every byte after `prefix` is `fill` without
/// keeping them; returns the inflated length and its CRC32.
fn inflate_checking(gz: &[u8], prefix: &[u8], fill: u8) -> (u64, u32) {
    let mut dec = flate2::read::GzDecoder::new(gz);
    let mut buf = vec![0u8; 64 * 1024];
    let mut crc = flate2::Crc::new();
    let mut n: u64 = 0;
    loop {
        let k = dec.read(&mut buf).expect("a valid gzip, CRC and ISIZE included");
        if k == 0 {
            break;
        }
        for (i, &b) in buf[..k].iter().enumerate() {
            let at = n + i as u64;
            let expect = prefix.get(at as usize).copied().unwrap_or(fill);
            assert_eq!(b, expect, "byte {at}");
        }
        crc.update(&buf[..k]);
        n += k as u64;
    }
    (n, crc.sum())
}

#[tokio::test]
async fn gzip_bomb_inflates_to_the_header_and_exactly_n_zeros() {
    let (t, _) = server().await;
    let n: u64 = 64 << 20;
    let book = FakeTardis::dataset_path("deribit", "incremental_book_L2", PAID, "BTC-PERPETUAL");
    t.script(&path(PAID), [Fault::GzipBomb { zeros: n }]);
    // No file at this path: the bomb does not need one.
    t.script(&book, [Fault::GzipBomb { zeros: 5 }]);
    let r = get(&url(&t, PAID), Some(&format!("Bearer {KEY}"))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/csv");
    let len = r.content_length().unwrap();
    let (gz, err) = read_body(r).await;
    assert!(!err);
    assert_eq!(gz.len() as u64, len);
    assert!(len < n / 500, "{len} bytes for {n} zeros");
    let header = format!("{}\n", generate::header("trades").unwrap());
    let (inflated, crc) = inflate_checking(&gz, header.as_bytes(), 0);
    assert_eq!(inflated, header.len() as u64 + n);
    let trailer = &gz[gz.len() - 8..];
    assert_eq!(u32::from_le_bytes(trailer[..4].try_into().unwrap()), crc);
    assert_eq!(u32::from_le_bytes(trailer[4..].try_into().unwrap()), inflated as u32);

    let r = get(
        &t.dataset_url("deribit", "incremental_book_L2", PAID, "BTC-PERPETUAL"),
        Some(&format!("Bearer {KEY}")),
    )
    .await;
    let text = gunzip(&r.bytes().await.unwrap()).unwrap();
    let header = generate::header("incremental_book_L2").unwrap();
    assert_eq!(text, format!("{header}\n\0\0\0\0\0"));
}

#[test]
fn a_ten_gib_bomb_streams_in_bounded_pieces() {
    let start = Instant::now();
    let bomb = GzipBomb::zeros("trades", 10 << 30);
    let mut total = 0u64;
    for p in bomb.chunks() {
        assert!(p.len() <= 128 * 1024);
        total += p.len() as u64;
    }
    assert_eq!(total, bomb.compressed_len());
    assert!(bomb.compressed_len() < 16 << 20, "{}", bomb.compressed_len());
    assert!(start.elapsed() < Duration::from_secs(20), "{:?}", start.elapsed());
}

#[tokio::test]
async fn huge_line_is_valid_csv_with_one_enormous_row() {
    let (t, _) = server().await;
    let len: u64 = 8 << 20;
    let l2 = FakeTardis::dataset_path("binance", "incremental_book_L2", FREE, "BTCUSDT");
    t.script(&path(FREE), [Fault::HugeLine { len }]);
    t.script(&l2, [Fault::HugeLine { len }]);
    for (u, ty, sym) in [
        (url(&t, FREE), "trades", "BTC-PERPETUAL"),
        (
            t.dataset_url("binance", "incremental_book_L2", FREE, "BTCUSDT"),
            "incremental_book_L2",
            "BTCUSDT",
        ),
    ] {
        let r = get(&u, None).await;
        assert_eq!(r.status(), 200);
        let gz = r.bytes().await.unwrap();
        assert!((gz.len() as u64) < len / 500);
        let text = gunzip(&gz).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.len(), 4, "{ty}: header and three rows");
        assert_eq!(lines[0], generate::header(ty).unwrap());
        let cols = lines[0].split(',').count();
        for l in &lines[1..] {
            assert_eq!(l.split(',').count(), cols, "{ty}");
            assert!(l.split(',').nth(1).unwrap().starts_with(sym));
        }
        assert!(lines[2].len() as u64 > len, "{ty}");
        assert!(lines[1].len() < 1_000 && lines[3].len() < 1_000);
    }
}

#[tokio::test]
async fn an_out_of_order_day_is_served_as_any_file() {
    let t = FakeTardis::start().await;
    let p = DayParams::new("deribit", "BTC-PERPETUAL", FREE, 50_000).with_seed(3);
    let rewind = Rewind {
        at_row: 30_000,
        back_us: 600_000_000,
    };
    let csv = generate::day_csv_rewound("trades", &p, rewind);
    t.add_csv("deribit", "trades", FREE, "BTC-PERPETUAL", &csv);
    let text = gunzip(&get(&url(&t, FREE), None).await.bytes().await.unwrap()).unwrap();
    assert_eq!(text, csv);
    let local: Vec<i64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(local.len(), 50_000);
    let back: Vec<usize> = (1..local.len()).filter(|&i| local[i] < local[i - 1]).collect();
    assert_eq!(back, [30_000]);
}

#[tokio::test]
async fn errors_that_quote_the_secrets_sent() {
    let (t, _) = server().await;
    t.script(
        &path(PAID),
        [Fault::unauthorized_quoting_key(), Fault::forbidden_quoting_token()],
    );
    let bearer = format!("Bearer {KEY}");
    let r = get(&url(&t, PAID), Some(&bearer)).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers()["www-authenticate"].to_str().unwrap().contains(KEY));
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(v["code"], 401);
    assert!(v["message"].as_str().unwrap().contains(KEY), "{v}");
    let r = get(&url(&t, PAID), Some(&bearer)).await;
    assert_eq!(r.status(), 403);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(v["message"].as_str().unwrap().contains(&bearer), "{v}");
    // The datasets host checks the key before popping a fault, so there only a valid key
    // reaches the 403; the metadata API checks none, so any token is quoted back.
    t.script_api("exchanges/deribit", [Fault::forbidden_quoting_token()]);
    let r = get(
        &format!("{}/exchanges/deribit", t.api_url()),
        Some("Bearer tok-OTHER-51b2"),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Bearer tok-OTHER-51b2"));

    // The fake's own 401 for a wrong key quotes it only when asked to.
    let r = get(&url(&t, PAID), Some("Bearer sk-WRONG-1")).await;
    assert!(!r.text().await.unwrap().contains("sk-WRONG-1"));
    t.set_echo_secrets(true);
    let r = get(&url(&t, PAID), Some("Bearer sk-WRONG-1")).await;
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("'sk-WRONG-1'"));
}

/// What a request's answer looked like, to compare with the scripted fault.
async fn outcome(r: reqwest::Response) -> (u16, Option<String>, usize, bool) {
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let (body, err) = read_body(r).await;
    (status, retry, body.len(), err)
}

#[tokio::test]
async fn fault_storms_are_reproducible_and_every_path_succeeds() {
    let days: Vec<Date> = (1..=12).map(|d| date(2024, 3, d)).collect();
    let start_server = || async {
        let t = FakeTardis::builder().api_key(KEY).start().await;
        for (i, d) in days.iter().enumerate() {
            let p = DayParams::new("deribit", "BTC-PERPETUAL", *d, 300 + i * 10);
            t.add_gz(
                "deribit",
                "trades",
                *d,
                "BTC-PERPETUAL",
                generate::gzip(generate::day_csv("trades", &p).as_bytes()),
            );
        }
        t
    };
    let paths: Vec<String> = days.iter().map(|&d| path(d)).collect();
    let mix = StormMix::default();
    let (a, b) = (start_server().await, start_server().await);
    let script = a.script_storm(&paths, 42, &mix);
    assert_eq!(script, b.script_storm(&paths, 42, &mix), "same seed, same script");
    let other = start_server().await.script_storm(&paths, 43, &mix);
    assert_ne!(script, other, "another seed, another script");
    // Each path's script depends on the seed and the path alone.
    let one = start_server().await.script_storm([&paths[5]], 42, &mix);
    assert_eq!(one[0], script[5]);
    let kinds: usize = script.iter().map(|(_, f)| f.len()).sum();
    assert!(kinds >= 12, "a storm, not a drizzle: {script:?}");

    let bearer = format!("Bearer {KEY}");
    for (d, (key, faults)) in days.iter().zip(&script) {
        assert_eq!(key, &path(*d));
        assert!(faults.len() <= mix.max_faults_per_path);
        let u = a.dataset_url("deribit", "trades", *d, "BTC-PERPETUAL");
        for f in faults {
            let (status, retry, len, err) = outcome(get(&u, Some(&bearer)).await).await;
            match f {
                Fault::Status { code, retry_after, .. } => {
                    assert_eq!(status, *code);
                    assert!(*code == 429 || (500..=504).contains(code), "{code}");
                    assert_eq!(retry, retry_after.map(|s| s.to_string()));
                    if *code == 429 {
                        assert_eq!(retry.as_deref(), Some("1"));
                    }
                }
                Fault::DropAfter(n) => assert!(status == 200 && err && len == *n, "{f:?}: {len}"),
                Fault::Truncate(n) => assert!(status == 200 && !err && len == *n, "{f:?}: {len}"),
                other => panic!("not in the mix: {other:?}"),
            }
        }
        let r = get(&u, Some(&bearer)).await;
        assert_eq!(r.status(), 200, "{key} succeeds after its script");
        assert!(gunzip(&r.bytes().await.unwrap()).is_ok());
    }
}
