//! Waiting until a resource reaches a condition, on a stream of its states (a watch, never a
//! poll), with an explicit timeout, failing fast on terminal failure.
//!
//! Every wait ends by its timeout, or earlier by the [`Deadline`] of the operation it is part
//! of, with [`Error::Timeout`] naming the resource, the condition and the last state seen.
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

use std::future::Future;
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

tokio::task_local! {
    /// The deadline of the operation the running future is part of ([`Deadline::scope`]).
    static DEADLINE: Deadline;
}

/// The point in time by which an operation as a whole must end, with the timeout it was given.
///
/// An operation made of many steps (a tenant's `destroy`: deletions, each waiting until its
/// objects are gone) runs its steps inside [`Deadline::scope`]; every wait inside it — this
/// module's [`until`] and [`named`], `kubecloud_kube`'s watch-based waits, the backoff of its
/// retries — then ends by the earlier of its own timeout and that deadline. So a deletion that
/// waits for several objects in turn, or a destroy of many resources, ends by one deadline,
/// not after a timeout per object. Scopes nest: an inner scope can only bring the deadline
/// forward. The deadline applies to the futures polled inside the scope (it is a tokio
/// task-local); work spawned onto other tasks does not see it.
///
/// ```
/// use std::time::Duration;
/// use futures::stream;
/// use kubecloud_core::{wait::{self, Deadline}, Error, Vm, VmPhase, VmSpec, VmStatus};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let starting = Vm { spec: VmSpec { name: "web".into(), ..VmSpec::default() },
///                     status: VmStatus { phase: VmPhase::Starting, ..VmStatus::default() } };
/// let states = stream::iter(vec![Ok(starting)]).chain(stream::pending());
/// // The wait asks for an hour; the operation it is part of has 2 seconds.
/// let err = Deadline::after(Duration::from_secs(2))
///     .scope(wait::until(states, wait::vm_running(), Duration::from_secs(3600)))
///     .await
///     .unwrap_err();
/// assert_eq!(err.to_string(), "timed out after 2s waiting for vm \"web\": vm running (last seen: Starting)");
/// # });
/// # use futures::StreamExt;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    at: tokio::time::Instant,
    budget: Duration,
}

impl Deadline {
    /// The deadline `budget` from now.
    pub fn after(budget: Duration) -> Self {
        let now = tokio::time::Instant::now();
        // A budget too large to add (`Duration::MAX`) means "no deadline" in practice.
        let at = now
            .checked_add(budget)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
        Self { at, budget }
    }

    /// The instant it falls on.
    pub fn at(&self) -> tokio::time::Instant {
        self.at
    }

    /// The timeout it was made from (what a [`Error::Timeout`] it causes reports).
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// The time left (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.at
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Whether it has passed.
    pub fn has_passed(&self) -> bool {
        tokio::time::Instant::now() >= self.at
    }

    /// The deadline of the operation the caller runs in ([`Deadline::scope`]), if any.
    pub fn current() -> Option<Self> {
        DEADLINE.try_with(|d| *d).ok()
    }

    /// The earlier of this deadline and the one in force ([`Deadline::current`]).
    pub fn or_current(self) -> Self {
        match Self::current() {
            Some(current) if current.at <= self.at => current,
            _ => self,
        }
    }

    /// The bound of one wait given its own `timeout`: `timeout` from now, or the deadline in
    /// force if that comes first.
    pub fn for_wait(timeout: Duration) -> Self {
        Self::after(timeout).or_current()
    }

    /// Runs `fut` with this deadline in force (or the one already in force, if earlier): every
    /// wait inside it ends by it. The future itself is not cut short: bound it with
    /// [`Deadline::run`] as well where a step that does not wait (a request) could outlive it.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        DEADLINE.scope(self.or_current(), fut).await
    }

    /// Runs `fut` until the deadline: `None` if the deadline passed first (`fut` is dropped).
    pub async fn run<F: Future>(&self, fut: F) -> Option<F::Output> {
        tokio::time::timeout_at(self.at, fut).await.ok()
    }
}

