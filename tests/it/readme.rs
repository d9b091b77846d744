//! README's "Cron and CI" section, run as written: the crontab line's command (under `sh -c`,
//! as cron runs it, with the example config in the platform config dir) and the CI step's
//! shell lines (under `bash -e`, with the step's environment), so the two cannot drift.

use std::path::Path;

use crate::support::{Env, KEY, date, files_under};

const README: &str = include_str!("../../README.md");
const EXAMPLE_CONFIG: &str = include_str!("../../config/tickvault.example.toml");

/// The first fenced block of `lang` in README's "Cron and CI" section.
fn block(lang: &str) -> Vec<&'static str> {
    let section = &README[README.find("## Cron and CI").expect("a Cron and CI section")..];
    let start = section
        .find(&format!("```{lang}\n"))
        .unwrap_or_else(|| panic!("a ```{lang} block"))
        + lang.len()
        + 4;
    let end = start + section[start..].find("```").unwrap();
    section[start..end].lines().collect()
}

/// A directory holding `tickvault` (a link to the binary), for PATH or ~/.cargo/bin.
fn bin_dir(dir: &Path) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tickvault"), dir.join("tickvault")).unwrap();
    dir.to_path_buf()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_crontab_line_runs_the_nightly_job_as_written() {
    let env = Env::new().await;
    let lines = block("crontab");
    let entry = lines
        .iter()
        .find(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        .expect("a crontab entry");
    let fields: Vec<&str> = entry.split_whitespace().collect();
    assert_eq!(fields[..5], ["15", "7", "*", "*", "*"], "{entry}");
    // What follows the five time fields, exactly as written.
    let mut command = *entry;
    for _ in 0..5 {
        command = command.trim_start();
        command = &command[command.find(char::is_whitespace).unwrap()..];
    }
    let command = command.trim();
    // The nightly job of the example config: binance-futures BTCUSDT, ETHUSDT, trades and
    // book_ticker, yesterday. Cron runs at 07:15 UTC on 2024-03-07.
    for s in ["BTCUSDT", "ETHUSDT"] {
        for t in ["trades", "book_ticker"] {
            env.serve_generated("binance-futures", t, s, date("2024-03-06"), 300, 1);
        }
    }
    let home = env.dir.path();
    std::fs::create_dir_all(home.join(".config/tickvault")).unwrap();
    std::fs::write(home.join(".config/tickvault/config.toml"), EXAMPLE_CONFIG).unwrap();
    bin_dir(&home.join(".cargo/bin"));
    let mut c = std::process::Command::new("sh");
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("SHELL", "/bin/sh")
        .env("TARDIS_API_KEY", KEY)
        .env("TICKVAULT_NOW", "2024-03-07T07:15:00Z")
        .env("TICKVAULT_DATASETS_URL", env.tardis.datasets_url())
        .env("TICKVAULT_API_URL", env.tardis.api_url())
        .env("TICKVAULT_CACHE_DIR", &env.cache)
        .args(["-c", command]);
    let run = crate::support::run(c).await;
    run.ok();
    assert!(
        run.stdout.is_empty() && run.stderr.is_empty(),
        "cron mails nothing: {run:?}"
    );
    let lake: Vec<_> = files_under(&home.join("lake"))
        .into_iter()
        .map(|p| p.strip_prefix(home.join("lake")).unwrap().display().to_string())
        .collect();
    assert_eq!(lake.len(), 4, "{lake:?}");
    assert!(lake.iter().all(|p| p.contains("2024-03-06")), "{lake:?}");
    assert_eq!(env.dataset_requests(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ci_step_runs_as_written_and_reads_without_writing_the_team_cache() {
    let env = Env::new().await;
    for d in ["2024-03-01", "2024-03-02"] {
        env.serve_generated("deribit", "trades", "BTC-PERPETUAL", date(d), 300, 1);
    }
    // The team cache, filled by an earlier trusted run.
    let remote = env.dir.path().join("team-cache");
    let remote_url = format!("file://{}/", remote.display());
    let mut warm = env.cmd();
    warm.env("TARDIS_API_KEY", KEY)
        .args([
            "download",
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-01",
            "--to",
            "2024-03-03",
        ])
        .args(["--remote-cache", &remote_url, "--cache-dir"])
        .arg(env.dir.path().join("trusted-cache"))
        .arg("-o")
        .arg(env.dir.path().join("trusted-out"));
    crate::support::run(warm).await.ok();
    let team_files = files_under(&remote);
    assert_eq!(team_files.len(), 2);

    let lines = block("yaml");
    let mut vars: Vec<(String, String)> = Vec::new();
    let mut script = Vec::new();
    let mut in_env = false;
    let mut in_run = false;
    for line in &lines {
        let t = line.trim();
        if t == "env:" {
            (in_env, in_run) = (true, false);
        } else if t == "run: |" {
            (in_env, in_run) = (false, true);
        } else if in_env && let Some((k, v)) = t.split_once(": ") {
            let v = match v {
                v if v.contains("secrets.TARDIS_API_KEY") => KEY.to_string(),
                v if v.contains("vars.TICKVAULT_REMOTE_CACHE") => remote_url.clone(),
                v => v.to_string(),
            };
            vars.push((k.to_string(), v));
        } else if in_run && !t.is_empty() {
            script.push(t.to_string());
        }
    }
    assert!(vars.iter().any(|(k, _)| k == "TICKVAULT_CONFIG"), "{vars:?}");
    assert!(!script.is_empty());
    // The repository of the CI job: the example config where TICKVAULT_CONFIG points.
    let work = env.dir.path().join("checkout");
    std::fs::create_dir_all(&work).unwrap();
    let config = vars.iter().find(|(k, _)| k == "TICKVAULT_CONFIG").unwrap().1.clone();
    std::fs::write(work.join(&config), EXAMPLE_CONFIG).unwrap();
    let bin = bin_dir(&env.dir.path().join("bin"));
    let mut c = std::process::Command::new("bash");
    c.env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", env.dir.path())
        .env("CI", "true")
        .env("TICKVAULT_DATASETS_URL", env.tardis.datasets_url())
        .env("TICKVAULT_API_URL", env.tardis.api_url())
        .env("TICKVAULT_CACHE_DIR", env.dir.path().join("ci-cache"))
        .envs(vars)
        .current_dir(&work)
        .args(["-eo", "pipefail", "-c", &script.join("\n")]);
    env.tardis.clear_requests();
    let run = crate::support::run(c).await;
    run.ok();
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(work.join("tickvault-summary.json")).unwrap()).unwrap();
    assert_eq!(summary["chunks"]["remote"], 2, "{summary}");
    assert_eq!(env.dataset_requests(), 0, "served by the team cache");
    assert!(work.join("data/deribit-trades.parquet").is_file());
    assert_eq!(
        files_under(&remote),
        team_files,
        "the read-only job wrote nothing there"
    );
    // A failing job fails the step.
    std::fs::write(
        work.join(&config),
        EXAMPLE_CONFIG.replace("from = \"2024-03-01\"", "from = \"2024-02-29\""),
    )
    .unwrap();
    let run = crate::support::run({
        let mut c2 = std::process::Command::new("bash");
        c2.env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", env.dir.path())
            .env("TARDIS_API_KEY", "wrong-key")
            .env("TICKVAULT_CONFIG", &config)
            .env("TICKVAULT_DATASETS_URL", env.tardis.datasets_url())
            .env("TICKVAULT_API_URL", env.tardis.api_url())
            .env("TICKVAULT_CACHE_DIR", env.dir.path().join("ci-cache-2"))
            .current_dir(&work)
            .args(["-eo", "pipefail", "-c", &script.join("\n")]);
        c2
    })
    .await;
    assert_ne!(run.code, 0, "{run:?}");
}
