//! The fold: trades into partial bars, one file (day) at a time, in file order.
//!
//! A [`Partial`] is the aggregate of some trades of one interval. Folding a trade into it and
//! combining two partials are the same operation ([`Partial::combine`] with a one-trade
//! partial adds exactly the numbers a trade adds), so a bar folded from the trades of one
//! file and then continued with the single trades of the next file is bit for bit the bar a
//! plain fold over all its trades in file order makes.
//!
//! [`DayFold`] folds one raw trades file for one interval: trades whose interval lies inside
//! the file's UTC day are folded into one partial per interval; a trade whose interval lies
//! outside the day (a trade timestamped before midnight that arrived after it, or the reverse)
//! is kept as a one-trade partial of its own: the *spill*, combined with the neighbouring
//! day's partials when bars are assembled ([`super::assemble`]). Memory: one partial per
//! interval of the day plus the spill, whatever the file's size.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};

use crate::model::{BarTime, DAY_MICROS, Interval};

/// Which side took liquidity, as Tardis writes it (`buy`, `sell`, `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The buyer was the taker.
    Buy,
    /// The seller was the taker.
    Sell,
    /// Not given by the exchange.
    Unknown,
}

impl Side {
    /// Tardis's `side` value.
    pub fn parse(s: &[u8]) -> Self {
        match s {
            b"buy" => Side::Buy,
            b"sell" => Side::Sell,
            _ => Side::Unknown,
        }
    }
}

/// The aggregate of some trades of one interval, in file order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Partial {
    /// Price of the first trade.
    pub open: f64,
    /// Highest price.
    pub high: f64,
    /// Lowest price.
    pub low: f64,
    /// Price of the last trade.
    pub close: f64,
    /// Sum of amounts.
    pub volume: f64,
    /// Sum of price × amount.
    pub quote_volume: f64,
    /// Trades.
    pub trades: u64,
    /// Sum of the amounts of buyer-initiated trades.
    pub buy_volume: f64,
    /// Sum of the amounts of seller-initiated trades.
    pub sell_volume: f64,
}

impl Partial {
    /// The partial of one trade.
    pub fn trade(price: f64, amount: f64, side: Side) -> Self {
        Self {
            open: price,
            high: price,
            low: price,
            close: price,
            volume: amount,
            quote_volume: price * amount,
            trades: 1,
            buy_volume: if side == Side::Buy { amount } else { 0.0 },
            sell_volume: if side == Side::Sell { amount } else { 0.0 },
        }
    }

    /// Appends `later` (trades that come after this partial's in file order).
    pub fn combine(&mut self, later: &Partial) {
        self.high = self.high.max(later.high);
        self.low = self.low.min(later.low);
        self.close = later.close;
        self.volume += later.volume;
        self.quote_volume += later.quote_volume;
        self.trades += later.trades;
        // A one-trade partial of the other side carries 0.0: adding it changes nothing.
        self.buy_volume += later.buy_volume;
        self.sell_volume += later.sell_volume;
    }

    /// Folds one trade in.
    #[inline]
    pub fn add(&mut self, price: f64, amount: f64, side: Side) {
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        self.volume += amount;
        self.quote_volume += price * amount;
        self.trades += 1;
        match side {
            Side::Buy => self.buy_volume += amount,
            Side::Sell => self.sell_volume += amount,
            Side::Unknown => {}
        }
    }

    /// Volume-weighted average price, `None` without volume.
    pub fn vwap(&self) -> Option<f64> {
        (self.volume != 0.0).then(|| self.quote_volume / self.volume)
    }
}

/// A partial bar and the start of its interval (µs).
pub type Row = (i64, Partial);

/// Indices of the columns the fold reads in a trades batch.
#[derive(Debug, Clone, Copy)]
pub struct TradeColumns {
    /// The timestamp bucketed by.
    pub time: usize,
    /// `side`.
    pub side: usize,
    /// `price`.
    pub price: usize,
    /// `amount`.
    pub amount: usize,
}

impl TradeColumns {
    /// The columns in the full trades schema
    /// (`exchange,symbol,timestamp,local_timestamp,id,side,price,amount`).
    pub fn full(by: BarTime) -> Self {
        Self {
            time: if by == BarTime::Timestamp { 2 } else { 3 },
            side: 5,
            price: 6,
            amount: 7,
        }
    }
}

