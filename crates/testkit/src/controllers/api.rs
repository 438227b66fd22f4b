//! The API handle a [`Controller`](super::Controller) works through: the in-process
//! [`Cluster`] inside the API double, or a [`RemoteApi`] over `kube::Client` on any Kubernetes API
//! server (`kubecloud-sim`).
//!
//! The verbs are those of [`Cluster`], as `async` methods with the same arguments and results, so
//! a controller written for one runs on both. In process they call [`Cluster`] directly (no
//! socket, nothing awaited but the call itself); remotely they are HTTP requests with the
//! controller's field manager.

use serde_json::Value;

use super::ControllerError;
use crate::cluster::Cluster;
use crate::remote::RemoteApi;
use crate::status::ApiError;

/// Where a controller's calls go. Cheap to clone.
///
/// ```
/// use kubecloud_testkit::{ControllerApi, TestServer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::start().await?;
/// let api = ControllerApi::from(server.cluster());
/// assert!(api.get_opt("v1", "ConfigMap", Some("default"), "none").await?.is_none());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ControllerApi(Inner);

#[derive(Clone)]
enum Inner {
    InProcess(Cluster),
    Remote(RemoteApi),
}

impl From<Cluster> for ControllerApi {
    fn from(cluster: Cluster) -> Self {
        ControllerApi(Inner::InProcess(cluster))
    }
}

impl From<RemoteApi> for ControllerApi {
    fn from(remote: RemoteApi) -> Self {
        ControllerApi(Inner::Remote(remote))
    }
}

impl std::fmt::Debug for ControllerApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::InProcess(_) => "ControllerApi::InProcess",
            Inner::Remote(_) => "ControllerApi::Remote",
        })
    }
}

/// Calls the same verb on whichever handle is inside; the in-process one is synchronous.
macro_rules! both {
    ($self:ident, $verb:ident ( $($arg:expr),* )) => {
        match &$self.0 {
            Inner::InProcess(c) => c.$verb($($arg),*),
            Inner::Remote(r) => r.$verb($($arg),*).await,
        }
    };
}

impl ControllerApi {
    /// The in-process handle, for controllers that only exist inside the API double (the built-in
    /// garbage collector, namespace and CRD controllers, PVC protection and the CSI simulation):
    /// an error on a remote API server, where kube-controller-manager or a real driver does that
    /// job.
    pub fn in_process(&self) -> Result<&Cluster, ControllerError> {
        match &self.0 {
            Inner::InProcess(c) => Ok(c),
            Inner::Remote(_) => Err(ControllerError::Other(
                "this controller runs only inside the API double".into(),
            )),
        }
    }

    /// Whether calls go to a remote API server.
    pub fn is_remote(&self) -> bool {
        matches!(self.0, Inner::Remote(_))
    }

    /// The same handle writing as field manager `manager`.
    pub fn as_manager(&self, manager: &str) -> ControllerApi {
        ControllerApi(match &self.0 {
            Inner::InProcess(c) => Inner::InProcess(c.as_manager(manager)),
            Inner::Remote(r) => Inner::Remote(r.as_manager(manager)),
        })
    }

    /// [`Cluster::get`].
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        both!(self, get(api_version, kind, namespace, name))
    }

    /// [`Cluster::get_opt`].
    pub async fn get_opt(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        both!(self, get_opt(api_version, kind, namespace, name))
    }

    /// [`Cluster::list`].
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        both!(self, list(api_version, kind, namespace))
    }

    /// [`Cluster::list_selected`].
    pub async fn list_selected(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<Vec<Value>, ApiError> {
        both!(
            self,
            list_selected(api_version, kind, namespace, label_selector)
        )
    }

    /// The objects of a kind (in one namespace or all) that `keep` selects. In process the
    /// selection runs on the stored objects, so only those kept are copied.
    pub async fn list_where(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        keep: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>, ApiError> {
        match &self.0 {
            Inner::InProcess(c) => c.list_where(api_version, kind, namespace, keep),
            Inner::Remote(r) => {
                let mut all = r.list(api_version, kind, namespace).await?;
                all.retain(|o| keep(o));
                Ok(all)
            }
        }
    }

    /// Calls `f` on every object of a kind (in one namespace or all). In process it reads the
    /// stored objects without copying them.
    pub async fn for_each(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        mut f: impl FnMut(&Value),
    ) -> Result<(), ApiError> {
        match &self.0 {
            Inner::InProcess(c) => c.for_each(api_version, kind, namespace, f),
            Inner::Remote(r) => {
                r.list(api_version, kind, namespace)
                    .await?
                    .iter()
                    .for_each(&mut f);
                Ok(())
            }
        }
    }

    /// The objects of a kind in `namespace` with an owner reference to `uid` (in process an
    /// index lookup).
    pub async fn owned_by(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        uid: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let owned = |o: &Value| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
        };
        match &self.0 {
            Inner::InProcess(c) => Ok(c
                .dependents(uid)
                .into_iter()
                .filter(|(_, o)| o["kind"] == kind && o["metadata"]["namespace"] == namespace)
                .map(|(_, o)| o)
                .collect()),
            Inner::Remote(r) => {
                let mut all = r.list(api_version, kind, Some(namespace)).await?;
                all.retain(owned);
                Ok(all)
            }
        }
    }

    /// [`Cluster::create`].
    pub async fn create(&self, object: Value) -> Result<Value, ApiError> {
        both!(self, create(object))
    }

    /// [`Cluster::replace`].
    pub async fn replace(&self, object: Value) -> Result<Value, ApiError> {
        both!(self, replace(object))
    }

    /// [`Cluster::replace_status`].
    pub async fn replace_status(&self, object: Value) -> Result<Value, ApiError> {
        both!(self, replace_status(object))
    }

    /// [`Cluster::merge_patch`].
    pub async fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        both!(self, merge_patch(api_version, kind, namespace, name, patch))
    }

    /// [`Cluster::merge_patch_status`].
    pub async fn merge_patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        both!(
            self,
            merge_patch_status(api_version, kind, namespace, name, patch)
        )
    }

    /// [`Cluster::apply`].
    pub async fn apply(&self, object: &Value, force: bool) -> Result<Value, ApiError> {
        both!(self, apply(object, force))
    }

    /// [`Cluster::apply_status`].
    pub async fn apply_status(&self, object: &Value, force: bool) -> Result<Value, ApiError> {
        both!(self, apply_status(object, force))
    }

    /// [`Cluster::delete`].
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        both!(self, delete(api_version, kind, namespace, name))
    }

    /// [`Cluster::delete_with`].
    pub async fn delete_with(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        propagation: Option<&str>,
    ) -> Result<Value, ApiError> {
        both!(
            self,
            delete_with(api_version, kind, namespace, name, propagation)
        )
    }
}
