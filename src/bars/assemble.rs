//! Assembling one symbol's bars from its per-day derived chunks.
//!
//! The derived chunks of consecutive days are pushed in day order (the order of the files,
//! which is arrival order), so the partials of one interval combine in file order: the spill a
//! file holds for the previous day's last intervals is appended to that day's partials, one
//! trade at a time, exactly as a plain fold over the trades of both files would. After the
//! chunk of day `d` is pushed, no later file can hold a trade of an interval before `d`'s
//! midnight (a trade arrives within a day of its timestamp), so those bars are final and
//! leave: memory holds about two days of bars.

use std::collections::BTreeMap;

use super::fold::{Partial, Row};
use crate::model::Interval;

/// One output bar: its interval's start and the aggregate; `trades == 0` for an interval
/// added by `--fill` (open, high, low and close the previous close, zero volumes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Start of the interval (µs).
    pub open_time: i64,
    /// The aggregate.
    pub partial: Partial,
}

impl Bar {
    fn filled(open_time: i64, close: f64) -> Self {
        Self {
            open_time,
            partial: Partial {
                open: close,
                high: close,
                low: close,
                close,
                volume: 0.0,
                quote_volume: 0.0,
                trades: 0,
                buy_volume: 0.0,
                sell_volume: 0.0,
            },
        }
    }
}

/// Combines one symbol's derived chunks, day by day, into final bars.
#[derive(Debug)]
pub struct Assembler {
    interval: Interval,
    /// Bars start in `[lo, hi)`: the intervals wholly inside the range.
    lo: i64,
    hi: i64,
    fill: bool,
    pending: BTreeMap<i64, Partial>,
    /// Bars before this were emitted.
    sealed: i64,
    /// The last bar emitted: its start and close.
    last: Option<(i64, f64)>,
    /// Trades that arrived more than a day after their interval (not in any bar).
    pub late_trades: u64,
}

impl Assembler {
    /// Bars of `interval` wholly inside `[from, to)` (µs), with empty intervals filled after
    /// the first trade when `fill`.
    pub fn new(interval: Interval, from: i64, to: i64, fill: bool) -> Self {
        let lo = interval.floor(from + interval.micros() - 1);
        let hi = interval.floor(to);
        Self {
            interval,
            lo,
            hi,
            fill,
            pending: BTreeMap::new(),
            sealed: i64::MIN,
            last: None,
            late_trades: 0,
        }
    }

    /// Adds a day's derived rows (the days in order).
    pub fn push_day(&mut self, rows: &[Row]) {
        for (t, p) in rows {
            if *t < self.lo || *t >= self.hi {
                continue;
            }
            if *t < self.sealed {
                self.late_trades += p.trades;
                continue;
            }
            self.pending.entry(*t).and_modify(|acc| acc.combine(p)).or_insert(*p);
        }
    }

    /// Emits the bars that start before `t` (no later day can change them).
    pub fn seal_before(&mut self, t: i64, emit: &mut impl FnMut(Bar)) {
        let keep = self.pending.split_off(&t);
        let done = std::mem::replace(&mut self.pending, keep);
        for (open_time, partial) in done {
            self.emit(Bar { open_time, partial }, emit);
        }
        self.sealed = self.sealed.max(t);
    }

    /// Emits the rest, and the filled intervals up to the end of the range.
    pub fn finish(mut self, emit: &mut impl FnMut(Bar)) -> u64 {
        self.seal_before(self.hi, emit);
        if self.fill
            && let Some((last, close)) = self.last
        {
            let step = self.interval.micros();
            let mut t = last + step;
            while t < self.hi {
                emit(Bar::filled(t, close));
                t += step;
            }
        }
        self.late_trades
    }

