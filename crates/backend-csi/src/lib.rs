//! # kubecloud-csi
//!
//! Block storage on **any CSI driver, through Kubernetes alone**: the [`BlockStorage`] trait over
//! the cluster's StorageClasses, PersistentVolumeClaims, VolumeSnapshots and CDI DataVolumes,
//! with no API of the storage system itself. What kubecloud knows about each driver is its
//! [profile](profiles) (from the driver's own documentation, cited there); what the cluster says
//! about its classes narrows it (expansion, snapshot classes, CSIDriver objects).
//!
//! | operation | Kubernetes |
//! |---|---|
//! | tiers | the StorageClasses of CSI drivers: one tier per class, or several classes of one driver grouped by the label `kubecloud.io/tier` ([`tiers`]); the cluster's default class is the default tier |
//! | create (blank, clone, restore) | a PVC of the tier's class giving the replicas and access asked ([`translate::choose_class`]; a class derived from the tier's where the driver takes the replica count or RWX block as a class parameter); `dataSource` PVC (clone) or VolumeSnapshot (restore) |
//! | create from an http(s) image | a CDI DataVolume with the class (the shared [`kubecloud_kube::cdi`] import) |
//! | resize | PVC expansion, when the driver grows volumes and the class has `allowVolumeExpansion` |
//! | snapshot | a VolumeSnapshot through the driver's VolumeSnapshotClass |
//! | status | the PVC's phase and capacity; while not ready, the newest Warning event about it (`ProvisioningFailed`, `VolumeResizeFailed`) as the message |
//! | pools | per tier: free from the driver's `CSIStorageCapacity`, used from its PersistentVolumes, nodes from `CSINode` |
//! | delete | refused while a VolumeAttachment holds the volume (unless forced); DataVolume and PVC deleted in the foreground, then wait until the PV is gone (the driver deleted the storage); a forced delete returns once they are marked for deletion (a claim a pod uses keeps `kubernetes.io/pvc-protection` until the pod is gone) |
//!
//! What is refused, with a typed error naming the driver and the class: a replica count no class
//! of the tier gives where replication is a pool property (Ceph, democratic-csi) or local
//! (LocalPV-LVM) (`InvalidInput` on `replicas`); RWX block (live migration) on a driver without
//! it, RWX filesystem, a volume mode, clones, restores or snapshots the driver does not do
//! (`Unsupported`); resizing through a class without `allowVolumeExpansion`. Where the driver's
//! copies are is not visible in Kubernetes: volumes report no replicas, and the capability
//! `replica_placement` says so.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
//! use kubecloud_core::{AccessMode, BlockStorage, ByteSize, Tenant, VolumeSpec};
//! let storage = kubecloud_csi::Csi::discover(client, true).await?.build()?;
//! let acme = Tenant::new("acme")?;
//! let disk = VolumeSpec::blank("root", ByteSize::gib(20)).with_access(AccessMode::ReadWriteMany);
//! let volume = storage.create_volume(&acme, &disk).await?;
//! # let _ = volume; Ok(()) }
//! ```
//!
//! ## Crates chosen, and why
//! - `kubecloud-kube` for everything Kubernetes: server-side apply, ownership, shared watches,
//!   errors and retries, and its [`kubecloud_kube::claims`] layer, which the LINSTOR backend
//!   uses too (claims, imports, snapshots, deletion and watching are the same for every
//!   CSI-backed backend).
//! - `k8s-openapi` types for the built-in kinds (StorageClass, CSIDriver, CSINode,
//!   CSIStorageCapacity, VolumeAttachment, Event); `serde_json` for the snapshot CRDs and CDI.
//!   No other dependency: there is no storage API to speak.

mod builder;
pub mod capabilities;
pub mod connect;
mod driver;
mod manifests;
pub mod plugin;
/// Typed models of the CSI snapshot kinds, generated from the upstream CRDs (see
/// `kubecloud-models`).
///
/// ```
/// use kubecloud_csi::models::VolumeSnapshot;
/// assert_eq!(<VolumeSnapshot as kube::Resource>::group(&()), "snapshot.storage.k8s.io");
/// ```
pub mod models {
    pub use kubecloud_models::snapshot::*;
}
pub mod profiles;
pub mod snapshot_class;
pub mod status;
pub mod tiers;
pub mod translate;

pub use builder::{Csi, CsiBuilder};
pub use kubecloud_core::BlockStorage;

/// The backend's name, in errors and logs.
pub const BACKEND: &str = "csi";
