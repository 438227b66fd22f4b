//! virt-controller's live updates of a running VM, part of the simulated KubeVirt
//! ([`super::kubevirt::KubeVirtController`] calls in here).
//!
//! Modelled on KubeVirt v1.9 with `vmRolloutStrategy: LiveUpdate` and the
//! `DeclarativeHotplugVolumes` feature gate (both defaults):
//!
//! - **Starting** (`pkg/virt-controller/watch/vm/vm.go`, `setupVMIFromVM`, and
//!   `pkg/liveupdate/memory`): the instance gets `domain.cpu.maxSockets` = 4 × `sockets` and
//!   `domain.memory.maxGuest` = 4 × `guest` (the default `maxHotplugRatio`) where the VM does not
//!   set them; starting drops the VM's `RestartRequired` condition (`cleanupRestartRequired`).
//! - **Hot-plug volumes** (`pkg/storage/hotplug/hotplug.go`, `HandleDeclarativeVolumes`):
//!   `hotpluggable` volumes (a `persistentVolumeClaim` or `dataVolume` with
//!   `hotpluggable: true`) the template has and the running instance lacks are added to the
//!   instance's `spec.volumes` and `spec.domain.devices.disks`; those it has and the template
//!   lost are removed.
//! - **Hot-plug volume status** (`pkg/virt-controller/watch/vmi/vmi.go`,
//!   `handleHotplugVolumes`/`updateVolumeStatus`, and virt-handler's
//!   `pkg/virt-handler/hotplug-disk/mount.go`), one step per reconcile: an attachment pod
//!   `hp-volume-…` on the instance's node (owned by the launcher pod, labelled
//!   `kubevirt.io: hotplug-disk`) mounts the claim; the volume's `status.volumeStatus` entry goes
//!   `Pending` → `Bound` (its claim is bound) → `AttachedToNode` → `MountedToPod` → `Ready` (with
//!   a `target`); a removed volume goes `Detaching`, then its entry and attachment pod go.
//!   Hot-pluggable volumes are not in the launcher pod (they are in their attachment pods).
//! - **CPU and memory** (`vm.go`, `handleCPUChangeRequest`, `handleMemoryHotplugRequest`):
//!   more `sockets` up to the instance's `maxSockets`, more `guest` memory up to its `maxGuest`,
//!   reach the running instance (KubeVirt does it through a live migration; the double updates the
//!   instance's spec in place: its UID, node and addresses stay, as after such a migration).
//!   Fewer, or beyond the maximum, set `RestartRequired` (the double does not model vCPU or
//!   memory unplug: stricter).
//! - **Restart required** (`vm.go`, `addRestartRequiredIfNeeded`/`setRestartRequired`): any other
//!   difference between the VM's template spec and the running instance's spec (once the
//!   live-updatable fields above are set aside) sets the VM's `RestartRequired` condition
//!   (`status: "True"`, reason `RestartRequired`, message "a non-live-updatable field was changed
//!   in the template spec"). It stays until the instance is recreated.
//! - Interface hot-plug (`pkg/network/vmliveupdate`) is not modelled: a new interface in the
//!   template of a running VM sets `RestartRequired` (stricter than KubeVirt, which plugs a
//!   bridge-bound secondary interface through a migration).

use serde_json::{Value, json};

use super::{ControllerApi, ControllerError};

const VM: (&str, &str) = ("kubevirt.io/v1", "VirtualMachine");
const VMI: (&str, &str) = ("kubevirt.io/v1", "VirtualMachineInstance");
/// KubeVirt's default `maxHotplugRatio`.
const MAX_HOTPLUG_RATIO: u64 = 4;
/// The VM condition of template changes waiting for a restart.
pub const RESTART_REQUIRED: &str = "RestartRequired";

fn meta<'a>(o: &'a Value, field: &str) -> &'a str {
    o["metadata"][field].as_str().unwrap_or_default()
}

/// Whether a volume of a VM or instance spec is hot-pluggable.
pub fn hotpluggable(volume: &Value) -> bool {
    volume["persistentVolumeClaim"]["hotpluggable"] == true
        || volume["dataVolume"]["hotpluggable"] == true
}

fn quantity(q: &Value) -> Option<u64> {
    crate::builtin::quantity(q).map(|f| f as u64)
}

