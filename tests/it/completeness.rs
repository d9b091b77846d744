//! Days Tardis has not finished exporting (after `datasets.exportedUntil`): withheld with exit
//! code 3 by default, waited for with --wait while the metadata advances, or used and marked
//! with --allow-incomplete; never a silently partial output.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use fake_tardis::SymbolMeta;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::support::{Env, date, read_parquet, symbol_major};

const DAYS: [&str; 3] = ["2024-03-01", "2024-03-02", "2024-03-03"];
const MERGED: &str = "binance-futures_trades_BTCUSDT+ETHUSDT_2024-03-01_2024-03-04.parquet";

/// 2 symbols × 3 days, exported until the start of the second day; the CSVs in tie order.
fn serve(env: &Env) -> Vec<String> {
    let mut csvs = Vec::new();
    for (d, day) in DAYS.iter().enumerate() {
        for (s, sym) in ["BTCUSDT", "ETHUSDT"].iter().enumerate() {
            csvs.push(env.serve_generated("binance-futures", "trades", sym, date(day), 2_000, (d * 10 + s) as u64));
        }
    }
    env.tardis
        .set_exported_until("binance-futures", "2024-03-02T00:00:00Z".parse().unwrap());
    csvs
}

fn args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "-e",
        "binance-futures",
        "-s",
        "BTCUSDT,ETHUSDT",
        "--from",
        "2024-03-01",
        "--to",
        "2024-03-04",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ];
    a.extend_from_slice(extra);
    a
}

