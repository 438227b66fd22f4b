//! Simulated controllers: tasks that react to stored objects and write back through the API.
//!
//! A [`Controller`] names the resources it watches and reconciles one [`ObjectEvent`] at a time
//! through a [`ControllerApi`]: inside the double the in-process [`Cluster`] handle, which runs
//! the same admission, validation, field management and watch code as HTTP requests (but is not
//! in the request log and is not subject to injected faults); on any other API server a
//! [`RemoteApi`](crate::remote::RemoteApi) over `kube::Client`, fed by watches
//! ([`crate::remote::spawn`]). At start a controller receives an `Added` event for every existing
//! object it watches, as an informer's initial list would give it; if it falls too far behind (or
//! its watch is relisted after a 410) it gets them again.
//!
//! The simulated KubeVirt, CDI, Kube-OVN, MetalLB, LINSTOR CSI and KubeVirt snapshot controllers
//! run on both. The built-in garbage collector, namespace, CRD, PVC protection and PVC binder
//! controllers and the [CSI simulation](crate::csi) run only in the double: they read the store's
//! indexes through [`ControllerApi::in_process`], which fails on a remote server (where
//! kube-controller-manager, kube-apiserver or a real driver does their job).
//!
//! Each running controller has a [`ControllerHandle`] to pause it (events queue up), delay each
//! reconcile, or make reconciles fail. A failed reconcile is retried with backoff (5 ms doubling
//! to 500 ms, 8 attempts), then dropped with a `tracing` warning.
//!
//! Built in: [`GarbageCollector`] (owner references), [`NamespaceController`] (namespace
//! deletion), [`PvcBinder`] (dynamic provisioning and binding) and
//! [`pvc_protection::PvcProtection`] (claims a pod uses are kept until it is gone). Controllers for KubeVirt, CDI,
//! Kube-OVN, MetalLB, Cilium LB-IPAM, LINSTOR CSI, snapshots, Multus + whereabouts,
//! multi-network policies and Kubemacpool (also a mutating webhook, see [`crate::admission`])
//! belong here too, one module each.

mod api;
pub mod authz;
pub mod cdi;
pub mod cdi_catalog;
pub mod cilium_bgp;
pub mod cilium_lbipam;
pub mod crd;
mod gc;
pub mod kubemacpool;
pub mod kubeovn;
pub mod kubeovn_ipam;
pub mod kubeovn_security;
pub mod kubevip_cloud_provider;
pub mod kubevirt;
pub mod kubevirt_guest;
pub mod kubevirt_live_update;
pub mod kubevirt_snapshot;
pub mod linstor_csi;
pub mod metallb;
pub mod multi_networkpolicy;
mod namespace;
mod pvc_binder;
pub mod pvc_protection;
pub mod whereabouts;

pub use api::ControllerApi;
pub use cilium_bgp::CiliumBgpControlPlane;
pub use cilium_lbipam::CiliumLbIpam;
pub use gc::GarbageCollector;
pub use kubevip_cloud_provider::KubeVipCloudProvider;
pub use metallb::MetalLbController;
pub use namespace::NamespaceController;
pub use pvc_binder::PvcBinder;

use async_trait::async_trait;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

use crate::cluster::{Cluster, ObjectEvent};
use crate::faults::Latency;
use crate::status::ApiError;
use crate::store::EventType;

/// A resource a controller watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    /// API group (`""` for core).
    pub group: String,
    /// Resource (plural).
    pub resource: String,
}

impl Watched {
    /// The resource `plural` in `group`.
    pub fn new(group: &str, plural: &str) -> Self {
        Watched {
            group: group.to_string(),
            resource: plural.to_string(),
        }
    }
}

/// Why a reconcile failed.
#[derive(Debug)]
pub enum ControllerError {
    /// An API call failed.
    Api(ApiError),
    /// The failure was injected through [`ControllerHandle::fail_next`] or
    /// [`ControllerHandle::set_failing`].
    Injected,
    /// Anything else.
    Other(String),
}

