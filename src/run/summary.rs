//! What a download run did: counts per tier, traffic, outputs, failures, exit code. Rendered
//! for people (stderr) or as JSON (stdout, `--json`). Every summary, an interrupted run's
//! included, is built the same way: [`Summary::begin`] from the request, the run's figures,
//! then [`Summary::end`] with the status, which alone decides the exit code.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use indicatif::{HumanBytes, HumanCount};
use serde::Serialize;

use super::exit::{ExitCode, RunStatus};
use super::plan::Request;
use crate::cache::UploadStats;
use crate::fetch::FetchStats;
use crate::output::{OutputResult, OutputStatus};

/// Chunks by where they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ChunkCounts {
    /// Chunks in the plan.
    pub total: u64,
    /// Served by the memory tier.
    pub memory: u64,
    /// Served by the local tier.
    pub local: u64,
    /// Served by the remote tier.
    pub remote: u64,
    /// Fetched from Tardis.
    pub tardis: u64,
    /// Failed for good.
    pub failed: u64,
    /// Not resolved because the run was interrupted.
    pub pending: u64,
    /// Fetched days Tardis had not finished exporting (used, not cached as complete).
    pub incomplete: u64,
    /// Chunks not requested because their day is not published yet (included in `total`).
    pub withheld: u64,
}

/// What Tardis had published of the request's days.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PublicationSummary {
    /// `datasets.exportedUntil` of the exchange (RFC 3339), when the metadata gave it.
    pub exported_until: Option<String>,
    /// Without metadata, days were assumed unpublished until a day after they end.
    pub assumed: bool,
    /// The request's days not final yet.
    pub incomplete_days: Vec<String>,
    /// Whether those days were withheld (the default; exit code 3) or used, marked
    /// incomplete (`--allow-incomplete`).
    pub withheld: bool,
}

impl PublicationSummary {
    /// The summary of what the run knew.
    pub fn new(p: &super::publication::Publication, withheld: bool) -> Self {
        Self {
            exported_until: p.exported_until.map(super::validate::iso),
            assumed: p.assumed,
            incomplete_days: p.incomplete.iter().map(ToString::to_string).collect(),
            withheld: withheld && !p.incomplete.is_empty(),
        }
    }
}

/// Traffic to Tardis.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TardisTraffic {
    /// Dataset requests sent, retries included.
    pub requests: u64,
    /// Requests that were retries.
    pub retries: u64,
    /// Compressed bytes received (what Tardis bills).
    pub bytes: u64,
    /// Requests to the metadata API (validation, publication, `--wait` polls), retries included.
    pub metadata_requests: u64,
    /// Retries by the reason of the attempt that failed (`rate_limited`, `server_error`,
    /// `body_interrupted`, `damaged_body`, `connection`, `timeout`, `too_slow`).
    pub retries_by_reason: std::collections::BTreeMap<String, u64>,
}

impl TardisTraffic {
    /// The fetcher's counters, with the metadata requests of the run.
    pub(crate) fn new(stats: &FetchStats, metadata_requests: u64) -> Self {
        TardisTraffic {
            requests: stats.requests.load(Ordering::Relaxed),
            retries: stats.retries.load(Ordering::Relaxed),
            bytes: stats.bytes.load(Ordering::Relaxed),
            metadata_requests,
            retries_by_reason: stats.retries_by_reason(),
        }
    }
}

/// One failed chunk or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The chunk key, or the data type of an output.
    pub chunk: String,
    /// The error with its causes.
    pub error: String,
}

/// Background uploads to the remote cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Uploads {
    /// Chunks uploaded.
    pub uploaded: u64,
    /// Uploads that failed.
    pub failed: u64,
}

impl From<UploadStats> for Uploads {
    fn from(u: UploadStats) -> Self {
        Uploads {
            uploaded: u.uploaded,
            failed: u.failed,
        }
    }
}