    fn emit(&mut self, bar: Bar, emit: &mut impl FnMut(Bar)) {
        if self.fill
            && let Some((last, close)) = self.last
        {
            let step = self.interval.micros();
            let mut t = last + step;
            while t < bar.open_time {
                emit(Bar::filled(t, close));
                t += step;
            }
        }
        self.last = Some((bar.open_time, bar.partial.close));
        emit(bar);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::fold::{DayFold, Side};
    use crate::model::DAY_MICROS;

    const M: i64 = 60_000_000;

    fn run(days: &[Vec<Row>], from: i64, to: i64, fill: bool) -> Vec<Bar> {
        let mut a = Assembler::new("1m".parse().unwrap(), from, to, fill);
        let mut out = Vec::new();
        for (i, rows) in days.iter().enumerate() {
            a.push_day(rows);
            a.seal_before(from - DAY_MICROS + i as i64 * DAY_MICROS, &mut |b| out.push(b));
        }
        a.finish(&mut |b| out.push(b));
        out
    }

    fn fold(day: i64, trades: &[(i64, f64, f64)]) -> Vec<Row> {
        let mut f = DayFold::new("1m".parse().unwrap(), day);
        for &(t, p, a) in trades {
            f.push(t, p, a, Side::Buy);
        }
        f.finish()
    }

    #[test]
    fn a_boundary_bar_gets_the_late_trades_of_the_next_file_last() {
        let d1 = DAY_MICROS;
        let d2 = 2 * DAY_MICROS;
        let before = fold(0, &[]);
        let day1 = fold(d1, &[(d1 + 5, 1.0, 1.0), (d2 - 10, 2.0, 0.1)]);
        // In the next file: two trades of day 1's last minute, then day 2's own.
        let day2 = fold(d2, &[(d2 - 3, 3.0, 0.2), (d2 + 1, 5.0, 1.0), (d2 - 2, 1.5, 0.3)]);
        let after = fold(d2 + DAY_MICROS, &[]);
        let bars = run(&[before, day1, day2, after], d1, d2, false);
        assert_eq!(bars.len(), 2, "day 2's own trade is outside the range");
        let last = bars[1];
        assert_eq!(last.open_time, d2 - M);
        assert_eq!((last.partial.open, last.partial.close), (2.0, 1.5));
        assert_eq!((last.partial.low, last.partial.high), (1.5, 3.0));
        assert_eq!(last.partial.trades, 3);
        assert_eq!(last.partial.volume, 0.1 + 0.2 + 0.3);
    }

    #[test]
    fn fill_carries_the_close_over_empty_intervals_and_days() {
        let d1 = DAY_MICROS;
        let day1 = fold(d1, &[(d1 + M, 7.0, 1.0)]);
        let day2 = fold(2 * d1, &[]);
        let bars = run(&[vec![], day1, day2, vec![]], d1, 3 * d1, true);
        // From the first trade's minute to the end of the two days, every minute.
        assert_eq!(bars.len() as i64, 2 * 1440 - 1);
        assert_eq!(bars[0].partial.trades, 1);
        assert!(
            bars[1..]
                .iter()
                .all(|b| b.partial.trades == 0 && b.partial.close == 7.0)
        );
        assert!(bars.windows(2).all(|w| w[1].open_time == w[0].open_time + M));
        let without = run(
            &[vec![], fold(d1, &[(d1 + M, 7.0, 1.0)]), vec![], vec![]],
            d1,
            3 * d1,
            false,
        );
        assert_eq!(without.len(), 1);
    }

    #[test]
    fn only_intervals_wholly_inside_the_range_are_bars() {
        let d1 = DAY_MICROS;
        let day1 = fold(d1, &[(d1 + 30 * M + 5, 1.0, 1.0), (d1 + 31 * M + 5, 1.0, 1.0)]);
        let bars = run(&[vec![], day1, vec![], vec![]], d1 + 30 * M + 1, d1 + 32 * M, false);
        assert_eq!(bars.iter().map(|b| b.open_time).collect::<Vec<_>>(), vec![d1 + 31 * M]);
        let none = run(
            &[vec![], fold(d1, &[(d1 + 31 * M + 5, 1.0, 1.0)]), vec![], vec![]],
            d1,
            d1 + 32 * M - 1,
            false,
        );
        assert!(none.is_empty(), "the minute ending after the range is not a bar");
    }
}
