//! Changes to a running VM: which a backend applies live (hot-plug) and which wait for a restart.
//!
//! [`Compute::apply_vm`](crate::Compute::apply_vm) is the one way to change a VM, running or
//! not: a new spec is compared with the spec the VM runs with ([`live_changes`]) and
//!
//! - data volumes added or removed are attached and detached live where the backend has
//!   [`ComputeCapabilities::hotplug_volumes`] (KubeVirt's hot-plug volumes); the VM's
//!   [`VmStatus::attached_volumes`](crate::VmStatus::attached_volumes) lists them once they are
//!   ready, and [`wait::vm_volumes_attached`](crate::wait::vm_volumes_attached) waits for that;
//! - interfaces on a subnet added or removed are plugged live where the backend has
//!   [`ComputeCapabilities::hotplug_interfaces`] (KubeVirt plugs a bridge-bound interface by
//!   migrating the VM; the other interfaces keep their addresses);
//! - more CPU cores or memory, up to [`LiveLimits`] of the running VM, are added live where the
//!   backend has [`ComputeCapabilities::live_resize`];
//! - everything else (boot disk, cloud-init, fewer cores or less memory, an instance type, what
//!   the backend cannot do live) is stored and reported in
//!   [`VmStatus::restart_required`](crate::VmStatus::restart_required) until the VM restarts.
//!
//! A declarative API (the spec says what the VM has) rather than attach/detach calls: the same
//! spec applied twice changes nothing, a tenant spec's plan shows a live change like any other
//! ([`LiveChanges`] says which), and a backend never keeps a list of attachments apart from the
//! spec. The facade's `VmsHandle::attach_volume` and friends are conveniences over it.
//!
//! ```
//! use kubecloud_core::hotplug::{LiveLimits, live_changes};
//! use kubecloud_core::{ByteSize, ComputeCapabilities, VmResources, VmSpec};
//! let running = VmSpec { name: "db".into(), ..VmSpec::default() };
//! let mut wanted = running.clone();
//! wanted.data_volumes.push("db-data".into());
//! wanted.resources = VmResources::Custom { cpu_cores: 8, memory: ByteSize::gib(1) };
//! let caps = ComputeCapabilities { hotplug_volumes: true, live_resize: true, ..Default::default() };
//! let limits = LiveLimits::of(&running.resources);
//! let changes = live_changes(&running, &wanted, &caps, limits.as_ref());
//! assert_eq!(changes.attach_volumes, vec!["db-data".to_string()]);
//! // 1 core started with room for 4: 8 needs a restart.
//! assert_eq!(changes.restart_required, vec!["resources.cpuCores".to_string()]);
//! ```

use serde::{Deserialize, Serialize};

use crate::compute::{Attachment, ComputeCapabilities, VmResources, VmSpec};
use crate::size::ByteSize;

/// How many times its boot CPU and memory a running VM can grow to live: KubeVirt's default
/// `maxHotplugRatio` (`spec.configuration.liveUpdateConfiguration.maxHotplugRatio`, 4), which
/// sets a started VMI's `maxSockets` and `maxGuest` when the VM does not.
pub const MAX_HOTPLUG_RATIO: u32 = 4;

/// The most a running VM can grow to without a restart (KubeVirt's `maxSockets` and
/// `maxGuest` of the running instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveLimits {
    /// The most CPU cores.
    pub max_cpu_cores: u32,
    /// The most guest memory.
    pub max_memory: ByteSize,
}

impl LiveLimits {
    /// The limits of a VM started with `resources`: [`MAX_HOTPLUG_RATIO`] times its cores (at
    /// most 512) and memory. `None` for an instance type (its resources change only on restart).
    ///
    /// ```
    /// use kubecloud_core::hotplug::LiveLimits;
    /// use kubecloud_core::{ByteSize, VmResources};
    /// let l = LiveLimits::of(&VmResources::Custom { cpu_cores: 2, memory: ByteSize::gib(2) }).unwrap();
    /// assert_eq!((l.max_cpu_cores, l.max_memory), (8, ByteSize::gib(8)));
    /// ```
    pub fn of(resources: &VmResources) -> Option<Self> {
        match resources {
            VmResources::Custom { cpu_cores, memory } => Some(Self {
                max_cpu_cores: cpu_cores.saturating_mul(MAX_HOTPLUG_RATIO).min(512),
                max_memory: ByteSize(memory.0.saturating_mul(u64::from(MAX_HOTPLUG_RATIO))),
            }),
            VmResources::InstanceType { .. } => None,
        }
    }
}

