//! L1: an in-process cache (moka), bounded in bytes.
//!
//! It keeps chunk bodies the process already holds in memory (remote hits, `put` of bytes) and
//! remembers verified local files (a few hundred bytes each), so a repeated lookup skips both
//! the remote and the re-verification of the local file. For an output interleaved by time it
//! also holds the decoded batches of chunks this run fetched ([`MemoryStore::put_decoded`]), so
//! the merge does not read back and decode files it just wrote; every byte counts against the
//! same bound. A store made with [`MemoryStore::holding_files`] (`tickvault serve`) reads local
//! files into memory instead of pointing at them, so hot chunk files are answered without
//! touching the disk. Request coalescing (one lookup per chunk however many callers ask at
//! once) lives in [`super::Tiered`], around all tiers.

use std::sync::Arc;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use moka::future::Cache;

use super::chunk_file::{ChunkData, verify_bytes};
use super::{Check, Chunk, ChunkStore, Entry, StoreError};
use crate::model::ChunkKey;

/// What an entry that only points at a local file weighs.
const FILE_ENTRY_WEIGHT: u32 = 512;
/// The tier keeps no file bytes or decoded batches larger than this share of its capacity, so
/// one huge chunk never evicts every hot one.
const MAX_ENTRY_SHARE: u64 = 8;

/// Decoded batches of a chunk, in file order.
pub type Batches = Arc<[RecordBatch]>;

/// One entry: a verified chunk, and its decoded batches when the run kept them.
#[derive(Debug)]
struct Resident {
    chunk: Chunk,
    batches: Option<Batches>,
}

impl Resident {
    fn weight(&self) -> u32 {
        let file = match &self.chunk.data {
            ChunkData::Bytes(b) => b.len(),
            ChunkData::File(_) | ChunkData::Temp(_) => FILE_ENTRY_WEIGHT as usize,
        };
        let decoded: usize = self
            .batches
            .iter()
            .flat_map(|b| b.iter())
            .map(RecordBatch::get_array_memory_size)
            .sum();
        u32::try_from(file + decoded).unwrap_or(u32::MAX)
    }
}

/// The memory tier.
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<ChunkKey, Arc<Resident>>,
    capacity: u64,
    /// Read local files into memory (up to this size each) instead of pointing at them.
    load_files_up_to: Option<u64>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").field("capacity", &self.capacity).finish()
    }
}

impl MemoryStore {
    /// A cache holding at most `capacity` bytes of chunk data.
    pub fn new(capacity: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .weigher(|_k, v: &Arc<Resident>| v.weight())
            .build();
        Self {
            cache,
            capacity,
            load_files_up_to: None,
        }
    }

    /// A cache holding the bytes of chunk files: a local file put into it is read into memory
    /// (if it is at most an eighth of `capacity`), so hits never touch the disk.
    pub fn holding_files(capacity: u64) -> Self {
        Self {
            load_files_up_to: Some(Self::largest_entry(capacity)),
            ..Self::new(capacity)
        }
    }

    /// The largest entry a tier of `capacity` bytes keeps (file bytes, or a chunk's decoded
    /// batches): a fetch keeps no more than this of a chunk's batches for it, so the batches in
    /// flight cost at most this much per decoder on top of the tier.
    pub fn largest_entry(capacity: u64) -> u64 {
        capacity / MAX_ENTRY_SHARE
    }

    /// Keeps a complete chunk with its decoded batches (for an interleaving merge).
    pub async fn put_decoded(&self, chunk: &Chunk, batches: Batches) {
        if chunk.meta.complete {
            let resident = Resident {
                chunk: chunk.clone(),
                batches: Some(batches),
            };
            self.cache.insert(chunk.key.clone(), Arc::new(resident)).await;
            // moka applies its capacity lazily, on later operations: large entries would pile
            // up past it meanwhile. Evict now, so the tier's bound is the memory's bound.
            self.cache.run_pending_tasks().await;
        }
    }

    /// The decoded batches of `key`, if they are resident.
    pub async fn decoded(&self, key: &ChunkKey) -> Option<Batches> {
        self.cache.get(key).await.and_then(|r| r.batches.clone())
    }

    /// Bytes currently held (after pending evictions are applied).
    pub async fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.weighted_size()
    }

    /// Entries currently held.
    pub async fn entry_count(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }
}

#[async_trait]
impl ChunkStore for MemoryStore {
    fn describe(&self) -> String {
        format!("memory ({} bytes)", self.capacity)
    }

    async fn get(&self, key: &ChunkKey) -> Result<Option<Chunk>, StoreError> {
        let Some(resident) = self.cache.get(key).await else {
            return Ok(None);
        };
        if let Some(p) = resident.chunk.data.path()
            && !p.exists()
        {
            // The local file was pruned by another process: forget it.
            self.cache.invalidate(key).await;
            return Ok(None);
        }
        Ok(Some(resident.chunk.clone()))
    }

    async fn put(&self, chunk: &Chunk) -> Result<(), StoreError> {
        if !chunk.meta.complete {
            return Ok(());
        }
        let chunk = match &chunk.data {
            ChunkData::Bytes(b) => {
                // Bytes are checked as they come in, so what is served later is sound.
                verify_bytes(b, Some(&chunk.key))?;
                chunk.clone()
            }
            data => match (self.load_files_up_to, data.path()) {
                (Some(max), Some(p)) if chunk.meta.file_bytes <= max => {
                    let bytes = tokio::fs::read(p)
                        .await
                        .map_err(|e| StoreError::io(format!("reading {}", p.display()), e))?;
                    // The caller verified the file; a file renamed over it since is another
                    // sound copy, and a different size means it changed: keep the pointer then.
                    if bytes.len() as u64 == chunk.meta.file_bytes {
                        Chunk {
                            data: ChunkData::Bytes(bytes.into()),
                            ..chunk.clone()
                        }
                    } else {
                        chunk.clone()
                    }
                }
                _ => chunk.clone(),
            },
        };
        let resident = Resident { chunk, batches: None };
        self.cache.insert(resident.chunk.key.clone(), Arc::new(resident)).await;
        Ok(())
    }

    async fn delete(&self, key: &ChunkKey) -> Result<(), StoreError> {
        self.cache.invalidate(key).await;
        Ok(())
    }

    async fn check(&self, key: &ChunkKey) -> Result<Check, StoreError> {
        // Entries are verified when they come in; a file entry is checked where it lies.
        Ok(match self.get(key).await? {
            None => Check::Missing,
            Some(chunk) => match chunk.data.path() {
                None => Check::Sound(chunk.meta),
                Some(p) => match super::chunk_file::verify_file(p, Some(key)) {
                    Ok(meta) => Check::Sound(meta),
                    Err(e) => Check::Corrupt(e.to_string()),
                },
            },
        })
    }

    async fn list(&self) -> Result<Vec<Entry>, StoreError> {
        let mut entries: Vec<Entry> = self
            .cache
            .iter()
            .map(|(key, resident)| Entry {
                key: (*key).clone(),
                bytes: resident.chunk.meta.file_bytes,
                used: None,
            })
            .collect();
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }
}
