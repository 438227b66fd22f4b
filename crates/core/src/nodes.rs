//! Node maintenance (an operator's concern, not a tenant's) and what a VM's guest agent reports.
//!
//! A compute backend lists the cluster's nodes, cordons and uncordons them
//! ([`crate::Compute::set_node_schedulable`]) and lists the VMs running on one across all
//! tenants ([`crate::Compute::vms_on_node`]); the facade's evacuation composes these with
//! [`crate::Compute::migration_blockers`], [`crate::Compute::migrate`] and the watch-based waits.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::compute::MigrationBlocker;
use crate::name::Tenant;

/// A node of the cluster as compute sees it.
///
/// ```
/// use kubecloud_core::NodeInfo;
/// let node = NodeInfo { name: "node-2".into(), schedulable: false };
/// assert!(!node.schedulable, "cordoned");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// Whether new VMs and migrations may land on it (`false`: cordoned).
    pub schedulable: bool,
}

/// A VM running on a node, of some tenant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmRef {
    /// The tenant owning the VM.
    pub tenant: Tenant,
    /// The VM's name in that tenant.
    pub vm: String,
}

impl std::fmt::Display for VmRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.vm)
    }
}

/// How to evacuate a node.
///
/// ```
/// use kubecloud_core::EvacuateOptions;
/// let options = EvacuateOptions { stop_unmovable: true, ..EvacuateOptions::default() };
/// assert_eq!(options.max_parallel, 2);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvacuateOptions {
    /// Stop the VMs that cannot live-migrate (after the movable ones moved); else they stay.
    pub stop_unmovable: bool,
    /// How many live migrations run at once (at least 1; KubeVirt's own default cluster-wide
    /// limit is 5, per node 2).
    pub max_parallel: usize,
    /// How long each VM's migration (or stop) may take.
    pub timeout_per_vm: Duration,
}

impl Default for EvacuateOptions {
    fn default() -> Self {
        Self {
            stop_unmovable: false,
            max_parallel: 2,
            timeout_per_vm: Duration::from_secs(300),
        }
    }
}

/// A step of a node's evacuation, reported as it happens. Every [`EvacuationEvent::Blocked`]
/// comes before the node is cordoned and before any migration starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "event")]
pub enum EvacuationEvent {
    /// The VM cannot live-migrate, for these reasons.
    Blocked {
        /// The VM.
        vm: VmRef,
        /// Every reason.
        blockers: Vec<MigrationBlocker>,
    },
    /// The node no longer takes new VMs.
    Cordoned {
        /// The node.
        node: String,
    },
    /// A live migration of the VM started.
    Migrating {
        /// The VM.
        vm: VmRef,
    },
    /// The VM runs on `node` now, its addresses kept.
    Migrated {
        /// The VM.
        vm: VmRef,
        /// Where it runs now.
        node: String,
    },
    /// The VM's migration failed; it still runs on the node.
    Failed {
        /// The VM.
        vm: VmRef,
        /// Why.
        reason: String,
    },
    /// The unmovable VM was stopped.
    Stopped {
        /// The VM.
        vm: VmRef,
    },
}

/// What an evacuation did, once it is over.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvacuationReport {
    /// The node evacuated (left cordoned).
    pub node: String,
    /// The VMs that could not move, and why.
    pub blocked: Vec<(VmRef, Vec<MigrationBlocker>)>,
    /// The VMs that moved, and where to.
    pub migrated: Vec<(VmRef, String)>,
    /// The VMs whose migration failed, and why.
    pub failed: Vec<(VmRef, String)>,
    /// The unmovable VMs that were stopped.
    pub stopped: Vec<VmRef>,
}

impl EvacuationReport {
    /// Whether no VM remains running on the node.
    pub fn is_empty_node(&self) -> bool {
        self.failed.is_empty() && self.blocked.len() == self.stopped.len()
    }
}

/// What a VM's guest agent (qemu-guest-agent) reports, when it is connected.
///
/// ```
/// use kubecloud_core::GuestInfo;
/// let info: GuestInfo = serde_json::from_str(
///     r#"{"hostname":"web-1","os":{"name":"Fedora Linux","version":"40","kernel":"6.8.5"}}"#,
/// ).unwrap();
/// assert_eq!(info.os.unwrap().name, "Fedora Linux");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestInfo {
    /// The guest's host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Its operating system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<GuestOs>,
    /// Users logged in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<GuestUser>,
    /// Mounted file systems.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filesystems: Vec<GuestFilesystem>,
    /// The interfaces' addresses and where each was learnt from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<GuestInterface>,
}

/// A guest's operating system.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestOs {
    /// Its name (`Fedora Linux`).
    pub name: String,
    /// Its version (`40`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The kernel release (`6.8.5-301.fc40.x86_64`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kernel: String,
}

/// A user logged in to the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestUser {
    /// The user name.
    pub name: String,
    /// Their domain, if any (Windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Login time, whole seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_time: Option<i64>,
}

/// A file system mounted in the guest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestFilesystem {
    /// Where it is mounted (`/`).
    pub mount_point: String,
    /// The disk's name in the guest (`vda1`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub disk_name: String,
    /// Its type (`xfs`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fs_type: String,
    /// Total bytes.
    #[serde(default)]
    pub total_bytes: u64,
    /// Used bytes.
    #[serde(default)]
    pub used_bytes: u64,
}

/// An interface's addresses as reported for the VM, and their sources.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestInterface {
    /// The interface's name in the VM spec.
    pub name: String,
    /// Its name inside the guest (`eth0`), when the agent said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Every address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    /// Its MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Where the addresses come from (`domain`, `guest-agent`, `multus-status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub info_source: Vec<String>,
}
