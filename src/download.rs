//! `tickvault download`: plan the chunks, resolve each through the tiers, write the outputs.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::cache::{
    CacheLock, Chunk, LocalStore, MemoryStore, RemoteStore, ResolveError, Resolved, StoreError, Tier, Tiered,
    TieredOptions,
};
use crate::cancel::Cancel;
use crate::fetch::{FetchConfig, FetchStats, Fetcher};
use crate::model::{ChunkKey, DataType, TimeRange};
use crate::output::{OutputContext, OutputError, OutputResult, write_merged, write_partitioned};
use crate::report::Reporter;
use crate::settings::{DownloadSettings, OutputSpec};
use crate::summary::{ChunkCounts, Failure, RunStatus, Summary, TardisTraffic, Uploads};
use crate::tardis::{ClientConfig, TardisClient, redact_url};

/// A failure that stops the run before or outside chunk processing.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("cache: {0}")]
    Cache(#[from] StoreError),
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("remote cache: {0}")]
    Remote(#[from] crate::cache::RemoteUrlError),
}

/// The chunks of a run, in the order they are requested: for each data type and symbol the
/// last day, then the first day (the "probes", answered before the rest are fetched, as the
/// official clients do), then the days in between.
#[derive(Debug, Clone)]
pub struct Plan {
    /// (key, is_probe), in request order.
    pub requests: Vec<(ChunkKey, bool)>,
    /// Per data type, the chunks in output tie-break order (day, then symbol as given).
    pub per_type: Vec<(DataType, Vec<ChunkKey>)>,
}

impl Plan {
    pub fn new(exchange: &str, symbols: &[String], data_types: &[DataType], range: &TimeRange) -> Self {
        let days = range.days();
        let mut probes = Vec::new();
        let mut rest = Vec::new();
        let mut per_type = Vec::new();
        for &t in data_types {
            let mut keys = Vec::new();
            for day in &days {
                for s in symbols {
                    keys.push(ChunkKey::new(exchange, t, s.as_str(), *day));
                }
            }
            for s in symbols {
                let key = |d| ChunkKey::new(exchange, t, s.as_str(), d);
                let (first, last) = (days[0], days[days.len() - 1]);
                probes.push(key(last));
                if first != last {
                    probes.push(key(first));
                }
                if days.len() > 2 {
                    rest.extend(days[1..days.len() - 1].iter().map(|d| key(*d)));
                }
            }
            per_type.push((t, keys));
        }
        let requests = probes
            .into_iter()
            .map(|k| (k, true))
            .chain(rest.into_iter().map(|k| (k, false)))
            .collect();
        Self { requests, per_type }
    }
}

