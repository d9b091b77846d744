//! `trades` and `liquidations`: prints of aggressive orders, arriving in bursts (one taker
//! order sweeping several resting orders gives several rows within a few microseconds).

use std::io::{self, Write};

use super::market::DAY_US;
use super::rng::Rng;
use super::{Ctx, Rows};

/// How many prints one taker order produces: usually one, often a few, rarely a long sweep.
fn burst_len(rng: &mut Rng) -> usize {
    if rng.chance(0.55) {
        1
    } else if rng.chance(0.98) {
        2 + rng.geometric(0.35) as usize
    } else {
        10 + rng.below(50) as usize
    }
}

/// Appends a UUID-like lowercase hex id (BitMEX's trade ids look like this).
fn push_uuid(out: &mut Vec<u8>, rng: &mut Rng) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let (a, b) = (rng.next_u64(), rng.next_u64());
    let nibble = |i: usize| -> u8 {
        let word = if i < 16 { a } else { b };
        HEX[((word >> ((i % 16) * 4)) & 0xF) as usize]
    };
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push(b'-');
        }
        out.push(nibble(i));
    }
}

pub(crate) fn trades<W: Write>(c: &mut Ctx, out: &mut Rows<W>) -> io::Result<()> {
    let uuid_ids = c.exchange == "bitmex";
    let mut id: u64 = 10_000_000 + c.rng.below(3_000_000_000);
    let sigma_day = c.market.start_ticks as f64 * c.market.daily_vol;
    let mut mid = c.market.start_ticks as f64 + 0.5;
    let mut prev = c.day_start;
    let mut buy = c.rng.chance(0.5);
    let mut i = 0;
    while i < c.rows {
        let k = burst_len(&mut c.rng).min(c.rows - i);
        let start = c.timeline.group_start(&mut c.rng, i);
        // Brownian mid: the variance grows with the time elapsed since the last print.
        let dt = (start - prev) as f64 / DAY_US as f64;
        prev = start;
        mid = (mid + sigma_day * dt.sqrt() * c.rng.normal()).max(10.0);
        if c.rng.chance(0.4) {
            buy = !buy;
        }
        let ts = c.latency.exchange_ts(&mut c.rng, start);
        // Buys lift the ask, sells hit the bid: the bid-ask bounce of real prints.
        let mut level = if buy {
            mid.floor() as i64 + 1
        } else {
            mid.floor() as i64
        };
        // BitMEX reports the fills of one order in one message: same local time.
        let one_message = uuid_ids || c.rng.chance(0.3);
        let mut local = start;
        for j in 0..k {
            if j > 0 {
                if !one_message {
                    local = c.timeline.clamp(local + c.rng.below(16) as i64);
                }
                if c.rng.chance(0.25) {
                    let step = 1 + c.rng.below(2) as i64;
                    level += if buy { step } else { -step };
                    level = level.max(1);
                }
            }
            out.start(ts, local);
            if uuid_ids {
                out.buf.push(b',');
                push_uuid(&mut out.buf, &mut c.rng);
            } else {
                out.uint(id);
            }
            id += 1;
            out.str(if buy { b"buy" } else { b"sell" });
            out.dec(c.market.price(level), c.market.price_scale);
            let lots = c.market.size(&mut c.rng);
            out.dec(c.market.amount(lots), c.market.amount_scale);
            out.end()?;
        }
        i += k;
    }
    Ok(())
}

pub(crate) fn liquidations<W: Write>(c: &mut Ctx, out: &mut Rows<W>) -> io::Result<()> {
    // Liquidation feeds rarely carry an id; BitMEX gives the order id, Deribit a trade id.
    enum Ids {
        None,
        Uuid,
        Seq(u64),
    }
    let mut ids = match c.exchange.as_str() {
        "bitmex" => Ids::Uuid,
        "deribit" => Ids::Seq(100_000_000 + c.rng.below(200_000_000)),
        _ => Ids::None,
    };
    let sigma_day = c.market.start_ticks as f64 * c.market.daily_vol;
    let mut mid = c.market.start_ticks as f64;
    let mut prev = c.day_start;
    let mut i = 0;
    while i < c.rows {
        // Liquidations cascade: one move trips several positions on the same side.
        let k = if c.rng.chance(0.6) {
            1
        } else {
            2 + c.rng.geometric(0.3) as usize
        }
        .min(c.rows - i);
        let start = c.timeline.group_start(&mut c.rng, i);
        let dt = (start - prev) as f64 / DAY_US as f64;
        prev = start;
        mid = (mid + sigma_day * dt.sqrt() * c.rng.normal()).max(10.0);
        // `sell` = a long was liquidated (its position is sold into a falling market).
        let sell = c.rng.chance(0.5);
        let mut level = mid.round() as i64;
        let mut local = start;
        let mut ts = c.latency.exchange_ts(&mut c.rng, start);
        for j in 0..k {
            if j > 0 {
                local = c.timeline.clamp(local + c.rng.below(400_000) as i64);
                ts = c.latency.exchange_ts(&mut c.rng, local);
                let step = c.rng.below(4) as i64;
                level = (level + if sell { -step } else { step }).max(1);
            }
            out.start(ts, local);
            match &mut ids {
                Ids::None => out.empty(),
                Ids::Uuid => {
                    out.buf.push(b',');
                    push_uuid(&mut out.buf, &mut c.rng);
                }
                Ids::Seq(n) => {
                    *n += 1 + c.rng.below(5_000);
                    out.uint(*n);
                }
            }
            out.str(if sell { b"sell" } else { b"buy" });
            out.dec(c.market.price(level), c.market.price_scale);
            let lots = c.market.size(&mut c.rng) * (1 + c.rng.below(4) as i64);
            out.dec(c.market.amount(lots), c.market.amount_scale);
            out.end()?;
        }
        i += k;
    }
    Ok(())
}