/// What applying a new spec to a running VM does: the changes made live, and the spec fields
/// that wait for a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveChanges {
    /// Data volumes attached live, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attach_volumes: Vec<String>,
    /// Data volumes detached live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub detach_volumes: Vec<String>,
    /// Interfaces plugged live, in spec order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add_interfaces: Vec<String>,
    /// Interfaces unplugged live.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_interfaces: Vec<String>,
    /// CPU cores or memory grow live.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resize: bool,
    /// Spec fields (`bootDisk`, `resources.cpuCores`, `dataVolumes`, `interfaces`...) the
    /// running VM gets only when it restarts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_required: Vec<String>,
}

impl LiveChanges {
    /// Whether everything that changed is applied live.
    pub fn is_live(&self) -> bool {
        self.restart_required.is_empty()
    }

    /// Whether anything is hot-plugged or resized live.
    pub fn any_live(&self) -> bool {
        !(self.attach_volumes.is_empty()
            && self.detach_volumes.is_empty()
            && self.add_interfaces.is_empty()
            && self.remove_interfaces.is_empty())
            || self.resize
    }

    fn restart(&mut self, field: &str) {
        if !self.restart_required.iter().any(|f| f == field) {
            self.restart_required.push(field.to_string());
        }
    }
}

/// What applying `wanted` to a VM running with `running` does on a backend that can do what
/// `caps` says, with the running VM's `limits` (see [`LiveLimits::of`]; `None`: no live
/// resize). Changes that never touch the running guest (labels, placement, run strategy,
/// security groups, which the backends keep in step live) are neither.
pub fn live_changes(
    running: &VmSpec,
    wanted: &VmSpec,
    caps: &ComputeCapabilities,
    limits: Option<&LiveLimits>,
) -> LiveChanges {
    let mut out = LiveChanges::default();
    if running.boot_disk != wanted.boot_disk {
        out.restart("bootDisk");
    }
    if running.cloud_init != wanted.cloud_init {
        out.restart("cloudInit");
    }

    // Data volumes: a set; the disks keep their names (one per volume), so order is not a change.
    let added: Vec<String> = wanted
        .data_volumes
        .iter()
        .filter(|v| !running.data_volumes.contains(v))
        .cloned()
        .collect();
    let removed: Vec<String> = running
        .data_volumes
        .iter()
        .filter(|v| !wanted.data_volumes.contains(v))
        .cloned()
        .collect();
    if !added.is_empty() || !removed.is_empty() {
        if caps.hotplug_volumes {
            out.attach_volumes = added;
            out.detach_volumes = removed;
        } else {
            out.restart("dataVolumes");
        }
    }

    // Interfaces, by name. The implicit pod-network interface of a spec listing none comes and
    // goes only with a restart; so do changes to a kept interface (its security groups aside).
    if running.interfaces.is_empty() != wanted.interfaces.is_empty() {
        out.restart("interfaces");
    } else {
        let same = |a: &crate::NetworkInterface, b: &crate::NetworkInterface| {
            a.attachment == b.attachment && a.fixed_ip == b.fixed_ip && a.mac == b.mac
        };
        let kept_running: Vec<&str> = running
            .interfaces
            .iter()
            .filter(|i| wanted.interfaces.iter().any(|w| w.name == i.name))
            .map(|i| i.name.as_str())
            .collect();
        let kept_wanted: Vec<&str> = wanted
            .interfaces
            .iter()
            .filter(|i| running.interfaces.iter().any(|r| r.name == i.name))
            .map(|i| i.name.as_str())
            .collect();
        let changed = running.interfaces.iter().any(|r| {
            wanted
                .interfaces
                .iter()
                .any(|w| w.name == r.name && !same(r, w))
        });
        if changed || kept_running != kept_wanted {
            out.restart("interfaces");
        }
        let pluggable = |i: &crate::NetworkInterface| {
            caps.hotplug_interfaces && matches!(i.attachment, Attachment::Subnet { .. })
        };
        for w in &wanted.interfaces {
            if !running.interfaces.iter().any(|r| r.name == w.name) {
                if pluggable(w) {
                    out.add_interfaces.push(w.name.clone());
                } else {
                    out.restart("interfaces");
                }
            }
        }
        for r in &running.interfaces {
            if !wanted.interfaces.iter().any(|w| w.name == r.name) {
                if pluggable(r) {
                    out.remove_interfaces.push(r.name.clone());
                } else {
                    out.restart("interfaces");
                }
            }
        }
    }

    // CPU and memory: growth within the limits, live.
    match (&running.resources, &wanted.resources) {
        (a, b) if a == b => {}
        (
            VmResources::Custom {
                cpu_cores: c0,
                memory: m0,
            },
            VmResources::Custom {
                cpu_cores: c1,
                memory: m1,
            },
        ) => {
            let live = caps.live_resize && limits.is_some();
            if c0 != c1 {
                if live && c1 > c0 && limits.is_some_and(|l| *c1 <= l.max_cpu_cores) {
                    out.resize = true;
                } else {
                    out.restart("resources.cpuCores");
                }
            }
            if m0 != m1 {
                if live && m1 > m0 && limits.is_some_and(|l| *m1 <= l.max_memory) {
                    out.resize = true;
                } else {
                    out.restart("resources.memory");
                }
            }
        }
        _ => out.restart("resources"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BootDisk, NetworkInterface};

    fn all() -> ComputeCapabilities {
        ComputeCapabilities {
            hotplug_volumes: true,
            hotplug_interfaces: true,
            live_resize: true,
            ..ComputeCapabilities::default()
        }
    }

    fn base() -> VmSpec {
        VmSpec {
            name: "vm".into(),
            resources: VmResources::Custom {
                cpu_cores: 2,
                memory: ByteSize::gib(2),
            },
            data_volumes: vec!["a".into(), "b".into()],
            interfaces: vec![NetworkInterface::on_subnet("eth0", "front")],
            ..VmSpec::default()
        }
    }

    #[test]
    fn volumes_attach_and_detach_live_only_with_the_capability() {
        let mut wanted = base();
        wanted.data_volumes = vec!["b".into(), "c".into()];
        let limits = LiveLimits::of(&base().resources);
        let c = live_changes(&base(), &wanted, &all(), limits.as_ref());
        assert_eq!(c.attach_volumes, vec!["c"]);
        assert_eq!(c.detach_volumes, vec!["a"]);
        assert!(c.is_live() && c.any_live());
        let c = live_changes(
            &base(),
            &wanted,
            &ComputeCapabilities::default(),
            limits.as_ref(),
        );
        assert_eq!(c.restart_required, vec!["dataVolumes"]);
        assert!(!c.any_live());
        // A new order of the same volumes changes nothing.
        wanted.data_volumes = vec!["b".into(), "a".into()];
        assert_eq!(
            live_changes(&base(), &wanted, &all(), limits.as_ref()),
            LiveChanges::default()
        );
    }

    #[test]
    fn subnet_interfaces_plug_live_and_the_rest_needs_a_restart() {
        let limits = LiveLimits::of(&base().resources);
        let mut wanted = base();
        wanted
            .interfaces
            .push(NetworkInterface::on_subnet("eth1", "back"));
        let c = live_changes(&base(), &wanted, &all(), limits.as_ref());
        assert_eq!(
            (c.add_interfaces.clone(), c.is_live()),
            (vec!["eth1".into()], true)
        );
        let c = live_changes(&wanted, &base(), &all(), limits.as_ref());
        assert_eq!(c.remove_interfaces, vec!["eth1"]);
        let mut moved = base();
        moved.interfaces[0] = NetworkInterface::on_subnet("eth0", "back");
        let c = live_changes(&base(), &moved, &all(), limits.as_ref());
        assert_eq!(c.restart_required, vec!["interfaces"]);
        let mut sg = base();
        sg.interfaces[0].security_groups = vec!["web".into()];
        assert!(live_changes(&base(), &sg, &all(), limits.as_ref()).is_live());
        let mut pod = base();
        pod.interfaces.push(NetworkInterface::pod_network("pod"));
        let c = live_changes(&base(), &pod, &all(), limits.as_ref());
        assert_eq!(c.restart_required, vec!["interfaces"]);
    }

    #[test]
    fn growth_within_the_limits_is_live_shrinking_or_beyond_needs_a_restart() {
        let limits = LiveLimits::of(&base().resources);
        let sized = |cpu_cores, memory| VmSpec {
            resources: VmResources::Custom { cpu_cores, memory },
            ..base()
        };
        let c = live_changes(
            &base(),
            &sized(8, ByteSize::gib(8)),
            &all(),
            limits.as_ref(),
        );
        assert!(c.resize && c.is_live());
        let c = live_changes(
            &base(),
            &sized(9, ByteSize::gib(9)),
            &all(),
            limits.as_ref(),
        );
        assert_eq!(
            c.restart_required,
            vec!["resources.cpuCores", "resources.memory"]
        );
        let c = live_changes(
            &base(),
            &sized(1, ByteSize::gib(2)),
            &all(),
            limits.as_ref(),
        );
        assert_eq!(c.restart_required, vec!["resources.cpuCores"]);
        let mut boot = sized(4, ByteSize::gib(2));
        boot.boot_disk = BootDisk::ContainerImage { image: "x".into() };
        let no_resize = ComputeCapabilities {
            live_resize: false,
            ..all()
        };
        let c = live_changes(&base(), &boot, &no_resize, limits.as_ref());
        assert_eq!(c.restart_required, vec!["bootDisk", "resources.cpuCores"]);
    }
}