impl fmt::Display for ControllerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControllerError::Api(e) => write!(f, "API error: {e}"),
            ControllerError::Injected => f.write_str("injected failure"),
            ControllerError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for ControllerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ControllerError::Api(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ApiError> for ControllerError {
    fn from(e: ApiError) -> Self {
        ControllerError::Api(e)
    }
}

/// A simulated controller.
///
/// ```
/// use async_trait::async_trait;
/// use kubecloud_testkit::{Controller, ControllerApi, ControllerError, ObjectEvent, Watched};
/// use serde_json::json;
///
/// /// Marks every ConfigMap it sees with a label (a toy controller).
/// struct Labeler;
///
/// #[async_trait]
/// impl Controller for Labeler {
///     fn name(&self) -> &str { "labeler" }
///     fn watches(&self) -> Vec<Watched> { vec![Watched::new("", "configmaps")] }
///     async fn reconcile(&self, api: &ControllerApi, ev: &ObjectEvent) -> Result<(), ControllerError> {
///         if ev.object["metadata"]["labels"]["seen"].is_null() && ev.kind != kubecloud_testkit::EventType::Deleted {
///             api.merge_patch("v1", "ConfigMap", ev.namespace.as_deref(), &ev.name,
///                             &json!({"metadata": {"labels": {"seen": "yes"}}})).await?;
///         }
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait Controller: Send + Sync + 'static {
    /// A short name, also the field manager of its writes.
    fn name(&self) -> &str;

    /// The resources whose events it receives; empty means every resource.
    fn watches(&self) -> Vec<Watched>;

    /// Reacts to one event. `api` writes as field manager [`Controller::name`]. The event's
    /// object is its state at the event; read again through `api` for the latest.
    async fn reconcile(
        &self,
        api: &ControllerApi,
        event: &ObjectEvent,
    ) -> Result<(), ControllerError>;
}

struct Control {
    paused: watch::Sender<bool>,
    delay: Mutex<Latency>,
    failing: std::sync::atomic::AtomicBool,
    fail_next: AtomicU32,
    reconciled: AtomicU64,
    failed: AtomicU64,
}

/// Controls one running controller: pause, delay, fail. Cheap to clone.
#[derive(Clone)]
pub struct ControllerHandle {
    name: String,
    control: Arc<Control>,
}

impl fmt::Debug for ControllerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControllerHandle")
            .field("name", &self.name)
            .finish()
    }
}

impl ControllerHandle {
    pub(crate) fn new(name: &str) -> Self {
        ControllerHandle {
            name: name.to_string(),
            control: Arc::new(Control {
                paused: watch::channel(false).0,
                delay: Mutex::new(Latency::None),
                failing: false.into(),
                fail_next: 0.into(),
                reconciled: 0.into(),
                failed: 0.into(),
            }),
        }
    }

    /// The controller's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops reconciling; events queue until [`ControllerHandle::resume`].
    pub fn pause(&self) {
        self.control.paused.send_replace(true);
    }

    /// Resumes after [`ControllerHandle::pause`], working through the queued events.
    pub fn resume(&self) {
        self.control.paused.send_replace(false);
    }

    /// Waits this long before each reconcile (fixed or drawn per reconcile).
    pub fn set_delay(&self, delay: Latency) {
        *self.control.delay.lock().unwrap_or_else(|p| p.into_inner()) = delay;
    }

    /// Makes every reconcile fail (`true`) or work again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.control.failing.store(failing, Ordering::SeqCst);
    }

    /// Makes the next `n` reconcile attempts fail (retries included).
    pub fn fail_next(&self, n: u32) {
        self.control.fail_next.store(n, Ordering::SeqCst);
    }

    /// Reconciles that succeeded so far.
    pub fn reconciled(&self) -> u64 {
        self.control.reconciled.load(Ordering::SeqCst)
    }

    /// Reconcile attempts that failed so far (injected or not).
    pub fn failed(&self) -> u64 {
        self.control.failed.load(Ordering::SeqCst)
    }

    fn injected_failure(&self) -> bool {
        if self.control.failing.load(Ordering::SeqCst) {
            return true;
        }
        self.control
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn delay(&self) -> Duration {
        match *self.control.delay.lock().unwrap_or_else(|p| p.into_inner()) {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform { min, max } => {
                use rand::Rng;
                if max > min {
                    Duration::from_nanos(
                        rand::rng().random_range(min.as_nanos() as u64..=max.as_nanos() as u64),
                    )
                } else {
                    min
                }
            }
        }
    }
}

