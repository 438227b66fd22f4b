//! Waiting until a resource reaches a condition, on a stream of its states (a watch, never a
//! poll), with an explicit timeout, failing fast on terminal failure.
//!
//! ```
//! use std::time::Duration;
//! use futures::stream;
//! use kubecloud_core::{wait, Vm, VmPhase, VmSpec, VmStatus};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let vm = |phase| Ok(Vm { spec: VmSpec::default(), status: VmStatus { phase, ..VmStatus::default() } });
//! let states = stream::iter(vec![vm(VmPhase::Starting), vm(VmPhase::Running)]);
//! let running = wait::until(states, wait::vm_running(), Duration::from_secs(5)).await?;
//! assert_eq!(running.status.phase, VmPhase::Running);
//! # Ok::<(), kubecloud_core::Error>(())
//! # });
//! ```

use std::time::Duration;

use futures::{Stream, StreamExt};

use crate::compute::{Vm, VmPhase};
use crate::error::{Error, ResourceKind, Result};
use crate::loadbalancer::{Exposure, ExposureState};
use crate::network::Subnet;
use crate::storage::{Volume, VolumePhase};

/// The verdict of a condition on one observed state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// The condition holds: stop waiting, successfully.
    Met,
    /// Not yet.
    Pending,
    /// It can never hold (a terminal failure): stop waiting, with this reason.
    Failed(String),
}

/// A condition on a resource's state. Compose with [`Condition::and`] / [`Condition::or`].
pub trait Condition<T>: Send + Sync {
    /// Judges one observed state.
    fn check(&self, value: &T) -> Check;
    /// What is awaited, in words (for timeouts).
    fn describe(&self) -> String;
    /// Both conditions; fails as soon as either fails.
    fn and<C: Condition<T>>(self, other: C) -> And<Self, C>
    where
        Self: Sized,
    {
        And(self, other)
    }
    /// Either condition; fails only when both fail.
    fn or<C: Condition<T>>(self, other: C) -> Or<Self, C>
    where
        Self: Sized,
    {
        Or(self, other)
    }
}

/// Both of two conditions (see [`Condition::and`]).
#[derive(Clone, Debug)]
pub struct And<A, B>(A, B);

impl<T, A: Condition<T>, B: Condition<T>> Condition<T> for And<A, B> {
    fn check(&self, value: &T) -> Check {
        match (self.0.check(value), self.1.check(value)) {
            (Check::Failed(r), _) | (_, Check::Failed(r)) => Check::Failed(r),
            (Check::Met, Check::Met) => Check::Met,
            _ => Check::Pending,
        }
    }
    fn describe(&self) -> String {
        format!("{} and {}", self.0.describe(), self.1.describe())
    }
}

/// Either of two conditions (see [`Condition::or`]).
#[derive(Clone, Debug)]
pub struct Or<A, B>(A, B);

impl<T, A: Condition<T>, B: Condition<T>> Condition<T> for Or<A, B> {
    fn check(&self, value: &T) -> Check {
        match (self.0.check(value), self.1.check(value)) {
            (Check::Met, _) | (_, Check::Met) => Check::Met,
            (Check::Failed(a), Check::Failed(b)) => Check::Failed(format!("{a}; {b}")),
            _ => Check::Pending,
        }
    }
    fn describe(&self) -> String {
        format!("{} or {}", self.0.describe(), self.1.describe())
    }
}

/// A condition from a closure and a description.
pub struct FnCondition<F> {
    f: F,
    what: String,
}

