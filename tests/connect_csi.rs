//! `Cloud::connect_with` picks the CSI backend where Piraeus is not installed, over the cluster's
//! StorageClasses of CSI drivers, with the capabilities their profiles and the cluster give; and
//! LINSTOR where Piraeus is, unless the options choose CSI.
#![cfg(feature = "kubernetes")]

use kubecloud::csi::connect::CsiConnect;
use kubecloud::{Cloud, ConnectOptions, Part};
use kubecloud_testkit::TestServer;
use kubecloud_testkit::schema::Catalog;

const CEPH: &str = r#"
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: rbd.csi.ceph.com}
spec: {attachRequired: true, podInfoOnMount: false}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: ceph-rbd
  annotations: {storageclass.kubernetes.io/is-default-class: "true", kubecloud.io/replicas: "3"}
provisioner: rbd.csi.ceph.com
parameters: {clusterID: rook-ceph, pool: replicapool, imageFeatures: layering}
allowVolumeExpansion: true
reclaimPolicy: Delete
---
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshotClass
metadata: {name: csi-rbdplugin-snapclass}
driver: rbd.csi.ceph.com
deletionPolicy: Delete
parameters: {clusterID: rook-ceph}
"#;

const LONGHORN: &str = r#"
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: driver.longhorn.io}
spec: {attachRequired: true}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: longhorn
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: driver.longhorn.io
parameters: {numberOfReplicas: "3", staleReplicaTimeout: "2880"}
allowVolumeExpansion: true
"#;

const UNKNOWN: &str = r#"
apiVersion: storage.k8s.io/v1
kind: CSIDriver
metadata: {name: csi.example.com}
spec: {volumeLifecycleModes: [Persistent]}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: example}
provisioner: csi.example.com
allowVolumeExpansion: true
"#;

const LINSTOR_CLUSTER: &str = "apiVersion: piraeus.io/v1\nkind: LinstorCluster\nmetadata: {name: linstorcluster}\n\
    spec: {externalController: {url: \"https://linstor.example:3371\"}}\n";
const LINSTOR_CLASS: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: replicated}\n\
    provisioner: linstor.csi.linbit.com\nparameters: {linstor.csi.linbit.com/resourceGroup: rg-fast}\n";

async fn cluster(seed: &str, piraeus: bool) -> TestServer {
    let without: &[&str] = if piraeus { &[] } else { &["piraeus.io"] };
    let catalog = Catalog::upstream()
        .expect("catalog")
        .without_groups(without)
        .expect("catalog");
    TestServer::builder()
        .owned_catalog(catalog)
        .seed_yaml(seed)
        .start()
        .await
        .expect("Kubernetes double")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_piraeus_ceph_classes_make_csi_storage_with_rwx_block_and_snapshots() {
    let kube = cluster(CEPH, false).await;
    let cloud = Cloud::connect_with(kube.client(), ConnectOptions::new())
        .await
        .expect("connect");
    assert_eq!(cloud.backend_names()[1], "csi");
    let caps = cloud.capabilities().storage;
    assert!(caps.rwx_block, "Ceph RBD serves RWX block (live migration)");
    assert!(caps.snapshots && caps.clones && caps.resize, "{caps:?}");
    assert!(!caps.rwx_filesystem, "RBD filesystems are RWO");
    assert_eq!(caps.max_replicas, 3, "the pool's size the class states");
    assert!(!caps.replica_placement);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longhorn_classes_make_csi_storage_without_snapshots_when_no_snapshot_class_exists() {
    let kube = cluster(LONGHORN, false).await;
    let cloud = Cloud::connect_with(kube.client(), ConnectOptions::new())
        .await
        .expect("connect");
    assert_eq!(cloud.backend_names()[1], "csi");
    let caps = cloud.capabilities().storage;
    assert!(
        caps.rwx_block && caps.rwx_filesystem && caps.clones,
        "{caps:?}"
    );
    assert!(
        !caps.snapshots,
        "no VolumeSnapshotClass of driver.longhorn.io"
    );
    assert_eq!(
        caps.max_replicas,
        kubecloud::MAX_REPLICAS,
        "numberOfReplicas is a class parameter"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_driver_gets_what_the_cluster_says_and_nothing_more() {
    let kube = cluster(UNKNOWN, false).await;
    let cloud = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new().csi_default_tier("example"),
    )
    .await
    .expect("connect");
    assert_eq!(cloud.backend_names()[1], "csi");
    let caps = cloud.capabilities().storage;
    assert!(caps.resize, "the class allows expansion");
    assert!(
        !caps.snapshots && !caps.clones && !caps.rwx_block && !caps.rwx_filesystem,
        "{caps:?}"
    );
    assert_eq!(caps.max_replicas, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piraeus_installed_means_linstor_unless_the_options_choose_csi() {
    let seed = format!("{CEPH}\n---\n{LINSTOR_CLUSTER}\n---\n{LINSTOR_CLASS}");
    let kube = cluster(&seed, true).await;
    let cloud = Cloud::connect_with(kube.client(), ConnectOptions::new())
        .await
        .expect("connect");
    assert_eq!(cloud.backend_names()[1], "linstor");
    let cloud = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new().backend(Part::Storage, "csi"),
    )
    .await
    .expect("connect choosing csi");
    assert_eq!(cloud.backend_names()[1], "csi");
    let err = Cloud::connect_with(
        kube.client(),
        ConnectOptions::new().backend(Part::Storage, "ceph"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.invalid_field(), Some("backend"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_piraeus_or_csi_classes_storage_is_missing_and_both_reasons_are_given() {
    let kube = cluster(LINSTOR_CLASS, false).await;
    let err = Cloud::connect_with(kube.client(), ConnectOptions::new())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("linstor: LINSTOR was not found"), "{err}");
    assert!(err.contains("csi: no CSI storage"), "{err}");
}
