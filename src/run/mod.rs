//! A download run: the checks before it ([`validate`] against Tardis's metadata, which days
//! are [`publication`]s yet), the [`plan`] of chunks (cut to this worker's [`shard`], priced
//! by the [`estimate`], and the [`dry_run`] that shows it), the
//! run loop that resolves them and writes the outputs ([`execute`]), the [`summary`] it ends
//! with and its [`exit`] code, progress [`report`]ing (the bar and plain lines are in
//! [`progress`]) and the [`logging`] of stderr.

pub mod dry_run;
pub mod estimate;
pub(crate) mod execute;
pub mod exit;
pub mod logging;
pub mod plan;
pub mod progress;
pub mod publication;
pub mod report;
pub mod shard;
pub mod summary;
pub mod validate;
