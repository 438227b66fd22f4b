//! Golden translation tests: domain specs → the objects sent, in `tests/golden/*.json` for
//! review; every object validated against the upstream KubeVirt and CDI schemas (unknown fields
//! are errors). Regenerate with `UPDATE_GOLDEN=1 cargo test -p kubecloud-kubevirt --test translation`.

use std::path::PathBuf;

use kubecloud_core::{
    AccessMode, BootDisk, ByteSize, CloudInit, Guarantees, InterfaceAttachment, NetworkInterface,
    NetworkSelection, PodBinding, RunStrategy, Tenant, VmAttachments, VmResources, VmSpec,
    VolumeAttachment, VolumeMode,
};
use kubecloud_kubevirt::translate;
use kubecloud_kubevirt::{InstancetypeKind, Options, SshPropagation};
use kubecloud_testkit::schema::Catalog;
use serde_json::{Value, json};

fn tenant() -> Tenant {
    Tenant::new("acme").unwrap()
}

fn imported_with_cloud_init() -> VmSpec {
    VmSpec {
        name: "web-1".into(),
        resources: VmResources::Custom {
            cpu_cores: 2,
            memory: ByteSize::gib(4),
        },
        boot_disk: BootDisk::Import {
            url: "https://images.example.com/fedora.qcow2".into(),
            size: ByteSize::gib(10),
            tier: Some("replicated".into()),
            replicas: 2,
            access: AccessMode::ReadWriteMany,
            mode: VolumeMode::Block,
        },
        data_volumes: vec!["web-1-data".into()],
        interfaces: vec![
            NetworkInterface::on_subnet("eth0", "front")
                .with_fixed_ip("10.240.7.20".parse().unwrap())
                .with_mac("52:54:00:0c:0f:07".parse().unwrap()),
            NetworkInterface::on_subnet("eth1", "storage")
                .with_fixed_ip("10.250.0.5".parse().unwrap()),
        ],
        cloud_init: Some(CloudInit {
            user_data: Some("#cloud-config\npackages: [nginx]\n".into()),
            network_data: Some("version: 2\n".into()),
            ssh_keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIexample me@host".into()],
        }),
        labels: [("app".to_string(), "web".to_string())].into(),
        ..VmSpec::default()
    }
}

fn instancetype_container_disk() -> VmSpec {
    VmSpec {
        name: "batch".into(),
        resources: VmResources::InstanceType {
            name: "u1.medium".into(),
        },
        boot_disk: BootDisk::ContainerImage {
            image: "quay.io/containerdisks/fedora:40".into(),
        },
        interfaces: vec![NetworkInterface {
            attachment: kubecloud_core::Attachment::PodNetwork {
                binding: PodBinding::Bridge,
            },
            ..NetworkInterface::pod_network("eth0")
        }],
        run_strategy: RunStrategy::Manual,
        placement: kubecloud_core::Placement {
            node_selector: [("disk".to_string(), "ssd".to_string())].into(),
            preferred_nodes: vec!["node-2".into(), "node-3".into()],
            spread_group: Some("batch".into()),
        },
        ..VmSpec::default()
    }
}

/// What a network backend answers for the interfaces of [`imported_with_cloud_init`] (written
/// out as Kube-OVN answers, so the golden file shows a full attachment), what a storage backend
/// answers for its data volume, and plain pod-network attachments for other specs.
fn attachments(spec: &VmSpec) -> VmAttachments {
    let interfaces = spec
        .interfaces
        .iter()
        .map(|i| match i.subnet() {
            None => InterfaceAttachment::pod(i, PodBinding::Bridge),
            Some("front") => InterfaceAttachment {
                binding: PodBinding::Bridge,
                pod_annotations: [
                    ("ovn.kubernetes.io/logical_switch", "acme-front"),
                    ("ovn.kubernetes.io/ip_address", "10.240.7.20"),
                    ("ovn.kubernetes.io/mac_address", "52:54:00:0c:0f:07"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
                guarantees: Guarantees {
                    addresses_kept_on_migration: true,
                    security_groups: Vec::new(),
                },
                ..InterfaceAttachment::pod(i, PodBinding::Bridge)
            },
            Some(subnet) => InterfaceAttachment {
                network: NetworkSelection::Multus {
                    namespace: "acme".into(),
                    name: subnet.into(),
                },
                binding: PodBinding::Bridge,
                pod_annotations: [
                    (
                        "storage.acme.ovn.kubernetes.io/logical_switch",
                        "acme-storage",
                    ),
                    ("storage.acme.ovn.kubernetes.io/ip_address", "10.250.0.5"),
                ]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into(),
                guarantees: Guarantees {
                    addresses_kept_on_migration: true,
                    security_groups: Vec::new(),
                },
                ..InterfaceAttachment::pod(i, PodBinding::Bridge)
            },
        })
        .collect();
    let volumes = spec
        .data_volumes
        .iter()
        .map(|v| VolumeAttachment {
            volume: v.clone(),
            claim: v.clone(),
            access: AccessMode::ReadWriteMany,
        })
        .collect();
    VmAttachments {
        interfaces,
        volumes,
    }
}

fn render(spec: &VmSpec, opts: &Options) -> Value {
    let t = tenant();
    let vm = translate::virtual_machine(&t, spec, &attachments(spec), opts).unwrap();
    let owner = translate::vm_owner(&spec.name, "00000000-0000-0000-0000-000000000001");
    let secrets: Vec<Value> = translate::secrets(&t, spec, Some(owner))
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap();
            v["apiVersion"] = json!("v1");
            v["kind"] = json!("Secret");
            v
        })
        .collect();
    json!({"virtualMachine": vm, "secrets": secrets})
}

