//! Shared test environment: a fake Tardis server on 127.0.0.1:0, temporary cache and output
//! directories, the real `tickvault` binary, and readers that turn Parquet outputs and CSV
//! text into comparable rows.

#![allow(dead_code)]

pub mod edge;
pub mod moto;
pub mod nginx;

use std::path::{Path, PathBuf};
use std::process::Output;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch, RecordBatchReader};
use arrow_schema::DataType as ArrowType;
use fake_tardis::FakeTardis;
use jiff::civil::Date;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use tempfile::TempDir;

/// The API key the fake server accepts.
pub const KEY: &str = "tv-test-key-0123456789";

/// Retries fast so fault tests take milliseconds; everything else default.
const FAST_CONFIG: &str = r#"
max_retries = 3
retry_initial_backoff = "10ms"
retry_max_backoff = "40ms"
connect_timeout = "5s"
read_timeout = "3s"
remote_cache_timeout = "3s"
"#;

pub struct Env {
    pub tardis: FakeTardis,
    pub dir: TempDir,
    pub cache: PathBuf,
    pub out: PathBuf,
    pub config: PathBuf,
}

impl Env {
    /// A fake Tardis that accepts [`KEY`], and empty cache and output directories.
    pub async fn new() -> Env {
        Self::with(FakeTardis::builder().api_key(KEY)).await
    }

    pub async fn with(builder: fake_tardis::Builder) -> Env {
        let tardis = builder.start().await;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let out = dir.path().join("out");
        let config = dir.path().join("tickvault.toml");
        std::fs::write(&config, FAST_CONFIG).unwrap();
        Env {
            tardis,
            dir,
            cache,
            out,
            config,
        }
    }

    /// The binary with a clean environment pointing at the fake server and the temp dirs.
    pub fn cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tickvault"));
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("TICKVAULT_DATASETS_URL", self.tardis.datasets_url())
            .env("TICKVAULT_API_URL", self.tardis.api_url())
            .env("TICKVAULT_CACHE_DIR", &self.cache)
            .env("TICKVAULT_CONFIG", &self.config)
            .env("NO_COLOR", "1");
        c
    }

    /// Runs `tickvault download ARGS --api-key KEY` (off the async runtime).
    pub async fn download(&self, args: &[&str]) -> Run {
        let mut full = vec!["--api-key", KEY];
        full.extend_from_slice(args);
        self.download_without_key(&full).await
    }

    /// Runs `tickvault download ARGS` with no API key.
    pub async fn download_without_key(&self, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.arg("download").args(args);
        run(c).await
    }

    /// Runs `tickvault ARGS`.
    pub async fn tickvault(&self, args: &[&str]) -> Run {
        let mut c = self.cmd();
        c.args(args);
        run(c).await
    }

    /// Serves a generated day of `data_type` and returns its CSV text.
    pub fn serve_generated(
        &self,
        exchange: &str,
        data_type: &str,
        symbol: &str,
        date: Date,
        rows: usize,
        seed: u64,
    ) -> String {
        let p = fake_tardis::generate::DayParams::new(exchange, symbol, date, rows).with_seed(seed);
        let csv = fake_tardis::generate::day_csv(data_type, &p);
        self.tardis.add_gz(
            exchange,
            data_type,
            date,
            symbol,
            fake_tardis::generate::gzip_members(csv.as_bytes(), 3),
        );
        csv
    }

    /// The number of dataset requests the fake server received.
    pub fn dataset_requests(&self) -> usize {
        self.tardis.dataset_requests().len()
    }

    /// Every file under the cache directory.
    pub fn cache_files(&self) -> Vec<PathBuf> {
        files_under(&self.cache)
    }

    /// Chunk files in the cache (not temporary files or the lock).
    pub fn cache_entries(&self) -> Vec<PathBuf> {
        files_under(&self.cache.join("v1"))
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
            .collect()
    }

    /// Every file under the output directory.
    pub fn out_files(&self) -> Vec<PathBuf> {
        files_under(&self.out)
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else { continue };
        for e in read.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// A finished run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}:\n{}", self.stderr);
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

pub async fn run(mut c: std::process::Command) -> Run {
    let out: Output = tokio::task::spawn_blocking(move || c.output().expect("tickvault runs"))
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// One cell, compared exactly (floats by bit pattern).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Cell {
    Null,
    Str(String),
    F64(u64),
    Ts(i64),
    Bool(bool),
    U64(u64),
}

impl Cell {
    pub fn f64(v: f64) -> Cell {
        Cell::F64(v.to_bits())
    }
}

/// Reads a Parquet file into its Arrow schema and rows.
pub fn read_parquet(path: &Path) -> (arrow_schema::SchemaRef, Vec<Vec<Cell>>) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
    let schema = reader.schema();
    let mut rows = Vec::new();
    for b in reader {
        rows.extend(batch_rows(&b.unwrap()));
    }
    (schema, rows)
}

