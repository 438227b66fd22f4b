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
use kubecloud_testkit::csi::{self, ContentSource, CsiProfile, VolumeMode};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);
const GI: u64 = 1 << 30;

const NODES: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-2, labels: {kubernetes.io/hostname: node-2}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-3, labels: {kubernetes.io/hostname: node-3}}\n";

/// An API double with three nodes (the default controllers run: the built-in binder must
/// keep out of the driver's claims).
async fn server_with_nodes() -> TestServer {
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
        let server = server_with_nodes().await;
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
        let server = server_with_nodes().await;
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
        let server = server_with_nodes().await;
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
        let server = server_with_nodes().await;
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

fn annotation(claim: &PersistentVolumeClaim, key: &str) -> Option<String> {
    claim.metadata.annotations.as_ref()?.get(key).cloned()
}

fn condition_types(claim: &PersistentVolumeClaim) -> Vec<String> {
    claim
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.type_)
        .collect()
}

fn resize_status(claim: &PersistentVolumeClaim) -> Option<String> {
    claim
        .status
        .as_ref()?
        .allocated_resource_statuses
        .as_ref()?
        .get("storage")
        .cloned()
}

/// `WaitForFirstConsumer` (LocalPV-LVM): nothing is made until a pod uses the claim; then the
/// scheduler's pick (the pod's `nodeSelector`) becomes `selected-node`, the volume is made on
/// that node and the pod is bound there. A pod already on a node takes its node.
#[tokio::test]
async fn wait_for_first_consumer_provisions_on_the_consumers_node() {
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::LocalPvLvm);
    create(
        &server,
        claim("late", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    let waiting = wait_event(&server, "late", "WaitForFirstConsumer").await;
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for first consumer to be created before binding")
    );
    let pending = claims(&server).get("late").await.unwrap();
    assert_eq!(pending.status.unwrap().phase.as_deref(), Some("Pending"));
    assert!(driver.volumes().is_empty(), "nothing before a consumer");

    // An unscheduled pod pinned to node-2 by its selector.
    let pods: Api<Pod> = Api::namespaced(server.client(), "default");
    let mut p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}],
                 "nodeSelector": {"kubernetes.io/hostname": "node-2"},
                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "late"}}]},
    }))
    .unwrap();
    p = pods.create(&PostParams::default(), &p).await.unwrap();
    let bound = wait_bound(&server, "late").await;
    assert_eq!(
        annotation(&bound, "volume.kubernetes.io/selected-node").as_deref(),
        Some("node-2")
    );
    assert_eq!(driver.volumes()[0].node.as_deref(), Some("node-2"));
    let scheduled = tokio::time::timeout(
        WAIT,
        await_condition(pods.clone(), "app", |o: Option<&Pod>| {
            o.and_then(|p| p.spec.as_ref()?.node_name.clone()).is_some()
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(scheduled.spec.unwrap().node_name.as_deref(), Some("node-2"));
    let _ = p;

    // A pod already placed (as KubeVirt places its launcher pods) gives its node.
    create(
        &server,
        claim("placed", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    pod(&server, "runner", Some("node-3"), &["placed"]).await;
    let bound = wait_bound(&server, "placed").await;
    assert_eq!(
        annotation(&bound, "volume.kubernetes.io/selected-node").as_deref(),
        Some("node-3")
    );
    let pv = pv_of(&server, &bound).await;
    let handle = pv.spec.unwrap().csi.unwrap().volume_handle;
    assert_eq!(
        driver.volume(&handle).unwrap().node.as_deref(),
        Some("node-3")
    );
}

/// A class limited to nodes that lack the driver (allowedTopologies naming a node LVM does not
/// run on) leaves the pod unschedulable, as the scheduler reports it.
#[tokio::test]
async fn wait_for_first_consumer_with_no_fitting_node_is_a_failed_scheduling() {
    let server = server_with_nodes().await;
    let driver = csi::CsiInstall::new(CsiProfile::LocalPvLvm)
        .without_default_classes()
        .class(json!({
            "metadata": {"name": "lvm-nowhere"},
            "volumeBindingMode": "WaitForFirstConsumer",
            "parameters": {"storage": "lvm", "volgroup": "lvmvg"},
            "allowedTopologies": [{"matchLabelExpressions": [
                {"key": "openebs.io/nodename", "values": ["node-9"]}]}],
        }))
        .install(&server)
        .unwrap();
    create(
        &server,
        claim(
            "d",
            Some("lvm-nowhere"),
            "1Gi",
            "Filesystem",
            &["ReadWriteOnce"],
        ),
    )
    .await;
    pod(&server, "app", None, &["d"]).await;
    let failed = wait_event(&server, "app", "FailedScheduling").await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind."
        )
    );
    assert!(driver.volumes().is_empty());
}

async fn grow(server: &TestServer, name: &str, size: &str) {
    claims(server)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": size}}}})),
        )
        .await
        .unwrap();
}

/// Expansion as the external-resizer does it, where kubelet's node step is needed (RBD
/// Filesystem): PV grown, claim `FileSystemResizePending` / `NodeResizePending` with the old
/// capacity until a pod mounts it, then the new capacity and no resize conditions.
#[tokio::test]
async fn expansion_waits_for_the_node_step_when_the_driver_needs_it() {
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::CephRbd);
    create(
        &server,
        claim("grow", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    wait_bound(&server, "grow").await;
    grow(&server, "grow", "3Gi").await;
    let pending = wait_claim(&server, "grow", |c| {
        resize_status(c).as_deref() == Some("NodeResizePending")
    })
    .await;
    assert_eq!(storage(&pending), "1Gi", "capacity waits for the node step");
    assert_eq!(condition_types(&pending), ["FileSystemResizePending"]);
    assert_eq!(
        pending
            .status
            .as_ref()
            .unwrap()
            .allocated_resources
            .as_ref()
            .unwrap()["storage"]
            .0,
        "3Gi"
    );
    let pv = pv_of(&server, &pending).await;
    assert_eq!(pv.spec.unwrap().capacity.unwrap()["storage"].0, "3Gi");
    assert_eq!(driver.volumes()[0].size_bytes, 3 * GI);
    let resizing = wait_event(&server, "grow", "Resizing").await;
    assert_eq!(
        resizing.message,
        Some(format!(
            "External resizer is resizing volume {}",
            pv.metadata.name.unwrap()
        ))
    );

    pod(&server, "app", Some("node-1"), &["grow"]).await;
    let done = wait_claim(&server, "grow", |c| storage(c) == "3Gi").await;
    assert!(condition_types(&done).is_empty());
    assert_eq!(resize_status(&done), None);
    wait_event(&server, "grow", "FileSystemResizeSuccessful").await;
}

/// Without a node step (CephFS) the claim's capacity follows at once; an injected driver error
/// is reported as the resizer reports it and retried.
#[tokio::test]
async fn expansion_without_node_step_finishes_in_the_controller_and_retries_errors() {
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::CephFs);
    create(
        &server,
        claim("fs", None, "1Gi", "Filesystem", &["ReadWriteMany"]),
    )
    .await;
    wait_bound(&server, "fs").await;
    driver.fail_next_resize("mds unavailable");
    grow(&server, "fs", "2Gi").await;
    let done = wait_claim(&server, "fs", |c| storage(c) == "2Gi").await;
    assert!(condition_types(&done).is_empty());
    assert_eq!(resize_status(&done), None);
    let failed = wait_event(&server, "fs", "VolumeResizeFailed").await;
    let pv = pv_of(&server, &done).await.metadata.name.unwrap();
    assert_eq!(
        failed.message,
        Some(format!(
            "resize volume \"{pv}\" by resizer \"cephfs.csi.ceph.com\" failed: rpc error: code = Internal desc = mds unavailable"
        ))
    );
    let ok = wait_event(&server, "fs", "VolumeResizeSuccessful").await;
    assert_eq!(ok.message.as_deref(), Some("Resize volume succeeded"));
    assert_eq!(driver.volumes()[0].size_bytes, 2 * GI);
}

/// A driver expanding only unused volumes (Longhorn before v1.4.0): in use,
/// `VolumeResizeFailed` as the resizer words it and the driver volume keeps its size; once the
/// pod is gone it grows.
#[tokio::test]
async fn offline_expansion_waits_until_no_pod_uses_the_claim() {
    let server = server_with_nodes().await;
    let driver = csi::CsiInstall::new(CsiProfile::Longhorn)
        .offline_expansion_only()
        .install(&server)
        .unwrap();
    assert_eq!(driver.expansion(), csi::Expansion::Offline);
    create(
        &server,
        claim("m", None, "1Gi", "Block", &["ReadWriteOnce"]),
    )
    .await;
    wait_bound(&server, "m").await;
    pod(&server, "app", Some("node-1"), &["m"]).await;
    grow(&server, "m", "2Gi").await;
    let failed = wait_event(&server, "m", "VolumeResizeFailed").await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "Unable to expand default/m because CSI driver driver.longhorn.io only supports offline expansion and volume is currently in-use"
        )
    );
    assert_eq!(driver.volumes()[0].size_bytes, GI, "not grown while in use");
    Api::<Pod>::namespaced(server.client(), "default")
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    // Block: no node step.
    wait_claim(&server, "m", |c| storage(c) == "2Gi").await;
    assert_eq!(driver.volumes()[0].size_bytes, 2 * GI);
}