impl<T, F: Fn(&T) -> Check + Send + Sync> Condition<T> for FnCondition<F> {
    fn check(&self, value: &T) -> Check {
        (self.f)(value)
    }
    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// A condition from a closure.
///
/// ```
/// use kubecloud_core::wait::{self, Check, Condition};
/// let big = wait::condition("more than 10", |n: &u32| if *n > 10 { Check::Met } else { Check::Pending });
/// assert_eq!(big.check(&11), Check::Met);
/// ```
pub fn condition<T, F: Fn(&T) -> Check + Send + Sync>(
    what: impl Into<String>,
    f: F,
) -> FnCondition<F> {
    FnCondition {
        f,
        what: what.into(),
    }
}

/// States that describe themselves briefly for timeout messages.
pub trait Observed {
    /// The kind of resource observed.
    const KIND: ResourceKind;
    /// A short description of the state ("Starting on node-1").
    fn summary(&self) -> String;
    /// The resource's kind and name, for errors.
    fn identity(&self) -> (ResourceKind, String);
}

impl Observed for Vm {
    const KIND: ResourceKind = ResourceKind::Vm;
    fn summary(&self) -> String {
        match &self.status.node {
            Some(node) => format!("{} on {node}", self.status.phase),
            None => self.status.phase.to_string(),
        }
    }
    fn identity(&self) -> (ResourceKind, String) {
        (ResourceKind::Vm, self.spec.name.clone())
    }
}

impl Observed for Volume {
    const KIND: ResourceKind = ResourceKind::Volume;
    fn summary(&self) -> String {
        self.status.phase.to_string()
    }
    fn identity(&self) -> (ResourceKind, String) {
        (ResourceKind::Volume, self.spec.name.clone())
    }
}

impl Observed for Exposure {
    const KIND: ResourceKind = ResourceKind::Exposure;
    fn summary(&self) -> String {
        match (&self.state, self.ip) {
            (ExposureState::Assigned, Some(ip)) => format!("assigned {ip}"),
            (ExposureState::Failed { reason }, _) => format!("failed: {reason}"),
            _ => "pending".into(),
        }
    }
    fn identity(&self) -> (ResourceKind, String) {
        (ResourceKind::Exposure, self.spec.name.clone())
    }
}

impl Observed for Subnet {
    const KIND: ResourceKind = ResourceKind::Subnet;
    fn summary(&self) -> String {
        format!("{} address(es) in use", self.used)
    }
    fn identity(&self) -> (ResourceKind, String) {
        (ResourceKind::Subnet, self.spec.name.clone())
    }
}

/// Waits on `states` (current state first, then every change) until `condition` is met, fails,
/// or `timeout` passes. A failure ends the wait at once with [`Error::Failed`]; a stream that
/// ends (the resource was deleted) gives [`Error::NotFound`].
pub async fn until<T, S, C>(states: S, condition: C, timeout: Duration) -> Result<T>
where
    T: Observed,
    S: Stream<Item = Result<T>>,
    C: Condition<T>,
{
    let mut last: Option<T> = None;
    let work = async {
        futures::pin_mut!(states);
        while let Some(state) = states.next().await {
            let state = state?;
            match condition.check(&state) {
                Check::Met => return Ok(Some(state)),
                Check::Failed(reason) => {
                    let (kind, name) = state.identity();
                    return Err(Error::failed(kind, name, reason));
                }
                Check::Pending => last = Some(state),
            }
        }
        Ok(None)
    };
    let outcome = tokio_timeout(timeout, work).await;
    match outcome {
        Some(Ok(Some(state))) => Ok(state),
        Some(Ok(None)) => {
            let (kind, name) = last
                .as_ref()
                .map(Observed::identity)
                .unwrap_or((T::KIND, "(unnamed)".to_string()));
            Err(Error::not_found(kind, name))
        }
        Some(Err(err)) => Err(err),
        None => Err(Error::Timeout {
            waiting_for: condition.describe(),
            after: timeout,
            last_seen: last
                .as_ref()
                .map(Observed::summary)
                .unwrap_or_else(|| "nothing".into()),
        }),
    }
}

/// Runs `fut` for at most `timeout` on tokio's timer (every backend runs on tokio).
async fn tokio_timeout<F: std::future::Future>(timeout: Duration, fut: F) -> Option<F::Output> {
    tokio::time::timeout(timeout, fut).await.ok()
}

/// The VM is running; fails if it is `Failed`.
pub fn vm_running() -> impl Condition<Vm> {
    condition("vm running", |vm: &Vm| match vm.status.phase {
        VmPhase::Running => Check::Met,
        VmPhase::Failed => Check::Failed(failure_reason(vm)),
        _ => Check::Pending,
    })
}

/// The VM is in `phase`; fails if it is `Failed` (unless `phase` is `Failed`).
pub fn vm_phase(phase: VmPhase) -> impl Condition<Vm> {
    condition(format!("vm {phase}"), move |vm: &Vm| {
        if vm.status.phase == phase {
            Check::Met
        } else if vm.status.phase == VmPhase::Failed {
            Check::Failed(failure_reason(vm))
        } else {
            Check::Pending
        }
    })
}

/// The VM runs on a node other than `node` (a live migration away from it completed).
pub fn vm_running_elsewhere(node: String) -> impl Condition<Vm> {
    condition(
        format!("vm running on a node other than {node}"),
        move |vm: &Vm| match (vm.status.phase, vm.status.node.as_deref()) {
            (VmPhase::Running, Some(n)) if n != node => Check::Met,
            (VmPhase::Failed, _) => Check::Failed(failure_reason(vm)),
            _ => {
                if let Some(c) = vm.status.condition("MigrationFailed").filter(|c| c.status) {
                    Check::Failed(format!("migration failed: {}", c.message))
                } else {
                    Check::Pending
                }
            }
        },
    )
}

fn failure_reason(vm: &Vm) -> String {
    vm.status
        .conditions
        .iter()
        .find(|c| c.status && c.type_ != "Ready")
        .or_else(|| vm.status.conditions.iter().find(|c| !c.message.is_empty()))
        .map(|c| format!("{}: {}", c.reason, c.message))
        .unwrap_or_else(|| "the VM failed".into())
}

/// The volume is ready; fails if it failed (an import that failed, say).
pub fn volume_ready() -> impl Condition<Volume> {
    condition("volume ready", |v: &Volume| match v.status.phase {
        VolumePhase::Ready => Check::Met,
        VolumePhase::Failed => Check::Failed(
            v.status
                .message
                .clone()
                .unwrap_or_else(|| "the volume failed".into()),
        ),
        _ => Check::Pending,
    })
}

/// The exposure has its external address; fails with the load balancer's reason.
pub fn exposure_assigned() -> impl Condition<Exposure> {
    condition("external address assigned", |e: &Exposure| match &e.state {
        ExposureState::Assigned if e.ip.is_some() => Check::Met,
        ExposureState::Failed { reason } => Check::Failed(reason.clone()),
        _ => Check::Pending,
    })
}

/// Exactly `n` of the subnet's addresses are in use (e.g. 0 once the network has taken back the
/// addresses of deleted VMs, which it may do a moment after they are gone).
///
/// ```
/// # async fn demo(net: &dyn kubecloud_core::Network, acme: &kubecloud_core::Tenant) -> kubecloud_core::Result<()> {
/// use kubecloud_core::wait;
/// use std::time::Duration;
/// let states = net.watch_subnet(acme, "web").await?;
/// wait::until(states, wait::subnet_in_use(0), Duration::from_secs(30)).await?;
/// # Ok(()) }
/// ```
pub fn subnet_in_use(n: u128) -> impl Condition<Subnet> {
    condition(format!("{n} address(es) in use"), move |s: &Subnet| {
        if s.used == n {
            Check::Met
        } else {
            Check::Pending
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::{VmSpec, VmStatus};
    use futures::stream;

    fn vm(phase: VmPhase) -> Result<Vm> {
        Ok(Vm {
            spec: VmSpec {
                name: "a".into(),
                ..VmSpec::default()
            },
            status: VmStatus {
                phase,
                ..VmStatus::default()
            },
        })
    }

    #[tokio::test]
    async fn terminal_failure_ends_the_wait_at_once() {
        let states =
            stream::iter(vec![vm(VmPhase::Starting), vm(VmPhase::Failed)]).chain(stream::pending());
        let err = until(states, vm_running(), Duration::from_secs(3600))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Failed {
                    kind: ResourceKind::Vm,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timeout_reports_what_was_last_seen() {
        let states = stream::iter(vec![vm(VmPhase::Starting)]).chain(stream::pending());
        let err = until(states, vm_running(), Duration::from_secs(30))
            .await
            .unwrap_err();
        match err {
            Error::Timeout {
                waiting_for,
                last_seen,
                ..
            } => {
                assert_eq!(waiting_for, "vm running");
                assert_eq!(last_seen, "Starting");
            }
            other => panic!("{other}"),
        }
    }

    #[tokio::test]
    async fn a_stream_that_ends_means_the_resource_is_gone() {
        let states = stream::iter(vec![vm(VmPhase::Starting)]);
        let err = until(states, vm_running(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[test]
    fn composition_follows_logic() {
        let met = condition("met", |_: &u8| Check::Met);
        let pending = condition("pending", |_: &u8| Check::Pending);
        let failed = condition("failed", |_: &u8| Check::Failed("x".into()));
        assert_eq!(
            condition("m", |_: &u8| Check::Met).and(pending).check(&0),
            Check::Pending
        );
        assert_eq!(met.or(failed).check(&0), Check::Met);
        let f1 = condition("f1", |_: &u8| Check::Failed("a".into()));
        let f2 = condition("f2", |_: &u8| Check::Failed("b".into()));
        assert_eq!(f1.or(f2).check(&0), Check::Failed("a; b".into()));
    }
}
