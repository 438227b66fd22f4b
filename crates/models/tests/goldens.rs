//! The models decode every object kubecloud's backends send (their golden files and the GitOps
//! golden folder) and encode it back unchanged: no field the backends write is unknown to the
//! models, renamed, or dropped.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use kubecloud_models::{cdi, kubeovn, kubevirt, metallb, multus, piraeus, snapshot};

/// Decodes `object` as `T`, naming the field on failure, and encodes it back.
fn round_trip<T: DeserializeOwned + Serialize>(object: &Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(object.clone())
        .map_err(|e| format!("{} at {}", e.inner(), e.path()))?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// The model of `apiVersion`/`kind`, if there is one: the object round-tripped through it.
fn through_model(object: &Value) -> Option<Result<Value, String>> {
    let api_version = object["apiVersion"].as_str()?;
    let kind = object["kind"].as_str()?;
    Some(match (api_version, kind) {
        ("kubevirt.io/v1", "VirtualMachine") => round_trip::<kubevirt::VirtualMachine>(object),
        ("kubevirt.io/v1", "VirtualMachineInstance") => {
            round_trip::<kubevirt::VirtualMachineInstance>(object)
        }
        ("kubevirt.io/v1", "VirtualMachineInstanceMigration") => {
            round_trip::<kubevirt::VirtualMachineInstanceMigration>(object)
        }
        ("snapshot.kubevirt.io/v1beta1", "VirtualMachineSnapshot") => {
            round_trip::<kubevirt::VirtualMachineSnapshot>(object)
        }
        ("snapshot.kubevirt.io/v1beta1", "VirtualMachineRestore") => {
            round_trip::<kubevirt::VirtualMachineRestore>(object)
        }
        ("cdi.kubevirt.io/v1beta1", "DataVolume") => round_trip::<cdi::DataVolume>(object),
        ("kubeovn.io/v1", "Vpc") => round_trip::<kubeovn::Vpc>(object),
        ("kubeovn.io/v1", "Subnet") => round_trip::<kubeovn::Subnet>(object),
        ("kubeovn.io/v1", "IP") => round_trip::<kubeovn::Ip>(object),
        ("kubeovn.io/v1", "Vip") => round_trip::<kubeovn::Vip>(object),
        ("kubeovn.io/v1", "SecurityGroup") => round_trip::<kubeovn::SecurityGroup>(object),
        ("kubeovn.io/v1", "OvnEip") => round_trip::<kubeovn::OvnEip>(object),
        ("kubeovn.io/v1", "OvnFip") => round_trip::<kubeovn::OvnFip>(object),
        ("kubeovn.io/v1", "OvnSnatRule") => round_trip::<kubeovn::OvnSnatRule>(object),
        ("metallb.io/v1beta1", "IPAddressPool") => round_trip::<metallb::IpAddressPool>(object),
        ("metallb.io/v1beta1", "L2Advertisement") => round_trip::<metallb::L2Advertisement>(object),
        ("metallb.io/v1beta1", "BGPAdvertisement") => {
            round_trip::<metallb::BgpAdvertisement>(object)
        }
        ("metallb.io/v1beta2", "BGPPeer") => round_trip::<metallb::BgpPeer>(object),
        ("metallb.io/v1beta1", "BFDProfile") => round_trip::<metallb::BfdProfile>(object),
        ("metallb.io/v1beta1", "Community") => round_trip::<metallb::Community>(object),
        ("piraeus.io/v1", "LinstorCluster") => round_trip::<piraeus::LinstorCluster>(object),
        ("snapshot.storage.k8s.io/v1", "VolumeSnapshot") => {
            round_trip::<snapshot::VolumeSnapshot>(object)
        }
        ("snapshot.storage.k8s.io/v1", "VolumeSnapshotContent") => {
            round_trip::<snapshot::VolumeSnapshotContent>(object)
        }
        ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition") => {
            round_trip::<multus::NetworkAttachmentDefinition>(object)
        }
        _ => return None,
    })
}

/// Every object (a map with `apiVersion` and `kind`) anywhere in `value`.
fn objects_in<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Object(map) => {
            if map.contains_key("apiVersion") && map.contains_key("kind") {
                out.push(value);
            } else {
                map.values().for_each(|v| objects_in(v, out));
            }
        }
        Value::Array(items) => items.iter().for_each(|v| objects_in(v, out)),
        _ => {}
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("json" | "yaml")
        ) {
            out.push(path);
        }
    }
}

#[test]
fn every_golden_object_of_a_modelled_kind_round_trips_unchanged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut paths = Vec::new();
    for dir in [
        "crates/backend-kubevirt/tests/golden",
        "crates/backend-kubeovn/tests/golden",
        "crates/backend-linstor/tests/golden",
        "crates/backend-metallb/tests/golden",
        "tests/golden/gitops",
    ] {
        files(&root.join(dir), &mut paths);
    }
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    let mut failures = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap();
        let value: Value = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).unwrap()
        } else {
            match serde_saphyr::from_str(&text) {
                Ok(v) => v,
                Err(_) => continue, // not an object file (e.g. a list of resources)
            }
        };
        let mut objects = Vec::new();
        objects_in(&value, &mut objects);
        for object in objects {
            let Some(result) = through_model(object) else {
                continue;
            };
            *checked
                .entry(object["kind"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
            match result {
                Ok(back) if &back == object => {}
                Ok(back) => failures.push(format!(
                    "{}: {} changed on the way through its model:\n  sent: {object}\n  back: {back}",
                    path.display(),
                    object["kind"]
                )),
                Err(e) => failures.push(format!(
                    "{}: {} does not decode: {e}",
                    path.display(),
                    object["kind"]
                )),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The goldens cover the kinds the backends send most: a change that stopped this test from
    // seeing them would make it vacuous.
    for kind in [
        "VirtualMachine",
        "Vpc",
        "Subnet",
        "Vip",
        "SecurityGroup",
        "OvnFip",
        "IPAddressPool",
        "L2Advertisement",
        "BGPPeer",
        "VolumeSnapshot",
        "DataVolume",
        "NetworkAttachmentDefinition",
    ] {
        assert!(
            checked.get(kind).is_some_and(|n| *n > 0),
            "no golden {kind} was checked: {checked:?}"
        );
    }
}

#[test]
fn a_missing_required_field_is_a_decode_error_naming_it() {
    let object = serde_json::json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "p", "namespace": "metallb-system"},
        "spec": {"autoAssign": true},
    });
    let err = round_trip::<metallb::IpAddressPool>(&object).unwrap_err();
    assert!(err.contains("addresses") && err.contains("spec"), "{err}");
    let wrong = serde_json::json!({
        "apiVersion": "kubeovn.io/v1", "kind": "Vip", "metadata": {"name": "v"},
        "spec": {"subnet": 7},
    });
    let err = round_trip::<kubeovn::Vip>(&wrong).unwrap_err();
    assert!(err.contains("spec.subnet"), "{err}");
}
