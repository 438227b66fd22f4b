//! Domain spec → KubeVirt and CDI objects. Pure: no I/O, golden-tested
//! (`tests/golden/*.json`).
//!
//! See the crate docs for the mapping of interfaces, disks and cloud-init.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kubecloud_core::{
    AccessMode, BootDisk, Error, InterfaceAttachment, NetworkInterface, NetworkSelection,
    PodBinding, Result, RunStrategy, Tenant, VmAttachments, VmResources, VmSpec,
};
use kubecloud_kube::{cdi, names, ownership_labels, tenant_namespace};
use kubecloud_models::kubevirt::{VirtualMachine, VirtualMachineInstance};
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

/// The API version of KubeVirt's core kinds.
pub const KUBEVIRT_V1: &str = "kubevirt.io/v1";
/// The API version of CDI's DataVolume.
pub const CDI_V1BETA1: &str = cdi::API_VERSION;

/// The interfaces of a spec, with the implicit pod-network one when it lists none.
pub fn interfaces(spec: &VmSpec) -> Vec<NetworkInterface> {
    if spec.interfaces.is_empty() {
        vec![NetworkInterface::pod_network(DEFAULT_INTERFACE)]
    } else {
        spec.interfaces.clone()
    }
}

/// The interfaces of a VM as attached: the network backend's answers, or, for a spec listing no
/// interface, one interface [`DEFAULT_INTERFACE`] on the pod network with masquerade binding.
pub fn attached_interfaces(spec: &VmSpec, attachments: &VmAttachments) -> Vec<InterfaceAttachment> {
    if spec.interfaces.is_empty() {
        vec![InterfaceAttachment::pod(
            &NetworkInterface::pod_network(DEFAULT_INTERFACE),
            PodBinding::Masquerade,
        )]
    } else {
        attachments.interfaces.clone()
    }
}

/// The name of the disk and volume of the boot disk.
pub const BOOT_DISK: &str = "boot";
/// The name of the cloud-init disk and volume.
pub const CLOUD_INIT_DISK: &str = "cloudinit";

/// The disk/volume name of data volume `volume`: `data-<volume>`, kept while the volume stays
/// attached whatever else is attached or detached (a disk named by position would change its
/// volume when one before it goes, which KubeVirt can only do with a restart). Names longer than
/// a DNS-1123 label end in a hash of the volume's name.
///
/// ```
/// assert_eq!(kubecloud_kubevirt::translate::data_disk("logs"), "data-logs");
/// assert!(kubecloud_kubevirt::translate::data_disk(&"x".repeat(63)).len() <= 63);
/// ```
pub fn data_disk(volume: &str) -> String {
    let name = format!("data-{volume}");
    if name.len() <= 63 {
        return name;
    }
    let hash = volume.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("data-{}-{hash:08x}", volume[..48].trim_end_matches('-'))
}

/// The annotation on a VM's template (so on its running instance, which virt-controller makes
/// from the template) holding the spec the instance booted with (secret material masked, as in
/// [`SPEC_ANNOTATION`]): what the status compares the VM's spec with to say which fields wait
/// for a restart.
pub const BOOTED_SPEC_ANNOTATION: &str = "kubecloud.io/booted-spec";

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

/// Whether the VM is meant to live-migrate: every volume it creates is RWX and every interface
/// can migrate ([`InterfaceAttachment::migratable`]). Sets `evictionStrategy: LiveMigrate`.
pub fn meant_to_migrate(spec: &VmSpec, interfaces: &[InterfaceAttachment]) -> bool {
    let import_shared = match &spec.boot_disk {
        BootDisk::Import { access, .. } | BootDisk::Catalog { access, .. } => {
            *access == AccessMode::ReadWriteMany
        }
        _ => true,
    };
    import_shared && interfaces.iter().all(InterfaceAttachment::migratable)
}

/// The claim of volume `volume`, as storage attached it.
fn claim_of(attachments: &VmAttachments, volume: &str) -> Result<String> {
    attachments
        .volume(volume)
        .map(|a| a.claim.clone())
        .ok_or_else(|| {
            kubecloud_core::Error::invalid(
                "attachments.volumes",
                format!("volume {volume:?} has no attachment"),
            )
        })
}

/// The volumes a VM object's template mounts, as `(volume name, claim)`: a
/// `persistentVolumeClaim`'s claim, or a `dataVolume`'s (CDI names the claim after the
/// DataVolume).
pub fn template_volumes(vm: &VirtualMachine) -> Vec<(&str, Option<&str>)> {
    vm.spec
        .template
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .map(|v| {
            let claim = v
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str())
                .or_else(|| v.data_volume.as_ref().map(|d| d.name.as_str()));
            (v.name.as_str(), claim)
        })
        .collect()
}

/// The volumes a running instance mounts, as [`template_volumes`] reads a VM's.
pub fn instance_volumes(vmi: &VirtualMachineInstance) -> Vec<(&str, Option<&str>)> {
    vmi.spec
        .volumes
        .iter()
        .flatten()
        .map(|v| {
            let claim = v
                .persistent_volume_claim
                .as_ref()
                .map(|c| c.claim_name.as_str())
                .or_else(|| v.data_volume.as_ref().map(|d| d.name.as_str()));
            (v.name.as_str(), claim)
        })
        .collect()
}

