//! Progress on stderr: an indicatif bar when stderr is a terminal, or a plain line every few
//! seconds (`--progress plain`, for CI logs), with log lines printed above the bar instead of
//! through it.
//!
//! Bytes move while bodies stream: a ticker thread reads the fetcher's shared counters
//! ([`FetchStats`]) on every tick, so nothing in the fetch path calls back into the display.
//! Rate is measured over the last few seconds; the ETA counts the finished chunks plus the
//! share of each streaming body that has arrived.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{HumanDuration, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::Reporter;
use crate::cache::Tier;
use crate::fetch::FetchStats;
use crate::model::ChunkKey;
use crate::settings::{LogFormat, ProgressMode};

/// How progress is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// An animated bar (stderr is a terminal).
    Bar,
    /// A line every interval; as a JSON object when logs are JSON.
    Plain {
        /// Time between lines.
        every: Duration,
        /// One JSON object per line.
        json: bool,
    },
    /// Nothing.
    Off,
}

impl Display {
    /// The display for a progress mode, given the log format and whether stderr is a terminal.
    pub fn decide(mode: ProgressMode, log_format: LogFormat, stderr_is_terminal: bool) -> Self {
        match mode {
            ProgressMode::Auto if stderr_is_terminal => Display::Bar,
            ProgressMode::Auto | ProgressMode::Never => Display::Off,
            ProgressMode::Plain(every) => Display::Plain {
                every,
                json: log_format == LogFormat::Json,
            },
        }
    }
}

/// Bar ticks.
const BAR_TICK: Duration = Duration::from_millis(200);
/// The rate is measured over this window.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// Bar positions per chunk, so that a chunk's bytes move the bar.
const STEPS: u64 = 1000;

/// What the run has done so far, as the ticker reads it.
#[derive(Debug, Default)]
struct Counts {
    total: AtomicU64,
    memory: AtomicU64,
    local: AtomicU64,
    remote: AtomicU64,
    tardis: AtomicU64,
    failed: AtomicU64,
}

/// One reading of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Snapshot {
    /// Chunks in the plan.
    pub total: u64,
    /// Chunks served per tier: memory, local, remote, Tardis.
    pub tiers: [u64; 4],
    /// Chunks that failed.
    pub failed: u64,
    /// Bytes received from Tardis.
    pub bytes: u64,
    /// Bodies streaming whose length is known, their lengths and what has arrived of them.
    pub streaming: (u64, u64, u64),
    /// Time since the run started.
    pub elapsed: Duration,
}

impl Snapshot {
    /// Chunks finished, failed included.
    pub fn done(&self) -> u64 {
        self.tiers.iter().sum::<u64>() + self.failed
    }

    /// The share of the run done, counting the arrived share of streaming bodies.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let (n, expected, received) = self.streaming;
        let partial = if n > 0 && expected > 0 {
            n as f64 * (received as f64 / expected as f64).min(1.0)
        } else {
            0.0
        };
        ((self.done() as f64 + partial) / self.total as f64).min(1.0)
    }

    /// Time left at the pace so far, once there is a pace to go by.
    pub fn eta(&self) -> Option<Duration> {
        let f = self.fraction();
        (f > 0.0 && f < 1.0 && self.elapsed >= Duration::from_secs(1)).then(|| self.elapsed.mul_f64((1.0 - f) / f))
    }

    /// `chunks per tier`: only the tiers that served some.
    fn tiers_text(&self) -> String {
        let names = ["memory", "local", "remote", "tardis"];
        let mut parts: Vec<String> = names
            .iter()
            .zip(self.tiers)
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        if self.failed > 0 {
            parts.push(format!("failed {}", self.failed));
        }
        parts.join(", ")
    }

    /// The bar's message: chunks, bytes from Tardis, rate, ETA, tiers (short enough for an
    /// 80-column terminal).
    pub fn bar_text(&self, rate: f64) -> String {
        let mut s = format!(
            "{}/{} chunks · {} · {}/s",
            self.done(),
            self.total,
            bytes_text(self.bytes),
            bytes_text(rate as u64)
        );
        if let Some(eta) = self.eta() {
            s.push_str(&format!(" · ETA {}", HumanDuration(eta)));
        }
        let tiers = self.tiers_text();
        if !tiers.is_empty() {
            s.push_str(&format!(" · {tiers}"));
        }
        s
    }

    /// A `--progress plain` line.
    pub fn plain_text(&self, rate: f64) -> String {
        let mut s = format!(
            "progress: {}/{} chunks, {} from Tardis at {}/s",
            self.done(),
            self.total,
            bytes_text(self.bytes),
            bytes_text(rate as u64)
        );
        if let Some(eta) = self.eta() {
            s.push_str(&format!(", ETA {}", HumanDuration(eta)));
        }
        let tiers = self.tiers_text();
        if !tiers.is_empty() {
            s.push_str(&format!("; {tiers}"));
        }
        s
    }

    /// A `--progress plain` line when logs are JSON.
    pub fn json_text(&self, rate: f64, time: &str) -> String {
        serde_json::json!({
            "time": time,
            "level": "info",
            "event": "progress",
            "chunks_done": self.done(),
            "chunks_total": self.total,
            "memory": self.tiers[0],
            "local": self.tiers[1],
            "remote": self.tiers[2],
            "tardis": self.tiers[3],
            "failed": self.failed,
            "bytes": self.bytes,
            "bytes_per_second": rate.round() as u64,
            "eta_seconds": self.eta().map(|d| d.as_secs()),
        })
        .to_string()
    }
}

