//! What the LINSTOR backend can do.

use kubecloud_core::StorageCapabilities;

/// LINSTOR's capabilities with `max_replicas` replicas at most: snapshots, clones, resize (also
/// online: DRBD grows under a running VM), RWX block (DRBD dual primary for live migration).
/// Imports from http(s) URLs through CDI DataVolumes into this backend's StorageClasses.
/// No RWX filesystem (LINSTOR CSI serves RWX only for block, or through its NFS exporter which
/// this backend does not drive).
pub fn capabilities(max_replicas: u8) -> StorageCapabilities {
    StorageCapabilities {
        snapshots: true,
        clones: true,
        resize: true,
        online_resize: true,
        rwx_block: true,
        rwx_filesystem: false,
        http_import: true,
        max_replicas,
    }
}
