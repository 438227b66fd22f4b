//! Rendering a volume's objects (GitOps output) instead of creating it: the tier plan is read
//! from LINSTOR (nothing written anywhere), the objects are those `create_volume` sends, and
//! what creating refuses is refused the same way, before anything is sent.

mod common;

use kubecloud_core::{
    AccessMode, BlockStorage, ByteSize, Tenant, VolumeMode, VolumeSource, VolumeSpec,
};
use kubecloud_linstor::translate::TierPlan;
use kubecloud_testkit::schema::Catalog;

fn acme() -> Tenant {
    Tenant::new("acme").unwrap()
}

#[tokio::test]
async fn the_tier_plan_comes_from_the_resource_group_and_nothing_is_written() {
    let env = common::env().await;
    let plan = env.backend.tier_plan(None).await.expect("default tier");
    assert_eq!(
        plan,
        TierPlan {
            name: "fast".into(),
            resource_group: "rg-fast".into(),
            storage_pool: Some("lvm-thin".into()),
        }
    );
    assert_eq!(env.backend.default_tier(), "fast");
    let spec = VolumeSpec::blank("db", ByteSize::gib(5)).with_replicas(2);
    let objects = env
        .backend
        .volume_manifests(&acme(), &spec, &plan)
        .expect("manifests");
    assert_eq!(env.kube.requests().total(), 0, "nothing sent to Kubernetes");
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["StorageClass", "PersistentVolumeClaim"]);
    let catalog = Catalog::upstream().expect("catalog");
    for o in &objects {
        catalog
            .by_kind(
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
            )
            .expect("kind")
            .validate(o)
            .unwrap_or_else(|e| panic!("{o}: {e:?}"));
    }
    let err = env.backend.tier_plan(Some("gold")).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("tier"));
}

#[tokio::test]
async fn the_rendered_objects_are_what_creating_sends() {
    let env = common::env().await;
    let tenant = acme();
    for spec in [
        VolumeSpec::blank("db", ByteSize::gib(5))
            .with_replicas(2)
            .with_access(AccessMode::ReadWriteMany),
        VolumeSpec::blank("logs", ByteSize::gib(1)).with_tier("bulk"),
        VolumeSpec::blank("image", ByteSize::gib(1)).with_source(VolumeSource::Import {
            url: "https://images.example.com/os.qcow2".into(),
        }),
    ] {
        let plan = env.backend.tier_plan(spec.tier.as_deref()).await.unwrap();
        let rendered = env.backend.volume_manifests(&tenant, &spec, &plan).unwrap();
        env.backend.create_volume(&tenant, &spec).await.unwrap();
        let cluster = env.kube.cluster();
        for object in rendered {
            let (av, kind) = (
                object["apiVersion"].as_str().unwrap(),
                object["kind"].as_str().unwrap(),
            );
            let name = object["metadata"]["name"].as_str().unwrap();
            let live = cluster
                .list(av, kind, object["metadata"]["namespace"].as_str())
                .unwrap()
                .into_iter()
                .find(|o| o["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("no {kind} {name}"));
            assert!(
                kubecloud_kube::is_subset(&object, &live),
                "{kind} {name}: rendered {object:#} live {live:#}"
            );
        }
    }
}

#[tokio::test]
async fn what_creating_refuses_rendering_refuses() {
    let env = common::env().await;
    let plan = env.backend.tier_plan(Some("fast")).await.unwrap();
    let tenant = acme();
    let rwx_fs = VolumeSpec::blank("fs", ByteSize::gib(1))
        .with_access(AccessMode::ReadWriteMany)
        .with_mode(VolumeMode::Filesystem);
    let err = env
        .backend
        .volume_manifests(&tenant, &rwx_fs, &plan)
        .unwrap_err();
    assert!(
        matches!(err, kubecloud_core::Error::Unsupported { .. }),
        "{err:?}"
    );
    let many = VolumeSpec::blank("many", ByteSize::gib(1)).with_replicas(5);
    let err = env
        .backend
        .volume_manifests(&tenant, &many, &plan)
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("replicas"));
    let bulk = VolumeSpec::blank("bulk", ByteSize::gib(1)).with_tier("bulk");
    let err = env
        .backend
        .volume_manifests(&tenant, &bulk, &plan)
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("tier"));
    let bad = VolumeSpec::blank("Bad Name", ByteSize::gib(1));
    let err = env
        .backend
        .volume_manifests(&tenant, &bad, &plan)
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("name"));
    assert_eq!(env.kube.requests().total(), 0);
}
