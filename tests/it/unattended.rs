//! Running unattended: named jobs and config discovery, relative dates with a pinned clock,
//! logs for mail and CI (no colour in a pipe, JSON lines, -v lines), --dry-run, JSON on
//! stdout for every failure, true totals when interrupted, completions, help without secrets.

use std::path::{Path, PathBuf};

use fake_tardis::Fault;
use serde_json::Value;

use crate::support::{Env, KEY, Run, date, files_under};

/// The clock of these tests: 07:15 UTC on 2024-03-07, so "yesterday" is 2024-03-06.
const NOW: &str = "2024-03-07T07:15:00Z";

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Runs `tickvault ARGS` with the key, the pinned clock and `extra` environment variables.
async fn tv(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> Run {
    let mut c = env.cmd();
    c.env("TARDIS_API_KEY", KEY).env("TICKVAULT_NOW", NOW).args(args);
    for (k, v) in extra {
        c.env(k, v);
    }
    crate::support::run(c).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_runs_with_flag_and_env_overrides() {
    let env = Env::new().await;
    for t in ["trades", "quotes"] {
        for s in ["BTC-PERPETUAL", "ETH-PERPETUAL"] {
            env.serve_generated("deribit", t, s, date("2024-03-06"), 100, 1);
        }
    }
    let fast = std::fs::read_to_string(&env.config).unwrap();
    let job_out = env.dir.path().join("job-out");
    write(
        &env.config,
        &format!(
            "{fast}\noutput = \"{}\"\ndata_types = [\"liquidations\"]\n\n[jobs.nightly]\nexchange = \"deribit\"\nsymbols = [\"BTC-PERPETUAL\"]\ndata_types = [\"quotes\"]\nfrom = \"yesterday\"\noutput = \"{}\"\n",
            env.out.display(),
            job_out.display()
        ),
    );
    // The job alone: its values over the top level's.
    let run = tv(&env, &["download", "--job", "nightly", "--json"], &[]).await;
    run.ok();
    let s = run.json();
    assert_eq!(
        (s["exchange"].as_str(), s["data_types"][0].as_str()),
        (Some("deribit"), Some("quotes"))
    );
    assert_eq!(s["from"], "2024-03-06T00:00:00Z", "yesterday of the pinned clock");
    assert_eq!(s["to"], "2024-03-07T00:00:00Z");
    assert!(
        s["outputs"][0]["path"]
            .as_str()
            .unwrap()
            .starts_with(job_out.to_str().unwrap())
    );
    // A flag and an environment variable override the job.
    let run = tv(
        &env,
        &["download", "--job", "nightly", "-t", "trades", "--json"],
        &[("TICKVAULT_SYMBOLS", "ETH-PERPETUAL")],
    )
    .await;
    run.ok();
    let s = run.json();
    assert_eq!(
        (s["data_types"][0].as_str(), s["symbols"][0].as_str()),
        (Some("trades"), Some("ETH-PERPETUAL"))
    );
    // An unknown job names the jobs there are.
    tv(&env, &["download", "--job", "weekly"], &[])
        .await
        .code(2)
        .stderr_has("no [jobs.weekly] table")
        .stderr_has("its jobs: nightly");
}

/// `tickvault config --json` with HOME's config dir holding `home`, `TICKVAULT_CONFIG` and
/// `--config` as given.
async fn config_file_found(env: &Env, env_var: Option<&Path>, flag: Option<&Path>) -> Value {
    let mut c = env.cmd();
    c.env_remove("TICKVAULT_CONFIG")
        .env("XDG_CONFIG_HOME", env.dir.path().join(".config"));
    if let Some(p) = env_var {
        c.env("TICKVAULT_CONFIG", p);
    }
    c.args(["config", "--json"]);
    if let Some(p) = flag {
        c.arg("--config").arg(p);
    }
    let run = crate::support::run(c).await;
    run.ok();
    run.json()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_config_file_is_found_by_flag_then_env_then_the_platform_dir() {
    let env = Env::new().await;
    let home = write(
        &env.dir.path().join(".config/tickvault/config.toml"),
        "concurrency = 3\n",
    );
    let by_env = write(&env.dir.path().join("env.toml"), "concurrency = 4\n");
    let by_flag = write(&env.dir.path().join("flag.toml"), "concurrency = 5\n");
    let concurrency = |v: &Value| {
        v["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "concurrency")
            .cloned()
            .unwrap()
    };
    let v = config_file_found(&env, Some(&by_env), Some(&by_flag)).await;
    assert_eq!(v["config_file"], by_flag.to_str().unwrap());
    assert_eq!(
        (concurrency(&v)["value"].as_str(), concurrency(&v)["source"].as_str()),
        (Some("5"), Some("file"))
    );
    let v = config_file_found(&env, Some(&by_env), None).await;
    assert_eq!(v["config_file"], by_env.to_str().unwrap());
    let v = config_file_found(&env, None, None).await;
    assert_eq!(v["config_file"], home.to_str().unwrap());
    assert_eq!(concurrency(&v)["value"], "3");
    std::fs::remove_file(&home).unwrap();
    let v = config_file_found(&env, None, None).await;
    assert!(v["config_file"].is_null(), "{v}");
    assert_eq!(
        (concurrency(&v)["value"].as_str(), concurrency(&v)["source"].as_str()),
        (Some("20"), Some("default"))
    );
    // A given file must exist.
    let mut c = env.cmd();
    c.args(["config", "--config"]).arg(env.dir.path().join("missing.toml"));
    crate::support::run(c)
        .await
        .code(2)
        .stderr_has("cannot read config file");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_keys_name_the_key_and_the_file_at_the_top_and_in_a_job() {
    let env = Env::new().await;
    for (text, needle) in [
        ("concurency = 3\n", "unknown key 'concurency' in config file"),
        (
            "[jobs.nightly]\nexchange = \"deribit\"\nsymbol = [\"X\"]\n",
            "unknown key 'symbol' in [jobs.nightly] of config file",
        ),
    ] {
        let path = write(&env.dir.path().join(".config/tickvault/config.toml"), text);
        let mut c = env.cmd();
        c.env_remove("TICKVAULT_CONFIG")
            .env("XDG_CONFIG_HOME", env.dir.path().join(".config"))
            .args(["download", "--job", "nightly"]);
        let run = crate::support::run(c).await;
        run.code(2).stderr_has(needle).stderr_has(path.to_str().unwrap());
        assert_eq!(env.tardis.requests().len(), 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn relative_dates_resolve_against_a_pinned_clock_and_show_resolved() {
    let env = Env::new().await;
    for d in ["2024-03-04", "2024-03-05", "2024-03-06"] {
        env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date(d), 100, 1);
    }
    let out = env.out.to_str().unwrap().to_string();
    let base = ["download", "-e", "deribit", "-s", "BTC-PERPETUAL", "-o", &out];
    let cases: [(&[&str], &str, &str, u64); 4] = [
        (
            &["--from", "yesterday"],
            "2024-03-06T00:00:00Z",
            "2024-03-07T00:00:00Z",
            1,
        ),
        (
            &["--from", "-3d", "--to", "today"],
            "2024-03-04T00:00:00Z",
            "2024-03-07T00:00:00Z",
            3,
        ),
        (
            &["--from", "today-2d", "--to", "-1d"],
            "2024-03-05T00:00:00Z",
            "2024-03-06T00:00:00Z",
            1,
        ),
        (
            &["--from", "now-31h", "--to", "now-30h"],
            "2024-03-06T00:15:00Z",
            "2024-03-06T01:15:00Z",
            1,
        ),
    ];
    for (args, from, to, chunks) in cases {
        let mut all: Vec<&str> = base.to_vec();
        all.extend_from_slice(args);
        all.push("--json");
        let run = tv(&env, &all, &[]).await;
        run.ok();
        let s = run.json();
        assert_eq!(
            (s["from"].as_str(), s["to"].as_str()),
            (Some(from), Some(to)),
            "{args:?}"
        );
        assert_eq!(s["chunks"]["total"], chunks, "{args:?}");
    }
    // The human summary and the -v log show the resolved range.
    let mut all: Vec<&str> = base.to_vec();
    all.extend_from_slice(&["--from", "yesterday", "-v"]);
    let run = tv(&env, &all, &[]).await;
    run.ok()
        .stderr_has("deribit trades BTC-PERPETUAL: 2024-03-06T00:00:00Z to 2024-03-07T00:00:00Z, 1 chunks")
        .stderr_has("deribit trades BTC-PERPETUAL, 2024-03-06T00:00:00Z to 2024-03-07T00:00:00Z");
}

/// A one-day pull whose first attempt fails with a 500, so a retry is logged.
async fn pull_with_a_retry(env: &Env, args: &[&str], extra: &[(&str, &str)]) -> Run {
    env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-05"), 200, 1);
    env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-06"), 200, 2);
    env.tardis.script(
        &fake_tardis::FakeTardis::dataset_path("deribit", "trades", date("2024-03-05"), "BTC-PERPETUAL"),
        [Fault::internal_error()],
    );
    let out = env.out.to_str().unwrap().to_string();
    let mut all = vec![
        "download",
        "-e",
        "deribit",
        "-s",
        "BTC-PERPETUAL",
        "--from",
        "2024-03-05",
        "--to",
        "2024-03-07",
        "-o",
        &out,
    ];
    all.extend_from_slice(args);
    tv(env, &all, extra).await
}

#[tokio::test(flavor = "multi_thread")]
async fn stderr_in_a_pipe_has_no_escape_codes_and_has_timestamps() {
    let env = Env::new().await;
    env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-05"), 200, 1);
    // No NO_COLOR, and a terminal type that has colour: still none in a pipe.
    let mut c = env.cmd();
    c.env_remove("NO_COLOR")
        .env("TERM", "xterm-256color")
        .env("TARDIS_API_KEY", KEY)
        .args([
            "download",
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-05",
            "-v",
        ])
        .arg("-o")
        .arg(&env.out);
    let run = crate::support::run(c).await;
    run.ok();
    assert!(!run.stderr.contains('\x1b'), "escape codes in a pipe: {:?}", run.stderr);
    let line = run.stderr.lines().find(|l| l.contains("INFO")).expect("an info line");
    let time = line.split_whitespace().next().unwrap();
    assert!(
        time.parse::<jiff::Timestamp>().is_ok() && time.ends_with('Z'),
        "a UTC timestamp: {line}"
    );
    // --color always forces them (so the check above could fail).
    let mut c = env.cmd();
    c.env("TARDIS_API_KEY", KEY)
        .args([
            "download",
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-05",
            "-v",
        ])
        .args(["--color", "always", "-o"])
        .arg(&env.out);
    let run = crate::support::run(c).await;
    run.ok();
    assert!(run.stderr.contains("\x1b[32m INFO\x1b[0m"), "{:?}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn verbose_logs_a_line_per_chunk_output_and_retry_and_json_lines_parse() {
    let env = Env::new().await;
    let run = pull_with_a_retry(&env, &["--log-format", "json", "-v"], &[]).await;
    run.ok();
    let lines: Vec<Value> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let events = |name: &str| -> Vec<&Value> { lines.iter().filter(|l| l["event"] == name).collect() };
    for l in &lines {
        assert!(l["time"].as_str().unwrap().parse::<jiff::Timestamp>().is_ok(), "{l}");
        assert!(l["level"].is_string() && l["message"].is_string(), "{l}");
    }
    let chunks = events("chunk");
    assert_eq!(chunks.len(), 2, "{}", run.stderr);
    for c in &chunks {
        assert_eq!(c["tier"], "tardis");
        assert!(
            c["chunk"]
                .as_str()
                .unwrap()
                .starts_with("deribit/trades/BTC-PERPETUAL/2024-03-0")
        );
        assert!(c["bytes"].as_u64().unwrap() > 0 && c["rows"] == 200, "{c}");
        assert!(c["seconds"].as_f64().is_some(), "{c}");
    }
    let retries = events("retry");
    assert_eq!(retries.len(), 1, "{}", run.stderr);
    assert_eq!(retries[0]["attempt"], 1);
    assert_eq!(retries[0]["level"], "info");
    assert!(
        retries[0]["reason"].as_str().unwrap().contains("HTTP 500"),
        "{}",
        retries[0]
    );
    assert_eq!(events("output").len(), 1);
    assert_eq!(events("plan").len(), 1);
    // Text: one line per chunk and output; the retry is collapsed into the summary's count
    // at the default level.
    let env = Env::new().await;
    let run = pull_with_a_retry(&env, &["-v"], &[]).await;
    run.ok();
    let chunk_lines = run
        .stderr
        .lines()
        .filter(|l| l.contains("INFO deribit/trades/BTC-PERPETUAL/2024-03-0") && l.contains(": tardis, "))
        .count();
    assert_eq!(chunk_lines, 2, "{}", run.stderr);
    run.stderr_has("attempt 1 failed")
        .stderr_has("deribit_trades_BTC-PERPETUAL_2024-03-05_2024-03-07.parquet: Written");
    let env = Env::new().await;
    let run = pull_with_a_retry(&env, &[], &[]).await;
    run.ok()
        .stderr_has("1 request(s) retried after transient errors; every chunk succeeded");
    assert!(
        !run.stderr.contains("WARN") && !run.stderr.contains("INFO"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_plain_prints_lines_with_bytes_while_a_body_streams() {
    let env = Env::new().await;
    let csv = env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-05"), 20_000, 1);
    let gz_len = fake_tardis::generate::gzip_members(csv.as_bytes(), 3).len() as u64;
    // About 2 s for the body.
    env.tardis.script(
        &fake_tardis::FakeTardis::dataset_path("deribit", "trades", date("2024-03-05"), "BTC-PERPETUAL"),
        [Fault::trickle(gz_len / 2)],
    );
    let run = tv(
        &env,
        &[
            "download",
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-05",
            "--progress",
            "plain",
            "--progress-interval",
            "300ms",
            "-o",
            env.out.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    run.ok();
    let moving = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("progress: 0/1 chunks, ") && !l.contains(", 0 B from Tardis"))
        .count();
    assert!(moving >= 2, "bytes counted before the chunk ended:\n{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_shows_the_plan_with_zero_dataset_requests_and_writes_nothing() {
    let env = Env::new().await;
    for d in ["2024-03-05", "2024-03-06", "2024-03-07"] {
        env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date(d), 100, 1);
    }
    let remote = env.dir.path().join("remote");
    let remote_url = format!("file://{}/", remote.display());
    let out = env.out.to_str().unwrap().to_string();
    let pull = |from: &'static str, cache: PathBuf, remote: bool| {
        let mut args = vec![
            "download".to_string(),
            "-e".into(),
            "deribit".into(),
            "-s".into(),
            "BTC-PERPETUAL".into(),
            "--from".into(),
            from.into(),
            "--cache-dir".into(),
            cache.display().to_string(),
            "-o".into(),
            env.dir.path().join("warm-out").display().to_string(),
        ];
        if remote {
            args.extend(["--remote-cache".into(), remote_url.clone()]);
        }
        args
    };
    // 03-05 in the local cache, 03-06 only on the remote, 03-07 nowhere.
    let a: Vec<String> = pull("2024-03-05", env.cache.clone(), false);
    tv(&env, &a.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        .await
        .ok();
    let b: Vec<String> = pull("2024-03-06", env.dir.path().join("other-cache"), true);
    tv(&env, &b.iter().map(String::as_str).collect::<Vec<_>>(), &[])
        .await
        .ok();
    env.tardis.clear_requests();
    env.tardis
        .set_exported_until("deribit", "2024-03-07T00:00:00Z".parse().unwrap());
    let before = files_under(env.dir.path());

    let args = [
        "download",
        "-e",
        "deribit",
        "-s",
        "BTC-PERPETUAL",
        "--from",
        "2024-03-05",
        "--to",
        "2024-03-08",
        "--remote-cache",
        &remote_url,
        "-o",
        &out,
        "--dry-run",
    ];
    let run = tv(&env, &[&args[..], &["--json"]].concat(), &[]).await;
    run.ok();
    let plan = run.json();
    assert_eq!(plan["status"], "dry_run");
    let tiers: Vec<(&str, &str, Option<bool>)> = plan["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["chunk"].as_str().unwrap(),
                c["tier"].as_str().unwrap(),
                c["complete"].as_bool(),
            )
        })
        .collect();
    let mut tiers = tiers;
    tiers.sort();
    assert_eq!(
        tiers,
        vec![
            ("deribit/trades/BTC-PERPETUAL/2024-03-05", "local", Some(true)),
            ("deribit/trades/BTC-PERPETUAL/2024-03-06", "remote", Some(true)),
            ("deribit/trades/BTC-PERPETUAL/2024-03-07", "tardis", Some(false)),
        ]
    );
    assert_eq!(plan["exported_until"], "2024-03-07T00:00:00Z");
    assert_eq!(
        plan["outputs"][0]["path"],
        env.out
            .join("deribit_trades_BTC-PERPETUAL_2024-03-05_2024-03-08.parquet")
            .to_str()
            .unwrap()
    );
    // The table says the same.
    let run = tv(&env, &args, &[]).await;
    run.ok();
    assert!(
        run.stdout.contains("3 chunks (1 local, 1 remote, 1 from Tardis)") && run.stdout.contains("would write"),
        "{}",
        run.stdout
    );
    assert_eq!(env.dataset_requests(), 0, "no dataset request");
    assert_eq!(files_under(env.dir.path()), before, "nothing written");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_failure_under_json_prints_a_json_document_on_stdout() {
    let env = Env::new().await;
    let bad_config = write(&env.dir.path().join("bad.toml"), "concurency = 1\n");
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["download", "--json", "--symbol", "X"],
            vec![],
            "unexpected argument '--symbol'",
        ),
        (
            vec!["download", "--symbol", "X"],
            vec![("TICKVAULT_JSON", "1")],
            "unexpected argument",
        ),
        (
            vec!["download", "--json"],
            vec![],
            "missing --exchange ID, --symbols LIST, --from DATE",
        ),
        (
            vec!["download", "--json", "--config", bad_config.to_str().unwrap()],
            vec![],
            "unknown key 'concurency'",
        ),
        (
            vec!["download", "--json", "--log-format", "xml"],
            vec![],
            "invalid --log-format 'xml'",
        ),
        (vec!["cache", "prune", "--json"], vec![], "--max-size"),
    ];
    for (args, extra, needle) in cases {
        let run = tv(&env, &args, &extra).await;
        run.code(2);
        assert_eq!(run.stdout.trim().lines().count(), 1, "{args:?}: {}", run.stdout);
        let v = run.json();
        assert_eq!(
            (v["status"].as_str(), v["exit_code"].as_u64()),
            (Some("usage_error"), Some(2)),
            "{args:?}"
        );
        assert_eq!(v["schema"], 1);
        assert!(v["error"].as_str().unwrap().contains(needle), "{args:?}: {v}");
        assert!(run.stderr.contains(needle), "stderr too: {}", run.stderr);
    }
    // A run summary carries the schema version too.
    env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-05"), 10, 1);
    let run = tv(
        &env,
        &[
            "download",
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-05",
            "--json",
            "-o",
            env.out.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert_eq!(run.ok().json()["schema"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_reports_its_true_totals() {
    let env = Env::new().await;
    for d in ["2024-03-05", "2024-03-06", "2024-03-07"] {
        env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date(d), 1000, 1);
    }
    let out = env.out.to_str().unwrap().to_string();
    let args = ["download", "-e", "deribit", "-s", "BTC-PERPETUAL", "-o", &out, "--from"];
    tv(&env, &[&args[..], &["2024-03-05"]].concat(), &[]).await.ok();
    env.tardis.set_first_byte_latency(std::time::Duration::from_secs(30));
    env.tardis.clear_requests();
    let mut c = env.cmd();
    c.env("TARDIS_API_KEY", KEY)
        .args(args)
        .args(["2024-03-05", "--to", "2024-03-08", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while env.tardis.dataset_requests().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(130));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["status"], "interrupted");
    let c = &s["chunks"];
    assert_eq!((c["total"].as_u64(), c["local"].as_u64()), (Some(3), Some(1)), "{s}");
    assert_eq!((c["pending"].as_u64(), c["failed"].as_u64()), (Some(2), Some(0)), "{s}");
    assert!(s["tardis"]["requests"].as_u64().unwrap() >= 1, "{s}");
}

#[tokio::test(flavor = "multi_thread")]
async fn completions_and_man_pages_generate() {
    let env = Env::new().await;
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let run = env.tickvault(&["completions", shell]).await;
        run.ok();
        assert!(
            run.stdout.contains("download") && run.stdout.contains("data-types"),
            "{shell}"
        );
    }
    let script = env.dir.path().join("tickvault.bash");
    std::fs::write(&script, env.tickvault(&["completions", "bash"]).await.stdout).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let run = env.tickvault(&["man"]).await;
    run.ok();
    assert!(run.stdout.contains(".TH tickvault") && run.stdout.contains("download"));
    let run = env.tickvault(&["man", "download"]).await;
    assert!(run.ok().stdout.contains("\\-\\-dry\\-run"));
    env.tickvault(&["completions", "tcsh"]).await.code(2);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_and_config_never_show_credentials_from_the_environment() {
    let env = Env::new().await;
    let secrets = [
        ("TARDIS_API_KEY", "sk-HELPLEAK-1"),
        ("TICKVAULT_REMOTE_CACHE_TOKEN", "tok-HELPLEAK-2"),
        (
            "TICKVAULT_REMOTE_CACHE",
            "https://user:pw-HELPLEAK-3@cache.example.com/tv/",
        ),
        (
            "TICKVAULT_DATASETS_URL",
            "https://u:pw-HELPLEAK-4@datasets.example.com/v1",
        ),
    ];
    for args in [
        &["--help"][..],
        &["download", "--help"],
        &["download", "-h"],
        &["cache", "stats", "--help"],
        &["config", "--help"],
        &["config"],
        &["config", "--json"],
    ] {
        let mut c = env.cmd();
        c.envs(secrets).args(args);
        let run = crate::support::run(c).await;
        run.ok();
        for (_, secret) in secrets {
            let needle = &secret[secret.find("HELPLEAK").unwrap()..];
            assert!(
                !run.stdout.contains(needle) && !run.stderr.contains(needle),
                "{args:?} shows {secret}"
            );
        }
    }
}