/// What `tickvault bars` did besides the chunks (absent from a download's summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BarsFigures {
    /// Derived chunks (bars of one symbol-day-interval) served by the cache tiers.
    pub derived_from_cache: u64,
    /// Derived chunks computed from raw trades in this run.
    pub derived_computed: u64,
    /// Raw trades chunks read to compute them.
    pub raw_chunks_read: u64,
    /// Rows of raw trades read.
    pub raw_rows_read: u64,
    /// Trades that arrived more than a day after their interval (in no bar; see README, "Bars").
    pub late_trades: u64,
}

/// The version of the JSON documents on stdout (`--json`): raised when a field changes meaning
/// or goes away; new fields may appear without it.
pub const JSON_SCHEMA: u32 = 1;

/// The outcome of `tickvault download`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// [`JSON_SCHEMA`].
    pub schema: u32,
    /// How the run ended.
    pub status: RunStatus,
    /// The process's exit code (from `status`).
    pub exit_code: i32,
    /// The request.
    pub exchange: String,
    /// Normalised symbols.
    pub symbols: Vec<String>,
    /// Data types.
    pub data_types: Vec<String>,
    /// Start of the range (RFC 3339).
    pub from: String,
    /// End of the range, exclusive (RFC 3339).
    pub to: String,
    /// This worker's shard (`K/N`), when the run was one.
    pub shard: Option<String>,
    /// Chunks per source tier (for `bars`: symbol-days, by where their bars came from).
    pub chunks: ChunkCounts,
    /// `tickvault bars` only: derived chunks and raw reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bars: Option<BarsFigures>,
    /// Rows in the chunks of this run (whole days).
    pub chunk_rows: u64,
    /// Rows in the outputs.
    pub rows: u64,
    /// Traffic to Tardis.
    pub tardis: TardisTraffic,
    /// Chunk-file bytes served by the cache tiers.
    pub bytes_from_cache: u64,
    /// Background uploads to the remote cache.
    pub uploads: Uploads,
    /// What Tardis had published of the request's days.
    pub publication: PublicationSummary,
    /// Outputs written or up to date.
    pub outputs: Vec<OutputResult>,
    /// Data types whose output was not written, and why.
    pub skipped_outputs: Vec<Failure>,
    /// Chunks that failed, in request order: the first [`MAX_LISTED_FAILURES`].
    pub failures: Vec<Failure>,
    /// Failed chunks beyond the ones listed in `failures`.
    pub failures_not_listed: u64,
    /// Wall time of the run.
    pub seconds: f64,
}

/// Failures listed in a summary; the rest are counted (a run of a million chunks against a
/// dead host must not print a million lines or megabytes of JSON).
pub const MAX_LISTED_FAILURES: usize = 100;
/// Failures shown in the human summary (the JSON lists up to [`MAX_LISTED_FAILURES`]).
const SHOWN_FAILURES: usize = 20;

impl Summary {
    /// An empty summary of `request`, to be filled by the run and closed by [`Self::end`].
    pub fn begin(request: &Request) -> Self {
        Self {
            schema: JSON_SCHEMA,
            status: RunStatus::Ok,
            exit_code: 0,
            exchange: request.exchange.clone(),
            symbols: request.symbols.clone(),
            data_types: request.data_types.iter().map(ToString::to_string).collect(),
            from: request.range.from.to_string(),
            to: request.range.to.to_string(),
            shard: None,
            chunks: ChunkCounts::default(),
            bars: None,
            chunk_rows: 0,
            rows: 0,
            tardis: TardisTraffic::default(),
            bytes_from_cache: 0,
            uploads: Uploads::default(),
            publication: PublicationSummary::default(),
            outputs: Vec::new(),
            skipped_outputs: Vec::new(),
            failures: Vec::new(),
            failures_not_listed: 0,
            seconds: 0.0,
        }
    }

