//! The run loop: resolve every chunk of the plan through the tiers (a bounded number at once),
//! tally where each came from, then write the output of every data type whose chunks are all
//! present. A cancelled run stops starting chunks, drops those in flight and hands back what
//! it resolved, so that its summary tells the truth.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use indicatif::HumanBytes;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use std::path::PathBuf;

use super::plan::Plan;
use super::publication::Publication;
use super::report::Reporter;
use super::summary::{ChunkCounts, Failure, Summary};
use crate::cache::{Batches, Chunk, ResolveError, Resolved, Tier, Tiered};
use crate::fetch::{FetchStats, Fetcher};
use crate::model::{ChunkKey, DataType, TimeRange};
use crate::output::lock::OutputLock;
use crate::output::store::{Existing, OutputStore};
use crate::output::target::{merged_path, request_identity, sorted_symbols, table_root};
use crate::output::{
    Order, OutputContext, OutputError, OutputResult, fingerprint, on_blocking_thread, write_merged, write_partitioned,
};
use crate::settings::{DownloadSettings, OutputSpec};
use crate::tardis::redact_url;

/// Each chunk's outcome.
pub(crate) type Results = HashMap<ChunkKey, Result<Resolved, Arc<ResolveError>>>;

/// `--max-transfer`: the bytes fetched from Tardis so far, and the most a run may fetch
/// before it stops starting chunks.
#[derive(Clone, Copy)]
pub(crate) struct TransferBudget<'a> {
    /// The fetcher's counters.
    pub stats: &'a FetchStats,
    /// The limit in bytes.
    pub max: u64,
}

impl TransferBudget<'_> {
    /// Whether the run has fetched its budget.
    pub fn spent(&self) -> bool {
        self.stats.bytes.load(std::sync::atomic::Ordering::Relaxed) >= self.max
    }
}

/// Resolves every chunk of the plan, at most `concurrency` (plus a margin for cache hits) at
/// once, until done, `cancel`led, or the transfer `budget` is spent (then no chunk is started,
/// those in flight finish).
pub(crate) async fn resolve_all(
    tiered: &Arc<Tiered>,
    fetcher: Option<&Fetcher>,
    plan: &Plan,
    concurrency: usize,
    budget: Option<TransferBudget<'_>>,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Results {
    let mut results = Results::new();
    let spent = || budget.is_some_and(|b| b.spent());
    let work = |key: ChunkKey| {
        let tiered = tiered.clone();
        async move {
            let started = Instant::now();
            let r = tiered.resolve(&key).await;
            (r, started.elapsed().as_secs_f64())
        }
    };
    let done = |key: ChunkKey, (result, seconds): (Result<Resolved, Arc<ResolveError>>, f64)| {
        match &result {
            Ok(r) => {
                log_chunk(&key, r, seconds);
                reporter.chunk_done(&key, r.source, r.downloaded);
            }
            Err(e) => reporter.chunk_failed(&key, &crate::error::chain(e.as_ref())),
        }
        results.insert(key, result);
    };
    for_each_chunk(plan, fetcher, concurrency, cancel, spent, work, done).await;
    results
}

/// Runs `work` for every chunk of the plan in plan order (the probes told to the fetcher
/// first), at most `concurrency` (plus a margin for cache hits, which cost no download slot) at
/// once, and hands each outcome to `done` as it comes. Stops starting chunks once `stop` says
/// so (those in flight finish) and drops those in flight when `cancel`led.
pub(crate) async fn for_each_chunk<T, Fut>(
    plan: &Plan,
    fetcher: Option<&Fetcher>,
    concurrency: usize,
    cancel: &CancellationToken,
    stop: impl Fn() -> bool,
    work: impl Fn(ChunkKey) -> Fut,
    mut done: impl FnMut(ChunkKey, T),
) where
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    if let Some(f) = fetcher {
        f.set_probes(plan.probes().cloned());
    }
    let mut jobs: Vec<ChunkKey> = plan.requests.iter().map(|(k, _)| k.clone()).collect();
    jobs.reverse();
    let width = concurrency.max(4) * 2;
    let mut running = JoinSet::new();
    loop {
        while running.len() < width
            && !cancel.is_cancelled()
            && !stop()
            && let Some(key) = jobs.pop()
        {
            let job = work(key.clone());
            running.spawn(async move { (key, job.await) });
        }
        let joined = tokio::select! {
            joined = running.join_next() => joined,
            () = cancel.cancelled() => {
                running.abort_all();
                while running.join_next().await.is_some() {}
                break;
            }
        };
        let Some(joined) = joined else { break };
        let (key, outcome) = match joined {
            Ok(v) => v,
            Err(e) => {
                warn!("a chunk task failed: {e}");
                continue;
            }
        };
        if let Some(f) = fetcher {
            f.resolved(&key);
        }
        done(key, outcome);
    }
}