fn validate(api_version: &str, kind: &str, object: &Value) {
    let catalog = Catalog::upstream().expect("catalog");
    let rt = catalog
        .by_kind(api_version, kind)
        .unwrap_or_else(|| panic!("{api_version} {kind} in the catalog"));
    if let Err(errors) = rt.validate(object) {
        panic!("{kind} does not validate: {errors:#?}\n{object:#}");
    }
}

fn validate_all(rendered: &Value) {
    let vm = &rendered["virtualMachine"];
    validate("kubevirt.io/v1", "VirtualMachine", vm);
    for s in rendered["secrets"].as_array().unwrap() {
        validate("v1", "Secret", s);
    }
    // The objects KubeVirt makes from it validate too: the instance and the DataVolumes.
    let vmi = json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
        "metadata": {"name": vm["metadata"]["name"], "namespace": "acme"},
        "spec": vm["spec"]["template"]["spec"]});
    validate("kubevirt.io/v1", "VirtualMachineInstance", &vmi);
    for t in vm["spec"]["dataVolumeTemplates"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let mut metadata = t["metadata"].clone();
        metadata["namespace"] = json!("acme");
        let dv = json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": metadata, "spec": t["spec"]});
        validate("cdi.kubevirt.io/v1beta1", "DataVolume", &dv);
    }
}

fn golden(name: &str, actual: &Value) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() || !path.exists() {
        std::fs::write(&path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        text, expected,
        "{name}: translation differs from {path:?} (UPDATE_GOLDEN=1 to accept)"
    );
}

#[test]
fn imported_boot_disk_data_volume_cloud_init_and_fixed_ip() {
    let rendered = render(&imported_with_cloud_init(), &Options::default());
    validate_all(&rendered);
    golden("vm-imported-cloud-init-fixed-ip", &rendered);
}

#[test]
fn instance_type_container_disk_placement_and_pod_bridge() {
    let opts = Options {
        instancetype_kind: InstancetypeKind::Namespaced,
        ssh_propagation: SshPropagation::QemuGuestAgent {
            users: vec!["fedora".into()],
        },
        ..Options::default()
    };
    let rendered = render(&instancetype_container_disk(), &opts);
    validate_all(&rendered);
    golden("vm-instancetype-container-disk", &rendered);
}

#[test]
fn migration_objects_validate() {
    let any = translate::migration(&tenant(), "web-1", "web-1-migration-42", None);
    let named = translate::migration(&tenant(), "web-1", "web-1-migration-43", Some("node-2"));
    validate("kubevirt.io/v1", "VirtualMachineInstanceMigration", &any);
    validate("kubevirt.io/v1", "VirtualMachineInstanceMigration", &named);
    golden("migration-to-node", &named);
}

#[test]
fn the_default_vm_validates() {
    let rendered = render(
        &VmSpec {
            name: "plain".into(),
            ..VmSpec::default()
        },
        &Options::default(),
    );
    validate_all(&rendered);
    golden("vm-default", &rendered);
}

