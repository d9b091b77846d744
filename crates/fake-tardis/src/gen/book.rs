//! Order-book data: `incremental_book_L2`, `book_snapshot_25`/`_5`, `quotes` and
//! `book_ticker`, all driven by one simulated limit order book so that snapshots, best
//! quotes and level updates stay consistent (asks above bids, deletions of existing levels).

use std::io::{self, Write};

use super::market::Market;
use super::rng::Rng;
use super::{Ctx, Rows};

const BID: usize = 0;
const ASK: usize = 1;

/// One level change: the level's new absolute amount (0 = deleted) and its index from the
/// best price at the time of the change.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change {
    side: usize,
    price: i64,
    amount: i64,
    level: usize,
}

/// Price levels per side, best first (bids descending, asks ascending), prices in ticks and
/// amounts in lots. Sides hold at most ~60 levels, so `Vec` insertion is cheaper than a map.
#[derive(Debug)]
pub(crate) struct Book {
    sides: [Vec<(i64, i64)>; 2],
    /// Depth each side drifts around.
    target: usize,
    /// Persistent bias of sweeps towards the ask (price up) or the bid (price down).
    trend: f64,
}

impl Book {
    pub(crate) fn new(rng: &mut Rng, m: &Market, levels: usize, target: usize) -> Book {
        let mid = m.start_ticks;
        let gap = |rng: &mut Rng| {
            if rng.chance(0.7) { 1 } else { 2 + rng.below(3) as i64 }
        };
        let mut bids = Vec::with_capacity(levels + 16);
        let mut asks = Vec::with_capacity(levels + 16);
        let (mut b, mut a) = (mid, mid + 1);
        for _ in 0..levels {
            bids.push((b, level_size(rng, m)));
            asks.push((a, level_size(rng, m)));
            b = (b - gap(rng)).max(1);
            a += gap(rng);
        }
        Book {
            sides: [bids, asks],
            target,
            trend: 0.0,
        }
    }

    fn better(side: usize, a: i64, b: i64) -> bool {
        if side == BID { a > b } else { a < b }
    }

    /// Price one step `d` ticks further from the best on `side`.
    fn deeper(side: usize, p: i64, d: i64) -> i64 {
        if side == BID { (p - d).max(1) } else { p + d }
    }

