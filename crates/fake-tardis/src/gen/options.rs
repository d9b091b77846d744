//! `options_chain`: the grouped `OPTIONS` file of an options venue (Deribit style). Each row
//! is one instrument's ticker: quotes with implied vols, mark, underlying and greeks, priced
//! with Black-76 on the expiry's forward so the numbers hang together.

use std::io::{self, Write};

use jiff::civil::{Date, Weekday};

use super::market::{Coin, DAY_US};
use super::num::mantissa;
use super::rng::{Rng, fnv1a};
use super::{Ctx, Rows, day_start_us};

const YEAR_US: f64 = 365.0 * DAY_US as f64;
/// Deribit options expire at 08:00 UTC.
const EXPIRY_HOUR_US: i64 = 8 * 3_600_000_000;

/// One listed option.
struct Inst {
    und: usize,
    /// `BTC-29MAR24-43000-P`
    symbol: Vec<u8>,
    /// `BTC-29MAR24` when a future of that expiry is listed, else `SYN.BTC-29MAR24`.
    index: Vec<u8>,
    synthetic: bool,
    strike: f64,
    expiry_us: i64,
    call: bool,
    /// Open interest around which this instrument's value moves, in contracts.
    base_oi: f64,
}

/// An underlying coin and its instruments, grouped by expiry (nearest first).
struct Underlying {
    /// Spot price walk.
    spot: f64,
    atm_iv: f64,
    /// Decimals of bid/ask amounts and open interest (BTC contracts are 0.1 coins).
    amount_scale: u32,
    /// Instrument index ranges per expiry; each range interleaves call and put per strike.
    expiries: Vec<std::ops::Range<usize>>,
}

/// "5JAN24": day without padding, month abbreviation, two-digit year.
fn expiry_code(d: Date) -> String {
    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    format!(
        "{}{}{:02}",
        d.day(),
        MONTHS[(d.month() - 1) as usize],
        d.year().rem_euclid(100)
    )
}

fn add_days(d: Date, n: i64) -> Date {
    d.checked_add(jiff::Span::new().days(n)).unwrap_or(d)
}

fn last_friday(d: Date) -> Date {
    let mut x = d.last_of_month();
    while x.weekday() != Weekday::Friday {
        x = add_days(x, -1);
    }
    x
}

/// Listed expiries after `date`: three dailies, four weeklies, three monthlies and three
/// quarterlies, with whether a future of the same expiry exists (nearest weekly, monthlies,
/// quarterlies) to serve as the underlying index.
fn expiries(date: Date) -> Vec<(Date, bool)> {
    let mut out: Vec<(Date, bool)> = Vec::new();
    let mut push = |d: Date, future: bool| {
        if let Some(e) = out.iter_mut().find(|(x, _)| *x == d) {
            e.1 |= future;
        } else {
            out.push((d, future));
        }
    };
    for n in 1..=3 {
        push(add_days(date, n), false);
    }
    let mut friday = add_days(date, 1);
    while friday.weekday() != Weekday::Friday {
        friday = add_days(friday, 1);
    }
    for w in 0..4 {
        push(add_days(friday, 7 * w), w == 0);
    }
    let mut month = date.first_of_month();
    let mut monthlies = 0;
    let mut quarterlies = 0;
    while monthlies < 3 || quarterlies < 3 {
        let lf = last_friday(month);
        if lf > date {
            if monthlies < 3 {
                push(lf, true);
                monthlies += 1;
            }
            if month.month() % 3 == 0 && quarterlies < 3 {
                push(lf, true);
                quarterlies += 1;
            }
        }
        month = add_days(month.last_of_month(), 1);
    }
    out.sort_by_key(|(d, _)| *d);
    out
}

