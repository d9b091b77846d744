//! The `fake-tardis` binary: `generate` writes a servable tree, `serve` serves it.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_fake-tardis");

fn generate(root: &std::path::Path, extra: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(["generate", "--root"])
        .arg(root)
        .args([
            "--exchange",
            "deribit",
            "--data-type",
            "trades",
            "--symbols",
            "BTC-PERPETUAL,ETH-PERPETUAL",
        ])
        .args(["--from", "2024-01-31", "--days", "2", "--rows", "1000"])
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn generate_writes_the_tree_and_keeps_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = generate(dir.path(), &["--members", "2"]);
    assert_eq!(out.lines().filter(|l| l.starts_with("wrote ")).count(), 4, "{out}");
    let file = dir.path().join("deribit/trades/2024/02/01/ETH-PERPETUAL.csv.gz");
    let gz = std::fs::read(&file).unwrap();
    let mut csv = String::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_string(&mut csv)
        .unwrap();
    let p = fake_tardis::generate::DayParams::new("deribit", "ETH-PERPETUAL", jiff::civil::date(2024, 2, 1), 1000);
    assert_eq!(csv, fake_tardis::generate::day_csv("trades", &p));

    let again = generate(dir.path(), &["--members", "2"]);
    assert_eq!(again.lines().filter(|l| l.starts_with("kept ")).count(), 4, "{again}");
    let other_seed = generate(dir.path(), &["--members", "2", "--seed", "5"]);
    assert_eq!(
        other_seed.lines().filter(|l| l.starts_with("wrote ")).count(),
        4,
        "{other_seed}"
    );

    let bad = Command::new(BIN)
        .args(["generate", "--root", "x", "--exchange", "e", "--data-type", "nope"])
        .args(["--symbols", "A", "--from", "2024-01-01", "--rows", "1"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[test]
fn serve_prints_its_urls_and_serves_the_root() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &[]);
    let mut child = Command::new(BIN)
        .args(["serve", "--root"])
        .arg(dir.path())
        .args(["--api-key", "k"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let (datasets, api) = line
            .trim()
            .strip_prefix("datasets_url=")
            .and_then(|r| r.split_once(" api_url="))
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        assert!(datasets.starts_with("http://127.0.0.1:") && datasets.ends_with("/datasets/v1"));
        assert!(api.ends_with("/api/v1"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = reqwest::Client::new();
            let url = format!("{datasets}/deribit/trades/2024/02/01/BTC-PERPETUAL.csv.gz");
            let r = c.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "free first day");
            let paid = format!("{datasets}/deribit/trades/2024/01/31/BTC-PERPETUAL.csv.gz");
            assert_eq!(c.get(&paid).send().await.unwrap().status(), 401);
            let r = c.get(&paid).bearer_auth("k").send().await.unwrap();
            assert_eq!(r.status(), 200);
            let r = c.get(format!("{api}/exchanges/deribit")).send().await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
            assert_eq!(v["datasets"]["symbols"].as_array().unwrap().len(), 2);
        });
    });
    child.kill().unwrap();
    child.wait().unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

#[test]
fn serve_with_a_storm_seed_faults_every_file_a_bounded_number_of_times() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &[]);
    let mut child = Command::new(BIN)
        .args(["serve", "--root"])
        .arg(dir.path())
        .args(["--api-key", "k", "--storm-seed", "7", "--storm-max-faults", "2"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let result = std::panic::catch_unwind(|| {
        let datasets = line
            .trim()
            .strip_prefix("datasets_url=")
            .and_then(|r| r.split_once(' '))
            .map(|(d, _)| d.to_owned())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = reqwest::Client::new();
            let mut failures = 0;
            for day in ["2024/01/31", "2024/02/01"] {
                for sym in ["BTC-PERPETUAL", "ETH-PERPETUAL"] {
                    let url = format!("{datasets}/deribit/trades/{day}/{sym}.csv.gz");
                    let mut attempts = 0;
                    loop {
                        attempts += 1;
                        assert!(attempts <= 3, "{url}: still failing after 2 faults");
                        let r = c.get(&url).bearer_auth("k").send().await.unwrap();
                        let ok = r.status() == 200;
                        let body = r.bytes().await;
                        let whole = body.is_ok_and(|b| {
                            let mut s = String::new();
                            flate2::read::MultiGzDecoder::new(&b[..]).read_to_string(&mut s).is_ok()
                        });
                        if ok && whole {
                            break;
                        }
                        failures += 1;
                    }
                }
            }
            assert!(failures > 0, "seed 7 storms at least one file");
        });
    });
    child.kill().unwrap();
    child.wait().unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