    /// Applies one random book event and appends the level changes it caused.
    pub(crate) fn step(&mut self, rng: &mut Rng, m: &Market, out: &mut Vec<Change>) {
        if rng.chance(0.0005) {
            self.trend = (rng.f64() - 0.5) * 0.3;
        }
        let spread = match (self.sides[BID].first(), self.sides[ASK].first()) {
            (Some(b), Some(a)) => a.0 - b.0,
            _ => 1,
        };
        // A wide spread gets filled quickly, as market makers step in.
        let fill = match spread {
            ..=1 => 0.0,
            2 => 0.3,
            _ => 0.6,
        };
        if rng.chance(fill) {
            let side = rng.below(2) as usize;
            let inside = rng.range_i64(1, spread - 1);
            let price = if side == BID {
                self.sides[BID][0].0 + inside
            } else {
                self.sides[ASK][0].0 - inside
            };
            self.insert_at(side, 0, price, level_size(rng, m), out);
            return;
        }
        let r = rng.f64();
        let side = if (0.62..0.72).contains(&r) {
            // Sweeps follow the trend: taking out asks moves the price up.
            usize::from(rng.chance(0.5 + self.trend))
        } else {
            rng.below(2) as usize
        };
        let len = self.sides[side].len();
        let mut op = if r < 0.50 {
            Op::Modify
        } else if r < 0.62 {
            Op::Delete
        } else if r < 0.72 {
            Op::Sweep
        } else {
            Op::Insert
        };
        if len < self.target.saturating_sub(10).max(6) && matches!(op, Op::Delete | Op::Sweep) {
            op = Op::Insert;
        }
        if len > self.target + 10 && op == Op::Insert {
            op = Op::Delete;
        }
        if len == 0 {
            op = Op::Insert;
        }
        match op {
            Op::Modify => {
                let k = (rng.geometric(0.35) as usize).min(len - 1);
                let (price, old) = self.sides[side][k];
                let mut new = level_size(rng, m);
                if new == old {
                    new += 1;
                }
                self.sides[side][k].1 = new;
                out.push(Change {
                    side,
                    price,
                    amount: new,
                    level: k,
                });
            }
            Op::Delete | Op::Sweep => {
                let k = if op == Op::Sweep || len < 2 {
                    0
                } else {
                    (1 + rng.geometric(0.25) as usize).min(len - 1)
                };
                let (price, _) = self.sides[side].remove(k);
                out.push(Change {
                    side,
                    price,
                    amount: 0,
                    level: k,
                });
            }
            Op::Insert => {
                let mut k = 1 + rng.geometric(0.2) as usize;
                loop {
                    let levels = &self.sides[side];
                    if k >= levels.len() {
                        let price = match levels.last() {
                            Some(&(p, _)) => Self::deeper(side, p, 1 + rng.below(3) as i64),
                            None => {
                                let other = &self.sides[1 - side];
                                match other.first() {
                                    Some(&(p, _)) => Self::deeper(side, p, 1),
                                    None => m.start_ticks,
                                }
                            }
                        };
                        let at = levels.len();
                        self.insert_at(side, at, price, level_size(rng, m), out);
                        break;
                    }
                    let (outer, inner) = (levels[k - 1].0, levels[k].0);
                    if (outer - inner).abs() >= 2 {
                        let d = rng.range_i64(1, (outer - inner).abs() - 1);
                        let price = Self::deeper(side, outer, d);
                        self.insert_at(side, k, price, level_size(rng, m), out);
                        break;
                    }
                    k += 1;
                }
            }
        }
        // Keep the depth bounded: the deepest level falls out of the published window.
        for s in [BID, ASK] {
            if self.sides[s].len() > self.target + 20 {
                let k = self.sides[s].len() - 1;
                let (price, _) = self.sides[s].remove(k);
                out.push(Change {
                    side: s,
                    price,
                    amount: 0,
                    level: k,
                });
            }
        }
    }

