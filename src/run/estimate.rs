//! The planner's size model: how many compressed bytes Tardis is expected to serve for one
//! chunk. The same model balances `--shard` shares (so every worker computes the same ones)
//! and prices a plan in `--dry-run --estimate`.

use serde::Serialize;

use crate::model::DataType;

/// Expected gzip bytes of one symbol-day of `data_type`, from the sizes observed for one
/// liquid perpetual (okex-swap BTC-USDT-SWAP, 2026-04-01, as a user reported them: L2 updates 627 MB,
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

/// The default `--throughput`: gzip bytes from Tardis per second of one 2-core worker, from
/// README's "Performance" (cold pulls of 78.8 MB of gzip in 3.2 to 4.4 s over this round's
/// runs: 18–24 MB/s, the slowest rounded down).
pub const MEASURED_THROUGHPUT: u64 = 17_000_000;

/// A plan priced: what `--dry-run --estimate` adds to the dry run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// Chunks in the plan (this shard's, with `--shard`).
    pub chunks: u64,
    /// Chunks no cache tier holds: to fetch from Tardis.
    pub chunks_to_fetch: u64,
    /// Dataset requests to Tardis (one per chunk to fetch, before any retry).
    pub requests: u64,
    /// Expected bytes from Tardis (gzip; [`expected_bytes`] per chunk).
    pub bytes: u64,
    /// Workers sharing the plan.
    pub workers: u64,
    /// Bytes per second from Tardis of one worker.
    pub throughput: u64,
    /// Where `throughput` comes from.
    pub throughput_source: &'static str,
    /// Time to fetch `bytes` with `workers` workers at `throughput`, without limits.
    pub seconds: f64,
    /// The daily transfer limit checked against, if given.
    pub limit_daily: Option<u64>,
    /// The daily request limit checked against, if given.
    pub limit_requests: Option<u64>,
    /// Days the limits stretch the plan over (at least 1), if a limit was given.
    pub days_at_limits: Option<u64>,
    /// The most workers that help under the daily transfer limit (more fetch the day's
    /// budget sooner and then wait), if it was given.
    pub useful_workers: Option<u64>,
    /// One line for each limit the plan exceeds.
    pub over_limits: Vec<String>,
}

/// Prices a plan: `chunks` lists each chunk's data type and whether it must be fetched from
/// Tardis (no cache tier holds it).
pub fn estimate(chunks: impl IntoIterator<Item = (DataType, bool)>, p: &EstimateParams) -> Estimate {
    let (mut total, mut to_fetch, mut bytes) = (0u64, 0u64, 0u64);
    for (t, fetch) in chunks {
        total += 1;
        if fetch {
            to_fetch += 1;
            bytes += expected_bytes(t);
        }
    }
    let workers = p.workers.max(1);
    let per_day = p.throughput.max(1) as f64 * 86_400.0;
    let seconds = bytes as f64 / (p.throughput.max(1) as f64 * workers as f64);
    let mut over = Vec::new();
    let mut days: Option<u64> = None;
    let mut useful = None;
    let size = |n: u64| crate::settings::show_bytes(n);
    if let Some(limit) = p.limit_daily {
        let d = bytes.div_ceil(limit).max(1);
        days = Some(d);
        let u = ((limit as f64 / per_day).floor() as u64).max(1);
        useful = Some(u);
        if bytes > limit {
            over.push(format!(
                "{} from Tardis exceed the daily transfer limit of {}: the plan takes at least {d} days; \
                 run it daily with --max-transfer {} per worker (each run exits 3 when its budget is spent)",
                size(bytes),
                size(limit),
                size(limit / workers)
            ));
        }
        if workers > u {
            over.push(format!(
                "{workers} workers fetch {} a day at {}/s each, over the daily limit of {}: more than {u} workers do not help",
                size((per_day * workers as f64) as u64),
                size(p.throughput),
                size(limit)
            ));
        }
    }
    if let Some(limit) = p.limit_requests {
        let d = to_fetch.div_ceil(limit).max(1);
        days = Some(days.map_or(d, |x| x.max(d)));
        if to_fetch > limit {
            over.push(format!(
                "{to_fetch} requests exceed the daily request limit of {limit}: the plan takes at least {d} days"
            ));
        }
    }
    Estimate {
        chunks: total,
        chunks_to_fetch: to_fetch,
        requests: to_fetch,
        bytes,
        workers,
        throughput: p.throughput,
        throughput_source: if p.throughput == MEASURED_THROUGHPUT {
            "measured default (README, Scale out)"
        } else {
            "--throughput"
        },
        seconds,
        limit_daily: p.limit_daily,
        limit_requests: p.limit_requests,
        days_at_limits: days,
        useful_workers: useful,
        over_limits: over,
    }
}

