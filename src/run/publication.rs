//! Which days of a request Tardis has published: a day is final once `datasets.exportedUntil`
//! (from the exchange's metadata) has passed its end. An unpublished day is withheld from the
//! run (exit code 3), waited for (`--wait`, polling the metadata with backoff) or used and
//! marked (`--allow-incomplete`). Without metadata (`--no-validate` and the API down) a day is
//! taken as final a full day after it ends (exports land about 6 h after midnight UTC).

use std::time::Duration;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use tracing::{info, warn};

use crate::metadata::{Freshness, Metadata};
use crate::model::day_start;

/// What is known about the publication of a request's days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Publication {
    /// `datasets.exportedUntil` of the exchange, when the metadata gave it.
    pub exported_until: Option<Timestamp>,
    /// No metadata: days count as final a full day after they end.
    pub assumed: bool,
    /// The request's days that are not final yet, in order.
    pub incomplete: Vec<Date>,
}

impl Publication {
    /// The days of `days` not final by `exported_until` from the metadata (without it, see
    /// [`Self::assumed`]).
    pub fn new(exported_until: Option<Timestamp>, days: &[Date], now: Timestamp) -> Self {
        let Some(t) = exported_until else {
            return Self::assumed(None, days, now);
        };
        let day_end = |d: Date| day_start(d) + SignedDuration::from_hours(24);
        Self {
            exported_until,
            assumed: false,
            incomplete: days.iter().copied().filter(|d| day_end(*d) > t).collect(),
        }
    }

    /// Without fresh metadata (`--no-validate`): a day is final when a cached
    /// `exported_until` covers it or it ended a full day ago.
    pub fn assumed(cached: Option<Timestamp>, days: &[Date], now: Timestamp) -> Self {
        let day_end = |d: Date| day_start(d) + SignedDuration::from_hours(24);
        let incomplete = days
            .iter()
            .copied()
            .filter(|d| {
                let by_metadata = cached.is_some_and(|t| day_end(*d) <= t);
                let by_clock = day_end(*d) + SignedDuration::from_hours(24) <= now;
                !(by_metadata || by_clock)
            })
            .collect();
        Self {
            exported_until: cached,
            assumed: true,
            incomplete,
        }
    }

    /// Whether `day` is final.
    pub fn is_final(&self, day: Date) -> bool {
        !self.incomplete.contains(&day)
    }

    /// `2024-03-02, 2024-03-03 (Tardis has exported binance-futures until …)`.
    pub fn describe(&self, exchange: &str) -> String {
        let days: Vec<String> = self.incomplete.iter().map(ToString::to_string).collect();
        let days = if days.len() > 6 {
            format!("{} … {} ({} days)", days[0], days[days.len() - 1], days.len())
        } else {
            days.join(", ")
        };
        match (self.exported_until, self.assumed) {
            (Some(t), false) => format!(
                "{days} (Tardis has exported {exchange} until {})",
                super::validate::iso(t)
            ),
            (Some(t), true) => format!(
                "{days} (--no-validate: the cached metadata says {exchange} is exported until {}, and a day counts as published a full day after it ends)",
                super::validate::iso(t)
            ),
            (None, _) => format!(
                "{days} (--no-validate and no cached metadata: a day counts as published a full day after it ends)"
            ),
        }
    }
}

/// Delays between metadata polls while waiting `total`: from `total / 64` (1 s to 60 s),
/// doubling up to 15 minutes.
pub fn poll_delays(total: Duration) -> impl Iterator<Item = Duration> {
    let first = (total / 64).clamp(Duration::from_secs(1), Duration::from_secs(60));
    std::iter::successors(Some(first), |d| Some((*d * 2).min(Duration::from_secs(15 * 60))))
}

/// Polls the exchange's metadata until every day of `days` is exported or `total` has passed;
/// returns the last publication seen. Failed polls are retried (honouring `Retry-After`)
/// and then waited out like any other.
pub(crate) async fn wait_for_export(meta: &Metadata, exchange: &str, days: &[Date], total: Duration) -> Publication {
    let deadline = tokio::time::Instant::now() + total;
    let mut last: Option<Timestamp> = None;
    let mut delays = poll_delays(total);
    loop {
        match meta.exchange(exchange, Freshness::Now).await {
            Ok(d) => last = d.value.exported_until().or(last),
            Err(e) => warn!("waiting for exports: {}", crate::error::chain(&e)),
        }
        let now = Timestamp::now();
        let p = Publication::new(last, days, now);
        if last.is_some() && p.incomplete.is_empty() {
            info!("{exchange}: every day is exported now");
            return p;
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            return if last.is_some() {
                p
            } else {
                Publication::new(None, days, now)
            };
        }
        let delay = delays.next().unwrap_or(left).min(left);
        info!(
            "waiting for Tardis to export {}; next check in {:.0} s",
            p.describe(exchange),
            delay.as_secs_f64()
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn days_after_exported_until_are_incomplete() {
        let days = [date(2024, 3, 1), date(2024, 3, 2), date(2024, 3, 3)];
        let until: Timestamp = "2024-03-02T00:00:00Z".parse().unwrap();
        let p = Publication::new(Some(until), &days, Timestamp::now());
        assert_eq!(p.incomplete, [date(2024, 3, 2), date(2024, 3, 3)]);
        assert!(p.is_final(date(2024, 3, 1)) && !p.assumed);
        assert_eq!(
            p.describe("x"),
            "2024-03-02, 2024-03-03 (Tardis has exported x until 2024-03-02T00:00:00Z)"
        );
        // Without metadata, a day is final a full day after it ends.
        let now: Timestamp = "2024-03-04T00:00:00Z".parse().unwrap();
        let p = Publication::new(None, &days, now);
        assert_eq!(p.incomplete, [date(2024, 3, 3)]);
        assert!(p.assumed);
        // A cached exportedUntil or the clock, whichever says more.
        let p = Publication::assumed(Some("2024-03-04T00:00:00Z".parse().unwrap()), &days, now);
        assert!(p.incomplete.is_empty() && p.assumed);
    }

    #[test]
    fn polls_back_off_from_a_fraction_of_the_wait() {
        let d: Vec<u64> = poll_delays(Duration::from_secs(30))
            .take(4)
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(d, [1, 2, 4, 8]);
        let d: Vec<u64> = poll_delays(Duration::from_secs(6 * 3600))
            .take(5)
            .map(|d| d.as_secs())
            .collect();
        assert_eq!(d, [60, 120, 240, 480, 900]);
    }
}
