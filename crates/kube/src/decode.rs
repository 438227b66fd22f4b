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
    serde_json::from_slice(body).map_err(|err| {
        let explained = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| explain::<T>(&v, v["kind"].as_str().unwrap_or("object")));
        kube::Error::SerdeError(explained.map_or(err, serde_json::Error::custom))
    })
}

/// The items of the list in the JSON `body`, decoded by `decode`.
pub(crate) fn list_items<T, L>(body: &[u8], decode: L) -> kube::Result<Vec<T>>
where
    T: DeserializeOwned,
    L: FnOnce(&[u8]) -> serde_json::Result<Vec<T>>,
{
    decode(body).map_err(|err| {
        let explained = serde_json::from_slice::<Value>(body).ok().and_then(|list| {
            let kind = list["kind"].as_str().unwrap_or("object");
            let kind = kind.strip_suffix("List").unwrap_or(kind).to_string();
            list["items"]
                .as_array()?
                .iter()
                .find_map(|item| explain::<T>(item, &kind))
        });
        kube::Error::SerdeError(explained.map_or(err, serde_json::Error::custom))
    })
}

/// The object `object` (of `kind`) decoded into `T`, or what does not decode, by path.
pub(crate) fn value<T: DeserializeOwned>(object: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(object).map_err(|e| {
        describe(
            object,
            object["kind"].as_str().unwrap_or("object"),
            &e.path().to_string(),
            e.inner(),
        )
    })
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
        let dv = serde_json::json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": "os", "namespace": "acme"}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        let err = value::<kubecloud_models::cdi::DataVolume>(&dv).unwrap_err();
        assert!(err.contains("status.conditions[0]"), "{err}");
        assert!(err.contains("lastTransitionTime"), "{err}");
    }
}