/// A Parquet file's footer metadata.
pub fn parquet_metadata(path: &Path) -> std::sync::Arc<parquet::file::metadata::ParquetMetaData> {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(f).unwrap().metadata().clone()
}

pub fn batch_rows(b: &RecordBatch) -> Vec<Vec<Cell>> {
    let mut rows = vec![Vec::with_capacity(b.num_columns()); b.num_rows()];
    for col in b.columns() {
        for (r, row) in rows.iter_mut().enumerate() {
            row.push(if col.is_null(r) {
                Cell::Null
            } else {
                match col.data_type() {
                    ArrowType::Utf8 => Cell::Str(col.as_string::<i32>().value(r).to_string()),
                    ArrowType::Float64 => Cell::f64(col.as_primitive::<Float64Type>().value(r)),
                    ArrowType::Timestamp(_, _) => Cell::Ts(col.as_primitive::<TimestampMicrosecondType>().value(r)),
                    ArrowType::Boolean => Cell::Bool(col.as_boolean().value(r)),
                    ArrowType::UInt64 => Cell::U64(col.as_primitive::<arrow_array::types::UInt64Type>().value(r)),
                    other => panic!("unexpected column type {other}"),
                }
            });
        }
    }
    rows
}

/// What a plain CSV reader gives for a Tardis CSV: split on commas, each column typed by its
/// name as design.md says; empty cells are null. Rows are returned stably sorted by
/// `local_timestamp`, the order the output promises.
pub fn csv_rows(csv: &str) -> (Vec<String>, Vec<Vec<Cell>>) {
    let mut lines = csv.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(str::to_string).collect();
    let mut rows: Vec<Vec<Cell>> = lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), header.len(), "row {line}");
            cells
                .iter()
                .zip(&header)
                .map(|(v, name)| {
                    if v.is_empty() {
                        return Cell::Null;
                    }
                    match name.as_str() {
                        "timestamp" | "local_timestamp" | "funding_timestamp" | "expiration" => {
                            Cell::Ts(v.parse().unwrap())
                        }
                        "exchange" | "symbol" | "id" | "side" | "type" | "underlying_index" => {
                            Cell::Str((*v).to_string())
                        }
                        "is_snapshot" => Cell::Bool(v.parse().unwrap()),
                        _ => Cell::f64(v.parse::<f64>().unwrap_or_else(|e| panic!("{name}={v}: {e}"))),
                    }
                })
                .collect()
        })
        .collect();
    let lt = header.iter().position(|h| h == "local_timestamp").unwrap();
    rows.sort_by_key(|r| r[lt].clone());
    (header, rows)
}

/// The expected output of a symbol-major merge (the default `--order symbol`): for each symbol
/// in request order, its days in order, each day's rows in `local_timestamp` order. `csvs` are
/// given day by day, `symbols` per day in request order.
pub fn symbol_major(csvs: &[&str], symbols: usize) -> Vec<Vec<Cell>> {
    let mut all = Vec::new();
    for s in 0..symbols {
        for c in csvs.iter().skip(s).step_by(symbols) {
            all.extend(csv_rows(c).1);
        }
    }
    all
}

/// The expected output of several chunks merged with `--order time`: their rows stably sorted
/// by local_timestamp, chunks taken in tie-break order (day, then symbol as given).
pub fn merged(csvs: &[&str]) -> Vec<Vec<Cell>> {
    let mut all = Vec::new();
    for c in csvs {
        all.extend(csv_rows(c).1);
    }
    all.sort_by_key(|r| r[3].clone());
    all
}

pub fn date(s: &str) -> Date {
    s.parse().unwrap()
}
