//! `tickvault bars`: the checks and tiers of a download for the request's trades, then per
//! symbol-day the derived chunks of every interval ([`crate::bars::run`]), then one output per
//! interval assembled from them ([`crate::bars::assemble`]).
//!
//! With `--by timestamp` the day before and the day after the range are read too (their
//! trades chunks, then their derived chunks): a trade timestamped before a midnight may sit
//! in the next day's file, and the bars at the range's ends must get it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use jiff::SignedDuration;
use jiff::civil::Date;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::download::{DownloadError, Wired, client, stop_if_unreachable, wire};
use crate::bars::assemble::{Assembler, Bar};
use crate::bars::chunk::read_rows;
use crate::bars::output::{self, BarBatcher, BarsFile};
use crate::bars::run::{BarsError, DayBars, Deriver};
use crate::cache::Tier;
use crate::metadata::{Freshness, Metadata};
use crate::model::{BarTime, ChunkKey, Interval, TimeRange, day_start};
use crate::output::lock::OutputLock;
use crate::output::target::merged_path;
use crate::output::{OutputError, OutputResult, on_blocking_thread};
use crate::run::execute::{Written, for_each_chunk};
use crate::run::exit::RunStatus;
use crate::run::plan::{Plan, Request};
use crate::run::publication::{Publication, wait_for_export};
use crate::run::report::Reporter;
use crate::run::summary::{BarsFigures, Failure, PublicationSummary, Summary, TardisTraffic, Uploads};
use crate::run::validate::{PreflightError, preflight};
use crate::settings::{BarsSettings, OutputSpec, UsageError};
use crate::tardis::redact_url;

type DayResults = HashMap<ChunkKey, Result<DayBars, Arc<BarsError>>>;

/// The request widened to the days whose files can hold trades of its bars.
fn widened(settings: &BarsSettings) -> Request {
    let mut r = settings.download.request.clone();
    if settings.by == BarTime::Timestamp {
        let day = SignedDuration::from_hours(24);
        if let Ok(range) = TimeRange::new(r.range.from - day, Some(r.range.to + day)) {
            r.range = range;
        }
    }
    r
}

/// The publication of the widened days, from what the checks learnt; a day they left
/// unexported is asked about again (the checks may have read a cached copy) and, with
/// `--wait`, waited for.
async fn publication_of(settings: &BarsSettings, meta: &Metadata, p: &Publication, days: &[Date]) -> Publication {
    let now = jiff::Timestamp::now();
    if p.assumed {
        return Publication::assumed(p.exported_until, days, now);
    }
    let mut publication = Publication::new(p.exported_until, days, now);
    let exchange = &settings.download.request.exchange;
    if !publication.incomplete.is_empty()
        && !meta.offline()
        && let Ok(fresh) = meta.exchange(exchange, Freshness::Now).await
    {
        publication = Publication::new(fresh.value.exported_until(), days, jiff::Timestamp::now());
    }
    if let Some(wait) = settings.download.wait
        && !publication.incomplete.is_empty()
    {
        publication = wait_for_export(meta, exchange, days, wait).await;
    }
    publication
}

/// Refuses, before any traffic, an output path that holds another request's output.
fn check_targets(settings: &BarsSettings) -> Result<(), UsageError> {
    let dl = &settings.download;
    if matches!(dl.output, OutputSpec::Partitioned(_)) {
        return Ok(());
    }
    for i in &settings.intervals {
        let kind = output::kind(*i, settings.by);
        let path = merged_path(&dl.output, &dl.request, &kind);
        output::refuse_other(
            &path,
            &output::identity(&dl.request, &kind, settings.fill),
            dl.overwrite,
        )
        .map_err(|e| UsageError(e.to_string()))?;
    }
    Ok(())
}