/// Mayastor (like the others) expands a volume in use; a Block volume needs no node step.
#[tokio::test]
async fn online_expansion_grows_a_volume_in_use() {
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::Mayastor);
    create(
        &server,
        claim("m", None, "1Gi", "Block", &["ReadWriteOnce"]),
    )
    .await;
    wait_bound(&server, "m").await;
    pod(&server, "app", Some("node-1"), &["m"]).await;
    grow(&server, "m", "2Gi").await;
    let done = wait_claim(&server, "m", |c| storage(c) == "2Gi").await;
    assert!(condition_types(&done).is_empty());
    assert_eq!(driver.volumes()[0].size_bytes, 2 * GI);
}

/// A driver without expansion (generic) has no resizer: only kube-controller-manager's
/// `ExternalExpanding`, and the volume keeps its size.
#[tokio::test]
async fn a_driver_without_expansion_leaves_the_claim_waiting() {
    let server = server_with_nodes().await;
    let driver = csi::CsiInstall::new(CsiProfile::Generic)
        .without_default_classes()
        .class(json!({"metadata": {"name": "expandable"}, "allowVolumeExpansion": true}))
        .install(&server)
        .unwrap();
    create(
        &server,
        claim(
            "g",
            Some("expandable"),
            "1Gi",
            "Filesystem",
            &["ReadWriteOnce"],
        ),
    )
    .await;
    wait_bound(&server, "g").await;
    grow(&server, "g", "2Gi").await;
    let waiting = wait_event(&server, "g", "ExternalExpanding").await;
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for an external controller to expand this PVC")
    );
    let c = claims(&server).get("g").await.unwrap();
    assert_eq!(storage(&c), "1Gi");
    assert_eq!(resize_status(&c), None);
    assert_eq!(driver.volumes()[0].size_bytes, GI);
}

