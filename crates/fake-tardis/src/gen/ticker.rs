//! `derivative_ticker`: funding, open interest and last/index/mark prices of a perpetual or
//! future. Tardis writes the latest known value of every field on each row, so a field is
//! empty until its first update of the day arrives, and some venues never fill some columns
//! (Deribit has no `funding_timestamp` nor `predicted_funding_rate`).

use std::io::{self, Write};

use super::market::{Coin, DAY_US};
use super::num::pow10;
use super::{Ctx, Rows};

/// Funding happens every 8 hours (00:00, 08:00, 16:00 UTC) on the venues modelled here.
const FUNDING_PERIOD_US: i64 = 8 * 3_600_000_000;

/// Which columns a venue publishes, and with how many decimals.
struct Profile {
    funding_timestamp: bool,
    predicted: bool,
    /// Decimals of the funding rates (Deribit prints 8, OKX up to 16).
    rate_scale: u32,
    /// Decimals of open interest (0 for contract counts).
    oi_scale: u32,
}

fn profile(exchange: &str) -> Profile {
    match exchange {
        "deribit" => Profile {
            funding_timestamp: false,
            predicted: false,
            rate_scale: 8,
            oi_scale: 0,
        },
        "bitmex" => Profile {
            funding_timestamp: true,
            predicted: true,
            rate_scale: 6,
            oi_scale: 0,
        },
        e if e.starts_with("okex") || e.starts_with("huobi-dm") => Profile {
            funding_timestamp: true,
            predicted: true,
            rate_scale: 16,
            oi_scale: 0,
        },
        _ => Profile {
            funding_timestamp: true,
            predicted: false,
            rate_scale: 8,
            oi_scale: 3,
        },
    }
}

/// A field's latest value, if one has arrived yet today.
type Known = Option<i64>;

pub(crate) fn derivative_ticker<W: Write>(c: &mut Ctx, out: &mut Rows<W>) -> io::Result<()> {
    let pf = profile(&c.exchange);
    let m = c.market.clone();
    // Index and mark prices are computed by the venue with more decimals than the tick.
    let fine_scale = if Coin::of(&c.symbol) == Coin::Other { 4 } else { 2 };
    let to_fine = |ticks: f64| -> i64 {
        (ticks * m.tick as f64 * pow10(fine_scale) as f64 / pow10(m.price_scale) as f64).round() as i64
    };
    // The rate walks in units of 1e-8; venues with fewer decimals round it.
    let rate_at_scale = |units: i64| -> i64 {
        if pf.rate_scale >= 8 {
            units * pow10(pf.rate_scale - 8)
        } else {
            let div = pow10(8 - pf.rate_scale);
            (units as f64 / div as f64).round() as i64
        }
    };
    let sigma_day = m.start_ticks as f64 * m.daily_vol;
    let mut mid = m.start_ticks as f64;
    let mut basis = c.rng.normal() * 0.0004;
    let mut rate: i64 = (10_000.0 + c.rng.normal() * 6_000.0) as i64;
    let mut predicted: i64 = rate + (c.rng.normal() * 3_000.0) as i64;
    let mut oi: f64 = match pf.oi_scale {
        0 => 5e8 * (0.5 + c.rng.f64()),
        // Coins with 3 decimals, as a mantissa: 2e7 = 20000.000.
        _ => 2e7 * (0.5 + c.rng.f64()),
    };
    let (mut index, mut mark, mut last): (Known, Known, Known) = (None, None, None);
    let (mut k_rate, mut k_pred, mut k_oi) = (false, false, false);
    let mut prev = c.day_start;
    for i in 0..c.rows {
        let local = c.timeline.group_start(&mut c.rng, i);
        let ts = c.latency.exchange_ts(&mut c.rng, local);
        let dt = (local - prev) as f64 / DAY_US as f64;
        prev = local;
        mid = (mid + sigma_day * dt.sqrt() * c.rng.normal()).max(10.0);
        // Which channel this message came from.
        let r = if i == 0 { 0.0 } else { c.rng.f64() };
        if r < 0.6 {
            basis = basis * 0.999 + c.rng.normal() * 0.00002;
            index = Some(to_fine(mid + c.rng.normal() * 0.3));
            mark = Some(to_fine(mid * (1.0 + basis)));
        } else if r < 0.8 {
            let bounce = if c.rng.chance(0.5) { 1.0 } else { 0.0 };
            last = Some(m.price(mid.floor() as i64 + bounce as i64));
        } else if r < 0.9 {
            oi = (oi * (1.0 + c.rng.normal() * 0.0005)).max(1.0);
            k_oi = true;
        } else {
            rate += (c.rng.normal() * 40.0) as i64;
            predicted = rate + (c.rng.normal() * 2_000.0) as i64;
            k_rate = true;
            k_pred = true;
        }
        out.start(ts, local);
        if pf.funding_timestamp && k_rate {
            out.int((ts / FUNDING_PERIOD_US + 1) * FUNDING_PERIOD_US);
        } else {
            out.empty();
        }
        cell(out, k_rate.then_some(rate_at_scale(rate)), pf.rate_scale);
        cell(
            out,
            (pf.predicted && k_pred).then_some(rate_at_scale(predicted)),
            pf.rate_scale,
        );
        let oi_mantissa = match pf.oi_scale {
            0 => (oi.round() as i64 / 10) * 10,
            // Already a mantissa at 3 decimals (2e7 = 20000.000 coins).
            _ => oi.round() as i64,
        };
        cell(out, k_oi.then_some(oi_mantissa), pf.oi_scale);
        cell(out, last, m.price_scale);
        cell(out, index, fine_scale);
        cell(out, mark, fine_scale);
        out.end()?;
    }
    Ok(())
}

fn cell<W: Write>(out: &mut Rows<W>, v: Known, scale: u32) {
    match v {
        Some(v) => out.dec(v, scale),
        None => out.empty(),
    }
}