/// Runs `tickvault bars`. Returns the summary; failures of symbol-days are in it.
///
/// # Errors
/// [`DownloadError`] when the run cannot start.
pub(super) async fn run(
    settings: &BarsSettings,
    reporter: Arc<dyn Reporter>,
    cancel: CancellationToken,
) -> Result<Summary, DownloadError> {
    let started = Instant::now();
    let dl = &settings.download;
    let client = (!dl.offline).then(|| client(dl)).transpose()?;
    let metadata = Metadata::new(&dl.cache.cache_dir, client.clone(), dl.tardis.retry);
    let checked = preflight(dl, &metadata).await?;
    let request = widened(settings);
    let publication = publication_of(settings, &metadata, &checked, &request.range.days()).await;
    let withhold = !dl.allow_incomplete;
    let plan = Plan::new(&request).withhold(|k| withhold && !publication.is_final(k.date));
    check_targets(settings).map_err(PreflightError::Invalid)?;
    let Wired {
        _lock,
        local,
        tiered,
        fetcher,
        stats,
    } = wire(dl, client, &publication).await?;
    let deriver = Deriver {
        tiered: tiered.clone(),
        local,
        fetcher: fetcher.clone(),
        intervals: settings.intervals.clone(),
        by: settings.by,
        keep_raw: settings.keep_raw,
        mac: dl.cache.mac.clone(),
    };
    log_plan(settings, &plan);
    reporter.track_traffic(stats.clone());
    reporter.start(plan.requests.len() as u64);
    let results = resolve_days(&deriver, &plan, dl.tardis.concurrency, reporter.as_ref(), &cancel).await;
    stop_if_unreachable(fetcher.as_deref(), &tiered, reporter.as_ref()).await?;
    if let Some(f) = &fetcher {
        f.shutdown_decoders().await;
    }
    let interrupted = cancel.is_cancelled();
    let mut figures = figures(&results);
    let written = if interrupted {
        Written::default()
    } else {
        write_outputs(
            settings,
            &plan,
            &results,
            &publication,
            &mut figures,
            reporter.as_ref(),
            &cancel,
        )
        .await
    };
    let uploads = if interrupted {
        Uploads::default()
    } else {
        tiered.finish().await.into()
    };
    reporter.finish();
    let traffic = TardisTraffic::new(&stats, metadata.requests());
    let ended = Ended {
        written,
        uploads,
        figures,
        interrupted,
        publication: PublicationSummary::new(&publication, withhold),
    };
    Ok(summarize(settings, &plan, &results, ended, traffic).end_with(started))
}

/// The request at info level: what the bars are of and how many symbol-days are read.
fn log_plan(settings: &BarsSettings, plan: &Plan) {
    let r = &settings.download.request;
    let intervals: Vec<String> = settings.intervals.iter().map(ToString::to_string).collect();
    info!(
        event = "plan",
        "bars {} {}: {} to {}, intervals {}, {} symbol-days",
        r.exchange,
        r.symbols.join(","),
        r.range.from,
        r.range.to,
        intervals.join(","),
        plan.requests.len()
    );
}

/// What a run came to, for its summary.
struct Ended {
    written: Written,
    uploads: Uploads,
    figures: BarsFigures,
    interrupted: bool,
    publication: PublicationSummary,
}

/// The summary of a bars run and its status.
fn summarize(
    settings: &BarsSettings,
    plan: &Plan,
    results: &DayResults,
    ended: Ended,
    traffic: TardisTraffic,
) -> Closing {
    let mut summary = Summary::begin(&settings.download.request);
    tally(&mut summary, plan, results);
    let w = ended.written;
    let status = if ended.interrupted {
        RunStatus::Interrupted
    } else {
        super::download::status(summary.chunks.failed, &w)
    };
    summary.data_types = settings
        .intervals
        .iter()
        .map(|i| output::kind(*i, settings.by))
        .collect();
    summary.bars = Some(ended.figures);
    summary.tardis = traffic;
    summary.uploads = ended.uploads;
    summary.publication = ended.publication;
    w.fill(&mut summary);
    Closing(summary, status)
}

/// A summary waiting for its status and wall time.
struct Closing(Summary, RunStatus);

impl Closing {
    fn end_with(self, started: Instant) -> Summary {
        self.0.end(self.1, started.elapsed().as_secs_f64())
    }
}

