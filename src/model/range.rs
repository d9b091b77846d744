//! The half-open UTC time range `[from, to)` a download covers, and how `--from`/`--to` values
//! are read: absolute (`2024-01-02`, RFC 3339) or relative to an injected "now", in one grammar
//! (`today`, `yesterday`, `tomorrow`, `now`, each optionally followed by `+SPAN`/`-SPAN` in jiff's
//! friendly span format; a bare `-7d` counts from `today` when it is whole days, else from `now`).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan, Zoned};

/// Midnight UTC at the start of `date`.
pub fn day_start(date: Date) -> Timestamp {
    date.to_zoned(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::MIN)
}

/// The half-open time range `[from, to)` of a download, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// Start, inclusive.
    pub from: Timestamp,
    /// End, exclusive.
    pub to: Timestamp,
}

/// Why a `--from`/`--to` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Neither a date nor an RFC 3339 timestamp.
    #[error(
        "invalid {flag} '{value}': expected YYYY-MM-DD, an RFC 3339 timestamp such as 2024-01-02T03:04:05Z, or a relative date such as yesterday, today-7d, -7d or now-6h"
    )]
    Malformed {
        /// The flag.
        flag: &'static str,
        /// The value as given.
        value: String,
    },
    /// `--to` is not after `--from`.
    #[error("--to ({to}) must be after --from ({from})")]
    Reversed {
        /// `--from`, in UTC.
        from: String,
        /// `--to`, in UTC.
        to: String,
    },
}

/// Parses `YYYY-MM-DD` (midnight UTC), an RFC 3339 timestamp (any offset, converted to UTC),
/// or a relative date counted from the real clock (see [`parse_instant_at`]).
pub fn parse_instant(flag: &'static str, value: &str) -> Result<Timestamp, RangeError> {
    parse_instant_at(flag, value, Timestamp::now())
}

/// Parses a date as [`parse_instant`] does, relative dates counting from `now` (UTC): `today`
/// (midnight), `yesterday`, `tomorrow`, `now`, optionally followed by `+SPAN` or `-SPAN`
/// (`today-7d`, `now-6h`, `yesterday+12h`); a bare `-SPAN` counts from `today` when it is whole
/// days or weeks (`-7d`), else from `now` (`-6h`).
pub fn parse_instant_at(flag: &'static str, value: &str, now: Timestamp) -> Result<Timestamp, RangeError> {
    let v = value.trim();
    let malformed = || RangeError::Malformed {
        flag,
        value: value.to_string(),
    };
    if v.len() == 10 && v.as_bytes()[4] == b'-' {
        let date: Date = v.parse().map_err(|_| malformed())?;
        return Ok(day_start(date));
    }
    if let Ok(t) = v.parse::<Timestamp>() {
        return Ok(t);
    }
    relative(v, now).ok_or_else(malformed)
}

/// `ANCHOR`, `ANCHOR±SPAN` or `±SPAN`, or `None`.
fn relative(v: &str, now: Timestamp) -> Option<Timestamp> {
    let lower = v.to_ascii_lowercase();
    let split = lower.find(['+', '-']).unwrap_or(lower.len());
    let (anchor, offset) = lower.split_at(split);
    let offset = match offset.trim() {
        "" => None,
        o => {
            let (sign, span) = o.split_at(1);
            let span: Span = span.trim().parse().ok()?;
            Some(if sign == "-" { span.negate() } else { span })
        }
    };
    let zoned = now.to_zoned(TimeZone::UTC);
    let today = zoned.start_of_day().ok()?;
    let base: Zoned = match anchor.trim() {
        "today" => today,
        "yesterday" => today.checked_sub(1.day()).ok()?,
        "tomorrow" => today.checked_add(1.day()).ok()?,
        "now" => zoned,
        "" => match offset {
            Some(span) if whole_days(span) => today,
            Some(_) => zoned,
            None => return None,
        },
        _ => return None,
    };
    match offset {
        Some(span) => base.checked_add(span).ok().map(|z| z.timestamp()),
        None => Some(base.timestamp()),
    }
}

/// Whether a span has no unit below a day.
fn whole_days(span: Span) -> bool {
    span.get_hours() == 0
        && span.get_minutes() == 0
        && span.get_seconds() == 0
        && span.get_milliseconds() == 0
        && span.get_microseconds() == 0
        && span.get_nanoseconds() == 0
}

