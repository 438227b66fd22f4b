//! Fault and latency injection, deterministic for a given seed.
//!
//! Rules are checked in the order they were injected; the first whose verb and resource match
//! and whose rate draw succeeds answers the request instead of the API. Draws come from one
//! `ChaCha8Rng`, so the same seed and the same sequence of requests give the same faults.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::routing::Verb;

/// Added delay before a request is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Latency {
    /// No delay.
    #[default]
    None,
    /// The same delay for every request.
    Fixed(Duration),
    /// A delay drawn uniformly from `min..=max` per request.
    Uniform {
        /// Shortest delay.
        min: Duration,
        /// Longest delay.
        max: Duration,
    },
}

/// What an injected fault answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    /// An error `Status` with this code: 500 `InternalError`, 503 `ServiceUnavailable`,
    /// 409 `Conflict`, 504 `Timeout`, or any other code with reason `Unknown`.
    Status(u16),
    /// 429 `TooManyRequests` with a `Retry-After` header.
    TooManyRequests {
        /// The `Retry-After` value, in seconds.
        retry_after_secs: u32,
    },
    /// Close the connection without answering.
    DropConnection,
    /// Answer a watch as usual, then end its stream after this long, as a server or a proxy
    /// cutting long-running requests does: the client must watch again from where it was.
    CutWatch {
        /// How long the watch streams before it is cut.
        after: Duration,
    },
}

/// One fault rule. Built with [`Fault::status`], [`Fault::too_many_requests`] or
/// [`Fault::drop_connection`], then narrowed.
///
/// ```
/// use kubecloud_testkit::{Fault, Verb};
/// // The next two creates of VirtualMachines fail with 503.
/// let f = Fault::status(503).on_verb(Verb::Create).on_resource("virtualmachines").times(2);
/// # let _ = f;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Fault {
    verb: Option<Verb>,
    resource: Option<String>,
    rate: f64,
    remaining: Option<u32>,
    action: FaultAction,
}

impl Fault {
    /// A rule answering with `action` for every resource request.
    pub fn new(action: FaultAction) -> Self {
        Fault {
            verb: None,
            resource: None,
            rate: 1.0,
            remaining: None,
            action,
        }
    }

    /// Answer with an error `Status` of this code.
    pub fn status(code: u16) -> Self {
        Self::new(FaultAction::Status(code))
    }

    /// Answer 429 with `Retry-After: retry_after_secs`.
    pub fn too_many_requests(retry_after_secs: u32) -> Self {
        Self::new(FaultAction::TooManyRequests { retry_after_secs })
    }

    /// Drop the connection without answering.
    pub fn drop_connection() -> Self {
        Self::new(FaultAction::DropConnection)
    }

    /// Answer watches as usual, then cut them after `after` (only [`Verb::Watch`] matches).
    ///
    /// ```
    /// use kubecloud_testkit::Fault;
    /// use std::time::Duration;
    /// // A third of the watches end after 200 ms.
    /// let f = Fault::cut_watch(Duration::from_millis(200)).rate(0.3);
    /// # let _ = f;
    /// ```
    pub fn cut_watch(after: Duration) -> Self {
        Self::new(FaultAction::CutWatch { after }).on_verb(Verb::Watch)
    }

    /// Only requests with this verb. Without it, every verb except [`Verb::Discovery`] matches.
    pub fn on_verb(mut self, verb: Verb) -> Self {
        self.verb = Some(verb);
        self
    }

    /// Only requests on this resource (plural, e.g. `virtualmachines`).
    pub fn on_resource(mut self, plural: &str) -> Self {
        self.resource = Some(plural.to_string());
        self
    }

    /// Fire for this fraction of matching requests (0.0..=1.0), drawn from the seeded generator.
    pub fn rate(mut self, rate: f64) -> Self {
        self.rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Fire at most `n` times, then stop matching.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, verb: Verb, resource: &str) -> bool {
        self.remaining != Some(0)
            && match self.verb {
                Some(v) => v == verb,
                None => verb != Verb::Discovery,
            }
            && self.resource.as_deref().is_none_or(|r| r == resource)
    }
}

struct State {
    rules: Vec<Fault>,
    latency: Latency,
    rng: ChaCha8Rng,
}

/// A handle on the fault and latency settings, cheap to clone. Obtained from
/// [`TestServer::faults`](crate::TestServer::faults).
#[derive(Clone)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

impl Faults {
    pub(crate) fn new(seed: u64, latency: Latency) -> Self {
        Faults {
            state: Arc::new(Mutex::new(State {
                rules: Vec::new(),
                latency,
                rng: ChaCha8Rng::seed_from_u64(seed),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a rule (after the existing ones).
    pub fn inject(&self, fault: Fault) {
        self.lock().rules.push(fault);
    }

    /// Removes every rule (latency stays).
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// Sets the latency added to every request, including discovery.
    pub fn set_latency(&self, latency: Latency) {
        self.lock().latency = latency;
    }

    /// Restarts the generator from `seed`.
    pub fn reseed(&self, seed: u64) {
        self.lock().rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// The delay and the fault (if any) for one request.
    pub(crate) fn decide(&self, verb: Verb, resource: &str) -> (Duration, Option<FaultAction>) {
        let mut st = self.lock();
        let st = &mut *st;
        let delay = match st.latency {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } if max > min => Duration::from_nanos(
                st.rng
                    .random_range(min.as_nanos() as u64..=max.as_nanos() as u64),
            ),
            Latency::Uniform { min, .. } => min,
        };
        for rule in st.rules.iter_mut() {
            if !rule.matches(verb, resource) {
                continue;
            }
            if rule.rate < 1.0 && !st.rng.random_bool(rule.rate) {
                continue;
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            return (delay, Some(rule.action));
        }
        (delay, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_faults() {
        let run = |seed| {
            let f = Faults::new(seed, Latency::None);
            f.inject(Fault::status(500).rate(0.5));
            (0..64)
                .map(|_| f.decide(Verb::Get, "pods").1.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn times_limits_and_filters_apply() {
        let f = Faults::new(1, Latency::None);
        f.inject(
            Fault::status(503)
                .on_verb(Verb::Create)
                .on_resource("virtualmachines")
                .times(1),
        );
        assert_eq!(f.decide(Verb::Get, "virtualmachines").1, None);
        assert_eq!(f.decide(Verb::Create, "pods").1, None);
        assert_eq!(
            f.decide(Verb::Create, "virtualmachines").1,
            Some(FaultAction::Status(503))
        );
        assert_eq!(f.decide(Verb::Create, "virtualmachines").1, None);
    }
}