/// Resolves the bars of every symbol-day of the plan, a bounded number at once.
async fn resolve_days(
    deriver: &Deriver,
    plan: &Plan,
    concurrency: usize,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> DayResults {
    let mut results = DayResults::new();
    let work = |key: ChunkKey| {
        let deriver = deriver.clone();
        async move { deriver.day(&key).await.map_err(Arc::new) }
    };
    let done = |key: ChunkKey, result: Result<DayBars, Arc<BarsError>>| {
        match &result {
            Ok(d) => {
                info!(event = "chunk", chunk = %key, tier = d.source.as_str(), "{key}: bars from {}", d.source);
                reporter.chunk_done(&key, d.source, d.downloaded);
            }
            Err(e) => reporter.chunk_failed(&key, &crate::error::chain(e.as_ref())),
        }
        results.insert(key, result);
    };
    let fetcher = deriver.fetcher.as_deref();
    for_each_chunk(plan, fetcher, concurrency, cancel, || false, work, done).await;
    results
}

/// The bars figures of the resolved days.
fn figures(results: &DayResults) -> BarsFigures {
    let mut f = BarsFigures::default();
    for d in results.values().flatten() {
        f.derived_computed += d.computed;
        f.derived_from_cache += d.chunks.len() as u64 - d.computed;
        if d.computed > 0 {
            f.raw_chunks_read += 1;
            f.raw_rows_read += d.raw_rows_read;
        }
    }
    f
}

/// Counts the symbol-days by where their bars came from, and lists the failures.
fn tally(summary: &mut Summary, plan: &Plan, results: &DayResults) {
    let c = &mut summary.chunks;
    c.total = (plan.requests.len() + plan.withheld.len()) as u64;
    c.withheld = plan.withheld.len() as u64;
    for (key, _) in &plan.requests {
        match results.get(key) {
            Some(Ok(d)) => {
                summary.chunk_rows += d.chunks.iter().map(|c| c.meta.rows).sum::<u64>();
                match d.source {
                    Tier::Memory => c.memory += 1,
                    Tier::Local => c.local += 1,
                    Tier::Remote => c.remote += 1,
                    Tier::Tardis => c.tardis += 1,
                }
                if d.chunks.iter().any(|c| !c.meta.complete) {
                    c.incomplete += 1;
                }
            }
            Some(Err(e)) => {
                c.failed += 1;
                summary.failures.push(Failure {
                    chunk: key.to_string(),
                    error: crate::error::chain(e.as_ref()),
                });
            }
            None => c.pending += 1,
        }
    }
}

/// Writes one output per interval once every symbol-day it needs is resolved.
async fn write_outputs(
    settings: &BarsSettings,
    plan: &Plan,
    results: &DayResults,
    publication: &Publication,
    figures: &mut BarsFigures,
    reporter: &dyn Reporter,
    cancel: &CancellationToken,
) -> Written {
    let mut w = Written::default();
    let keys = &plan.per_type[0].1;
    let kinds: Vec<String> = settings
        .intervals
        .iter()
        .map(|i| output::kind(*i, settings.by))
        .collect();
    if let Some(why) = unwritable(settings, plan, results, publication) {
        let skipped = kinds.iter().map(|k| Failure {
            chunk: k.clone(),
            error: why.clone(),
        });
        if plan.withheld.is_empty() {
            w.failed.extend(skipped);
        } else {
            w.withheld.extend(skipped);
        }
        return w;
    }
    let days: Vec<(ChunkKey, DayBars)> = keys
        .iter()
        .filter_map(|k| {
            results
                .get(k)
                .and_then(|r| r.as_ref().ok())
                .map(|d| (k.clone(), d.clone()))
        })
        .collect();
    let days = Arc::new(days);
    for (j, interval) in settings.intervals.iter().enumerate() {
        let job = IntervalJob {
            settings: settings.clone(),
            interval: *interval,
            index: j,
            kind: kinds[j].clone(),
            days: days.clone(),
        };
        reporter.writing(&job.kind);
        match job.spawn(cancel).await {
            Ok((outputs, late)) => {
                figures.late_trades += late;
                w.outputs.extend(outputs);
            }
            Err(e) => w.push_error(kinds[j].clone(), &e),
        }
    }
    if figures.late_trades > 0 {
        warn!(
            "{} trade(s) arrived more than a day after their interval and are in no bar",
            figures.late_trades
        );
    }
    w
}

/// Why no output can be written: days not yet published, or symbol-days that failed.
fn unwritable(settings: &BarsSettings, plan: &Plan, results: &DayResults, publication: &Publication) -> Option<String> {
    if !plan.withheld.is_empty() {
        return Some(format!(
            "not yet published: {}; no file is written; retry later",
            publication.describe(&settings.download.request.exchange)
        ));
    }
    let keys = &plan.per_type[0].1;
    let failed = keys.iter().filter(|k| !matches!(results.get(*k), Some(Ok(_)))).count();
    (failed > 0).then(|| {
        format!(
            "{failed} of {} symbol-days failed; no partial file is written",
            keys.len()
        )
    })
}

/// The output of one interval.
struct IntervalJob {
    settings: BarsSettings,
    interval: Interval,
    index: usize,
    kind: String,
    /// Every symbol-day of the widened plan, in (day, symbol) order.
    days: Arc<Vec<(ChunkKey, DayBars)>>,
}

/// Where the bars of one symbol go.
trait Sink {
    fn bars(&mut self, symbol: &str, bars: &[Bar]) -> Result<(), OutputError>;
}

impl IntervalJob {
    /// Writes the interval's output on a blocking thread and logs what it wrote.
    async fn spawn(self, cancel: &CancellationToken) -> Result<(Vec<OutputResult>, u64), OutputError> {
        let cancel = cancel.clone();
        let started = Instant::now();
        let done = on_blocking_thread(move || self.write(&cancel)).await?;
        for o in &done.0 {
            info!(
                event = "output",
                path = %o.path.display(),
                rows = o.rows,
                "{}: {} bars, {:.2} s",
                o.path.display(),
                o.rows,
                started.elapsed().as_secs_f64()
            );
        }
        Ok(done)
    }

    fn source(&self) -> String {
        let dl = &self.settings.download;
        let r = &dl.request;
        format!(
            "{} exchange={} data_type=trades symbols={} from={} to={} bars={} by={}{}",
            redact_url(&dl.tardis.datasets_url),
            r.exchange,
            r.symbols.join(","),
            r.range.from,
            r.range.to,
            self.interval,
            self.settings.by.as_str(),
            if self.settings.fill { " fill" } else { "" }
        )
    }

    fn complete(&self) -> bool {
        self.days.iter().all(|(_, d)| d.chunks[self.index].meta.complete)
    }

    /// Writes the interval's output; returns it (or the partitions) and the late trades.
    fn write(&self, cancel: &CancellationToken) -> Result<(Vec<OutputResult>, u64), OutputError> {
        let dl = &self.settings.download;
        let lock_dir = dl.output.dir();
        let partitioned = match &dl.output {
            OutputSpec::Partitioned(d) => Some(d.clone()),
            OutputSpec::Dir(_) | OutputSpec::File(_) => None,
        };
        std::fs::create_dir_all(&lock_dir).map_err(OutputError::io("creating", &lock_dir))?;
        let _lock = OutputLock::acquire(&lock_dir, cancel).map_err(|e| OutputError::io("locking", &lock_dir)(e))?;
        match partitioned {
            None => {
                let path = merged_path(&dl.output, &dl.request, &self.kind);
                let identity = output::identity(&dl.request, &self.kind, self.settings.fill);
                let mut sink = Merged {
                    file: BarsFile::create(&path, &identity, dl.overwrite)?,
                    exchange: dl.request.exchange.clone(),
                    interval: self.interval,
                };
                let late = self.assemble(&mut sink, cancel)?;
                let o = sink.file.commit(&self.kind, &self.source(), self.complete())?;
                Ok((vec![o], late))
            }
            Some(dir) => {
                let mut sink = Partitioned {
                    job: self,
                    dir,
                    open: None,
                    written: Vec::new(),
                };
                let late = self.assemble(&mut sink, cancel)?;
                sink.close()?;
                Ok((sink.written, late))
            }
        }
    }

    /// Assembles every symbol's bars, symbol-major (symbols as given), into `sink`.
    fn assemble(&self, sink: &mut dyn Sink, cancel: &CancellationToken) -> Result<u64, OutputError> {
        let dl = &self.settings.download;
        let (from, to) = dl.request.range.micros();
        let mut late = 0;
        for symbol in &dl.request.symbols {
            let mut asm = Assembler::new(self.interval, from, to, self.settings.fill);
            let mut bars = Vec::new();
            for (key, day) in self.days.iter().filter(|(k, _)| *k.symbol == **symbol) {
                if cancel.is_cancelled() {
                    return Err(OutputError::Io {
                        what: "writing",
                        path: PathBuf::new(),
                        source: std::io::Error::new(std::io::ErrorKind::Interrupted, "interrupted"),
                    });
                }
                let chunk = &day.chunks[self.index];
                let rows = read_rows(&chunk.data).map_err(|source| OutputError::Write {
                    path: chunk.data.path().map(std::path::Path::to_path_buf).unwrap_or_default(),
                    source,
                })?;
                asm.push_day(&rows);
                asm.seal_before(day_start(key.date).as_microsecond(), &mut |b| bars.push(b));
                sink.bars(symbol, &bars)?;
                bars.clear();
            }
            late += asm.finish(&mut |b| bars.push(b));
            sink.bars(symbol, &bars)?;
        }
        Ok(late)
    }
}

/// One merged file per interval.
struct Merged {
    file: BarsFile,
    exchange: String,
    interval: Interval,
}

impl Sink for Merged {
    fn bars(&mut self, symbol: &str, bars: &[Bar]) -> Result<(), OutputError> {
        let mut b = BarBatcher::new(&self.exchange, symbol, self.interval);
        for bar in bars {
            if let Some(batch) = b.push(*bar) {
                self.file.write(&batch)?;
            }
        }
        if !b.is_empty() {
            self.file.write(&b.take())?;
        }
        Ok(())
    }
}

/// A table per interval: a file per symbol-day.
struct Partitioned<'a> {
    job: &'a IntervalJob,
    dir: PathBuf,
    open: Option<(String, Date, BarsFile)>,
    written: Vec<OutputResult>,
}