/// The `-v` line of a resolved chunk: key, tier, bytes, rows, seconds.
fn log_chunk(key: &ChunkKey, r: &Resolved, seconds: f64) {
    let bytes = if r.source == Tier::Tardis {
        r.downloaded
    } else {
        r.chunk.meta.file_bytes
    };
    let rows = r.chunk.meta.rows;
    info!(
        event = "chunk",
        chunk = %key,
        tier = r.source.as_str(),
        bytes,
        rows,
        seconds,
        "{key}: {}, {}, {rows} rows, {seconds:.2} s",
        r.source,
        HumanBytes(bytes)
    );
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
            total: (plan.requests.len() + plan.withheld.len()) as u64,
            withheld: plan.withheld.len() as u64,
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
            None => t.counts.pending += 1,
        }
    }
    t
}

/// What writing the outputs came to.
#[derive(Debug, Default)]
pub(crate) struct Written {
    /// Outputs written or up to date.
    pub outputs: Vec<OutputResult>,
    /// Outputs not written because a chunk failed or the write failed.
    pub failed: Vec<Failure>,
    /// Outputs not written because their path holds another request's output.
    pub refused: Vec<Failure>,
    /// Outputs withheld (partitioned: written without) because days are not published yet.
    pub withheld: Vec<Failure>,
}

impl Written {
    /// Puts the outputs, their rows and the outputs not written into `summary`.
    pub fn fill(self, summary: &mut Summary) {
        summary.rows = self.outputs.iter().map(|o| o.rows).sum();
        summary.outputs = self.outputs;
        summary.skipped_outputs = [self.refused, self.failed, self.withheld].concat();
    }

    /// Files the error of output `name`: refused (another request's output is there) or failed.
    pub fn push_error(&mut self, name: String, e: &OutputError) {
        let failure = Failure {
            chunk: name,
            error: crate::error::chain(e),
        };
        if matches!(e, OutputError::Refused { .. }) {
            self.refused.push(failure);
        } else {
            self.failed.push(failure);
        }
    }
}

