//! What the CSI backend can do: the union of what its tiers' drivers can, as their profiles and
//! the cluster say (each operation is then checked against the tier it goes to, and refused
//! with an error naming the driver and the class when that tier cannot).

use kubecloud_core::{MAX_REPLICAS, StorageCapabilities};

use crate::tiers::Tier;

/// The capabilities of a backend over `tiers`, with http(s) imports when CDI is installed
/// (`http_import`) and snapshots only when the snapshot CRDs are (`snapshot_crds`):
///
/// - snapshots: a tier whose driver snapshots and restores, with a VolumeSnapshotClass of it;
/// - clones, RWX block (live migration), RWX filesystem: a tier whose driver serves them;
/// - resize: a tier whose driver grows volumes and with a class allowing expansion; online
///   resize: the same, growing volumes in use;
/// - replicas: the most any tier gives (a driver with a replica parameter: [`MAX_REPLICAS`]);
/// - replica placement: never (Kubernetes does not show where a driver keeps its copies);
/// - pool capacity: when every tier's driver publishes `CSIStorageCapacity`.
///
/// ```
/// let caps = kubecloud_csi::capabilities::capabilities(&[], true, true);
/// assert!(!caps.rwx_block && !caps.replica_placement && caps.http_import);
/// ```
pub fn capabilities(tiers: &[Tier], http_import: bool, snapshot_crds: bool) -> StorageCapabilities {
    let any = |f: &dyn Fn(&Tier) -> bool| tiers.iter().any(f);
    StorageCapabilities {
        snapshots: snapshot_crds && any(&|t| t.snapshots()),
        clones: any(&|t| t.profile.clones),
        resize: any(&|t| t.expansion()),
        online_resize: any(&|t| t.expansion() && t.profile.online_expansion),
        rwx_block: any(&|t| t.profile.can_rwx_block()),
        rwx_filesystem: any(&|t| t.profile.rwx_filesystem),
        http_import,
        max_replicas: tiers
            .iter()
            .map(Tier::max_replicas)
            .max()
            .unwrap_or(1)
            .min(MAX_REPLICAS),
        min_volume_size: kubecloud_core::ByteSize(0),
        min_filesystem_size: kubecloud_core::ByteSize(0),
        replica_placement: false,
        pool_capacity: !tiers.is_empty() && tiers.iter().all(|t| t.capacity_tracked),
    }
}
