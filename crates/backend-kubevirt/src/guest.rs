//! What a VM's guest agent reports: read from its `VirtualMachineInstance` status (the
//! `AgentConnected` condition, `guestOSInfo`, `interfaces[].infoSource`, as virt-handler writes
//! them while the agent is connected) and from virt-api's guest-agent subresource
//! `GET /apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{name}/guestosinfo`
//! (`v1.VirtualMachineInstanceGuestAgentInfo`: host name, OS, users, file systems).

use kubecloud_core::{
    Error, GuestFilesystem, GuestInfo, GuestInterface, GuestOs, GuestUser, ResourceKind, Result,
};
use kubecloud_kube::from_kube;
use kubecloud_models::kubevirt::virtual_machine_instance::VirtualMachineInstanceStatus;
use serde::Deserialize;

use crate::BACKEND;

/// Whether the instance reports its guest agent connected (`AgentConnected=True`).
pub fn agent_connected(status: &VirtualMachineInstanceStatus) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.r#type == "AgentConnected" && c.status == "True")
}

/// The guest information in an instance's status, if its agent is connected.
pub fn from_instance(status: Option<&VirtualMachineInstanceStatus>) -> Option<GuestInfo> {
    let status = status.filter(|s| agent_connected(s))?;
    let os = status.guest_os_info.as_ref().and_then(|os| {
        Some(GuestOs {
            name: os.pretty_name.clone().or_else(|| os.name.clone())?,
            version: os
                .version_id
                .clone()
                .or_else(|| os.version.clone())
                .unwrap_or_default(),
            kernel: os.kernel_release.clone().unwrap_or_default(),
        })
    });
    let interfaces = status
        .interfaces
        .iter()
        .flatten()
        .filter_map(|i| {
            Some(GuestInterface {
                name: i.name.clone()?,
                interface_name: i.interface_name.clone(),
                ip_addresses: i
                    .ip_addresses
                    .clone()
                    .or_else(|| i.ip_address.clone().map(|ip| vec![ip]))
                    .unwrap_or_default(),
                mac: i.mac.clone(),
                info_source: i
                    .info_source
                    .as_deref()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect();
    Some(GuestInfo {
        hostname: None,
        os,
        users: Vec::new(),
        filesystems: Vec::new(),
        interfaces,
    })
}

/// `v1.VirtualMachineInstanceGuestAgentInfo`, the fields read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentInfo {
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    os: Option<AgentOs>,
    #[serde(default)]
    user_list: Vec<AgentUser>,
    #[serde(default)]
    fs_info: Option<AgentFsInfo>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentOs {
    name: Option<String>,
    pretty_name: Option<String>,
    version: Option<String>,
    version_id: Option<String>,
    kernel_release: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentUser {
    user_name: String,
    #[serde(default)]
    domain: Option<String>,
    #[serde(default)]
    login_time: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct AgentFsInfo {
    #[serde(default)]
    disks: Vec<AgentFs>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentFs {
    mount_point: String,
    #[serde(default)]
    disk_name: String,
    #[serde(default)]
    file_system_type: String,
    #[serde(default)]
    total_bytes: u64,
    #[serde(default)]
    used_bytes: u64,
}

/// The path of the instance's `guestosinfo` subresource.
pub fn guestosinfo_path(ns: &str, vmi: &str) -> String {
    format!(
        "/apis/subresources.kubevirt.io/v1/namespaces/{ns}/virtualmachineinstances/{vmi}/guestosinfo"
    )
}

/// Adds what virt-api's `guestosinfo` answers (host name, OS, users, file systems) to `info`.
/// A 409 (the agent disconnected since the status was read) leaves `info` as it is.
pub async fn enrich(client: &kube::Client, ns: &str, vm: &str, info: &mut GuestInfo) -> Result<()> {
    let request = http::Request::get(guestosinfo_path(ns, vm))
        .body(Vec::new())
        .map_err(|e| Error::backend(BACKEND, "building a request", false, e))?;
    let agent: AgentInfo = match client.request(request).await {
        Ok(a) => a,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(vm, "guest agent disconnected");
            return Ok(());
        }
        Err(e) => return Err(from_kube(BACKEND, ResourceKind::Vm, vm, e)),
    };
    info.hostname = agent.hostname.filter(|h| !h.is_empty());
    if let Some(os) = agent.os
        && let Some(name) = os.pretty_name.or(os.name)
    {
        info.os = Some(GuestOs {
            name,
            version: os.version_id.or(os.version).unwrap_or_default(),
            kernel: os.kernel_release.unwrap_or_default(),
        });
    }
    info.users = agent
        .user_list
        .into_iter()
        .map(|u| GuestUser {
            name: u.user_name,
            domain: u.domain.filter(|d| !d.is_empty()),
            login_time: u.login_time.map(|t| t as i64),
        })
        .collect();
    info.filesystems = agent
        .fs_info
        .unwrap_or_default()
        .disks
        .into_iter()
        .map(|f| GuestFilesystem {
            mount_point: f.mount_point,
            disk_name: f.disk_name,
            fs_type: f.file_system_type,
            total_bytes: f.total_bytes,
            used_bytes: f.used_bytes,
        })
        .collect();
    Ok(())
}
