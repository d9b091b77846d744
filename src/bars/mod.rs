//! OHLCV bars from trades, exact, cached and shared like chunks (`tickvault bars`).
//!
//! - [`fold`]: trades into partial bars, one file at a time, in file order;
//! - [`chunk`]: the derived chunk (the partial bars of one symbol-day-interval, a sealed chunk
//!   file in every tier, keyed by the derivation and its version) and the one pass over a raw
//!   trades chunk that computes them;
//! - [`run`]: a symbol-day's derived chunks from the tiers, or computed and stored;
//! - [`assemble`]: a symbol's bars from its derived chunks, day by day, across midnights;
//! - [`output`]: the outputs' schema, names and writers.
//!
//! Day boundaries. Files are split by arrival time (`local_timestamp`), so with `--by
//! timestamp` a trade of 23:59:59.9 may sit in the next day's file. A derived chunk depends on
//! its own file only (so it is final as soon as that file is, and cached as such): it holds
//! one partial bar per interval of its UTC day folded from its file, and every trade of the
//! file whose interval lies outside the day as a one-trade partial (the spill). Assembling
//! a symbol's bars pushes the derived chunks of consecutive days in order and combines the
//! partials of each interval in file order; a boundary bar therefore gets the trades of both
//! files, and its sums are added in the same order as a plain fold over the trades of both
//! files (bit for bit, see [`fold::Partial::combine`]). The day before and the day after the
//! range are read for the same reason. A trade that arrives more than a day after its
//! interval is in no bar (counted in the summary as `late_trades`).

pub mod assemble;
pub mod chunk;
pub mod fold;
pub mod output;
pub mod run;
