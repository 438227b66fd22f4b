//! virt-api's guest-agent subresources of instances (`pkg/virt-api/rest/subresource.go`):
//! `GET /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/guestosinfo`,
//! `.../userlist`, `.../filesystemlist`, answered from the simulated agent
//! ([`crate::controllers::kubevirt_guest`]): 200 with `VirtualMachineInstanceGuestAgentInfo`,
//! `VirtualMachineInstanceGuestOSUserList` or `VirtualMachineInstanceFileSystemList`; 404 for a
//! missing instance; 409 Conflict when it is not running or its agent is not connected (virt-api's
//! `VMI is not running` / `VMI does not have guest agent connected`).

use serde_json::Value;

use crate::cluster::Cluster;
use crate::controllers::kubevirt_guest as guest;
use crate::status::ApiError;

const VMI: (&str, &str) = ("kubevirt.io/v1", "VirtualMachineInstance");

/// The guest-agent subresources served.
const ACTIONS: &[&str] = &["guestosinfo", "userlist", "filesystemlist"];

/// Whether `(group, plural)` names the namespaced resource of these subresources.
pub(crate) fn is_namespaced(group: &str, plural: &str) -> bool {
    group == crate::kubevirt_subresources::GROUP && plural == "virtualmachineinstances"
}

/// Whether this module serves the request (`virtualmachineinstances/{name}/{action}`).
pub(crate) fn serves(group: &str, plural: &str, action: Option<&str>) -> bool {
    is_namespaced(group, plural) && action.is_some_and(|a| ACTIONS.contains(&a))
}

/// Serves `method` on `virtualmachineinstances/{name}/{action}` in `namespace`.
pub(crate) fn serve(
    cluster: &Cluster,
    method: &str,
    namespace: Option<&str>,
    name: Option<&str>,
    action: &str,
) -> Result<Value, ApiError> {
    let (Some(ns), Some(name)) = (namespace, name) else {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    };
    if method != "GET" {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported on {action}"),
        ));
    }
    let api = cluster.as_manager("virt-api");
    let vmi = api.get_opt(VMI.0, VMI.1, Some(ns), name)?.ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            format!("virtualmachineinstances.kubevirt.io \"{name}\" not found"),
        )
    })?;
    if let Some(why) = guest::refusal(&vmi) {
        return Err(ApiError::new(409, "Conflict", why));
    }
    Ok(match action {
        "guestosinfo" => guest::agent_info(&vmi),
        "userlist" => guest::user_list(&vmi),
        _ => guest::filesystem_list(&vmi),
    })
}