/// Runs a download. Returns the summary; chunk failures are in it, not errors.
///
/// # Errors
/// [`DownloadError`] when the run cannot start (cache directory, HTTP client).
pub async fn run(
    settings: &DownloadSettings,
    reporter: Arc<dyn Reporter>,
    cancel: Cancel,
) -> Result<Summary, DownloadError> {
    let started = Instant::now();
    let cache_dir = settings.cache.cache_dir.clone();
    let _lock = tokio::task::spawn_blocking(move || CacheLock::shared(&cache_dir))
        .await
        .map_err(|e| StoreError::io("locking the cache", std::io::Error::other(e)))??;
    let local = LocalStore::open(&settings.cache.cache_dir)?;
    local.clean_stale_spools();
    let memory = (settings.cache.memory_cache > 0).then(|| MemoryStore::new(settings.cache.memory_cache));
    let remote = settings.cache.remote.as_ref().map(RemoteStore::open).transpose()?;
    let stats = Arc::new(FetchStats::default());
    let fetcher = if settings.offline {
        None
    } else {
        let client = TardisClient::new(ClientConfig {
            datasets_url: settings.datasets_url.clone(),
            api_url: settings.api_url.clone(),
            api_key: settings.api_key.clone(),
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
        })
        .map_err(|e| DownloadError::Client(e.without_url()))?;
        let config = FetchConfig {
            concurrency: settings.concurrency,
            rate_limit: settings.rate_limit,
            decoders: settings.decoders,
            retry: settings.retry,
            spool_dir: local.spool_dir(),
        };
        let fetcher = Fetcher::new(client, config, stats.clone())
            .map_err(|e| StoreError::io("starting the decoding threads", e))?;
        Some(Arc::new(fetcher))
    };
    let tiered = Tiered::new(
        memory,
        local,
        remote,
        fetcher.clone(),
        TieredOptions {
            offline: settings.offline,
            refresh: settings.refresh,
        },
    );

    let plan = Plan::new(
        &settings.exchange,
        &settings.symbols,
        &settings.data_types,
        &settings.range,
    );
    reporter.start(plan.requests.len() as u64);
    let results = resolve_all(
        &tiered,
        fetcher.as_deref(),
        &plan,
        settings.concurrency,
        reporter.as_ref(),
    )
    .await;

    if let Some(f) = &fetcher {
        f.shutdown_decoders().await;
    }
    let mut counts = ChunkCounts {
        total: plan.requests.len() as u64,
        ..ChunkCounts::default()
    };
    let mut failures = Vec::new();
    let mut chunk_rows = 0;
    let mut bytes_from_cache = 0;
    for r in results.values() {
        match r {
            Ok(res) => {
                chunk_rows += res.chunk.meta.rows;
                match res.source {
                    Tier::Memory => counts.memory += 1,
                    Tier::Local => counts.local += 1,
                    Tier::Remote => counts.remote += 1,
                    Tier::Tardis => counts.tardis += 1,
                }
                if res.source != Tier::Tardis {
                    bytes_from_cache += res.chunk.meta.file_bytes;
                }
                if !res.chunk.meta.complete {
                    counts.incomplete += 1;
                }
            }
            Err(_) => counts.failed += 1,
        }
    }
    // Failures in request order, so the first ones (probes) explain the rest.
    for (key, _) in &plan.requests {
        if let Some(Err(e)) = results.get(key) {
            failures.push(Failure {
                chunk: key.to_string(),
                error: e.to_string(),
            });
        }
    }

    let (outputs, skipped_outputs) = write_outputs(settings, &plan, &results, reporter.as_ref(), &cancel).await;
    let uploaded = tiered.finish().await;
    reporter.finish();

    let failed = counts.failed > 0 || !skipped_outputs.is_empty();
    let rows = outputs.iter().map(|o| o.rows).sum();
    Ok(Summary {
        status: if failed { RunStatus::Failed } else { RunStatus::Ok },
        exit_code: i32::from(if failed { 1u8 } else { 0 }),
        exchange: settings.exchange.clone(),
        symbols: settings.symbols.clone(),
        data_types: settings.data_types.iter().map(ToString::to_string).collect(),
        from: settings.range.from.to_string(),
        to: settings.range.to.to_string(),
        chunks: counts,
        chunk_rows,
        rows,
        tardis: TardisTraffic {
            requests: stats.requests.load(Ordering::Relaxed),
            retries: stats.retries.load(Ordering::Relaxed),
            bytes: stats.bytes.load(Ordering::Relaxed),
        },
        bytes_from_cache,
        uploads: Uploads {
            uploaded: uploaded.uploaded,
            failed: uploaded.failed,
        },
        outputs,
        skipped_outputs,
        failures,
        seconds: started.elapsed().as_secs_f64(),
    })
}

type Results = HashMap<ChunkKey, Result<Resolved, Arc<ResolveError>>>;