impl TimeRange {
    /// Builds the range; `to` defaults to `from` + 1 day, and must be after `from`.
    pub fn new(from: Timestamp, to: Option<Timestamp>) -> Result<Self, RangeError> {
        let to = match to {
            Some(t) => t,
            None => from.checked_add(24.hours()).map_err(|_| RangeError::Malformed {
                flag: "--from",
                value: from.to_string(),
            })?,
        };
        if to <= from {
            return Err(RangeError::Reversed {
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        Ok(Self { from, to })
    }

    /// The UTC days that intersect the range, in order.
    pub fn days(&self) -> Vec<Date> {
        let utc = jiff::tz::TimeZone::UTC;
        let first = self.from.to_zoned(utc.clone()).date();
        // `to` is exclusive: the last day is the one holding the instant just before `to`.
        let last = (self.to - 1.microsecond()).to_zoned(utc).date();
        let mut days = Vec::new();
        let mut d = first;
        while d <= last {
            days.push(d);
            match d.tomorrow() {
                Ok(next) => d = next,
                Err(_) => break,
            }
        }
        days
    }

    /// Whether the range covers whole UTC days only (no row filtering needed).
    pub fn is_whole_days(&self) -> bool {
        let midnight = |t: Timestamp| t.as_microsecond().rem_euclid(86_400_000_000) == 0;
        midnight(self.from) && midnight(self.to)
    }

    /// `[from, to)` in microseconds since the epoch.
    pub fn micros(&self) -> (i64, i64) {
        (self.from.as_microsecond(), self.to.as_microsecond())
    }

    /// A compact, file-name-safe rendering of one end of the range: `2024-01-02` at midnight,
    /// `20240102T030405Z` otherwise.
    pub fn label(t: Timestamp) -> String {
        if t.as_microsecond().rem_euclid(86_400_000_000) == 0 {
            t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
        } else {
            t.strftime("%Y%m%dT%H%M%SZ").to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn ranges_split_into_utc_days_with_exclusive_end() {
        let r = TimeRange::new(
            parse_instant("--from", "2024-01-30").unwrap(),
            Some(parse_instant("--to", "2024-02-02").unwrap()),
        )
        .unwrap();
        assert_eq!(r.days(), vec![date(2024, 1, 30), date(2024, 1, 31), date(2024, 2, 1)]);
        assert!(r.is_whole_days());
        let one = TimeRange::new(parse_instant("--from", "2024-02-28").unwrap(), None).unwrap();
        assert_eq!(one.days(), vec![date(2024, 2, 28)]);
        let partial = TimeRange::new(
            parse_instant("--from", "2024-01-01T12:00:00Z").unwrap(),
            Some(parse_instant("--to", "2024-01-02T00:00:01+00:00").unwrap()),
        )
        .unwrap();
        assert_eq!(partial.days(), vec![date(2024, 1, 1), date(2024, 1, 2)]);
        assert!(!partial.is_whole_days());
        assert_eq!(TimeRange::label(partial.from), "20240101T120000Z");
        assert_eq!(TimeRange::label(r.to), "2024-02-02");
    }

    #[test]
    fn relative_dates_count_from_the_injected_clock_in_utc() {
        let now: Timestamp = "2024-03-06T07:15:00Z".parse().unwrap();
        let at = |v: &str| parse_instant_at("--from", v, now).unwrap().to_string();
        assert_eq!(at("today"), "2024-03-06T00:00:00Z");
        assert_eq!(at("yesterday"), "2024-03-05T00:00:00Z");
        assert_eq!(at("tomorrow"), "2024-03-07T00:00:00Z");
        assert_eq!(at("now"), "2024-03-06T07:15:00Z");
        assert_eq!(at("today-7d"), "2024-02-28T00:00:00Z", "across a leap day");
        assert_eq!(at("-7d"), "2024-02-28T00:00:00Z", "whole days count from today");
        assert_eq!(at("-1w"), "2024-02-28T00:00:00Z");
        assert_eq!(at("now-6h"), "2024-03-06T01:15:00Z");
        assert_eq!(at("-6h"), "2024-03-06T01:15:00Z", "hours count from now");
        assert_eq!(at("Yesterday + 12h"), "2024-03-05T12:00:00Z");
        assert_eq!(at("today-1mo"), "2024-02-06T00:00:00Z");
        assert_eq!(
            at("2024-01-02"),
            "2024-01-02T00:00:00Z",
            "absolute dates ignore the clock"
        );
        // Just after midnight UTC, yesterday is still the previous UTC day.
        let early: Timestamp = "2024-03-06T00:00:01+02:00".parse().unwrap();
        assert_eq!(
            parse_instant_at("--from", "yesterday", early).unwrap().to_string(),
            "2024-03-04T00:00:00Z"
        );
    }

    #[test]
    fn offsets_convert_to_utc() {
        let t = parse_instant("--from", "2024-01-02T01:00:00+02:00").unwrap();
        assert_eq!(t, parse_instant("--from", "2024-01-01T23:00:00Z").unwrap());
    }

    #[test]
    fn bad_ranges_are_refused() {
        for bad in [
            "2024-13-01",
            "2024/01/01",
            "yesterdy",
            "",
            "2024-01-01T25:00:00Z",
            "today-",
            "-",
            "now-6",
            "today-7x",
            "7d",
        ] {
            assert!(
                matches!(parse_instant("--from", bad), Err(RangeError::Malformed { .. })),
                "{bad}"
            );
        }
        let a = parse_instant("--from", "2024-01-02").unwrap();
        let b = parse_instant("--to", "2024-01-01").unwrap();
        assert!(matches!(TimeRange::new(a, Some(b)), Err(RangeError::Reversed { .. })));
        assert!(matches!(TimeRange::new(a, Some(a)), Err(RangeError::Reversed { .. })));
    }
}
