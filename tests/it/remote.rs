//! The shared remote cache through the real binary: a team fetches each day once, a dead,
//! slow or lying remote degrades to Tardis with warnings, read-only and offline modes.

use std::time::Duration;

use crate::support::nginx::Nginx;
use crate::support::{Env, Run, date, files_under, read_parquet};

const ARGS: [&str; 8] = [
    "-e",
    "binance-futures",
    "-s",
    "BTCUSDT,ETHUSDT",
    "--from",
    "2024-03-01",
    "--to",
    "2024-03-04",
];
const OUT_NAME: &str = "binance-futures_trades_BTCUSDT+ETHUSDT_2024-03-01_2024-03-04.parquet";

fn serve(env: &Env) {
    for (d, day) in ["2024-03-01", "2024-03-02", "2024-03-03"].iter().enumerate() {
        for (s, sym) in ["BTCUSDT", "ETHUSDT"].iter().enumerate() {
            env.serve_generated("binance-futures", "trades", sym, date(day), 3_000, (d * 10 + s) as u64);
        }
    }
}

/// `download ARGS -o OUT --cache-dir CACHE --remote-cache URL --json EXTRA`.
async fn pull(env: &Env, cache: &std::path::Path, out: &std::path::Path, remote: &str, extra: &[&str]) -> Run {
    let mut args = ARGS.to_vec();
    let (c, o) = (cache.to_str().unwrap(), out.to_str().unwrap());
    args.extend(["--cache-dir", c, "-o", o, "--remote-cache", remote, "--json"]);
    args.extend_from_slice(extra);
    env.download(&args).await
}

