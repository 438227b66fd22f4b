//! The fake cloud with a simulated CSI driver instead of LINSTOR: what is (not) installed, and
//! VMs whose boot disks are imported into the driver's classes, including a
//! `WaitForFirstConsumer` class (LocalPV-LVM), where the VM's temporary launcher pod is the
//! consumer and the VM then runs on the volume's node.

use std::time::Duration;

use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::await_condition;
use kubecloud_testkit::FakeCloud;
use kubecloud_testkit::csi::CsiProfile;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn api(
    cloud: &FakeCloud,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, version, kind);
    Api::namespaced_with(
        cloud.kube().client(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, plural),
    )
}

async fn until(
    api: Api<DynamicObject>,
    name: &str,
    cond: impl Fn(&Value) -> bool,
) -> DynamicObject {
    let ok = move |o: Option<&DynamicObject>| o.is_some_and(|o| cond(&o.data));
    tokio::time::timeout(WAIT, await_condition(api, name, ok))
        .await
        .unwrap_or_else(|_| panic!("{name} never reached the condition"))
        .unwrap()
        .unwrap()
}

/// A VM booting from an image imported into `class`.
fn vm(name: &str, class: &str) -> Value {
    json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
    "metadata": {"name": name, "namespace": "default"},
    "spec": {
        "runStrategy": "Always",
        "dataVolumeTemplates": [{
            "metadata": {"name": format!("{name}-boot")},
            "spec": {"source": {"http": {"url": "https://images.example.com/debian.qcow2"}},
                     "storage": {"storageClassName": class, "accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": "5Gi"}}}},
        }],
        "template": {"spec": {
            "domain": {"devices": {"disks": [{"name": "boot", "disk": {"bus": "virtio"}}]},
                       "memory": {"guest": "1Gi"}},
            "volumes": [{"name": "boot", "dataVolume": {"name": format!("{name}-boot")}}],
        }}}})
}

async fn create_vm(cloud: &FakeCloud, name: &str, class: &str) {
    api(
        cloud,
        "kubevirt.io",
        "v1",
        "VirtualMachine",
        "virtualmachines",
    )
    .create(
        &PostParams::default(),
        &serde_json::from_value(vm(name, class)).unwrap(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_csi_fake_cloud_has_the_driver_and_no_linstor() {
    let cloud = FakeCloud::builder()
        .csi(CsiProfile::Longhorn)
        .start()
        .await
        .unwrap();
    let c = cloud.kube().cluster();
    assert!(cloud.try_linstor().is_none());
    assert!(
        c.list("piraeus.io/v1", "LinstorCluster", None)
            .unwrap()
            .is_empty()
    );
    assert!(
        c.get_opt("v1", "Namespace", None, "piraeus-datastore")
            .unwrap()
            .is_none()
    );
    let driver = cloud.csi().unwrap();
    let csi_driver = c
        .get("storage.k8s.io/v1", "CSIDriver", None, "driver.longhorn.io")
        .unwrap();
    assert_eq!(csi_driver["spec"]["attachRequired"], true);
    let classes: Vec<String> = c
        .list("storage.k8s.io/v1", "StorageClass", None)
        .unwrap()
        .iter()
        .map(|sc| sc["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(classes.len(), driver.storage_classes().len());
    assert!(classes.iter().all(|n| driver.storage_classes().contains(n)));
    let vsc = c
        .get(
            "snapshot.storage.k8s.io/v1",
            "VolumeSnapshotClass",
            None,
            "longhorn-snapshot-vsc",
        )
        .unwrap();
    assert_eq!(vsc["driver"], "driver.longhorn.io");
    // The LINSTOR fake cloud still has its LINSTOR.
    let linstor = FakeCloud::start().await.unwrap();
    assert!(linstor.try_linstor().is_some() && linstor.csi().is_none());
}

/// A VM whose boot disk is imported into a 2-replica Longhorn class runs, and the driver made
/// a 2-replica volume for it.
#[tokio::test]
async fn a_vm_on_a_longhorn_class_gets_a_volume_with_the_class_replicas() {
    let cloud = FakeCloud::builder()
        .csi(CsiProfile::Longhorn)
        .start()
        .await
        .unwrap();
    create_vm(&cloud, "web", "longhorn-r2").await;
    until(
        api(
            &cloud,
            "kubevirt.io",
            "v1",
            "VirtualMachine",
            "virtualmachines",
        ),
        "web",
        |v| v["status"]["printableStatus"] == "Running",
    )
    .await;
    let volumes = cloud.csi().unwrap().volumes();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].replicas, 2);
    assert_eq!(volumes[0].size_bytes, 5 << 30);
}

/// On LocalPV-LVM (`WaitForFirstConsumer`) the DataVolume waits for a consumer, the VM's
/// temporary pod is that consumer, the volume is made on its node, the import runs, and the VM
/// runs on that node with the temporary pod gone.
#[tokio::test]
async fn a_vm_on_a_wait_for_first_consumer_class_runs_where_its_volume_is() {
    let cloud = FakeCloud::builder()
        .csi(CsiProfile::LocalPvLvm)
        .start()
        .await
        .unwrap();
    create_vm(&cloud, "db", "openebs-lvmpv").await;
    let vmi = until(
        api(
            &cloud,
            "kubevirt.io",
            "v1",
            "VirtualMachineInstance",
            "virtualmachineinstances",
        ),
        "db",
        |v| v["status"]["phase"] == "Running",
    )
    .await;
    let dv = api(
        &cloud,
        "cdi.kubevirt.io",
        "v1beta1",
        "DataVolume",
        "datavolumes",
    )
    .get("db-boot")
    .await
    .unwrap();
    assert_eq!(dv.data["status"]["phase"], "Succeeded");
    let volumes = cloud.csi().unwrap().volumes();
    assert_eq!(volumes.len(), 1);
    let node = volumes[0].node.clone().unwrap();
    assert_eq!(vmi.data["status"]["nodeName"], node.as_str());
    let claim = cloud
        .kube()
        .cluster()
        .get("v1", "PersistentVolumeClaim", Some("default"), "db-boot")
        .unwrap();
    assert_eq!(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
        node.as_str()
    );
    let pods = cloud
        .kube()
        .cluster()
        .list_selected("v1", "Pod", Some("default"), "vm.kubevirt.io/name=db")
        .unwrap();
    assert_eq!(pods.len(), 1, "the temporary pod is gone");
    assert!(pods[0]["metadata"]["annotations"]["kubevirt.io/ephemeral-provisioning"].is_null());
    assert_eq!(pods[0]["spec"]["nodeName"], node.as_str());
}
