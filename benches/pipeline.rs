//! Micro-benchmarks of tickvault's CPU pipeline, one stage at a time, on one thread.
//!
//! Every benchmark reports both rows/s and bytes/s of *uncompressed CSV* (criterion's
//! `Throughput::ElementsAndBytes`), so stages can be compared with each other and with the
//! reference rates of one core of a 2-core VM (zlib-rs inflates about 530 MB/s, arrow-csv
//! parses about 330 MB/s).
//!
//! - `inflate/{type}`: gzip → CSV bytes (flate2 `MultiGzDecoder` on zlib-rs), nothing else.
//! - `decode/{type}`: gzip → typed Arrow batches ([`tickvault::decode::decode_gzip_csv`]);
//!   `decode/trades_csv_only` parses already inflated CSV ([`tickvault::decode::decode_csv`]).
//! - `encode/{type}`: typed Arrow batches → a sealed chunk Parquet file in memory.
//! - `chunk/trades`: the whole per-chunk CPU work, gzip → sealed chunk Parquet.
//! - `merge/trades_2_chunks`: two chunk files of the same day (interleaved timestamps), read back
//!   from Parquet and k-way merged into batches ordered by `local_timestamp`.
//!
//! Inputs come from the `fake-tardis` generator and are built once per process. Under
//! `cargo test --benches` / `--test` / `--list` they are 20× smaller so that the smoke run stays
//! quick.
//!
//! Run: `cargo bench --bench pipeline` (all of it: about a minute, one core) or
//! `cargo bench --bench pipeline -- decode/` (a filter).

use std::hint::black_box;
use std::io::{self, Cursor, Read};
use std::sync::OnceLock;
use std::time::Duration;

use arrow_array::RecordBatch;
use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use fake_tardis::generate::{DayParams, day_csv, gzip};
use flate2::bufread::MultiGzDecoder;
use jiff::civil::{Date, date};
use tickvault::cache::chunk_file::{ChunkData, ChunkFileWriter, ChunkMeta};
use tickvault::decode::{decode_csv, decode_gzip_csv};
use tickvault::model::{ChunkKey, DataType};
use tickvault::output::merge::{MergeInput, merge};

/// The day every input is generated for (not the first of a month: nothing depends on it here,
/// but it matches the end-to-end script).
const DAY: Date = date(2024, 1, 2);

/// One generated day file, held in memory in both forms.
struct Input {
    data_type: DataType,
    exchange: &'static str,
    symbol: &'static str,
    csv: Vec<u8>,
    gz: Vec<u8>,
    rows: u64,
}

impl Input {
    fn generate(data_type: DataType, exchange: &'static str, symbol: &'static str, rows: usize, seed: u64) -> Input {
        let rows = scaled(rows);
        let params = DayParams::new(exchange, symbol, DAY, rows).with_seed(seed);
        let csv = day_csv(data_type.as_str(), &params).into_bytes();
        let gz = gzip(&csv);
        Input {
            data_type,
            exchange,
            symbol,
            csv,
            gz,
            rows: rows as u64,
        }
    }

    /// Rows per iteration and bytes of uncompressed CSV per iteration.
    fn throughput(&self) -> Throughput {
        Throughput::ElementsAndBytes {
            elements: self.rows,
            bytes: self.csv.len() as u64,
        }
    }

    fn key(&self) -> ChunkKey {
        ChunkKey::new(self.exchange, self.data_type, self.symbol, DAY)
    }

    /// The day decoded into typed batches.
    fn batches(&self) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        decode_gzip_csv(self.data_type, "bench", &self.gz[..], |b| {
            out.push(b);
            Ok::<_, io::Error>(())
        })
        .expect("generated input decodes");
        out
    }
}

/// Full-size inputs for `cargo bench`; 20× smaller when criterion only tests or lists the
/// benchmarks (`cargo test --benches`, `cargo bench -- --test`, `--list`), as criterion decides:
/// test mode unless `--bench` is given without `--test`.
fn scaled(rows: usize) -> usize {
    static SMALL: OnceLock<bool> = OnceLock::new();
    let small = *SMALL.get_or_init(|| {
        let has = |flag: &str| std::env::args().any(|a| a == flag);
        !has("--bench") || has("--test") || has("--list")
    });
    if small { (rows / 20).max(100) } else { rows }
}

macro_rules! input {
    ($name:ident, $ty:expr, $exchange:expr, $symbol:expr, $rows:expr, $seed:expr) => {
        fn $name() -> &'static Input {
            static CELL: OnceLock<Input> = OnceLock::new();
            CELL.get_or_init(|| Input::generate($ty, $exchange, $symbol, $rows, $seed))
        }
    };
}

// CSV per input: trades 17 MB, incremental_book_L2 16 MB, book_snapshot_25 15 MB, options_chain 11 MB.
input!(trades, DataType::Trades, "binance-futures", "BTCUSDT", 200_000, 1);
input!(trades_eth, DataType::Trades, "binance-futures", "ETHUSDT", 200_000, 2);
input!(
    book_l2,
    DataType::IncrementalBookL2,
    "binance-futures",
    "BTCUSDT",
    200_000,
    3
);
input!(
    book_25,
    DataType::BookSnapshot25,
    "binance-futures",
    "BTCUSDT",
    20_000,
    4
);
input!(options, DataType::OptionsChain, "deribit", "OPTIONS", 50_000, 5);

