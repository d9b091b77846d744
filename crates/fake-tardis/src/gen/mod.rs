//! Realistic, deterministic Tardis day files for tests and benchmarks.
//!
//! Every data type is written with the exact Tardis header and number formatting (see
//! `shared/tardis-api.md` §2 and the real samples in `shared/data/real/`): rows ordered by
//! `local_timestamp` across the UTC day, `timestamp` a little earlier (exchange time, so not
//! monotonic), bursts of rows sharing a timestamp, shortest decimals without exponents.
//!
//! The same [`DayParams`] always give the same bytes: all randomness comes from a small
//! splitmix64 generator seeded from the parameters, never from the OS or a hash map's order.

mod bomb;
mod book;
mod market;
mod num;
mod options;
pub(crate) mod rng;
mod ticker;
mod trades;

use std::io::{self, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use jiff::civil::Date;

use market::{DAY_US, Latency, Market, Timeline};
use rng::{Rng, fnv1a};

pub use bomb::GzipBomb;

/// Version of the generated content: bump it whenever the same [`DayParams`] would give
/// different bytes, so that `fake-tardis generate` regenerates files it wrote before.
pub const GENERATOR_VERSION: u32 = 1;

/// What to generate: one data type's file for one exchange, symbol and UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayParams {
    /// Exchange id as in the URL, e.g. `deribit`, `binance-futures`, `bitmex`.
    pub exchange: String,
    /// Dataset symbol as in the URL, e.g. `BTC-PERPETUAL`, or a grouped one like `OPTIONS`.
    pub symbol: String,
    /// The UTC day the rows' `local_timestamp`s fall in.
    pub date: Date,
    /// Number of data rows (the header line is extra).
    pub rows: usize,
    /// Varies the content; the same seed gives the same bytes.
    pub seed: u64,
}

impl DayParams {
    /// Parameters with seed 0.
    pub fn new(exchange: &str, symbol: &str, date: Date, rows: usize) -> DayParams {
        DayParams {
            exchange: exchange.to_owned(),
            symbol: symbol.to_owned(),
            date,
            rows,
            seed: 0,
        }
    }

    /// The same parameters with another seed.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> DayParams {
        self.seed = seed;
        self
    }
}

/// The nine Tardis dataset types, in the order of the official client's `DatasetType`.
pub const DATA_TYPES: [&str; 9] = [
    "trades",
    "incremental_book_L2",
    "book_snapshot_25",
    "book_snapshot_5",
    "quotes",
    "book_ticker",
    "derivative_ticker",
    "liquidations",
    "options_chain",
];

const KEYS: &str = "exchange,symbol,timestamp,local_timestamp";

/// The exact Tardis CSV header line of `data_type` (no newline), or `None` for an unknown type.
pub fn header(data_type: &str) -> Option<String> {
    let rest = match data_type {
        "trades" | "liquidations" => "id,side,price,amount".to_owned(),
        "incremental_book_L2" => "is_snapshot,side,price,amount".to_owned(),
        "book_snapshot_25" => snapshot_columns(25),
        "book_snapshot_5" => snapshot_columns(5),
        // Ask side first, and the two prices in the middle: Tardis's order, not a typo.
        "quotes" | "book_ticker" => "ask_amount,ask_price,bid_price,bid_amount".to_owned(),
        "derivative_ticker" => "funding_timestamp,funding_rate,predicted_funding_rate,open_interest,\
                                last_price,index_price,mark_price"
            .to_owned(),
        "options_chain" => "type,strike_price,expiration,open_interest,last_price,bid_price,\
                            bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,\
                            underlying_index,underlying_price,delta,gamma,vega,theta,rho"
            .to_owned(),
        _ => return None,
    };
    Some(format!("{KEYS},{rest}"))
}