async fn take_snapshot(server: &TestServer, name: &str, claim: &str, class: Option<&str>) {
    let mut vs = json!({
        "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": {"source": {"persistentVolumeClaimName": claim}},
    });
    if let Some(class) = class {
        vs["spec"]["volumeSnapshotClassName"] = json!(class);
    }
    snapshots(server)
        .create(&PostParams::default(), &serde_json::from_value(vs).unwrap())
        .await
        .unwrap();
}

async fn wait_snapshot(
    server: &TestServer,
    name: &str,
    cond: impl Fn(&Value) -> bool,
) -> DynamicObject {
    let ready = move |o: Option<&DynamicObject>| o.is_some_and(|o| cond(&o.data));
    tokio::time::timeout(WAIT, await_condition(snapshots(server), name, ready))
        .await
        .unwrap_or_else(|_| panic!("snapshot {name} never reached the condition"))
        .unwrap()
        .unwrap()
}

fn contents(server: &TestServer) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", "VolumeSnapshotContent");
    Api::all_with(
        server.client(),
        &ApiResource::from_gvk_with_plural(&gvk, "volumesnapshotcontents"),
    )
}

fn restore(name: &str, class: &str, size: &str, mode: &str, snapshot: &str) -> Value {
    let mut c = claim(name, Some(class), size, mode, &["ReadWriteOnce"]);
    c["spec"]["dataSource"] =
        json!({"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": snapshot});
    c
}

fn clone_of(name: &str, class: &str, size: &str, source: &str) -> Value {
    let mut c = claim(name, Some(class), size, "Filesystem", &["ReadWriteOnce"]);
    c["spec"]["dataSource"] = json!({"kind": "PersistentVolumeClaim", "name": source});
    c
}

