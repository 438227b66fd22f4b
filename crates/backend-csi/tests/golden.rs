//! Golden translation files (tests/golden/*.json, reviewable), upstream schema validation of
//! every object the backend sends, and the typed refusals of each driver profile, on the
//! StorageClasses each driver's documentation shows. `UPDATE_GOLDEN=1` rewrites the files.

use k8s_openapi::api::storage::v1::StorageClass;
use kubecloud_core::{AccessMode, ByteSize, Error, Tenant, VolumeMode, VolumeSource, VolumeSpec};
use kubecloud_csi::tiers::{Cluster, Tier, tiers_of};
use kubecloud_csi::translate::{self, Choice, choose_class};
use kubecloud_testkit::schema::Catalog;
use serde_json::{Value, json};

fn check(name: &str, object: &Value) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let rt = Catalog::upstream()
        .expect("catalog")
        .by_kind(api_version, kind)
        .expect("kind in catalog");
    if let Err(errors) = rt.validate(object) {
        panic!("{name}: {kind} refused by the upstream schema: {errors:?}");
    }
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let rendered = serde_json::to_string_pretty(object).expect("json") + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &rendered).expect("write golden");
    }
    let golden = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{path} missing; run with UPDATE_GOLDEN=1"));
    assert_eq!(rendered, golden, "{name} differs from {path}");
}

fn with_kind<T: serde::Serialize>(api_version: &str, kind: &str, o: &T) -> Value {
    let mut v = serde_json::to_value(o).expect("json");
    v["apiVersion"] = api_version.into();
    v["kind"] = kind.into();
    v
}

fn class(v: Value) -> StorageClass {
    serde_json::from_value(v).expect("storage class")
}

/// The tier of one class, as its driver's documentation shows it.
fn tier_of(sc: Value) -> Tier {
    tiers_of(&Cluster {
        classes: vec![class(sc)],
        ..Cluster::default()
    })
    .expect("tiers")
    .remove(0)
}

fn ceph_rbd() -> Tier {
    // ceph-csi examples/rbd/storageclass.yaml, with the pool's size stated by its administrator.
    tier_of(json!({
        "metadata": {"name": "ceph-rbd", "annotations": {"kubecloud.io/replicas": "3"}},
        "provisioner": "rbd.csi.ceph.com",
        "parameters": {"clusterID": "rook-ceph", "pool": "replicapool", "imageFeatures": "layering",
            "csi.storage.k8s.io/provisioner-secret-name": "rook-csi-rbd-provisioner",
            "csi.storage.k8s.io/provisioner-secret-namespace": "rook-ceph"},
        "allowVolumeExpansion": true,
        "reclaimPolicy": "Delete",
    }))
}

fn longhorn() -> Tier {
    // longhorn.io/docs references/storage-class-parameters.
    tier_of(json!({
        "metadata": {"name": "longhorn"},
        "provisioner": "driver.longhorn.io",
        "parameters": {"numberOfReplicas": "3", "staleReplicaTimeout": "2880", "fsType": "ext4"},
        "allowVolumeExpansion": true,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }))
}

fn mayastor() -> Tier {
    // openebs.io docs rs-create-storageclass.
    tier_of(json!({
        "metadata": {"name": "mayastor-1"},
        "provisioner": "io.openebs.csi-mayastor",
        "parameters": {"protocol": "nvmf", "repl": "1", "thin": "true"},
        "allowVolumeExpansion": true,
    }))
}

fn lvm() -> Tier {
    tier_of(json!({
        "metadata": {"name": "openebs-lvmpv"},
        "provisioner": "local.csi.openebs.io",
        "parameters": {"storage": "lvm", "volgroup": "lvmvg"},
        "allowVolumeExpansion": true,
        "volumeBindingMode": "WaitForFirstConsumer",
    }))
}

fn spec() -> VolumeSpec {
    VolumeSpec::blank("root", ByteSize::gib(20))
}

fn rwx_block() -> VolumeSpec {
    spec().with_access(AccessMode::ReadWriteMany)
}

fn derived(choice: Choice) -> Value {
    match choice {
        Choice::Derived(sc) => with_kind("storage.k8s.io/v1", "StorageClass", &*sc),
        Choice::Existing(name) => panic!("expected a derived class, got {name}"),
    }
}

#[test]
fn longhorn_replica_counts_and_live_migration_get_derived_classes() {
    let tier = longhorn();
    assert_eq!(
        choose_class(&tier, &spec().with_replicas(3)).unwrap(),
        Choice::Existing("longhorn".into()),
        "the class's own count"
    );
    let two = derived(choose_class(&tier, &spec().with_replicas(2)).unwrap());
    assert_eq!(two["parameters"]["numberOfReplicas"], "2");
    assert_eq!(two["metadata"]["labels"]["kubecloud.io/tier"], "longhorn");
    check("storageclass-longhorn-r2", &two);
    let migratable = derived(choose_class(&tier, &rwx_block().with_replicas(3)).unwrap());
    assert_eq!(migratable["parameters"]["migratable"], "true");
    assert_eq!(migratable["metadata"]["name"], "kubecloud-longhorn-r3-rwx");
    check("storageclass-longhorn-r3-rwx", &migratable);
}

