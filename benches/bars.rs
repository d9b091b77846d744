//! Bars from a cached trades chunk: the rows/s of `tickvault bars` once the trades are in the
//! cache (issue 16), one core.
//!
//! - `bars/derive_1m`: a sealed trades chunk file (in memory) → the partial bars of one
//!   interval: the four columns the fold needs are read from Parquet and folded
//!   ([`tickvault::bars::chunk::derive`]).
//! - `bars/derive_4_intervals`: the same pass for 1m, 15m, 1h and 1d at once.
//! - `bars/assemble_1m`: a day's derived chunk read back, combined across midnight and turned
//!   into output batches ([`tickvault::bars::assemble::Assembler`]).
//!
//! The day is 1,000,000 generated trades (20× fewer under `--test`/`--list`).
//!
//! Run: `cargo bench --bench bars`.

use std::hint::black_box;
use std::io::Cursor;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use fake_tardis::generate::{DayParams, day_csv};
use jiff::civil::{Date, date};
use tickvault::bars::assemble::Assembler;
use tickvault::bars::chunk::{derive, read_rows, write};
use tickvault::bars::output::BarBatcher;
use tickvault::cache::chunk_file::{ChunkData, ChunkFileWriter};
use tickvault::decode::decode_csv;
use tickvault::model::{BarTime, ChunkKey, DAY_MICROS, DataType, Derivation, Interval};

const DAY: Date = date(2024, 1, 2);

fn scaled(rows: usize) -> usize {
    let has = |flag: &str| std::env::args().any(|a| a == flag);
    if !has("--bench") || has("--test") || has("--list") {
        (rows / 20).max(100)
    } else {
        rows
    }
}

fn key() -> ChunkKey {
    ChunkKey::new("binance-futures", DataType::Trades, "BTCUSDT", DAY)
}

/// A sealed trades chunk file of one generated day, and its rows.
fn trades_chunk() -> &'static (ChunkData, u64) {
    static CELL: OnceLock<(ChunkData, u64)> = OnceLock::new();
    CELL.get_or_init(|| {
        let rows = scaled(1_000_000);
        let params = DayParams::new("binance-futures", "BTCUSDT", DAY, rows).with_seed(16);
        let csv = day_csv("trades", &params);
        let mut w = ChunkFileWriter::new(Cursor::new(Vec::new()), DataType::Trades).expect("chunk writer");
        decode_csv(DataType::Trades, "bench", csv.as_bytes(), |b| w.write(&b)).expect("decode");
        let (meta, cur) = w.finish(&key(), true).expect("seal");
        (ChunkData::Bytes(Bytes::from(cur.into_inner())), meta.rows)
    })
}

fn day_start() -> i64 {
    key().day_start_micros()
}

fn minute() -> Interval {
    "1m".parse().expect("interval")
}

fn bench_bars(c: &mut Criterion) {
    let (chunk, rows) = trades_chunk();
    let mut group = c.benchmark_group("bars");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(*rows));
    group.bench_function("derive_1m", |b| {
        b.iter(|| black_box(derive(chunk, day_start(), &[minute()], BarTime::Timestamp).expect("derive")));
    });
    let four: Vec<Interval> = ["1m", "15m", "1h", "1d"]
        .iter()
        .map(|i| i.parse().expect("interval"))
        .collect();
    group.bench_function("derive_4_intervals", |b| {
        b.iter(|| black_box(derive(chunk, day_start(), &four, BarTime::Timestamp).expect("derive")));
    });
    // The derived chunk of the day, sealed, then read back and assembled into output batches.
    let rows_1m = derive(chunk, day_start(), &[minute()], BarTime::Timestamp).expect("derive");
    let dkey = key().derived(Derivation::Bars {
        interval: minute(),
        by: BarTime::Timestamp,
    });
    let mut buf = Cursor::new(Vec::new());
    write(&mut buf, &dkey, &rows_1m[0], true, None).expect("write");
    let derived = ChunkData::Bytes(Bytes::from(buf.into_inner()));
    group.bench_function("assemble_1m", |b| {
        b.iter(|| {
            let mut asm = Assembler::new(minute(), day_start(), day_start() + DAY_MICROS, false);
            let mut batcher = BarBatcher::new("binance-futures", "BTCUSDT", minute());
            asm.push_day(&read_rows(&derived).expect("read"));
            let mut n = 0;
            asm.finish(&mut |bar| {
                if batcher.push(bar).is_some() {
                    n += 1;
                }
            });
            black_box((n, batcher.take()))
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_bars
}
criterion_main!(benches);
