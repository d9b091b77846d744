//! Derived chunks: what is computed from a raw chunk and cached like one. A derivation names
//! the computation and its version, so that a cache entry made by another version of the
//! computation is never taken for this one's.

use std::fmt;
use std::str::FromStr;

/// Version of the bars derivation: bump it whenever the fold or the derived chunk's columns
/// change meaning; older entries then become misses (their paths differ).
pub const BARS_VERSION: u32 = 1;

/// Microseconds in a UTC day.
pub const DAY_MICROS: i64 = 86_400_000_000;

/// A bar length that divides a UTC day (`1s` … `12h`, `1d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interval {
    secs: u32,
}

impl Interval {
    /// The interval of `secs` seconds, if it divides a day.
    pub fn from_secs(secs: u32) -> Option<Self> {
        (secs > 0 && 86_400 % secs == 0).then_some(Self { secs })
    }

    /// Its length in seconds.
    pub fn secs(self) -> u32 {
        self.secs
    }

    /// Its length in microseconds.
    pub fn micros(self) -> i64 {
        i64::from(self.secs) * 1_000_000
    }

    /// Start of the interval holding instant `t` (µs): intervals are aligned on the epoch,
    /// hence on every UTC midnight.
    pub fn floor(self, t: i64) -> i64 {
        t - t.rem_euclid(self.micros())
    }

    /// Intervals in a day.
    pub fn per_day(self) -> usize {
        (86_400 / self.secs) as usize
    }
}

impl fmt::Display for Interval {
    /// The shortest exact spelling: `90s`, `1m`, `15m`, `4h`, `1d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.secs;
        match s {
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3_600) => write!(f, "{}h", s / 3_600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl FromStr for Interval {
    type Err = String;

    /// `N` followed by `s`, `m`, `h` or `d`; the length must divide a day.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let s = raw.trim();
        let bad = || {
            format!(
                "invalid interval '{raw}': expected a length that divides a day, such as 1s, 1m, 5m, 15m, 1h, 4h or 1d"
            )
        };
        let unit = s.chars().last().ok_or_else(bad)?;
        let n: u32 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
        let mult = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).and_then(Self::from_secs).ok_or_else(bad)
    }
}

/// Which timestamp puts a trade in its bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum BarTime {
    /// The exchange's `timestamp` (the default).
    #[default]
    Timestamp,
    /// Tardis's arrival time, `local_timestamp`.
    LocalTimestamp,
}

impl BarTime {
    /// The column name.
    pub fn as_str(self) -> &'static str {
        match self {
            BarTime::Timestamp => "timestamp",
            BarTime::LocalTimestamp => "local_timestamp",
        }
    }
}

impl FromStr for BarTime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "timestamp" => Ok(BarTime::Timestamp),
            "local_timestamp" => Ok(BarTime::LocalTimestamp),
            other => Err(format!("invalid --by '{other}': expected timestamp or local_timestamp")),
        }
    }
}

/// What a derived chunk holds, computed from its raw (trades) chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Derivation {
    /// The per-file partial bars of one interval ([`crate::bars`]).
    Bars {
        /// The bar length.
        interval: Interval,
        /// The timestamp bucketed by.
        by: BarTime,
    },
}

impl Derivation {
    /// The path segment of the derivation, with its version:
    /// `bars-v1-1m-timestamp`, `bars-v1-1h-local_timestamp`.
    pub fn label(&self) -> String {
        match self {
            Derivation::Bars { interval, by } => format!("bars-v{BARS_VERSION}-{interval}-{}", by.as_str()),
        }
    }

    /// Parses [`Self::label`] (only the current version).
    pub fn parse_label(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(&format!("bars-v{BARS_VERSION}-"))?;
        let (interval, by) = rest.split_once('-')?;
        let interval: Interval = interval.parse().ok()?;
        let d = Derivation::Bars {
            interval,
            by: by.parse().ok()?,
        };
        // Only the canonical spelling (`1m`, never `60s`) names a key.
        (d.label() == s).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_divide_a_day_and_print_canonically() {
        for (raw, secs, shown) in [
            ("1s", 1, "1s"),
            ("60s", 60, "1m"),
            ("5m", 300, "5m"),
            ("90m", 5400, "90m"),
            ("4h", 14_400, "4h"),
            ("1d", 86_400, "1d"),
        ] {
            let i: Interval = raw.parse().unwrap();
            assert_eq!((i.secs(), i.to_string().as_str()), (secs, shown), "{raw}");
        }
        for bad in ["", "7m", "2d", "0m", "1w", "m", "-1m", "5 m", "13h"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
    }

    #[test]
    fn floors_align_on_midnight_before_and_after_the_epoch() {
        let m: Interval = "1m".parse().unwrap();
        assert_eq!(m.floor(59_999_999), 0);
        assert_eq!(m.floor(60_000_000), 60_000_000);
        assert_eq!(m.floor(-1), -60_000_000);
        let d: Interval = "1d".parse().unwrap();
        assert_eq!(d.floor(DAY_MICROS * 3 + 5), DAY_MICROS * 3);
    }

    #[test]
    fn labels_round_trip_and_carry_the_version() {
        let d = Derivation::Bars {
            interval: "15m".parse().unwrap(),
            by: BarTime::LocalTimestamp,
        };
        assert_eq!(d.label(), "bars-v1-15m-local_timestamp");
        assert_eq!(Derivation::parse_label(&d.label()), Some(d));
        assert_eq!(Derivation::parse_label("bars-v0-15m-timestamp"), None);
        assert_eq!(Derivation::parse_label("bars-v1-60s-timestamp"), None);
        assert_eq!(Derivation::parse_label("bars-v1-1m-open"), None);
    }
}
