//! `download --dry-run`: what a run would do, without doing it. For each chunk of the plan, the
//! tier expected to serve it (a footer read in the local cache, a HEAD on the remote if one is
//! set, else Tardis) and whether Tardis has finished exporting its day (one metadata request
//! per exchange, none `--offline`); then the outputs it would write. No dataset request, and
//! nothing is created or written: not the cache directory, not the output.

use std::fmt::Write as _;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tracing::warn;

use super::execute::shown_target;
use super::summary::JSON_SCHEMA;
use crate::cache::chunk_file::read_meta;
use crate::cache::{LocalStore, RemoteStore};
use crate::commands::DownloadError;
use crate::metadata::{Freshness, Metadata};
use crate::model::{ChunkKey, day_start};
use crate::settings::DownloadSettings;
use crate::tardis::TardisClient;

/// Remote existence checks in flight.
const CHECKS_IN_FLIGHT: usize = 16;

/// One chunk of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedChunk {
    /// The chunk key (`exchange/data_type/SYMBOL/YYYY-MM-DD`).
    pub chunk: String,
    /// `local`, `remote`, `tardis`, or `none` (`--offline` and in no cache).
    pub tier: &'static str,
    /// Whether Tardis has finished exporting the day (`null`: unknown).
    pub complete: Option<bool>,
}

/// One output the run would write.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedOutput {
    /// The data type.
    pub data_type: String,
    /// The file, or the partitioned dataset's root.
    pub path: String,
}

/// The plan of a run, as `--dry-run` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DryRun {
    /// The JSON schema version.
    pub schema: u32,
    /// Always `dry_run`.
    pub status: &'static str,
    /// Always 0.
    pub exit_code: i32,
    /// The exchange.
    pub exchange: String,
    /// Normalised symbols.
    pub symbols: Vec<String>,
    /// Data types.
    pub data_types: Vec<String>,
    /// Start of the range, resolved (RFC 3339).
    pub from: String,
    /// End of the range, exclusive, resolved (RFC 3339).
    pub to: String,
    /// Tardis's `exportedUntil` for the exchange, when it was asked.
    pub exported_until: Option<String>,
    /// Chunks per expected tier.
    pub tiers: TierCounts,
    /// Every chunk, in request order.
    pub chunks: Vec<PlannedChunk>,
    /// The outputs.
    pub outputs: Vec<PlannedOutput>,
    /// This worker's shard (`K/N`), with `--shard`.
    pub shard: Option<String>,
    /// The plan priced, with `--estimate`.
    pub estimate: Option<super::estimate::Estimate>,
}

/// Chunks per expected tier.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct TierCounts {
    /// In the local cache, complete.
    pub local: u64,
    /// In the remote cache.
    pub remote: u64,
    /// To fetch from Tardis.
    pub tardis: u64,
    /// In no cache while `--offline`: the run would fail them.
    pub none: u64,
}

impl DryRun {
    /// Looks the plan up in the tiers.
    ///
    /// # Errors
    /// The remote cache URL cannot be opened.
    pub async fn build(settings: &DownloadSettings) -> Result<Self, DownloadError> {
        let request = &settings.request;
        let plan = super::shard::planned(request, settings.shard);
        let keys: Vec<ChunkKey> = plan.requests.iter().map(|(k, _)| k.clone()).collect();
        let local = local_hits(settings, keys.clone()).await;
        let remote = remote_hits(settings, &keys, &local).await?;
        let exported_until = exported_until(settings).await;
        let mut tiers = TierCounts::default();
        let chunks: Vec<PlannedChunk> = keys
            .iter()
            .zip(local.iter().zip(&remote))
            .map(|(key, (&local, &remote))| {
                let tier = match (local, remote) {
                    (true, _) => "local",
                    (_, true) => "remote",
                    _ if settings.offline => "none",
                    _ => "tardis",
                };
                match tier {
                    "local" => tiers.local += 1,
                    "remote" => tiers.remote += 1,
                    "tardis" => tiers.tardis += 1,
                    _ => tiers.none += 1,
                }
                let day_end = day_start(key.date) + SignedDuration::from_hours(24);
                PlannedChunk {
                    chunk: key.to_string(),
                    tier,
                    complete: exported_until.map(|t| day_end <= t),
                }
            })
            .collect();
        let outputs = request
            .data_types
            .iter()
            .map(|t| PlannedOutput {
                data_type: t.to_string(),
                path: shown_target(settings, *t),
            })
            .collect();
        Ok(Self {
            schema: JSON_SCHEMA,
            status: "dry_run",
            exit_code: 0,
            exchange: request.exchange.clone(),
            symbols: request.symbols.clone(),
            data_types: request.data_types.iter().map(ToString::to_string).collect(),
            from: request.range.from.to_string(),
            to: request.range.to.to_string(),
            exported_until: exported_until.map(|t| t.to_string()),
            tiers,
            estimate: settings.estimate.map(|p| {
                super::estimate::estimate(
                    // In no cache while --offline: what the plan costs once run online.
                    chunks
                        .iter()
                        .zip(&keys)
                        .map(|(c, k)| (k.data_type, matches!(c.tier, "tardis" | "none"))),
                    &p,
                )
            }),
            shard: settings.shard.map(|s| s.to_string()),
            chunks,
            outputs,
        })
    }

