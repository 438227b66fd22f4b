//! Golden translation files (tests/golden/*.json, reviewable) and upstream schema validation of
//! every object the backend sends. `UPDATE_GOLDEN=1` rewrites the files.

use kubecloud_core::{AccessMode, ByteSize, Tenant, VolumeMode, VolumeSource, VolumeSpec};
use kubecloud_linstor::translate::{self, TierPlan};
use kubecloud_testkit::schema::Catalog;
use serde_json::Value;

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

fn tier() -> TierPlan {
    TierPlan {
        name: "fast".into(),
        resource_group: "rg-fast".into(),
        storage_pool: Some("lvm-thin".into()),
    }
}

#[test]
fn storage_classes() {
    let sc = translate::storage_class(&tier(), 2, false);
    check(
        "storageclass-fast-r2",
        &with_kind("storage.k8s.io/v1", "StorageClass", &sc),
    );
    let rwx = translate::storage_class(&tier(), 2, true);
    let v = with_kind("storage.k8s.io/v1", "StorageClass", &rwx);
    assert_eq!(
        v["parameters"]["property.linstor.csi.linbit.com/DrbdOptions/Net/allow-two-primaries"],
        "yes"
    );
    assert_eq!(v["allowVolumeExpansion"], true);
    check("storageclass-fast-r2-rwx", &v);
}

#[test]
fn claims_blank_clone_restore() {
    let acme = Tenant::new("acme").unwrap();
    let mut blank = VolumeSpec::blank("root", ByteSize::gib(20))
        .with_replicas(2)
        .with_tier("fast");
    blank.labels.insert("role".into(), "db".into());
    let class = translate::storage_class_name("fast", 2, false);
    check(
        "pvc-blank",
        &with_kind(
            "v1",
            "PersistentVolumeClaim",
            &translate::claim(&acme, &blank, "fast", &class),
        ),
    );
    let clone = VolumeSpec::blank("copy", ByteSize::gib(20))
        .with_source(VolumeSource::Clone {
            volume: "root".into(),
        })
        .with_mode(VolumeMode::Filesystem);
    check(
        "pvc-clone",
        &with_kind(
            "v1",
            "PersistentVolumeClaim",
            &translate::claim(&acme, &clone, "fast", "linstor-fast-r1"),
        ),
    );
    let restore = VolumeSpec::blank("restored", ByteSize::gib(30))
        .with_source(VolumeSource::Snapshot {
            snapshot: "nightly".into(),
        })
        .with_access(AccessMode::ReadWriteMany)
        .with_replicas(2);
    let class = translate::storage_class_name("fast", 2, true);
    let pvc = translate::claim(&acme, &restore, "fast", &class);
    check(
        "pvc-restore-rwx",
        &with_kind("v1", "PersistentVolumeClaim", &pvc),
    );
    // The way back gives the same spec (tier filled in).
    let back = translate::spec_from_claim(&pvc).unwrap();
    assert_eq!(back, restore.clone().with_tier("fast"));
}

#[test]
fn snapshots() {
    let acme = Tenant::new("acme").unwrap();
    check("volumesnapshotclass", &translate::snapshot_class());
    check(
        "volumesnapshot",
        &serde_json::to_value(translate::volume_snapshot(
            &acme,
            "root",
            "nightly",
            ByteSize::gib(20),
        ))
        .expect("json"),
    );
}

#[test]
fn data_volume_of_an_import() {
    let acme = Tenant::new("acme").unwrap();
    let mut spec = VolumeSpec::blank("os", ByteSize::gib(10))
        .with_replicas(2)
        .with_tier("fast")
        .with_source(VolumeSource::Import {
            url: "https://images.example.com/debian-12.qcow2".into(),
        });
    spec.labels.insert("role".into(), "boot".into());
    let class = translate::storage_class_name("fast", 2, false);
    let dv = translate::data_volume(&acme, &spec, "fast", &class);
    check(
        "datavolume-import",
        &serde_json::to_value(&dv).expect("json"),
    );
    // The way back, before and after CDI made the claim, gives the same spec.
    let claim = translate::claim_of_data_volume(&dv, None);
    assert_eq!(translate::spec_from_claim(&claim).unwrap(), spec);
    let mut made = translate::claim(&acme, &spec, "fast", &class);
    made.metadata.annotations = None;
    made.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("app".into(), "containerized-data-importer".into());
    let claim = translate::claim_of_data_volume(&dv, Some(&made));
    assert_eq!(translate::spec_from_claim(&claim).unwrap(), spec);
    // RWX block imports use the dual-primary class.
    let rwx = spec.clone().with_access(AccessMode::ReadWriteMany);
    let dv = serde_json::to_value(translate::data_volume(
        &acme,
        &rwx,
        "fast",
        &translate::storage_class_name("fast", 2, true),
    ))
    .expect("json");
    assert_eq!(dv["spec"]["storage"]["accessModes"][0], "ReadWriteMany");
    assert_eq!(dv["spec"]["storage"]["volumeMode"], "Block");
    assert_eq!(
        dv["spec"]["storage"]["storageClassName"],
        "linstor-fast-r2-rwx"
    );
}