/// Resolves every chunk of the plan, at most `concurrency` (plus a margin for cache hits) at once.
async fn resolve_all(
    tiered: &Arc<Tiered>,
    fetcher: Option<&Fetcher>,
    plan: &Plan,
    concurrency: usize,
    reporter: &dyn Reporter,
) -> Results {
    // Tickets for the probes first, then the gate is sealed: fetches of other chunks wait for
    // the probes' answers.
    let mut jobs: Vec<_> = plan
        .requests
        .iter()
        .map(|(key, probe)| {
            let ticket = probe.then(|| fetcher.map(|f| f.probes_ticket())).flatten();
            (key.clone(), ticket)
        })
        .collect();
    if let Some(f) = fetcher {
        f.probes().seal();
    }
    jobs.reverse();
    // Cache hits cost no download slot, so keep more lookups going than downloads.
    let width = concurrency.max(4) * 2;
    let mut running = JoinSet::new();
    let mut results = Results::new();
    loop {
        while running.len() < width
            && let Some((key, ticket)) = jobs.pop()
        {
            let tiered = tiered.clone();
            running.spawn(async move {
                let r = tiered.resolve(&key, ticket).await;
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
        match &result {
            Ok(r) => reporter.chunk_done(&key, r.source, r.downloaded),
            Err(e) => reporter.chunk_failed(&key, &e.to_string()),
        }
        results.insert(key, result);
    }
    results
}

/// Writes the output of every data type whose chunks are all present.
async fn write_outputs(
    settings: &DownloadSettings,
    plan: &Plan,
    results: &Results,
    reporter: &dyn Reporter,
    cancel: &Cancel,
) -> (Vec<OutputResult>, Vec<Failure>) {
    let mut outputs = Vec::new();
    let mut skipped = Vec::new();
    let range = (!settings.range.is_whole_days()).then(|| settings.range.micros());
    let from_label = TimeRange::label(settings.range.from);
    let to_label = TimeRange::label(settings.range.to);
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
        let ctx = OutputContext {
            data_type: *data_type,
            source: format!(
                "{} exchange={} data_type={} symbols={} from={} to={}",
                redact_url(&settings.datasets_url),
                settings.exchange,
                data_type,
                settings.symbols.join(","),
                settings.range.from,
                settings.range.to
            ),
            range,
            range_label: format!("{from_label}/{to_label}"),
        };
        let target = match &settings.output {
            OutputSpec::File(p) => p.clone(),
            OutputSpec::Dir(d) => d.join(format!(
                "{}_{}_{from_label}_{to_label}.parquet",
                settings.exchange, data_type
            )),
            OutputSpec::Partitioned(d) => d.clone(),
        };
        reporter.writing(&target.display().to_string());
        let partitioned = matches!(settings.output, OutputSpec::Partitioned(_));
        let cancel = cancel.clone();
        let result = tokio::task::spawn_blocking(move || {
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
        });
        match result {
            Ok(o) => {
                debug!("{}: {:?}", o.path.display(), o.status);
                outputs.push(o);
            }
            Err(e) => skipped.push(Failure {
                chunk: data_type.to_string(),
                error: e.to_string(),
            }),
        }
    }
    (outputs, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_instant;

    #[test]
    fn probes_come_first_last_day_before_first() {
        let range = TimeRange::new(
            parse_instant("--from", "2024-01-01").unwrap(),
            Some(parse_instant("--to", "2024-01-05").unwrap()),
        )
        .unwrap();
        let plan = Plan::new("x", &["A".into(), "B".into()], &[DataType::Trades], &range);
        let order: Vec<String> = plan
            .requests
            .iter()
            .map(|(k, p)| format!("{}{}{}", k.symbol, k.date.day(), if *p { "*" } else { "" }))
            .collect();
        assert_eq!(order, vec!["A4*", "A1*", "B4*", "B1*", "A2", "A3", "B2", "B3"]);
        let tie: Vec<String> = plan.per_type[0]
            .1
            .iter()
            .map(|k| format!("{}{}", k.symbol, k.date.day()))
            .collect();
        assert_eq!(tie, vec!["A1", "B1", "A2", "B2", "A3", "B3", "A4", "B4"]);
    }

    #[test]
    fn a_single_day_is_one_probe() {
        let range = TimeRange::new(parse_instant("--from", "2024-01-01").unwrap(), None).unwrap();
        let plan = Plan::new("x", &["A".into()], &[DataType::Trades, DataType::Quotes], &range);
        assert_eq!(plan.requests.len(), 2);
        assert!(plan.requests.iter().all(|(_, p)| *p));
    }
}
