//! Domain spec → KubeVirt and CDI objects. Pure: no I/O, golden-tested
//! (`tests/golden/*.json`).
//!
//! See the crate docs for the mapping of interfaces, disks and cloud-init.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kubecloud_core::{
    AccessMode, Attachment, BootDisk, NetworkInterface, PodBinding, Result, RunStrategy, Tenant,
    VmResources, VmSpec, VolumeMode,
};
use kubecloud_kube::{names, ownership_labels, tenant_namespace};
use serde_json::{Map, Value, json};

use crate::options::{InstancetypeKind, Options, SshPropagation};

/// The annotation holding the applied domain spec (without its secret material), so `get_vm`
/// returns exactly what was applied.
pub const SPEC_ANNOTATION: &str = "kubecloud.io/spec";
/// Label on objects created for a VM (DataVolumes, migrations) naming the VM.
pub const VM_LABEL: &str = "kubecloud.io/vm";
/// Label carrying a VM's spread group (for pod anti-affinity between its members).
pub const SPREAD_LABEL: &str = "kubecloud.io/spread-group";
/// The name of the interface a VM gets when its spec lists none.
pub const DEFAULT_INTERFACE: &str = "default";
/// KubeVirt's annotation allowing live migration with bridge binding on the pod network.
pub const ALLOW_POD_BRIDGE_MIGRATION: &str = "kubevirt.io/allow-pod-bridge-network-live-migration";
/// Kube-OVN: the logical switch (subnet) of the pod's default interface.
pub const OVN_LOGICAL_SWITCH: &str = "ovn.kubernetes.io/logical_switch";
/// Kube-OVN: the fixed IP of the pod's default interface.
pub const OVN_IP: &str = "ovn.kubernetes.io/ip_address";
/// Kube-OVN: the fixed MAC of the pod's default interface.
pub const OVN_MAC: &str = "ovn.kubernetes.io/mac_address";

/// The API version of KubeVirt's core kinds.
pub const KUBEVIRT_V1: &str = "kubevirt.io/v1";
/// The API version of CDI's DataVolume.
pub const CDI_V1BETA1: &str = "cdi.kubevirt.io/v1beta1";

/// How one spec interface is wired (see the crate docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wiring {
    /// The pod network, with this binding.
    Pod(PodBinding),
    /// The pod network, placed in a Kube-OVN subnet (logical switch) by annotations; bridge or
    /// masquerade binding per [`Options`].
    PrimarySubnet {
        /// The tenant subnet.
        subnet: String,
    },
    /// A Multus attachment of the subnet's NetworkAttachmentDefinition, bridge binding.
    Secondary {
        /// The tenant subnet.
        subnet: String,
    },
}

/// The interfaces of a spec, with the implicit pod-network one when it lists none.
pub fn interfaces(spec: &VmSpec) -> Vec<NetworkInterface> {
    if spec.interfaces.is_empty() {
        vec![NetworkInterface::pod_network(DEFAULT_INTERFACE)]
    } else {
        spec.interfaces.clone()
    }
}

/// How each interface of `spec` is wired, in order: a pod-network interface stays on the pod
/// network; the first subnet interface goes on the pod network (in its Kube-OVN subnet) unless
/// another interface already uses the pod network; every other subnet interface is a Multus
/// attachment.
pub fn wiring(spec: &VmSpec) -> Vec<(NetworkInterface, Wiring)> {
    let ifaces = interfaces(spec);
    let pod_taken = ifaces
        .iter()
        .any(|i| matches!(i.attachment, Attachment::PodNetwork { .. }));
    let mut primary_done = pod_taken;
    ifaces
        .into_iter()
        .map(|iface| {
            let w = match &iface.attachment {
                Attachment::PodNetwork { binding } => Wiring::Pod(*binding),
                Attachment::Subnet { subnet } if !primary_done => {
                    primary_done = true;
                    Wiring::PrimarySubnet {
                        subnet: subnet.clone(),
                    }
                }
                Attachment::Subnet { subnet } => Wiring::Secondary {
                    subnet: subnet.clone(),
                },
            };
            (iface, w)
        })
        .collect()
}

/// The name of the disk and volume of the boot disk.
pub const BOOT_DISK: &str = "boot";
/// The name of the cloud-init disk and volume.
pub const CLOUD_INIT_DISK: &str = "cloudinit";

/// The disk/volume name of data volume number `i`.
pub fn data_disk(i: usize) -> String {
    format!("data-{i}")
}