/// Snapshot and restore on every driver that does both: the content `snapcontent-<uid>` with
/// the driver's handle, the snapshot ready with its restore size, a restore smaller than that
/// refused as the provisioner refuses it, a large enough one made from the driver snapshot.
#[tokio::test]
async fn snapshots_are_taken_and_restored_on_every_driver_that_can() {
    for profile in CsiProfile::ALL.into_iter().filter(|p| p.restores()) {
        let server = server_with_nodes().await;
        let driver = csi::install(&server, profile);
        let class = driver.default_class().unwrap().to_string();
        create(
            &server,
            claim("src", None, "2Gi", "Filesystem", &["ReadWriteOnce"]),
        )
        .await;
        let src = wait_bound(&server, "src").await;
        let src_handle = pv_of(&server, &src)
            .await
            .spec
            .unwrap()
            .csi
            .unwrap()
            .volume_handle;
        take_snapshot(&server, "snap", "src", None).await;
        let vs = wait_snapshot(&server, "snap", |v| v["status"]["readyToUse"] == true).await;
        let uid = vs.metadata.uid.clone().unwrap();
        assert_eq!(
            vs.data["status"]["boundVolumeSnapshotContentName"],
            format!("snapcontent-{uid}")
        );
        assert_eq!(vs.data["status"]["restoreSize"], "2Gi", "{profile:?}");
        let content = contents(&server)
            .get(&format!("snapcontent-{uid}"))
            .await
            .unwrap();
        assert_eq!(content.data["spec"]["driver"], profile.driver());
        assert_eq!(
            content.data["spec"]["source"]["volumeHandle"],
            src_handle.as_str()
        );
        assert_eq!(content.data["spec"]["deletionPolicy"], "Delete");
        assert_eq!(
            content.data["spec"]["volumeSnapshotClassName"],
            driver.snapshot_class().unwrap()
        );
        assert_eq!(content.data["status"]["readyToUse"], true);
        assert_eq!(content.data["status"]["restoreSize"], 2 * GI);
        let handle = content.data["status"]["snapshotHandle"]
            .as_str()
            .unwrap()
            .to_string();
        let snap = driver
            .snapshot(&handle)
            .expect("the driver holds the snapshot");
        assert_eq!(snap.source_volume, src_handle);
        assert_eq!(snap.size_bytes, 2 * GI);

        create(
            &server,
            restore("small", &class, "1Gi", "Filesystem", "snap"),
        )
        .await;
        let failed = wait_event(&server, "small", "ProvisioningFailed").await;
        assert_eq!(
            failed.message,
            Some(format!(
                "failed to provision volume with StorageClass \"{class}\": error getting handle for DataSource Type VolumeSnapshot by Name snap: requested volume size {} is less than the size {} for the source snapshot snap",
                GI,
                2 * GI
            )),
            "{profile:?}"
        );
        create(
            &server,
            restore("restored", &class, "3Gi", "Filesystem", "snap"),
        )
        .await;
        let restored = wait_bound(&server, "restored").await;
        let handle_r = pv_of(&server, &restored)
            .await
            .spec
            .unwrap()
            .csi
            .unwrap()
            .volume_handle;
        let volume = driver.volume(&handle_r).unwrap();
        assert_eq!(
            volume.source,
            Some(ContentSource::Snapshot(handle.clone())),
            "{profile:?}"
        );
        assert_eq!(volume.size_bytes, 3 * GI);
        assert_eq!(storage(&restored), "3Gi");
    }
}

/// LocalPV-LVM snapshots but cannot restore; the generic driver has no snapshotter at all, so
/// its snapshot gets a content but never becomes ready, and a restore is refused by the
/// provisioner's capability check.
#[tokio::test]
async fn drivers_that_cannot_restore_refuse_as_their_sidecars_do() {
    // LVM: the driver refuses the restore.
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::LocalPvLvm);
    create(
        &server,
        claim("src", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    pod(&server, "app", Some("node-1"), &["src"]).await;
    wait_bound(&server, "src").await;
    take_snapshot(&server, "snap", "src", None).await;
    wait_snapshot(&server, "snap", |v| v["status"]["readyToUse"] == true).await;
    assert_eq!(driver.snapshots().len(), 1);
    create(
        &server,
        restore("r", "openebs-lvmpv", "1Gi", "Filesystem", "snap"),
    )
    .await;
    pod(&server, "user", Some("node-1"), &["r"]).await;
    let failed = wait_event(&server, "r", "ProvisioningFailed").await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "failed to provision volume with StorageClass \"openebs-lvmpv\": error getting handle for DataSource Type VolumeSnapshot by Name snap: rpc error: code = Unimplemented desc = creating a volume from a snapshot is not supported"
        )
    );

    // Generic: no snapshotter.
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::Generic);
    assert_eq!(driver.snapshot_class(), None);
    server
        .seed_yaml("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata: {name: generic-snap}\ndriver: csi.example.com\ndeletionPolicy: Delete\n")
        .unwrap();
    create(
        &server,
        claim("src", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    wait_bound(&server, "src").await;
    take_snapshot(&server, "snap", "src", Some("generic-snap")).await;
    let vs = wait_snapshot(&server, "snap", |v| {
        v["status"]["boundVolumeSnapshotContentName"].is_string()
    })
    .await;
    let content_name = vs.data["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .unwrap()
        .to_string();
    let content = contents(&server).get(&content_name).await.unwrap();
    assert!(
        content.data["status"]["snapshotHandle"].is_null(),
        "no sidecar took it"
    );
    assert_eq!(vs.data["status"]["readyToUse"], false);
    assert!(driver.snapshots().is_empty());
    create(
        &server,
        restore("r", "standard", "1Gi", "Filesystem", "snap"),
    )
    .await;
    let failed = wait_event(&server, "r", "ProvisioningFailed").await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "failed to provision volume with StorageClass \"standard\": CSI driver does not support snapshot restore: controller CREATE_DELETE_SNAPSHOT capability is not reported"
        )
    );
}

