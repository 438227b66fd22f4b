//! The simulated CSI stack (`kubecloud_testkit::csi`): provisioning and binding, refusals,
//! `WaitForFirstConsumer`, expansion, snapshots, clones and deletion, per driver profile,
//! observed through kube-rs over the API double (waiting on watches).

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kube::runtime::{WatchStreamExt, watcher};
use kubecloud_testkit::TestServer;
#[allow(unused_imports)]
use kubecloud_testkit::csi::ContentSource;
use kubecloud_testkit::csi::{self, CsiProfile, VolumeMode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const GI: u64 = 1 << 30;

const NODES: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-2, labels: {kubernetes.io/hostname: node-2}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-3, labels: {kubernetes.io/hostname: node-3}}\n";

/// An API double with three nodes (the default controllers run: the built-in binder must
/// keep out of the driver's claims).
async fn server() -> TestServer {
    TestServer::builder()
        .seed_yaml(NODES)
        .start()
        .await
        .unwrap()
}

fn claims(server: &TestServer) -> Api<PersistentVolumeClaim> {
    Api::namespaced(server.client(), "default")
}

fn snapshots(server: &TestServer) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshot");
    Api::namespaced_with(
        server.client(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "volumesnapshots"),
    )
}

fn claim(name: &str, class: Option<&str>, size: &str, mode: &str, access: &[&str]) -> Value {
    let mut c = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": access, "volumeMode": mode,
                 "resources": {"requests": {"storage": size}}},
    });
    if let Some(class) = class {
        c["spec"]["storageClassName"] = json!(class);
    }
    c
}

async fn create(server: &TestServer, object: Value) -> PersistentVolumeClaim {
    claims(server)
        .create(
            &PostParams::default(),
            &serde_json::from_value(object).unwrap(),
        )
        .await
        .unwrap()
}

/// A pod (scheduled or not) mounting `claims`.
async fn pod(server: &TestServer, name: &str, node: Option<&str>, claim_names: &[&str]) -> Pod {
    let volumes: Vec<Value> = claim_names
        .iter()
        .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
        .collect();
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": "busybox"}], "volumes": volumes},
    });
    if let Some(node) = node {
        p["spec"]["nodeName"] = json!(node);
    }
    Api::<Pod>::namespaced(server.client(), "default")
        .create(&PostParams::default(), &serde_json::from_value(p).unwrap())
        .await
        .unwrap()
}

async fn wait_claim(
    server: &TestServer,
    name: &str,
    cond: impl Fn(&PersistentVolumeClaim) -> bool,
) -> PersistentVolumeClaim {
    let ready = move |o: Option<&PersistentVolumeClaim>| o.is_some_and(&cond);
    tokio::time::timeout(WAIT, await_condition(claims(server), name, ready))
        .await
        .unwrap_or_else(|_| panic!("claim {name} never reached the condition"))
        .unwrap()
        .unwrap()
}

async fn wait_bound(server: &TestServer, name: &str) -> PersistentVolumeClaim {
    wait_claim(server, name, |c| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
    })
    .await
}

async fn wait_gone<K>(api: Api<K>, name: &str)
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    tokio::time::timeout(
        WAIT,
        await_condition(api, name, |o: Option<&K>| o.is_none()),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} never went"))
    .unwrap();
}

/// The first event about `object` with `reason`, waiting on a watch.
async fn wait_event(server: &TestServer, object: &str, reason: &str) -> Event {
    let api: Api<Event> = Api::namespaced(server.client(), "default");
    let object = object.to_string();
    let reason_owned = reason.to_string();
    let mut stream = watcher(api, watcher::Config::default())
        .applied_objects()
        .try_filter(move |e: &Event| {
            futures::future::ready(
                e.involved_object.name.as_deref() == Some(object.as_str())
                    && e.reason.as_deref() == Some(reason_owned.as_str()),
            )
        })
        .boxed();
    tokio::time::timeout(WAIT, stream.try_next())
        .await
        .unwrap_or_else(|_| panic!("no {reason} event"))
        .unwrap()
        .unwrap()
}

async fn pv_of(server: &TestServer, claim: &PersistentVolumeClaim) -> PersistentVolume {
    let name = claim.spec.as_ref().unwrap().volume_name.clone().unwrap();
    Api::<PersistentVolume>::all(server.client())
        .get(&name)
        .await
        .unwrap()
}

fn storage(claim: &PersistentVolumeClaim) -> String {
    claim.status.as_ref().unwrap().capacity.as_ref().unwrap()["storage"]
        .0
        .clone()
}

