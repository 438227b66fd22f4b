//! Server-side apply with one field manager, skipping objects that would not change.

use std::fmt::Debug;

use kube::Resource;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kubecloud_core::{ResourceKind, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::errors::{from_kube, is_not_found};
use crate::informers::Informers;
use crate::namespace::EnsuredNamespaces;
use crate::ownership::FIELD_MANAGER;
use crate::retry::RetryPolicy;

/// Sends objects to Kubernetes the way every kubecloud backend does: server-side apply with
/// the field manager [`FIELD_MANAGER`] (forcing ownership of the fields it sets), retried on
/// temporary failures, and not at all when the live object already says what is asked.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use kube::Api;
/// use kubecloud_core::ResourceKind;
/// let writer = kubecloud_kube::Writer::new("example");
/// let api: Api<ConfigMap> = Api::namespaced(client, "acme");
/// let mut cm = ConfigMap::default();
/// cm.metadata.name = Some("settings".into());
/// writer.apply(&api, &cm, ResourceKind::Service, "settings").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Writer {
    backend: String,
    retry: RetryPolicy,
    informers: Informers,
    namespaces: EnsuredNamespaces,
}

impl Writer {
    /// A writer for the backend named `backend` (used in errors), with default retries.
    pub fn new(backend: impl Into<String>) -> Self {
        Self {
            backend: backend.into(),
            retry: RetryPolicy::default(),
            informers: Informers::default(),
            namespaces: EnsuredNamespaces::default(),
        }
    }

    /// The same writer sharing `informers` (for example with the other backends of one cloud),
    /// so waits on the same kinds share their watches.
    pub fn with_informers(mut self, informers: Informers) -> Self {
        self.informers = informers;
        self
    }

    /// The shared watches this writer's waits use and its writes feed.
    pub fn informers(&self) -> &Informers {
        &self.informers
    }

    /// The namespaces this writer has made sure of (see [`crate::ensure_namespace`]).
    pub(crate) fn ensured_namespaces(&self) -> &EnsuredNamespaces {
        &self.namespaces
    }

    /// The states of the object `object` behind `api` through the shared watch of its kind
    /// ([`Informers::states`]), seeing this writer's own writes at once.
    pub fn states<K>(
        &self,
        api: &Api<K>,
        object: &str,
    ) -> futures::stream::BoxStream<'static, Result<Option<K>>>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.informers.states(api, object)
    }

    /// Every object behind `api` matching the field selector `fields`, now and at every change,
    /// through one shared watch per resource URL and selector ([`Informers::selected`]).
    pub fn selected<K>(
        &self,
        api: &Api<K>,
        fields: &str,
    ) -> futures::stream::BoxStream<'static, Result<Vec<K>>>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.informers.selected(api, fields)
    }

    /// [`crate::wait_for`] through the shared watch of the object's kind: waiting for many
    /// objects of one kind opens one watch, not one per object. The state that ends the wait is
    /// a barrier for later reads ([`Informers::witness`]): [`Writer::current`] then reflects at
    /// least everything the cluster did up to it.
    pub async fn wait_for<K, F>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
        timeout: std::time::Duration,
        condition: F,
    ) -> Result<K>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn(Option<&K>) -> kubecloud_core::wait::Check,
    {
        let reached =
            crate::wait::wait_on(self.states(api, object), kind, name, timeout, condition).await?;
        // The caller acts on this state: later reads reflect at least its revision.
        self.informers.witness(api, &reached);
        Ok(reached)
    }

    /// The same writer with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The backend's name.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The retry policy.
    pub fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// Applies `desired` (server-side apply, forced, field manager `kubecloud`); `kind` and
    /// `name` name the domain resource in errors.
    pub async fn apply<K>(
        &self,
        api: &Api<K>,
        desired: &K,
        kind: ResourceKind,
        name: &str,
    ) -> Result<K>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    {
        let object_name = desired.meta().name.clone().unwrap_or_default();
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = self
            .retry
            .run("apply", || async {
                api.patch(&object_name, &params, &Patch::Apply(desired))
                    .await
                    .map_err(|e| from_kube(&self.backend, kind, name, e))
            })
            .await
            .map_err(|e| crate::errors::in_namespace(e, namespace_of(api.resource_url())))
            .inspect_err(|e| {
                if matches!(e, kubecloud_core::Error::NotFound { .. })
                    && let Some(namespace) = namespace_of(api.resource_url())
                {
                    // The namespace was deleted under us: make the next ensure_namespace create it.
                    self.namespaces.forget(namespace);
                }
            })?;
        self.informers.observe(api, &applied);
        Ok(applied)
    }

    /// Applies `desired` unless `current` (the live object, from a get, list or watch) is
    /// already what kubecloud last applied; returns the object and whether a write was sent.
    ///
    /// "Already applied" means both: the live object carries the [`APPLIED_HASH`] annotation
    /// with the hash of `desired` (so a field the new spec drops — which server-side apply then
    /// removes — counts as a change), and it still holds every field of `desired` (so a change
    /// made by hand counts as drift and is applied over). The annotation is added to what is
    /// sent.
    pub async fn apply_if_changed<K>(
        &self,
        api: &Api<K>,
        current: Option<&K>,
        desired: &K,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(K, bool)>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    {
        let hash = applied_hash(desired);
        let desired = crate::render::stamped(desired);
        if let Some(current) = current {
            let recorded = current
                .meta()
                .annotations
                .as_ref()
                .and_then(|a| a.get(APPLIED_HASH));
            if recorded == Some(&hash) && holds(current, &desired) {
                tracing::trace!(%kind, name, "unchanged; no write sent");
                return Ok((current.clone(), false));
            }
        }
        Ok((self.apply(api, &desired, kind, name).await?, true))
    }

    /// The object named `object` (or `None`) as the shared watch of its kind knows it, without
    /// a request once that watch is up (starting it costs one list and one watch for the kind).
    /// For reads before writing kubecloud's own objects, where creating a thousand objects would
    /// otherwise read a thousand times, and for the first state of a watch.
    ///
    /// The answer reflects this writer's own writes of the object and everything up to the last
    /// state a [`Writer::wait_for`] of this writer's registry ended on (see [`Informers`]); when
    /// the watch has not caught up with that, or has not listed within a few seconds, the object
    /// is read from the server instead and the answer fed to the watch.
    pub async fn current<K>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Option<K>>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        Ok(self.read(api, object, kind, name).await?.0)
    }

    /// [`Writer::current`], and whether the answer came from the server.
    async fn read<K>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<(Option<K>, bool)>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        // A list that has not come back by then (faults, a slow server) is not waited for.
        const PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);
        if let Some(state) = self.informers.cached(api, object, PATIENCE).await {
            return Ok((state?, false));
        }
        let live = self.get_opt(api, object, kind, name).await?;
        if let Some(live) = &live {
            self.informers.observe(api, live);
        }
        Ok((live, true))
    }

    /// [`Writer::current`] for a reference that must exist: an object the shared watch does
    /// not know (yet) is read from the server before it is called missing.
    pub async fn find<K>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Option<K>>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        match self.read(api, object, kind, name).await? {
            (Some(found), _) => Ok(Some(found)),
            (None, true) => Ok(None),
            (None, false) => self.get_opt(api, object, kind, name).await,
        }
    }

    /// The object named `object`, or `None` if it does not exist.
    pub async fn get_opt<K>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Option<K>>
    where
        K: Resource + Clone + Debug + DeserializeOwned,
    {
        self.retry
            .run("get", || async {
                crate::decode::get_opt(api, object)
                    .await
                    .map_err(|e| from_kube(&self.backend, kind, name, e))
            })
            .await
    }

    /// Deletes the object named `object` in the background (owned objects go with it); an
    /// object already gone is fine. Returns whether it existed.
    pub async fn delete<K>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<bool>
    where
        K: Resource + Clone + Debug + DeserializeOwned,
    {
        let params = DeleteParams::background();
        self.retry
            .run("delete", || async {
                match api.delete(object, &params).await {
                    Ok(_) => Ok(true),
                    Err(e) if is_not_found(&e) => Ok(false),
                    Err(e) => Err(from_kube(&self.backend, kind, name, e)),
                }
            })
            .await
    }
}