/// A snapshot without a usable class fails as the snapshot controller reports it.
#[tokio::test]
async fn a_snapshot_with_a_missing_class_reports_the_error_on_its_status() {
    let server = server_with_nodes().await;
    csi::install(&server, CsiProfile::Longhorn);
    create(
        &server,
        claim("src", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    wait_bound(&server, "src").await;
    take_snapshot(&server, "snap", "src", Some("nope")).await;
    let vs = wait_snapshot(&server, "snap", |v| {
        v["status"]["error"]["message"].is_string()
    })
    .await;
    assert_eq!(
        vs.data["status"]["error"]["message"],
        "Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io \"nope\" not found"
    );
    assert_eq!(vs.data["status"]["readyToUse"], false);
    wait_event(&server, "snap", "SnapshotContentCreationFailed").await;
}

/// Clones: made from the source's driver volume where the driver clones; refused across
/// classes, when smaller than the source, across namespaces, and by drivers without
/// `CLONE_VOLUME`.
#[tokio::test]
async fn clones_follow_the_provisioners_rules() {
    for profile in CsiProfile::ALL.into_iter().filter(|p| p.clones()) {
        let server = server_with_nodes().await;
        let driver = csi::install(&server, profile);
        let class = driver.default_class().unwrap().to_string();
        create(
            &server,
            claim("src", None, "2Gi", "Filesystem", &["ReadWriteOnce"]),
        )
        .await;
        let src = wait_bound(&server, "src").await;
        let src_handle = pv_of(&server, &src)
            .await
            .spec
            .unwrap()
            .csi
            .unwrap()
            .volume_handle;
        create(&server, clone_of("copy", &class, "2Gi", "src")).await;
        let copy = wait_bound(&server, "copy").await;
        let handle = pv_of(&server, &copy)
            .await
            .spec
            .unwrap()
            .csi
            .unwrap()
            .volume_handle;
        assert_eq!(
            driver.volume(&handle).unwrap().source,
            Some(ContentSource::Volume(src_handle.clone())),
            "{profile:?}"
        );
        create(&server, clone_of("tiny", &class, "1Gi", "src")).await;
        let failed = wait_event(&server, "tiny", "ProvisioningFailed").await;
        assert_eq!(
            failed.message,
            Some(format!(
                "failed to provision volume with StorageClass \"{class}\": error getting handle for DataSource Type PersistentVolumeClaim by Name src: error, new PVC request must be greater than or equal in size to the specified PVC data source, requested {GI} but source is {}",
                2 * GI
            )),
            "{profile:?}"
        );
    }

    // Across classes (RBD's two pools).
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::CephRbd);
    create(
        &server,
        claim(
            "src",
            Some("ceph-block"),
            "1Gi",
            "Filesystem",
            &["ReadWriteOnce"],
        ),
    )
    .await;
    wait_bound(&server, "src").await;
    create(&server, clone_of("other", "ceph-block-2x", "1Gi", "src")).await;
    let failed = wait_event(&server, "other", "ProvisioningFailed").await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "failed to provision volume with StorageClass \"ceph-block-2x\": error getting handle for DataSource Type PersistentVolumeClaim by Name src: the source PVC and destination PVCs must be in the same storage class for cloning.  Source is in ceph-block, but new PVC is in ceph-block-2x"
        )
    );
    // Across namespaces.
    Api::<k8s_openapi::api::core::v1::Namespace>::all(server.client())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap(),
        )
        .await
        .unwrap();
    let mut far = claim(
        "far",
        Some("ceph-block"),
        "1Gi",
        "Filesystem",
        &["ReadWriteOnce"],
    );
    far["metadata"]["namespace"] = json!("other");
    far["spec"]["dataSourceRef"] =
        json!({"kind": "PersistentVolumeClaim", "name": "src", "namespace": "default"});
    Api::<PersistentVolumeClaim>::namespaced(server.client(), "other")
        .create(
            &PostParams::default(),
            &serde_json::from_value(far).unwrap(),
        )
        .await
        .unwrap();
    let events: Api<Event> = Api::namespaced(server.client(), "other");
    let failed = tokio::time::timeout(WAIT, async {
        let mut s = watcher(events, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(e) = s.try_next().await.unwrap() {
            if e.reason.as_deref() == Some("ProvisioningFailed") {
                return e;
            }
        }
        unreachable!("the watch ended")
    })
    .await
    .unwrap();
    assert!(
        failed
            .message
            .unwrap()
            .contains("is in namespace \"default\", not the claim's \"other\""),
    );
    assert_eq!(driver.volumes().len(), 1, "only the source exists");

    // A driver without CLONE_VOLUME.
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::Mayastor);
    create(
        &server,
        claim("src", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    wait_bound(&server, "src").await;
    create(
        &server,
        clone_of("copy", "mayastor-single-replica", "1Gi", "src"),
    )
    .await;
    let failed = wait_event(&server, "copy", "ProvisioningFailed").await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "failed to provision volume with StorageClass \"mayastor-single-replica\": CSI driver does not support clone operations: controller CLONE_VOLUME capability is not reported"
        )
    );
    assert_eq!(driver.volumes().len(), 1);
}

