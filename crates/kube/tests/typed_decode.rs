//! DataVolumes and VolumeSnapshots are read as typed models: what the upstream CRDs allow reads
//! (the models are no stricter), and a value kubecloud cannot read is an error naming the kind,
//! the object and the field, never a default (the decoder's own cases are unit-tested in
//! `kubecloud-kube`'s `decode` module).

mod common;

use std::time::Duration;

use kubecloud_core::{Labels, Tenant};
use kubecloud_kube::claims::{ClaimStore, REPLICAS, Reading};
use kubecloud_kube::ownership_labels;
use serde_json::json;

/// A DataVolume of tenant `acme`'s volume `os` importing, with a `Running` condition as CDI
/// writes it early on: no `lastTransitionTime` and no `message`/`reason` (CDI's
/// `DataVolumeCondition` omits an empty message; CDI's CRD requires only `type` and `status`).
fn importing_data_volume(acme: &Tenant) -> serde_json::Value {
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
            "conditions": [{"type": "Running", "status": "True"}]},
    })
}

#[tokio::test]
async fn a_data_volume_with_conditions_as_cdi_writes_them_reads_by_get_and_list() {
    // The models keep each system's own condition type (`--no-condition`): with kopium's
    // `metav1.Condition` this object failed to decode ("missing field `lastTransitionTime`").
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    server
        .cluster()
        .seed(importing_data_volume(&acme))
        .expect("the double takes what CDI's CRD allows");
    let store = ClaimStore::new(
        server.client(),
        common::quick_retries(),
        Duration::from_secs(30),
    );
    let by_get = store.owned_volume(&acme, "os").await.unwrap();
    let state = kubecloud_kube::cdi::import_state_of(by_get.dv.as_ref().expect("its DataVolume"));
    assert_eq!(
        state,
        kubecloud_kube::cdi::ImportState::Importing {
            phase: "ImportInProgress".into(),
            progress: Some(50)
        },
        "{state:?}"
    );
    let listed = store
        .owned_volumes(&acme, &Labels::new(), Reading::States)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let (listed, got) = (listed[0].dv.as_ref().unwrap(), by_get.dv.as_ref().unwrap());
    assert_eq!((&listed.spec, &listed.status), (&got.spec, &got.status));
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