impl Estimate {
    /// The estimate for a person.
    pub fn render(&self) -> String {
        let size = crate::settings::show_bytes;
        let mut s = format!(
            "estimate: {} chunks, {} to fetch from Tardis: {} requests, about {} (gzip; README \"Scale out\" for the size model)\n",
            self.chunks,
            self.chunks_to_fetch,
            self.requests,
            size(self.bytes)
        );
        s.push_str(&format!(
            "time: {} with {} worker(s) at {}/s each ({})\n",
            human_duration(self.seconds),
            self.workers,
            size(self.throughput),
            self.throughput_source
        ));
        if let Some(d) = self.days_at_limits {
            s.push_str(&format!("limits: at least {d} day(s)"));
            if let Some(u) = self.useful_workers {
                s.push_str(&format!("; at most {u} worker(s) help under the daily transfer limit"));
            }
            s.push('\n');
        }
        for o in &self.over_limits {
            s.push_str(&format!("over the limit: {o}\n"));
        }
        s
    }
}

/// `3 d 4 h`, `2 h 5 min`, `40 s`.
fn human_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(workers: u64, limit: Option<u64>) -> EstimateParams {
        EstimateParams {
            workers,
            throughput: MEASURED_THROUGHPUT,
            limit_daily: limit,
            limit_requests: None,
        }
    }

    #[test]
    fn cached_chunks_cost_nothing_and_time_divides_by_workers() {
        let chunks = [
            (DataType::Trades, true),
            (DataType::Trades, false),
            (DataType::IncrementalBookL2, true),
        ];
        let one = estimate(chunks, &params(1, None));
        assert_eq!((one.chunks, one.chunks_to_fetch, one.requests), (3, 2, 2));
        assert_eq!(one.bytes, 31_500_000 + 627_000_000);
        let ten = estimate(chunks, &params(10, None));
        assert!((one.seconds / ten.seconds - 10.0).abs() < 1e-9);
        assert!(one.over_limits.is_empty() && one.days_at_limits.is_none());
    }

    #[test]
    fn a_year_of_300_perpetuals_against_a_5tb_day() {
        // README's arithmetic: 300 symbols × 365 days × (trades + L2 updates).
        let chunks = (0..300 * 365).flat_map(|_| [(DataType::Trades, true), (DataType::IncrementalBookL2, true)]);
        let e = estimate(chunks, &params(100, Some(5_000_000_000_000)));
        assert_eq!(e.bytes, 300 * 365 * 658_500_000);
        assert_eq!(e.days_at_limits, Some(15));
        // 17 MB/s is 1.47 TB a day: three workers stay under 5 TB a day, a fourth does not.
        assert_eq!(e.useful_workers, Some(3));
        assert_eq!(e.over_limits.len(), 2, "{:?}", e.over_limits);
        assert!(e.over_limits[0].contains("--max-transfer"), "{}", e.over_limits[0]);
        let within = estimate([(DataType::Trades, true)], &params(1, Some(5_000_000_000_000)));
        assert!(within.over_limits.is_empty());
        assert_eq!(within.days_at_limits, Some(1));
    }

    #[test]
    fn the_request_limit_is_checked_too() {
        let p = EstimateParams {
            limit_requests: Some(2),
            ..params(1, None)
        };
        let e = estimate([(DataType::Trades, true); 5], &p);
        assert_eq!(e.days_at_limits, Some(3));
        assert!(e.over_limits[0].contains("request limit"));
    }
}