/// `asks[i].price,asks[i].amount,bids[i].price,bids[i].amount` for each level, interleaved.
fn snapshot_columns(depth: usize) -> String {
    (0..depth)
        .map(|i| format!("asks[{i}].price,asks[{i}].amount,bids[{i}].price,bids[{i}].amount"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Writes the header and `p.rows` data rows of `data_type` as CSV (`\n` line ends, a
/// trailing newline), streaming through a 64 KiB buffer.
///
/// # Errors
/// `InvalidInput` for an unknown data type; otherwise whatever `w` returns.
pub fn write_day(data_type: &str, p: &DayParams, w: impl Write) -> io::Result<()> {
    write_day_with(data_type, p, None, w)
}

/// Where a day's `local_timestamp`s jump back in time (see [`write_day_rewound`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewind {
    /// Index of the first data row (0-based, header not counted) that is moved back.
    pub at_row: usize,
    /// How far that row and every later one move back, in microseconds.
    pub back_us: i64,
}

/// Like [`write_day`], but the collector's clock steps back once: from data row
/// `rewind.at_row` on, every `local_timestamp` is `rewind.back_us` earlier (never before
/// midnight of the day), while `timestamp` (the exchange's clock) is left as it was. The file
/// is then not ordered by `local_timestamp`, as real Tardis files always are: row `at_row`
/// is earlier than row `at_row - 1` whenever `back_us` exceeds the gap between them (a few
/// milliseconds at most in a busy day; bursts share a timestamp) and the day is not clamped.
///
/// It costs what [`write_day`] costs, so it makes big out-of-order days as cheaply.
///
/// # Errors
/// `InvalidInput` for an unknown data type; otherwise whatever `w` returns.
pub fn write_day_rewound(data_type: &str, p: &DayParams, rewind: Rewind, w: impl Write) -> io::Result<()> {
    write_day_with(data_type, p, Some(rewind), w)
}

/// [`write_day_rewound`] as a `String`.
///
/// # Panics
/// On an unknown data type.
pub fn day_csv_rewound(data_type: &str, p: &DayParams, rewind: Rewind) -> String {
    let mut out = Vec::new();
    write_day_rewound(data_type, p, rewind, &mut out).expect("known data type; writing to a Vec cannot fail");
    String::from_utf8(out).expect("generated CSV is ASCII")
}

fn write_day_with(data_type: &str, p: &DayParams, rewind: Option<Rewind>, mut w: impl Write) -> io::Result<()> {
    let Some(head) = header(data_type) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unknown Tardis data type {data_type:?}"),
        ));
    };
    w.write_all(head.as_bytes())?;
    w.write_all(b"\n")?;
    let mut ctx = Ctx::new(data_type, p);
    let mut rows = Rows::new(&p.exchange, &p.symbol, &mut w);
    rows.rewind = rewind.map(|r| (r, ctx.day_start));
    match data_type {
        "trades" => trades::trades(&mut ctx, &mut rows)?,
        "liquidations" => trades::liquidations(&mut ctx, &mut rows)?,
        "incremental_book_L2" => book::incremental_l2(&mut ctx, &mut rows)?,
        "book_snapshot_25" => book::snapshots(&mut ctx, &mut rows, 25)?,
        "book_snapshot_5" => book::snapshots(&mut ctx, &mut rows, 5)?,
        "quotes" | "book_ticker" => book::quotes(&mut ctx, &mut rows)?,
        "derivative_ticker" => ticker::derivative_ticker(&mut ctx, &mut rows)?,
        "options_chain" => options::options_chain(&mut ctx, &mut rows)?,
        _ => unreachable!("header() knows every type"),
    }
    rows.flush()?;
    w.flush()
}

/// The whole day as a `String` (for small fixtures; use [`write_day`] for big days).
///
/// # Panics
/// On an unknown data type.
pub fn day_csv(data_type: &str, p: &DayParams) -> String {
    let mut out = Vec::new();
    write_day(data_type, p, &mut out).expect("known data type; writing to a Vec cannot fail");
    String::from_utf8(out).expect("generated CSV is ASCII")
}

/// gzip compression level Tardis-like files are written with here.
const GZIP_LEVEL: u32 = 6;

/// `data` as a single gzip member at level 6.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_members(data, 1)
}

/// `data` split into `parts` byte ranges of (almost) equal size, each compressed as its own
/// gzip member, concatenated: the shape of Tardis's chunk-uploaded files. The split points
/// are arbitrary bytes, so a CSV line can straddle two members, as a decoder must handle.
/// `parts == 0` is treated as 1.
pub fn gzip_members(data: &[u8], parts: usize) -> Vec<u8> {
    let parts = parts.max(1);
    let mut out = Vec::with_capacity(data.len() / 4 + 64 * parts);
    let size = data.len().div_ceil(parts);
    for i in 0..parts {
        let lo = (i * size).min(data.len());
        let hi = ((i + 1) * size).min(data.len());
        let mut enc = GzEncoder::new(out, Compression::new(GZIP_LEVEL));
        enc.write_all(&data[lo..hi]).expect("writing to a Vec cannot fail");
        out = enc.finish().expect("writing to a Vec cannot fail");
    }
    out
}

