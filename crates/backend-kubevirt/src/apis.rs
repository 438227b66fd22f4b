//! API handles for the kinds this backend reads and writes: typed (the generated models) for
//! every kind it reads, dynamic for the write-only migrations and the instance types it only
//! lists by name.

use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kubecloud_models::cdi::DataVolume;
use kubecloud_models::kubevirt::{
    VirtualMachine, VirtualMachineInstance, VirtualMachineRestore, VirtualMachineSnapshot,
};

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// `VirtualMachine`s in `ns`.
pub fn vms(client: &kube::Client, ns: &str) -> Api<VirtualMachine> {
    Api::namespaced(client.clone(), ns)
}

/// `VirtualMachineInstance`s in `ns`.
pub fn vmis(client: &kube::Client, ns: &str) -> Api<VirtualMachineInstance> {
    Api::namespaced(client.clone(), ns)
}

/// `VirtualMachineInstance`s in `ns`, untyped: for merge patches of their annotations.
pub fn vmis_dynamic(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = resource(
        "kubevirt.io",
        "v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// `VirtualMachineInstanceMigration`s in `ns`.
pub fn migrations(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let ar = resource(
        "kubevirt.io",
        "v1",
        "VirtualMachineInstanceMigration",
        "virtualmachineinstancemigrations",
    );
    Api::namespaced_with(client.clone(), ns, &ar)
}

/// CDI `DataVolume`s in `ns` (see [`kubecloud_kube::cdi`]).
pub fn data_volumes(client: &kube::Client, ns: &str) -> Api<DataVolume> {
    kubecloud_kube::cdi::data_volume_api(client, ns)
}

/// The path of a KubeVirt VM subresource (`start`, `stop`, `restart`).
pub fn subresource_path(ns: &str, vm: &str, action: &str) -> String {
    format!("/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{vm}/{action}")
}

/// The path of a KubeVirt VM instance subresource (`console`, `vnc`).
pub fn instance_subresource_path(ns: &str, vmi: &str, sub: &str) -> String {
    format!("/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{vmi}/{sub}")
}

/// `VirtualMachineSnapshot`s in `ns`.
pub fn vm_snapshots(client: &kube::Client, ns: &str) -> Api<VirtualMachineSnapshot> {
    Api::namespaced(client.clone(), ns)
}

/// `VirtualMachineRestore`s in `ns`.
pub fn vm_restores(client: &kube::Client, ns: &str) -> Api<VirtualMachineRestore> {
    Api::namespaced(client.clone(), ns)
}

/// The instance types VMs of namespace `ns` may name: `VirtualMachineClusterInstancetype`s
/// (`ns` unused) or `VirtualMachineInstancetype`s in `ns`, per `kind`.
pub fn instancetypes(
    client: &kube::Client,
    ns: &str,
    kind: crate::options::InstancetypeKind,
) -> Api<DynamicObject> {
    match kind {
        crate::options::InstancetypeKind::Cluster => Api::all_with(
            client.clone(),
            &resource(
                "instancetype.kubevirt.io",
                "v1beta1",
                "VirtualMachineClusterInstancetype",
                "virtualmachineclusterinstancetypes",
            ),
        ),
        crate::options::InstancetypeKind::Namespaced => Api::namespaced_with(
            client.clone(),
            ns,
            &resource(
                "instancetype.kubevirt.io",
                "v1beta1",
                "VirtualMachineInstancetype",
                "virtualmachineinstancetypes",
            ),
        ),
    }
}
