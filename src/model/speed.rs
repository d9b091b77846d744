//! The minimum-throughput rule of every transfer: a body that brings fewer than `min_per_sec`
//! bytes per second over a whole window fails its attempt. A read timeout alone bounds only the
//! gap between two bytes, so a server trickling one byte a second would hold a download open
//! forever; this bounds any transfer to roughly `size / min_per_sec` plus one window.

use std::time::{Duration, Instant};

/// The rule's settings (`--min-transfer-speed`, `--min-speed-window`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinSpeed {
    /// Bytes per second that a window must average; 0 turns the rule off.
    pub bytes_per_sec: u64,
    /// How long a window lasts.
    pub window: Duration,
}

impl Default for MinSpeed {
    fn default() -> Self {
        Self {
            bytes_per_sec: 4 * 1024,
            window: Duration::from_secs(30),
        }
    }
}

/// The rule was broken: so many bytes arrived in the last window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSlow {
    /// Bytes received in the window.
    pub bytes: u64,
}

/// Tracks one transfer against a [`MinSpeed`].
#[derive(Debug, Clone)]
pub struct SpeedMeter {
    rule: MinSpeed,
    window_start: Instant,
    bytes: u64,
}

impl SpeedMeter {
    /// Starts measuring now.
    pub fn start(rule: MinSpeed, now: Instant) -> Self {
        Self {
            rule,
            window_start: now,
            bytes: 0,
        }
    }

    /// How long to wait for the next piece before the window must be judged (`None`: forever,
    /// the rule is off).
    pub fn time_left(&self, now: Instant) -> Option<Duration> {
        (self.rule.bytes_per_sec > 0 && !self.rule.window.is_zero())
            .then(|| self.rule.window.saturating_sub(now - self.window_start))
    }

    /// Adds `n` bytes received at `now`, and judges the window if it is over.
    ///
    /// # Errors
    /// [`TooSlow`] when a whole window brought too few bytes.
    pub fn add(&mut self, n: u64, now: Instant) -> Result<(), TooSlow> {
        self.bytes += n;
        self.check(now)
    }

    /// Judges the window if it is over (call when a wait for data ran out).
    ///
    /// # Errors
    /// [`TooSlow`] when a whole window brought too few bytes.
    pub fn check(&mut self, now: Instant) -> Result<(), TooSlow> {
        if self.time_left(now).is_none_or(|left| !left.is_zero()) {
            return Ok(());
        }
        let needed = (self.rule.bytes_per_sec as f64 * self.rule.window.as_secs_f64()) as u64;
        if self.bytes < needed {
            return Err(TooSlow { bytes: self.bytes });
        }
        self.window_start = now;
        self.bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trickle_fails_at_the_end_of_a_window_and_a_steady_transfer_never_does() {
        let rule = MinSpeed {
            bytes_per_sec: 100,
            window: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut slow = SpeedMeter::start(rule, t0);
        for s in 1..10 {
            assert!(slow.add(50, t0 + Duration::from_secs(s)).is_ok(), "mid-window");
        }
        assert_eq!(slow.add(50, t0 + Duration::from_secs(10)), Err(TooSlow { bytes: 500 }));
        let mut steady = SpeedMeter::start(rule, t0);
        for s in 1..100 {
            assert!(steady.add(150, t0 + Duration::from_secs(s)).is_ok());
        }
        // A stall: the wait runs out at the window's end, then the check fails.
        let mut stalled = SpeedMeter::start(rule, t0);
        assert_eq!(
            stalled.time_left(t0 + Duration::from_secs(4)),
            Some(Duration::from_secs(6))
        );
        assert!(stalled.check(t0 + Duration::from_secs(10)).is_err());
        let off = SpeedMeter::start(
            MinSpeed {
                bytes_per_sec: 0,
                ..rule
            },
            t0,
        );
        assert_eq!(off.time_left(t0), None);
    }
}