/// Streams the day straight into gzip, as `members` concatenated members split at line
/// boundaries (every member but the last holds the same number of lines; a file with fewer
/// lines than `members` gets one member per line). `members == 0` is treated as 1. `comment`, if
/// any, goes into the first member's gzip header (FCOMMENT), which decoders ignore.
///
/// CSV generation and compression run on two threads; the CSV is never held whole in memory.
///
/// # Errors
/// `InvalidInput` for an unknown data type; otherwise whatever `w` returns.
pub fn write_day_gz<W: Write + Send>(
    data_type: &str,
    p: &DayParams,
    members: usize,
    comment: Option<&str>,
    w: W,
) -> io::Result<W> {
    let lines = p.rows as u64 + 1;
    let per_member = lines.div_ceil(members.max(1) as u64);
    let mut gz = Members::new(w, per_member, comment.map(|c| c.as_bytes().to_vec()));
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
    std::thread::scope(|s| {
        let compressor = s.spawn(move || -> io::Result<W> {
            for chunk in rx {
                gz.write_all(&chunk)?;
            }
            gz.finish()
        });
        let generated = write_day(data_type, p, ChannelWriter { tx });
        let compressed = compressor.join().expect("compressor thread panicked");
        match (generated, compressed) {
            (Err(e), _) | (Ok(()), Err(e)) => Err(e),
            (Ok(()), Ok(w)) => Ok(w),
        }
    })
}

/// Hands buffers to the compressor thread.
struct ChannelWriter {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The compressor only hangs up after an error, which it reports itself.
        self.tx
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "gzip writer stopped"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A gzip writer that closes the current member after every `per_member` lines.
struct Members<W: Write> {
    state: Option<MemberState<W>>,
    per_member: u64,
    lines: u64,
    comment: Option<Vec<u8>>,
    /// Whether any member was opened yet.
    started: bool,
}

enum MemberState<W: Write> {
    /// Between members: the next byte starts a new one (created lazily so that data ending
    /// exactly on a boundary does not leave an empty trailing member).
    Idle(W),
    Active(Box<GzEncoder<W>>),
}

impl<W: Write> Members<W> {
    fn new(w: W, per_member: u64, comment: Option<Vec<u8>>) -> Self {
        Members {
            state: Some(MemberState::Idle(w)),
            per_member: per_member.max(1),
            lines: 0,
            comment,
            started: false,
        }
    }

    /// The current member's encoder, opening a new member if between members.
    fn encoder(&mut self) -> io::Result<&mut GzEncoder<W>> {
        if let Some(MemberState::Idle(_)) = self.state {
            let Some(MemberState::Idle(w)) = self.state.take() else {
                unreachable!("matched above")
            };
            self.started = true;
            let builder = match self.comment.take() {
                Some(c) => flate2::GzBuilder::new().comment(c),
                None => flate2::GzBuilder::new(),
            };
            let encoder = builder.write(w, Compression::new(GZIP_LEVEL));
            self.state = Some(MemberState::Active(Box::new(encoder)));
        }
        match &mut self.state {
            Some(MemberState::Active(e)) => Ok(e),
            _ => Err(Self::failed()),
        }
    }

    fn failed() -> io::Error {
        io::Error::other("gzip writer failed earlier")
    }

    fn end_member(&mut self) -> io::Result<()> {
        self.state = match self.state.take() {
            Some(MemberState::Active(e)) => Some(MemberState::Idle(e.finish()?)),
            other => other,
        };
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        // Empty input still gets one (empty) member: a valid "no data" gzip file.
        if !self.started {
            self.encoder()?;
        }
        self.end_member()?;
        match self.state.take() {
            Some(MemberState::Idle(w)) => Ok(w),
            _ => Err(Self::failed()),
        }
    }
}

impl<W: Write> Write for Members<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let need = self.per_member - self.lines;
        let mut seen = 0;
        let cut = buf.iter().position(|&b| {
            if b == b'\n' {
                seen += 1;
            }
            seen == need
        });
        match cut {
            Some(p) => {
                self.encoder()?.write_all(&buf[..=p])?;
                self.lines = 0;
                self.end_member()?;
                Ok(p + 1)
            }
            None => {
                self.encoder()?.write_all(buf)?;
                self.lines += seen;
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.state {
            Some(MemberState::Active(e)) => e.flush(),
            Some(MemberState::Idle(w)) => w.flush(),
            None => Ok(()),
        }
    }
}

/// Midnight UTC of `date`, in microseconds since the epoch.
pub(crate) fn day_start_us(date: Date) -> i64 {
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_microsecond())
        .unwrap_or(0)
}

