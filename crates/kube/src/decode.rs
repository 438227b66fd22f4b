//! Decoding the API server's answers into typed objects. An object that does not decode (a
//! required field missing, a field of the wrong type) is a `kube::Error::SerdeError` naming the
//! object's kind, name and namespace and the path of the field, e.g.
//! `DataVolume "os" in namespace "acme" does not decode: status.conditions[0]: missing field
//! `lastTransitionTime``; [`crate::from_kube`] then names the domain resource too.
//!
//! The answer is decoded once, as kube-rs does; only when that fails is it read again as JSON to
//! find which object and which field.

use kube::Api;
use kube::api::GetParams;
use serde::de::{DeserializeOwned, Error as _};
use serde_json::Value;

/// `api.get_opt(name)`, with the decode error naming the object and the field.
pub(crate) async fn get_opt<K, T>(api: &Api<K>, name: &str) -> kube::Result<Option<T>>
where
    K: kube::Resource + Clone,
    T: DeserializeOwned,
{
    let mut request = kube::core::Request::new(api.resource_url())
        .get(name, &GetParams::default())
        .map_err(kube::Error::BuildRequest)?;
    request.extensions_mut().insert("get");
    match crate::lists::body_bytes(api.clone().into_client(), request).await {
        Ok(body) => object(&body).map(Some),
        Err(kube::Error::Api(status)) if status.is_not_found() => Ok(None),
        Err(err) => Err(err),
    }
}

/// One object from the JSON `body`.
pub(crate) fn object<T: DeserializeOwned>(body: &[u8]) -> kube::Result<T> {
    serde_json::from_slice(body).or_else(|err| {
        let Ok(mut v) = serde_json::from_slice::<Value>(body) else {
            return Err(kube::Error::SerdeError(err));
        };
        if with_default_spec(&mut v)
            && let Ok(object) = serde_json::from_value(v.clone())
        {
            return Ok(object);
        }
        let explained = explain::<T>(&v, v["kind"].as_str().unwrap_or("object"));
        Err(kube::Error::SerdeError(
            explained.map_or(err, serde_json::Error::custom),
        ))
    })
}

/// Gives a custom resource stored without `spec` an empty one, as its CRD's schema allows
/// (the API server stored it, so `spec` is not required: MetalLB's `L2Advertisement` that
/// announces every pool has none, and most CRDs do not require it). The generated models hold
/// `spec` as a required field (kube-derive's root objects), so an object without one reads as
/// the model's spec decoded from `{}`: its optional fields unset, and a decode error naming the
/// field if the spec has a required one. Returns whether `spec` was added.
fn with_default_spec(object: &mut Value) -> bool {
    match object.as_object_mut() {
        Some(map) if !map.contains_key("spec") => {
            map.insert("spec".into(), Value::Object(Default::default()));
            true
        }
        _ => false,
    }
}

/// The items of the list in the JSON `body`, decoded by `decode`.
pub(crate) fn list_items<T, L>(body: &[u8], decode: L) -> kube::Result<Vec<T>>
where
    T: DeserializeOwned,
    L: FnOnce(&[u8]) -> serde_json::Result<Vec<T>>,
{
    decode(body).or_else(|err| {
        let Ok(mut list) = serde_json::from_slice::<Value>(body) else {
            return Err(kube::Error::SerdeError(err));
        };
        let kind = list["kind"].as_str().unwrap_or("object");
        let kind = kind.strip_suffix("List").unwrap_or(kind).to_string();
        let items = list["items"]
            .as_array_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let mut decoded = Vec::with_capacity(items.len());
        for mut item in items {
            with_default_spec(&mut item);
            match value::<T>(&item) {
                Ok(object) => decoded.push(object),
                Err(_) => {
                    let explained = explain::<T>(&item, &kind);
                    return Err(kube::Error::SerdeError(
                        explained.map_or(err, serde_json::Error::custom),
                    ));
                }
            }
        }
        Ok(decoded)
    })
}

/// The object `object` (of `kind`) decoded into `T`, or what does not decode, by path.
pub(crate) fn value<T: DeserializeOwned>(object: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(object).or_else(|e| {
        let mut with_spec = object.clone();
        if with_default_spec(&mut with_spec)
            && let Ok(object) = serde_json::from_value(with_spec)
        {
            return Ok(object);
        }
        Err(describe(
            object,
            object["kind"].as_str().unwrap_or("object"),
            &e.path().to_string(),
            e.inner(),
        ))
    })
}

