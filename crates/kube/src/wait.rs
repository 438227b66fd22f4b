//! Waiting on Kubernetes objects through watches (never polling), with terminal-failure
//! detection and an explicit timeout, cut short by the [`Deadline`] of the operation a wait is
//! part of.

use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kubecloud_core::wait::{Check, Deadline};
use kubecloud_core::{Error, ResourceKind, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The states of one object as a stream: the current state first (`None` while it does not
/// exist), then every change. A dropped watch resumes from where it was with backoff, as
/// kube-runtime's watcher does.
pub fn object_states<K>(
    api: Api<K>,
    object: &str,
) -> impl Stream<Item = Result<Option<K>>> + Send + 'static
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
{
    let backend = "kubernetes".to_string();
    let object_name = object.to_string();
    watcher::watch_object(api, object)
        .default_backoff()
        .map(move |item| {
            item.map_err(|e| {
                Error::backend(
                    &backend,
                    format!("watch of {object_name:?} failed"),
                    true,
                    e,
                )
            })
        })
}

/// Waits until `condition` holds for the object named `object`: it sees the current state and
/// every change through one watch. [`Check::Failed`] ends the wait at once with
/// [`Error::Failed`]; `timeout` bounds it — or the [`Deadline`] of the operation it is part of,
/// if that comes first — with [`Error::Timeout`], whose last state seen gives the object's kind
/// and name, phase, whether it is being deleted and the finalizers it still has.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
/// use std::time::Duration;
/// use k8s_openapi::api::core::v1::PersistentVolumeClaim;
/// use kubecloud_core::{ResourceKind, wait::Check};
/// let api: kube::Api<PersistentVolumeClaim> = kube::Api::namespaced(client, "acme");
/// let bound = kubecloud_kube::wait_for(api, "data", ResourceKind::Volume, "data", Duration::from_secs(60), |pvc| {
///     match pvc.and_then(|p| p.status.as_ref()).and_then(|s| s.phase.as_deref()) {
///         Some("Bound") => Check::Met,
///         Some("Lost") => Check::Failed("claim lost its volume".into()),
///         _ => Check::Pending,
///     }
/// }).await?;
/// # Ok(()) }
/// ```
pub async fn wait_for<K, F>(
    api: Api<K>,
    object: &str,
    kind: ResourceKind,
    name: &str,
    timeout: Duration,
    condition: F,
) -> Result<K>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    F: Fn(Option<&K>) -> Check,
{
    wait_on(object_states(api, object), kind, name, timeout, condition).await
}

/// [`wait_for`] on a stream of states (from [`object_states`] or
/// [`Informers::states`](crate::Informers::states)); a timeout says the condition was "the
/// condition" (see [`wait_described`] to name it).
pub async fn wait_on<K, S, F>(
    states: S,
    kind: ResourceKind,
    name: &str,
    timeout: Duration,
    condition: F,
) -> Result<K>
where
    K: Serialize,
    S: Stream<Item = Result<Option<K>>>,
    F: Fn(Option<&K>) -> Check,
{
    wait_described(states, kind, name, "the condition", timeout, condition).await
}

/// [`wait_on`], saying in `waiting_for` what the condition is ("gone", "bound") for the
/// [`Error::Timeout`] it may end with.
///
/// ```
/// use std::time::Duration;
/// use futures::{stream, StreamExt};
/// use k8s_openapi::api::core::v1::PersistentVolumeClaim;
/// use kubecloud_core::{ResourceKind, wait::Check};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
///     "apiVersion": "v1", "kind": "PersistentVolumeClaim",
///     "metadata": {"name": "web-root", "namespace": "acme",
///                  "deletionTimestamp": "2025-01-01T00:00:00Z",
///                  "finalizers": ["kubernetes.io/pvc-protection"]},
/// })).unwrap();
/// let states = stream::iter(vec![Ok(Some(claim))]).chain(stream::pending());
/// let gone = |o: Option<&PersistentVolumeClaim>| if o.is_none() { Check::Met } else { Check::Pending };
/// let err = kubecloud_kube::wait_described(states, ResourceKind::Volume, "web-root", "gone", Duration::from_secs(2), gone)
///     .await
///     .unwrap_err();
/// assert_eq!(err.to_string(), "timed out after 2s waiting for volume \"web-root\": gone (last seen: \
///     PersistentVolumeClaim acme/web-root: deletionTimestamp set, finalizers [kubernetes.io/pvc-protection])");
/// # });
/// ```
pub async fn wait_described<K, S, F>(
    states: S,
    kind: ResourceKind,
    name: &str,
    waiting_for: &str,
    timeout: Duration,
    condition: F,
) -> Result<K>
where
    K: Serialize,
    S: Stream<Item = Result<Option<K>>>,
    F: Fn(Option<&K>) -> Check,
{
    let bound = Deadline::for_wait(timeout);
    // What the wait saw last: the object (summarised only if the wait times out), its absence,
    // or a watch error.
    let mut last: Option<Result<Option<K>>> = None;
    let work = async {
        futures::pin_mut!(states);
        while let Some(state) = states.next().await {
            let state = match state {
                Ok(state) => state,
                Err(err) => {
                    tracing::debug!(error = %err, "watch error; the watcher resumes");
                    last = Some(Err(err));
                    continue;
                }
            };
            match condition(state.as_ref()) {
                Check::Met => {
                    if let Some(object) = state {
                        return Ok(object);
                    }
                    return Err(Error::not_found(kind, name));
                }
                Check::Failed(reason) => return Err(Error::failed(kind, name, reason)),
                Check::Pending => last = Some(Ok(state)),
            }
        }
        Err(Error::not_found(kind, name))
    };
    match bound.run(work).await {
        Some(outcome) => outcome,
        None => Err(Error::timeout(
            kind,
            name,
            waiting_for,
            bound.budget(),
            match &last {
                None => "nothing yet".to_string(),
                Some(Ok(None)) => "absent".to_string(),
                Some(Ok(Some(object))) => object_summary(object),
                Some(Err(err)) => format!("the watch failing: {err}"),
            },
        )),
    }
}

/// A Kubernetes object's state in a few words, for timeouts: its kind and namespaced name, its
/// phase, whether it is being deleted and the finalizers it has
/// (`PersistentVolumeClaim acme/web-root: deletionTimestamp set, finalizers
/// [kubernetes.io/pvc-protection]`).
pub fn object_summary<K: Serialize>(object: &K) -> String {
    let value = serde_json::to_value(object).unwrap_or_default();
    let meta = &value["metadata"];
    let kind = value["kind"].as_str().unwrap_or("object");
    let name = meta["name"].as_str().unwrap_or_default();
    let mut out = match meta["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}:"),
        None => format!("{kind} {name}:"),
    };
    let mut parts = Vec::new();
    if let Some(phase) = value["status"]["phase"].as_str() {
        parts.push(format!("phase {phase}"));
    }
    if meta["deletionTimestamp"].is_string() {
        parts.push("deletionTimestamp set".to_string());
    }
    let finalizers: Vec<&str> = meta["finalizers"]
        .as_array()
        .map(|f| f.iter().filter_map(|f| f.as_str()).collect())
        .unwrap_or_default();
    if !finalizers.is_empty() {
        parts.push(format!("finalizers [{}]", finalizers.join(", ")));
    }
    if parts.is_empty() {
        parts.push("exists".to_string());
    }
    out.push(' ');
    out.push_str(&parts.join(", "));
    out
}
