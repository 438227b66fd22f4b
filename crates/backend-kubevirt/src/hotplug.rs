//! What a running VM has of its spec: the data volumes KubeVirt hot-plugged and reports ready,
//! and the fields that wait for a restart. Pure, read from the VM and its instance.
//!
//! Hot-plug is declarative (KubeVirt's `DeclarativeHotplugVolumes`, on by default since it
//! replaced the `HotplugVolumes` gate and its `addvolume`/`removevolume` subresources): every
//! data volume is a `hotpluggable` volume of the VM's template (see [`crate::translate`]), and
//! virt-controller adds to the running instance what the template gains and removes what it
//! loses (`pkg/storage/hotplug`, called from `pkg/virt-controller/watch/vm/vm.go`). One
//! server-side apply of the VM does it: no second way to change a VM's disks, no subresource
//! permissions, and the spec stays the one source of truth. The instance reports each hot-plugged
//! volume in `status.volumeStatus` (`Pending` → `AttachedToNode` → `MountedToPod` → `Ready`).
//!
//! CPU sockets and guest memory grow live under the `LiveUpdate` rollout strategy up to the
//! instance's `maxSockets` and `maxGuest`; any other change of the template sets the VM's
//! `RestartRequired` condition. The fields named then are the domain's
//! ([`kubecloud_core::hotplug::live_changes`] between the spec the instance booted with, from
//! its [`BOOTED_SPEC_ANNOTATION`], plus what it has now, and the VM's spec).

use kubecloud_core::hotplug::{LiveLimits, live_changes};
use kubecloud_core::{ByteSize, VmResources, VmSpec};
use kubecloud_models::kubevirt::{VirtualMachine, VirtualMachineInstance};

use crate::translate::{BOOTED_SPEC_ANNOTATION, data_disk};

/// KubeVirt's VM condition for template changes that wait for a restart.
pub const RESTART_REQUIRED: &str = "RestartRequired";

/// The `volumeStatus` phase of a hot-plugged volume the guest has.
const READY: &str = "Ready";

fn quantity(q: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString) -> Option<ByteSize> {
    match q {
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i) => {
            u64::try_from(*i).ok().map(ByteSize)
        }
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) => s.parse().ok(),
    }
}

/// The data volumes the running instance `vmi` has attached, in spec order (then those
/// detaching): a hot-pluggable volume of `spec` once its `volumeStatus` is `Ready`, another
/// once the instance mounts it, and a volume the instance still reports `Detaching` (the spec
/// no longer has it) until it is gone.
pub fn attached_volumes(spec: &VmSpec, vmi: &VirtualMachineInstance) -> Vec<String> {
    let mut out = ready_volumes(spec, vmi);
    let detaching = vmi
        .status
        .as_ref()
        .and_then(|s| s.volume_status.as_deref())
        .unwrap_or_default()
        .iter()
        .filter(|s| s.phase.as_deref() == Some("Detaching"))
        // The disk is `data-<volume>` (a name too long for that ends in a hash: not listed).
        .filter_map(|s| s.name.strip_prefix("data-").map(String::from));
    for volume in detaching {
        if !out.contains(&volume) {
            out.push(volume);
        }
    }
    out
}

fn ready_volumes(spec: &VmSpec, vmi: &VirtualMachineInstance) -> Vec<String> {
    let volumes = vmi.spec.volumes.as_deref().unwrap_or_default();
    let statuses = vmi
        .status
        .as_ref()
        .and_then(|s| s.volume_status.as_deref())
        .unwrap_or_default();
    spec.data_volumes
        .iter()
        .filter(|v| {
            let disk = data_disk(v);
            let Some(volume) = volumes.iter().find(|x| x.name == disk) else {
                return false;
            };
            let hotpluggable = volume
                .persistent_volume_claim
                .as_ref()
                .and_then(|c| c.hotpluggable)
                .or_else(|| volume.data_volume.as_ref().and_then(|d| d.hotpluggable))
                .unwrap_or(false);
            !hotpluggable
                || statuses
                    .iter()
                    .any(|s| s.name == disk && s.phase.as_deref() == Some(READY))
        })
        .cloned()
        .collect()
}