    /// Closes the summary: the status (and with it the exit code) and the wall time.
    #[must_use]
    pub fn end(mut self, status: RunStatus, seconds: f64) -> Self {
        if self.failures.len() > MAX_LISTED_FAILURES {
            self.failures_not_listed += (self.failures.len() - MAX_LISTED_FAILURES) as u64;
            self.failures.truncate(MAX_LISTED_FAILURES);
        }
        self.status = status;
        self.exit_code = i32::from(ExitCode::from(status).code());
        self.seconds = seconds;
        self
    }

    /// The process exit code.
    pub fn exit(&self) -> ExitCode {
        ExitCode::from(self.status)
    }

    /// The JSON summary (one line).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// A few lines for a person.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} {} {}, {} to {}\n",
            self.exchange,
            self.data_types.join(","),
            self.symbols.join(","),
            self.from,
            self.to
        );
        s.push_str(&self.traffic_line());
        self.render_notes(&mut s);
        self.render_outputs(&mut s);
        self.render_status(&mut s);
        s
    }

    /// Retries, unfinished days, bars figures and uploads, when there are any.
    fn render_notes(&self, s: &mut String) {
        let c = &self.chunks;
        if self.tardis.retries > 0 {
            let _ = writeln!(
                s,
                "{} request(s) retried after transient errors{}",
                self.tardis.retries,
                if c.failed == 0 { "; every chunk succeeded" } else { "" }
            );
        }
        if c.incomplete > 0 {
            let _ = writeln!(
                s,
                "{} chunk(s) are days Tardis has not finished exporting: used now, fetched again next run",
                c.incomplete
            );
        }
        if let Some(b) = &self.bars {
            let _ = writeln!(
                s,
                "bars: {} day-interval chunk(s) from the cache, {} computed from {} trades chunk(s) ({} rows)",
                b.derived_from_cache,
                b.derived_computed,
                b.raw_chunks_read,
                HumanCount(b.raw_rows_read)
            );
            if b.late_trades > 0 {
                let _ = writeln!(
                    s,
                    "bars: {} trade(s) arrived more than a day after their interval and are in no bar",
                    b.late_trades
                );
            }
        }
        if self.uploads.uploaded + self.uploads.failed > 0 {
            let _ = writeln!(
                s,
                "remote cache: {} uploaded, {} failed",
                self.uploads.uploaded, self.uploads.failed
            );
        }
    }

    /// The outputs written, the failures and the outputs not written.
    fn render_outputs(&self, s: &mut String) {
        for o in &self.outputs {
            let verb = match o.status {
                OutputStatus::Written => "wrote",
                OutputStatus::UpToDate => "up to date:",
            };
            let _ = write!(
                s,
                "{verb} {} ({} rows, {})",
                o.path.display(),
                HumanCount(o.rows),
                HumanBytes(o.bytes)
            );
            if o.complete {
                let _ = writeln!(s);
            } else {
                let _ = writeln!(
                    s,
                    " INCOMPLETE: holds days Tardis had not finished exporting (until {})",
                    o.exported_until.as_deref().unwrap_or("unknown")
                );
            }
        }
        for f in self.failures.iter().take(SHOWN_FAILURES) {
            let _ = writeln!(s, "failed: {}", f.error);
        }
        let hidden = self.failures.len().saturating_sub(SHOWN_FAILURES) as u64 + self.failures_not_listed;
        if hidden > 0 {
            let _ = writeln!(s, "… and {hidden} more failed chunks");
        }
        for f in &self.skipped_outputs {
            let _ = writeln!(s, "not written: {}: {}", f.chunk, f.error);
        }
    }

    /// The line that explains a status other than ok.
    fn render_status(&self, s: &mut String) {
        let c = &self.chunks;
        match self.status {
            RunStatus::Ok => {}
            RunStatus::Failed => {
                let _ = writeln!(s, "{}", failure_line(c.failed, c.total));
            }
            RunStatus::NotPublished => {
                let _ = writeln!(
                    s,
                    "not yet published: Tardis has not finished exporting {} of the requested days; retry later (--wait DURATION waits for them, --allow-incomplete uses them, marked)",
                    self.publication.incomplete_days.len()
                );
            }
            RunStatus::TransferLimit => {
                let _ = writeln!(
                    s,
                    "transfer limit reached: {} fetched from Tardis (--max-transfer); {} of {} chunks left for the next run (retry later: it resumes)",
                    HumanBytes(self.tardis.bytes),
                    c.pending,
                    c.total
                );
            }
            RunStatus::Refused => {
                let _ = writeln!(
                    s,
                    "error: an output path holds another request's output; nothing was replaced (--overwrite replaces it)"
                );
            }
            RunStatus::Interrupted => {
                let _ = writeln!(
                    s,
                    "interrupted: {} of {} chunks done, {} not started or cut short; no output written; completed chunks are cached",
                    c.total.saturating_sub(c.pending + c.failed),
                    c.total,
                    c.pending
                );
            }
        }
    }

    /// Chunks per tier, rows, traffic and time.
    fn traffic_line(&self) -> String {
        let c = &self.chunks;
        let mut s = self.shard.as_ref().map(|k| format!("shard {k}: ")).unwrap_or_default();
        let _ = write!(
            s,
            "{} chunks: {} from Tardis, {} local, {} remote, {} memory",
            c.total, c.tardis, c.local, c.remote, c.memory
        );
        if c.failed > 0 {
            let _ = write!(s, ", {} failed", c.failed);
        }
        if c.withheld > 0 {
            let _ = write!(s, ", {} withheld (not yet published)", c.withheld);
        }
        let _ = writeln!(
            s,
            "; {} rows; {} fetched from Tardis in {} requests, {} from caches; {:.1} s",
            HumanCount(self.rows),
            HumanBytes(self.tardis.bytes),
            self.tardis.requests,
            HumanBytes(self.bytes_from_cache),
            self.seconds
        );
        if self.tardis.retries > 0 {
            let reasons: Vec<String> = self
                .tardis
                .retries_by_reason
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            let _ = writeln!(s, "{} retries: {}", self.tardis.retries, reasons.join(", "));
        }
        s
    }
}

