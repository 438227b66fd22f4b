//! Waiting on Kubernetes objects through watches (never polling), with terminal-failure
//! detection and an explicit timeout.

use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kubecloud_core::wait::Check;
use kubecloud_core::{Error, ResourceKind, Result};
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
/// [`Error::Failed`]; `timeout` bounds it with [`Error::Timeout`].
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
    K: Resource + Clone + Debug + DeserializeOwned + Send + Sync + 'static,
    F: Fn(Option<&K>) -> Check,
{
    wait_on(object_states(api, object), kind, name, timeout, condition).await
}

/// [`wait_for`] on a stream of states (from [`object_states`] or
/// [`Informers::states`](crate::Informers::states)).
pub async fn wait_on<K, S, F>(
    states: S,
    kind: ResourceKind,
    name: &str,
    timeout: Duration,
    condition: F,
) -> Result<K>
where
    S: Stream<Item = Result<Option<K>>>,
    F: Fn(Option<&K>) -> Check,
{
    let mut last = "nothing yet".to_string();
    let work = async {
        futures::pin_mut!(states);
        while let Some(state) = states.next().await {
            let state = match state {
                Ok(state) => state,
                Err(err) => {
                    tracing::debug!(error = %err, "watch error; the watcher resumes");
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
                Check::Pending => {
                    last = if state.is_some() {
                        "exists, condition pending".into()
                    } else {
                        "absent".into()
                    };
                }
            }
        }
        Err(Error::not_found(kind, name))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::Timeout {
            waiting_for: format!("{kind} {name:?}"),
            after: timeout,
            last_seen: last,
        }),
    }
}