/// Runs `operation` (a deletion that waits for several objects in turn, say) under one deadline,
/// `timeout` from now or the one already in force if earlier ([`Deadline::scope`]): every wait
/// inside it ends by that deadline, so the operation as a whole takes at most `timeout`, not a
/// timeout per wait. A wait cut short reports its own [`Error::Timeout`] with the last state it
/// saw; if the deadline passes while no wait runs (a request still unanswered), the operation
/// is dropped and the error names `kind`, `name` and `waiting_for`.
///
/// ```
/// use std::time::Duration;
/// use kubecloud_core::{wait, ResourceKind};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let stuck = async { std::future::pending::<kubecloud_core::Result<()>>().await };
/// let err = wait::within(Duration::from_secs(3), ResourceKind::Volume, "data", "deleted", stuck)
///     .await
///     .unwrap_err();
/// assert!(err.is_timeout());
/// assert!(err.to_string().starts_with("timed out after 3s waiting for volume \"data\": deleted"));
/// # });
/// ```
pub async fn within<T, F>(
    timeout: Duration,
    kind: ResourceKind,
    name: &str,
    waiting_for: &str,
    operation: F,
) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let bound = Deadline::for_wait(timeout);
    match bound.run(bound.scope(operation)).await {
        Some(outcome) => outcome,
        None => Err(Error::timeout(
            kind,
            name,
            waiting_for,
            bound.budget(),
            "a request on the way still unanswered",
        )),
    }
}

tokio::task_local! {
    /// Set inside [`send_only`]: the operation does not wait on the systems' controllers.
    static SEND_ONLY: ();
}

/// Runs `operation` without waiting on the systems' controllers: calls that create something
/// and would wait for a controller to make it ready (Kube-OVN reporting a VPC or a subnet
/// ready, say) return once it is sent, with the resource's state as sent (not ready yet).
/// Calls whose answer *is* what the controller decides still wait (a reservation's address and
/// MAC, which the call returns and a VM's interface is then pinned to); each backend's docs
/// list them. An apply with `wait: false` runs its steps inside this scope. Like
/// [`Deadline::scope`] it holds for the futures polled inside it (a tokio task-local).
///
/// ```
/// use kubecloud_core::wait;
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// assert!(wait::controllers_awaited());
/// assert!(!wait::send_only(async { wait::controllers_awaited() }).await);
/// # });
/// ```
pub async fn send_only<F: Future>(operation: F) -> F::Output {
    SEND_ONLY.scope((), operation).await
}

/// Whether the running operation waits on the systems' controllers: true unless it runs inside
/// [`send_only`]. Backends check it before a wait that only confirms a controller acted.
pub fn controllers_awaited() -> bool {
    SEND_ONLY.try_with(|()| ()).is_err()
}

/// A wait an operation keeps inside [`send_only`] (an apply with `wait: false`): what the
/// backend still waits for, and why a later step cannot be sent before it ends. Each backend
/// declares its own ([`Network::kept_waits`](crate::Network::kept_waits) and the like), and a
/// tenant's plan reports them on the steps they hold up.
///
/// ```
/// use kubecloud_core::{ResourceKind, wait::KeptWait};
/// const RESERVATION: KeptWait = KeptWait::creating(
///     ResourceKind::IpReservation,
///     "the address and MAC are allocated",
///     "the VMs that fix the address are pinned to them",
/// );
/// assert!(RESERVATION.applies_to(ResourceKind::IpReservation, false));
/// assert!(!RESERVATION.applies_to(ResourceKind::IpReservation, true));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeptWait {
    /// The kind of resource the operation acts on.
    #[serde(skip)]
    pub kind: ResourceKind,
    /// Whether the operation is the resource's deletion (else its creation or change).
    #[serde(skip)]
    pub deleting: bool,
    /// What is waited for.
    pub until: &'static str,
    /// Why a later step needs it.
    pub because: &'static str,
}

impl KeptWait {
    /// A wait kept when `kind` is created or changed.
    pub const fn creating(kind: ResourceKind, until: &'static str, because: &'static str) -> Self {
        KeptWait {
            kind,
            deleting: false,
            until,
            because,
        }
    }

    /// A wait kept when `kind` is deleted.
    pub const fn deleting(kind: ResourceKind, until: &'static str, because: &'static str) -> Self {
        KeptWait {
            kind,
            deleting: true,
            until,
            because,
        }
    }

    /// Whether this wait holds up an operation on `kind` (a deletion when `deleting`).
    pub fn applies_to(&self, kind: ResourceKind, deleting: bool) -> bool {
        self.kind == kind && self.deleting == deleting
    }
}

impl std::fmt::Display for KeptWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "waits until {}: {}", self.until, self.because)
    }
}

/// Waits on `states` (current state first, then every change) until `condition` is met, fails,
/// or `timeout` passes — or the deadline of the operation the wait is part of
/// ([`Deadline::scope`]), if that comes first. A failure ends the wait at once with
/// [`Error::Failed`]; a stream that ends (the resource was deleted) gives [`Error::NotFound`];
/// the timeout gives [`Error::Timeout`] with the condition and the last state seen.
pub async fn until<T, S, C>(states: S, condition: C, timeout: Duration) -> Result<T>
where
    T: Observed,
    S: Stream<Item = Result<T>>,
    C: Condition<T>,
{
    until_bounded(None, states, condition, Deadline::for_wait(timeout)).await
}

