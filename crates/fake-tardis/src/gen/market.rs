//! What every generator shares: the instrument's price and size grid, the intraday activity
//! profile that spreads rows over the UTC day, and the exchange-to-collector latency.

use super::rng::{Rng, fnv1a};

/// Microseconds in one UTC day.
pub(crate) const DAY_US: i64 = 86_400_000_000;

/// The price and amount grid of one instrument, plus its starting level for the day.
#[derive(Debug, Clone)]
pub(crate) struct Market {
    /// One price tick as a mantissa at `price_scale` (0.5 at scale 1 is 5).
    pub(crate) tick: i64,
    pub(crate) price_scale: u32,
    /// Starting price of the day, in ticks.
    pub(crate) start_ticks: i64,
    /// One lot as a mantissa at `amount_scale` (0.001 at scale 3 is 1; 10 USD contracts at scale 0 is 10).
    pub(crate) lot: i64,
    pub(crate) amount_scale: u32,
    /// Typical order size in lots (the Pareto scale of the size distribution).
    pub(crate) size_lots: f64,
    /// Standard deviation of the day's log return (0.03 = 3 %).
    pub(crate) daily_vol: f64,
}

/// The coin an instrument is about, which decides its price level and tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coin {
    /// BitMEX's XBT contracts: BTC priced with a 0.5 tick.
    Xbt,
    Btc,
    Eth,
    Other,
}

impl Coin {
    pub(crate) fn of(symbol: &str) -> Coin {
        let s = symbol.to_ascii_uppercase();
        if s.starts_with("XBT") {
            Coin::Xbt
        } else if s.starts_with("BTC") || s.starts_with("SYN.BTC") {
            Coin::Btc
        } else if s.starts_with("ETH") || s.starts_with("SYN.ETH") {
            Coin::Eth
        } else {
            Coin::Other
        }
    }

    /// A plausible price level for this coin on `day_index` (days since the epoch): a slow
    /// walk shared by every file of that day and seed, so trades and quotes of one day agree.
    pub(crate) fn level(self, seed: u64, day_index: i64) -> f64 {
        let (base, label) = match self {
            Coin::Xbt | Coin::Btc => (42_000.0, "BTC"),
            Coin::Eth => (2_300.0, "ETH"),
            Coin::Other => (25.0, "OTHER"),
        };
        // Two superposed smooth waves (weeks and months) plus a small daily wiggle.
        let mut r = Rng::derive(seed, label);
        let (p1, p2) = (r.f64() * std::f64::consts::TAU, r.f64() * std::f64::consts::TAU);
        let d = day_index as f64;
        let mut day = Rng::new(seed ^ fnv1a(label.as_bytes()) ^ (day_index as u64).wrapping_mul(0x9E37));
        let log = 0.25 * (d / 45.0 + p1).sin() + 0.1 * (d / 9.0 + p2).sin() + 0.02 * day.normal();
        base * log.exp()
    }
}

/// True for venues whose `amount` is in integer contracts rather than coin.
fn contracts(exchange: &str) -> Option<(i64, f64)> {
    // (lot, typical size in lots): BitMEX and Deribit quote USD contracts (Deribit's in
    // multiples of 10), Huobi and OKX swaps/futures count whole contracts.
    match exchange {
        "bitmex" => Some((1, 400.0)),
        "deribit" => Some((10, 150.0)),
        e if e.starts_with("huobi-dm") || e == "okex-swap" || e == "okex-futures" => Some((1, 6.0)),
        _ => None,
    }
}

impl Market {
    pub(crate) fn new(exchange: &str, symbol: &str, seed: u64, day_index: i64) -> Market {
        let coin = Coin::of(symbol);
        let (tick, price_scale) = match coin {
            Coin::Xbt => (5, 1),
            Coin::Btc => (1, 1),
            Coin::Eth => (1, 2),
            Coin::Other => (1, 3),
        };
        let level = coin.level(seed, day_index);
        let start_ticks = (level * super::num::pow10(price_scale) as f64 / tick as f64).round() as i64;
        let (lot, amount_scale, size_lots) = match contracts(exchange) {
            Some((lot, size)) => (lot, 0, size),
            None => match coin {
                Coin::Xbt | Coin::Btc => (1, 3, 250.0),
                Coin::Eth => (1, 3, 3_000.0),
                Coin::Other => (1, 3, 150_000.0),
            },
        };
        Market {
            tick,
            price_scale,
            start_ticks: start_ticks.max(100),
            lot,
            amount_scale,
            size_lots,
            daily_vol: 0.03,
        }
    }

    /// Price mantissa (at `price_scale`) of a price given in ticks.
    pub(crate) fn price(&self, ticks: i64) -> i64 {
        ticks * self.tick
    }

    /// Amount mantissa (at `amount_scale`) of a size given in lots.
    pub(crate) fn amount(&self, lots: i64) -> i64 {
        lots * self.lot
    }