/// Every profile's default class provisions a single-node Filesystem claim: the PV carries the
/// driver's handle, the claim is bound with the driver's size, the PV controller's and the
/// provisioner's annotations and events are there, and the built-in binder kept out.
#[tokio::test]
async fn every_profile_provisions_and_binds_its_default_class() {
    for profile in CsiProfile::ALL {
        let server = server().await;
        let driver = csi::install(&server, profile);
        let class = driver.default_class().unwrap().to_string();
        create(
            &server,
            claim("data", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
        )
        .await;
        if profile == CsiProfile::LocalPvLvm {
            // WaitForFirstConsumer: a consumer makes it go.
            pod(&server, "app", None, &["data"]).await;
        }
        let bound = wait_bound(&server, "data").await;
        let pv = pv_of(&server, &bound).await;
        let pv_spec = pv.spec.as_ref().unwrap();
        let csi_src = pv_spec.csi.as_ref().unwrap();
        assert_eq!(csi_src.driver, profile.driver(), "{profile:?}");
        let volumes = driver.volumes();
        assert_eq!(volumes.len(), 1, "{profile:?}: one driver volume");
        let volume = &volumes[0];
        assert_eq!(csi_src.volume_handle, volume.handle, "{profile:?}");
        assert_eq!(volume.size_bytes, GI, "{profile:?}");
        assert_eq!(volume.volume_mode, VolumeMode::Filesystem);
        assert_eq!(storage(&bound), "1Gi", "{profile:?}");
        assert_eq!(
            pv.metadata.name.as_deref(),
            Some(format!("pvc-{}", bound.metadata.uid.clone().unwrap()).as_str())
        );
        assert_eq!(
            pv.metadata.annotations.as_ref().unwrap()["pv.kubernetes.io/provisioned-by"],
            profile.driver()
        );
        assert_eq!(pv_spec.storage_class_name.as_deref(), Some(class.as_str()));
        assert_eq!(pv_spec.claim_ref.as_ref().unwrap().uid, bound.metadata.uid);
        assert_eq!(pv.status.as_ref().unwrap().phase.as_deref(), Some("Bound"));
        let ann = bound.metadata.annotations.as_ref().unwrap();
        assert_eq!(
            ann["volume.kubernetes.io/storage-provisioner"],
            profile.driver()
        );
        assert_eq!(ann["pv.kubernetes.io/bind-completed"], "yes");
        let succeeded = wait_event(&server, "data", "ProvisioningSucceeded").await;
        assert_eq!(
            succeeded.message.as_deref(),
            Some(
                format!(
                    "Successfully provisioned volume {}",
                    pv.metadata.name.clone().unwrap()
                )
                .as_str()
            )
        );
        assert_eq!(
            pv.metadata.finalizers.clone().unwrap_or_default(),
            [
                "kubernetes.io/pv-protection",
                "external-provisioner.volume.kubernetes.io/finalizer"
            ]
        );
        match profile {
            CsiProfile::LocalPvLvm => {
                let node = volume.node.clone().expect("a local volume has a node");
                let affinity =
                    serde_json::to_value(pv_spec.node_affinity.as_ref().unwrap()).unwrap();
                assert_eq!(
                    affinity["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
                    json!({"key": "openebs.io/nodename", "operator": "In", "values": [node]})
                );
            }
            _ => assert!(pv_spec.node_affinity.is_none() && volume.node.is_none()),
        }
    }
}

/// What a profile cannot do is refused the way its sidecar reports it: a `ProvisioningFailed`
/// event with the driver's gRPC error, and the claim stays Pending with no volume made.
#[tokio::test]
async fn each_profile_refuses_what_it_cannot_do_with_provisioning_failed() {
    let cases: [(CsiProfile, &str, &str, &str, &str); 7] = [
        (
            CsiProfile::CephRbd,
            "ceph-block",
            "Filesystem",
            "ReadWriteMany",
            "failed to provision volume with StorageClass \"ceph-block\": rpc error: code = InvalidArgument desc = multi node access modes are only supported on rbd `block` type volumes",
        ),
        (
            CsiProfile::CephFs,
            "ceph-filesystem",
            "Block",
            "ReadWriteOnce",
            "failed to provision volume with StorageClass \"ceph-filesystem\": rpc error: code = InvalidArgument desc = block volume not supported",
        ),
        (
            CsiProfile::Longhorn,
            "longhorn",
            "Block",
            "ReadWriteMany",
            "failed to provision volume with StorageClass \"longhorn\": rpc error: code = InvalidArgument desc = ReadWriteMany block volumes are only supported for migratable volumes (set the parameter migratable: \"true\")",
        ),
        (
            CsiProfile::Mayastor,
            "mayastor-single-replica",
            "Filesystem",
            "ReadWriteMany",
            "failed to provision volume with StorageClass \"mayastor-single-replica\": rpc error: code = InvalidArgument desc = Invalid volume access mode: MULTI_NODE_MULTI_WRITER",
        ),
        (
            CsiProfile::DemocraticNfs,
            "freenas-nfs-csi",
            "Block",
            "ReadWriteOnce",
            "failed to provision volume with StorageClass \"freenas-nfs-csi\": rpc error: code = InvalidArgument desc = invalid access_type, block volumes are not supported by this driver",
        ),
        (
            CsiProfile::DemocraticIscsi,
            "freenas-iscsi-csi",
            "Filesystem",
            "ReadWriteMany",
            "failed to provision volume with StorageClass \"freenas-iscsi-csi\": rpc error: code = InvalidArgument desc = invalid access_mode, MULTI_NODE_MULTI_WRITER for filesystem volumes",
        ),
        (
            CsiProfile::Generic,
            "standard",
            "Filesystem",
            "ReadOnlyMany",
            "failed to provision volume with StorageClass \"standard\": rpc error: code = InvalidArgument desc = invalid access_mode, MULTI_NODE_READER_ONLY for filesystem volumes",
        ),
    ];
    for (profile, class, mode, access, message) in cases {
        let server = server().await;
        let driver = csi::install(&server, profile);
        create(&server, claim("bad", Some(class), "1Gi", mode, &[access])).await;
        let failed = wait_event(&server, "bad", "ProvisioningFailed").await;
        assert_eq!(failed.message.as_deref(), Some(message), "{profile:?}");
        assert_eq!(failed.type_.as_deref(), Some("Warning"));
        let c = claims(&server).get("bad").await.unwrap();
        assert_eq!(
            c.status.unwrap().phase.as_deref(),
            Some("Pending"),
            "{profile:?}"
        );
        assert!(driver.volumes().is_empty(), "{profile:?}: nothing made");
    }
}

/// What each profile does accept beyond single-node: RBD RWX in Block mode, CephFS and NFS RWX
/// Filesystem, Longhorn RWX Block on the migratable class and RWX Filesystem (share-manager).
#[tokio::test]
async fn multi_node_access_is_provisioned_where_the_driver_allows_it() {
    let cases = [
        (CsiProfile::CephRbd, "ceph-block", "Block"),
        (CsiProfile::CephFs, "ceph-filesystem", "Filesystem"),
        (CsiProfile::DemocraticNfs, "freenas-nfs-csi", "Filesystem"),
        (CsiProfile::Longhorn, "longhorn-migratable", "Block"),
        (CsiProfile::Longhorn, "longhorn", "Filesystem"),
    ];
    for (profile, class, mode) in cases {
        let server = server().await;
        let driver = csi::install(&server, profile);
        create(
            &server,
            claim("shared", Some(class), "2Gi", mode, &["ReadWriteMany"]),
        )
        .await;
        let bound = wait_bound(&server, "shared").await;
        let volume = &driver.volumes()[0];
        assert_eq!(
            volume.access_modes,
            ["ReadWriteMany"],
            "{profile:?} {class}"
        );
        assert_eq!(
            volume.volume_mode,
            if mode == "Block" {
                VolumeMode::Block
            } else {
                VolumeMode::Filesystem
            }
        );
        let pv = pv_of(&server, &bound).await;
        assert_eq!(pv.spec.unwrap().volume_mode.as_deref(), Some(mode));
    }
}

/// Replicas come from where the driver takes them: Longhorn's `numberOfReplicas`, Mayastor's
/// `repl`, the Ceph pool's size.
#[tokio::test]
async fn replicas_follow_the_class_or_the_pool() {
    let cases = [
        (CsiProfile::Longhorn, "longhorn-r1", 1),
        (CsiProfile::Longhorn, "longhorn-r2", 2),
        (CsiProfile::Longhorn, "longhorn", 3),
        (CsiProfile::Mayastor, "mayastor-3", 3),
        (CsiProfile::CephRbd, "ceph-block-2x", 2),
        (CsiProfile::CephRbd, "ceph-block", 3),
    ];
    for (profile, class, replicas) in cases {
        let server = server().await;
        let driver = csi::install(&server, profile);
        create(
            &server,
            claim("r", Some(class), "1Gi", "Filesystem", &["ReadWriteOnce"]),
        )
        .await;
        wait_bound(&server, "r").await;
        assert_eq!(
            driver.volumes()[0].replicas,
            replicas,
            "{profile:?} {class}"
        );
    }
}
