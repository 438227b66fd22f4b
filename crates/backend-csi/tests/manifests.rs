//! Rendering a volume's objects (GitOps output) instead of creating it: nothing is sent, the
//! objects are those `create_volume` sends (the derived class first, when one is needed), and
//! what creating refuses is refused the same way.

use kubecloud_core::{AccessMode, BlockStorage, ByteSize, Tenant, VolumeSpec};
use kubecloud_csi::Csi;
use kubecloud_kube::plugin::StorageManifests;
use kubecloud_testkit::TestServer;
use kubecloud_testkit::csi::{self, CsiProfile};
use kubecloud_testkit::schema::Catalog;

async fn longhorn() -> (TestServer, Csi) {
    let nodes = (1..=3)
        .map(|i| format!("apiVersion: v1\nkind: Node\nmetadata: {{name: node-{i}}}\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    let kube = TestServer::builder()
        .seed_yaml(&nodes)
        .start()
        .await
        .expect("kube double");
    csi::install(&kube, CsiProfile::Longhorn);
    let backend = Csi::discover(kube.client(), true)
        .await
        .unwrap()
        .build()
        .unwrap();
    (kube, backend)
}

#[tokio::test]
async fn rendered_objects_are_what_creating_sends_and_rendering_sends_nothing() {
    let (kube, storage) = longhorn().await;
    let acme = Tenant::new("acme").unwrap();
    // RWX block (live migration) on tier `longhorn`, whose class is not `migratable`: a class
    // is derived with it.
    let spec = VolumeSpec::blank("db", ByteSize::gib(5))
        .with_tier("longhorn")
        .with_replicas(3)
        .with_access(AccessMode::ReadWriteMany);
    kube.requests().reset();
    let renderer = storage
        .volume_renderer(std::slice::from_ref(&spec))
        .await
        .unwrap();
    let objects = renderer.volume_manifests(&acme, &spec).unwrap();
    assert_eq!(kube.requests().total(), 0, "nothing sent to Kubernetes");
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["StorageClass", "PersistentVolumeClaim"]);
    assert_eq!(objects[0]["metadata"]["name"], "kubecloud-longhorn-r3-rwx");
    assert_eq!(objects[0]["parameters"]["migratable"], "true");
    for o in &objects {
        let rt = Catalog::upstream()
            .unwrap()
            .by_kind(
                o["apiVersion"].as_str().unwrap(),
                o["kind"].as_str().unwrap(),
            )
            .unwrap();
        rt.validate(o).unwrap_or_else(|e| panic!("{e:?}"));
    }
    storage.create_volume(&acme, &spec).await.unwrap();
    let sent = kube
        .cluster()
        .get("v1", "PersistentVolumeClaim", Some("acme"), "db")
        .unwrap();
    assert_eq!(
        sent["spec"]["storageClassName"],
        objects[1]["spec"]["storageClassName"]
    );
    assert_eq!(
        sent["metadata"]["annotations"]["kubecloud.io/replicas"],
        "3"
    );
    let class = kube
        .cluster()
        .get(
            "storage.k8s.io/v1",
            "StorageClass",
            None,
            "kubecloud-longhorn-r3-rwx",
        )
        .unwrap();
    assert_eq!(class["parameters"], objects[0]["parameters"]);
    assert_eq!(
        renderer.volume_attachment(&spec).access,
        AccessMode::ReadWriteMany
    );
}

#[tokio::test]
async fn an_unknown_tier_is_refused_naming_the_volume() {
    let (_kube, storage) = longhorn().await;
    let spec = VolumeSpec::blank("db", ByteSize::gib(5)).with_tier("nope");
    let err = storage.volume_renderer(&[spec]).await.err().unwrap();
    assert_eq!(err.invalid_field(), Some("volumes[0].tier"), "{err}");
}