/// The spec as stored in [`SPEC_ANNOTATION`]: secret material replaced by a marker (`""`), so the
/// annotation says which secret keys exist without holding them.
pub fn stored_spec(spec: &VmSpec) -> VmSpec {
    let mut stored = spec.clone();
    if let Some(ci) = &mut stored.cloud_init {
        if ci.user_data.is_some() {
            ci.user_data = Some("".into());
        }
        if ci.network_data.is_some() {
            ci.network_data = Some("".into());
        }
        ci.ssh_keys = ci.ssh_keys.iter().map(|_| "".into()).collect();
    }
    stored
}

/// The labels every object of VM `vm` carries: its own labels (so Services select them), then
/// the recommended and ownership labels (which win on a clash).
fn vm_labels(tenant: &Tenant, spec: &VmSpec) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone();
    labels.insert("app.kubernetes.io/name".into(), "kubecloud-vm".into());
    labels.insert("app.kubernetes.io/instance".into(), spec.name.clone());
    labels.insert(
        "app.kubernetes.io/component".into(),
        "virtual-machine".into(),
    );
    if let Some(group) = &spec.placement.spread_group {
        labels.insert(SPREAD_LABEL.into(), group.clone());
    }
    labels.extend(ownership_labels(tenant, &spec.name));
    labels
}

fn run_strategy(rs: RunStrategy) -> &'static str {
    match rs {
        RunStrategy::Always => "Always",
        RunStrategy::Halted => "Halted",
        RunStrategy::Manual => "Manual",
        RunStrategy::RerunOnFailure => "RerunOnFailure",
    }
}

fn access_mode(a: AccessMode) -> &'static str {
    match a {
        AccessMode::ReadWriteOnce => "ReadWriteOnce",
        AccessMode::ReadWriteMany => "ReadWriteMany",
    }
}

fn volume_mode(m: VolumeMode) -> &'static str {
    match m {
        VolumeMode::Block => "Block",
        VolumeMode::Filesystem => "Filesystem",
    }
}

/// Whether the VM is meant to live-migrate: every volume it creates is RWX and no interface is
/// bridge-bound on the pod network without the migration annotation. Sets
/// `evictionStrategy: LiveMigrate`.
pub fn meant_to_migrate(spec: &VmSpec) -> bool {
    let import_shared = match &spec.boot_disk {
        BootDisk::Import { access, .. } => *access == AccessMode::ReadWriteMany,
        _ => true,
    };
    let no_pod_bridge = wiring(spec)
        .iter()
        .all(|(_, w)| *w != Wiring::Pod(PodBinding::Bridge));
    import_shared && no_pod_bridge
}

/// The CDI DataVolume template importing the boot disk, if the spec imports one.
pub fn import_template(tenant: &Tenant, spec: &VmSpec, opts: &Options) -> Option<Value> {
    let BootDisk::Import {
        url,
        size,
        tier,
        access,
        mode,
        ..
    } = &spec.boot_disk
    else {
        return None;
    };
    let volume = BootDisk::import_volume_name(&spec.name);
    let mut labels = ownership_labels(tenant, &volume);
    labels.insert(VM_LABEL.into(), spec.name.clone());
    let mut storage = json!({
        "accessModes": [access_mode(*access)],
        "volumeMode": volume_mode(*mode),
        "resources": {"requests": {"storage": size.to_string()}},
    });
    if let Some(class) = tier.as_ref().or(opts.storage_class.as_ref()) {
        storage["storageClassName"] = json!(class);
    }
    Some(json!({
        "metadata": {"name": volume, "labels": labels},
        "spec": {"source": {"http": {"url": url}}, "storage": storage},
    }))
}

