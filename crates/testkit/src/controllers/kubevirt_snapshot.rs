//! A stand-in for KubeVirt's snapshot controller (part of virt-controller).
//!
//! - **VirtualMachineSnapshot** (snapshot.kubevirt.io/v1beta1), one step per reconcile: of an
//!   existing VirtualMachine, a `VirtualMachineSnapshotContent` `vmsnapshot-content-<uid>`
//!   (owned by the snapshot) records the VM's metadata (labels, annotations) and spec, and the
//!   snapshot goes `InProgress` (with `sourceUID`, `virtualMachineSnapshotContentName`, the
//!   `Online` indication when the VM has an instance, and `snapshotVolumes.includedVolumes`: the
//!   template's volumes on claims or DataVolumes) → `Succeeded` with `readyToUse: true` and a
//!   `Ready` condition. Of a missing VM it is `Failed` with `error.message`.
//! - **VirtualMachineRestore**: waits for its snapshot to be ready; then, if the target VM has a
//!   live instance, fails at once (as with `targetReadinessPolicy: FailImmediate`): a `Failure`
//!   condition and `complete: false`. Otherwise it puts the snapshot's labels, annotations and
//!   spec back into the VM, with `runStrategy: Halted` (KubeVirt leaves a restored VM stopped),
//!   and sets `complete: true` with a `Ready` condition. A restore of a missing VM or from a
//!   failed or missing snapshot fails the same way. Volume data is not modelled.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::ObjectEvent;
use crate::store::EventType;

const VM: (&str, &str) = ("kubevirt.io/v1", "VirtualMachine");
const VMI: (&str, &str) = ("kubevirt.io/v1", "VirtualMachineInstance");
const SNAPSHOT: (&str, &str) = ("snapshot.kubevirt.io/v1beta1", "VirtualMachineSnapshot");
const CONTENT: (&str, &str) = (
    "snapshot.kubevirt.io/v1beta1",
    "VirtualMachineSnapshotContent",
);
const RESTORE: (&str, &str) = ("snapshot.kubevirt.io/v1beta1", "VirtualMachineRestore");

/// Simulated KubeVirt snapshot controller: VM snapshots and restores. Not registered by default.
///
/// ```
/// use kubecloud_testkit::{KubeVirtController, KubeVirtSnapshotController, TestServer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::builder()
///     .controller(KubeVirtController::new())
///     .controller(KubeVirtSnapshotController)
///     .start()
///     .await?;
/// # drop(server); Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct KubeVirtSnapshotController;

fn meta<'a>(o: &'a Value, field: &str) -> &'a str {
    o["metadata"][field].as_str().unwrap_or_default()
}

fn condition(type_: &str, status: bool, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": if status {"True"} else {"False"},
           "reason": reason, "message": message})
}