/// Starts a controller on `cluster`; returns its handle and task.
pub(crate) fn spawn(
    cluster: Cluster,
    controller: Arc<dyn Controller>,
) -> (ControllerHandle, tokio::task::JoinHandle<()>) {
    let handle = ControllerHandle::new(controller.name());
    let task = tokio::spawn(run(
        cluster.as_manager(controller.name()),
        controller,
        handle.clone(),
    ));
    (handle, task)
}

async fn run(api: Cluster, controller: Arc<dyn Controller>, handle: ControllerHandle) {
    let watched = controller.watches();
    let wants = |group: &str, resource: &str| {
        watched.is_empty()
            || watched
                .iter()
                .any(|w| w.group == group && w.resource == resource)
    };
    let mut queue: VecDeque<ObjectEvent> = VecDeque::new();
    let mut rx = resync(&api, &wants, &mut queue);
    let mut paused = handle.control.paused.subscribe();
    let api = ControllerApi::from(api);
    loop {
        let event = match queue.pop_front() {
            Some(e) => e,
            None => match rx.recv().await {
                Ok(e) if wants(&e.key.group, &e.key.resource) => ObjectEvent::from_store(&e),
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Ok(cluster) = api.in_process() {
                        rx = resync(cluster, &wants, &mut queue);
                    }
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if !process(&api, controller.as_ref(), &handle, &mut paused, &event).await {
            return;
        }
    }
}

/// Runs `controller` on a stream of events (a remote API server's watches) until it ends.
pub(crate) async fn run_events(
    api: ControllerApi,
    controller: Arc<dyn Controller>,
    handle: ControllerHandle,
    mut events: futures::stream::BoxStream<'static, ObjectEvent>,
) {
    use futures::StreamExt as _;
    let mut paused = handle.control.paused.subscribe();
    while let Some(event) = events.next().await {
        if !process(&api, controller.as_ref(), &handle, &mut paused, &event).await {
            return;
        }
    }
}

/// Reconciles one event: waits while paused, applies the injected delay, retries failures with
/// backoff. False when the handle is gone (the runner stops).
async fn process(
    api: &ControllerApi,
    controller: &dyn Controller,
    handle: &ControllerHandle,
    paused: &mut watch::Receiver<bool>,
    event: &ObjectEvent,
) -> bool {
    // Paused: hold the event (new ones queue up behind it).
    while *paused.borrow_and_update() {
        if paused.changed().await.is_err() {
            return false;
        }
    }
    let delay = handle.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut backoff = Duration::from_millis(5);
    for attempt in 1..=8 {
        let result = if handle.injected_failure() {
            Err(ControllerError::Injected)
        } else {
            controller.reconcile(api, event).await
        };
        match result {
            Ok(()) => {
                handle.control.reconciled.fetch_add(1, Ordering::SeqCst);
                break;
            }
            Err(e) => {
                handle.control.failed.fetch_add(1, Ordering::SeqCst);
                tracing::debug!(controller = controller.name(), object = %event.name, attempt, error = %e, "reconcile failed");
                if attempt == 8 {
                    tracing::warn!(controller = controller.name(), object = %event.name, error = %e, "giving up on event");
                    break;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
    }
    true
}

/// Queues an `Added` event per watched object and returns a receiver for what follows.
fn resync(
    api: &Cluster,
    wants: &dyn Fn(&str, &str) -> bool,
    queue: &mut VecDeque<ObjectEvent>,
) -> crate::store::Subscription {
    let (objects, _rv, rx) = api
        .core()
        .store
        .snapshot_and_subscribe(|k| wants(&k.group, &k.resource));
    for (key, object) in objects {
        queue.push_back(ObjectEvent::new(EventType::Added, &key, object));
    }
    rx
}