/// Writes the output of every data type whose chunks are all present; the others are skipped
/// with the reason. Days withheld as unpublished keep a merged output from being written; a
/// partitioned table gets the other days.
pub(crate) async fn write_outputs(
    settings: &DownloadSettings,
    tiered: &Tiered,
    plan: &Plan,
    results: &Results,
    publication: &Publication,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Written {
    let mut w = Written::default();
    let partitioned = matches!(settings.output, OutputSpec::Partitioned(_));
    sweep_output_dir(&settings.output).await;
    for (data_type, keys) in &plan.per_type {
        let wanted: Vec<&ChunkKey> = keys.iter().filter(|k| !plan.is_withheld(k)).collect();
        if wanted.len() < keys.len() {
            let rest = if partitioned {
                "the published days are written"
            } else {
                "no file is written; retry later"
            };
            w.withheld.push(Failure {
                chunk: data_type.to_string(),
                error: format!(
                    "not yet published: {}; {rest}",
                    publication.describe(&settings.request.exchange)
                ),
            });
            if !partitioned || wanted.is_empty() {
                continue;
            }
        }
        let chunks = match gather(&wanted, results) {
            Ok(chunks) => chunks,
            Err(what) => {
                w.failed.push(Failure {
                    chunk: data_type.to_string(),
                    error: format!("{what}; no partial file is written"),
                });
                continue;
            }
        };
        let resident = resident(settings, tiered, &chunks).await;
        let started = Instant::now();
        match write_output(settings, *data_type, chunks, publication, resident, reporter, cancel).await {
            Ok(o) => {
                log_output(*data_type, &o, started.elapsed().as_secs_f64());
                w.outputs.push(o);
            }
            Err(e) => w.push_error(data_type.to_string(), &e),
        }
    }
    w
}

/// Registers the output folder's staged files for removal at exit, and removes now those of
/// runs that were killed.
async fn sweep_output_dir(output: &OutputSpec) {
    let out_dir = output.dir();
    crate::cache::temps::register_dir(&out_dir);
    let swept = tokio::task::spawn_blocking(move || crate::cache::temps::sweep_dead(&out_dir, true))
        .await
        .unwrap_or_default();
    for p in swept {
        debug!("removed {}, left by a process that no longer runs", p.display());
    }
}

/// The resolved chunks of `wanted`, or what keeps them from being all there.
fn gather(wanted: &[&ChunkKey], results: &Results) -> Result<Vec<Chunk>, String> {
    let chunks: Option<Vec<Chunk>> = wanted
        .iter()
        .map(|k| results.get(*k).and_then(|r| r.as_ref().ok()).map(|r| r.chunk.clone()))
        .collect();
    chunks.ok_or_else(|| {
        let failed = wanted
            .iter()
            .filter(|k| matches!(results.get(**k), Some(Err(_))))
            .count();
        let pending = wanted.iter().filter(|k| !results.contains_key(**k)).count();
        match (failed, pending) {
            (f, 0) => format!("{f} of {} chunks failed", wanted.len()),
            (0, p) => format!("{p} of {} chunks not fetched yet", wanted.len()),
            (f, p) => format!("{f} of {} chunks failed and {p} not fetched yet", wanted.len()),
        }
    })
}

/// One written output, at info level.
fn log_output(data_type: DataType, o: &OutputResult, seconds: f64) {
    info!(
        event = "output",
        data_type = %data_type,
        path = %o.path.display(),
        rows = o.rows,
        bytes = o.bytes,
        status = ?o.status,
        seconds,
        "{}: {:?}, {} rows, {}, {seconds:.2} s",
        o.path.display(),
        o.status,
        o.rows,
        HumanBytes(o.bytes)
    );
}

/// The decoded batches the memory tier holds for `chunks`, when the output interleaves them
/// by time (a symbol-major output copies encoded column chunks and needs none).
async fn resident(settings: &DownloadSettings, tiered: &Tiered, chunks: &[Chunk]) -> HashMap<ChunkKey, Batches> {
    let mut resident = HashMap::new();
    let interleaved = settings.order == Order::Time && !matches!(settings.output, OutputSpec::Partitioned(_));
    if interleaved {
        for c in chunks {
            if let Some(b) = tiered.decoded(&c.key).await {
                resident.insert(c.key.clone(), b);
            }
        }
    }
    resident
}

/// Where the output of `data_type` goes (the merged file, or the partitioned table's root)
/// and the directory whose lock guards it.
pub(crate) fn output_target(settings: &DownloadSettings, data_type: DataType) -> (PathBuf, PathBuf) {
    let spec = &settings.output;
    let target = match spec {
        OutputSpec::Partitioned(d) => table_root(d, data_type),
        OutputSpec::Dir(_) | OutputSpec::File(_) => merged_path(spec, &settings.request, data_type),
    };
    (target, spec.dir())
}

/// The context of one data type's output.
fn context(
    settings: &DownloadSettings,
    data_type: DataType,
    publication: &Publication,
    resident: HashMap<ChunkKey, Batches>,
) -> OutputContext {
    let request = &settings.request;
    let range = &request.range;
    OutputContext {
        data_type,
        order: settings.order,
        source: format!(
            "{} exchange={} data_type={} symbols={} from={} to={}",
            redact_url(&settings.tardis.datasets_url),
            request.exchange,
            data_type,
            request.symbols.join(","),
            range.from,
            range.to
        ),
        range: (!range.is_whole_days()).then(|| range.micros()),
        range_label: format!("{}/{}", TimeRange::label(range.from), TimeRange::label(range.to)),
        identity: request_identity(request, data_type),
        symbols: sorted_symbols(request),
        exported_until: publication.exported_until,
        overwrite: settings.overwrite,
        resident,
    }
}

/// Writes one data type's output on a blocking thread, holding the output directory's lock.
async fn write_output(
    settings: &DownloadSettings,
    data_type: DataType,
    chunks: Vec<Chunk>,
    publication: &Publication,
    resident: HashMap<ChunkKey, Batches>,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Result<OutputResult, OutputError> {
    let ctx = context(settings, data_type, publication, resident);
    let (target, lock_dir) = output_target(settings, data_type);
    let partitioned = matches!(settings.output, OutputSpec::Partitioned(_));
    // An object-store output is staged under the cache directory (the lock directory is
    // the staging root), then published.
    let store = settings
        .output_store
        .as_ref()
        .map(|u| OutputStore::open(u, &lock_dir, settings.tardis.connect_timeout))
        .transpose()?;
    if let Some(store) = &store {
        let shown = store.key(&target)?.1;
        reporter.writing(&shown);
        if !partitioned {
            let fp = fingerprint(&ctx, &chunks);
            match store
                .merged_state(&target, &data_type.to_string(), &fp, &ctx.identity)
                .await?
            {
                Existing::Same(done) => return Ok(done),
                Existing::Other(what) if !settings.overwrite => {
                    return Err(OutputError::Refused {
                        path: PathBuf::from(shown),
                        what,
                    });
                }
                Existing::Other(_) | Existing::Stale | Existing::Missing => {}
            }
        }
    } else {
        reporter.writing(&target.display().to_string());
    }
    let cancel_job = cancel.clone();
    let written = on_blocking_thread(move || {
        let cancel = cancel_job;
        let _lock = OutputLock::acquire(&lock_dir, &cancel).map_err(|e| OutputError::io("locking", &lock_dir)(e))?;
        if partitioned {
            write_partitioned(&ctx, &target, &chunks, &cancel)
        } else {
            write_merged(&ctx, &target, &chunks, &cancel)
        }
    })
    .await?;
    match store {
        Some(store) => store.publish(written, cancel).await,
        None => Ok(written),
    }
}

/// The output of `data_type` as the user names it: a path, or the object store's URL.
pub(crate) fn shown_target(settings: &DownloadSettings, data_type: DataType) -> String {
    let (target, staging) = output_target(settings, data_type);
    match &settings.output_store {
        Some(url) => {
            let rel = target
                .strip_prefix(&staging)
                .unwrap_or(&target)
                .to_string_lossy()
                .replace('\\', "/");
            let base = if url.path().ends_with(".parquet") {
                url.join("./").map_or_else(|_| url.to_string(), |u| u.to_string())
            } else {
                url.to_string()
            };
            format!("{}/{rel}", base.trim_end_matches('/'))
        }
        None => target.display().to_string(),
    }
}
