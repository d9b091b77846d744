//! The command-line contract: bad input exits 2 with one line before any traffic or write;
//! `--json` puts exactly one JSON document on stdout.

use crate::support::{Env, date};

/// Runs `download ARGS` and checks: exit 2, a single `error:` line naming `needle`, no request,
/// nothing in the cache or the output.
async fn refused(env: &Env, args: &[&str], needle: &str) {
    let run = env.download(args).await;
    run.code(2);
    let lines: Vec<&str> = run.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line for {args:?}: {}", run.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: {}",
        lines[0]
    );
    assert!(run.stdout.is_empty());
    assert_eq!(env.tardis.requests().len(), 0, "no traffic for {args:?}");
    assert!(!env.cache.exists(), "cache dir created for {args:?}");
    assert!(!env.out.exists(), "output created for {args:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_exits_2_with_one_line_and_touches_nothing() {
    let env = Env::new().await;
    let out = env.out.to_str().unwrap().to_string();
    let base = |extra: &[&'static str]| {
        let mut v: Vec<String> = vec![
            "-e".into(),
            "deribit".into(),
            "-s".into(),
            "BTC-PERPETUAL".into(),
            "-o".into(),
            out.clone(),
        ];
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            base(&["--from", "2024-01-01", "-t", "tradez"]),
            "unknown data type 'tradez'",
        ),
        (base(&["--from", "2024-13-01"]), "invalid --from '2024-13-01'"),
        (base(&["--from", "last tuesday"]), "invalid --from 'last tuesday'"),
        (base(&["--from", "today-7x"]), "invalid --from 'today-7x'"),
        (base(&["--from", "yesterday", "--now", "soon"]), "invalid --now 'soon'"),
        (
            base(&["--from", "2024-01-05", "--to", "2024-01-02"]),
            "--to (2024-01-02T00:00:00Z) must be after --from",
        ),
        (
            base(&["--from", "2024-01-05", "--to", "2024-01-05"]),
            "must be after --from",
        ),
        (
            vec![
                "-e",
                "deribit",
                "-s",
                "X",
                "--from",
                "2024-01-01",
                "-t",
                "trades,quotes",
                "-o",
                "x.parquet",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            "is one file but 2 data types",
        ),
        (
            base(&["--from", "2024-01-01", "--concurrency", "0"]),
            "invalid --concurrency 0",
        ),
        (
            base(&["--from", "2024-01-01", "--rate-limit", "0"]),
            "invalid --rate-limit 0",
        ),
        (
            base(&["--from", "2024-01-01", "--datasets-url", "ftp://x"]),
            "invalid --datasets-url",
        ),
        (
            base(&["--from", "2024-01-01", "--remote-cache", "ftp://host/x"]),
            "unsupported scheme 'ftp'",
        ),
        (
            base(&["--from", "2024-01-01", "--memory-cache", "lots"]),
            "invalid --memory-cache",
        ),
        (
            base(&["--from", "2024-01-01", "--remote-cache-mode", "sometimes"]),
            "invalid remote cache mode 'sometimes'",
        ),
    ];
    for (args, needle) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        refused(&env, &a, needle).await;
    }
    refused(
        &env,
        &["-e", "deribit", "-s", " , ,", "--from", "2024-01-01", "-o", &out],
        "--symbols is empty",
    )
    .await;
    refused(
        &env,
        &["-e", "Deribit!", "-s", "X", "--from", "2024-01-01", "-o", &out],
        "invalid --exchange 'Deribit!'",
    )
    .await;
    refused(
        &env,
        &["-s", "X", "--from", "2024-01-01", "-o", &out],
        "missing --exchange ID: give them",
    )
    .await;
    refused(&env, &["-e", "deribit", "-s", "X", "-o", &out], "missing --from DATE:").await;
    // Validation opens no remote: a file:// remote directory is not created by a refused run.
    let remote = env.dir.path().join("remote-never");
    let remote_url = format!("file://{}/", remote.display());
    refused(
        &env,
        &[
            "-e",
            "deribit",
            "-s",
            "X",
            "--from",
            "2024-13-01",
            "-o",
            &out,
            "--remote-cache",
            &remote_url,
        ],
        "invalid --from '2024-13-01'",
    )
    .await;
    assert!(!remote.exists(), "a refused run created its file:// remote");
    refused(
        &env,
        &["-o", &out],
        "missing --exchange ID, --symbols LIST, --from DATE:",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_output_path_exits_2_before_any_request() {
    let env = Env::new().await;
    std::fs::create_dir_all(env.dir.path()).unwrap();
    let blocker = env.dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    for out in [blocker.join("sub"), blocker.join("x.parquet"), blocker.clone()] {
        let run = env
            .download(&[
                "-e",
                "deribit",
                "-s",
                "BTC-PERPETUAL",
                "--from",
                "2024-01-01",
                "-o",
                out.to_str().unwrap(),
            ])
            .await;
        run.code(2);
        assert!(run.stderr.starts_with("error: --output"), "{}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count(), 1);
    }
    // A cache directory that cannot be created.
    let run = env
        .download(&[
            "-e",
            "deribit",
            "-s",
            "X",
            "--from",
            "2024-01-01",
            "--cache-dir",
            blocker.join("c").to_str().unwrap(),
            "-o",
            env.out.to_str().unwrap(),
        ])
        .await;
    run.code(2).stderr_has("error: --cache-dir");
    assert_eq!(env.tardis.requests().len(), 0);
    assert!(!env.out.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn clap_usage_errors_also_exit_2() {
    let env = Env::new().await;
    let run = env.download(&["--no-such-flag"]).await;
    run.code(2).stderr_has("error: unexpected argument '--no-such-flag'");
    // clap's whole message: its suggestion and the usage line are not cut off.
    let run = env.download(&["--symbol", "X"]).await;
    run.code(2)
        .stderr_has("error: unexpected argument '--symbol' found")
        .stderr_has("tip: a similar argument exists: '--symbols'")
        .stderr_has("Usage: tickvault download");
    assert!(run.stdout.is_empty());
    // The official clients' names point to ours.
    for (theirs, ours) in [
        ("--from-date", "'--from'"),
        ("--download-dir", "'--output'"),
        ("--data_types", "'--data-types'"),
    ] {
        env.download(&[theirs, "x"])
            .await
            .code(2)
            .stderr_has(&format!("tip: tardis-dev's '{}' is {ours} in tickvault", &theirs[2..]));
    }
    env.download(&["--offline", "--refresh", "-e", "x", "-s", "X", "--from", "2024-01-01"])
        .await
        .code(2);
    for contradiction in ["--offline", "--no-validate"] {
        env.download(&[
            contradiction,
            "--wait",
            "1h",
            "-e",
            "x",
            "-s",
            "X",
            "--from",
            "2024-01-01",
        ])
        .await
        .code(2)
        .stderr_has(&format!("{contradiction} and --wait contradict each other"));
    }
    env.tickvault(&["cache", "prune"])
        .await
        .code(2)
        .stderr_has("--max-size SIZE and/or --older-than AGE");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_mode_prints_only_json_on_stdout() {
    let env = Env::new().await;
    env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date("2024-03-05"), 500, 1);
    let run = env
        .download(&[
            "-e",
            "deribit",
            "-s",
            "btc-perpetual",
            "--from",
            "2024-03-05",
            "-o",
            env.out.to_str().unwrap(),
            "--json",
        ])
        .await;
    run.ok();
    assert_eq!(run.stdout.trim().lines().count(), 1);
    let s = run.json();
    assert_eq!(s["exit_code"], 0);
    assert_eq!(s["symbols"][0], "BTC-PERPETUAL", "symbols are normalised");
    assert_eq!(s["chunks"]["total"], 1);
    assert_eq!(s["rows"], 500);
    assert!(s["tardis"]["bytes"].as_u64().unwrap() > 0);
    assert!(s["seconds"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_supplies_defaults_and_flags_override_it() {
    let env = Env::new().await;
    env.serve_generated("deribit", "trades", "ETH-PERPETUAL", date("2024-03-05"), 100, 1);
    env.serve_generated("deribit", "quotes", "ETH-PERPETUAL", date("2024-03-05"), 100, 1);
    let cfg = env.dir.path().join("job.toml");
    let fast = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(&cfg, format!("{fast}\nexchange = \"deribit\"\nsymbols = [\"ETH-PERPETUAL\"]\ndata_types = [\"quotes\"]\nfrom = \"2024-03-05\"\n")).unwrap();
    let run = env
        .download(&[
            "--config",
            cfg.to_str().unwrap(),
            "-t",
            "trades",
            "-o",
            env.out.to_str().unwrap(),
            "--json",
        ])
        .await;
    run.ok();
    assert_eq!(run.json()["data_types"][0], "trades", "the flag wins over the file");
    std::fs::write(&cfg, "concurency = 3\n").unwrap();
    env.download(&["--config", cfg.to_str().unwrap()])
        .await
        .code(2)
        .stderr_has("concurency");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_run_exits_130_and_leaves_no_partial_files() {
    for signal in ["INT", "TERM"] {
        let env = Env::with(
            fake_tardis::FakeTardis::builder()
                .api_key(crate::support::KEY)
                .first_byte_latency(std::time::Duration::from_secs(3)),
        )
        .await;
        for d in ["2024-03-05", "2024-03-06", "2024-03-07"] {
            env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date(d), 50_000, 1);
        }
        let mut c = env.cmd();
        c.args([
            "download",
            "--api-key",
            crate::support::KEY,
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
        ]);
        c.args([
            "--from",
            "2024-03-05",
            "--to",
            "2024-03-08",
            "-o",
            env.out.to_str().unwrap(),
        ]);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        // Wait until requests are in flight.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while env.tardis.dataset_requests().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "SIG{signal}: {stderr}");
        assert!(stderr.contains("interrupted"), "{stderr}");
        assert!(
            !env.out.exists() || crate::support::files_under(&env.out).is_empty(),
            "no output after SIG{signal}"
        );
        let leftovers: Vec<_> = env
            .cache_files()
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "tmp" || e == "spool"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "temporary files left after SIG{signal}: {leftovers:?}"
        );
    }
}
