//! The domain status of a VM, read from its `VirtualMachine`, `VirtualMachineInstance` and
//! import `DataVolume`. Pure.

use kubecloud_core::{Condition, InterfaceStatus, MacAddress, VmPhase, VmSpec, VmStatus};
use kubecloud_models::cdi::DataVolume;
use kubecloud_models::kubevirt::{VirtualMachine, VirtualMachineInstance};

use crate::translate::interfaces;
use kubecloud_kube::cdi::{self, ImportState};

/// What is known about a VM's objects at one moment.
#[derive(Clone, Debug, Default)]
pub struct Observed<'a> {
    /// The VirtualMachine.
    pub vm: Option<&'a VirtualMachine>,
    /// Its VirtualMachineInstance.
    pub vmi: Option<&'a VirtualMachineInstance>,
    /// Its boot-disk import DataVolume, when it imports one.
    pub import: Option<&'a DataVolume>,
}

/// `printableStatus` values KubeVirt uses for VMs that cannot run until someone acts.
const ERROR_STATUSES: &[&str] = &[
    "ErrorUnschedulable",
    "ErrImagePull",
    "ImagePullBackOff",
    "ErrorPvcNotFound",
    "ErrorDataVolumeNotFound",
    "DataVolumeError",
    "CrashLoopBackOff",
];

fn cond(type_: &str, status: bool, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message: message.into(),
    }
}

