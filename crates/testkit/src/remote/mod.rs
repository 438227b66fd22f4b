//! The simulated controllers on any Kubernetes API server: [`RemoteApi`], the verbs of
//! [`Cluster`](crate::Cluster) as HTTP requests through a `kube::Client`, and
//! [`spawn`] — a [`Controller`](crate::Controller) fed by watches (see
//! [`watch`]) instead of the double's store.
//!
//! This is what `kubecloud-sim` runs (see [`crate::sim`]). The requests are those a real
//! controller makes: reads by `GET`, writes by `POST`/`PUT` (`/status` for the status
//! subresource), JSON merge patch and server-side apply, all with the controller's name as
//! `fieldManager` and `fieldValidation=Strict` (as the in-process handle is strict); deletes with
//! a propagation policy. Kinds are resolved to resources by discovery (`pinned_kind`, as
//! `kube::discovery` does), cached per kind.

pub mod watch;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind, Request};
use kube::discovery::{self, Scope};
use serde_json::Value;

use crate::status::ApiError;

pub use watch::spawn;

/// A resource found by discovery.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) resource: ApiResource,
    pub(crate) namespaced: bool,
}

/// The verbs of [`Cluster`](crate::Cluster) over a `kube::Client`, writing as one field manager.
/// Cheap to clone (the discovery cache is shared).
///
/// ```no_run
/// use kubecloud_testkit::remote::RemoteApi;
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let api = RemoteApi::new(kube::Client::try_default().await?, "my-controller");
/// let nodes = api.list("v1", "Node", None).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteApi {
    client: kube::Client,
    manager: String,
    resolved: Arc<Mutex<HashMap<(String, String), Resolved>>>,
}

/// kube's error as the double's [`ApiError`]: an API server's `Status` as it is, anything else
/// (connection, decoding) a 503 so that the controller's retry takes it as transient.
pub(crate) fn api_error(e: kube::Error) -> ApiError {
    match e {
        kube::Error::Api(status) => ApiError {
            details: status
                .details
                .as_ref()
                .and_then(|d| serde_json::to_value(d).ok())
                .unwrap_or(Value::Null),
            ..ApiError::new(status.code, &status.reason, status.message.clone())
        },
        other => ApiError::new(503, "ServiceUnavailable", other.to_string()),
    }
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(400, "BadRequest", e.to_string())
}

fn str_at<'a>(object: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    object[field]
        .as_str()
        .ok_or_else(|| bad_request(format!("Object '{field}' is missing")))
}

fn name_of(object: &Value) -> Result<&str, ApiError> {
    object["metadata"]["name"]
        .as_str()
        .ok_or_else(|| ApiError::new(422, "Invalid", "metadata.name: Required value"))
}

/// `request` with `fieldValidation=Strict` added to its query.
fn strict(mut request: http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let uri = request.uri().to_string();
    let sep = if uri.contains('?') { '&' } else { '?' };
    if let Ok(strict) = format!("{uri}{sep}fieldValidation=Strict").parse() {
        *request.uri_mut() = strict;
    }
    request
}

impl RemoteApi {
    /// A handle on the API server `client` talks to, writing as field manager `manager`.
    pub fn new(client: kube::Client, manager: &str) -> Self {
        RemoteApi {
            client,
            manager: manager.to_string(),
            resolved: Arc::default(),
        }
    }

