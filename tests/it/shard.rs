//! Scale out: `--shard K/N` workers started together against one S3 remote (moto), then one
//! final `--offline` run that writes the merged output from the remote alone; a killed shard
//! run again on its own; `--shard auto` from each scheduler's variables; `--max-transfer`
//! stopping a run (exit 3) and the next one resuming.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::moto::Moto;
use crate::support::{Env, KEY, Run, date, files_under};

const SYMBOLS: [&str; 3] = ["BTCUSDT", "ETHUSDT", "SOLUSDT"];
const DAYS: [&str; 3] = ["2024-03-01", "2024-03-02", "2024-03-03"];
const ARGS: [&str; 8] = [
    "-e",
    "binance-futures",
    "-s",
    "BTCUSDT,ETHUSDT,SOLUSDT",
    "--from",
    "2024-03-01",
    "--to",
    "2024-03-04",
];
const MERGED: &str = "binance-futures_trades_BTCUSDT+ETHUSDT+SOLUSDT_2024-03-01_2024-03-04.parquet";

/// Nine chunks: three symbols × three days of trades.
fn serve(env: &Env) {
    for (d, day) in DAYS.iter().enumerate() {
        for (s, sym) in SYMBOLS.iter().enumerate() {
            env.serve_generated("binance-futures", "trades", sym, date(day), 2_000, (d * 10 + s) as u64);
        }
    }
}

/// `download ARGS --json --cache-dir CACHE -o OUT EXTRA`, with moto's environment.
fn cmd(env: &Env, moto: &Moto, cache: &Path, out: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = env.cmd();
    for (k, v) in moto.env() {
        c.env(k, v);
    }
    c.arg("download").args(ARGS).args(["--api-key", KEY, "--json"]);
    c.arg("--cache-dir").arg(cache).arg("-o").arg(out).args(extra);
    c
}

/// The dataset paths requested from the fake Tardis, with how often.
fn requested(env: &Env) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in env.tardis.dataset_requests() {
        *m.entry(r.path).or_insert(0) += 1;
    }
    m
}

/// Files under `dir`, by path relative to it, with their bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

/// The chunks `--dry-run` plans for `extra` (a shard), as `exchange/type/SYMBOL/date`.
async fn planned(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut c = env.cmd();
    c.arg("download")
        .args(ARGS)
        .args(["--api-key", KEY, "--json", "--dry-run"])
        .args(extra);
    for (k, v) in vars {
        c.env(k, v);
    }
    crate::support::run(c).await
}