/// The namespace in a resource URL (`.../namespaces/<ns>/<plural>`), if any.
fn namespace_of(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("/namespaces/")?;
    rest.split('/').nth(1).and(rest.split('/').next())
}

/// The annotation recording the hash of what kubecloud last applied to an object.
pub const APPLIED_HASH: &str = "kubecloud.io/applied-hash";

/// A stable hash of an object as kubecloud would apply it (without the [`APPLIED_HASH`]
/// annotation itself), as 16 hex digits.
pub fn applied_hash<K: Serialize>(object: &K) -> String {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(annotations) = value
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(APPLIED_HASH);
    }
    let text = value.to_string();
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Whether the live object `current` already holds every field `desired` sets (`stringData`,
/// which the API server turns into `data`, is not compared).
pub fn holds<K: Serialize>(current: &K, desired: &K) -> bool {
    match (serde_json::to_value(current), serde_json::to_value(desired)) {
        (Ok(current), Ok(mut desired)) => {
            if let Some(map) = desired.as_object_mut() {
                map.remove("stringData");
            }
            is_subset(&desired, &current)
        }
        _ => false,
    }
}

/// Whether every field of `desired` is present in `current` with the same value (objects
/// recursively; lists must match element by element; `null` in `desired` means "absent").
///
/// ```
/// use serde_json::json;
/// use kubecloud_kube::is_subset;
/// let live = json!({"metadata": {"name": "a", "uid": "1"}, "spec": {"x": 1, "y": [1, 2]}});
/// assert!(is_subset(&json!({"metadata": {"name": "a"}, "spec": {"y": [1, 2]}}), &live));
/// assert!(!is_subset(&json!({"spec": {"y": [1]}}), &live));
/// assert!(!is_subset(&json!({"spec": {"z": true}}), &live));
/// ```
pub fn is_subset(desired: &Value, current: &Value) -> bool {
    match (desired, current) {
        (Value::Object(d), Value::Object(c)) => d.iter().all(|(k, dv)| match c.get(k) {
            Some(cv) => is_subset(dv, cv),
            None => dv.is_null(),
        }),
        (Value::Array(d), Value::Array(c)) => {
            d.len() == c.len() && d.iter().zip(c).all(|(dv, cv)| is_subset(dv, cv))
        }
        (Value::Number(d), Value::Number(c)) => d.as_f64() == c.as_f64(),
        _ => desired == current,
    }
}