/// The claims of `mounted` volumes (from [`template_volumes`] or [`instance_volumes`]), as
/// `(tenant volume, claim)` in [`VmSpec::volumes`] order.
pub fn claims(spec: &VmSpec, mounted: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (disk, claim) in mounted {
        let volume = if *disk == BOOT_DISK {
            match &spec.boot_disk {
                BootDisk::Volume { volume } => Some(volume.clone()),
                BootDisk::Import { .. } | BootDisk::Catalog { .. } => {
                    Some(BootDisk::import_volume_name(&spec.name))
                }
                BootDisk::ContainerImage { .. } => None,
            }
        } else {
            spec.data_volumes
                .iter()
                .find(|v| data_disk(v) == *disk)
                .cloned()
        };
        if let (Some(volume), Some(claim)) = (volume, claim) {
            out.push((volume, claim.to_string()));
        }
    }
    out
}

/// The interfaces of a VM object's template that KubeVirt will not live-migrate: bridge-bound
/// on the pod network without its `allow-pod-bridge-network-live-migration` annotation. The
/// template's `metadata` is schemaless in KubeVirt's CRD; what is not object metadata is an
/// error naming the field.
pub fn unmigratable_interfaces(vm: &VirtualMachine) -> Result<Vec<String>> {
    let template = &vm.spec.template;
    let meta: ObjectMeta = match &template.metadata {
        Some(m) => {
            serde_json::from_value(serde_json::Value::Object(m.clone().into_iter().collect()))
                .map_err(|e| {
                    Error::backend(
                        crate::BACKEND,
                        format!(
                            "VirtualMachine {:?}: spec.template.metadata is not object metadata",
                            vm.metadata.name.as_deref().unwrap_or_default()
                        ),
                        false,
                        e,
                    )
                })?
        }
        None => ObjectMeta::default(),
    };
    let allowed = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ALLOW_POD_BRIDGE_MIGRATION))
        .is_some_and(|v| v == "true");
    let Some(spec) = template.spec.as_ref().filter(|_| !allowed) else {
        return Ok(Vec::new());
    };
    let networks = spec.networks.as_deref().unwrap_or_default();
    Ok(spec
        .domain
        .devices
        .interfaces
        .iter()
        .flatten()
        .filter(|i| i.bridge.is_some())
        .filter(|i| networks.iter().any(|n| n.name == i.name && n.pod.is_some()))
        .map(|i| i.name.clone())
        .collect())
}

/// The CDI DataVolume template cloning catalog image `image` into the boot disk: `sourceRef` to
/// the image's DataSource in the catalog namespace, the size if given (else CDI takes the
/// source's), access and volume mode as asked, the tier as StorageClass.
fn catalog_template(tenant: &Tenant, spec: &VmSpec, opts: &Options) -> Option<Value> {
    let BootDisk::Catalog {
        image,
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
        "accessModes": [match access {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadWriteMany => "ReadWriteMany",
        }],
        "volumeMode": match mode {
            kubecloud_core::VolumeMode::Block => "Block",
            kubecloud_core::VolumeMode::Filesystem => "Filesystem",
        },
    });
    if let Some(size) = size {
        storage["resources"] = json!({"requests": {"storage": size.to_string()}});
    }
    if let Some(class) = tier.as_deref().or(opts.storage_class.as_deref()) {
        storage["storageClassName"] = json!(class);
    }
    Some(json!({
        "metadata": {"name": volume, "labels": labels},
        "spec": {
            "sourceRef": {"kind": "DataSource", "name": image, "namespace": opts.catalog_namespace},
            "storage": storage,
        },
    }))
}

/// The CDI DataVolume template importing the boot disk, if the spec imports one, or cloning it
/// from the catalog.
pub fn import_template(tenant: &Tenant, spec: &VmSpec, opts: &Options) -> Option<Value> {
    if let Some(t) = catalog_template(tenant, spec, opts) {
        return Some(t);
    }
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
    let spec = cdi::data_volume_spec(&cdi::HttpImport {
        url,
        size: size.to_string(),
        access: *access,
        mode: *mode,
        storage_class: tier.as_deref().or(opts.storage_class.as_deref()),
    });
    Some(json!({"metadata": {"name": volume, "labels": labels}, "spec": spec}))
}

