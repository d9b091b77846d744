//! Terminal progress: an indicatif bar on stderr (only when stderr is a terminal), with log
//! lines printed above it instead of through it.

use std::io::{self, Write};
use std::sync::Arc;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::Reporter;
use crate::cache::Tier;
use crate::model::ChunkKey;

/// A progress bar counting chunks.
#[derive(Debug, Clone)]
pub struct BarReporter {
    multi: MultiProgress,
    bar: ProgressBar,
    downloaded: Arc<std::sync::atomic::AtomicU64>,
}

impl BarReporter {
    /// A bar drawn on stderr, or hidden when `visible` is false (not a terminal, --quiet,
    /// --no-progress).
    pub fn new(visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let bar = multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} chunks {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self {
            multi,
            bar,
            downloaded: Arc::default(),
        }
    }

    /// A writer for log lines that suspends the bar while printing.
    pub fn log_writer(&self) -> LogWriter {
        LogWriter {
            multi: self.multi.clone(),
        }
    }
}

impl Reporter for BarReporter {
    fn start(&self, chunks: u64) {
        self.bar.set_length(chunks);
        self.bar.enable_steady_tick(std::time::Duration::from_millis(200));
    }

    fn chunk_done(&self, _key: &ChunkKey, _source: Tier, downloaded: u64) {
        let total = self
            .downloaded
            .fetch_add(downloaded, std::sync::atomic::Ordering::Relaxed)
            + downloaded;
        self.bar.set_message(format!("{} from Tardis", HumanBytes(total)));
        self.bar.inc(1);
    }

    fn chunk_failed(&self, _key: &ChunkKey, _error: &str) {
        self.bar.inc(1);
    }

    fn writing(&self, what: &str) {
        self.bar.set_message(format!("writing {what}"));
    }

    fn finish(&self) {
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
        let text = String::from_utf8_lossy(&buf);
        let line = crate::redact::redact(&text);
        self.multi.suspend(|| {
            let _ = io::stderr().lock().write_all(line.as_bytes());
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
