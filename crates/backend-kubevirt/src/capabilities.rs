//! What the KubeVirt backend can do.

use kubecloud_core::ComputeCapabilities;

/// The capabilities of [`crate::KubeVirt`]: everything the trait names. Live migration goes
/// through `VirtualMachineInstanceMigration`, to a named node through its `addedNodeSelector`;
/// instance types are KubeVirt's; container disks and http(s) imports (CDI) are native; fixed
/// addresses are carried to Kube-OVN as pod annotations; whole-VM snapshots and restore go through
/// `VirtualMachineSnapshot` and `VirtualMachineRestore`.
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
    }
}