/// The `VirtualMachine` for `spec` in the tenant's namespace, attached as `attachments` say
/// (claims of volumes, networks, bindings and pod annotations of interfaces). Cloud-init and SSH
/// keys are referenced by Secret name ([`names::cloud_init_secret`], [`names::ssh_secret`]),
/// never inline.
pub fn virtual_machine(
    tenant: &Tenant,
    spec: &VmSpec,
    attachments: &VmAttachments,
    opts: &Options,
) -> Result<Value> {
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
            json!({"name": BOOT_DISK, "persistentVolumeClaim": {"claimName": claim_of(attachments, volume)?}})
        }
        BootDisk::ContainerImage { image } => {
            json!({"name": BOOT_DISK, "containerDisk": {"image": image}})
        }
        BootDisk::Import { .. } | BootDisk::Catalog { .. } => {
            json!({"name": BOOT_DISK, "dataVolume": {"name": BootDisk::import_volume_name(&spec.name)}})
        }
    };
    disks.push(json!({"name": BOOT_DISK, "bootOrder": 1, "disk": {"bus": "virtio"}}));
    volumes.push(boot_volume);
    // Data volumes are hot-pluggable (KubeVirt's declarative hot-plug: adding one to or
    // removing one from a running VM's template attaches or detaches it live).
    for volume in &spec.data_volumes {
        disks.push(json!({"name": data_disk(volume), "disk": {"bus": "virtio"}}));
        volumes.push(json!({"name": data_disk(volume), "persistentVolumeClaim": {
            "claimName": claim_of(attachments, volume)?, "hotpluggable": true,
        }}));
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

    // Interfaces and networks, as the network backend attached them.
    let interfaces = attached_interfaces(spec, attachments);
    let mut template_annotations = Map::new();
    let mut kv_interfaces = Vec::new();
    let mut networks = Vec::new();
    for a in &interfaces {
        let mut kv = json!({"name": a.interface});
        match binding_key(a.binding) {
            Some(key) => kv[key] = json!({}),
            // KubeVirt's network binding plugin (registered in the KubeVirt CR under
            // `spec.configuration.network.binding.macvtap`); the core `macvtap: {}` binding
            // was removed in v1.3.
            None => kv["binding"] = json!({"name": MACVTAP_BINDING}),
        }
        if let Some(mac) = a.mac {
            kv["macAddress"] = json!(mac.to_string());
        }
        kv_interfaces.push(kv);
        networks.push(match &a.network {
            NetworkSelection::PodNetwork => json!({"name": a.interface, "pod": {}}),
            NetworkSelection::Multus { namespace, name } => json!({
                "name": a.interface,
                "multus": {"networkName": format!("{namespace}/{name}")},
            }),
        });
        for (k, v) in a.pod_annotations.iter().chain(&a.live_pod_annotations) {
            template_annotations.insert(k.clone(), json!(v));
        }
        if a.network == NetworkSelection::PodNetwork
            && a.binding == PodBinding::Bridge
            && a.guarantees.addresses_kept_on_migration
        {
            template_annotations.insert(ALLOW_POD_BRIDGE_MIGRATION.into(), json!("true"));
        }
    }

    let mut domain = json!({"devices": {"disks": disks, "interfaces": kv_interfaces}});
    let mut vm_spec = json!({"runStrategy": run_strategy(spec.run_strategy)});
    match &spec.resources {
        VmResources::Custom { cpu_cores, memory } => {
            // Sockets, not cores: KubeVirt adds CPUs live by sockets (up to the running
            // instance's `maxSockets`).
            domain["cpu"] = json!({"sockets": cpu_cores, "cores": 1, "threads": 1});
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
    if meant_to_migrate(spec, &interfaces) {
        template_spec["evictionStrategy"] = json!("LiveMigrate");
    }
    if !spec.placement.node_selector.is_empty() {
        template_spec["nodeSelector"] = json!(spec.placement.node_selector);
    }
    if let Some(affinity) = affinity(tenant, spec) {
        template_spec["affinity"] = affinity;
    }
    // The networks' live pod labels (what their policies select the VM's pods by) join the
    // VM's; they are kept in step on a running VM like the live annotations.
    let mut template_labels = json!(labels);
    for a in &interfaces {
        for (k, v) in &a.live_pod_labels {
            template_labels[k] = json!(v);
        }
    }
    template_annotations.insert(BOOTED_SPEC_ANNOTATION.into(), json!(stored.clone()));
    let mut template_meta = json!({"labels": template_labels});
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

/// The core binding's key in a KubeVirt interface; `None` for a binding plugin.
fn binding_key(b: PodBinding) -> Option<&'static str> {
    match b {
        PodBinding::Masquerade => Some("masquerade"),
        PodBinding::Bridge => Some("bridge"),
        PodBinding::Macvtap => None,
    }
}

/// The name of KubeVirt's macvtap network binding plugin.
pub const MACVTAP_BINDING: &str = "macvtap";

/// The interfaces of a stored VM with the macvtap binding plugin (KubeVirt cannot live-migrate
/// them).
pub fn macvtap_interfaces(vm: &VirtualMachine) -> Vec<String> {
    vm.spec
        .template
        .spec
        .as_ref()
        .map(|s| {
            s.domain
                .devices
                .interfaces
                .iter()
                .flatten()
                .filter(|i| {
                    i.binding
                        .as_ref()
                        .is_some_and(|b| b.name == MACVTAP_BINDING)
                })
                .map(|i| i.name.clone())
                .collect()
        })
        .unwrap_or_default()
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
        let attachments = VmAttachments::default();
        let vm = virtual_machine(
            &Tenant::new("t").unwrap(),
            &spec,
            &attachments,
            &Options::default(),
        )
        .unwrap();
        let text = vm.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("AAAAsecret"),
            "{text}"
        );
    }
}
