//! The partitioned output is a lake of one table per data type that pyarrow.dataset, polars
//! and DuckDB all read with Hive partitioning: row counts, column types, a filter on date and
//! one on exchange (a partition key that is also a column of the data). The readers are real:
//! scripts/test.sh installs pinned versions in a virtualenv and names its python in
//! TICKVAULT_TEST_PYTHON; without it the test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_schema::DataType as ArrowType;
use tickvault::model::DataType;

use crate::support::{Env, csv_rows, date};

/// The python with pyarrow, polars and duckdb.
fn python() -> PathBuf {
    std::env::var_os("TICKVAULT_TEST_PYTHON").map(PathBuf::from).expect(
        "TICKVAULT_TEST_PYTHON must name a python with pyarrow, polars and duckdb (scripts/test.sh installs them)",
    )
}

fn kind(t: &ArrowType) -> &'static str {
    match t {
        ArrowType::Timestamp(_, _) => "timestamp",
        ArrowType::Utf8 => "string",
        ArrowType::Float64 => "double",
        ArrowType::Boolean => "bool",
        other => panic!("unexpected column type {other}"),
    }
}

const DAYS: [&str; 3] = ["2024-03-01", "2024-03-02", "2024-03-03"];
const TYPES: [DataType; 3] = [DataType::Trades, DataType::Quotes, DataType::DerivativeTicker];

#[derive(Default, serde::Serialize)]
struct Expected {
    rows: usize,
    columns: Vec<(String, &'static str)>,
    by_date: BTreeMap<String, usize>,
    by_exchange: BTreeMap<String, usize>,
}

#[tokio::test(flavor = "multi_thread")]
#[allow(clippy::print_stdout)] // the figures, for the record (cargo test -- --nocapture)
async fn a_partitioned_lake_reads_as_one_table_per_data_type_in_pyarrow_polars_and_duckdb() {
    let python = python();
    let env = Env::new().await;
    let pulls = [("binance-futures", "BTCUSDT,ETHUSDT"), ("deribit", "BTC-PERPETUAL")];
    let mut expected: BTreeMap<&str, Expected> = BTreeMap::new();
    for (e, (exchange, symbols)) in pulls.iter().enumerate() {
        for (t, data_type) in TYPES.iter().enumerate() {
            let exp = expected.entry(data_type.as_str()).or_default();
            exp.columns = data_type
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), kind(f.data_type())))
                .collect();
            for (d, day) in DAYS.iter().enumerate() {
                for (s, symbol) in symbols.split(',').enumerate() {
                    let rows = 150 + 10 * (d + s + t);
                    let seed = (e * 1000 + t * 100 + d * 10 + s) as u64;
                    let csv = env.serve_generated(exchange, data_type.as_str(), symbol, date(day), rows, seed);
                    let n = csv_rows(&csv).1.len();
                    exp.rows += n;
                    *exp.by_date.entry(day.to_string()).or_default() += n;
                    *exp.by_exchange.entry(exchange.to_string()).or_default() += n;
                }
            }
        }
    }
    // One pull per exchange into one lake.
    let lake = env.dir.path().join("lake");
    for (exchange, symbols) in pulls {
        env.download(&[
            "-e",
            exchange,
            "-s",
            symbols,
            "-t",
            "trades,quotes,derivative_ticker",
            "--from",
            DAYS[0],
            "--to",
            "2024-03-04",
            "--partitioned",
            "-o",
            lake.to_str().unwrap(),
        ])
        .await
        .ok();
    }
    let roots: Vec<String> = std::fs::read_dir(&lake)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        roots,
        ["derivative_ticker", "quotes", "trades"],
        "one root per data type"
    );

    let expected = serde_json::json!({ "tables": expected }).to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/readers/check_lake.py");
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(&script).arg(&lake).arg(&expected);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The matrix, for the record (cargo test shows it with --nocapture).
    println!("reader matrix: {stdout}");
    assert!(out.status.success(), "a reader disagrees:\n{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    for t in TYPES {
        for reader in ["pyarrow", "polars", "duckdb"] {
            assert_eq!(report["tables"][t.as_str()][reader]["ok"], true, "{t} {reader}");
        }
    }
}
