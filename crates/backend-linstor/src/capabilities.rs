//! What the LINSTOR backend can do.

use kubecloud_core::{ByteSize, StorageCapabilities};

/// The smallest raw block volume LINSTOR CSI creates as asked: smaller requests are rounded up to
/// 4 KiB (linstor-csi `AllocationSize`, `pkg/client/linstor.go`).
pub const MIN_BLOCK_SIZE: ByteSize = ByteSize::kib(4);

/// The smallest filesystem volume LINSTOR CSI creates as asked: 2 MiB for ext4, its default
/// filesystem (smaller ext4 volumes get no journal), rounded up otherwise (linstor-csi
/// `AllocationSize`).
pub const MIN_FILESYSTEM_SIZE: ByteSize = ByteSize::mib(2);

/// LINSTOR's capabilities with `max_replicas` replicas at most: snapshots, clones, resize (also
/// online: DRBD grows under a running VM), replica placement (LINSTOR's resources), RWX block (DRBD dual primary for live migration).
/// Imports from http(s) URLs through CDI DataVolumes into this backend's StorageClasses.
/// No RWX filesystem (LINSTOR CSI serves RWX only for block, or through its NFS exporter which
/// this backend does not drive). Volumes below [`MIN_BLOCK_SIZE`] (block) or
/// [`MIN_FILESYSTEM_SIZE`] (filesystem) are refused rather than silently rounded up.
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
        min_volume_size: MIN_BLOCK_SIZE,
        min_filesystem_size: MIN_FILESYSTEM_SIZE,
        replica_placement: true,
        pool_capacity: true,
    }
}
