//! How the fetcher treats Tardis's answers: auth rules, status codes, broken bodies. Each run
//! either completes with exactly the right rows or fails with the documented exit code and
//! message, and a bad body never becomes a cache entry or an output.

use fake_tardis::{FakeTardis, Fault};

use crate::support::{Env, KEY, csv_rows, date, read_parquet};

const DAY: &str = "2024-03-05";

fn path(day: &str) -> String {
    FakeTardis::dataset_path("deribit", "trades", date(day), "BTC-PERPETUAL")
}

async fn one_day(env: &Env) -> (String, std::path::PathBuf) {
    let csv = env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date(DAY), 20_000, 1);
    (csv, env.out.join("t.parquet"))
}

async fn fetch(env: &Env, out: &std::path::Path) -> crate::support::Run {
    env.download(&[
        "-e",
        "deribit",
        "-s",
        "BTC-PERPETUAL",
        "--from",
        DAY,
        "-o",
        out.to_str().unwrap(),
        "--json",
    ])
    .await
}

fn assert_rows(out: &std::path::Path, csv: &str) {
    let (_, rows) = read_parquet(out);
    assert!(rows == csv_rows(csv).1, "rows differ from the CSV");
}

fn assert_nothing_written(env: &Env) {
    assert!(env.cache_entries().is_empty(), "cache: {:?}", env.cache_entries());
    assert!(env.out_files().is_empty(), "output: {:?}", env.out_files());
    // The lock and the cached metadata are not data.
    let leftovers: Vec<_> = env
        .cache_files()
        .into_iter()
        .filter(|p| !p.ends_with(".lock") && !p.starts_with(env.cache.join("metadata")))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_only_first_of_month_days_are_requested() {
    let env = Env::new().await;
    let free = env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-01"), 1000, 1);
    env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-02"), 1000, 2);
    let out = env.out.join("t.parquet");
    let run = env
        .download_without_key(&[
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-03",
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
    run.code(1).stderr_has(
        "deribit/trades/BTC-PERPETUAL/2024-03-02: an API key is required for days other than the first of the month",
    );
    let reqs = env.tardis.dataset_requests();
    assert_eq!(reqs.len(), 1, "the non-free day is never requested");
    assert!(reqs[0].path.ends_with("/2024/03/01/BTC-PERPETUAL.csv.gz"));
    assert_eq!(reqs[0].authorization, None, "no Authorization header without a key");
    assert!(!out.exists(), "no merged file when a chunk failed");
    assert_eq!(env.cache_entries().len(), 1, "the free day stays cached");
    // Just the free day works without a key.
    env.download_without_key(&[
        "-e",
        "deribit",
        "-s",
        "BTC-PERPETUAL",
        "--from",
        "2024-03-01",
        "-o",
        out.to_str().unwrap(),
    ])
    .await
    .ok();
    assert_rows(&out, &free);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_is_sent_as_bearer_with_the_official_headers() {
    let env = Env::new().await;
    let (csv, out) = one_day(&env).await;
    fetch(&env, &out).await.ok();
    let r = &env.tardis.dataset_requests()[0];
    assert_eq!(r.authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(r.accept_encoding.as_deref(), Some("gzip"));
    assert!(r.user_agent.as_deref().unwrap_or_default().starts_with("tickvault/"));
    assert_rows(&out, &csv);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rejected_key_fails_fast_and_stops_the_run() {
    let env = Env::new().await;
    for d in ["2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"] {
        env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date(d), 100, 1);
    }
    let out = env.out.join("t.parquet");
    let mut c = env.cmd();
    c.args([
        "download",
        "--api-key",
        "wrong-key",
        "-e",
        "deribit",
        "-s",
        "BTC-PERPETUAL",
        "--from",
        "2024-03-05",
        "--to",
        "2024-03-09",
    ]);
    c.args(["-o", out.to_str().unwrap()]);
    let run = crate::support::run(c).await;
    run.code(1).stderr_has("HTTP 401").stderr_has("not attempted");
    let reqs: Vec<String> = env
        .tardis
        .dataset_requests()
        .iter()
        .map(|r| format!("{} {}", r.path, r.status))
        .collect();
    // Only probe days (the last, 03-08, and the first, 03-05) are asked, each once; a probe
    // whose 401 arrives first can stop the other probe before it is sent.
    assert!(!reqs.is_empty() && reqs.len() <= 2, "{reqs:?}\n{}", run.stderr);
    assert!(
        reqs.iter()
            .all(|r| (r.contains("/2024/03/08/") || r.contains("/2024/03/05/")) && r.ends_with(" 401")),
        "401 is not retried and stops the rest: {reqs:?}"
    );
    assert_nothing_written(&env);
    assert!(!run.stderr.contains("wrong-key"), "the key is never printed");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_file_is_not_retried_and_names_the_chunk() {
    let env = Env::new().await;
    // The metadata lists the symbol; the day's file is missing all the same.
    env.tardis.add_symbol(
        "deribit",
        fake_tardis::SymbolMeta::new("BTC-PERPETUAL", "perpetual", date("2019-03-30")),
    );
    let out = env.out.join("t.parquet");
    let run = fetch(&env, &out).await;
    run.code(1);
    let s = run.json();
    assert_eq!(s["status"], "failed");
    assert_eq!(s["chunks"]["failed"], 1);
    let err = s["failures"][0]["error"].as_str().unwrap();
    assert!(
        err.contains("/datasets/v1/deribit/trades/2024/03/05/BTC-PERPETUAL.csv.gz: HTTP 404"),
        "{err}"
    );
    assert_eq!(env.dataset_requests(), 1);
    assert_nothing_written(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn forbidden_and_bad_requests_are_not_retried() {
    for code in [403, 400] {
        let env = Env::new().await;
        let (_, out) = one_day(&env).await;
        env.tardis.script(&path(DAY), [Fault::status(code)]);
        fetch(&env, &out).await.code(1).stderr_has(&format!("HTTP {code}"));
        assert_eq!(env.dataset_requests(), 1, "{code} is final");
        assert_nothing_written(&env);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_400_about_iso_dates_is_retried_like_the_official_client() {
    let env = Env::new().await;
    let (csv, out) = one_day(&env).await;
    env.tardis.script(
        &path(DAY),
        [Fault::status_with_body(
            400,
            r#"{"code":100,"message":"Invalid 'from' param - ISO 8601 format expected"}"#,
        )],
    );
    fetch(&env, &out).await.ok();
    assert_eq!(env.dataset_requests(), 2);
    assert_rows(&out, &csv);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_answers_honour_retry_after() {
    let env = Env::new().await;
    let (csv, out) = one_day(&env).await;
    env.tardis.script(
        &path(DAY),
        [Fault::too_many_requests(Some(1)), Fault::too_many_requests(None)],
    );
    let started = std::time::Instant::now();
    let run = fetch(&env, &out).await;
    run.ok();
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    let reqs = env.tardis.dataset_requests();
    assert_eq!(reqs.len(), 3);
    assert_eq!(
        reqs[1].query.as_deref(),
        Some("retryAttempt=1"),
        "retries are marked as the official clients do"
    );
    assert_eq!(run.json()["tardis"]["retries"], 2);
    assert_rows(&out, &csv);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exhausted_quota_stops_at_once() {
    let env = Env::new().await;
    let (_, out) = one_day(&env).await;
    env.tardis.script(&path(DAY), [Fault::too_many_requests(Some(3600))]);
    let run = fetch(&env, &out).await;
    run.code(1)
        .stderr_has("Tardis quota exhausted: HTTP 429 asks to retry after 3600 s");
    assert_eq!(env.dataset_requests(), 1);
    assert_nothing_written(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_then_give_up_with_attempts_and_time() {
    let env = Env::new().await;
    let (csv, out) = one_day(&env).await;
    env.tardis
        .script(&path(DAY), [Fault::internal_error(), Fault::status(503)]);
    fetch(&env, &out).await.ok();
    assert_eq!(env.dataset_requests(), 3);
    assert_rows(&out, &csv);

    let env = Env::new().await;
    let (_, out) = one_day(&env).await;
    env.tardis
        .script(&path(DAY), std::iter::repeat_n(Fault::internal_error(), 10));
    let run = fetch(&env, &out).await;
    run.code(1)
        .stderr_has("HTTP 500")
        .stderr_has("gave up after 4 attempts over");
    assert_eq!(
        env.dataset_requests(),
        4,
        "1 attempt + max_retries = 3 from the test config"
    );
    assert_nothing_written(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_bodies_are_fetched_again_from_byte_zero() {
    let faults = [
        ("dropped mid-body", Fault::DropAfter(50_000)),
        ("truncated gzip", Fault::Truncate(50_000)),
        ("truncated to the trailer", Fault::Truncate(usize::MAX)),
        ("bad gzip CRC", Fault::CorruptCrc),
    ];
    for (what, fault) in faults {
        let env = Env::new().await;
        let (csv, out) = one_day(&env).await;
        let fault = match fault {
            // Cut just the last 4 bytes (ISIZE): everything decodes but the trailer check.
            Fault::Truncate(usize::MAX) => {
                let body = fake_tardis::generate::gzip_members(csv.as_bytes(), 3);
                Fault::Truncate(body.len() - 4)
            }
            f => f,
        };
        env.tardis.script(&path(DAY), [fault]);
        let run = fetch(&env, &out).await;
        run.ok();
        assert_eq!(env.dataset_requests(), 2, "{what}: one retry");
        assert_eq!(run.json()["tardis"]["retries"], 1, "{what}: the retry is counted");
        assert!(
            !run.stderr.contains("attempt 1 failed"),
            "{what}: a retry that succeeds is no warning (it is an info line with -v): {}",
            run.stderr
        );
        assert_rows(&out, &csv);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_that_keeps_breaking_leaves_no_cache_entry_and_no_output() {
    let env = Env::new().await;
    let (_, out) = one_day(&env).await;
    env.tardis
        .script(&path(DAY), std::iter::repeat_n(Fault::Truncate(30_000), 10));
    let run = fetch(&env, &out).await;
    run.code(1)
        .stderr_has("corrupt or truncated gzip")
        .stderr_has("gave up after 4 attempts");
    assert_nothing_written(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_body_times_out_and_is_retried() {
    let env = Env::new().await;
    let (csv, out) = one_day(&env).await;
    env.tardis.script(
        &path(DAY),
        [Fault::Stall {
            after: 10_000,
            duration: std::time::Duration::from_secs(5),
        }],
    );
    fetch(&env, &out).await.ok();
    assert_eq!(
        env.dataset_requests(),
        2,
        "read_timeout (3 s in the test config) ends the stalled attempt"
    );
    assert_rows(&out, &csv);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_header_that_differs_names_the_file_and_columns() {
    let env = Env::new().await;
    let snap = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/real/nautilus_trader/btcusdt-depth-snap.csv"
    ))
    .unwrap();
    env.tardis.add_csv(
        "binance-futures",
        "incremental_book_L2",
        date("2022-11-01"),
        "BTCUSDT",
        &snap,
    );
    let out = env.out.join("x.parquet");
    let run = env
        .download(&[
            "-e",
            "binance-futures",
            "-s",
            "BTCUSDT",
            "-t",
            "incremental_book_L2",
            "--from",
            "2022-11-01",
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
    run.code(1)
        .stderr_has("binance-futures/incremental_book_L2/2022/11/01/BTCUSDT.csv.gz: unexpected CSV header for incremental_book_L2")
        .stderr_has("missing 'exchange'")
        .stderr_has("unexpected 'first_update_id'");
    assert_eq!(env.dataset_requests(), 1, "a header mismatch is not retried");
    assert_nothing_written(&env);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_failed_chunk_keeps_the_others_cached_and_a_rerun_fetches_only_it() {
    let env = Env::new().await;
    for d in ["2024-03-05", "2024-03-06", "2024-03-07"] {
        env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date(d), 1000, 1);
    }
    env.tardis
        .script(&path("2024-03-06"), std::iter::repeat_n(Fault::internal_error(), 4));
    let out = env.out.join("t.parquet");
    let args = [
        "-e",
        "deribit",
        "-s",
        "BTC-PERPETUAL",
        "--from",
        "2024-03-05",
        "--to",
        "2024-03-08",
        "-o",
        out.to_str().unwrap(),
    ];
    env.download(&args)
        .await
        .code(1)
        .stderr_has("re-run fetches only the missing");
    assert!(!out.exists());
    assert_eq!(env.cache_entries().len(), 2);
    let before = env.dataset_requests();
    env.download(&args).await.ok();
    assert_eq!(env.dataset_requests() - before, 1);
    assert!(out.exists());
}