fn chunk_list(run: &Run) -> Vec<String> {
    run.ok();
    run.json()["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["chunk"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_shards_then_an_offline_merge_equal_a_single_machine_pull() {
    let moto = Moto::start();
    let bucket = moto.bucket("scale-out").await;
    let remote = format!("s3://{bucket}/team");
    let env = Env::new().await;
    serve(&env);
    let root = env.dir.path().to_path_buf();

    // Three workers on three machines (own cache dirs), started together, one S3 remote,
    // each writing its share of one partitioned output.
    let shard = |k: usize| {
        let cache = root.join(format!("shard{k}"));
        let out = root.join(format!("lake{k}"));
        let shard = format!("{k}/3");
        crate::support::run(cmd(
            &env,
            &moto,
            &cache,
            &out,
            &["--remote-cache", &remote, "--partitioned", "--shard", &shard],
        ))
    };
    let (a, b, c) = tokio::join!(shard(1), shard(2), shard(3));
    let mut total = 0;
    for (k, run) in [a, b, c].iter().enumerate() {
        run.ok();
        let s = run.json();
        assert_eq!(s["shard"], format!("{}/3", k + 1));
        assert_eq!(s["chunks"]["tardis"], s["chunks"]["total"], "{s}");
        assert_eq!(s["uploads"]["uploaded"], s["chunks"]["total"], "{s}");
        total += s["chunks"]["total"].as_u64().unwrap();
    }
    assert_eq!(total, 9, "the shares cover the request");
    // Every chunk fetched from Tardis exactly once across the three shards.
    let fetched = requested(&env);
    assert_eq!(fetched.len(), 9, "{fetched:?}");
    assert!(fetched.values().all(|&n| n == 1), "{fetched:?}");

    // A shard writes no merged file, and says why.
    let merged_shard = crate::support::run(cmd(
        &env,
        &moto,
        &root.join("shard1"),
        &root.join("not-merged"),
        &["--remote-cache", &remote, "--shard", "1/3"],
    ))
    .await;
    merged_shard.ok();
    assert!(files_under(&root.join("not-merged")).is_empty());
    let why = merged_shard.json()["skipped_outputs"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("final run without --shard"), "{why}");

    // The final run: a fresh machine, no Tardis (--offline), everything from the remote.
    env.tardis.clear_requests();
    let merged_out = root.join("merged");
    let last = crate::support::run(cmd(
        &env,
        &moto,
        &root.join("final"),
        &merged_out,
        &["--remote-cache", &remote, "--offline", "--no-validate"],
    ))
    .await;
    last.ok();
    assert_eq!(last.json()["chunks"]["remote"], 9);
    assert!(env.tardis.requests().is_empty(), "--offline: no Tardis traffic");

    // A single machine's pulls of the same request, merged and partitioned.
    let single = crate::support::run(cmd(&env, &moto, &root.join("single"), &root.join("single-out"), &[])).await;
    single.ok();
    assert_eq!(
        std::fs::read(merged_out.join(MERGED)).unwrap(),
        std::fs::read(root.join("single-out").join(MERGED)).unwrap(),
        "the merged output of the sharded pull is the single machine's, byte for byte"
    );
    let lake = crate::support::run(cmd(
        &env,
        &moto,
        &root.join("single"),
        &root.join("single-lake"),
        &["--partitioned"],
    ))
    .await;
    lake.ok();
    let mut union = BTreeMap::new();
    for k in 1..=3 {
        for (path, bytes) in tree(&root.join(format!("lake{k}"))) {
            assert!(
                union.insert(path.clone(), bytes).is_none(),
                "{path} written by two shards"
            );
        }
    }
    let expected = tree(&root.join("single-lake"));
    assert_eq!(union.len(), 9);
    assert_eq!(union.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    assert!(
        union == expected,
        "the shards' partitions are the single pull's, byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_shard_is_run_again_alone() {
    let moto = Moto::start();
    let bucket = moto.bucket("killed").await;
    let remote = format!("s3://{bucket}/team");
    let env = Env::new().await;
    serve(&env);
    let root = env.dir.path().to_path_buf();
    let mine = chunk_list(&planned(&env, &["--shard", "2/3"], &[]).await);
    assert_eq!(mine.len(), 3, "{mine:?}");
    // One of shard 2's days hangs at Tardis for as many attempts as a run makes (each times
    // out after the test config's 3 s read timeout), so the worker is killed mid-run; the
    // attempts it did not make delay the re-run, which still gets the day.
    let stuck: Vec<&str> = mine[0].split('/').collect();
    let stuck_path = fake_tardis::FakeTardis::dataset_path(stuck[0], stuck[1], date(stuck[3]), stuck[2]);
    env.tardis.script(
        &stuck_path,
        (0..4).map(|_| fake_tardis::Fault::Delay(Duration::from_secs(60))),
    );
    env.tardis.clear_requests();

    let cache = root.join("shard2");
    let lake = root.join("lake");
    let args = ["--remote-cache", remote.as_str(), "--partitioned", "--shard", "2/3"];
    let mut child = cmd(&env, &moto, &cache, &lake, &args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let chunk_files = |dir: &Path| {
        files_under(&dir.join("v1"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .count()
    };
    while chunk_files(&cache) < 2 || !requested(&env).contains_key(&format!("/datasets/v1/{stuck_path}")) {
        assert!(
            Instant::now() < deadline,
            "shard 2 did not get going: {:?}",
            requested(&env)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Run again on its own: it finishes its share, fetching only what the killed run lacked.
    env.tardis.clear_requests();
    let again = crate::support::run(cmd(&env, &moto, &cache, &lake, &args)).await;
    again.ok();
    let s = again.json();
    assert_eq!(s["chunks"]["total"], 3);
    assert_eq!(s["chunks"]["tardis"], 1, "{s}");
    assert_eq!(
        requested(&env).keys().collect::<Vec<_>>(),
        vec![&format!("/datasets/v1/{stuck_path}")]
    );
    assert_eq!(files_under(&lake).len(), 3);

    // The other shards, then the merged output from the remote alone.
    for k in ["1/3", "3/3"] {
        crate::support::run(cmd(
            &env,
            &moto,
            &root.join(k.replace('/', "-")),
            &root.join("lake-rest"),
            &["--remote-cache", &remote, "--partitioned", "--shard", k],
        ))
        .await
        .ok();
    }
    env.tardis.clear_requests();
    let last = crate::support::run(cmd(
        &env,
        &moto,
        &root.join("final"),
        &root.join("merged"),
        &["--remote-cache", &remote, "--offline", "--no-validate"],
    ))
    .await;
    last.ok();
    assert_eq!(last.json()["chunks"]["remote"], 9);
    assert!(env.tardis.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn shard_auto_reads_each_schedulers_variables() {
    let env = Env::new().await;
    serve(&env);
    let by_hand: Vec<Vec<String>> = {
        let mut v = Vec::new();
        for k in 1..=3 {
            v.push(chunk_list(&planned(&env, &["--shard", &format!("{k}/3")], &[]).await));
        }
        v
    };
    let all: BTreeSet<&String> = by_hand.iter().flatten().collect();
    assert_eq!(all.len(), 9);
    assert_eq!(by_hand.iter().map(Vec::len).sum::<usize>(), 9, "disjoint");

    // Each scheduler's view of its second task of three.
    let cases: [(&str, Vec<(&str, &str)>); 6] = [
        ("auto/3", vec![("JOB_COMPLETION_INDEX", "1")]),
        (
            "auto",
            vec![
                ("SLURM_ARRAY_TASK_ID", "6"),
                ("SLURM_ARRAY_TASK_MIN", "5"),
                ("SLURM_ARRAY_TASK_COUNT", "3"),
            ],
        ),
        ("auto/3", vec![("AWS_BATCH_JOB_ARRAY_INDEX", "1")]),
        ("auto", vec![("CI_NODE_INDEX", "2"), ("CI_NODE_TOTAL", "3")]),
        ("auto", vec![("CIRCLE_NODE_INDEX", "1"), ("CIRCLE_NODE_TOTAL", "3")]),
        ("2/3", vec![]),
    ];
    for (arg, vars) in &cases {
        assert_eq!(
            chunk_list(&planned(&env, &["--shard", arg], vars).await),
            by_hand[1],
            "--shard {arg} with {vars:?}"
        );
        // The environment variable of the option works the same.
        let mut with_env = vars.clone();
        with_env.push(("TICKVAULT_SHARD", arg));
        assert_eq!(chunk_list(&planned(&env, &[], &with_env).await), by_hand[1]);
    }
    // Missing or contradicting variables are usage errors naming them.
    let run = planned(&env, &["--shard", "auto"], &[("JOB_COMPLETION_INDEX", "1")]).await;
    run.code(2);
    assert!(run.stdout.contains("auto/N"), "{run:?}");
    let run = planned(&env, &["--shard", "auto"], &[]).await;
    run.code(2);
    assert!(run.stdout.contains("JOB_COMPLETION_INDEX"), "{run:?}");
    planned(&env, &["--shard", "4/3"], &[]).await.code(2);
    assert_eq!(env.dataset_requests(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_transfer_stops_the_run_with_exit_3_and_the_next_run_resumes() {
    let env = Env::new().await;
    serve(&env);
    let out: PathBuf = env.out.clone();
    let first = env
        .download(
            &[
                &ARGS[..],
                &[
                    "--json",
                    "-o",
                    out.to_str().unwrap(),
                    "--max-transfer",
                    "1B",
                    "--concurrency",
                    "1",
                ],
            ]
            .concat(),
        )
        .await;
    first.code(3);
    let s = first.json();
    assert_eq!(s["status"], "transfer_limit");
    let fetched = s["chunks"]["tardis"].as_u64().unwrap();
    let pending = s["chunks"]["pending"].as_u64().unwrap();
    assert!(fetched >= 1 && pending >= 1, "{s}");
    assert_eq!(fetched + pending, 9, "{s}");
    assert!(s["tardis"]["bytes"].as_u64().unwrap() >= 1);
    assert!(files_under(&out).is_empty(), "no partial merged output");
    assert_eq!(env.dataset_requests(), fetched as usize);

    env.tardis.clear_requests();
    let second = env
        .download(&[&ARGS[..], &["--json", "-o", out.to_str().unwrap()]].concat())
        .await;
    second.ok();
    let s = second.json();
    assert_eq!(s["chunks"]["local"].as_u64().unwrap(), fetched);
    assert_eq!(s["chunks"]["tardis"].as_u64().unwrap(), pending);
    assert_eq!(env.dataset_requests(), pending as usize, "nothing fetched twice");
    assert!(out.join(MERGED).is_file());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_estimate_prices_the_plan_against_the_limits() {
    let env = Env::new().await;
    serve(&env);
    let est = |extra: &'static [&'static str]| {
        let env = &env;
        async move {
            let mut args = vec!["--estimate"];
            args.extend_from_slice(extra);
            planned(env, &args, &[]).await
        }
    };
    let run = est(&["--workers", "3", "--plan-limit-daily", "100MB"]).await;
    run.ok();
    let e = &run.json()["estimate"];
    assert_eq!(e["chunks"], 9);
    assert_eq!(e["chunks_to_fetch"], 9);
    assert_eq!(e["requests"], 9);
    // Nine trades days at the model's 31.5 MB each.
    assert_eq!(e["bytes"], 9 * 31_500_000u64);
    assert_eq!(e["workers"], 3);
    assert_eq!(e["throughput"], 17_000_000);
    assert_eq!(e["days_at_limits"], 3);
    let over = e["over_limits"].as_array().unwrap();
    assert!(over[0].as_str().unwrap().contains("--max-transfer 33.3MB"), "{over:?}");
    assert_eq!(env.dataset_requests(), 0, "a dry run fetches nothing");

    // Chunks already cached cost nothing; a shard prices its share.
    env.download(&[&ARGS[..], &["--to", "2024-03-02", "-o", env.out.to_str().unwrap()]].concat())
        .await
        .ok();
    let run = est(&["--throughput", "1MB"]).await;
    let e = &run.json()["estimate"];
    assert_eq!(e["chunks_to_fetch"], 6);
    assert_eq!(e["throughput_source"], "--throughput");
    assert!(e["over_limits"].as_array().unwrap().is_empty());
    let shard = est(&["--shard", "1/3"]).await;
    assert_eq!(shard.json()["estimate"]["chunks"], 3);
    assert_eq!(shard.json()["shard"], "1/3");
    // Text: the totals, not a table of every chunk.
    let mut c = env.cmd();
    c.arg("download").args(ARGS).args([
        "--api-key",
        KEY,
        "--dry-run",
        "--estimate",
        "--plan-limit-daily",
        "100MB",
    ]);
    let text = crate::support::run(c).await;
    text.ok();
    assert!(
        text.stdout.contains("estimate: 9 chunks, 6 to fetch"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("over the limit"), "{}", text.stdout);
    assert!(!text.stdout.contains("2024-03-02"), "{}", text.stdout);
    // --estimate alone is a usage error.
    env.download(&[&ARGS[..], &["--estimate"]].concat()).await.code(2);
}

const README: &str = include_str!("../../README.md");

/// README's "Scale out" section.
fn scale_out() -> &'static str {
    let start = README.find("## Scale out").expect("a Scale out section");
    let rest = &README[start..];
    &rest[..rest[3..].find("\n## ").map_or(rest.len(), |e| e + 3)]
}

/// The `n`th fenced block of `lang` in the section.
fn block(lang: &str, n: usize) -> &'static str {
    let section = scale_out();
    let fence = format!("```{lang}\n");
    let mut at = 0;
    for _ in 0..n {
        at += section[at..].find(&fence).unwrap() + fence.len();
    }
    let start = at
        + section[at..]
            .find(&fence)
            .unwrap_or_else(|| panic!("a ```{lang} block"))
        + fence.len();
    &section[start..start + section[start..].find("```").unwrap()]
}

/// The lines of each `run: |` step of a workflow, unindented.
fn run_steps(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut steps = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start() == "- run: |" {
            let indent = l.len() - l.trim_start().len();
            let body: Vec<&str> = lines[i + 1..]
                .iter()
                .take_while(|b| b.len() - b.trim_start().len() > indent && !b.trim().is_empty())
                .map(|b| b.trim())
                .collect();
            steps.push(body.join("\n"));
        }
    }
    steps
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_manifest_and_ci_matrix_run_as_written() {
    let moto = Moto::start();
    moto.bucket("team-cache").await;
    moto.bucket("lake").await;
    let env = Env::new().await;
    for day in ["2024-03-01", "2024-03-02"] {
        for (s, sym) in ["BTCUSDT", "ETHUSDT"].iter().enumerate() {
            env.serve_generated("binance-futures", "trades", sym, date(day), 1_000, s as u64);
            env.serve_generated(
                "binance-futures",
                "incremental_book_L2",
                sym,
                date(day),
                1_000,
                s as u64,
            );
        }
    }
    let root = env.dir.path().to_path_buf();
    let work = root.join("work");
    let bin = root.join("bin");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_tickvault"), bin.join("tickvault")).unwrap();
    std::fs::write(work.join("tickvault.toml"), block("toml", 0)).unwrap();
    // The README's job, narrowed to what the fake Tardis serves (environment variables
    // override a job's keys): 2 symbols × 2 days × 2 data types.
    let shell = |program: &str, script: &str, cache: &str, vars: &[(&str, String)]| {
        // The test environment's variables (the fake Tardis's URLs), then the worker's.
        let mut c = std::process::Command::new(program);
        c.env_clear();
        for (k, v) in env.cmd().get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        for (k, v) in moto.env() {
            c.env(k, v);
        }
        c.current_dir(&work)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
            )
            .env("TICKVAULT_CONFIG", work.join("tickvault.toml"))
            .env("TARDIS_API_KEY", KEY)
            .env("TICKVAULT_SYMBOLS", "BTCUSDT,ETHUSDT")
            .env("TICKVAULT_FROM", "2024-03-01")
            .env("TICKVAULT_TO", "2024-03-03")
            .env("TICKVAULT_CACHE_DIR", root.join(cache))
            .args(if program == "sh" {
                vec!["-c", script]
            } else {
                vec!["-e", "-c", script]
            });
        for (k, v) in vars {
            c.env(k, v);
        }
        crate::support::run(c)
    };

    // The Indexed Job: its pods, by JOB_COMPLETION_INDEX, five at a time.
    let manifest = block("yaml", 0);
    let completions: u32 = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions: "))
        .unwrap()
        .parse()
        .unwrap();
    let lines: Vec<&str> = manifest.lines().collect();
    let args = lines.iter().position(|l| l.trim() == "args:").unwrap();
    let command = lines[args + 1].trim().strip_prefix("- ").unwrap();
    assert!(command.contains("--shard auto/"), "{command}");
    let mut total = 0;
    for batch in (0..completions).collect::<Vec<_>>().chunks(5) {
        let pods = batch.iter().map(|i| {
            shell(
                "sh",
                command,
                &format!("pod{i}"),
                &[("JOB_COMPLETION_INDEX", i.to_string())],
            )
        });
        for run in futures::future::join_all(pods).await {
            run.ok();
            total += run.json()["chunks"]["total"].as_u64().unwrap();
        }
    }
    assert_eq!(total, 8, "the pods' shares are the whole request");
    let fetched = requested(&env);
    assert_eq!(fetched.len(), 8);
    assert!(fetched.values().all(|&n| n == 1), "{fetched:?}");

    // The CI matrix: three runners, then the merge; all from the remote now.
    env.tardis.clear_requests();
    let steps = run_steps(block("yaml", 1));
    assert_eq!(steps.len(), 2, "{steps:?}");
    let runners = (1..=3).map(|k| shell("bash", &steps[0], &format!("runner{k}"), &[("SHARD", k.to_string())]));
    for run in futures::future::join_all(runners).await {
        run.ok();
    }
    for k in 1..=3 {
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(work.join(format!("shard-{k}.json"))).unwrap()).unwrap();
        assert_eq!(summary["shard"], format!("{k}/3"));
    }
    shell("bash", &steps[1], "merge", &[]).await.ok();
    assert_eq!(
        env.dataset_requests(),
        0,
        "the matrix and the merge read the remote only"
    );
    let merged: Vec<String> = crate::store_output::objects(&moto, "lake", "merged/")
        .await
        .into_keys()
        .collect();
    assert_eq!(
        merged,
        [
            "merged/binance-futures_incremental_book_L2_BTCUSDT+ETHUSDT_2024-03-01_2024-03-03.parquet",
            "merged/binance-futures_trades_BTCUSDT+ETHUSDT_2024-03-01_2024-03-03.parquet"
        ]
    );
    let lake = crate::store_output::objects(&moto, "lake", "backfill/").await;
    assert_eq!(lake.len(), 8, "{:?}", lake.keys());
}