/// The `VirtualMachine` for `spec` in the tenant's namespace. Cloud-init and SSH keys are
/// referenced by Secret name ([`names::cloud_init_secret`], [`names::ssh_secret`]), never inline.
pub fn virtual_machine(tenant: &Tenant, spec: &VmSpec, opts: &Options) -> Result<Value> {
    let ns = tenant_namespace(tenant);
    let labels = vm_labels(tenant, spec);
    let stored = serde_json::to_string(&stored_spec(spec)).map_err(|e| {
        kubecloud_core::Error::backend("kubevirt", "serializing the spec", false, e)
    })?;

    // Disks and volumes, in boot order.
    let mut disks = Vec::new();
    let mut volumes = Vec::new();
    let boot_volume = match &spec.boot_disk {
        BootDisk::Volume { volume } => {
            json!({"name": BOOT_DISK, "persistentVolumeClaim": {"claimName": names::claim(volume)}})
        }
        BootDisk::ContainerImage { image } => {
            json!({"name": BOOT_DISK, "containerDisk": {"image": image}})
        }
        BootDisk::Import { .. } => {
            json!({"name": BOOT_DISK, "dataVolume": {"name": BootDisk::import_volume_name(&spec.name)}})
        }
    };
    disks.push(json!({"name": BOOT_DISK, "bootOrder": 1, "disk": {"bus": "virtio"}}));
    volumes.push(boot_volume);
    for (i, volume) in spec.data_volumes.iter().enumerate() {
        disks.push(json!({"name": data_disk(i), "disk": {"bus": "virtio"}}));
        volumes.push(json!({"name": data_disk(i), "persistentVolumeClaim": {"claimName": names::claim(volume)}}));
    }
    let mut access_credentials = Vec::new();
    if let Some(ci) = &spec.cloud_init {
        let secret = names::cloud_init_secret(&spec.name);
        let mut source = json!({"secretRef": {"name": secret}});
        if ci.network_data.is_some() {
            source["networkDataSecretRef"] = json!({"name": secret});
        }
        disks.push(json!({"name": CLOUD_INIT_DISK, "disk": {"bus": "virtio"}}));
        volumes.push(json!({"name": CLOUD_INIT_DISK, "cloudInitNoCloud": source}));
        if !ci.ssh_keys.is_empty() {
            let method = match &opts.ssh_propagation {
                SshPropagation::NoCloud => json!({"noCloud": {}}),
                SshPropagation::QemuGuestAgent { users } => {
                    json!({"qemuGuestAgent": {"users": users}})
                }
            };
            access_credentials.push(json!({"sshPublicKey": {
                "source": {"secret": {"secretName": names::ssh_secret(&spec.name)}},
                "propagationMethod": method,
            }}));
        }
    }

    // Interfaces and networks.
    let mut template_annotations = Map::new();
    let mut kv_interfaces = Vec::new();
    let mut networks = Vec::new();
    for (iface, w) in wiring(spec) {
        let mut kv = json!({"name": iface.name});
        match &w {
            Wiring::Pod(binding) => {
                kv[binding_key(*binding)] = json!({});
                networks.push(json!({"name": iface.name, "pod": {}}));
            }
            Wiring::PrimarySubnet { subnet } => {
                kv[binding_key(opts.primary_subnet_binding)] = json!({});
                networks.push(json!({"name": iface.name, "pod": {}}));
                template_annotations.insert(
                    OVN_LOGICAL_SWITCH.into(),
                    json!(names::cluster_scoped(tenant, subnet)),
                );
                if let Some(ip) = iface.fixed_ip {
                    template_annotations.insert(OVN_IP.into(), json!(ip.to_string()));
                }
                if let Some(mac) = iface.mac {
                    template_annotations.insert(OVN_MAC.into(), json!(mac.to_string()));
                }
                if opts.primary_subnet_binding == PodBinding::Bridge {
                    template_annotations.insert(ALLOW_POD_BRIDGE_MIGRATION.into(), json!("true"));
                }
            }
            Wiring::Secondary { subnet } => {
                kv["bridge"] = json!({});
                let nad = names::attachment(subnet);
                networks.push(
                    json!({"name": iface.name, "multus": {"networkName": format!("{ns}/{nad}")}}),
                );
                let provider = names::ovn_provider(tenant, subnet);
                template_annotations.insert(
                    format!("{provider}.kubernetes.io/logical_switch"),
                    json!(names::cluster_scoped(tenant, subnet)),
                );
                if let Some(ip) = iface.fixed_ip {
                    template_annotations.insert(
                        format!("{provider}.kubernetes.io/ip_address"),
                        json!(ip.to_string()),
                    );
                }
                if let Some(mac) = iface.mac {
                    template_annotations.insert(
                        format!("{provider}.kubernetes.io/mac_address"),
                        json!(mac.to_string()),
                    );
                }
            }
        }
        if let Some(mac) = iface.mac {
            kv["macAddress"] = json!(mac.to_string());
        }
        kv_interfaces.push(kv);
    }

    let mut domain = json!({"devices": {"disks": disks, "interfaces": kv_interfaces}});
    let mut vm_spec = json!({"runStrategy": run_strategy(spec.run_strategy)});
    match &spec.resources {
        VmResources::Custom { cpu_cores, memory } => {
            domain["cpu"] = json!({"cores": cpu_cores});
            domain["memory"] = json!({"guest": memory.to_string()});
        }
        VmResources::InstanceType { name } => {
            let kind = match opts.instancetype_kind {
                InstancetypeKind::Cluster => "VirtualMachineClusterInstancetype",
                InstancetypeKind::Namespaced => "VirtualMachineInstancetype",
            };
            vm_spec["instancetype"] = json!({"kind": kind, "name": name});
        }
    }
    if let Some(t) = import_template(tenant, spec, opts) {
        vm_spec["dataVolumeTemplates"] = json!([t]);
    }

    let mut template_spec = json!({
        "domain": domain,
        "networks": networks,
        "volumes": volumes,
    });
    if !access_credentials.is_empty() {
        template_spec["accessCredentials"] = json!(access_credentials);
    }
    if meant_to_migrate(spec) {
        template_spec["evictionStrategy"] = json!("LiveMigrate");
    }
    if !spec.placement.node_selector.is_empty() {
        template_spec["nodeSelector"] = json!(spec.placement.node_selector);
    }
    if let Some(affinity) = affinity(tenant, spec) {
        template_spec["affinity"] = affinity;
    }
    let mut template_meta = json!({"labels": labels});
    if !template_annotations.is_empty() {
        template_meta["annotations"] = Value::Object(template_annotations);
    }
    vm_spec["template"] = json!({"metadata": template_meta, "spec": template_spec});

    Ok(json!({
        "apiVersion": KUBEVIRT_V1,
        "kind": "VirtualMachine",
        "metadata": {
            "name": spec.name,
            "namespace": ns,
            "labels": labels,
            "annotations": {SPEC_ANNOTATION: stored},
        },
        "spec": vm_spec,
    }))
}

