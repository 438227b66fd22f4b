//! Shared setup: a TestServer with the simulated KubeVirt and CDI, nodes and a default
//! StorageClass.

#![allow(dead_code)]

use std::time::Duration;

use kubecloud_core::{Tenant, wait};
use kubecloud_kube::ownership_labels;
use kubecloud_kubevirt::KubeVirt;
use kubecloud_testkit::{
    CdiController, KubeVirtController, KubeVirtKnobs, KubeVirtSnapshotController, TestServer,
};
use serde_json::json;

/// The guard of every wait.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A server and the backend on it.
pub struct Env {
    /// The API double.
    pub server: TestServer,
    /// The backend under test.
    pub compute: KubeVirt,
    /// The simulated KubeVirt's knobs.
    pub knobs: KubeVirtKnobs,
}

/// A fresh environment.
pub async fn env() -> Env {
    // The catalog's RBAC, as an operator applies it: tenants' VMs may clone from the catalog.
    let rbac = kubecloud_testkit::Rbac::default();
    for object in kubecloud_kubevirt::catalog::rbac_manifests(
        kubecloud_core::DEFAULT_CATALOG_NAMESPACE,
        "kubecloud-catalog-reader",
    ) {
        rbac.install(object);
    }
    let kubevirt = KubeVirtController::new().with_rbac(rbac);
    let knobs = kubevirt.knobs();
    let server = TestServer::builder()
        .seed_yaml(&kubevirt.node_manifests())
        .seed_yaml(
            "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: standard\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: linstor.csi.linbit.com\n",
        )
        .controller(kubevirt)
        .controller(CdiController::new())
        .controller(KubeVirtSnapshotController)
        .start()
        .await
        .expect("server");
    let compute = KubeVirt::builder(server.client()).build();
    Env {
        server,
        compute,
        knobs,
    }
}

/// A tenant volume as the storage backend would make it: a PVC with ownership labels.
pub fn seed_volume(server: &TestServer, tenant: &Tenant, name: &str, rwx: bool) {
    let ns = tenant.as_str();
    // The tenant's namespace as kubecloud makes it (a storage backend's ensure_namespace).
    let namespace = kubecloud_kube::namespace_object(tenant);
    let _ = server.cluster().create(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": serde_json::to_value(&namespace.metadata).expect("metadata"),
    }));
    server
        .cluster()
        .create(json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": ns, "labels": ownership_labels(tenant, name)},
            "spec": {
                "accessModes": [if rwx {"ReadWriteMany"} else {"ReadWriteOnce"}],
                "volumeMode": "Block",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }))
        .expect("pvc");
}

/// A tenant subnet as the network backend would make it: a Kube-OVN Subnet with ownership
/// labels.
pub fn seed_subnet(server: &TestServer, tenant: &Tenant, name: &str, cidr: &str) {
    let object = kubecloud_kube::names::cluster_scoped(tenant, name);
    server
        .cluster()
        .create(json!({
            "apiVersion": "kubeovn.io/v1", "kind": "Subnet",
            "metadata": {"name": object, "labels": ownership_labels(tenant, name)},
            "spec": {"cidrBlock": cidr, "protocol": "IPv4"},
        }))
        .expect("subnet");
}

/// Waits on `watch_vm` until `condition`.
pub async fn wait_vm<C: wait::Condition<kubecloud_core::Vm>>(
    compute: &KubeVirt,
    tenant: &Tenant,
    name: &str,
    condition: C,
) -> kubecloud_core::Result<kubecloud_core::Vm> {
    use kubecloud_core::Compute;
    let states = compute.watch_vm(tenant, name).await?;
    wait::until(states, condition, TIMEOUT).await
}

/// What a VM of `spec` is attached to, written out as a network and a storage backend would
/// answer (this crate's tests run without either): pod-network interfaces as asked; the first
/// subnet interface on the pod network, bridge-bound, placed and addressed by Kube-OVN-style pod
/// annotations (what the simulated KubeVirt reads the instance's addresses from) with addresses
/// kept over migration; each volume's claim named after it (read-write-once).
pub fn attachments(spec: &kubecloud_core::VmSpec) -> kubecloud_core::VmAttachments {
    use kubecloud_core::{AccessMode, Attachment, InterfaceAttachment, VolumeAttachment};
    kubecloud_core::VmAttachments {
        interfaces: spec
            .interfaces
            .iter()
            .map(|i| match &i.attachment {
                Attachment::PodNetwork { binding } => InterfaceAttachment::pod(i, *binding),
                Attachment::Subnet { subnet } => {
                    let mut a = InterfaceAttachment::pod(i, kubecloud_core::PodBinding::Bridge);
                    let annotations = &mut a.pod_annotations;
                    annotations.insert("ovn.kubernetes.io/logical_switch".into(), subnet.clone());
                    if let Some(ip) = i.fixed_ip {
                        annotations.insert("ovn.kubernetes.io/ip_address".into(), ip.to_string());
                    }
                    if let Some(mac) = i.mac {
                        annotations.insert("ovn.kubernetes.io/mac_address".into(), mac.to_string());
                    }
                    a.guarantees.addresses_kept_on_migration = true;
                    a
                }
            })
            .collect(),
        volumes: spec
            .volumes()
            .into_iter()
            .map(|volume| VolumeAttachment {
                claim: volume.clone(),
                volume,
                access: AccessMode::ReadWriteOnce,
            })
            .collect(),
    }
}
