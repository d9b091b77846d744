//! The planner's size model: how many compressed bytes Tardis is expected to serve for one
//! chunk. The same model balances `--shard` shares (so every worker computes the same ones)
//! and prices a plan in `--dry-run --estimate`.

use crate::model::DataType;

/// Expected gzip bytes of one symbol-day of `data_type`, from the sizes observed for one
/// liquid perpetual (okex-swap BTC-USDT-SWAP, 2026-04-01, tardis-api.md §1: L2 updates 627 MB,
/// trades 31.5 MB, book_ticker 32 MB, derivative_ticker 7.3 MB, liquidations 9.7 KB) and for
/// deribit's OPTIONS options_chain (4.5 GB a day). Quotes are taken as book_ticker, and the
/// two snapshot types as a share of the L2 stream (assumed, not observed): an upper figure
/// for a liquid symbol; quieter symbols are smaller.
pub fn expected_bytes(data_type: DataType) -> u64 {
    const MB: u64 = 1_000_000;
    match data_type {
        DataType::IncrementalBookL2 => 627 * MB,
        DataType::BookSnapshot25 => 400 * MB,
        DataType::BookSnapshot5 => 120 * MB,
        DataType::Trades => 31_500_000,
        DataType::Quotes | DataType::BookTicker => 32 * MB,
        DataType::DerivativeTicker => 7_300_000,
        DataType::Liquidations => 9_700,
        DataType::OptionsChain => 4_500 * MB,
    }
}

/// What `--dry-run --estimate` prices the plan with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimateParams {
    /// Workers sharing the plan.
    pub workers: u64,
    /// Bytes per second from Tardis of one worker.
    pub throughput: u64,
    /// The key's daily transfer limit, if given.
    pub limit_daily: Option<u64>,
    /// The key's daily request limit, if given.
    pub limit_requests: Option<u64>,
}