/// Deletion: with `Delete` the PV and the driver's volume go with the claim, and a snapshot
/// with its content and driver snapshot; with `Retain` the PV stays `Released` and the volume
/// stays. Per profile, nothing is left in the driver.
#[tokio::test]
async fn deleting_leaves_nothing_in_the_driver_unless_retained() {
    for profile in CsiProfile::ALL {
        let server = server_with_nodes().await;
        let driver = csi::install(&server, profile);
        create(
            &server,
            claim("gone", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
        )
        .await;
        if profile.local() {
            pod(&server, "app", Some("node-1"), &["gone"]).await;
        }
        let bound = wait_bound(&server, "gone").await;
        let pv_name = bound.spec.clone().unwrap().volume_name.unwrap();
        if profile.snapshots() {
            take_snapshot(&server, "snap", "gone", None).await;
            let vs = wait_snapshot(&server, "snap", |v| v["status"]["readyToUse"] == true).await;
            let content = vs.data["status"]["boundVolumeSnapshotContentName"]
                .as_str()
                .unwrap()
                .to_string();
            snapshots(&server)
                .delete("snap", &DeleteParams::default())
                .await
                .unwrap();
            wait_gone(snapshots(&server), "snap").await;
            wait_gone(contents(&server), &content).await;
            assert!(
                driver.snapshots().is_empty(),
                "{profile:?}: driver snapshot deleted"
            );
        }
        if profile.local() {
            Api::<Pod>::namespaced(server.client(), "default")
                .delete("app", &DeleteParams::default())
                .await
                .unwrap();
        }
        claims(&server)
            .delete("gone", &DeleteParams::default())
            .await
            .unwrap();
        wait_gone(Api::<PersistentVolume>::all(server.client()), &pv_name).await;
        assert!(
            driver.volumes().is_empty(),
            "{profile:?}: driver volume deleted"
        );
    }

    // Retain.
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::CephRbd);
    create(
        &server,
        claim(
            "kept",
            Some("ceph-block-retain"),
            "1Gi",
            "Filesystem",
            &["ReadWriteOnce"],
        ),
    )
    .await;
    let bound = wait_bound(&server, "kept").await;
    let pv_name = bound.spec.unwrap().volume_name.unwrap();
    claims(&server)
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    let pvs = Api::<PersistentVolume>::all(server.client());
    let released = tokio::time::timeout(
        WAIT,
        await_condition(pvs, &pv_name, |o: Option<&PersistentVolume>| {
            o.and_then(|p| p.status.as_ref()?.phase.clone()).as_deref() == Some("Released")
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap();
    assert_eq!(
        released
            .spec
            .unwrap()
            .persistent_volume_reclaim_policy
            .as_deref(),
        Some("Retain")
    );
    assert_eq!(driver.volumes().len(), 1, "the retained volume stays");
}

/// A snapshot class with `deletionPolicy: Retain` keeps the content and the driver snapshot.
#[tokio::test]
async fn a_retained_snapshot_keeps_its_content() {
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::Longhorn);
    server
        .seed_yaml("apiVersion: snapshot.storage.k8s.io/v1\nkind: VolumeSnapshotClass\nmetadata: {name: keep}\ndriver: driver.longhorn.io\ndeletionPolicy: Retain\nparameters: {type: snap}\n")
        .unwrap();
    create(
        &server,
        claim("src", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    wait_bound(&server, "src").await;
    take_snapshot(&server, "snap", "src", Some("keep")).await;
    let vs = wait_snapshot(&server, "snap", |v| v["status"]["readyToUse"] == true).await;
    let content = vs.data["status"]["boundVolumeSnapshotContentName"]
        .as_str()
        .unwrap()
        .to_string();
    snapshots(&server)
        .delete("snap", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(snapshots(&server), "snap").await;
    let kept = contents(&server).get(&content).await.unwrap();
    assert_eq!(kept.data["spec"]["deletionPolicy"], "Retain");
    assert_eq!(driver.snapshots().len(), 1);
}

/// With the PVC protection controller, a claim a pod uses stays (marked for deletion) with its
/// volume until the pod goes.
#[tokio::test]
async fn a_claim_in_use_keeps_its_volume_until_the_pod_goes() {
    let server = TestServer::builder()
        .seed_yaml(NODES)
        .controller(kubecloud_testkit::PvcProtection)
        .start()
        .await
        .unwrap();
    let driver = csi::install(&server, CsiProfile::Longhorn);
    create(
        &server,
        claim("used", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    wait_claim(&server, "used", |c| {
        c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
            && c.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|x| x == "kubernetes.io/pvc-protection"))
    })
    .await;
    pod(&server, "app", Some("node-1"), &["used"]).await;
    claims(&server)
        .delete("used", &DeleteParams::default())
        .await
        .unwrap();
    let marked = wait_claim(&server, "used", |c| c.metadata.deletion_timestamp.is_some()).await;
    assert!(
        marked
            .metadata
            .finalizers
            .unwrap()
            .iter()
            .any(|f| f == "kubernetes.io/pvc-protection")
    );
    assert_eq!(
        driver.volumes().len(),
        1,
        "still there while the pod uses it"
    );
    Api::<Pod>::namespaced(server.client(), "default")
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(claims(&server), "used").await;
    let pv = format!("pvc-{}", marked.metadata.uid.unwrap());
    wait_gone(Api::<PersistentVolume>::all(server.client()), &pv).await;
    assert!(driver.volumes().is_empty());
}

/// An injected `CreateVolume` failure is reported, and the claim is provisioned at its next
/// change.
#[tokio::test]
async fn an_injected_provisioning_failure_is_reported_then_recovered() {
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::DemocraticIscsi);
    driver.fail_next_provision("zfs: out of space");
    create(
        &server,
        claim("d", None, "1Gi", "Block", &["ReadWriteMany"]),
    )
    .await;
    let failed = wait_event(&server, "d", "ProvisioningFailed").await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "failed to provision volume with StorageClass \"freenas-iscsi-csi\": rpc error: code = Internal desc = zfs: out of space"
        )
    );
    claims(&server)
        .patch(
            "d",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"retry": "1"}}})),
        )
        .await
        .unwrap();
    wait_bound(&server, "d").await;
    assert_eq!(driver.volumes().len(), 1);
}

