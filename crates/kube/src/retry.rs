//! Retries with jittered exponential backoff, for temporary failures only.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use kubecloud_core::wait::Deadline;
use kubecloud_core::{Error, Result};

/// How often and how patiently to retry temporary failures ([`Error::is_temporary`]).
///
/// Defaults: 5 attempts in all, backoff from 50 ms doubling to at most 2 s, with jitter.
///
/// ```
/// let policy = kubecloud_kube::RetryPolicy::default();
/// assert_eq!(policy.max_attempts, 5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: usize,
    /// The first delay.
    pub min_delay: Duration,
    /// The longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Runs `op` until it succeeds, fails permanently, or attempts run out. Only errors whose
    /// [`Error::is_temporary`] is true are retried; the last error is returned. Inside an
    /// operation with a [`Deadline`] no retry starts once it has passed, and no backoff sleeps
    /// beyond it.
    pub async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_attempts.saturating_sub(1))
            .with_jitter();
        let deadline = Deadline::current();
        let sleep = move |delay: Duration| match deadline {
            Some(deadline) => tokio::time::sleep(delay.min(deadline.remaining())),
            None => tokio::time::sleep(delay),
        };
        let worth_retrying =
            move |err: &Error| err.is_temporary() && !deadline.is_some_and(|d| d.has_passed());
        op.retry(backoff)
            .sleep(sleep)
            .when(worth_retrying)
            .notify(|err: &Error, after: Duration| {
                tracing::debug!(what, error = %err, ?after, "temporary failure; retrying");
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temporary() -> Error {
        Error::backend("test", "hiccup", true, std::io::Error::other("503"))
    }

    #[tokio::test(start_paused = true)]
    async fn temporary_failures_are_retried_until_success() {
        let calls = AtomicUsize::new(0);
        let out = RetryPolicy::default()
            .run("op", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(temporary())
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!(out, 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried_and_attempts_are_bounded() {
        let calls = AtomicUsize::new(0);
        let err = RetryPolicy::default()
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::invalid("size", "zero"))
            })
            .await
            .unwrap_err();
        assert!(err.is_invalid_input());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        calls.store(0, Ordering::SeqCst);
        let _ = RetryPolicy::default()
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(temporary())
            })
            .await;
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn no_retry_outlives_the_deadline_of_the_operation() {
        let calls = AtomicUsize::new(0);
        let patient = RetryPolicy {
            max_attempts: 100,
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        };
        let started = tokio::time::Instant::now();
        let err = Deadline::after(Duration::from_secs(5))
            .scope(patient.run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(temporary())
            }))
            .await
            .unwrap_err();
        assert!(err.is_temporary(), "the last error is returned: {err}");
        assert!(
            started.elapsed() <= Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(calls.load(Ordering::SeqCst) < 100);
    }
}
