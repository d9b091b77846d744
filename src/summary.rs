//! What a download run did: counts per tier, traffic, outputs, failures, exit code. Rendered
//! for people (stderr) or as JSON (stdout, `--json`).

use std::fmt::Write as _;

use serde::Serialize;

use crate::exit::ExitCode;
use crate::output::{OutputResult, OutputStatus};

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every chunk and output is done.
    Ok,
    /// Some chunks failed; the rest are cached and a re-run fetches only what is missing.
    Failed,
    /// Stopped by Ctrl-C / SIGTERM.
    Interrupted,
}

/// Chunks by where they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChunkCounts {
    pub total: u64,
    pub memory: u64,
    pub local: u64,
    pub remote: u64,
    pub tardis: u64,
    pub failed: u64,
    /// Fetched days Tardis had not finished exporting (used, not cached as complete).
    pub incomplete: u64,
}

/// Traffic to Tardis.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TardisTraffic {
    /// Dataset requests sent, retries included.
    pub requests: u64,
    pub retries: u64,
    /// Compressed bytes received (what Tardis bills).
    pub bytes: u64,
}

/// One failed chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub chunk: String,
    pub error: String,
}

/// The outcome of `tickvault download`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub status: RunStatus,
    pub exit_code: i32,
    pub exchange: String,
    pub symbols: Vec<String>,
    pub data_types: Vec<String>,
    pub from: String,
    pub to: String,
    pub chunks: ChunkCounts,
    /// Rows in the chunks of this run (whole days).
    pub chunk_rows: u64,
    /// Rows in the outputs.
    pub rows: u64,
    pub tardis: TardisTraffic,
    /// Chunk-file bytes served by the cache tiers.
    pub bytes_from_cache: u64,
    pub uploads: Uploads,
    pub outputs: Vec<OutputResult>,
    /// Data types whose output was not written, and why.
    pub skipped_outputs: Vec<Failure>,
    pub failures: Vec<Failure>,
    pub seconds: f64,
}

/// Background uploads to the remote cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Uploads {
    pub uploaded: u64,
    pub failed: u64,
}

impl Summary {
    pub fn exit(&self) -> ExitCode {
        match self.status {
            RunStatus::Ok => ExitCode::Success,
            RunStatus::Failed => ExitCode::Failure,
            RunStatus::Interrupted => ExitCode::Interrupted,
        }
    }

    /// The JSON summary (one line).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A few lines for a person.
    pub fn render(&self) -> String {
        let c = &self.chunks;
        let mut s = String::new();
        let _ = write!(
            s,
            "{} chunks: {} from Tardis, {} local, {} remote, {} memory",
            c.total, c.tardis, c.local, c.remote, c.memory
        );
        if c.failed > 0 {
            let _ = write!(s, ", {} failed", c.failed);
        }
        let _ = writeln!(
            s,
            "; {} rows; {} fetched from Tardis in {} requests, {} from caches; {:.1} s",
            group(self.rows),
            human_bytes(self.tardis.bytes),
            self.tardis.requests,
            human_bytes(self.bytes_from_cache),
            self.seconds
        );
        if c.incomplete > 0 {
            let _ = writeln!(
                s,
                "{} chunk(s) are days Tardis has not finished exporting: used now, fetched again next run",
                c.incomplete
            );
        }
        if self.uploads.uploaded + self.uploads.failed > 0 {
            let _ = writeln!(
                s,
                "remote cache: {} uploaded, {} failed",
                self.uploads.uploaded, self.uploads.failed
            );
        }
        for o in &self.outputs {
            let verb = match o.status {
                OutputStatus::Written => "wrote",
                OutputStatus::UpToDate => "up to date:",
            };
            let _ = writeln!(
                s,
                "{verb} {} ({} rows, {})",
                o.path.display(),
                group(o.rows),
                human_bytes(o.bytes)
            );
        }
        for f in &self.failures {
            let _ = writeln!(s, "failed: {}", f.error);
        }
        for f in &self.skipped_outputs {
            let _ = writeln!(s, "not written: {}: {}", f.chunk, f.error);
        }
        match self.status {
            RunStatus::Ok => {}
            RunStatus::Failed => {
                let _ = writeln!(s, "{}", failure_line(c.failed, c.total));
            }
            RunStatus::Interrupted => {
                let _ = writeln!(s, "interrupted: no output written; completed chunks are cached");
            }
        }
        s
    }
}

/// The last line of a failed run: what a re-run will have to do.
fn failure_line(failed: u64, total: u64) -> String {
    if failed == 0 {
        "error: no chunk failed, but outputs were not written (see above); a re-run writes them".into()
    } else if failed >= total {
        format!("error: all {total} chunks failed; nothing was written or cached")
    } else {
        format!(
            "error: {failed} of {total} chunks failed; the others are cached, so a re-run fetches only the missing ones"
        )
    }
}

/// `1234567` → `1,234,567`.
pub fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Bytes with a binary unit, e.g. `16.7 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(100), "100");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(17_500_000), "16.7 MiB");
    }

    #[test]
    fn the_failure_line_says_what_a_rerun_does() {
        assert!(failure_line(2, 6).starts_with("error: 2 of 6 chunks failed; the others are cached"));
        assert_eq!(
            failure_line(3, 3),
            "error: all 3 chunks failed; nothing was written or cached"
        );
        assert_eq!(
            failure_line(0, 4),
            "error: no chunk failed, but outputs were not written (see above); a re-run writes them"
        );
    }
}
