//! Resolving the derived chunks of one symbol-day: from the tiers when they hold them (no raw
//! trades read), else computed in one pass over the raw trades chunk (from the tiers, or
//! fetched: stored like any chunk, or with `--no-keep-raw` read from a staged file that is
//! never committed) and stored in every tier. A derived chunk of a day Tardis has not
//! finished exporting is stored marked incomplete, so it is a miss next time, and never
//! uploaded or kept in memory.

use std::sync::Arc;

use tracing::debug;

use super::chunk::{DeriveError, derive, write};
use crate::cache::chunk_file::ChunkData;
use crate::cache::{Chunk, LocalStore, ResolveError, StoreError, Tier, Tiered};
use crate::fetch::{FetchError, Fetcher};
use crate::model::{BarTime, ChunkKey, Derivation, Interval};
use crate::parquet::mac::MacKey;

/// What the bars of a run are computed with.
#[derive(Debug, Clone)]
pub struct Deriver {
    /// The tiers.
    pub tiered: Arc<Tiered>,
    /// The local tier (derived chunks are staged and committed there).
    pub local: LocalStore,
    /// The fetcher, unless `--offline`.
    pub fetcher: Option<Arc<Fetcher>>,
    /// The bar lengths.
    pub intervals: Vec<Interval>,
    /// The timestamp bucketed by.
    pub by: BarTime,
    /// Store the raw chunks in the tiers.
    pub keep_raw: bool,
    /// The team key: derived chunks carry its MAC.
    pub mac: Option<MacKey>,
}

/// The derived chunks of one symbol-day, one per interval (in the run's order).
#[derive(Debug, Clone)]
pub struct DayBars {
    /// The derived chunks.
    pub chunks: Vec<Chunk>,
    /// The slowest tier that served them; for computed ones, the tier of the raw chunk.
    pub source: Tier,
    /// Compressed bytes downloaded from Tardis for the raw chunk.
    pub downloaded: u64,
    /// Rows of the raw chunk read (0 when every derived chunk came from the tiers).
    pub raw_rows_read: u64,
    /// Derived chunks computed (the rest came from the tiers).
    pub computed: u64,
}

/// Why the bars of a symbol-day could not be had.
#[derive(Debug, thiserror::Error)]
pub enum BarsError {
    /// The raw chunk could not be resolved.
    #[error(transparent)]
    Resolve(Arc<ResolveError>),
    /// The raw chunk could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The raw chunk could not be folded.
    #[error("{chunk}: computing the bars")]
    Derive {
        /// The raw chunk.
        chunk: String,
        #[source]
        /// The cause.
        source: DeriveError,
    },
    /// A derived chunk could not be stored.
    #[error("{chunk}: storing the bars")]
    Store {
        /// The derived chunk.
        chunk: String,
        #[source]
        /// The cause.
        source: StoreError,
    },
}

impl Deriver {
    fn derivation(&self, interval: Interval) -> Derivation {
        Derivation::Bars { interval, by: self.by }
    }