/// Few samples and short windows (one iteration takes tens of milliseconds), so the whole file
/// runs in about a minute on 2 cores. Command-line flags (`--measurement-time 10`,
/// `--sample-size 30`) override these.
fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

/// Flat sampling (the same iteration count in every sample) suits iterations this long.
fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.sampling_mode(SamplingMode::Flat);
}

/// Seals `batches` into a chunk Parquet file in memory.
fn encode(input: &Input, batches: &[RecordBatch]) -> (ChunkMeta, Vec<u8>) {
    let mut w =
        ChunkFileWriter::new(Cursor::new(Vec::with_capacity(input.gz.len())), input.data_type).expect("chunk writer");
    for b in batches {
        w.write(b).expect("encode");
    }
    let (meta, cursor) = w.finish(&input.key(), true).expect("seal");
    (meta, cursor.into_inner())
}

fn bench_inflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("inflate");
    configure(&mut group);
    for input in [trades(), book_25()] {
        group.throughput(input.throughput());
        group.bench_function(input.data_type.as_str(), |b| {
            let mut buf = vec![0u8; 1 << 20];
            b.iter(|| {
                let mut gz = MultiGzDecoder::new(&input.gz[..]);
                let mut total = 0usize;
                loop {
                    let n = gz.read(&mut buf).expect("inflate");
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                assert_eq!(total, input.csv.len());
                black_box(total)
            });
        });
    }
    group.finish();
}

fn bench_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    configure(&mut group);
    for input in [trades(), book_l2(), book_25(), options()] {
        group.throughput(input.throughput());
        group.bench_function(input.data_type.as_str(), |b| {
            b.iter(|| {
                let mut seen = 0usize;
                let rows = decode_gzip_csv(input.data_type, "bench", &input.gz[..], |batch| {
                    seen += black_box(batch).num_rows();
                    Ok::<_, io::Error>(())
                })
                .expect("decode");
                assert_eq!(rows, input.rows);
                seen
            });
        });
    }
    // Parsing alone (no inflate): the other half of decode/trades.
    let input = trades();
    group.throughput(input.throughput());
    group.bench_function("trades_csv_only", |b| {
        b.iter(|| {
            let rows = decode_csv(input.data_type, "bench", &input.csv[..], |batch| {
                black_box(batch);
                Ok::<_, io::Error>(())
            })
            .expect("parse");
            assert_eq!(rows, input.rows);
            rows
        });
    });
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    configure(&mut group);
    for input in [trades(), book_25()] {
        let batches = input.batches();
        group.throughput(input.throughput());
        group.bench_function(input.data_type.as_str(), |b| {
            b.iter(|| {
                let (meta, file) = encode(input, &batches);
                assert_eq!(meta.rows, input.rows);
                black_box(file.len())
            });
        });
    }
    group.finish();
}

/// The CPU work of one fetched chunk: gzip → typed batches → sealed chunk Parquet.
fn bench_chunk(c: &mut Criterion) {
    let mut group = c.benchmark_group("chunk");
    configure(&mut group);
    let input = trades();
    group.throughput(input.throughput());
    group.bench_function(input.data_type.as_str(), |b| {
        b.iter(|| {
            let mut w = ChunkFileWriter::new(Cursor::new(Vec::with_capacity(input.gz.len())), input.data_type)
                .expect("chunk writer");
            decode_gzip_csv(input.data_type, "bench", &input.gz[..], |batch| w.write(&batch))
                .expect("decode and encode");
            let (meta, cursor) = w.finish(&input.key(), true).expect("seal");
            assert_eq!(meta.rows, input.rows);
            black_box(cursor.into_inner().len())
        });
    });
    group.finish();
}

fn bench_merge(c: &mut Criterion) {
    let mut group = c.benchmark_group("merge");
    configure(&mut group);
    let sources = [trades(), trades_eth()];
    let inputs: Vec<MergeInput> = sources
        .iter()
        .map(|input| {
            let (meta, file) = encode(input, &input.batches());
            MergeInput {
                name: input.key().to_string(),
                data: ChunkData::Bytes(Bytes::from(file)),
                meta,
                decoded: None,
            }
        })
        .collect();
    let rows: u64 = sources.iter().map(|i| i.rows).sum();
    let csv_bytes: u64 = sources.iter().map(|i| i.csv.len() as u64).sum();
    let batch_rows = DataType::Trades.batch_rows();
    group.throughput(Throughput::ElementsAndBytes {
        elements: rows,
        bytes: csv_bytes,
    });
    group.bench_function("trades_2_chunks", |b| {
        b.iter(|| {
            let merged = merge(DataType::Trades, inputs.clone(), None, batch_rows, |batch| {
                black_box(batch);
                Ok::<_, io::Error>(())
            })
            .expect("merge");
            assert_eq!(merged, rows);
            merged
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = bench_inflate, bench_decode, bench_encode, bench_chunk, bench_merge
}
criterion_main!(benches);