/// The JSON document of a failure that ended a command before or outside a summary (a usage
/// error, a run that could not start): `schema`, `status`, `exit_code`, `error`.
pub fn error_json(code: ExitCode, error: &str) -> String {
    let status = match code {
        ExitCode::Usage => "usage_error",
        ExitCode::Interrupted => "interrupted",
        ExitCode::NotPublished => "not_published",
        ExitCode::Success | ExitCode::Failure => "error",
    };
    serde_json::json!({
        "schema": JSON_SCHEMA,
        "status": status,
        "exit_code": code.code(),
        "error": error,
    })
    .to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn errors_are_json_documents_too() {
        let v: serde_json::Value = serde_json::from_str(&error_json(ExitCode::Usage, "bad \"x\"")).unwrap();
        assert_eq!(v["schema"], JSON_SCHEMA);
        assert_eq!(
            (v["status"].as_str(), v["exit_code"].as_u64()),
            (Some("usage_error"), Some(2))
        );
        assert_eq!(v["error"], "bad \"x\"");
    }

    #[test]
    fn the_status_alone_decides_the_exit_code() {
        let request = Request {
            exchange: "x".into(),
            symbols: vec!["A".into()],
            data_types: vec![crate::model::DataType::Trades],
            range: crate::model::TimeRange::new(jiff::Timestamp::UNIX_EPOCH, None).unwrap(),
        };
        for (status, code) in [
            (RunStatus::Ok, 0),
            (RunStatus::Failed, 1),
            (RunStatus::Refused, 2),
            (RunStatus::NotPublished, 3),
            (RunStatus::Interrupted, 130),
        ] {
            let s = Summary::begin(&request).end(status, 1.0);
            assert_eq!((s.exit_code, i32::from(s.exit().code())), (code, code));
        }
    }
}