/// Waits until `condition` holds for the resource `name`, whose states `watch` opens (a
/// backend's `watch_vm(tenant, name)`, say): as [`until`], but the whole wait, opening the watch
/// included, ends by `timeout` (or the deadline in force), and a timeout names the resource even
/// when no state was seen.
///
/// ```
/// use std::time::Duration;
/// use futures::{stream, StreamExt};
/// use kubecloud_core::{wait, Error, Result, Vm};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// // A watch that never opens (an unanswered request) still ends by the timeout.
/// let never = std::future::pending::<Result<futures::stream::BoxStream<'static, Result<Vm>>>>();
/// let err = wait::named("web", never, wait::vm_running(), Duration::from_secs(5)).await.unwrap_err();
/// assert_eq!(err.to_string(), "timed out after 5s waiting for vm \"web\": vm running (last seen: nothing: the watch had not opened)");
/// # });
/// ```
pub async fn named<T, S, C, W>(name: &str, watch: W, condition: C, timeout: Duration) -> Result<T>
where
    T: Observed,
    S: Stream<Item = Result<T>>,
    C: Condition<T>,
    W: Future<Output = Result<S>>,
{
    let bound = Deadline::for_wait(timeout);
    let Some(states) = bound.run(watch).await else {
        return Err(Error::timeout(
            T::KIND,
            name,
            condition.describe(),
            bound.budget(),
            "nothing: the watch had not opened",
        ));
    };
    until_bounded(Some(name), states?, condition, bound).await
}

async fn until_bounded<T, S, C>(
    name: Option<&str>,
    states: S,
    condition: C,
    bound: Deadline,
) -> Result<T>
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
    let outcome = bound.run(work).await;
    let identity = |last: Option<&T>| {
        last.map(Observed::identity).unwrap_or_else(|| {
            (
                T::KIND,
                name.map_or_else(|| "(unnamed)".to_string(), str::to_string),
            )
        })
    };
    match outcome {
        Some(Ok(Some(state))) => Ok(state),
        Some(Ok(None)) => {
            let (kind, name) = identity(last.as_ref());
            Err(Error::not_found(kind, name))
        }
        Some(Err(err)) => Err(err),
        None => {
            let (kind, name) = identity(last.as_ref());
            Err(Error::timeout(
                kind,
                name,
                condition.describe(),
                bound.budget(),
                last.as_ref()
                    .map(Observed::summary)
                    .unwrap_or_else(|| "nothing".into()),
            ))
        }
    }
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

