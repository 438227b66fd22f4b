//! Domain specs → Kubernetes objects (pure; golden-tested), and the way back.
//!
//! | domain | Kubernetes |
//! |---|---|
//! | tier `t` with `r` replicas (RWX block: `-rwx`) | StorageClass `linstor-<t>-r<r>[-rwx]`, provisioner `linstor.csi.linbit.com`, parameters `resourceGroup`, `placementCount`, `storagePool` (when the group has exactly one), `DrbdOptions/Net/allow-two-primaries: "yes"` for RWX block; `allowVolumeExpansion: true`, reclaim `Delete` |
//!
//! Claims, DataVolumes and VolumeSnapshots are the shared ones of [`kubecloud_kube::claims`]
//! (re-exported here), as every CSI-backed storage backend makes them:
//!
//! | domain | Kubernetes |
//! |---|---|
//! | volume `v` of tenant `n` | PVC `names::claim(v)` in namespace `n`: volume mode, access mode, size in bytes, the class; `dataSource` PVC (clone) or VolumeSnapshot (restore); the spec's replicas, tier and source in `kubecloud.io/*` annotations |
//! | volume `v` imported from `url` | DataVolume `names::claim(v)` (`cdi.kubevirt.io/v1beta1`) in namespace `n`: `source.http.url`, `storage` with the same class, size, access and volume mode as the PVC; the same labels and annotations (`kubecloud.io/source: import:<url>`). CDI makes the PVC of the same name |
//! | snapshot `s` of `v` | VolumeSnapshot `s` in namespace `n` of claim `names::claim(v)`, class `linstor-kubecloud` |

use std::collections::BTreeMap;

use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubecloud_core::{ByteSize, Tenant};
use kubecloud_kube::claims;
use kubecloud_kube::{MANAGED_BY, MANAGER};
use serde_json::{Value, json};

/// The LINSTOR CSI driver's name.
pub const PROVISIONER: &str = "linstor.csi.linbit.com";
/// The VolumeSnapshotClass kubecloud uses for LINSTOR snapshots.
pub const SNAPSHOT_CLASS: &str = "linstor-kubecloud";
pub use kubecloud_kube::claims::{
    DATA_VOLUME_API, REPLICAS, SIZE, SOURCE, TIER, VOLUME, bytes_of, claim, claim_of_data_volume,
    data_volume, is_rwx_block, spec_from_claim, volume_attachment,
};

const RG: &str = "linstor.csi.linbit.com/resourceGroup";
const PLACEMENT: &str = "linstor.csi.linbit.com/placementCount";
const POOL: &str = "linstor.csi.linbit.com/storagePool";
const TWO_PRIMARIES: &str = "property.linstor.csi.linbit.com/DrbdOptions/Net/allow-two-primaries";

/// What a StorageClass needs to know about a tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierPlan {
    /// The tier's name.
    pub name: String,
    /// Its LINSTOR resource group.
    pub resource_group: String,
    /// The one storage pool of the group, when it has exactly one.
    pub storage_pool: Option<String>,
}

/// The StorageClass name for a tier, replica count and RWX block.
///
/// ```
/// assert_eq!(kubecloud_linstor::translate::storage_class_name("fast", 2, true), "linstor-fast-r2-rwx");
/// ```
pub fn storage_class_name(tier: &str, replicas: u8, rwx_block: bool) -> String {
    let suffix = if rwx_block { "-rwx" } else { "" };
    format!("linstor-{tier}-r{replicas}{suffix}")
}

/// The StorageClass for `tier` with `replicas` replicas (cluster-scoped, shared by tenants, so
/// labelled as kubecloud's but not as any tenant's).
pub fn storage_class(tier: &TierPlan, replicas: u8, rwx_block: bool) -> StorageClass {
    let mut parameters = BTreeMap::from([
        (RG.to_string(), tier.resource_group.clone()),
        (PLACEMENT.to_string(), replicas.to_string()),
    ]);
    if let Some(pool) = &tier.storage_pool {
        parameters.insert(POOL.to_string(), pool.clone());
    }
    if rwx_block {
        parameters.insert(TWO_PRIMARIES.to_string(), "yes".to_string());
    }
    StorageClass {
        metadata: ObjectMeta {
            name: Some(storage_class_name(&tier.name, replicas, rwx_block)),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_string(), MANAGER.to_string()),
                (TIER.to_string(), tier.name.clone()),
            ])),
            ..ObjectMeta::default()
        },
        provisioner: PROVISIONER.to_string(),
        parameters: Some(parameters),
        allow_volume_expansion: Some(true),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("Immediate".into()),
        ..StorageClass::default()
    }
}

/// The VolumeSnapshotClass of the LINSTOR CSI driver (cluster-scoped, shared).
pub fn snapshot_class() -> Value {
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": SNAPSHOT_CLASS, "labels": {MANAGED_BY: MANAGER}},
        "driver": PROVISIONER,
        "deletionPolicy": "Delete",
    })
}

/// The VolumeSnapshot `snapshot` of `volume` (whose size is `size`) in `tenant`'s namespace,
/// of class [`SNAPSHOT_CLASS`].
pub fn volume_snapshot(
    tenant: &Tenant,
    volume: &str,
    snapshot: &str,
    size: ByteSize,
) -> kubecloud_models::snapshot::VolumeSnapshot {
    claims::volume_snapshot(tenant, volume, snapshot, size, SNAPSHOT_CLASS)
}
