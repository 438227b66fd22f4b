//! Retries with jittered exponential backoff, for temporary failures only.

use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
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
    /// [`Error::is_temporary`] is true are retried; the last error is returned.
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
        op.retry(backoff)
            .sleep(tokio::time::sleep)
            .when(Error::is_temporary)
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
}