/// The fields of `spec` the running instance `vmi` of `vm` gets only on restart: none unless
/// KubeVirt set the VM's `RestartRequired` condition; then those [`live_changes`] names between
/// what the instance has and `spec`, or `spec` itself when it cannot tell.
pub fn restart_required(
    spec: &VmSpec,
    vm: &VirtualMachine,
    vmi: &VirtualMachineInstance,
) -> Vec<String> {
    let required = vm
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.r#type == RESTART_REQUIRED && c.status == "True");
    if !required {
        return Vec::new();
    }
    let booted: Option<VmSpec> = vmi
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(BOOTED_SPEC_ANNOTATION))
        .and_then(|text| serde_json::from_str(text).ok());
    let Some(mut running) = booted else {
        return vec!["spec".into()];
    };
    // What the instance has now: its data volumes, sockets and guest memory.
    let mounted: Vec<&str> = vmi
        .spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    let mut volumes: Vec<String> = running
        .data_volumes
        .iter()
        .chain(&spec.data_volumes)
        .filter(|v| mounted.contains(&data_disk(v).as_str()))
        .cloned()
        .collect();
    volumes.dedup();
    running.data_volumes = volumes;
    let limits = LiveLimits::of(&running.resources);
    let domain = &vmi.spec.domain;
    if let VmResources::Custom { cpu_cores, memory } = &mut running.resources {
        if let Some(sockets) = domain.cpu.as_ref().and_then(|c| c.sockets) {
            *cpu_cores = u32::try_from(sockets).unwrap_or(*cpu_cores);
        }
        if let Some(guest) = domain
            .memory
            .as_ref()
            .and_then(|m| m.guest.as_ref())
            .and_then(quantity)
        {
            *memory = guest;
        }
    }
    let limits = limits.map(|l| LiveLimits {
        max_cpu_cores: domain
            .cpu
            .as_ref()
            .and_then(|c| c.max_sockets)
            .and_then(|m| u32::try_from(m).ok())
            .unwrap_or(l.max_cpu_cores),
        max_memory: domain
            .memory
            .as_ref()
            .and_then(|m| m.max_guest.as_ref())
            .and_then(quantity)
            .unwrap_or(l.max_memory),
    });
    let fields = live_changes(
        &running,
        spec,
        &crate::capabilities::capabilities(),
        limits.as_ref(),
    )
    .restart_required;
    if fields.is_empty() {
        vec!["spec".into()]
    } else {
        fields
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(cpu_cores: u32, data: &[&str]) -> VmSpec {
        VmSpec {
            name: "a".into(),
            resources: VmResources::Custom {
                cpu_cores,
                memory: ByteSize::gib(1),
            },
            data_volumes: data.iter().map(|d| d.to_string()).collect(),
            ..VmSpec::default()
        }
    }

    fn vmi(booted: &VmSpec, volume_status: serde_json::Value) -> VirtualMachineInstance {
        serde_json::from_value(json!({
            "metadata": {"name": "a", "annotations": {
                BOOTED_SPEC_ANNOTATION: serde_json::to_string(booted).unwrap()}},
            "spec": {"domain": {"devices": {}, "cpu": {"sockets": 1, "maxSockets": 4},
                                "memory": {"guest": "1Gi", "maxGuest": "4Gi"}},
                     "volumes": [{"name": "data-x", "persistentVolumeClaim":
                                  {"claimName": "x", "hotpluggable": true}}]},
            "status": {"phase": "Running", "volumeStatus": volume_status},
        }))
        .unwrap()
    }

    #[test]
    fn a_hotplugged_volume_counts_once_ready_and_until_detached() {
        let booted = spec(1, &[]);
        let attaching = vmi(
            &booted,
            json!([{"name": "data-x", "target": "", "phase": "MountedToPod"}]),
        );
        assert!(attached_volumes(&spec(1, &["x"]), &attaching).is_empty());
        let ready = vmi(
            &booted,
            json!([{"name": "data-x", "target": "vdb", "phase": "Ready"}]),
        );
        assert_eq!(attached_volumes(&spec(1, &["x"]), &ready), vec!["x"]);
        let detaching = vmi(
            &booted,
            json!([{"name": "data-y", "target": "vdc", "phase": "Detaching"}]),
        );
        assert_eq!(attached_volumes(&spec(1, &[]), &detaching), vec!["y"]);
    }

    #[test]
    fn restart_required_names_fields_only_under_kubevirt_s_condition() {
        let running = vmi(&spec(1, &[]), json!([]));
        let vm = |status: &str| -> VirtualMachine {
            serde_json::from_value(json!({"metadata": {"name": "a"}, "spec": {"template": {}},
                "status": {"conditions": [{"type": RESTART_REQUIRED, "status": status}]}}))
            .unwrap()
        };
        assert!(restart_required(&spec(8, &["x"]), &vm("False"), &running).is_empty());
        assert_eq!(
            restart_required(&spec(8, &["x"]), &vm("True"), &running),
            vec!["resources.cpuCores"]
        );
        // Within maxSockets nothing is named: the condition has another cause.
        assert_eq!(
            restart_required(&spec(2, &["x"]), &vm("True"), &running),
            vec!["spec"]
        );
    }
}
