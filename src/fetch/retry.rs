//! The retry policy: which failures are tried again ([`FetchError::retryable`]), how long to
//! wait (exponential backoff with jitter, or the server's `Retry-After`), and how many times.
//! Every attempt starts again from byte 0: a retried chunk is fetched and decoded whole.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};

use super::FetchError;

/// How failed attempts are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Delay before the first retry; doubles each time, with jitter.
    pub initial_backoff: Duration,
    /// Cap on one delay.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 10 retries, 1 s doubling to 60 s: about five minutes of trying, enough to ride out a
    /// short outage in an unattended nightly run.
    fn default() -> Self {
        Self {
            max_retries: 10,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.initial_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.max_retries as usize)
    }
}

/// Up to this much random delay is added to a server's `Retry-After`, so that the requests it
/// paused do not return in step.
const RETRY_AFTER_JITTER: Duration = Duration::from_secs(1);

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
    let attempts = AtomicU32::new(0);
    let start = Instant::now();
    let result = (|| attempt(attempts.fetch_add(1, Ordering::Relaxed) + 1))
        .retry(policy.backoff())
        .sleep(tokio::time::sleep)
        .when(FetchError::retryable)
        .adjust(|e, delay| {
            // Honour the server: its Retry-After replaces the backoff, within the same budget.
            delay.map(|d| match e.retry_after() {
                Some(ra) => ra + RETRY_AFTER_JITTER.mul_f64(fastrand::f64()),
                None => d,
            })
        })
        .notify(|e, delay| on_retry(e, delay, attempts.load(Ordering::Relaxed)))
        .await;
    let made = attempts.load(Ordering::Relaxed);
    result.map_err(|last| {
        if made > 1 {
            FetchError::GaveUp {
                attempts: made,
                elapsed: start.elapsed(),
                last: Box::new(last),
            }
        } else {
            last
        }
    })
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
            Err(status(500, None)),
            Err(status(503, None)),
            Err(status(502, None)),
            Ok(7),
        ];
        let started = tokio::time::Instant::now();
        let (out, seen, delays) = scripted(policy(5), script).await;
        assert_eq!(out.unwrap(), 7);
        assert_eq!(seen, vec![1, 2, 3, 4], "attempts are numbered from 1");
        for (d, base) in delays.iter().zip([1, 2, 4]) {
            let base = Duration::from_secs(base);
            assert!(*d >= base && *d < base * 2, "{d:?} for a base of {base:?}");
        }
        // The paused clock sleeps in whole milliseconds.
        let slept = started.elapsed().abs_diff(delays.iter().sum::<Duration>());
        assert!(slept < Duration::from_millis(5), "it slept them all ({slept:?} off)");
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