    fn insert_at(&mut self, side: usize, k: usize, price: i64, amount: i64, out: &mut Vec<Change>) {
        debug_assert!(k == 0 || Self::better(side, self.sides[side][k - 1].0, price));
        self.sides[side].insert(k, (price, amount));
        out.push(Change {
            side,
            price,
            amount,
            level: k,
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Modify,
    Delete,
    Sweep,
    Insert,
}

/// Resting size at a level: several typical orders stacked.
fn level_size(rng: &mut Rng, m: &Market) -> i64 {
    m.size(rng) * (1 + rng.below(10) as i64)
}

/// How many level updates one exchange message carries.
fn message_len(rng: &mut Rng) -> usize {
    if rng.chance(0.5) {
        1
    } else if rng.chance(0.97) {
        2 + rng.geometric(0.4) as usize
    } else {
        10 + rng.below(30) as usize
    }
}

fn side_name(side: usize) -> &'static [u8] {
    if side == BID { b"bid" } else { b"ask" }
}

pub(crate) fn incremental_l2<W: Write>(c: &mut Ctx, out: &mut Rows<W>) -> io::Result<()> {
    let mut book = Book::new(&mut c.rng, &c.market, 25, 40);
    // The day opens with a full snapshot (all rows of one message), asks then bids.
    let local = c.timeline.clamp(c.day_start + 20_000 + c.rng.below(400_000) as i64);
    let ts = c.latency.exchange_ts(&mut c.rng, local);
    let snap = c.rows.min(50);
    let asks = snap.div_ceil(2);
    let rows = (0..asks).map(|k| (ASK, k)).chain((0..snap - asks).map(|k| (BID, k)));
    for (side, k) in rows {
        let (price, lots) = book.sides[side][k];
        out.start(ts, local);
        out.str(b"true");
        out.str(side_name(side));
        out.dec(c.market.price(price), c.market.price_scale);
        out.dec(c.market.amount(lots), c.market.amount_scale);
        out.end()?;
    }
    let mut i = snap;
    let mut changes = Vec::new();
    while i < c.rows {
        let k = message_len(&mut c.rng);
        changes.clear();
        while changes.len() < k {
            book.step(&mut c.rng, &c.market, &mut changes);
        }
        let local = c.timeline.group_start(&mut c.rng, i);
        let ts = c.latency.exchange_ts(&mut c.rng, local);
        for ch in changes.iter().take(c.rows - i) {
            out.start(ts, local);
            out.str(b"false");
            out.str(side_name(ch.side));
            out.dec(c.market.price(ch.price), c.market.price_scale);
            out.dec(c.market.amount(ch.amount), c.market.amount_scale);
            out.end()?;
            i += 1;
        }
    }
    Ok(())
}

/// A stretch of rows where one side shows fewer levels than usual (a thin book, or for
/// quotes an empty side), which Tardis writes as empty cells.
struct Thin {
    side: usize,
    hide: usize,
    rows_left: usize,
}

fn maybe_thin(rng: &mut Rng, thin: &mut Option<Thin>, depth: usize, chance: f64) {
    if let Some(t) = thin {
        t.rows_left -= 1;
        if t.rows_left == 0 {
            *thin = None;
        }
    } else if rng.chance(chance) {
        let hide = if depth == 1 {
            1
        } else {
            1 + rng.below(depth.min(4) as u64 - 1) as usize
        };
        *thin = Some(Thin {
            side: rng.below(2) as usize,
            hide,
            rows_left: 1 + rng.below(if depth == 1 { 4 } else { 40 }) as usize,
        });
    }
}

/// Writes one top-`depth` row per message that changed a level inside the window.
fn top_of_book<W: Write>(c: &mut Ctx, out: &mut Rows<W>, depth: usize, quotes: bool) -> io::Result<()> {
    let mut book = Book::new(&mut c.rng, &c.market, 40, 40);
    let mut changes = Vec::new();
    let mut thin: Option<Thin> = None;
    let thin_chance = if quotes { 0.0004 } else { 0.002 };
    for i in 0..c.rows {
        if i > 0 {
            loop {
                changes.clear();
                book.step(&mut c.rng, &c.market, &mut changes);
                if changes.iter().any(|ch| ch.level < depth) {
                    break;
                }
            }
        }
        maybe_thin(&mut c.rng, &mut thin, depth, thin_chance);
        let local = c.timeline.group_start(&mut c.rng, i);
        let ts = c.latency.exchange_ts(&mut c.rng, local);
        out.start(ts, local);
        let shown = |side: usize| -> usize {
            let have = book.sides[side].len().min(depth);
            match &thin {
                Some(t) if t.side == side => have.min(depth - t.hide),
                _ => have,
            }
        };
        let (nb, na) = (shown(BID), shown(ASK));
        let m = &c.market;
        if quotes {
            // Column order: ask_amount, ask_price, bid_price, bid_amount.
            if na > 0 {
                let (p, a) = book.sides[ASK][0];
                out.dec(m.amount(a), m.amount_scale);
                out.dec(m.price(p), m.price_scale);
            } else {
                out.empty();
                out.empty();
            }
            if nb > 0 {
                let (p, a) = book.sides[BID][0];
                out.dec(m.price(p), m.price_scale);
                out.dec(m.amount(a), m.amount_scale);
            } else {
                out.empty();
                out.empty();
            }
        } else {
            for k in 0..depth {
                for (side, n) in [(ASK, na), (BID, nb)] {
                    if k < n {
                        let (p, a) = book.sides[side][k];
                        out.dec(m.price(p), m.price_scale);
                        out.dec(m.amount(a), m.amount_scale);
                    } else {
                        out.empty();
                        out.empty();
                    }
                }
            }
        }
        out.end()?;
    }
    Ok(())
}

pub(crate) fn snapshots<W: Write>(c: &mut Ctx, out: &mut Rows<W>, depth: usize) -> io::Result<()> {
    top_of_book(c, out, depth, false)
}

pub(crate) fn quotes<W: Write>(c: &mut Ctx, out: &mut Rows<W>) -> io::Result<()> {
    top_of_book(c, out, 1, true)
}