/// `129.1 KiB`: binary units, one decimal.
pub fn bytes_text(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}

/// Bytes per second over a sliding window of readings.
#[derive(Debug, Default)]
pub struct Rate {
    samples: VecDeque<(Duration, u64)>,
}

impl Rate {
    /// Adds a reading of `bytes` at `at` (time since the start) and returns the rate.
    pub fn add(&mut self, at: Duration, bytes: u64) -> f64 {
        self.samples.push_back((at, bytes));
        while self.samples.len() > 2 && at.saturating_sub(self.samples[1].0) >= RATE_WINDOW {
            self.samples.pop_front();
        }
        let (t0, b0) = self.samples[0];
        let span = at.saturating_sub(t0).as_secs_f64();
        if span <= 0.0 {
            0.0
        } else {
            bytes.saturating_sub(b0) as f64 / span
        }
    }
}

#[derive(Debug)]
struct State {
    counts: Counts,
    traffic: OnceLock<Arc<FetchStats>>,
    started: Instant,
}

impl State {
    fn snapshot(&self) -> Snapshot {
        let c = &self.counts;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (bytes, streaming) = self.traffic.get().map_or((0, (0, 0, 0)), |t| {
            (
                load(&t.bytes),
                (load(&t.bodies), load(&t.bodies_expected), load(&t.bodies_received)),
            )
        });
        Snapshot {
            total: load(&c.total),
            tiers: [load(&c.memory), load(&c.local), load(&c.remote), load(&c.tardis)],
            failed: load(&c.failed),
            bytes,
            streaming,
            elapsed: self.started.elapsed(),
        }
    }
}

/// Shows progress on stderr, as chosen by [`Display`].
#[derive(Debug)]
pub struct Progress {
    display: Display,
    multi: MultiProgress,
    bar: ProgressBar,
    state: Arc<State>,
    ticker: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

impl Progress {
    /// Progress drawn as `display` says (the caller decides whether stderr is a terminal).
    pub fn new(display: Display) -> Self {
        let target = if display == Display::Bar {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let bar = multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{spinner} {elapsed:>4} {bar:20} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            display,
            multi,
            bar,
            state: Arc::new(State {
                counts: Counts::default(),
                traffic: OnceLock::new(),
                started: Instant::now(),
            }),
            ticker: Mutex::new(None),
        }
    }

    /// A writer for log lines that suspends the bar while printing.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter {
            multi: self.multi.clone(),
        }
    }

    fn start_ticker(&self) {
        let every = match self.display {
            Display::Bar => BAR_TICK,
            Display::Plain { every, .. } => every,
            Display::Off => return,
        };
        let (stop, stopped) = mpsc::channel::<()>();
        let (state, bar, multi, display) = (self.state.clone(), self.bar.clone(), self.multi.clone(), self.display);
        let spawned = std::thread::Builder::new().name("progress".into()).spawn(move || {
            let mut rate = Rate::default();
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                tick(&state, &mut rate, display, &bar, &multi);
            }
        });
        if let Ok(handle) = spawned {
            *self.ticker.lock().unwrap_or_else(|e| e.into_inner()) = Some((stop, handle));
        }
    }
}

/// One tick: read the counters, then move the bar or print a plain line.
fn tick(state: &State, rate: &mut Rate, display: Display, bar: &ProgressBar, multi: &MultiProgress) {
    let s = state.snapshot();
    let r = rate.add(s.elapsed, s.bytes);
    match display {
        Display::Bar => {
            bar.set_position((s.fraction() * (s.total * STEPS) as f64) as u64);
            bar.set_message(s.bar_text(r));
        }
        Display::Plain { json, .. } => {
            let line = if json {
                let time = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
                s.json_text(r, &time)
            } else {
                s.plain_text(r)
            };
            multi.suspend(|| {
                let _ = writeln!(io::stderr().lock(), "{line}");
            });
        }
        Display::Off => {}
    }
}

