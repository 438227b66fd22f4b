//! The CSI backend on the simulated CSI stack: replica counts reach the driver as its class
//! parameter, pool replication refuses other counts naming driver and class (nothing created),
//! a failed provisioning shows on the volume with the driver's message.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Event;
use kube::runtime::{WatchStreamExt, watcher};
use kubecloud_core::{
    BlockStorage, ByteSize, Error, Labels, Tenant, VolumeMode, VolumePhase, VolumeSpec,
};
use kubecloud_csi::Csi;
use kubecloud_testkit::TestServer;
use kubecloud_testkit::csi::{self, CsiDriver, CsiProfile};

async fn env(profile: CsiProfile) -> (TestServer, CsiDriver, Csi) {
    let nodes = (1..=3)
        .map(|i| format!("apiVersion: v1\nkind: Node\nmetadata: {{name: node-{i}}}\n"))
        .collect::<Vec<_>>()
        .join("---\n");
    let kube = TestServer::builder()
        .seed_yaml(&nodes)
        .start()
        .await
        .expect("kube double");
    let driver = csi::install(&kube, profile);
    let backend = Csi::discover(kube.client(), true)
        .await
        .unwrap()
        .build()
        .unwrap();
    (kube, driver, backend)
}

fn acme() -> Tenant {
    Tenant::new("acme").unwrap()
}

async fn ready(storage: &Csi, name: &str) -> kubecloud_core::Volume {
    let mut states = storage.watch_volume(&acme(), name).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(v) = states.next().await {
            let v = v.unwrap();
            if v.status.phase == VolumePhase::Ready {
                return v;
            }
        }
        panic!("the watch ended before {name} was ready")
    })
    .await
    .expect("ready in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mayastor_replicas_reach_the_driver_as_repl() {
    let (_kube, driver, storage) = env(CsiProfile::Mayastor).await;
    let spec = VolumeSpec::blank("db", ByteSize::gib(1))
        .with_tier("mayastor-single-replica")
        .with_replicas(2);
    storage.create_volume(&acme(), &spec).await.unwrap();
    let volume = ready(&storage, "db").await;
    assert_eq!(volume.spec.replicas, 2);
    let on_driver = driver.volumes();
    assert_eq!(on_driver.len(), 1);
    assert_eq!(on_driver[0].replicas, 2, "{on_driver:?}");
    assert_eq!(on_driver[0].parameters["repl"], "2");
    storage.delete_volume(&acme(), "db", false).await.unwrap();
    assert!(
        driver.volumes().is_empty(),
        "deleting waits until the driver let go"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceph_refuses_a_count_its_class_does_not_give_and_creates_nothing() {
    let (kube, driver, storage) = env(CsiProfile::CephRbd).await;
    kube.requests().reset();
    let spec = VolumeSpec::blank("db", ByteSize::gib(1)).with_replicas(2);
    // Within the backend's maximum (the facade checks that): one copy, no class states more.
    let err = storage.create_volume(&acme(), &spec).await.unwrap_err();
    assert!(err.is_invalid_input(), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("rbd.csi.ceph.com") && message.contains("\"ceph-block\""),
        "names the driver and the class: {message}"
    );
    assert_eq!(
        kube.requests().total(),
        0,
        "refused before anything is sent"
    );
    assert!(driver.volumes().is_empty());
    assert!(
        storage
            .list_volumes(&acme(), &Labels::new())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_provisioning_shows_on_the_volume_with_the_driver_s_message() {
    let (kube, driver, storage) = env(CsiProfile::Longhorn).await;
    let kube_client = kube.client();
    driver.fail_next_provision("no disk can hold 3 replicas");
    let spec = VolumeSpec::blank("db", ByteSize::gib(1))
        .with_tier("longhorn")
        .with_replicas(3)
        .with_mode(VolumeMode::Filesystem);
    storage.create_volume(&acme(), &spec).await.unwrap();
    // Wait (on a watch) for the external-provisioner's Warning event about the claim.
    let events: kube::Api<Event> = kube::Api::namespaced(kube_client.clone(), "acme");
    let seen = watcher(events, watcher::Config::default())
        .applied_objects()
        .filter_map(|e| async move { e.ok() })
        .filter(|e| {
            let failed = e.reason.as_deref() == Some("ProvisioningFailed");
            async move { failed }
        });
    futures::pin_mut!(seen);
    tokio::time::timeout(Duration::from_secs(20), seen.next())
        .await
        .expect("the provisioner reports the failure");
    let pending = storage.get_volume(&acme(), "db").await.unwrap();
    assert_eq!(pending.status.phase, VolumePhase::Pending);
    let message = pending
        .status
        .message
        .expect("the failure is on the volume");
    assert!(
        message.starts_with("ProvisioningFailed")
            && message.contains("no disk can hold 3 replicas"),
        "{message}"
    );
    let err = storage.create_volume(&acme(), &spec).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
}