/// The API server refuses growing a claim whose class does not allow expansion, and shrinking
/// below its capacity, as kube-apiserver's admission and validation do.
#[tokio::test]
async fn the_api_refuses_resizes_the_class_or_the_capacity_forbid() {
    let server = server_with_nodes().await;
    csi::CsiInstall::new(CsiProfile::Longhorn)
        .class(
            json!({"metadata": {"name": "fixed"}, "allowVolumeExpansion": false,
                      "parameters": {"numberOfReplicas": "1"}}),
        )
        .install(&server)
        .unwrap();
    create(
        &server,
        claim(
            "fixed",
            Some("fixed"),
            "1Gi",
            "Filesystem",
            &["ReadWriteOnce"],
        ),
    )
    .await;
    wait_bound(&server, "fixed").await;
    let err = claims(&server)
        .patch(
            "fixed",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!(status.code, 403);
    assert_eq!(
        status.message,
        "persistentvolumeclaims \"fixed\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
    );

    create(
        &server,
        claim(
            "big",
            Some("longhorn"),
            "2Gi",
            "Filesystem",
            &["ReadWriteOnce"],
        ),
    )
    .await;
    wait_bound(&server, "big").await;
    let err = claims(&server)
        .patch(
            "big",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "1Gi"}}}})),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error: {err}")
    };
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains(
            "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
        ),
        "{}",
        status.message
    );
}