/// A memory quantity in the form KubeVirt writes (`<n>Mi` when whole mebibytes, else bytes).
fn bytes(n: u64) -> Value {
    if n.is_multiple_of(1 << 20) {
        json!(format!("{}Mi", n >> 20))
    } else {
        json!(n)
    }
}

/// The instance spec virt-controller makes from a VM's template spec: the template's, with
/// `maxSockets` and `maxGuest` where the template has sockets and guest memory but no maximum.
pub fn instance_spec(template_spec: &Value) -> Value {
    let mut spec = template_spec.clone();
    if let Some(sockets) = spec["domain"]["cpu"]["sockets"].as_u64()
        && spec["domain"]["cpu"]["maxSockets"].is_null()
    {
        spec["domain"]["cpu"]["maxSockets"] = json!(sockets * MAX_HOTPLUG_RATIO);
    }
    if let Some(guest) = quantity(&spec["domain"]["memory"]["guest"])
        && spec["domain"]["memory"]["maxGuest"].is_null()
    {
        spec["domain"]["memory"]["maxGuest"] = bytes(guest * MAX_HOTPLUG_RATIO);
    }
    spec
}

/// The VM's conditions without `RestartRequired` (a new instance starts with the template).
pub fn without_restart_required(vm: &Value) -> Vec<Value> {
    vm["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] != RESTART_REQUIRED)
        .cloned()
        .collect()
}

/// A spec with what updates live set aside: hot-pluggable volumes and their disks, sockets,
/// guest memory and their maxima.
fn fixed_part(spec: &Value) -> Value {
    let mut spec = spec.clone();
    let hot: Vec<Value> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| hotpluggable(v))
        .map(|v| v["name"].clone())
        .collect();
    if let Some(volumes) = spec["volumes"].as_array_mut() {
        volumes.retain(|v| !hotpluggable(v));
    }
    if let Some(disks) = spec["domain"]["devices"]["disks"].as_array_mut() {
        disks.retain(|d| !hot.contains(&d["name"]));
    }
    if let Some(cpu) = spec["domain"]["cpu"].as_object_mut() {
        cpu.remove("sockets");
        cpu.remove("maxSockets");
    }
    if let Some(memory) = spec["domain"]["memory"].as_object_mut() {
        memory.remove("guest");
        memory.remove("maxGuest");
    }
    spec
}