#[tokio::test(flavor = "multi_thread")]
async fn machine_b_gets_everything_from_the_remote_while_tardis_is_down() {
    let env = Env::new().await;
    serve(&env);
    let nginx = Nginx::start(None);
    let (cache_a, out_a) = (env.dir.path().join("a-cache"), env.dir.path().join("a-out"));
    let a = pull(&env, &cache_a, &out_a, &nginx.url(), &[]).await;
    a.ok();
    let sa = a.json();
    assert_eq!(sa["chunks"]["tardis"], 6);
    assert_eq!(
        sa["uploads"]["uploaded"], 6,
        "every fetched chunk is uploaded before exit"
    );
    assert_eq!(files_under(&nginx.root().join("cache/v1")).len(), 6);

    env.tardis.fail_all(Some(500));
    env.tardis.clear_requests();
    // Tardis is down, its metadata API too: --no-validate says so.
    let (cache_b, out_b) = (env.dir.path().join("b-cache"), env.dir.path().join("b-out"));
    let b = pull(&env, &cache_b, &out_b, &nginx.url(), &["--no-validate"]).await;
    b.ok();
    let sb = b.json();
    assert_eq!(sb["chunks"]["remote"], 6);
    assert_eq!(sb["tardis"]["requests"], 0);
    assert_eq!(
        env.tardis.requests().len(),
        0,
        "zero requests to Tardis, the metadata API included"
    );
    assert!(sb["bytes_from_cache"].as_u64().unwrap() > 0);
    assert!(
        std::fs::read(out_a.join(OUT_NAME)).unwrap() == std::fs::read(out_b.join(OUT_NAME)).unwrap(),
        "machine B's output is byte-identical to machine A's"
    );
    // B back-filled its local tier: a third run needs neither Tardis nor the remote.
    drop(nginx);
    let c = pull(
        &env,
        &cache_b,
        &env.dir.path().join("c-out"),
        "http://127.0.0.1:9/cache/",
        &["--no-validate"],
    )
    .await;
    c.ok();
    assert_eq!(c.json()["chunks"]["local"], 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_that_is_down_degrades_to_tardis_with_a_warning() {
    let env = Env::new().await;
    serve(&env);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = env.dir.path().join("out");
    let run = pull(&env, &env.cache, &out, &format!("http://127.0.0.1:{port}/cache/"), &[]).await;
    run.ok().stderr_has("remote cache http://127.0.0.1");
    let s = run.json();
    assert_eq!(s["chunks"]["tardis"], 6);
    assert!(
        run.stderr.contains("not using it for the rest of this run"),
        "{}",
        run.stderr
    );
    assert!(out.join(OUT_NAME).exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_that_never_answers_times_out_and_degrades_to_tardis() {
    let env = Env::new().await;
    serve(&env);
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let started = std::time::Instant::now();
    let out = env.dir.path().join("out");
    let run = pull(&env, &env.cache, &out, &format!("http://127.0.0.1:{port}/cache/"), &[]).await;
    run.ok().stderr_has("timed out");
    assert_eq!(run.json()["chunks"]["tardis"], 6);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a dead remote must not hang the run"
    );
    hold.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_from_the_remote_is_a_miss_and_is_replaced() {
    let env = Env::new().await;
    serve(&env);
    let nginx = Nginx::start(None);
    let key_dir = nginx.root().join("cache/v1/binance-futures/trades/BTCUSDT");
    std::fs::create_dir_all(&key_dir).unwrap();
    std::fs::write(key_dir.join("2024-03-01.parquet"), b"<html>502 Bad Gateway</html>").unwrap();
    let run = pull(&env, &env.cache, &env.dir.path().join("out"), &nginx.url(), &[]).await;
    run.ok().stderr_has("is corrupt");
    assert_eq!(run.json()["chunks"]["tardis"], 6);
    let fixed = std::fs::read(key_dir.join("2024-03-01.parquet")).unwrap();
    assert!(
        tickvault::cache::chunk_file::verify_bytes(&fixed, None).is_ok(),
        "the read-write run uploaded a good copy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_mode_reads_but_never_writes() {
    let env = Env::new().await;
    serve(&env);
    let nginx = Nginx::start(None);
    let run = pull(
        &env,
        &env.cache,
        &env.dir.path().join("out"),
        &nginx.url(),
        &["--remote-cache-mode", "read-only"],
    )
    .await;
    run.ok();
    assert_eq!(run.json()["uploads"]["uploaded"], 0);
    let log = nginx.requests();
    assert!(
        log.iter().all(|l| l.starts_with("GET ")),
        "read-only sends no PUT/MKCOL/DELETE: {log:?}"
    );
    assert_eq!(log.len(), 6, "one lookup per chunk");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bearer_token_comes_from_the_environment() {
    let env = Env::new().await;
    serve(&env);
    let nginx = Nginx::start(Some("team-token"));
    // Without the token every request is refused: warnings, Tardis, success.
    let run = pull(&env, &env.cache, &env.dir.path().join("o1"), &nginx.url(), &[]).await;
    run.ok().stderr_has("401");
    // With it, uploads and lookups work.
    let mut c = env.cmd();
    let cache2 = env.dir.path().join("c2");
    c.env("TICKVAULT_REMOTE_CACHE_TOKEN", "team-token")
        .env("TICKVAULT_REMOTE_CACHE", nginx.url());
    c.arg("download").args(ARGS).args([
        "--api-key",
        crate::support::KEY,
        "--cache-dir",
        cache2.to_str().unwrap(),
    ]);
    c.args(["-o", env.dir.path().join("o2").to_str().unwrap(), "--json"]);
    let run = crate::support::run(c).await;
    run.ok();
    assert_eq!(run.json()["uploads"]["uploaded"], 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_serves_from_the_tiers_and_names_what_is_missing() {
    let env = Env::new().await;
    serve(&env);
    let nginx = Nginx::start(None);
    pull(&env, &env.cache, &env.dir.path().join("o1"), &nginx.url(), &[])
        .await
        .ok();
    env.tardis.clear_requests();
    // A fresh machine, offline: no metadata cached, so validation is refused…
    let fresh = pull(
        &env,
        &env.dir.path().join("c2"),
        &env.dir.path().join("o2"),
        &nginx.url(),
        &["--offline"],
    )
    .await;
    fresh
        .code(2)
        .stderr_has("--offline: no cached metadata for exchanges/binance-futures");
    // …unless skipped: everything from the remote.
    let run = pull(
        &env,
        &env.dir.path().join("c2"),
        &env.dir.path().join("o2"),
        &nginx.url(),
        &["--offline", "--no-validate"],
    )
    .await;
    run.ok();
    assert_eq!(run.json()["chunks"]["remote"], 6);
    // Offline with a day no tier holds: exit 1, the chunks named, no request.
    let mut args = vec![
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-06",
        "--offline",
    ];
    let out = env.dir.path().join("o3");
    args.extend(["-o", out.to_str().unwrap()]);
    let run = env.download(&args).await;
    run.code(1)
        .stderr_has(
            "binance-futures/trades/BTCUSDT/2024-03-04: not in any cache tier and --offline forbids fetching it",
        )
        .stderr_has("binance-futures/trades/BTCUSDT/2024-03-05: not in any cache tier");
    assert_eq!(env.tardis.requests().len(), 0);
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_fetches_again_and_overwrites_every_tier() {
    let env = Env::new().await;
    serve(&env);
    let nginx = Nginx::start(None);
    pull(&env, &env.cache, &env.dir.path().join("o1"), &nginx.url(), &[])
        .await
        .ok();
    // Tardis republishes a day with different content.
    let fixed = env.serve_generated("binance-futures", "trades", "BTCUSDT", date("2024-03-02"), 1_234, 99);
    let run = pull(
        &env,
        &env.cache,
        &env.dir.path().join("o2"),
        &nginx.url(),
        &["--refresh"],
    )
    .await;
    run.ok();
    let s = run.json();
    assert_eq!(s["chunks"]["tardis"], 6);
    assert_eq!(s["uploads"]["uploaded"], 6);
    let remote_copy = std::fs::read(
        nginx
            .root()
            .join("cache/v1/binance-futures/trades/BTCUSDT/2024-03-02.parquet"),
    )
    .unwrap();
    assert_eq!(
        tickvault::cache::chunk_file::verify_bytes(&remote_copy, None)
            .unwrap()
            .rows,
        1_234
    );
    let (_, rows) = read_parquet(&env.dir.path().join("o2").join(OUT_NAME));
    assert_eq!(rows.len(), 5 * 3_000 + 1_234);
    assert_eq!(crate::support::csv_rows(&fixed).1.len(), 1_234);
}

#[tokio::test(flavor = "multi_thread")]
async fn days_tardis_has_not_finished_exporting_are_never_cached_as_complete() {
    let env = Env::new().await;
    serve(&env);
    env.tardis
        .set_exported_until("binance-futures", "2024-03-02T00:00:00Z".parse().unwrap());
    let nginx = Nginx::start(None);
    let run = pull(
        &env,
        &env.cache,
        &env.dir.path().join("o1"),
        &nginx.url(),
        &["--allow-incomplete"],
    )
    .await;
    run.ok().stderr_has("has not finished exporting");
    let s = run.json();
    assert_eq!(s["chunks"]["incomplete"], 4, "2024-03-02 and 2024-03-03, two symbols");
    assert_eq!(s["uploads"]["uploaded"], 2, "only the exported day goes to the remote");
    let remote: Vec<_> = files_under(&nginx.root().join("cache/v1"));
    assert!(
        remote.iter().all(|p| p.to_str().unwrap().contains("2024-03-01")),
        "{remote:?}"
    );
    // Next run: the exported day is a hit, the others are fetched again.
    env.tardis.clear_requests();
    let again = pull(
        &env,
        &env.cache,
        &env.dir.path().join("o2"),
        &nginx.url(),
        &["--allow-incomplete"],
    )
    .await;
    again.ok();
    assert_eq!(again.json()["chunks"]["local"], 2);
    assert_eq!(env.tardis.dataset_requests().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn machine_b_reads_a_team_cache_on_s3() {
    let moto = crate::support::moto::Moto::start();
    let bucket = moto.bucket("team-cache").await;
    let env = Env::new().await;
    serve(&env);
    let url = format!("s3://{bucket}/tickvault");
    let run_on = |cache: std::path::PathBuf, out: std::path::PathBuf, no_validate: bool| {
        let mut c = env.cmd();
        for (k, v) in moto.env() {
            c.env(k, v);
        }
        c.arg("download")
            .args(ARGS)
            .args(["--api-key", crate::support::KEY, "--remote-cache", &url, "--json"]);
        c.args(["--cache-dir", cache.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        if no_validate {
            c.arg("--no-validate");
        }
        crate::support::run(c)
    };
    let a = run_on(env.dir.path().join("a"), env.dir.path().join("ao"), false).await;
    a.ok();
    assert_eq!(a.json()["uploads"]["uploaded"], 6);
    env.tardis.fail_all(Some(500));
    env.tardis.clear_requests();
    let b = run_on(env.dir.path().join("b"), env.dir.path().join("bo"), true).await;
    b.ok();
    assert_eq!(b.json()["chunks"]["remote"], 6);
    assert_eq!(env.tardis.requests().len(), 0);
    assert!(
        std::fs::read(env.dir.path().join("ao").join(OUT_NAME)).unwrap()
            == std::fs::read(env.dir.path().join("bo").join(OUT_NAME)).unwrap()
    );
}
