//! The retry policy: which failures are tried again ([`FetchError::retryable`]), how long to
//! wait, and how many times. Every attempt starts again from byte 0: a retried chunk is fetched
//! and decoded whole.
//!
//! The defaults are the official client's (tardis-python 5.0.4 `_http.py`
//! `reliable_download`): 30 attempts, a delay of `min(2^n, 120)` s plus up to 0.5 s of jitter,
//! twice the delay after a 500, and a 429's `Retry-After` honoured (a `Retry-After` over 300 s
//! is an exhausted quota and final, see [`crate::tardis::MAX_RETRY_AFTER`]). Unlike a plain
//! exponential backoff with jitter added afterwards, the cap holds: jitter never takes a delay
//! above `max_backoff`.

use std::future::Future;
use std::time::{Duration, Instant};

use super::FetchError;

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Delay before the first retry; doubles each time, with jitter.
    pub initial_backoff: Duration,
    /// Cap on one delay (jitter included; a server's `Retry-After` is honoured as sent).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// The official client's: 30 attempts, 2 s doubling to 120 s.
    fn default() -> Self {
        Self {
            max_retries: 29,
            initial_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(120),
        }
    }
}

/// Up to this much random delay is added to each backoff (the official client's
/// `random() * 0.5`), so that chunks that failed together do not return in step.
const JITTER: Duration = Duration::from_millis(500);

/// Up to this much random delay is added to a server's `Retry-After`, so that the requests it
/// paused do not return in step.
const RETRY_AFTER_JITTER: Duration = Duration::from_secs(1);

impl RetryPolicy {
    /// The delay before retry number `retry` (1 for the first retry) after `error`, with `r`
    /// a random number in `[0, 1)`.
    pub(crate) fn delay(&self, retry: u32, error: &FetchError, r: f64) -> Duration {
        if let Some(ra) = error.retry_after() {
            return ra + RETRY_AFTER_JITTER.mul_f64(r);
        }
        let cap = self.max_backoff;
        let doublings = retry.saturating_sub(1).min(40);
        let mut base = self.initial_backoff.saturating_mul(1u32 << doublings.min(31)).min(cap);
        if doublings > 31 {
            base = cap;
        }
        if error.doubles_the_delay() {
            base = base.saturating_mul(2).min(cap);
        }
        let jitter = JITTER.min(cap / 4).mul_f64(r);
        if base + jitter <= cap {
            base + jitter
        } else {
            cap - jitter
        }
    }
}

