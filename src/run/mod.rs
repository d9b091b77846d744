//! A download run: the checks before it ([`validate`] against Tardis's metadata, which days
//! are [`publication`]s yet), the [`plan`] of chunks, the run loop that resolves them and
//! writes the outputs ([`execute`]), the [`summary`] it ends with and its [`exit`] code, and
//! progress [`report`]ing (the terminal bar is in [`progress`]).

pub(crate) mod execute;
pub mod exit;
pub mod plan;
pub mod progress;
pub mod publication;
pub mod report;
pub mod summary;
pub mod validate;