fn binding_key(b: PodBinding) -> &'static str {
    match b {
        PodBinding::Masquerade => "masquerade",
        PodBinding::Bridge => "bridge",
    }
}

/// Node affinity from preferred nodes (weights 100, 90, ...), pod anti-affinity from the spread
/// group.
fn affinity(tenant: &Tenant, spec: &VmSpec) -> Option<Value> {
    let p = &spec.placement;
    let mut affinity = Map::new();
    if !p.preferred_nodes.is_empty() {
        let terms: Vec<Value> = p
            .preferred_nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let weight = 100i64.saturating_sub(10 * i as i64).max(1);
                json!({"weight": weight, "preference": {"matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
                ]}})
            })
            .collect();
        affinity.insert(
            "nodeAffinity".into(),
            json!({"preferredDuringSchedulingIgnoredDuringExecution": terms}),
        );
    }
    if let Some(group) = &p.spread_group {
        affinity.insert(
            "podAntiAffinity".into(),
            json!({"preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": {"matchLabels": {
                        SPREAD_LABEL: group,
                        kubecloud_kube::TENANT: tenant.as_str(),
                    }},
                    "topologyKey": "kubernetes.io/hostname",
                },
            }]}),
        );
    }
    (!affinity.is_empty()).then_some(Value::Object(affinity))
}

/// The Secrets of a VM: cloud-init (`userdata`, `networkdata`) and SSH keys (one key per public
/// key, `key0`, `key1`...). `owner` is the VM's owner reference, so the Secrets go with it.
pub fn secrets(tenant: &Tenant, spec: &VmSpec, owner: Option<OwnerReference>) -> Vec<Secret> {
    let Some(ci) = &spec.cloud_init else {
        return Vec::new();
    };
    let ns = tenant_namespace(tenant);
    let meta = |name: String| ObjectMeta {
        name: Some(name),
        namespace: Some(ns.clone()),
        labels: Some(ownership_labels(tenant, &spec.name)),
        owner_references: owner.clone().map(|o| vec![o]),
        ..ObjectMeta::default()
    };
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let mut data = BTreeMap::new();
    let user = ci
        .user_data
        .as_ref()
        .map(|u| u.expose().to_string())
        .unwrap_or_else(|| "#cloud-config\n".into());
    data.insert("userdata".to_string(), bytes(&user));
    if let Some(nd) = &ci.network_data {
        data.insert("networkdata".to_string(), bytes(nd.expose()));
    }
    let mut out = vec![Secret {
        metadata: meta(names::cloud_init_secret(&spec.name)),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }];
    if !ci.ssh_keys.is_empty() {
        let keys = ci
            .ssh_keys
            .iter()
            .enumerate()
            .map(|(i, k)| (format!("key{i}"), bytes(k.expose().trim())))
            .collect();
        out.push(Secret {
            metadata: meta(names::ssh_secret(&spec.name)),
            type_: Some("Opaque".into()),
            data: Some(keys),
            ..Secret::default()
        });
    }
    out
}