/// Runs `attempt(n)` for n = 1, 2, … until it succeeds, fails for good or the policy is spent.
/// `on_retry(error, delay, n)` is told of each failed attempt that will be retried. A failure
/// after more than one attempt is wrapped in [`FetchError::GaveUp`].
///
/// # Errors
/// The first non-retryable error, or the last one once the retries are spent.
pub(crate) async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    mut attempt: F,
    mut on_retry: impl FnMut(&FetchError, Duration, u32),
) -> Result<T, FetchError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, FetchError>>,
{
    let start = Instant::now();
    let mut n = 0u32;
    loop {
        n += 1;
        let err = match attempt(n).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if !err.retryable() || n > policy.max_retries {
            return Err(if n > 1 {
                FetchError::GaveUp {
                    attempts: n,
                    elapsed: start.elapsed(),
                    last: Box::new(err),
                }
            } else {
                err
            });
        }
        let delay = policy.delay(n, &err, fastrand::f64());
        on_retry(&err, delay, n);
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tardis::HttpError;
    use std::sync::Mutex;

    fn status(code: u16, retry_after: Option<u64>) -> FetchError {
        FetchError::Http(HttpError::Status {
            url: "u".into(),
            status: code,
            retry_after: retry_after.map(Duration::from_secs),
            message: None,
        })
    }

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            max_retries: retries,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(4),
        }
    }

    /// Runs `retry` over scripted results on a paused clock; returns the outcome, the attempt
    /// numbers seen and the delays announced.
    async fn scripted(
        policy: RetryPolicy,
        script: Vec<Result<u32, FetchError>>,
    ) -> (Result<u32, FetchError>, Vec<u32>, Vec<Duration>) {
        let script = Mutex::new(script.into_iter());
        let seen = Mutex::new(Vec::new());
        let mut delays = Vec::new();
        let out = retry(
            &policy,
            |n| {
                seen.lock().unwrap().push(n);
                let next = script.lock().unwrap().next().expect("script long enough");
                async move { next }
            },
            |_, d, _| delays.push(d),
        )
        .await;
        (out, seen.into_inner().unwrap(), delays)
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_capped_delays() {
        let script = vec![
            Err(status(503, None)),
            Err(status(502, None)),
            Err(status(504, None)),
            Err(status(503, None)),
            Ok(7),
        ];
        let started = tokio::time::Instant::now();
        let (out, seen, delays) = scripted(policy(5), script).await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(seen, vec![1, 2, 3, 4, 5], "attempts are numbered from 1");
        for (d, base) in delays.iter().zip([1, 2]) {
            let base = Duration::from_secs(base);
            assert!(*d >= base && *d <= base + JITTER, "{d:?} for a base of {base:?}");
        }
        let cap = Duration::from_secs(4);
        for d in &delays[2..] {
            assert!(*d <= cap && *d >= cap - JITTER, "the cap holds with jitter: {delays:?}");
        }
        // The paused clock sleeps in whole milliseconds.
        let slept = started.elapsed().abs_diff(delays.iter().sum::<Duration>());
        assert!(slept < Duration::from_millis(5), "it slept them all ({slept:?} off)");
    }

    #[test]
    fn the_defaults_are_the_official_clients_and_the_cap_holds() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_retries + 1, 30, "30 attempts");
        let e = status(503, None);
        assert_eq!(p.delay(1, &e, 0.0), Duration::from_secs(2));
        assert_eq!(p.delay(6, &e, 0.0), Duration::from_secs(64));
        for n in 1..40 {
            for r in [0.0, 0.5, 0.999] {
                let d = p.delay(n, &e, r);
                assert!(d <= Duration::from_secs(120), "retry {n}: {d:?}");
            }
        }
        // Jitter still spreads delays at the cap.
        assert!(p.delay(20, &e, 0.0) != p.delay(20, &e, 0.9));
        // A 500 waits twice as long (within the cap).
        assert_eq!(p.delay(1, &status(500, None), 0.0), Duration::from_secs(4));
        assert_eq!(p.delay(7, &status(500, None), 0.0), Duration::from_secs(120));
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_error_returns_at_once_unwrapped() {
        let (out, seen, delays) = scripted(policy(5), vec![Err(status(404, None))]).await;
        assert!(matches!(
            out,
            Err(FetchError::Http(HttpError::Status { status: 404, .. }))
        ));
        assert_eq!((seen.len(), delays.len()), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn spent_retries_give_up_with_the_last_error() {
        let script = (0..3).map(|_| Err(status(500, None))).collect();
        let (out, seen, _) = scripted(policy(2), script).await;
        let Err(FetchError::GaveUp { attempts, last, .. }) = out else {
            panic!("{out:?}")
        };
        assert_eq!((attempts, seen.len()), (3, 3));
        assert!(matches!(*last, FetchError::Http(HttpError::Status { status: 500, .. })));
        let (out, _, _) = scripted(policy(0), vec![Err(status(500, None))]).await;
        assert!(matches!(out, Err(FetchError::Http(_))), "no retries: the error itself");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_replaces_the_backoff() {
        let (out, _, delays) = scripted(policy(3), vec![Err(status(429, Some(30))), Ok(1)]).await;
        assert_eq!(out.unwrap(), 1);
        assert!(
            delays[0] >= Duration::from_secs(30) && delays[0] < Duration::from_secs(31),
            "{delays:?}"
        );
    }
}