    /// A heavy-tailed order size in lots: mostly small, now and then huge, and a share of
    /// "round" sizes (100, 500, 1000 lots) as humans and bots like to type.
    pub(crate) fn size(&self, rng: &mut Rng) -> i64 {
        let u = rng.f64_open();
        let pareto = u.powf(-1.0 / 1.4) - 1.0;
        let mut lots = 1 + (self.size_lots * 0.4 * pareto) as i64;
        lots = lots.min((self.size_lots * 2_000.0) as i64 + 1);
        if lots >= 20 && rng.chance(0.15) {
            let digits = (lots as f64).log10().floor() as u32;
            let unit = 10i64.pow(digits.saturating_sub(1).max(1));
            lots = (lots / unit).max(1) * unit;
        }
        lots
    }
}

/// Spreads rows over the UTC day with a realistic, uneven intensity: busier around the US
/// open, quiet in the Asian early morning, with random bursts of activity.
#[derive(Debug)]
pub(crate) struct Timeline {
    day_start: i64,
    rows: f64,
    /// Cumulative share of the day's rows at the start of each 5-minute bucket (len 289).
    cdf: Vec<f64>,
    bucket: usize,
    last: i64,
}

const BUCKETS: usize = 288;
const BUCKET_US: f64 = DAY_US as f64 / BUCKETS as f64;

impl Timeline {
    pub(crate) fn new(rng: &mut Rng, day_start: i64, rows: usize) -> Timeline {
        let mut weights = Vec::with_capacity(BUCKETS);
        for b in 0..BUCKETS {
            let h = b as f64 / 12.0;
            let bump = |centre: f64, width: f64| (-((h - centre) / width).powi(2)).exp();
            let diurnal = 1.0 + 0.8 * bump(14.5, 2.5) + 0.3 * bump(1.0, 1.5) - 0.35 * bump(5.5, 2.0);
            let mut w = diurnal * (0.45 * rng.normal()).exp();
            if rng.chance(0.03) {
                // A news spike: several times the usual activity for five minutes.
                w *= 2.0 + rng.exp(3.0);
            }
            weights.push(w);
        }
        let total: f64 = weights.iter().sum();
        let mut cdf = Vec::with_capacity(BUCKETS + 1);
        let mut acc = 0.0;
        cdf.push(0.0);
        for w in &weights {
            acc += w / total;
            cdf.push(acc);
        }
        cdf[BUCKETS] = 1.0;
        Timeline {
            day_start,
            rows: rows.max(1) as f64,
            cdf,
            bucket: 0,
            last: day_start,
        }
    }

    /// Local timestamp (µs) for a group of rows starting at row `index`. Calls must come
    /// with increasing `index`; the result never decreases and stays inside the day.
    pub(crate) fn group_start(&mut self, rng: &mut Rng, index: usize) -> i64 {
        let u = ((index as f64 + rng.f64()) / self.rows).min(1.0);
        while self.bucket + 1 < BUCKETS && self.cdf[self.bucket + 1] <= u {
            self.bucket += 1;
        }
        let lo = self.cdf[self.bucket];
        let hi = self.cdf[self.bucket + 1];
        let frac = if hi > lo {
            ((u - lo) / (hi - lo)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let t = self.day_start + ((self.bucket as f64 + frac) * BUCKET_US) as i64;
        self.clamp(t)
    }

    /// Keeps a local timestamp non-decreasing and inside [day start, day end).
    pub(crate) fn clamp(&mut self, t: i64) -> i64 {
        let t = t.max(self.last).min(self.day_start + DAY_US - 1);
        self.last = t;
        t
    }
}

/// The exchange's own clock as seen by the collector: `timestamp` = arrival time minus a
/// latency that varies per message, truncated to the exchange's millisecond precision.
#[derive(Debug, Clone)]
pub(crate) struct Latency {
    base_us: f64,
}

impl Latency {
    pub(crate) fn new(rng: &mut Rng) -> Latency {
        Latency {
            base_us: 2_000.0 + rng.f64() * 120_000.0,
        }
    }

    pub(crate) fn exchange_ts(&self, rng: &mut Rng, local: i64) -> i64 {
        if rng.chance(0.004) {
            // Some messages carry no exchange time; Tardis then repeats local_timestamp.
            return local;
        }
        let mut lat = self.base_us * (0.7 + 0.6 * rng.f64());
        if rng.chance(0.02) {
            lat += rng.exp(40_000.0);
        }
        let ts = (local - lat as i64).max(0);
        ts - ts % 1_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_is_monotone_and_inside_day() {
        let mut rng = Rng::new(3);
        let start = 1_704_153_600_000_000;
        let mut tl = Timeline::new(&mut rng, start, 1000);
        let mut last = start;
        for i in 0..1000 {
            let t = tl.group_start(&mut rng, i);
            assert!(t >= last && t < start + DAY_US);
            last = t;
        }
    }

    #[test]
    fn sizes_are_positive() {
        let m = Market::new("binance-futures", "BTCUSDT", 1, 19_000);
        let mut rng = Rng::new(1);
        for _ in 0..10_000 {
            assert!(m.size(&mut rng) >= 1);
        }
    }
}
