//! DataVolumes and VolumeSnapshots are read as typed models: an object the API server holds that
//! does not decode into its model is an error naming the kind, the object and the field, for a
//! GET and for a list alike (never a default, never skipped).

mod common;

use std::time::Duration;

use kubecloud_core::{Labels, Tenant};
use kubecloud_kube::claims::{ClaimStore, REPLICAS, Reading};
use kubecloud_kube::ownership_labels;
use serde_json::json;

/// A DataVolume of tenant `acme`'s volume `os` whose `Ready` condition has no
/// `lastTransitionTime`: valid for CDI's CRD (which requires only `type` and `status`), but CDI
/// always sets it and the model (the `metav1.Condition` kopium chose) requires it.
fn data_volume_without_transition_time(acme: &Tenant) -> serde_json::Value {
    json!({
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "metadata": {
            "name": "os",
            "namespace": "acme",
            "labels": ownership_labels(acme, "os"),
            "annotations": {REPLICAS: "1"},
        },
        "spec": {
            "source": {"http": {"url": "https://images.example.com/os.qcow2"}},
            "storage": {"resources": {"requests": {"storage": "1Gi"}}},
        },
        "status": {"phase": "ImportInProgress", "progress": "50.00%",
            "conditions": [{"type": "Ready", "status": "False"}]},
    })
}

fn assert_names_kind_object_and_field(err: &kubecloud_core::Error) {
    let text = err.to_string();
    assert!(!err.is_temporary(), "{text}");
    for part in [
        r#"DataVolume "os" in namespace "acme""#,
        "status.conditions[0]",
        "lastTransitionTime",
    ] {
        assert!(text.contains(part), "{part:?} missing from {text}");
    }
}

#[tokio::test]
async fn a_data_volume_that_does_not_decode_is_an_error_naming_it_and_the_field() {
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    server
        .cluster()
        .seed(data_volume_without_transition_time(&acme))
        .expect("the double takes what CDI's CRD allows");
    let store = ClaimStore::new(
        server.client(),
        common::quick_retries(),
        Duration::from_secs(30),
    );
    // A GET (the volume, by name).
    let err = store.owned_volume(&acme, "os").await.unwrap_err();
    assert_names_kind_object_and_field(&err);
    // A list (all the tenant's volumes, with their states).
    let err = store
        .owned_volumes(&acme, &Labels::new(), Reading::States)
        .await
        .unwrap_err();
    assert_names_kind_object_and_field(&err);
}

#[tokio::test]
async fn a_volume_snapshot_with_a_size_that_is_not_one_is_an_error_naming_it() {
    // The double refuses a `status.restoreSize` that is not a quantity (the CRD's pattern), so
    // the size annotation kubecloud writes carries the bad value.
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let mut labels = ownership_labels(&acme, "nightly");
    labels.insert(kubecloud_kube::claims::VOLUME.into(), "root".into());
    server
        .cluster()
        .seed(json!({
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "metadata": {"name": "nightly", "namespace": "acme", "labels": labels,
                "annotations": {kubecloud_kube::claims::SIZE: "lots"}},
            "spec": {"source": {"persistentVolumeClaimName": "root"}},
            "status": {"readyToUse": true, "restoreSize": "1Gi"},
        }))
        .expect("seeded");
    let store = ClaimStore::new(
        server.client(),
        common::quick_retries(),
        Duration::from_secs(30),
    );
    let err = store.list_snapshots(&acme, None).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(r#"VolumeSnapshot "nightly": annotation kubecloud.io/size holds "lots""#),
        "{text}"
    );
}
