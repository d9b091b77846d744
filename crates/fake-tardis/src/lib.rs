//! A fake of the Tardis.dev datasets and metadata APIs for tickvault's tests and benchmarks,
//! plus a generator of realistic Tardis day files.
//!
//! [`FakeTardis`] is an axum server on `127.0.0.1:0` that behaves like
//! `https://datasets.tardis.dev/v1` and `https://api.tardis.dev/v1` as described in
//! `shared/tardis-api.md`: the same URL layout, Bearer auth with the free first day of each
//! month, JSON error bodies, `Content-Type: text/csv` on gzip bytes, `Retry-After` on 429.
//! Tests script faults per path ([`Fault`]) to exercise retries and integrity checks, down to
//! hostile bodies (HTML pages, trickles, streamed gzip bombs, echoed secrets) and seeded
//! fault storms ([`FakeTardis::script_storm`], [`StormMix`]). The metadata API answers from
//! the files served plus symbols and dates declared with [`FakeTardis::add_symbol`] and the
//! `set_*` methods, and can fail on its own ([`FakeTardis::fail_api`]).
//!
//! [`generate`] (also reachable as `r#gen`: `gen` is a reserved word since edition 2024)
//! writes day files of all nine data types that look like real exchange data, days whose
//! `local_timestamp`s go back in time ([`generate::write_day_rewound`]) and gzip bombs
//! ([`generate::GzipBomb`]).

#![warn(missing_docs)]

pub mod r#gen;
mod server;

pub use server::{Builder, FakeTardis, Fault, RequestRecord, StormMix, SymbolGroup, SymbolMeta};

/// The generator module under a name that needs no raw-identifier syntax.
pub use r#gen as generate;