#[test]
fn vm_snapshot_and_restore_objects_validate() {
    let t = tenant();
    let volumes = vec!["web-1-boot".to_string(), "web-1-data".to_string()];
    let snapshot = translate::vm_snapshot(&t, "web-1", "before-upgrade", &volumes);
    let restore = translate::vm_restore(&t, "web-1", "before-upgrade", "before-upgrade-restore-42");
    validate(
        translate::SNAPSHOT_V1BETA1,
        "VirtualMachineSnapshot",
        &snapshot,
    );
    validate(
        translate::SNAPSHOT_V1BETA1,
        "VirtualMachineRestore",
        &restore,
    );
    golden(
        "vm-snapshot-and-restore",
        &json!({"snapshot": snapshot, "restore": restore}),
    );
}

/// What is sent is converted into the typed models first (`kubecloud_kube::convert`): every
/// object of every golden file must survive that conversion unchanged, or a field the model does
/// not know would be dropped silently on the way to the API server.
#[test]
fn every_golden_object_survives_the_typed_models_unchanged() {
    use kubecloud_models::cdi::DataVolume;
    use kubecloud_models::kubevirt::{
        VirtualMachine, VirtualMachineInstanceMigration, VirtualMachineRestore,
        VirtualMachineSnapshot,
    };

    fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(object: &Value) -> Value {
        let typed: T = serde_json::from_value(object.clone()).unwrap();
        serde_json::to_value(typed).unwrap()
    }

    fn check(object: &Value, seen: &mut Vec<String>) {
        match object {
            Value::Array(items) => items.iter().for_each(|i| check(i, seen)),
            Value::Object(map) => {
                // An object (not a reference to one, which has a `kind` too).
                let kind = map
                    .get("kind")
                    .filter(|_| map.contains_key("metadata"))
                    .and_then(Value::as_str);
                let back = match kind {
                    Some("VirtualMachine") => Some(round_trip::<VirtualMachine>(object)),
                    Some("VirtualMachineSnapshot") => {
                        Some(round_trip::<VirtualMachineSnapshot>(object))
                    }
                    Some("VirtualMachineRestore") => {
                        Some(round_trip::<VirtualMachineRestore>(object))
                    }
                    Some("VirtualMachineInstanceMigration") => {
                        Some(round_trip::<VirtualMachineInstanceMigration>(object))
                    }
                    Some("DataVolume") => Some(round_trip::<DataVolume>(object)),
                    _ => None,
                };
                match back {
                    Some(back) => {
                        assert_eq!(&back, object, "a field did not survive the model");
                        seen.push(map["kind"].as_str().unwrap_or_default().to_string());
                    }
                    None => map.values().for_each(|v| check(v, seen)),
                }
            }
            _ => {}
        }
    }

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        check(&serde_json::from_str(&text).unwrap(), &mut seen);
    }
    for kind in [
        "VirtualMachine",
        "VirtualMachineSnapshot",
        "VirtualMachineRestore",
        "VirtualMachineInstanceMigration",
    ] {
        assert!(seen.iter().any(|k| k == kind), "no golden {kind}: {seen:?}");
    }
}

#[test]
fn a_macvtap_interface_uses_the_binding_plugin_and_blocks_live_migration() {
    let t = tenant();
    let spec = VmSpec {
        name: "fast".into(),
        interfaces: vec![NetworkInterface::on_subnet("eth0", "lan")],
        ..VmSpec::default()
    };
    let attachments = VmAttachments {
        interfaces: vec![InterfaceAttachment {
            network: NetworkSelection::Multus {
                namespace: "acme".into(),
                name: "lan".into(),
            },
            ..InterfaceAttachment::pod(&spec.interfaces[0], PodBinding::Macvtap)
        }],
        volumes: Vec::new(),
    };
    let vm = translate::virtual_machine(&t, &spec, &attachments, &Options::default()).unwrap();
    let iface = &vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0];
    assert_eq!(iface["binding"], json!({"name": "macvtap"}));
    assert!(
        iface["bridge"].is_null() && iface["macvtap"].is_null(),
        "{iface}"
    );
    // Not meant to migrate: no LiveMigrate eviction strategy.
    assert!(vm["spec"]["template"]["spec"]["evictionStrategy"].is_null());
    validate_all(&json!({"virtualMachine": vm, "secrets": []}));
    let typed: kubecloud_models::kubevirt::VirtualMachine = serde_json::from_value(vm).unwrap();
    assert_eq!(translate::macvtap_interfaces(&typed), ["eth0"]);
    assert!(
        translate::unmigratable_interfaces(&typed)
            .unwrap()
            .is_empty()
    );
}
