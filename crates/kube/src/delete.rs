//! Deleting and waiting until gone: foreground propagation, as `kubectl delete --cascade=foreground
//! --wait` does.
//!
//! [`Writer::delete`](crate::Writer::delete) returns as soon as the API server accepted the
//! deletion; the objects the deleted one owns are then removed by the garbage collector, later.
//! A client that must know that everything is gone (a tenant's `destroy`) deletes with
//! `propagationPolicy=Foreground` instead: the API server keeps the object, marked for deletion
//! with the `foregroundDeletion` finalizer, until the garbage collector has deleted every
//! dependent that has `blockOwnerDeletion: true` (recursively, dependents with dependents of their
//! own are deleted in the foreground too); then the object goes. Waiting for the object to be
//! gone, through the shared watch of its kind ([`crate::Informers`]), therefore waits for its
//! whole tree.

use std::fmt::Debug;
use std::time::Duration;

use kube::Resource;
use kube::api::{Api, DeleteParams};
use kubecloud_core::wait::Check;
use kubecloud_core::{ResourceKind, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Writer;
use crate::errors::{from_kube, is_not_found};

impl Writer {
    /// Deletes the object named `object` with foreground propagation (it stays, marked for
    /// deletion, until the garbage collector has deleted the dependents that block it); an
    /// object already gone is fine. Returns the uid of the object the deletion applies to, or
    /// `None` if there was none. `kind` and `name` name the domain resource in errors.
    pub async fn delete_foreground<K>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Option<String>>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned,
    {
        let params = DeleteParams::foreground();
        self.retry()
            .run("delete", || async {
                match api.delete(object, &params).await {
                    // The answer (the object marked for deletion) is not fed to the shared
                    // watches: waiting until gone needs nothing from it.
                    Ok(answer) => Ok(Some(answer.either(
                        |marked| marked.meta().uid.clone().unwrap_or_default(),
                        |status| status.details.map(|d| d.uid).unwrap_or_default(),
                    ))),
                    Err(e) if is_not_found(&e) => Ok(None),
                    Err(e) => Err(from_kube(self.backend(), kind, name, e)),
                }
            })
            .await
    }

    /// Waits, through the shared watch of its kind, until the object named `object` is gone (or
    /// replaced by another object of the same name: one whose uid is not `uid`). Fails with
    /// [`kubecloud_core::Error::Timeout`] after `timeout`, or earlier at the
    /// [`Deadline`](kubecloud_core::wait::Deadline) of the operation it is part of; the error
    /// names `kind` and `name`, the condition "gone" and the object as last seen, such as
    /// `PersistentVolumeClaim acme/web-root: phase Bound, deletionTimestamp set, finalizers
    /// [kubernetes.io/pvc-protection]` for a claim a pod still uses.
    pub async fn wait_gone<K>(
        &self,
        api: &Api<K>,
        object: &str,
        uid: Option<&str>,
        kind: ResourceKind,
        name: &str,
        timeout: Duration,
    ) -> Result<()>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let uid = uid.filter(|u| !u.is_empty());
        let gone = |o: Option<&K>| match (o, uid) {
            (None, _) => Check::Met,
            (Some(o), Some(uid)) if o.meta().uid.as_deref() != Some(uid) => Check::Met,
            _ => Check::Pending,
        };
        tracing::trace!(url = api.resource_url(), object, ?uid, "waiting until gone");
        let states = self.states(api, object);
        let outcome = crate::wait::wait_described(states, kind, name, "gone", timeout, gone).await;
        tracing::trace!(
            url = api.resource_url(),
            object,
            ok = outcome.is_ok(),
            "wait for deletion ended"
        );
        match outcome {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// [`Writer::delete_foreground`], then [`Writer::wait_gone`]: returns when the object and
    /// every dependent blocking it are gone. Returns whether the object existed. `timeout`
    /// bounds the whole of it, the deletion request included (as does the
    /// [`Deadline`](kubecloud_core::wait::Deadline) in force, if earlier).
    ///
    /// ```no_run
    /// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use k8s_openapi::api::core::v1::ConfigMap;
    /// use kubecloud_core::ResourceKind;
    /// use std::time::Duration;
    /// let writer = kubecloud_kube::Writer::new("example");
    /// let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "acme");
    /// let existed = writer
    ///     .delete_and_wait(&api, "settings", ResourceKind::Service, "settings", Duration::from_secs(60))
    ///     .await?;
    /// # let _ = existed;
    /// # Ok(()) }
    /// ```
    pub async fn delete_and_wait<K>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
        timeout: Duration,
    ) -> Result<bool>
    where
        K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let both = async {
            let Some(uid) = self.delete_foreground(api, object, kind, name).await? else {
                return Ok(false);
            };
            self.wait_gone(api, object, Some(&uid), kind, name, timeout)
                .await?;
            Ok(true)
        };
        kubecloud_core::wait::within(timeout, kind, name, "gone", both).await
    }
}