/// Brings the running instance `vmi` of `vm` in line with the VM's template where it can be
/// live, and sets the VM's `RestartRequired` condition where it cannot.
pub async fn sync_running(
    api: &ControllerApi,
    vm: &Value,
    vmi: &Value,
) -> Result<(), ControllerError> {
    let ns = meta(vm, "namespace");
    let template = &vm["spec"]["template"]["spec"];
    let running = &vmi["spec"];
    let mut restart = fixed_part(template) != fixed_part(running);
    let mut patch = serde_json::Map::new();

    // Hot-plug volumes, declaratively.
    let template_volumes = template["volumes"].as_array().cloned().unwrap_or_default();
    let running_volumes = running["volumes"].as_array().cloned().unwrap_or_default();
    let has = |list: &[Value], name: &Value| list.iter().any(|v| v["name"] == *name);
    let added: Vec<Value> = template_volumes
        .iter()
        .filter(|v| hotpluggable(v) && !has(&running_volumes, &v["name"]))
        .cloned()
        .collect();
    let removed: Vec<Value> = running_volumes
        .iter()
        .filter(|v| hotpluggable(v) && !has(&template_volumes, &v["name"]))
        .map(|v| v["name"].clone())
        .collect();
    if !added.is_empty() || !removed.is_empty() {
        let mut volumes: Vec<Value> = running_volumes
            .iter()
            .filter(|v| !removed.contains(&v["name"]))
            .cloned()
            .collect();
        volumes.extend(added.iter().cloned());
        let template_disks = template["domain"]["devices"]["disks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut disks: Vec<Value> = running["domain"]["devices"]["disks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|d| !removed.contains(&d["name"]))
            .collect();
        for v in &added {
            if let Some(d) = template_disks.iter().find(|d| d["name"] == v["name"]) {
                disks.push(d.clone());
            }
        }
        patch.insert("volumes".into(), json!(volumes));
        patch.insert("domain".into(), json!({"devices": {"disks": disks}}));
    }

    // CPU sockets and guest memory, up to the instance's maxima.
    let cpu = &running["domain"]["cpu"];
    if let (Some(want), Some(have)) = (
        template["domain"]["cpu"]["sockets"].as_u64(),
        cpu["sockets"].as_u64(),
    ) && want != have
    {
        if want > have && cpu["maxSockets"].as_u64().is_some_and(|m| want <= m) {
            let domain = patch.entry("domain").or_insert_with(|| json!({}));
            domain["cpu"] = json!({"sockets": want});
        } else {
            restart = true;
        }
    }
    let memory = &running["domain"]["memory"];
    if let (Some(want), Some(have)) = (
        quantity(&template["domain"]["memory"]["guest"]),
        quantity(&memory["guest"]),
    ) && want != have
    {
        if want > have && quantity(&memory["maxGuest"]).is_some_and(|m| want <= m) {
            let domain = patch.entry("domain").or_insert_with(|| json!({}));
            domain["memory"] = json!({"guest": template["domain"]["memory"]["guest"]});
        } else {
            restart = true;
        }
    }

    if !patch.is_empty() {
        api.merge_patch(
            VMI.0,
            VMI.1,
            Some(ns),
            meta(vmi, "name"),
            &json!({"spec": Value::Object(patch)}),
        )
        .await?;
        tracing::debug!(vm = meta(vm, "name"), "live update of the running instance");
    }
    let flagged = vm["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == RESTART_REQUIRED);
    if restart && !flagged {
        let mut conditions = without_restart_required(vm);
        conditions.push(json!({
            "type": RESTART_REQUIRED, "status": "True", "reason": RESTART_REQUIRED,
            "message": "a non-live-updatable field was changed in the template spec",
            "lastTransitionTime": crate::meta::now(),
        }));
        api.merge_patch_status(
            VM.0,
            VM.1,
            Some(ns),
            meta(vm, "name"),
            &json!({"status": {"conditions": conditions}}),
        )
        .await?;
    }
    Ok(())
}

/// The next step of the running instance's hot-plugged volumes (see the module docs), given its
/// launcher pod `launcher`. Returns whether it patched something.
pub async fn advance_volumes(
    api: &ControllerApi,
    vmi: &Value,
    launcher: &Value,
) -> Result<bool, ControllerError> {
    let ns = meta(vmi, "namespace");
    let node = vmi["status"]["nodeName"].as_str().unwrap_or_default();
    let volumes = vmi["spec"]["volumes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let statuses = vmi["status"]["volumeStatus"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<Value> = Vec::new();
    let mut changed = false;
    // Volumes that went: `Detaching`, then gone with their attachment pod.
    for s in &statuses {
        let name = &s["name"];
        let present = volumes.iter().any(|v| v["name"] == *name);
        if present || s["hotplugVolume"].is_null() {
            out.push(s.clone());
            continue;
        }
        changed = true;
        if s["phase"] == "Detaching" {
            if let Some(pod) = s["hotplugVolume"]["attachPodName"].as_str() {
                match api.delete("v1", "Pod", Some(ns), pod).await {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        } else {
            let mut s = s.clone();
            s["phase"] = json!("Detaching");
            s["reason"] = json!("VolumeDetaching");
            s["message"] = json!(format!("Detaching hotplugged volume {name}"));
            out.push(s);
        }
    }
    // Volumes that came: one phase per step.
    let mut ready = statuses
        .iter()
        .filter(|s| s["phase"] == "Ready" && !s["hotplugVolume"].is_null())
        .count();
    for v in volumes.iter().filter(|v| hotpluggable(v)) {
        let name = v["name"].as_str().unwrap_or_default();
        let claim = v["persistentVolumeClaim"]["claimName"]
            .as_str()
            .or(v["dataVolume"]["name"].as_str())
            .unwrap_or_default();
        let idx = out.iter().position(|s| s["name"] == name);
        let phase = idx
            .and_then(|i| out[i]["phase"].as_str())
            .unwrap_or("")
            .to_string();
        let next = match phase.as_str() {
            "" => {
                let pod = attachment_pod(vmi, launcher, node, name, claim);
                let pod_name = meta(&pod, "name").to_string();
                let uid = match api.get_opt("v1", "Pod", Some(ns), &pod_name).await? {
                    Some(p) => meta(&p, "uid").to_string(),
                    None => meta(&api.create(pod).await?, "uid").to_string(),
                };
                Some(json!({
                    "name": name, "target": "", "phase": "Pending", "reason": "PVCNotReady",
                    "message": format!("Volume {name} is pending"),
                    "hotplugVolume": {"attachPodName": pod_name, "attachPodUID": uid},
                }))
            }
            "Pending" => {
                let bound = api
                    .get_opt("v1", "PersistentVolumeClaim", Some(ns), claim)
                    .await?
                    .is_some_and(|c| c["status"]["phase"] == "Bound");
                bound
                    .then_some(("Bound", "PVCBound", "PVC is bound"))
                    .map(|(p, r, m)| step(&out[idx.unwrap_or_default()], p, r, m))
            }
            "Bound" => Some(step(
                &out[idx.unwrap_or_default()],
                "AttachedToNode",
                "SuccessfulCreate",
                &format!("Created hotplug attachment pod on node {node}"),
            )),
            "AttachedToNode" => Some(step(
                &out[idx.unwrap_or_default()],
                "MountedToPod",
                "VolumeMountedToPod",
                &format!("Volume {name} has been mounted in virt-launcher pod"),
            )),
            "MountedToPod" => {
                let mut s = step(
                    &out[idx.unwrap_or_default()],
                    "Ready",
                    "VolumeReady",
                    &format!("Successfully attach hotplugged volume {name} to VM"),
                );
                // virtio hot-plugged disks come after the boot-time ones.
                s["target"] = json!(format!("vd{}", (b'b' + (ready % 24) as u8) as char));
                ready += 1;
                Some(s)
            }
            _ => None,
        };
        if let Some(next) = next {
            changed = true;
            match idx {
                Some(i) => out[i] = next,
                None => out.push(next),
            }
        }
    }
    if changed {
        api.merge_patch(
            VMI.0,
            VMI.1,
            Some(ns),
            meta(vmi, "name"),
            &json!({"status": {"volumeStatus": out}}),
        )
        .await?;
    }
    Ok(changed)
}

fn step(current: &Value, phase: &str, reason: &str, message: &str) -> Value {
    let mut s = current.clone();
    s["phase"] = json!(phase);
    s["reason"] = json!(reason);
    s["message"] = json!(message);
    s
}

/// The attachment pod of hot-plugged volume `volume` (claim `claim`) of `vmi`, on `node`,
/// owned by the launcher pod.
fn attachment_pod(vmi: &Value, launcher: &Value, node: &str, volume: &str, claim: &str) -> Value {
    let ns = meta(vmi, "namespace");
    let h = format!("{}/{volume}", meta(vmi, "uid"))
        .bytes()
        .fold(0x811c_9dc5u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("hp-volume-{:05x}", h & 0xfffff),
            "namespace": ns,
            "labels": {"kubevirt.io": "hotplug-disk", "kubevirt.io/created-by": meta(vmi, "uid")},
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Pod", "name": meta(launcher, "name"),
                "uid": meta(launcher, "uid"), "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "nodeName": node,
            "containers": [{"name": "hotplug-disk", "image": "quay.io/kubevirt/virt-launcher:v1.9.0"}],
            "volumes": [{"name": volume, "persistentVolumeClaim": {"claimName": claim}}],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_gets_its_maxima_and_live_fields_are_set_aside() {
        let template = json!({"domain": {"cpu": {"sockets": 2, "cores": 1}, "memory": {"guest": "1Gi"},
            "devices": {"disks": [{"name": "boot"}, {"name": "data-a"}]}},
            "volumes": [{"name": "boot", "containerDisk": {"image": "x"}},
                        {"name": "data-a", "persistentVolumeClaim": {"claimName": "a", "hotpluggable": true}}]});
        let spec = instance_spec(&template);
        assert_eq!(spec["domain"]["cpu"]["maxSockets"], 8);
        assert_eq!(spec["domain"]["memory"]["maxGuest"], "4096Mi");
        let mut grown = spec.clone();
        grown["domain"]["cpu"]["sockets"] = json!(4);
        grown["volumes"].as_array_mut().unwrap().pop();
        grown["domain"]["devices"]["disks"]
            .as_array_mut()
            .unwrap()
            .pop();
        assert_eq!(fixed_part(&grown), fixed_part(&template));
        grown["volumes"][0]["containerDisk"]["image"] = json!("y");
        assert_ne!(fixed_part(&grown), fixed_part(&template));
    }
}
