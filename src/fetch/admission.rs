//! Admission: what a request to Tardis waits for before it is sent, shared by every chunk of a
//! run. A download slot (`--concurrency`, a semaphore held until the body is read), a token
//! (`--rate-limit`, a token bucket), the end of a pause that a 429 imposed on everyone, and the
//! run not having been stopped by an answer every request would get (a refused key, an
//! exhausted quota). Cache hits never come here.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::warn;

/// A token bucket of `n` requests per second (a burst of `n`), on any governor clock.
pub(crate) struct TokenBucket<C: Clock + Clone = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl<C: Clock + Clone> TokenBucket<C> {
    pub(crate) fn with_clock(per_second: NonZeroU32, clock: C) -> Self {
        Self {
            limiter: RateLimiter::direct_with_clock(Quota::per_second(per_second), clock.clone()),
            clock,
        }
    }

    /// Takes a token now, or says how long until one is available.
    pub(crate) fn try_take(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Waits for a token (sleeping on tokio's clock).
    pub(crate) async fn take(&self) {
        while let Err(wait) = self.try_take() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// The run was stopped; the reason says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stopped(pub(crate) String);

/// The shared gate in front of every request to Tardis.
pub(crate) struct Admission {
    downloads: Arc<Semaphore>,
    rate: Option<TokenBucket>,
    /// Until when every request waits, after a 429 (so one rate-limit answer slows everyone).
    pause_until: Mutex<Option<Instant>>,
    /// Set once a fatal answer makes the rest of the run pointless: the reason, and until
    /// when (`None`: for good).
    stopped: Mutex<Option<(String, Option<Instant>)>>,
}

impl Admission {
    /// `concurrency` downloads in flight, at most `rate` requests per second.
    pub(crate) fn new(concurrency: usize, rate: Option<NonZeroU32>) -> Self {
        Self {
            downloads: Arc::new(Semaphore::new(concurrency.max(1))),
            rate: rate.map(|n| TokenBucket::with_clock(n, DefaultClock::default())),
            pause_until: Mutex::new(None),
            stopped: Mutex::new(None),
        }
    }

    /// Waits for the pause to end, a download slot and a token. The permit is the slot: hold it
    /// until the body has been read.
    ///
    /// # Errors
    /// [`Stopped`] once the run was stopped.
    pub(crate) async fn admit(&self) -> Result<OwnedSemaphorePermit, Stopped> {
        self.check()?;
        let paused = *self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = paused {
            tokio::time::sleep_until(t).await;
        }
        let permit = self
            .downloads
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if let Some(rate) = &self.rate {
            rate.take().await;
        }
        self.check()?;
        Ok(permit)
    }

    /// Makes every request wait `d` from now (a 429's `Retry-After`).
    pub(crate) fn pause_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut p = self.pause_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|t| t < until) {
            *p = Some(until);
        }
    }

    /// Stops the run: every later [`Self::admit`] fails with `reason` (the first reason wins),
    /// for good or, with `for_at_most`, until that much time has passed (an exhausted quota
    /// resets; a long-running `tickvault serve` then fetches again).
    pub(crate) fn stop(&self, reason: String, for_at_most: Option<Duration>) {
        self.stop_with(reason, for_at_most, true);
    }

    /// As [`Self::stop`]; `announce` false when the caller reports the reason itself.
    pub(crate) fn stop_with(&self, reason: String, for_at_most: Option<Duration>, announce: bool) {
        let mut s = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        if s.is_none() {
            if announce {
                warn!("stopping downloads: {reason}");
            }
            *s = Some((reason, for_at_most.map(|d| Instant::now() + d)));
        }
    }

    /// Fails if the run was stopped (and the stop has not expired).
    pub(crate) fn check(&self) -> Result<(), Stopped> {
        let mut s = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        match &*s {
            Some((_, Some(until))) if Instant::now() >= *until => {
                *s = None;
                Ok(())
            }
            Some((reason, _)) => Err(Stopped(reason.clone())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn the_bucket_allows_a_burst_then_one_token_per_interval() {
        let clock = FakeRelativeClock::default();
        let bucket = TokenBucket::with_clock(NonZeroU32::new(4).unwrap(), clock.clone());
        for _ in 0..4 {
            assert!(bucket.try_take().is_ok());
        }
        let wait = bucket.try_take().unwrap_err();
        assert_eq!(wait, Duration::from_millis(250), "4 per second");
        clock.advance(Duration::from_millis(249));
        assert!(bucket.try_take().is_err());
        clock.advance(Duration::from_millis(1));
        assert!(bucket.try_take().is_ok());
        assert!(bucket.try_take().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_request_until_it_ends() {
        let admission = Arc::new(Admission::new(4, None));
        admission.pause_for(Duration::from_secs(10));
        let started = Instant::now();
        let a = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit().await.map(|_| Instant::now()) }
        });
        let admitted = a.await.unwrap().unwrap();
        assert_eq!(admitted - started, Duration::from_secs(10));
        // A shorter pause does not cut a longer one short.
        admission.pause_for(Duration::from_secs(5));
        admission.pause_for(Duration::from_secs(1));
        let t = Instant::now();
        let _permit = admission.admit().await.unwrap();
        assert_eq!(Instant::now() - t, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn slots_bound_the_downloads_in_flight() {
        let admission = Arc::new(Admission::new(2, None));
        let a = admission.admit().await.unwrap();
        let _b = admission.admit().await.unwrap();
        let third = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit().await.is_ok() }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!third.is_finished(), "a third download waits for a slot");
        drop(a);
        assert!(third.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_run_admits_nothing_and_keeps_the_first_reason() {
        let admission = Admission::new(1, NonZeroU32::new(100));
        assert!(admission.admit().await.is_ok());
        admission.stop("bad key".into(), None);
        admission.stop("quota".into(), None);
        assert_eq!(admission.admit().await.unwrap_err(), Stopped("bad key".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_for_a_while_ends() {
        let admission = Admission::new(1, None);
        admission.stop("quota".into(), Some(Duration::from_secs(3600)));
        assert_eq!(admission.admit().await.unwrap_err(), Stopped("quota".into()));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(admission.admit().await.is_ok(), "the quota reset");
    }
}
