//! What the KubeVirt backend can do.

use kubecloud_core::ComputeCapabilities;

/// The capabilities of [`crate::KubeVirt`]: everything the trait names. Live migration goes
/// through `VirtualMachineInstanceMigration`, to a named node through its `addedNodeSelector`;
/// instance types are KubeVirt's; container disks and http(s) imports (CDI) are native; fixed
/// addresses are carried to Kube-OVN as pod annotations; whole-VM snapshots and restore go through
/// `VirtualMachineSnapshot` and `VirtualMachineRestore`. Data volumes are hot-plugged
/// declaratively (their template volumes are `hotpluggable`; KubeVirt's
/// `DeclarativeHotplugVolumes`, on by default, attaches what the template adds), CPU sockets and
/// guest memory grow live (`LiveUpdate` rollout) up to the instance's `maxSockets` and
/// `maxGuest`. Interfaces are not plugged live (a restart adds them): KubeVirt plugs only
/// bridge-bound secondary interfaces, through a migration, which this backend does not drive yet.
pub fn capabilities() -> ComputeCapabilities {
    ComputeCapabilities {
        live_migration: true,
        migrate_to_node: true,
        instance_types: true,
        container_disks: true,
        http_import: true,
        cloud_init: true,
        fixed_addresses: true,
        vm_snapshots: true,
        catalog: true,
        serial_console: true,
        vnc: true,
        hotplug_volumes: true,
        hotplug_interfaces: false,
        live_resize: true,
    }
}