fn build(date: Date, seed: u64, day_index: i64, coins: &[(Coin, &'static str)]) -> (Vec<Underlying>, Vec<Inst>) {
    let mut unds = Vec::new();
    let mut insts = Vec::new();
    let today = day_start_us(date);
    for (u, &(coin, name)) in coins.iter().enumerate() {
        let spot = coin.level(seed, day_index);
        let (steps, amount_scale, atm_iv) = match coin {
            Coin::Eth => ([25.0, 50.0, 100.0], 0, 0.62),
            _ => ([500.0, 1_000.0, 5_000.0], 1, 0.55),
        };
        let mut ranges = Vec::new();
        for (exp, future) in expiries(date) {
            let days = (day_start_us(exp) - today) / DAY_US;
            let (step, lo, hi) = match days {
                ..=3 => (steps[0], 0.88, 1.12),
                4..=35 => (steps[1], 0.7, 1.35),
                _ => (steps[2], 0.3, 4.0),
            };
            let code = expiry_code(exp);
            let index = if future {
                format!("{name}-{code}")
            } else {
                format!("SYN.{name}-{code}")
            };
            let first = insts.len();
            let mut k = (spot * lo / step).ceil() * step;
            while k <= spot * hi {
                for call in [true, false] {
                    let symbol = format!("{name}-{code}-{}-{}", k as i64, if call { 'C' } else { 'P' });
                    let mut r = Rng::new(seed ^ fnv1a(symbol.as_bytes()));
                    let moneyness = (k / spot).ln().abs();
                    let base_oi = (r.exp(400.0) * (-4.0 * moneyness).exp()).max(0.0);
                    insts.push(Inst {
                        und: u,
                        symbol: symbol.into_bytes(),
                        index: index.clone().into_bytes(),
                        synthetic: !future,
                        strike: k,
                        expiry_us: day_start_us(exp) + EXPIRY_HOUR_US,
                        call,
                        base_oi: if coin == Coin::Eth { base_oi * 30.0 } else { base_oi },
                    });
                }
                k += step;
            }
            ranges.push(first..insts.len());
        }
        unds.push(Underlying {
            spot,
            atm_iv,
            amount_scale,
            expiries: ranges,
        });
    }
    (unds, insts)
}

/// Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, error below 1.5e-7: plenty for
/// prices printed with 4 decimals and greeks with 5).
fn norm_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 { 0.5 * (1.0 + erf) } else { 0.5 * (1.0 - erf) }
}

fn norm_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Black-76 price (USD) and greeks: delta, gamma (per USD), vega (USD per vol point),
/// theta (USD per day), rho (USD per 1 % rate).
struct Greeks {
    price: f64,
    delta: f64,
    gamma: f64,
    vega: f64,
    theta: f64,
    rho: f64,
}

fn black(f: f64, k: f64, t: f64, vol: f64, call: bool) -> Greeks {
    let sd = vol * t.sqrt();
    let d1 = ((f / k).ln() + 0.5 * sd * sd) / sd;
    let d2 = d1 - sd;
    let pdf = norm_pdf(d1);
    let (price, delta, rho) = if call {
        (
            f * norm_cdf(d1) - k * norm_cdf(d2),
            norm_cdf(d1),
            k * t * norm_cdf(d2) / 100.0,
        )
    } else {
        (
            k * norm_cdf(-d2) - f * norm_cdf(-d1),
            norm_cdf(d1) - 1.0,
            -k * t * norm_cdf(-d2) / 100.0,
        )
    };
    Greeks {
        price: price.max(0.0),
        delta,
        gamma: pdf / (f * sd),
        vega: f * pdf * t.sqrt() / 100.0,
        theta: -f * pdf * vol / (2.0 * t.sqrt()) / 365.0,
        rho,
    }
}

/// Deribit's option tick: 0.0001 coin below 0.005, 0.0005 above (as mantissas at 4 decimals).
fn tick_for(m: i64) -> i64 {
    if m < 50 { 1 } else { 5 }
}

fn round_down(m: i64) -> i64 {
    let t = tick_for(m);
    (m / t * t).max(1)
}

fn round_up(m: i64) -> i64 {
    let t = tick_for(m);
    ((m + t - 1) / t * t).max(1)
}

pub(crate) fn options_chain<W: Write>(c: &mut Ctx, out: &mut Rows<W>) -> io::Result<()> {
    let coins: &[(Coin, &str)] = match Coin::of(&c.symbol) {
        Coin::Eth => &[(Coin::Eth, "ETH")],
        Coin::Btc | Coin::Xbt => &[(Coin::Btc, "BTC")],
        Coin::Other => &[(Coin::Btc, "BTC"), (Coin::Eth, "ETH")],
    };
    let (mut unds, insts) = build(c.date, c.seed, c.day_index, coins);
    let exchange = c.exchange.clone().into_bytes();
    let mut prev = c.day_start;
    for i in 0..c.rows {
        let local = c.timeline.group_start(&mut c.rng, i);
        let ts = c.latency.exchange_ts(&mut c.rng, local);
        let dt = (local - prev) as f64 / DAY_US as f64;
        prev = local;
        for u in &mut unds {
            u.spot *= (0.03 * dt.sqrt() * c.rng.normal()).exp();
        }
        // Busy instruments: BTC over ETH, near expiries, strikes near the money.
        let u = if unds.len() > 1 && c.rng.chance(0.3) { 1 } else { 0 };
        let und = &unds[u];
        let n_exp = und.expiries.len();
        let mut e = 0;
        while e + 1 < n_exp && c.rng.chance(0.55) {
            e += 1;
        }
        let range = und.expiries[e].clone();
        let strikes = (range.end - range.start) / 2;
        let atm = insts[range.clone()]
            .iter()
            .step_by(2)
            .position(|x| x.strike >= und.spot)
            .unwrap_or(strikes / 2);
        let off = (c.rng.normal() * (strikes as f64 / 5.0).max(1.0)).round() as i64;
        let s = (atm as i64 + off).clamp(0, strikes as i64 - 1) as usize;
        let inst = &insts[range.start + 2 * s + usize::from(c.rng.chance(0.5))];
        debug_assert_eq!(inst.und, u);

        let t = ((inst.expiry_us - local) as f64 / YEAR_US).max(1.0 / YEAR_US * 60e6);
        let fwd = und.spot * (1.0 + 0.08 * t);
        let x = (inst.strike / fwd).ln() / t.sqrt().max(0.05);
        let iv = (und.atm_iv * (1.0 + 0.08 * (0.1 / t).ln().max(-1.0)) - 0.03 * x + 0.06 * x * x).clamp(0.2, 3.0);
        let g = black(fwd, inst.strike, t, iv, inst.call);
        let in_coin = |usd: f64| usd / fwd;
        let mark = mantissa(in_coin(g.price), 4).max(1);
        let iv_spread = 0.01 + 0.02 * c.rng.f64() + 0.03 * x.abs().min(2.0);
        let bid_g = black(fwd, inst.strike, t, (iv - iv_spread).max(0.05), inst.call);
        let ask_g = black(fwd, inst.strike, t, iv + iv_spread, inst.call);
        let deep_otm = g.delta.abs() < 0.02;
        let deep_itm = g.delta.abs() > 0.9 && t > 30.0 / 365.0;

        out.start_symbol(&exchange, &inst.symbol, ts, local);
        out.str(if inst.call { b"call" } else { b"put" });
        out.dec(inst.strike as i64, 0);
        out.int(inst.expiry_us);
        let amt = und.amount_scale;
        let oi = mantissa(inst.base_oi * (0.98 + 0.04 * c.rng.f64()), amt);
        out.dec(oi, amt);
        // last_price: the latest trade, near the mark; never-traded instruments have none.
        if oi == 0 && c.rng.chance(0.5) {
            out.empty();
        } else {
            out.dec(round_down(mark + (mark as f64 * 0.05 * c.rng.normal()) as i64), 4);
        }
        // Bid: deep out-of-the-money options often show only a 0.0001 bid, for which the
        // venue publishes no implied vol, or no bid at all.
        let bid_kind = if deep_otm || deep_itm {
            match c.rng.below(10) {
                0..=4 => 0,
                5..=7 => 1,
                _ => 2,
            }
        } else {
            2
        };
        match bid_kind {
            0 => {
                out.empty();
                out.empty();
                out.empty();
            }
            1 => {
                out.dec(1, 4);
                out.dec(mantissa(1.0 + c.rng.exp(3.0), amt).max(1), amt);
                out.empty();
            }
            _ => {
                let bid = round_down(mantissa(in_coin(bid_g.price), 4));
                out.dec(bid, 4);
                out.dec(mantissa(0.1 + c.rng.exp(15.0), amt).max(1), amt);
                if bid <= 1 {
                    out.empty();
                } else {
                    out.dec(mantissa((iv - iv_spread).max(0.05) * 100.0, 2), 2);
                }
            }
        }
        // Ask: deep in-the-money long-dated options often have nobody offering.
        if (deep_itm && c.rng.chance(0.6)) || (deep_otm && c.rng.chance(0.1)) {
            out.empty();
            out.empty();
            out.empty();
        } else {
            out.dec(round_up(mantissa(in_coin(ask_g.price), 4)), 4);
            out.dec(mantissa(0.1 + c.rng.exp(30.0), amt).max(1), amt);
            out.dec(mantissa((iv + iv_spread) * 100.0, 2), 2);
        }
        out.dec(mark, 4);
        out.dec(mantissa(iv * 100.0, 2), 2);
        out.str(&inst.index);
        // Synthetic indexes are computed with 4 decimals, futures trade on a 0.01 grid.
        if inst.synthetic {
            out.dec(mantissa(fwd, 4), 4);
        } else {
            out.dec(mantissa(fwd, 2), 2);
        }
        for v in [g.delta, g.gamma, g.vega, g.theta, g.rho] {
            out.dec(mantissa(v, 5), 5);
        }
        out.end()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_matches_deribit_sample() {
        // BTC-5JAN24-43000-C on 2024-01-01 00:00: delta 0.43217, vega 18.2, theta -115.
        let t = (1_704_441_600_000_000i64 - 1_704_067_200_121_000) as f64 / YEAR_US;
        let g = black(42_485.82, 43_000.0, t, 0.5498, true);
        assert!((g.delta - 0.432).abs() < 0.01, "{}", g.delta);
        assert!((g.vega - 18.2).abs() < 0.5, "{}", g.vega);
        assert!((g.theta + 115.0).abs() < 6.0, "{}", g.theta);
        assert!((g.price / 42_485.82 - 0.0185).abs() < 0.001);
    }

    #[test]
    fn expiry_codes() {
        assert_eq!(expiry_code(jiff::civil::date(2024, 3, 29)), "29MAR24");
        assert_eq!(expiry_code(jiff::civil::date(2024, 1, 5)), "5JAN24");
        let ex = expiries(jiff::civil::date(2024, 1, 1));
        assert!(ex.contains(&(jiff::civil::date(2024, 3, 29), true)));
        assert!(ex.contains(&(jiff::civil::date(2024, 1, 5), true)));
        assert!(ex.contains(&(jiff::civil::date(2024, 1, 2), false)));
    }
}