    /// The same handle writing as field manager `manager`.
    pub fn as_manager(&self, manager: &str) -> RemoteApi {
        RemoteApi {
            manager: manager.to_string(),
            ..self.clone()
        }
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// The field manager of this handle's writes.
    pub fn manager(&self) -> &str {
        &self.manager
    }

    /// The resource serving `kind` in `api_version`, by discovery (cached once found).
    pub(crate) async fn resolve(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Resolved, ApiError> {
        let key = (api_version.to_string(), kind.to_string());
        if let Some(r) = self.lock().get(&key) {
            return Ok(r.clone());
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let (resource, caps) =
            discovery::pinned_kind(&self.client, &gvk)
                .await
                .map_err(|e| match e {
                    kube::Error::Api(s) if s.code != 404 => api_error(kube::Error::Api(s)),
                    kube::Error::Discovery(_) | kube::Error::Api(_) => ApiError::new(
                        404,
                        "NotFound",
                        format!("no matches for kind \"{kind}\" in version \"{api_version}\""),
                    ),
                    other => api_error(other),
                })?;
        let r = Resolved {
            resource,
            namespaced: caps.scope == Scope::Namespaced,
        };
        self.lock().insert(key, r.clone());
        Ok(r)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Resolved>> {
        self.resolved.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The request builder for a kind's collection (in `namespace` if the kind is namespaced).
    async fn request(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<(Request, Resolved), ApiError> {
        let r = self.resolve(api_version, kind).await?;
        let ns = namespace.filter(|_| r.namespaced);
        let url = <DynamicObject as kube::Resource>::url_path(&r.resource, ns);
        Ok((Request::new(url), r))
    }

    async fn send(&self, request: http::Request<Vec<u8>>) -> Result<Value, ApiError> {
        self.client
            .request::<Value>(request)
            .await
            .map_err(api_error)
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            field_manager: Some(self.manager.clone()),
            ..Default::default()
        }
    }

    /// Reads one object. `namespace` is ignored for cluster-scoped kinds.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let (req, r) = self.request(api_version, kind, namespace).await?;
        let object = self
            .send(req.get(name, &Default::default()).map_err(bad_request)?)
            .await?;
        Ok(typed(object, &r.resource))
    }

    /// Reads one object, `None` if it does not exist.
    pub async fn get_opt(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        match self.get(api_version, kind, namespace, name).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() && !e.message.starts_with("no matches") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Lists objects of a kind, in one namespace or (`None`) all of them.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, ApiError> {
        self.list_selected(api_version, kind, namespace, "").await
    }

    /// Lists objects matching a label selector. Items get `apiVersion` and `kind` (a list's
    /// items carry none).
    pub async fn list_selected(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let (req, r) = self.request(api_version, kind, namespace).await?;
        let params = ListParams {
            label_selector: (!label_selector.is_empty()).then(|| label_selector.to_string()),
            ..Default::default()
        };
        let list = self.send(req.list(&params).map_err(bad_request)?).await?;
        let items = match list {
            Value::Object(mut m) => m.remove("items"),
            _ => None,
        };
        Ok(match items {
            Some(Value::Array(items)) => items.into_iter().map(|o| typed(o, &r.resource)).collect(),
            _ => Vec::new(),
        })
    }

    /// Creates an object (POST).
    pub async fn create(&self, object: Value) -> Result<Value, ApiError> {
        let (av, kind) = (str_at(&object, "apiVersion")?, str_at(&object, "kind")?);
        let ns = object["metadata"]["namespace"].as_str();
        let (req, _) = self.request(av, kind, ns).await?;
        let body = serde_json::to_vec(&object).map_err(bad_request)?;
        let req = req.create(&self.post_params(), body).map_err(bad_request)?;
        self.send(strict(req)).await
    }

    async fn put(&self, object: Value, status: bool) -> Result<Value, ApiError> {
        let (av, kind) = (str_at(&object, "apiVersion")?, str_at(&object, "kind")?);
        let ns = object["metadata"]["namespace"].as_str();
        let name = name_of(&object)?;
        let (req, _) = self.request(av, kind, ns).await?;
        let body = serde_json::to_vec(&object).map_err(bad_request)?;
        let req = if status {
            req.replace_subresource("status", name, &self.post_params(), body)
        } else {
            req.replace(name, &self.post_params(), body)
        };
        self.send(strict(req.map_err(bad_request)?)).await
    }

    /// Replaces an object (PUT), with optimistic concurrency on `metadata.resourceVersion`.
    pub async fn replace(&self, object: Value) -> Result<Value, ApiError> {
        self.put(object, false).await
    }

    /// Replaces an object's status (PUT on `/status`).
    pub async fn replace_status(&self, object: Value) -> Result<Value, ApiError> {
        self.put(object, true).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        status: bool,
        params: &PatchParams,
        patch: &Patch<&Value>,
    ) -> Result<Value, ApiError> {
        let (req, _) = self.request(api_version, kind, namespace).await?;
        let req = if status {
            req.patch_subresource("status", name, params, patch)
        } else {
            req.patch(name, params, patch)
        };
        self.send(req.map_err(bad_request)?).await
    }

    fn merge_params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(self.manager.clone()),
            field_validation: Some(kube::api::ValidationDirective::Strict),
            ..Default::default()
        }
    }

    /// Applies a JSON merge patch to an object.
    pub async fn merge_patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        let params = self.merge_params();
        self.patch(
            api_version,
            kind,
            namespace,
            name,
            false,
            &params,
            &Patch::Merge(patch),
        )
        .await
    }

    /// Applies a JSON merge patch to an object's status subresource.
    pub async fn merge_patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch: &Value,
    ) -> Result<Value, ApiError> {
        let params = self.merge_params();
        self.patch(
            api_version,
            kind,
            namespace,
            name,
            true,
            &params,
            &Patch::Merge(patch),
        )
        .await
    }

    async fn apply_sub(
        &self,
        object: &Value,
        force: bool,
        status: bool,
    ) -> Result<Value, ApiError> {
        let (av, kind) = (str_at(object, "apiVersion")?, str_at(object, "kind")?);
        let ns = object["metadata"]["namespace"].as_str();
        let name = name_of(object)?;
        let mut params = PatchParams::apply(&self.manager);
        params.force = force;
        params.field_validation = Some(kube::api::ValidationDirective::Strict);
        self.patch(av, kind, ns, name, status, &params, &Patch::Apply(object))
            .await
    }

    /// Server-side apply of `object` by this handle's field manager.
    pub async fn apply(&self, object: &Value, force: bool) -> Result<Value, ApiError> {
        self.apply_sub(object, force, false).await
    }

    /// Server-side apply on the status subresource.
    pub async fn apply_status(&self, object: &Value, force: bool) -> Result<Value, ApiError> {
        self.apply_sub(object, force, true).await
    }

    /// Deletes an object (background propagation, the server's default for most kinds).
    /// Returns what the server answers: the object, or a `Status`.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.delete_with(api_version, kind, namespace, name, None)
            .await
    }

    /// Deletes an object with a propagation policy (`Background`, `Foreground`, `Orphan`).
    pub async fn delete_with(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        propagation: Option<&str>,
    ) -> Result<Value, ApiError> {
        use kube::api::PropagationPolicy as P;
        let propagation_policy = match propagation {
            None => None,
            Some("Background") => Some(P::Background),
            Some("Foreground") => Some(P::Foreground),
            Some("Orphan") => Some(P::Orphan),
            Some(other) => {
                return Err(bad_request(format!(
                    "unknown propagation policy \"{other}\""
                )));
            }
        };
        let (req, _) = self.request(api_version, kind, namespace).await?;
        let params = DeleteParams {
            propagation_policy,
            ..Default::default()
        };
        self.send(req.delete(name, &params).map_err(bad_request)?)
            .await
    }
}

/// `object` with the `apiVersion` and `kind` of `resource` (list items and watch objects decoded
/// as `DynamicObject` may lack them).
pub(crate) fn typed(mut object: Value, resource: &ApiResource) -> Value {
    if let Value::Object(m) = &mut object {
        m.insert(
            "apiVersion".into(),
            Value::String(resource.api_version.clone()),
        );
        m.insert("kind".into(), Value::String(resource.kind.clone()));
    }
    object
}