/// The domain status of `spec`'s VM from what was observed.
pub fn vm_status(spec: &VmSpec, seen: &Observed<'_>) -> VmStatus {
    let vm_status = seen.vm.and_then(|vm| vm.status.as_ref());
    let vmi = seen.vmi.filter(|v| v.metadata.deletion_timestamp.is_none());
    let vmi_status = vmi.and_then(|v| v.status.as_ref());
    let printable = vm_status
        .and_then(|s| s.printable_status.as_deref())
        .unwrap_or("");
    let mut conditions = Vec::new();

    // Conditions KubeVirt reports on the VM, as they are.
    for c in vm_status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        conditions.push(cond(
            &c.r#type,
            c.status == "True",
            c.reason.as_deref().unwrap_or(""),
            c.message.as_deref().unwrap_or(""),
        ));
    }

    // The import.
    let mut import_failed = None;
    let mut importing = false;
    if let Some(dv) = seen.import {
        match cdi::import_state_of(dv) {
            ImportState::Succeeded => {}
            ImportState::Failed(message) => {
                conditions.push(cond("ImportFailed", true, "DataVolumeFailed", &message));
                import_failed = Some(message);
            }
            ImportState::Pending => {
                importing = true;
                conditions.push(cond("Importing", true, "Pending", "boot disk import N/A"));
            }
            ImportState::Importing { phase, progress } => {
                importing = true;
                let progress = progress.map_or("N/A".to_string(), |p| format!("{p}%"));
                conditions.push(cond(
                    "Importing",
                    true,
                    &phase,
                    &format!("boot disk import {progress}"),
                ));
            }
        }
    } else if seen
        .vm
        .and_then(|vm| vm.spec.data_volume_templates.as_ref())
        .is_some_and(|t| !t.is_empty())
    {
        importing = true;
    }

    // A migration.
    let migration = vmi_status.and_then(|s| s.migration_state.as_ref());
    let migrating = migration.is_some_and(|m| {
        m.completed != Some(true) && m.failed != Some(true) && m.abort_status.is_none()
    });
    if let Some(m) = migration.filter(|m| m.failed == Some(true)) {
        let reason = m
            .failure_reason
            .as_deref()
            .unwrap_or("the migration failed")
            .to_string();
        conditions.push(cond("MigrationFailed", true, "MigrationFailed", &reason));
    }

    let vmi_phase = vmi_status.and_then(|s| s.phase.as_deref()).unwrap_or("");
    if vmi_phase == "Failed" {
        let reason = vmi_status
            .and_then(|s| s.reason.as_deref())
            .unwrap_or("the VM instance failed");
        conditions.push(cond(
            "InstanceFailed",
            true,
            "VirtualMachineInstanceFailed",
            reason,
        ));
    }
    let unschedulable = vmi_status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| {
            c.r#type == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
    if let Some(c) = unschedulable {
        conditions.push(cond(
            "Unschedulable",
            true,
            "Unschedulable",
            c.message.as_deref().unwrap_or("no node can run the VM"),
        ));
    }

    let phase = if import_failed.is_some() {
        VmPhase::Failed
    } else if ERROR_STATUSES.contains(&printable) {
        if !conditions.iter().any(|c| c.status && c.type_ != "Ready") {
            conditions.push(cond(printable, true, printable, "reported by KubeVirt"));
        }
        VmPhase::Failed
    } else if unschedulable.is_some() || vmi_phase == "Failed" {
        VmPhase::Failed
    } else if migrating && vmi_phase == "Running" {
        VmPhase::Migrating
    } else if matches!(printable, "Stopping" | "Terminating") {
        VmPhase::Stopping
    } else if vmi_phase == "Running" {
        VmPhase::Running
    } else if importing || matches!(printable, "Provisioning" | "WaitingForVolumeBinding") {
        VmPhase::Provisioning
    } else if vmi.is_some() && vmi_phase != "Succeeded" {
        VmPhase::Starting
    } else {
        let strategy = seen
            .vm
            .and_then(|vm| vm.spec.run_strategy.as_deref())
            .unwrap_or("Always");
        let wants_running = matches!(strategy, "Always" | "RerunOnFailure")
            || (strategy == "Manual" && printable == "Starting");
        if wants_running && seen.vm.is_some() {
            VmPhase::Starting
        } else {
            VmPhase::Stopped
        }
    };
    if let Some(ready) = vm_status.and_then(|s| s.ready)
        && !conditions.iter().any(|c| c.type_ == "Ready")
    {
        conditions.push(cond("Ready", ready, "", ""));
    }

    let running = matches!(
        phase,
        VmPhase::Running | VmPhase::Migrating | VmPhase::Stopping
    );
    let node = vmi_status
        .filter(|_| running)
        .and_then(|s| s.node_name.clone());
    let reported = vmi_status
        .and_then(|s| s.interfaces.as_deref())
        .unwrap_or_default();
    let iface_status = interfaces(spec)
        .iter()
        .map(|iface| {
            let found = reported
                .iter()
                .find(|r| r.name.as_deref() == Some(iface.name.as_str()))
                .filter(|_| running);
            InterfaceStatus {
                name: iface.name.clone(),
                ip: found
                    .and_then(|r| r.ip_address.as_deref())
                    .and_then(|s| s.parse().ok()),
                mac: found
                    .and_then(|r| r.mac.as_deref())
                    .and_then(|s| s.parse::<MacAddress>().ok())
                    .or(iface.mac),
            }
        })
        .collect();
    let live = matches!(phase, VmPhase::Running | VmPhase::Migrating);
    let attached_volumes = vmi
        .filter(|_| live)
        .map_or_else(Vec::new, |vmi| crate::hotplug::attached_volumes(spec, vmi));
    let restart_required = match (seen.vm, vmi.filter(|_| live)) {
        (Some(vm), Some(vmi)) => crate::hotplug::restart_required(spec, vm, vmi),
        _ => Vec::new(),
    };
    let guest = crate::guest::from_instance(vmi_status.filter(|_| running));
    if guest.is_some() {
        conditions.push(cond("AgentConnected", true, "", ""));
    }
    VmStatus {
        phase,
        node,
        interfaces: iface_status,
        conditions,
        attached_volumes,
        restart_required,
        guest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A model of VM `a` from its JSON.
    fn typed<T: serde::de::DeserializeOwned>(mut v: serde_json::Value) -> T {
        v["metadata"] = json!({"name": "a"});
        serde_json::from_value(v).unwrap()
    }

    fn spec() -> VmSpec {
        VmSpec {
            name: "a".into(),
            ..VmSpec::default()
        }
    }

    #[test]
    fn a_failed_import_fails_the_vm_with_the_reason() {
        let vm: VirtualMachine = typed(json!({"spec": {"runStrategy": "Always", "template": {}}}));
        let dv: DataVolume = typed(
            json!({"spec": {}, "status": {"phase": "Failed", "conditions": [
            {"type": "Running", "status": "False", "message": "404 from images.example.invalid"}]}}),
        );
        let s = vm_status(
            &spec(),
            &Observed {
                vm: Some(&vm),
                vmi: None,
                import: Some(&dv),
            },
        );
        assert_eq!(s.phase, VmPhase::Failed);
        let c = s.condition("ImportFailed").unwrap();
        assert!(c.message.contains("404"));
    }

    #[test]
    fn running_vmi_gives_node_and_addresses() {
        let vm: VirtualMachine = typed(json!({"spec": {"runStrategy": "Always", "template": {}},
            "status": {"printableStatus": "Running", "ready": true}}));
        let vmi: VirtualMachineInstance = typed(json!({"spec": {"domain": {"devices": {}}},
            "status": {"phase": "Running", "nodeName": "node-2",
            "interfaces": [{"name": "default", "ipAddress": "10.0.0.5", "mac": "52:54:00:00:00:01"}]}}));
        let s = vm_status(
            &spec(),
            &Observed {
                vm: Some(&vm),
                vmi: Some(&vmi),
                import: None,
            },
        );
        assert_eq!(s.phase, VmPhase::Running);
        assert_eq!(s.node.as_deref(), Some("node-2"));
        assert_eq!(s.interfaces[0].ip, Some("10.0.0.5".parse().unwrap()));
        assert!(s.condition("Ready").unwrap().status);
    }

    #[test]
    fn halted_without_instance_is_stopped() {
        let vm: VirtualMachine = typed(json!({"spec": {"runStrategy": "Halted", "template": {}},
            "status": {"printableStatus": "Stopped"}}));
        let s = vm_status(
            &spec(),
            &Observed {
                vm: Some(&vm),
                ..Observed::default()
            },
        );
        assert_eq!((s.phase, s.node), (VmPhase::Stopped, None));
    }
}
