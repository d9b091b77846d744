//! tickvault: bulk downloads of Tardis.dev historical market data into typed, merged Parquet.
//!
//! A download is split into chunks (exchange × data type × symbol × UTC day). Each chunk is
//! served by the first cache tier that holds it (memory, local Parquet, a remote edge cache) or
//! fetched from the Tardis datasets API under a semaphore and a token bucket, decoded from
//! gzip CSV into typed Arrow batches and sealed into a checksummed Parquet chunk file. The
//! outputs merge the chunk files by `local_timestamp`.
//!
//! Module map: [`model`] (pure types), [`tardis`] and [`fetch`] (the network), [`decode`] and
//! [`spool`] (body → batches), [`chunkfile`] (the sealed file format), [`cache`] (the tiers),
//! [`merge`] and [`output`] (the outputs), [`download`] (a run), [`app`] (commands).

pub mod app;
pub mod cache;
pub mod cache_cmd;
pub mod cancel;
pub mod chunkfile;
pub mod cli;
pub mod csv;
pub mod decode;
pub mod download;
pub mod exit;
pub mod fetch;
pub mod merge;
pub mod model;
pub mod output;
pub mod parquet_writer;
pub mod pool;
pub mod progress;
pub mod report;
pub mod settings;
pub mod spool;
pub mod summary;
pub mod tardis;

/// `tickvault <version>`, as written into every file's metadata.
pub const VERSION: &str = concat!("tickvault ", env!("CARGO_PKG_VERSION"));