#[test]
fn mayastor_replicas_map_to_repl_and_rwx_block_is_refused_naming_driver_and_class() {
    let tier = mayastor();
    let three = derived(choose_class(&tier, &spec().with_replicas(3)).unwrap());
    assert_eq!(three["parameters"]["repl"], "3");
    assert_eq!(
        three["parameters"]["protocol"], "nvmf",
        "the base class's parameters are kept"
    );
    check("storageclass-mayastor-r3", &three);
    let err = choose_class(&tier, &rwx_block()).unwrap_err();
    let Error::Unsupported {
        operation,
        capability,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(capability, "rwx_block");
    assert!(
        operation.contains("io.openebs.csi-mayastor") && operation.contains("\"mayastor-1\""),
        "names the driver and the class: {operation}"
    );
}

#[test]
fn ceph_gives_the_pool_s_count_only_and_serves_rwx_block() {
    let tier = ceph_rbd();
    assert_eq!(
        choose_class(&tier, &rwx_block().with_replicas(3)).unwrap(),
        Choice::Existing("ceph-rbd".into()),
        "RBD serves RWX block from any class"
    );
    let err = choose_class(&tier, &spec().with_replicas(2)).unwrap_err();
    assert_eq!(err.invalid_field(), Some("replicas"), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("rbd.csi.ceph.com") && message.contains("\"ceph-rbd\" gives 3"),
        "names the driver and the class: {message}"
    );
    let err = choose_class(
        &tier,
        &spec()
            .with_mode(VolumeMode::Filesystem)
            .with_access(AccessMode::ReadWriteMany)
            .with_replicas(3),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { ref capability, .. } if capability == "rwx_filesystem"),
        "{err:?}"
    );
}

#[test]
fn cephfs_serves_no_block_and_local_lvm_one_copy() {
    let cephfs = tier_of(json!({
        "metadata": {"name": "cephfs"},
        "provisioner": "cephfs.csi.ceph.com",
        "parameters": {"clusterID": "rook-ceph", "fsName": "myfs", "pool": "myfs-replicated"},
    }));
    let err = choose_class(&cephfs, &spec()).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { ref capability, .. } if capability == "block"),
        "{err:?}"
    );
    assert!(
        choose_class(
            &cephfs,
            &spec()
                .with_mode(VolumeMode::Filesystem)
                .with_access(AccessMode::ReadWriteMany)
        )
        .is_ok()
    );
    let err = choose_class(&lvm(), &spec().with_replicas(2)).unwrap_err();
    assert_eq!(err.invalid_field(), Some("replicas"));
    assert!(
        err.to_string().contains("local volumes have one copy"),
        "{err}"
    );
}

#[test]
fn an_unknown_driver_serves_no_rwx_block() {
    let mut cluster = Cluster {
        classes: vec![class(
            json!({"metadata": {"name": "nfs"}, "provisioner": "nfs.csi.k8s.io"}),
        )],
        ..Cluster::default()
    };
    assert!(
        tiers_of(&cluster).unwrap().is_empty(),
        "no CSIDriver: not a CSI driver's class"
    );
    cluster.drivers = vec![
        serde_json::from_value(json!({"metadata": {"name": "nfs.csi.k8s.io"}, "spec": {}}))
            .unwrap(),
    ];
    let tier = tiers_of(&cluster).unwrap().remove(0);
    assert!(tier.profile.unknown);
    let err = choose_class(&tier, &rwx_block()).unwrap_err();
    assert!(err.to_string().contains("nfs.csi.k8s.io"), "{err}");
}

#[test]
fn claims_restore_and_import_on_a_ceph_class() {
    let acme = Tenant::new("acme").unwrap();
    let restore = rwx_block()
        .with_replicas(3)
        .with_tier("ceph-rbd")
        .with_source(VolumeSource::Snapshot {
            snapshot: "nightly".into(),
        });
    let pvc = translate::claim(&acme, &restore, "ceph-rbd", "ceph-rbd");
    let v = with_kind("v1", "PersistentVolumeClaim", &pvc);
    assert_eq!(v["spec"]["dataSource"]["kind"], "VolumeSnapshot");
    check("pvc-restore-rwx-block", &v);
    assert_eq!(translate::spec_from_claim(&pvc).unwrap(), restore);
    let import = spec().with_source(VolumeSource::Import {
        url: "https://images.example.com/os.qcow2".into(),
    });
    check(
        "datavolume-import",
        &serde_json::to_value(translate::data_volume(
            &acme, &import, "longhorn", "longhorn",
        ))
        .expect("json"),
    );
    check(
        "volumesnapshot",
        &serde_json::to_value(translate::volume_snapshot(
            &acme,
            "root",
            "nightly",
            ByteSize::gib(20),
            "csi-rbdplugin-snapclass",
        ))
        .expect("json"),
    );
}