    /// The derived chunks of the raw chunk `raw_key`.
    ///
    /// # Errors
    /// [`BarsError`] when the raw chunk cannot be had or folded, or a derived one stored.
    pub async fn day(&self, raw_key: &ChunkKey) -> Result<DayBars, BarsError> {
        let keys: Vec<ChunkKey> = self
            .intervals
            .iter()
            .map(|i| raw_key.derived(self.derivation(*i)))
            .collect();
        let mut found: Vec<Option<Chunk>> = Vec::with_capacity(keys.len());
        let mut source = Tier::Memory;
        for k in &keys {
            let hit = self.tiered.cached(k).await;
            if let Some(h) = &hit {
                source = source.max(h.source);
            }
            found.push(hit.map(|h| h.chunk));
        }
        let missing: Vec<usize> = (0..keys.len()).filter(|i| found[*i].is_none()).collect();
        if missing.is_empty() {
            let chunks = found.into_iter().flatten().collect();
            return Ok(DayBars {
                chunks,
                source,
                downloaded: 0,
                raw_rows_read: 0,
                computed: 0,
            });
        }
        let (raw, raw_source, downloaded, _staged) = self.raw(raw_key).await?;
        let intervals: Vec<Interval> = missing.iter().map(|i| self.intervals[*i]).collect();
        let day_start = raw_key.day_start_micros();
        let by = self.by;
        let data = raw.data.clone();
        let rows = tokio::task::spawn_blocking(move || derive(&data, day_start, &intervals, by))
            .await
            .map_err(|e| BarsError::Store {
                chunk: raw_key.to_string(),
                source: StoreError::io("computing the bars", std::io::Error::other(e)),
            })?
            .map_err(|source| BarsError::Derive {
                chunk: raw_key.to_string(),
                source,
            })?;
        for (i, rows) in missing.iter().zip(rows) {
            let chunk = self.store(&keys[*i], rows, raw.meta.complete).await?;
            found[*i] = Some(chunk);
        }
        Ok(DayBars {
            chunks: found.into_iter().flatten().collect(),
            source: source.max(raw_source),
            downloaded,
            raw_rows_read: raw.meta.rows,
            computed: missing.len() as u64,
        })
    }

    /// The raw chunk: from the tiers or Tardis; with `--no-keep-raw` a fetched one stays in a
    /// staged file (removed when the returned guard is dropped).
    async fn raw(
        &self,
        key: &ChunkKey,
    ) -> Result<(Chunk, Tier, u64, Option<crate::parquet::atomic::AtomicFile>), BarsError> {
        if self.keep_raw {
            let r = self.tiered.resolve(key).await.map_err(BarsError::Resolve)?;
            return Ok((r.chunk, r.source, r.downloaded, None));
        }
        if let Some(r) = self.tiered.cached(key).await {
            return Ok((r.chunk, r.source, 0, None));
        }
        let Some(fetcher) = &self.fetcher else {
            return Err(BarsError::Resolve(Arc::new(ResolveError::NotCached {
                chunk: key.to_string(),
            })));
        };
        let store_err = |source| BarsError::Store {
            chunk: key.to_string(),
            source,
        };
        let staged = self.local.stage(key).map_err(store_err)?;
        let fetched = fetcher.fetch(key, staged.path()).await?;
        debug!("{key}: fetched for its bars only (--no-keep-raw)");
        let chunk = Chunk {
            key: key.clone(),
            meta: fetched.meta,
            data: ChunkData::File(staged.path().into()),
        };
        Ok((chunk, Tier::Tardis, fetched.body_bytes, Some(staged)))
    }

    /// Writes a derived chunk into the local tier, then (complete) into memory and the remote.
    async fn store(&self, key: &ChunkKey, rows: Vec<super::fold::Row>, complete: bool) -> Result<Chunk, BarsError> {
        let store_err = |source| BarsError::Store {
            chunk: key.to_string(),
            source,
        };
        let staged = self.local.stage(key).map_err(store_err)?;
        let file = staged
            .handle()
            .map_err(|e| store_err(StoreError::io(format!("opening {}", staged.path().display()), e)))?;
        let (k, mac) = (key.clone(), self.mac.clone());
        let meta = tokio::task::spawn_blocking(move || write(file, &k, &rows, complete, mac.as_ref()))
            .await
            .map_err(|e| store_err(StoreError::io("writing the bars", std::io::Error::other(e))))?
            .map_err(|e| store_err(StoreError::ChunkFile(e)))?;
        let path = staged
            .commit()
            .map_err(|e| store_err(StoreError::io(format!("storing {key}"), e)))?;
        let chunk = Chunk {
            key: key.clone(),
            meta,
            data: ChunkData::File(path.into()),
        };
        if complete {
            self.tiered.accept(&chunk).await;
        }
        Ok(chunk)
    }
}