/// A dynamic object (or any serialisable one) read as the typed model `T`, for objects that
/// arrive untyped (a server-side apply's answer through an `Api<DynamicObject>`): a field that
/// does not decode is a permanent backend error of `backend` naming the object's kind, its name
/// and the field's path, never a default value.
///
/// ```
/// use kubecloud_core::ResourceKind;
/// use kubecloud_models::metallb::IpAddressPool;
/// let live = serde_json::json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
///     "metadata": {"name": "acme-public", "namespace": "metallb-system"},
///     "spec": {"addresses": ["192.0.2.0/28"]},
///     "status": {"assignedIPv4": "one"}});
/// let err = kubecloud_kube::convert::<IpAddressPool>(&live, "metallb", ResourceKind::AddressPool, "public")
///     .unwrap_err();
/// assert!(err.to_string().contains("status.assignedIPv4"), "{err}");
/// ```
pub fn convert<T: DeserializeOwned>(
    object: &impl serde::Serialize,
    backend: &str,
    kind: kubecloud_core::ResourceKind,
    name: &str,
) -> kubecloud_core::Result<T> {
    let fail = |reason: String| {
        crate::from_kube(
            backend,
            kind,
            name,
            kube::Error::SerdeError(serde_json::Error::custom(reason)),
        )
    };
    let json = serde_json::to_value(object).map_err(|e| fail(e.to_string()))?;
    value(&json).map_err(fail)
}

/// Why `object` (of `kind`) does not decode into `T`, if it does not.
fn explain<T: DeserializeOwned>(object: &Value, kind: &str) -> Option<String> {
    serde_path_to_error::deserialize::<_, T>(object)
        .err()
        .map(|e| describe(object, kind, &e.path().to_string(), e.inner()))
}

fn describe(object: &Value, kind: &str, path: &str, inner: &serde_json::Error) -> String {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let place = object["metadata"]["namespace"]
        .as_str()
        .map(|ns| format!(" in namespace {ns:?}"))
        .unwrap_or_default();
    format!("{kind} {name:?}{place} does not decode: {path}: {inner}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecloud_models::snapshot::VolumeSnapshot;

    use kubecloud_models::metallb::{BgpPeer, L2Advertisement};

    /// MetalLB's documented "announce every pool" advertisement: no `spec` at all.
    const BARE_L2: &str = r#"{"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
        "metadata": {"name": "everything", "namespace": "metallb-system"}}"#;

    #[test]
    fn a_custom_resource_without_spec_reads_as_an_empty_spec() {
        let l2 = object::<L2Advertisement>(BARE_L2.as_bytes()).unwrap();
        assert_eq!(l2.metadata.name.as_deref(), Some("everything"));
        assert_eq!(l2.spec, Default::default());
        let body = format!(
            r#"{{"apiVersion": "metallb.io/v1beta1", "kind": "L2AdvertisementList", "metadata": {{}}, "items": [{BARE_L2}]}}"#
        );
        let listed = list_items::<L2Advertisement, _>(body.as_bytes(), |b| {
            serde_json::from_slice::<kube::api::ObjectList<L2Advertisement>>(b).map(|l| l.items)
        })
        .unwrap();
        assert_eq!(listed, std::slice::from_ref(&l2));
        let v: Value = serde_json::from_str(BARE_L2).unwrap();
        assert_eq!(value::<L2Advertisement>(&v).unwrap(), l2);
    }

    #[test]
    fn an_empty_spec_still_needs_its_required_fields() {
        let peer = r#"{"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
            "metadata": {"name": "tor", "namespace": "metallb-system"}}"#;
        let err = object::<BgpPeer>(peer.as_bytes()).unwrap_err().to_string();
        assert!(
            err.contains(r#"BGPPeer "tor""#) && err.contains("spec"),
            "{err}"
        );
        assert!(err.contains("myASN"), "{err}");
    }

    const SNAPSHOT: &str = r#"{"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "nightly", "namespace": "acme"},
        "spec": {"source": {"persistentVolumeClaimName": "root"}},
        "status": {"readyToUse": "yes"}}"#;

    #[test]
    fn an_object_of_a_wrong_type_names_kind_object_and_field() {
        let err = object::<VolumeSnapshot>(SNAPSHOT.as_bytes()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(r#"VolumeSnapshot "nightly" in namespace "acme" does not decode: status.readyToUse: invalid type"#),
            "{text}"
        );
    }

    #[test]
    fn a_list_names_the_item_that_does_not_decode() {
        let body = format!(
            r#"{{"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotList", "metadata": {{}}, "items": [{SNAPSHOT}]}}"#
        );
        let err = list_items::<VolumeSnapshot, _>(body.as_bytes(), |b| {
            serde_json::from_slice::<kube::api::ObjectList<VolumeSnapshot>>(b).map(|l| l.items)
        })
        .unwrap_err();
        assert!(
            err.to_string().contains(
                r#"VolumeSnapshot "nightly" in namespace "acme" does not decode: status.readyToUse"#
            ),
            "{err}"
        );
    }

    #[test]
    fn a_missing_required_field_is_named() {
        // CDI's CRD requires a condition's `type` and `status`, and so does the model.
        let dv = serde_json::json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": "os", "namespace": "acme"}, "spec": {},
            "status": {"conditions": [{"type": "Ready"}]}});
        let err = value::<kubecloud_models::cdi::DataVolume>(&dv).unwrap_err();
        assert!(err.contains("status.conditions[0]"), "{err}");
        assert!(err.contains("missing field `status`"), "{err}");
    }
}
