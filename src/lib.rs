//! tickvault: bulk downloads of Tardis.dev historical market data into typed, merged Parquet.
//!
//! A download is split into chunks (exchange × data type × symbol × UTC day). Each chunk is
//! served by the first cache tier that holds it (memory, local Parquet, a remote edge cache) or
//! fetched from the Tardis datasets API under a semaphore and a token bucket, decoded from
//! gzip CSV into typed Arrow batches and sealed into a checksummed Parquet chunk file. The
//! merged outputs are assembled from the chunk files' column chunks (symbol-major), or merged by
//! `local_timestamp` (`--order time`). ARCHITECTURE.md walks a chunk through.
//!
//! Module map, in pipeline order:
//! - [`commands`]: the dispatcher, `download` and `serve` wiring, `exchanges`, `cache stats|verify|prune`,
//!   `config`, `completions`, `man`;
//! - [`settings`]: every option declared once, layered (flags, env, job, file, defaults),
//!   validated;
//! - [`run`]: the checks before a run, the plan of chunks (a `--shard`'s share, the
//!   `--estimate`) and the dry run, the run loop, the summary and exit codes, progress, logging;
//! - [`metadata`]: Tardis's exchange metadata, cached a day; "did you mean" suggestions;
//! - [`model`]: pure types (data types and schemas, chunk keys, ranges);
//! - [`cache`]: the chunk file and the tiers (memory, local, remote) behind one trait;
//! - [`fetch`]: admission, retries and one attempt at a chunk (GET → spool → decode);
//! - [`tardis`]: the HTTP APIs, their errors, secrets;
//! - [`decode`]: gzip CSV → typed Arrow batches;
//! - [`parquet`]: sealed (checksummed) files, the parallel writer, encodings, atomic writes;
//! - [`output`]: merged files and the partitioned dataset, on disk or published to an object store;
//! - [`redact`]: the one layer that removes secrets from everything printed;
//! - [`serve`]: `tickvault serve`, the team's pull-through edge cache over the same tiers;
//! - [`bars`]: `tickvault bars`, OHLCV bars folded from trades into derived chunks cached in
//!   the same tiers.

#![warn(missing_docs)]

pub mod bars;
pub mod cache;
pub mod commands;
pub mod decode;
pub(crate) mod error;
pub mod fetch;
pub mod metadata;
pub mod model;
pub mod output;
pub mod parquet;
pub mod redact;
pub mod run;
pub mod serve;
pub mod settings;
pub mod tardis;

/// `tickvault <version>`, as written into every file's metadata.
pub const VERSION: &str = concat!("tickvault ", env!("CARGO_PKG_VERSION"));