    /// A table for a person.
    pub fn render(&self) -> String {
        let t = &self.tiers;
        let mut s = format!(
            "dry run: {} {} {}, {} to {}: {} chunks ({} local, {} remote, {} from Tardis{})\n",
            self.exchange,
            self.data_types.join(","),
            self.symbols.join(","),
            self.from,
            self.to,
            self.chunks.len(),
            t.local,
            t.remote,
            t.tardis,
            if t.none > 0 {
                format!(", {} in no cache: --offline would fail them", t.none)
            } else {
                String::new()
            }
        );
        if let Some(e) = &self.estimate {
            // The totals only: a plan worth estimating is too long to list.
            s.push_str(&e.render());
            for o in &self.outputs {
                let _ = writeln!(s, "would write {} ({})", o.path, o.data_type);
            }
            return s;
        }
        let width = self.chunks.iter().map(|c| c.chunk.len()).max().unwrap_or(5).max(5);
        let _ = writeln!(s, "{:width$}  {:6}  exported", "chunk", "tier");
        for c in &self.chunks {
            let complete = match c.complete {
                Some(true) => "yes",
                Some(false) => "no (not final yet)",
                None => "unknown",
            };
            let _ = writeln!(s, "{:width$}  {:6}  {complete}", c.chunk, c.tier);
        }
        if let Some(t) = &self.exported_until {
            let _ = writeln!(s, "Tardis has exported {} until {t}", self.exchange);
        }
        for o in &self.outputs {
            let _ = writeln!(s, "would write {} ({})", o.path, o.data_type);
        }
        s
    }
}

/// Whether each chunk is in the local cache, complete (footers only; creates nothing).
async fn local_hits(settings: &DownloadSettings, keys: Vec<ChunkKey>) -> Vec<bool> {
    let local = LocalStore::at(&settings.cache.cache_dir);
    let refresh = settings.refresh;
    tokio::task::spawn_blocking(move || {
        keys.iter()
            .map(|k| !refresh && read_meta(&local.path(k)).is_ok_and(|m| m.complete))
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// Whether each chunk that is not local is on the remote (a HEAD each).
async fn remote_hits(
    settings: &DownloadSettings,
    keys: &[ChunkKey],
    local: &[bool],
) -> Result<Vec<bool>, DownloadError> {
    let none = vec![false; keys.len()];
    let Some(opts) = settings.cache.remote.as_ref().filter(|_| !settings.refresh) else {
        return Ok(none);
    };
    // Opening a file:// remote creates its directory: a missing one holds nothing anyway.
    if opts.url.scheme() == "file" && opts.url.to_file_path().is_ok_and(|p| !p.exists()) {
        return Ok(none);
    }
    let remote = RemoteStore::open(opts)?;
    let checks = keys.iter().zip(local).map(|(key, &local)| {
        let remote = &remote;
        async move {
            if local || remote.is_disabled() {
                return false;
            }
            remote.exists(key).await.unwrap_or_else(|e| {
                warn!("remote cache: cannot check {key}: {}", crate::error::chain(&e));
                false
            })
        }
    });
    Ok(futures::stream::iter(checks).buffered(CHECKS_IN_FLIGHT).collect().await)
}

/// `exportedUntil` of the exchange, unless `--offline` (a failure is a warning: unknown).
async fn exported_until(settings: &DownloadSettings) -> Option<Timestamp> {
    if settings.offline {
        return None;
    }
    let client = TardisClient::new(settings.tardis.client_config()).ok()?;
    let meta = Metadata::new(&settings.cache.cache_dir, Some(client), settings.tardis.retry).read_only();
    match meta
        .exchange(&settings.request.exchange, Freshness::Now)
        .await
        .map(|d| d.value.exported_until())
    {
        Ok(t) => t,
        Err(e) => {
            warn!(
                "cannot read datasets.exportedUntil of {}: {}; completeness unknown",
                settings.request.exchange,
                crate::error::chain(&e)
            );
            None
        }
    }
}