impl Partitioned<'_> {
    fn close(&mut self) -> Result<(), OutputError> {
        if let Some((symbol, date, file)) = self.open.take() {
            let complete = self
                .job
                .days
                .iter()
                .filter(|(k, _)| *k.symbol == *symbol && (k.date == date || k.date == date.tomorrow().unwrap_or(date)))
                .all(|(_, d)| d.chunks[self.job.index].meta.complete);
            self.written
                .push(file.commit(&self.job.kind, &self.job.source(), complete)?);
        }
        Ok(())
    }
}

impl Sink for Partitioned<'_> {
    fn bars(&mut self, symbol: &str, bars: &[Bar]) -> Result<(), OutputError> {
        let dl = &self.job.settings.download;
        let mut batcher = BarBatcher::new(&dl.request.exchange, symbol, self.job.interval);
        for bar in bars {
            let date = date_of(bar.open_time);
            let same = matches!(&self.open, Some((s, d, _)) if s == symbol && *d == date);
            if !same {
                if let Some((_, _, f)) = &mut self.open
                    && !batcher.is_empty()
                {
                    f.write(&batcher.take())?;
                }
                self.close()?;
                let path = output::partition_path(&self.dir, &self.job.kind, &dl.request.exchange, date, symbol);
                let identity = format!(
                    "exchange={} data_type={}{} symbol={symbol} date={date}",
                    dl.request.exchange,
                    self.job.kind,
                    if self.job.settings.fill { " fill" } else { "" }
                );
                self.open = Some((
                    symbol.to_string(),
                    date,
                    BarsFile::create(&path, &identity, dl.overwrite)?,
                ));
            }
            if let Some(batch) = batcher.push(*bar)
                && let Some((_, _, f)) = &mut self.open
            {
                f.write(&batch)?;
            }
        }
        if let Some((_, _, f)) = &mut self.open
            && !batcher.is_empty()
        {
            f.write(&batcher.take())?;
        }
        Ok(())
    }
}

/// The UTC day of an instant (µs).
fn date_of(micros: i64) -> Date {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date())
        .unwrap_or_default()
}