/// Per-file generator state shared by all data types.
pub(crate) struct Ctx {
    pub(crate) rng: Rng,
    pub(crate) market: Market,
    pub(crate) timeline: Timeline,
    pub(crate) latency: Latency,
    pub(crate) rows: usize,
    pub(crate) day_start: i64,
    pub(crate) day_index: i64,
    pub(crate) date: Date,
    pub(crate) seed: u64,
    pub(crate) exchange: String,
    pub(crate) symbol: String,
}

impl Ctx {
    fn new(data_type: &str, p: &DayParams) -> Ctx {
        let day_start = day_start_us(p.date);
        let day_index = day_start.div_euclid(DAY_US);
        let mut rng = Rng::new(
            p.seed
                ^ fnv1a(p.exchange.as_bytes()).rotate_left(7)
                ^ fnv1a(p.symbol.as_bytes()).rotate_left(23)
                ^ fnv1a(data_type.as_bytes()).rotate_left(41)
                ^ (day_index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let timeline = Timeline::new(&mut rng, day_start, p.rows);
        let latency = Latency::new(&mut rng);
        Ctx {
            market: Market::new(&p.exchange, &p.symbol, p.seed, day_index),
            rng,
            timeline,
            latency,
            rows: p.rows,
            day_start,
            day_index,
            date: p.date,
            seed: p.seed,
            exchange: p.exchange.clone(),
            symbol: p.symbol.clone(),
        }
    }
}

/// Row assembly into a reusable buffer, written out in 64 KiB pieces.
pub(crate) struct Rows<'a, W: Write> {
    pub(crate) buf: Vec<u8>,
    w: &'a mut W,
    /// `exchange,symbol,` for files of a single symbol.
    prefix: Vec<u8>,
    /// Rows started so far.
    row: usize,
    /// A step back of the local clock, and midnight of the day (the earliest it may reach).
    rewind: Option<(Rewind, i64)>,
}

const FLUSH_AT: usize = 64 * 1024;

impl<'a, W: Write> Rows<'a, W> {
    fn new(exchange: &str, symbol: &str, w: &'a mut W) -> Self {
        let mut prefix = Vec::with_capacity(exchange.len() + symbol.len() + 2);
        prefix.extend_from_slice(exchange.as_bytes());
        prefix.push(b',');
        prefix.extend_from_slice(symbol.as_bytes());
        prefix.push(b',');
        Rows {
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            w,
            prefix,
            row: 0,
            rewind: None,
        }
    }

    /// The `local_timestamp` to write for the next row (moved back by a [`Rewind`]).
    fn local(&mut self, local: i64) -> i64 {
        let row = self.row;
        self.row += 1;
        match self.rewind {
            Some((r, day_start)) if row >= r.at_row => (local - r.back_us).max(day_start),
            _ => local,
        }
    }

    /// Starts a row: `exchange,symbol,timestamp,local_timestamp`.
    pub(crate) fn start(&mut self, ts: i64, local: i64) {
        let local = self.local(local);
        self.buf.extend_from_slice(&self.prefix);
        num::push_i64(&mut self.buf, ts);
        self.buf.push(b',');
        num::push_i64(&mut self.buf, local);
    }

    /// Starts a row of a grouped file, whose per-row symbol varies.
    pub(crate) fn start_symbol(&mut self, exchange: &[u8], symbol: &[u8], ts: i64, local: i64) {
        let local = self.local(local);
        self.buf.extend_from_slice(exchange);
        self.buf.push(b',');
        self.buf.extend_from_slice(symbol);
        self.buf.push(b',');
        num::push_i64(&mut self.buf, ts);
        self.buf.push(b',');
        num::push_i64(&mut self.buf, local);
    }

    pub(crate) fn dec(&mut self, mantissa: i64, scale: u32) {
        self.buf.push(b',');
        num::push_dec(&mut self.buf, mantissa, scale);
    }

    pub(crate) fn int(&mut self, v: i64) {
        self.buf.push(b',');
        num::push_i64(&mut self.buf, v);
    }

    pub(crate) fn uint(&mut self, v: u64) {
        self.buf.push(b',');
        num::push_u64(&mut self.buf, v);
    }

    pub(crate) fn str(&mut self, s: &[u8]) {
        self.buf.push(b',');
        self.buf.extend_from_slice(s);
    }

    pub(crate) fn empty(&mut self) {
        self.buf.push(b',');
    }

    pub(crate) fn end(&mut self) -> io::Result<()> {
        self.buf.push(b'\n');
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests;
