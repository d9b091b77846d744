//! The run loop: resolve every chunk of the plan through the tiers (a bounded number at once),
//! tally where each came from, then write the output of every data type whose chunks are all
//! present.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::plan::Plan;
use super::report::Reporter;
use super::summary::{ChunkCounts, Failure};
use crate::cache::{Chunk, ResolveError, Resolved, Tier, Tiered};
use crate::fetch::Fetcher;
use crate::model::{ChunkKey, DataType, TimeRange};
use crate::output::{OutputContext, OutputError, OutputResult, write_merged, write_partitioned};
use crate::settings::{DownloadSettings, OutputSpec};
use crate::tardis::redact_url;

/// Each chunk's outcome.
pub(crate) type Results = HashMap<ChunkKey, Result<Resolved, Arc<ResolveError>>>;

/// Resolves every chunk of the plan, at most `concurrency` (plus a margin for cache hits) at once.
pub(crate) async fn resolve_all(
    tiered: &Arc<Tiered>,
    fetcher: Option<&Fetcher>,
    plan: &Plan,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Results {
    if let Some(f) = fetcher {
        f.set_probes(plan.probes().cloned());
    }
    let mut jobs: Vec<ChunkKey> = plan.requests.iter().map(|(k, _)| k.clone()).collect();
    jobs.reverse();
    // Cache hits cost no download slot, so keep more lookups going than downloads.
    let width = concurrency.max(4) * 2;
    let mut running = JoinSet::new();
    let mut results = Results::new();
    loop {
        while running.len() < width
            && let Some(key) = jobs.pop()
        {
            let tiered = tiered.clone();
            running.spawn(async move {
                let r = tiered.resolve(&key).await;
                (key, r)
            });
        }
        let Some(done) = running.join_next().await else { break };
        let (key, result) = match done {
            Ok(v) => v,
            Err(e) => {
                warn!("a chunk task failed: {e}");
                continue;
            }
        };
        if let Some(f) = fetcher {
            f.resolved(&key);
        }
        match &result {
            Ok(r) => reporter.chunk_done(&key, r.source, r.downloaded),
            Err(e) => reporter.chunk_failed(&key, &crate::error::chain(e.as_ref())),
        }
        results.insert(key, result);
    }
    results
}

/// What the chunks of a run amount to.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub counts: ChunkCounts,
    pub chunk_rows: u64,
    pub bytes_from_cache: u64,
    /// Failed chunks, in request order (the probes first: they explain the rest).
    pub failures: Vec<Failure>,
}

/// Counts where each chunk came from, and lists the failures.
pub(crate) fn tally(plan: &Plan, results: &Results) -> Tally {
    let mut t = Tally {
        counts: ChunkCounts {
            total: plan.requests.len() as u64,
            ..ChunkCounts::default()
        },
        ..Tally::default()
    };
    for (key, _) in &plan.requests {
        match results.get(key) {
            Some(Ok(res)) => {
                t.chunk_rows += res.chunk.meta.rows;
                match res.source {
                    Tier::Memory => t.counts.memory += 1,
                    Tier::Local => t.counts.local += 1,
                    Tier::Remote => t.counts.remote += 1,
                    Tier::Tardis => t.counts.tardis += 1,
                }
                if res.source != Tier::Tardis {
                    t.bytes_from_cache += res.chunk.meta.file_bytes;
                }
                if !res.chunk.meta.complete {
                    t.counts.incomplete += 1;
                }
            }
            Some(Err(e)) => {
                t.counts.failed += 1;
                t.failures.push(Failure {
                    chunk: key.to_string(),
                    error: crate::error::chain(e.as_ref()),
                });
            }
            None => t.counts.failed += 1,
        }
    }
    t
}

/// Writes the output of every data type whose chunks are all present; the others are skipped
/// with the reason.
pub(crate) async fn write_outputs(
    settings: &DownloadSettings,
    plan: &Plan,
    results: &Results,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> (Vec<OutputResult>, Vec<Failure>) {
    let mut outputs = Vec::new();
    let mut skipped = Vec::new();
    let out_dir = match &settings.output {
        OutputSpec::Dir(d) | OutputSpec::Partitioned(d) => d.clone(),
        OutputSpec::File(p) => p
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| std::path::PathBuf::from("."), std::path::Path::to_path_buf),
    };
    // Staged outputs of runs that were killed: removed now; this run's own are removed at exit.
    crate::cache::temps::register_dir(&out_dir);
    let swept = tokio::task::spawn_blocking(move || crate::cache::temps::sweep_dead(&out_dir, true))
        .await
        .unwrap_or_default();
    for p in swept {
        debug!("removed {}, left by a process that no longer runs", p.display());
    }
    for (data_type, keys) in &plan.per_type {
        let chunks: Option<Vec<Chunk>> = keys
            .iter()
            .map(|k| results.get(k).and_then(|r| r.as_ref().ok()).map(|r| r.chunk.clone()))
            .collect();
        let Some(chunks) = chunks else {
            let missing = keys.iter().filter(|k| !matches!(results.get(k), Some(Ok(_)))).count();
            skipped.push(Failure {
                chunk: data_type.to_string(),
                error: format!("{missing} of {} chunks failed; no partial file is written", keys.len()),
            });
            continue;
        };
        match write_output(settings, *data_type, chunks, reporter, cancel).await {
            Ok(o) => {
                debug!("{}: {:?}", o.path.display(), o.status);
                outputs.push(o);
            }
            Err(e) => skipped.push(Failure {
                chunk: data_type.to_string(),
                error: crate::error::chain(&e),
            }),
        }
    }
    (outputs, skipped)
}

/// Writes one data type's output on a blocking thread.
async fn write_output(
    settings: &DownloadSettings,
    data_type: DataType,
    chunks: Vec<Chunk>,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Result<OutputResult, OutputError> {
    let request = &settings.request;
    let range = &request.range;
    let (from_label, to_label) = (TimeRange::label(range.from), TimeRange::label(range.to));
    let ctx = OutputContext {
        data_type,
        source: format!(
            "{} exchange={} data_type={} symbols={} from={} to={}",
            redact_url(&settings.datasets_url),
            request.exchange,
            data_type,
            request.symbols.join(","),
            range.from,
            range.to
        ),
        range: (!range.is_whole_days()).then(|| range.micros()),
        range_label: format!("{from_label}/{to_label}"),
    };
    let target = match &settings.output {
        OutputSpec::File(p) => p.clone(),
        OutputSpec::Dir(d) => d.join(format!(
            "{}_{}_{from_label}_{to_label}.parquet",
            request.exchange, data_type
        )),
        OutputSpec::Partitioned(d) => d.clone(),
    };
    reporter.writing(&target.display().to_string());
    let partitioned = matches!(settings.output, OutputSpec::Partitioned(_));
    let cancel = cancel.clone();
    tokio::task::spawn_blocking(move || {
        if partitioned {
            write_partitioned(&ctx, &target, &chunks, &cancel)
        } else {
            write_merged(&ctx, &target, &chunks, &cancel)
        }
    })
    .await
    .unwrap_or_else(|e| {
        Err(OutputError::Io {
            what: "writing",
            path: std::path::PathBuf::new(),
            source: std::io::Error::other(e),
        })
    })
}
