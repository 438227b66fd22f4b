//! The guest agent (qemu-guest-agent) of simulated VMs, as KubeVirt's virt-handler reports it.
//!
//! Upstream, virt-handler polls the agent through libvirt (`pkg/virt-launcher/virtwrap/agent-poller`)
//! and writes what it learns into the instance's status (`pkg/virt-handler/vm.go`): the
//! `AgentConnected` condition, `status.guestOSInfo`, and per interface the addresses the agent
//! reports, `infoSource` naming where they came from (`domain`, `guest-agent`, `multus-status`,
//! `pkg/network/vmispec/infosource.go`). virt-api answers the guest-agent subresources
//! (`guestosinfo`, `userlist`, `filesystemlist`, `pkg/virt-api/rest/subresource.go`) from the
//! agent, with 409 Conflict when the instance is not running or has no agent connected.
//!
//! Whether a guest image runs the agent cannot be seen from the API; the double takes it from a
//! label the TEST sets on the VM (and so on its instance): [`GUEST_AGENT_LABEL`], valued with
//! the OS id the agent reports (`fedora`, `ubuntu`, `centos`; any other value reports a generic
//! Linux). Without it, the guest has no agent: no `AgentConnected`, no `guestOSInfo`, and
//! `infoSource` is `domain` (plus `multus-status`).

use serde_json::{Value, json};

/// The label a test sets on a VM whose guest image runs qemu-guest-agent (the value: the OS id
/// the agent reports). Not something kubecloud knows about.
pub const GUEST_AGENT_LABEL: &str = "guest-agent.testkit.example/os";

/// The OS id of the agent of `vmi`'s guest, if it has one.
pub(crate) fn agent_os(vmi: &Value) -> Option<&str> {
    vmi["metadata"]["labels"][GUEST_AGENT_LABEL].as_str()
}

/// `status.guestOSInfo` as virt-handler writes it from the agent's `guest-get-osinfo`.
pub(crate) fn os_info(os: &str) -> Value {
    let (name, version, pretty, kernel) = match os {
        "fedora" => (
            "Fedora Linux",
            "40",
            "Fedora Linux 40 (Cloud Edition)",
            "6.8.5-301.fc40.x86_64",
        ),
        "ubuntu" => ("Ubuntu", "24.04", "Ubuntu 24.04 LTS", "6.8.0-31-generic"),
        "centos" => (
            "CentOS Stream",
            "9",
            "CentOS Stream 9",
            "5.14.0-427.el9.x86_64",
        ),
        _ => ("Linux", "", "Linux", "6.1.0"),
    };
    json!({
        "id": os, "name": name, "version": version, "versionId": version,
        "prettyName": pretty, "kernelRelease": kernel, "machine": "x86_64",
    })
}

/// The condition virt-handler sets while the agent is connected.
pub(crate) fn connected_condition() -> Value {
    json!({"type": "AgentConnected", "status": "True", "lastProbeTime": null,
           "lastTransitionTime": crate::meta::now()})
}

/// The `infoSource` of an interface: `domain`, `guest-agent` when the agent reports it,
/// `multus-status` when Multus' network-status gave its address.
pub(crate) fn info_source(agent: bool, multus: bool) -> String {
    let mut sources = vec!["domain"];
    if agent {
        sources.push("guest-agent");
    }
    if multus {
        sources.push("multus-status");
    }
    sources.join(", ")
}

/// `v1.VirtualMachineInstanceGuestAgentInfo` of a running instance with a connected agent (its
/// `guestosinfo` subresource): the host name cloud-init gives the guest (the instance's name),
/// the OS, the users logged in and the mounted file systems (one per disk of the instance: the
/// first is `/`).
pub(crate) fn agent_info(vmi: &Value) -> Value {
    let os = vmi["status"]["guestOSInfo"].clone();
    json!({
        "apiVersion": "subresources.kubevirt.io/v1",
        "kind": "VirtualMachineInstanceGuestAgentInfo",
        "guestAgentVersion": "8.2.0",
        "hostname": vmi["metadata"]["name"],
        "os": os,
        "timezone": "UTC, 0",
        "userList": user_list(vmi)["items"],
        "fsInfo": {"disks": filesystem_list(vmi)["items"]},
        "fsFreezeStatus": "thawed",
    })
}

/// `v1.VirtualMachineInstanceGuestOSUserList`: the cloud image's default user, logged in.
pub(crate) fn user_list(vmi: &Value) -> Value {
    let user = vmi["status"]["guestOSInfo"]["id"]
        .as_str()
        .unwrap_or("cloud-user")
        .to_string();
    json!({"apiVersion": "subresources.kubevirt.io/v1", "kind": "VirtualMachineInstanceGuestOSUserList",
           "metadata": {}, "items": [{"userName": user, "domain": "", "loginTime": 1_700_000_000.0}]})
}

/// `v1.VirtualMachineInstanceFileSystemList`: one file system per disk of the instance.
pub(crate) fn filesystem_list(vmi: &Value) -> Value {
    let items: Vec<Value> = vmi["spec"]["domain"]["devices"]["disks"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, d)| {
            let dev = format!("vd{}", (b'a' + i as u8) as char);
            let mount = if i == 0 {
                "/".to_string()
            } else {
                format!("/mnt/{}", d["name"].as_str().unwrap_or("data"))
            };
            json!({"diskName": format!("{dev}1"), "mountPoint": mount, "fileSystemType": "xfs",
                   "totalBytes": 1_073_741_824u64, "usedBytes": 268_435_456u64,
                   "disk": [{"busType": "virtio", "serial": d["name"]}]})
        })
        .collect();
    json!({"apiVersion": "subresources.kubevirt.io/v1", "kind": "VirtualMachineInstanceFileSystemList",
           "metadata": {}, "items": items})
}

/// Why virt-api refuses a guest-agent subresource of `vmi` (409), if it does.
pub(crate) fn refusal(vmi: &Value) -> Option<String> {
    if vmi["status"]["phase"] != "Running" {
        return Some("VMI is not running".into());
    }
    let connected = vmi["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "AgentConnected" && c["status"] == "True");
    (!connected).then(|| "VMI does not have guest agent connected".into())
}