/// The owner reference pointing at a VirtualMachine (for its Secrets).
pub fn vm_owner(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: KUBEVIRT_V1.into(),
        kind: "VirtualMachine".into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(false),
        block_owner_deletion: Some(false),
    }
}

/// The `VirtualMachineInstanceMigration` moving VM `vm`'s instance; `node` adds a
/// `kubernetes.io/hostname` selector for a migration to a named node.
pub fn migration(tenant: &Tenant, vm: &str, name: &str, node: Option<&str>) -> Value {
    let mut labels = ownership_labels(tenant, vm);
    labels.insert(VM_LABEL.into(), vm.into());
    let mut spec = json!({"vmiName": vm});
    if let Some(node) = node {
        spec["addedNodeSelector"] = json!({"kubernetes.io/hostname": node});
    }
    json!({
        "apiVersion": KUBEVIRT_V1,
        "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": name, "namespace": tenant_namespace(tenant), "labels": labels},
        "spec": spec,
    })
}

/// The API version of KubeVirt's snapshot kinds.
pub const SNAPSHOT_V1BETA1: &str = "snapshot.kubevirt.io/v1beta1";
/// Annotation on a `VirtualMachineSnapshot` listing the tenant volumes it captured
/// (comma-separated, in [`VmSpec::volumes`] order).
pub const VOLUMES_ANNOTATION: &str = "kubecloud.io/volumes";

/// The `VirtualMachineSnapshot` `name` of VM `vm` (whose spec uses `volumes`), labelled with the
/// ownership labels and [`VM_LABEL`].
pub fn vm_snapshot(tenant: &Tenant, vm: &str, name: &str, volumes: &[String]) -> Value {
    let mut labels = ownership_labels(tenant, name);
    labels.insert(VM_LABEL.into(), vm.into());
    json!({
        "apiVersion": SNAPSHOT_V1BETA1,
        "kind": "VirtualMachineSnapshot",
        "metadata": {
            "name": name,
            "namespace": tenant_namespace(tenant),
            "labels": labels,
            "annotations": {VOLUMES_ANNOTATION: volumes.join(",")},
        },
        "spec": {
            "source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm},
        },
    })
}

/// The `VirtualMachineRestore` `name` of VM `vm` in place from `snapshot`; it fails at once
/// (`targetReadinessPolicy: FailImmediate`) rather than stopping a running VM.
pub fn vm_restore(tenant: &Tenant, vm: &str, snapshot: &str, name: &str) -> Value {
    let mut labels = ownership_labels(tenant, name);
    labels.insert(VM_LABEL.into(), vm.into());
    json!({
        "apiVersion": SNAPSHOT_V1BETA1,
        "kind": "VirtualMachineRestore",
        "metadata": {"name": name, "namespace": tenant_namespace(tenant), "labels": labels},
        "spec": {
            "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm},
            "virtualMachineSnapshotName": snapshot,
            "targetReadinessPolicy": "FailImmediate",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_subnet_goes_on_the_pod_network_unless_taken() {
        let spec = VmSpec {
            name: "a".into(),
            interfaces: vec![
                NetworkInterface::on_subnet("eth0", "front"),
                NetworkInterface::on_subnet("eth1", "back"),
            ],
            ..VmSpec::default()
        };
        let w: Vec<Wiring> = wiring(&spec).into_iter().map(|(_, w)| w).collect();
        assert_eq!(
            w,
            [
                Wiring::PrimarySubnet {
                    subnet: "front".into()
                },
                Wiring::Secondary {
                    subnet: "back".into()
                }
            ]
        );
        let spec = VmSpec {
            interfaces: vec![
                NetworkInterface::on_subnet("eth0", "front"),
                NetworkInterface::pod_network("pod"),
            ],
            ..spec
        };
        assert!(matches!(wiring(&spec)[0].1, Wiring::Secondary { .. }));
    }

    #[test]
    fn stored_spec_holds_no_secret() {
        let spec = VmSpec {
            name: "a".into(),
            cloud_init: Some(kubecloud_core::CloudInit {
                user_data: Some("#cloud-config\npassword: hunter2".into()),
                network_data: None,
                ssh_keys: vec!["ssh-ed25519 AAAAsecret".into()],
            }),
            ..VmSpec::default()
        };
        let vm = virtual_machine(&Tenant::new("t").unwrap(), &spec, &Options::default()).unwrap();
        let text = vm.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("AAAAsecret"),
            "{text}"
        );
    }
}