/// The key/value metadata of a Parquet file.
pub fn kv(path: &Path) -> BTreeMap<String, String> {
    let f = std::fs::File::open(path).unwrap();
    let b = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
    b.metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn unexported_days_withhold_the_output_and_exit_3() {
    let env = Env::new().await;
    serve(&env);
    let run = env.download(&args(&env.out, &["-q"])).await;
    run.code(3);
    let s = run.json();
    assert_eq!(s["status"], "not_published");
    assert_eq!(s["exit_code"], 3);
    assert_eq!(
        s["publication"]["incomplete_days"],
        serde_json::json!(["2024-03-02", "2024-03-03"])
    );
    assert_eq!(s["publication"]["exported_until"], "2024-03-02T00:00:00Z");
    assert_eq!(s["publication"]["withheld"], true);
    assert_eq!(s["chunks"]["withheld"], 4);
    assert_eq!(s["outputs"], serde_json::json!([]));
    let why = s["skipped_outputs"][0]["error"].as_str().unwrap();
    assert!(
        why.starts_with(
            "not yet published: 2024-03-02, 2024-03-03 (Tardis has exported binance-futures until 2024-03-02T00:00:00Z)"
        ),
        "{why}"
    );
    // Even with -q, a run that did not succeed says so on stderr.
    assert!(run.stderr.contains("not yet published"), "{}", run.stderr);
    assert_eq!(
        env.dataset_requests(),
        2,
        "the published day is fetched (and cached), no other"
    );
    assert!(env.out_files().is_empty(), "no partial file: {:?}", env.out_files());

    // Today's data is never complete: exit 3 and nothing requested.
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    env.tardis.add_symbol(
        "deribit",
        SymbolMeta::new("BTC-PERPETUAL", "perpetual", date("2019-03-30")),
    );
    env.tardis.clear_requests();
    let out = env.dir.path().join("today");
    let run = env
        .download(&[
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            &today.to_string(),
            "-o",
            out.to_str().unwrap(),
        ])
        .await;
    run.code(3).stderr_has("not yet published");
    assert_eq!(env.dataset_requests(), 0);
    assert!(!out.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_incomplete_writes_and_marks_the_output_until_the_days_are_exported() {
    let env = Env::new().await;
    let csvs = serve(&env);
    let run = env.download(&args(&env.out, &["--allow-incomplete"])).await;
    run.ok();
    let s = run.json();
    assert_eq!(s["status"], "ok");
    assert_eq!(s["chunks"]["incomplete"], 4);
    assert_eq!(s["publication"]["withheld"], false);
    assert_eq!(s["outputs"][0]["complete"], false);
    assert_eq!(s["outputs"][0]["exported_until"], "2024-03-02T00:00:00Z");
    assert!(
        run.stderr.contains("Tardis has not finished exporting this day"),
        "{}",
        run.stderr
    );
    let out = env.out.join(MERGED);
    let meta = kv(&out);
    assert_eq!(meta["tickvault.complete"], "false");
    assert_eq!(meta["tickvault.exported_until"], "2024-03-02T00:00:00Z");
    let refs: Vec<&str> = csvs.iter().map(String::as_str).collect();
    assert!(read_parquet(&out).1 == symbol_major(&refs, 2));

    // Once Tardis has exported them, a plain run fetches the unfinished days again and marks
    // the output complete.
    env.tardis
        .set_exported_until("binance-futures", "2024-03-04T00:00:00Z".parse().unwrap());
    env.tardis.clear_requests();
    let run = env.download(&args(&env.out, &[])).await;
    run.ok();
    let s = run.json();
    assert_eq!(s["chunks"]["local"], 2);
    assert_eq!(s["chunks"]["tardis"], 4);
    assert_eq!(s["outputs"][0]["complete"], true);
    let meta = kv(&out);
    assert_eq!(meta["tickvault.complete"], "true");
    assert!(!meta.contains_key("tickvault.exported_until"));
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_polls_the_metadata_until_the_days_are_exported() {
    let env = Env::new().await;
    let csvs = serve(&env);
    let waiting = args(&env.out, &["--wait", "60s"]);
    let (run, ()) = tokio::join!(env.download(&waiting), async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        env.tardis
            .set_exported_until("binance-futures", "2024-03-04T00:00:00Z".parse().unwrap());
    });
    run.ok();
    let s = run.json();
    assert_eq!(s["outputs"][0]["complete"], true);
    assert_eq!(s["publication"]["incomplete_days"], serde_json::json!([]));
    let polls = env
        .tardis
        .api_requests()
        .iter()
        .filter(|r| r.path.ends_with("/exchanges/binance-futures"))
        .count();
    assert!((2..=5).contains(&polls), "{polls} metadata requests");
    let refs: Vec<&str> = csvs.iter().map(String::as_str).collect();
    assert!(read_parquet(&env.out.join(MERGED)).1 == symbol_major(&refs, 2));

    // A wait that runs out: exit 3 as without it (another exchange, nothing cached).
    env.tardis.add_symbol(
        "deribit",
        SymbolMeta::new("BTC-PERPETUAL", "perpetual", date("2019-03-30")),
    );
    env.tardis
        .set_exported_until("deribit", "2024-03-02T00:00:00Z".parse().unwrap());
    let other = env.dir.path().join("other");
    let started = std::time::Instant::now();
    let run = env
        .download(&[
            "-e",
            "deribit",
            "-s",
            "BTC-PERPETUAL",
            "--from",
            "2024-03-02",
            "-o",
            other.to_str().unwrap(),
            "--wait",
            "2s",
        ])
        .await;
    run.code(3).stderr_has("not yet published");
    assert!(started.elapsed() >= Duration::from_secs(2), "waited its two seconds");
    assert_eq!(
        env.tardis
            .dataset_requests()
            .iter()
            .filter(|r| r.path.contains("deribit"))
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_table_gets_the_published_days_and_exit_3() {
    let env = Env::new().await;
    serve(&env);
    let run = env.download(&args(&env.out, &["--partitioned"])).await;
    run.code(3);
    let files: Vec<String> = env
        .out_files()
        .iter()
        .map(|p| p.strip_prefix(&env.out).unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        files,
        [
            "trades/exchange=binance-futures/date=2024-03-01/BTCUSDT.parquet",
            "trades/exchange=binance-futures/date=2024-03-01/ETHUSDT.parquet"
        ]
    );
    let s = run.json();
    assert_eq!(s["outputs"][0]["rows"], 4_000);
    assert!(
        s["skipped_outputs"][0]["error"]
            .as_str()
            .unwrap()
            .ends_with("the published days are written")
    );
}
