//! Objects as kubecloud sends them, for writing out instead of applying (GitOps).
//!
//! A backend that renders manifests must produce exactly what its driver sends, so that a
//! cluster applied from the manifests and later planned or applied by kubecloud shows no drift.
//! [`stamped`] adds what [`crate::Writer::apply_if_changed`] adds (the [`APPLIED_HASH`]
//! annotation); [`manifest`] turns a typed object into the JSON written out.

use kube::Resource;
use kubecloud_core::{Error, Result};
use serde::Serialize;
use serde_json::Value;

use crate::apply::{APPLIED_HASH, applied_hash};

/// `desired` as [`crate::Writer::apply_if_changed`] sends it: with the [`APPLIED_HASH`]
/// annotation recording its hash.
///
/// ```
/// use k8s_openapi::api::core::v1::ConfigMap;
/// let mut cm = ConfigMap::default();
/// cm.metadata.name = Some("settings".into());
/// let sent = kubecloud_kube::render::stamped(&cm);
/// let hash = &sent.metadata.annotations.as_ref().unwrap()[kubecloud_kube::APPLIED_HASH];
/// assert_eq!(hash, &kubecloud_kube::applied_hash(&cm));
/// ```
pub fn stamped<K: Resource + Serialize + Clone>(desired: &K) -> K {
    let hash = applied_hash(desired);
    let mut desired = desired.clone();
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_HASH.to_string(), hash);
    desired
}

/// The JSON of an object to write out; `backend` names the backend in the error.
///
/// ```
/// use k8s_openapi::api::core::v1::ConfigMap;
/// let mut cm = ConfigMap::default();
/// cm.metadata.name = Some("settings".into());
/// let json = kubecloud_kube::render::manifest("example", &cm)?;
/// assert_eq!(json["kind"], "ConfigMap");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn manifest<K: Serialize>(backend: &str, object: &K) -> Result<Value> {
    serde_json::to_value(object)
        .map_err(|e| Error::backend(backend, "rendering a manifest", false, e))
}