/// Why a batch cannot be folded.
#[derive(Debug, thiserror::Error)]
#[error("not a trades batch: column {0} is missing or mistyped")]
pub struct NotTrades(pub &'static str);

/// Folds one trades file (one UTC day) into the partial bars of one interval.
#[derive(Debug)]
pub struct DayFold {
    interval: Interval,
    day_start: i64,
    /// One partial per interval of the day, by index.
    in_day: Vec<Option<Partial>>,
    /// One-trade partials of intervals outside the day, in file order.
    spill: Vec<Row>,
}

impl DayFold {
    /// A fold of the file of the day starting at `day_start` (µs).
    pub fn new(interval: Interval, day_start: i64) -> Self {
        Self {
            interval,
            day_start,
            in_day: vec![None; interval.per_day()],
            spill: Vec::new(),
        }
    }

    /// Folds one trade at time `t` (µs).
    #[inline]
    pub fn push(&mut self, t: i64, price: f64, amount: f64, side: Side) {
        let offset = t - self.day_start;
        if (0..DAY_MICROS).contains(&offset) {
            let i = (offset / self.interval.micros()) as usize;
            match &mut self.in_day[i] {
                Some(p) => p.add(price, amount, side),
                slot @ None => *slot = Some(Partial::trade(price, amount, side)),
            }
        } else {
            self.spill
                .push((self.interval.floor(t), Partial::trade(price, amount, side)));
        }
    }

    /// Folds a batch of trades (rows in file order).
    ///
    /// # Errors
    /// [`NotTrades`] when a column is missing or of another type.
    pub fn push_batch(&mut self, batch: &RecordBatch, cols: TradeColumns) -> Result<(), NotTrades> {
        let col = |i: usize, name| batch.columns().get(i).ok_or(NotTrades(name));
        let time = col(cols.time, "timestamp")?
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or(NotTrades("timestamp"))?;
        let price = col(cols.price, "price")?
            .as_primitive_opt::<Float64Type>()
            .ok_or(NotTrades("price"))?;
        let amount = col(cols.amount, "amount")?
            .as_primitive_opt::<Float64Type>()
            .ok_or(NotTrades("amount"))?;
        let side = col(cols.side, "side")?
            .as_string_opt::<i32>()
            .ok_or(NotTrades("side"))?;
        if time.null_count() + price.null_count() + amount.null_count() > 0 {
            return Err(NotTrades("timestamp, price or amount (null values)"));
        }
        let (t, p, a) = (time.values(), price.values(), amount.values());
        for i in 0..batch.num_rows() {
            let s = if side.is_null(i) {
                Side::Unknown
            } else {
                Side::parse(side.value(i).as_bytes())
            };
            self.push(t[i], p[i], a[i], s);
        }
        Ok(())
    }

    /// The partial bars, ordered by interval start; the spill's trades of one interval stay
    /// in file order.
    pub fn finish(self) -> Vec<Row> {
        let Self {
            interval,
            day_start,
            in_day,
            mut spill,
        } = self;
        // Stable: ties keep file order.
        spill.sort_by_key(|(t, _)| *t);
        let split = spill.partition_point(|(t, _)| *t < day_start);
        let mut rows = Vec::with_capacity(spill.len() + in_day.len());
        rows.extend_from_slice(&spill[..split]);
        rows.extend(
            in_day
                .into_iter()
                .enumerate()
                .filter_map(|(i, p)| p.map(|p| (day_start + i as i64 * interval.micros(), p))),
        );
        rows.extend_from_slice(&spill[split..]);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: i64 = 60_000_000;

    fn minute() -> Interval {
        "1m".parse().unwrap()
    }

    #[test]
    fn a_bar_is_first_last_extremes_and_sums_in_file_order() {
        let mut f = DayFold::new(minute(), 0);
        // Out of time order within the minute: open and close follow the file.
        f.push(30_000_000, 10.0, 1.0, Side::Buy);
        f.push(10_000_000, 12.0, 2.0, Side::Sell);
        f.push(50_000_000, 9.0, 0.5, Side::Unknown);
        f.push(M + 1, 11.0, 3.0, Side::Buy);
        let rows = f.finish();
        assert_eq!(rows.len(), 2);
        let (t, b) = rows[0];
        assert_eq!(t, 0);
        assert_eq!((b.open, b.high, b.low, b.close), (10.0, 12.0, 9.0, 9.0));
        assert_eq!((b.volume, b.trades, b.buy_volume, b.sell_volume), (3.5, 3, 1.0, 2.0));
        assert_eq!(b.quote_volume, 10.0 + 24.0 + 4.5);
        assert_eq!(rows[1].0, M);
        assert_eq!(rows[1].1.trades, 1);
    }

    #[test]
    fn trades_outside_the_day_are_kept_one_by_one_in_order() {
        let day = 10 * DAY_MICROS;
        let mut f = DayFold::new(minute(), day);
        f.push(day - 1, 1.0, 1.0, Side::Buy); // late trade of yesterday's last minute
        f.push(day + 5, 2.0, 1.0, Side::Buy);
        f.push(day - 2, 3.0, 1.0, Side::Sell);
        f.push(day + DAY_MICROS, 4.0, 1.0, Side::Buy); // ahead: tomorrow's first minute
        let rows = f.finish();
        let starts: Vec<i64> = rows.iter().map(|r| r.0).collect();
        assert_eq!(starts, vec![day - M, day - M, day, day + DAY_MICROS]);
        assert_eq!((rows[0].1.open, rows[1].1.open), (1.0, 3.0), "file order kept");
    }

    #[test]
    fn continuing_with_single_trades_equals_a_plain_fold() {
        // Amounts whose sums round: the order of additions shows in the last bits.
        let trades: Vec<(f64, f64, Side)> = (0..50)
            .map(|i| {
                let side = if i % 3 == 0 { Side::Sell } else { Side::Buy };
                (100.0 + f64::from(i) * 0.01, 0.1 + f64::from(i) * 0.003, side)
            })
            .collect();
        let mut plain = Partial::trade(trades[0].0, trades[0].1, trades[0].2);
        for &(p, a, s) in &trades[1..] {
            plain.add(p, a, s);
        }
        let mut head = Partial::trade(trades[0].0, trades[0].1, trades[0].2);
        for &(p, a, s) in &trades[1..30] {
            head.add(p, a, s);
        }
        for &(p, a, s) in &trades[30..] {
            head.combine(&Partial::trade(p, a, s));
        }
        assert_eq!(head, plain);
    }

    #[test]
    fn a_daily_interval_is_the_utc_day() {
        let d: Interval = "1d".parse().unwrap();
        let mut f = DayFold::new(d, DAY_MICROS);
        f.push(DAY_MICROS, 1.0, 1.0, Side::Buy);
        f.push(2 * DAY_MICROS - 1, 2.0, 1.0, Side::Buy);
        f.push(DAY_MICROS - 1, 3.0, 1.0, Side::Buy);
        let rows = f.finish();
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, DAY_MICROS]);
        assert_eq!(rows[1].1.trades, 2);
    }
}