/// The running VM has every volume of `attached` attached and ready
/// ([`crate::VmStatus::attached_volumes`]) and none of `detached`: a live attach or detach
/// finished (see [`crate::hotplug`]). Fails if the VM is `Failed`, or stops running.
///
/// ```
/// use kubecloud_core::{wait::{self, Condition, Check}, Vm, VmPhase, VmSpec, VmStatus};
/// let cond = wait::vm_volumes_attached(vec!["data".into()], vec![]);
/// let mut vm = Vm { spec: VmSpec::default(), status: VmStatus { phase: VmPhase::Running, ..VmStatus::default() } };
/// assert_eq!(cond.check(&vm), Check::Pending);
/// vm.status.attached_volumes.push("data".into());
/// assert_eq!(cond.check(&vm), Check::Met);
/// ```
pub fn vm_volumes_attached(attached: Vec<String>, detached: Vec<String>) -> impl Condition<Vm> {
    condition(
        format!("vm with volumes {attached:?} attached and {detached:?} detached"),
        move |vm: &Vm| match vm.status.phase {
            VmPhase::Running | VmPhase::Migrating => {
                let has = |v: &String| vm.status.attached_volumes.contains(v);
                if attached.iter().all(has) && !detached.iter().any(has) {
                    Check::Met
                } else {
                    Check::Pending
                }
            }
            VmPhase::Failed => Check::Failed(failure_reason(vm)),
            VmPhase::Stopping | VmPhase::Stopped => {
                Check::Failed(format!("the VM is {}, not running", vm.status.phase))
            }
            _ => Check::Pending,
        },
    )
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

/// The VM's guest agent is connected (KubeVirt's `AgentConnected` condition); fails if the VM
/// is `Failed` or `Stopped`.
///
/// ```
/// use kubecloud_core::wait::{agent_connected, Check, Condition};
/// use kubecloud_core::{Condition as VmCondition, Vm, VmPhase, VmSpec, VmStatus};
/// let mut vm = Vm { spec: VmSpec::default(), status: VmStatus { phase: VmPhase::Running, ..VmStatus::default() } };
/// assert_eq!(agent_connected().check(&vm), Check::Pending);
/// vm.status.conditions.push(VmCondition { type_: "AgentConnected".into(), status: true, reason: String::new(), message: String::new() });
/// assert_eq!(agent_connected().check(&vm), Check::Met);
/// ```
pub fn agent_connected() -> impl Condition<Vm> {
    condition("guest agent connected", |vm: &Vm| {
        match (vm.status.phase, vm.status.condition("AgentConnected")) {
            (VmPhase::Running | VmPhase::Migrating, Some(c)) if c.status => Check::Met,
            (VmPhase::Failed, _) => Check::Failed(failure_reason(vm)),
            (VmPhase::Stopped, _) => Check::Failed("the VM is stopped".into()),
            _ => Check::Pending,
        }
    })
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

/// The network has set the subnet up ([`Subnet::ready`]): after it was sent without waiting
/// ([`send_only`]), say.
///
/// ```
/// # async fn demo(net: &dyn kubecloud_core::Network, acme: &kubecloud_core::Tenant) -> kubecloud_core::Result<()> {
/// use kubecloud_core::wait;
/// use std::time::Duration;
/// let states = net.watch_subnet(acme, "web").await?;
/// wait::until(states, wait::subnet_ready(), Duration::from_secs(30)).await?;
/// # Ok(()) }
/// ```
pub fn subnet_ready() -> impl Condition<Subnet> {
    condition("subnet ready", |s: &Subnet| {
        if s.ready { Check::Met } else { Check::Pending }
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
                kind,
                name,
                waiting_for,
                after,
                last_seen,
            } => {
                assert_eq!((kind, name.as_str()), (ResourceKind::Vm, "a"));
                assert_eq!(waiting_for, "vm running");
                assert_eq!(after, Duration::from_secs(30));
                assert_eq!(last_seen, "Starting");
            }
            other => panic!("{other}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_of_the_operation_ends_a_longer_wait() {
        let started = tokio::time::Instant::now();
        let states = stream::iter(vec![vm(VmPhase::Starting)]).chain(stream::pending());
        let err = Deadline::after(Duration::from_secs(2))
            .scope(until(states, vm_running(), Duration::from_secs(3600)))
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        match err {
            Error::Timeout {
                after, last_seen, ..
            } => {
                assert_eq!(after, Duration::from_secs(2), "the operation's timeout");
                assert_eq!(last_seen, "Starting");
            }
            other => panic!("{other}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_in_turn_share_one_deadline() {
        let started = tokio::time::Instant::now();
        let three_waits = async {
            for _ in 0..3 {
                let states = stream::iter(vec![vm(VmPhase::Starting)]).chain(stream::pending());
                let _ = until(states, vm_running(), Duration::from_secs(10)).await;
            }
        };
        Deadline::after(Duration::from_secs(10))
            .scope(three_waits)
            .await;
        assert_eq!(started.elapsed(), Duration::from_secs(10), "not 3 x 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn an_inner_scope_cannot_extend_the_deadline() {
        let outer = Deadline::after(Duration::from_secs(5));
        let inner = outer
            .scope(async {
                Deadline::after(Duration::from_secs(60))
                    .scope(async { Deadline::current() })
                    .await
            })
            .await;
        assert_eq!(inner, Some(outer));
        let shorter = outer
            .scope(async {
                Deadline::after(Duration::from_secs(1))
                    .scope(async { Deadline::current() })
                    .await
            })
            .await
            .unwrap();
        assert_eq!(shorter.budget(), Duration::from_secs(1));
        assert_eq!(Deadline::current(), None, "nothing outside a scope");
    }

    #[tokio::test(start_paused = true)]
    async fn a_named_wait_bounds_opening_the_watch_and_names_the_resource() {
        let never = std::future::pending::<Result<stream::Iter<std::vec::IntoIter<Result<Vm>>>>>();
        let err = named("web", never, vm_running(), Duration::from_secs(3))
            .await
            .unwrap_err();
        match err {
            Error::Timeout {
                kind, name, after, ..
            } => {
                assert_eq!((kind, name.as_str()), (ResourceKind::Vm, "web"));
                assert_eq!(after, Duration::from_secs(3));
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