impl Reporter for Progress {
    fn track_traffic(&self, stats: Arc<FetchStats>) {
        let _ = self.state.traffic.set(stats);
    }

    fn start(&self, chunks: u64) {
        self.state.counts.total.store(chunks, Ordering::Relaxed);
        self.bar.set_length(chunks * STEPS);
        if self.display == Display::Bar {
            self.bar.set_message(self.state.snapshot().bar_text(0.0));
            self.bar.enable_steady_tick(BAR_TICK);
        }
        self.start_ticker();
    }

    fn chunk_done(&self, _key: &ChunkKey, source: Tier, _downloaded: u64) {
        let c = &self.state.counts;
        let counter = match source {
            Tier::Memory => &c.memory,
            Tier::Local => &c.local,
            Tier::Remote => &c.remote,
            Tier::Tardis => &c.tardis,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn chunk_failed(&self, _key: &ChunkKey, _error: &str) {
        self.state.counts.failed.fetch_add(1, Ordering::Relaxed);
    }

    fn writing(&self, what: &str) {
        self.bar.set_message(format!("writing {what}"));
    }

    fn finish(&self) {
        let ticker = self.ticker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((stop, handle)) = ticker {
            let _ = stop.send(());
            let _ = handle.join();
        }
        self.bar.finish_and_clear();
    }
}

/// Writes log lines to stderr above the progress bar.
#[derive(Debug, Clone)]
pub struct LogWriter {
    multi: MultiProgress,
}

/// One log line being assembled; printed when dropped.
pub struct LogLine {
    multi: MultiProgress,
    buf: Vec<u8>,
}

impl Write for LogLine {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.multi.suspend(|| {
            let _ = io::stderr().lock().write_all(&buf);
        });
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> Self::Writer {
        LogLine {
            multi: self.multi.clone(),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(done_tardis: u64, total: u64, streaming: (u64, u64, u64), secs: u64) -> Snapshot {
        Snapshot {
            total,
            tiers: [0, 0, 0, done_tardis],
            bytes: 3 << 20,
            streaming,
            elapsed: Duration::from_secs(secs),
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_streaming_body_moves_the_fraction_before_its_chunk_ends() {
        let s = snap(0, 2, (1, 100, 50), 10);
        assert!((s.fraction() - 0.25).abs() < 1e-9);
        assert_eq!(s.eta(), Some(Duration::from_secs(30)));
        let text = s.bar_text(1024.0 * 1024.0);
        assert!(
            text.starts_with("0/2 chunks · 3.0 MiB · 1.0 MiB/s · ETA 30 seconds"),
            "{text}"
        );
        assert_eq!(
            s.plain_text(2048.0),
            "progress: 0/2 chunks, 3.0 MiB from Tardis at 2.0 KiB/s, ETA 30 seconds"
        );
        assert_eq!(
            (bytes_text(999), bytes_text(132_170)),
            ("999 B".into(), "129.1 KiB".into())
        );
        assert_eq!(snap(0, 2, (0, 0, 0), 10).eta(), None, "no pace yet");
        assert_eq!(snap(2, 2, (0, 0, 0), 10).eta(), None, "done");
    }

    #[test]
    fn tiers_and_failures_are_listed_when_nonzero() {
        let s = Snapshot {
            total: 5,
            tiers: [0, 2, 0, 1],
            failed: 1,
            ..Snapshot::default()
        };
        assert!(
            s.bar_text(0.0).ends_with("· local 2, tardis 1, failed 1"),
            "{}",
            s.bar_text(0.0)
        );
        let j: serde_json::Value = serde_json::from_str(&s.json_text(0.0, "t")).unwrap();
        assert_eq!(
            (j["event"].as_str(), j["chunks_done"].as_u64()),
            (Some("progress"), Some(4))
        );
    }

    #[test]
    fn the_rate_follows_the_last_seconds() {
        let mut r = Rate::default();
        assert_eq!(r.add(Duration::ZERO, 0), 0.0);
        assert_eq!(r.add(Duration::from_secs(1), 1000), 1000.0);
        for s in 2..20 {
            r.add(Duration::from_secs(s), 1000);
        }
        assert_eq!(
            r.add(Duration::from_secs(20), 1000),
            0.0,
            "a stalled body's rate falls to 0"
        );
    }
}