/// The PV controller's and the provisioner's steps as events, the class's secret references
/// on the PV, and a missing provisioner secret refused as the provisioner refuses it.
#[tokio::test]
async fn the_provisioner_reports_its_steps_and_needs_the_class_secret() {
    let server = server_with_nodes().await;
    csi::install(&server, CsiProfile::CephRbd);
    create(
        &server,
        claim("a", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    let bound = wait_bound(&server, "a").await;
    let external = wait_event(&server, "a", "ExternalProvisioning").await;
    assert_eq!(
        external.message.as_deref(),
        Some(
            "Waiting for a volume to be created either by the external provisioner 'rbd.csi.ceph.com' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered."
        )
    );
    let provisioning = wait_event(&server, "a", "Provisioning").await;
    assert_eq!(
        provisioning.message.as_deref(),
        Some("External provisioner is provisioning volume for claim \"default/a\"")
    );
    let pv = pv_of(&server, &bound).await;
    let csi_src = pv.spec.unwrap().csi.unwrap();
    assert_eq!(csi_src.fs_type.as_deref(), Some("ext4"));
    let stage = csi_src.node_stage_secret_ref.unwrap();
    assert_eq!(
        (stage.name.as_deref(), stage.namespace.as_deref()),
        (Some("rook-csi-rbd-node"), Some("rook-ceph"))
    );
    let attributes = csi_src.volume_attributes.unwrap();
    assert_eq!(attributes["pool"], "replicapool");
    assert_eq!(attributes["clusterID"], "rook-ceph");
    assert!(
        !attributes.contains_key("csi.storage.k8s.io/fstype"),
        "prefixed keys stripped"
    );
    assert_eq!(
        pv.metadata.annotations.unwrap()["volume.kubernetes.io/provisioner-deletion-secret-name"],
        "rook-csi-rbd-provisioner"
    );

    server
        .cluster()
        .delete(
            "v1",
            "Secret",
            Some("rook-ceph"),
            "rook-csi-rbd-provisioner",
        )
        .unwrap();
    create(
        &server,
        claim("b", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    let failed = wait_event(&server, "b", "ProvisioningFailed").await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "failed to provision volume with StorageClass \"ceph-block\": error getting secret rook-csi-rbd-provisioner in namespace rook-ceph: secrets \"rook-csi-rbd-provisioner\" not found"
        )
    );
}

/// Work waiting on a source goes on when the source is there: a clone asked before its source
/// claim exists is refused, then made once the source is bound; a snapshot of a claim waiting
/// for its first consumer is taken once the claim is bound.
#[tokio::test]
async fn clones_and_snapshots_wait_for_their_source() {
    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::Longhorn);
    create(&server, clone_of("early", "longhorn", "1Gi", "later")).await;
    let failed = wait_event(&server, "early", "ProvisioningFailed").await;
    assert_eq!(
        failed.message.as_deref(),
        Some(
            "failed to provision volume with StorageClass \"longhorn\": error getting handle for DataSource Type PersistentVolumeClaim by Name later: error getting PVC later (namespace \"default\") from api server: persistentvolumeclaim \"later\" not found"
        )
    );
    create(
        &server,
        claim(
            "later",
            Some("longhorn"),
            "1Gi",
            "Filesystem",
            &["ReadWriteOnce"],
        ),
    )
    .await;
    let early = wait_bound(&server, "early").await;
    let handle = pv_of(&server, &early)
        .await
        .spec
        .unwrap()
        .csi
        .unwrap()
        .volume_handle;
    assert!(matches!(
        driver.volume(&handle).unwrap().source,
        Some(ContentSource::Volume(_))
    ));

    let server = server_with_nodes().await;
    let driver = csi::install(&server, CsiProfile::LocalPvLvm);
    create(
        &server,
        claim("late", None, "1Gi", "Filesystem", &["ReadWriteOnce"]),
    )
    .await;
    take_snapshot(&server, "snap", "late", None).await;
    wait_event(&server, "late", "WaitForFirstConsumer").await;
    assert!(driver.snapshots().is_empty());
    pod(&server, "app", Some("node-2"), &["late"]).await;
    let vs = wait_snapshot(&server, "snap", |v| v["status"]["readyToUse"] == true).await;
    assert_eq!(vs.data["status"]["restoreSize"], "1Gi");
    assert_eq!(driver.snapshots().len(), 1);
}
