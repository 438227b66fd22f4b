//! KubeVirt's aggregated subresource API (`subresources.kubevirt.io/v1`), as virt-api serves it:
//! `PUT /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachines/{name}/start|stop|restart`.
//!
//! What each call does, as virt-api does it:
//! - `start`: `Halted` → run strategy `Always`; `Manual` (or `RerunOnFailure` without an instance)
//!   → a `Start` state-change request on the VM status for virt-controller; 409 when the VM
//!   already runs under `Always`.
//! - `stop`: `Always`/`RerunOnFailure` → run strategy `Halted`; `Manual` → a `Stop` request
//!   (with the instance's UID); 409 when nothing runs.
//! - `restart`: 409 when nothing runs; else the instance is deleted (virt-controller creates a
//!   new one; for `Manual` a `Start` request is queued too).
//!
//! Answers 202 with an empty body on success; 404 `virtualmachines.kubevirt.io "x" not found`.

use serde_json::json;

use crate::cluster::Cluster;
use crate::status::ApiError;

/// The API group this module serves.
pub(crate) const GROUP: &str = "subresources.kubevirt.io";

const VM: (&str, &str) = ("kubevirt.io/v1", "VirtualMachine");
const VMI: (&str, &str) = ("kubevirt.io/v1", "VirtualMachineInstance");

/// Whether `(group, plural)` names a namespaced resource of this API (for URL parsing).
pub(crate) fn is_namespaced(group: &str, plural: &str) -> bool {
    group == GROUP && (plural == "virtualmachines" || plural == "virtualmachineinstances")
}

/// Serves one request: `method` on `virtualmachines/{name}/{action}` in `namespace`.
pub(crate) fn serve(
    cluster: &Cluster,
    method: &str,
    namespace: Option<&str>,
    plural: &str,
    name: Option<&str>,
    action: Option<&str>,
) -> Result<(), ApiError> {
    let (Some(ns), "virtualmachines", Some(name), Some(action)) = (namespace, plural, name, action)
    else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if method != "PUT" {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {action}"),
        ));
    }
    let api = cluster.as_manager("virt-api");
    let vm = api.get_opt(VM.0, VM.1, Some(ns), name)?.ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("virtualmachines.kubevirt.io \"{name}\" not found"),
        )
    })?;
    let strategy = vm["spec"]["runStrategy"]
        .as_str()
        .unwrap_or("Halted")
        .to_string();
    let vmi = api
        .get_opt(VMI.0, VMI.1, Some(ns), name)?
        .filter(|v| v["metadata"]["deletionTimestamp"].is_null());
    let runs = vmi
        .as_ref()
        .is_some_and(|v| v["status"]["phase"] != "Succeeded" && v["status"]["phase"] != "Failed");
    let conflict = |message: &str| ApiError::new(409, "Conflict", message.to_string());
    let set_strategy = |s: &str| {
        api.merge_patch(
            VM.0,
            VM.1,
            Some(ns),
            name,
            &json!({"spec": {"runStrategy": s}}),
        )
        .map(|_| ())
    };
    let request = |requests: serde_json::Value| {
        api.merge_patch_status(
            VM.0,
            VM.1,
            Some(ns),
            name,
            &json!({"status": {"stateChangeRequests": requests}}),
        )
        .map(|_| ())
    };
    match action {
        "start" => match strategy.as_str() {
            "Halted" => set_strategy("Always"),
            "Always" if runs => Err(conflict("Always does not support manual start requests")),
            "Always" => Ok(()),
            _ if runs => Err(conflict("VM is already running")),
            _ => request(json!([{"action": "Start"}])),
        },
        "stop" => match strategy.as_str() {
            "Always" | "RerunOnFailure" => set_strategy("Halted"),
            _ if !runs => Err(conflict("VM is not running")),
            _ => {
                let uid = vmi.as_ref().and_then(|v| v["metadata"]["uid"].as_str());
                request(json!([{"action": "Stop", "uid": uid}]))
            }
        },
        "restart" => {
            if !runs {
                return Err(conflict("VM is not running"));
            }
            match api.delete(VMI.0, VMI.1, Some(ns), name) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
            if strategy == "Manual" {
                request(json!([{"action": "Start"}]))?;
            }
            Ok(())
        }
        other => Err(ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({other})"),
        )),
    }
}
