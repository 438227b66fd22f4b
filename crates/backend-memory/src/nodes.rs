//! Node maintenance in the memory cloud (cordon, uncordon, the VMs on a node) and the guest
//! information its VMs' agents report.
//!
//! A cordoned node takes no new VM and no migration (`placement::choose` and
//! `placement::other_candidates` skip it), as the Kubernetes scheduler skips a node with
//! `spec.unschedulable`; what runs there stays.

use kubecloud_core::{
    Error, GuestFilesystem, GuestInfo, GuestInterface, GuestOs, NodeInfo, ResourceKind, Result,
    VmRef, VmSpec, VmStatus,
};

use crate::state::State;

impl State {
    /// Every node, by name.
    pub(crate) fn list_nodes(&self) -> Vec<NodeInfo> {
        let mut out: Vec<NodeInfo> = self
            .nodes
            .iter()
            .map(|n| NodeInfo {
                name: n.name.clone(),
                schedulable: !n.unschedulable,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Cordons or uncordons `node`.
    pub(crate) fn set_node_schedulable(
        &mut self,
        node: &str,
        schedulable: bool,
    ) -> Result<NodeInfo> {
        let n = self
            .nodes
            .iter_mut()
            .find(|n| n.name == node)
            .ok_or_else(|| Error::not_found(ResourceKind::Node, node))?;
        n.unschedulable = !schedulable;
        tracing::debug!(node, schedulable, "node schedulability");
        Ok(NodeInfo {
            name: n.name.clone(),
            schedulable,
        })
    }

    /// The VMs of every tenant running (or starting, or stopping) on `node`.
    pub(crate) fn vms_on_node(&self, node: &str) -> Result<Vec<VmRef>> {
        let index = self
            .nodes
            .iter()
            .position(|n| n.name == node)
            .ok_or_else(|| Error::not_found(ResourceKind::Node, node))?;
        let mut out: Vec<VmRef> = self
            .tenants
            .iter()
            .flat_map(|(tenant, ts)| {
                ts.vms
                    .iter()
                    .filter(|(_, vm)| {
                        vm.status.node.as_deref() == Some(node) || vm.node == Some(index)
                    })
                    .map(|(name, _)| VmRef {
                        tenant: tenant.clone(),
                        vm: name.clone(),
                    })
            })
            .collect();
        out.sort_by(|a, b| (a.tenant.as_str(), &a.vm).cmp(&(b.tenant.as_str(), &b.vm)));
        Ok(out)
    }
}

/// What a running memory VM's guest agent reports: its name as host name, a Linux guest, one
/// root file system, and its interfaces' addresses (from the domain and the agent).
pub(crate) fn guest_info(spec: &VmSpec, status: &VmStatus) -> GuestInfo {
    GuestInfo {
        hostname: Some(spec.name.clone()),
        os: Some(GuestOs {
            name: "Linux".into(),
            version: String::new(),
            kernel: "memory".into(),
        }),
        users: Vec::new(),
        filesystems: vec![GuestFilesystem {
            mount_point: "/".into(),
            disk_name: "vda1".into(),
            fs_type: "ext4".into(),
            total_bytes: 0,
            used_bytes: 0,
        }],
        interfaces: status
            .interfaces
            .iter()
            .enumerate()
            .map(|(i, iface)| GuestInterface {
                name: iface.name.clone(),
                interface_name: Some(format!("eth{i}")),
                ip_addresses: iface.ip.iter().map(ToString::to_string).collect(),
                mac: iface.mac.map(|m| m.to_string()),
                info_source: vec!["domain".into(), "guest-agent".into()],
            })
            .collect(),
    }
}