/// The template volumes that live on claims or DataVolumes (what KubeVirt snapshots).
fn included_volumes(vm: &Value) -> Vec<Value> {
    vm["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["persistentVolumeClaim"].is_object() || v["dataVolume"].is_object())
        .map(|v| v["name"].clone())
        .collect()
}

impl KubeVirtSnapshotController {
    async fn reconcile_snapshot(api: &ControllerApi, snap: &Value) -> Result<(), ControllerError> {
        if snap["metadata"]["deletionTimestamp"].is_string() {
            return Ok(());
        }
        let ns = meta(snap, "namespace");
        let name = meta(snap, "name");
        let patch = async |status: Value| -> Result<(), ControllerError> {
            api.merge_patch_status(
                SNAPSHOT.0,
                SNAPSHOT.1,
                Some(ns),
                name,
                &json!({ "status": status }),
            )
            .await?;
            Ok(())
        };
        match snap["status"]["phase"].as_str() {
            Some("Succeeded" | "Failed") => Ok(()),
            Some("InProgress") => {
                patch(json!({
                    "phase": "Succeeded",
                    "readyToUse": true,
                    "conditions": [
                        condition("Progressing", false, "Operation complete", "Operation complete"),
                        condition("Ready", true, "Operation complete", "Operation complete"),
                    ],
                }))
                .await
            }
            _ => {
                let source = snap["spec"]["source"]["name"].as_str().unwrap_or_default();
                let Some(vm) = api.get_opt(VM.0, VM.1, Some(ns), source).await? else {
                    let message = format!("VirtualMachine {source:?} does not exist");
                    return patch(json!({
                        "phase": "Failed",
                        "readyToUse": false,
                        "error": {"message": message},
                        "conditions": [
                            condition("Progressing", false, "Source not found", &message),
                            condition("Ready", false, "Source not found", &message),
                            condition("Failure", true, "Source not found", &message),
                        ],
                    }))
                    .await;
                };
                let content = format!("vmsnapshot-content-{}", meta(snap, "uid"));
                if api
                    .get_opt(CONTENT.0, CONTENT.1, Some(ns), &content)
                    .await?
                    .is_none()
                {
                    api.create(json!({
                        "apiVersion": CONTENT.0, "kind": CONTENT.1,
                        "metadata": {
                            "name": content, "namespace": ns,
                            "ownerReferences": [{
                                "apiVersion": SNAPSHOT.0, "kind": SNAPSHOT.1, "name": name,
                                "uid": meta(snap, "uid"), "controller": true,
                                "blockOwnerDeletion": true,
                            }],
                        },
                        "spec": {
                            "source": {"virtualMachine": {
                                "metadata": {
                                    "name": source, "namespace": ns,
                                    "labels": vm["metadata"]["labels"],
                                    "annotations": vm["metadata"]["annotations"],
                                },
                                "spec": vm["spec"],
                            }},
                            "virtualMachineSnapshotName": name,
                        },
                    }))
                    .await?;
                }
                let online = api.get_opt(VMI.0, VMI.1, Some(ns), source).await?.is_some();
                let indications = if online { json!(["Online"]) } else { json!([]) };
                patch(json!({
                    "phase": "InProgress",
                    "readyToUse": false,
                    "sourceUID": meta(&vm, "uid"),
                    "virtualMachineSnapshotContentName": content,
                    "indications": indications,
                    "snapshotVolumes": {"includedVolumes": included_volumes(&vm)},
                    "conditions": [
                        condition("Progressing", true, "Operation in progress", "Operation in progress"),
                        condition("Ready", false, "Operation in progress", "Operation in progress"),
                    ],
                })).await
            }
        }
    }

    async fn reconcile_restore(
        api: &ControllerApi,
        restore: &Value,
    ) -> Result<(), ControllerError> {
        if restore["metadata"]["deletionTimestamp"].is_string()
            || restore["status"]["complete"] == true
            || restore["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Failure" && c["status"] == "True")
        {
            return Ok(());
        }
        let ns = meta(restore, "namespace");
        let name = meta(restore, "name");
        let fail = async |reason: &str, message: String| -> Result<(), ControllerError> {
            api.merge_patch_status(
                RESTORE.0,
                RESTORE.1,
                Some(ns),
                name,
                &json!({"status": {"complete": false, "conditions": [
                    condition("Progressing", false, reason, &message),
                    condition("Ready", false, reason, &message),
                    condition("Failure", true, reason, &message),
                ]}}),
            )
            .await?;
            Ok(())
        };
        let snapshot_name = restore["spec"]["virtualMachineSnapshotName"]
            .as_str()
            .unwrap_or_default();
        let Some(snapshot) = api
            .get_opt(SNAPSHOT.0, SNAPSHOT.1, Some(ns), snapshot_name)
            .await?
        else {
            return fail(
                "SnapshotNotFound",
                format!("VirtualMachineSnapshot {snapshot_name:?} does not exist"),
            )
            .await;
        };
        match snapshot["status"]["phase"].as_str() {
            Some("Failed") => {
                return fail(
                    "SnapshotFailed",
                    format!("VirtualMachineSnapshot {snapshot_name:?} failed"),
                )
                .await;
            }
            _ if snapshot["status"]["readyToUse"] != true => return Ok(()),
            _ => {}
        }
        let target = restore["spec"]["target"]["name"]
            .as_str()
            .unwrap_or_default();
        let Some(mut vm) = api.get_opt(VM.0, VM.1, Some(ns), target).await? else {
            return fail(
                "TargetNotFound",
                format!("VirtualMachine {target:?} does not exist"),
            )
            .await;
        };
        let running = api
            .get_opt(VMI.0, VMI.1, Some(ns), target)
            .await?
            .is_some_and(|vmi| vmi["metadata"]["deletionTimestamp"].is_null());
        if running {
            return fail(
                "TargetNotReady",
                format!("VirtualMachine {target:?} is running; it must be stopped to restore"),
            )
            .await;
        }
        let content_name = snapshot["status"]["virtualMachineSnapshotContentName"]
            .as_str()
            .unwrap_or_default();
        let Some(content) = api
            .get_opt(CONTENT.0, CONTENT.1, Some(ns), content_name)
            .await?
        else {
            return fail(
                "ContentNotFound",
                format!("VirtualMachineSnapshotContent {content_name:?} does not exist"),
            )
            .await;
        };
        let source = &content["spec"]["source"]["virtualMachine"];
        let mut spec = source["spec"].clone();
        if spec["runStrategy"].is_string() || spec["running"].is_null() {
            spec["runStrategy"] = json!("Halted");
        } else {
            spec["running"] = json!(false);
        }
        vm["spec"] = spec;
        vm["metadata"]["labels"] = source["metadata"]["labels"].clone();
        vm["metadata"]["annotations"] = source["metadata"]["annotations"].clone();
        api.replace(vm).await?;
        api.merge_patch_status(
            RESTORE.0,
            RESTORE.1,
            Some(ns),
            name,
            &json!({"status": {"complete": true, "conditions": [
                condition("Progressing", false, "Operation complete", "Operation complete"),
                condition("Ready", true, "Operation complete", "Operation complete"),
            ]}}),
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Controller for KubeVirtSnapshotController {
    fn name(&self) -> &str {
        "virt-controller-snapshot"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("snapshot.kubevirt.io", "virtualmachinesnapshots"),
            Watched::new("snapshot.kubevirt.io", "virtualmachinerestores"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        if ev.kind == EventType::Deleted {
            return Ok(());
        }
        let ns = ev.namespace.as_deref();
        match ev.resource.as_str() {
            "virtualmachinesnapshots" => {
                if let Some(snap) = api.get_opt(SNAPSHOT.0, SNAPSHOT.1, ns, &ev.name).await? {
                    Self::reconcile_snapshot(api, &snap).await?;
                }
                // Restores waiting for this snapshot go on.
                for restore in api.list(RESTORE.0, RESTORE.1, ns).await? {
                    if restore["spec"]["virtualMachineSnapshotName"] == ev.name.as_str() {
                        Self::reconcile_restore(api, &restore).await?;
                    }
                }
                Ok(())
            }
            "virtualmachinerestores" => {
                match api.get_opt(RESTORE.0, RESTORE.1, ns, &ev.name).await? {
                    Some(restore) => Self::reconcile_restore(api, &restore).await,
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}
