//! # kubecloud-linstor
//!
//! Block storage on LINSTOR as Piraeus installs it: the [`BlockStorage`] trait over two planes
//! that describe **one** volume. A volume is a PersistentVolumeClaim in the tenant's namespace
//! (`kubecloud_kube::names::claim(volume)`), provisioned by the LINSTOR CSI driver; its PV's CSI
//! `volumeHandle` is the name of its LINSTOR resource definition, which is how this crate finds
//! the LINSTOR side of a claim.
//!
//! ## Which operation goes through which plane, and why
//!
//! | operation | plane | why |
//! |---|---|---|
//! | create (blank, clone, restore) | Kubernetes: StorageClass per tier/replicas, PVC (`dataSource` PVC or VolumeSnapshot) | a VM needs a PVC; the CSI driver spawns the resource from the class's resource group (one `spawn` call), clones or restores it, and binds a PV. Creating the LINSTOR resource behind Kubernetes' back would leave no claim. |
//! | checks before create | LINSTOR REST: resource group, storage pools (free KiB per node), nodes | only LINSTOR knows pools, capacity and nodes; a request that cannot be placed is refused before anything is written |
//! | resize | Kubernetes: PVC expansion (free space checked on LINSTOR first) | the CSI resizer grows the volume definition and the claim's capacity together |
//! | snapshot, delete snapshot | Kubernetes: VolumeSnapshotClass + VolumeSnapshot | restores go through PVC `dataSource`, which needs the VolumeSnapshot |
//! | replicas and DRBD state, in use | LINSTOR REST: `/v1/view/resources` | Kubernetes has no notion of replicas or DRBD disk states |
//! | pools (tiers) and capacity | LINSTOR REST: resource groups and `/v1/view/storage-pools` | the same |
//! | delete | both: in-use check (LINSTOR `in_use` = DRBD primary; which VM uses a volume is the compute backend's to say, and the facade asks it first), then delete the DataVolume (imports) and the PVC, both in the foreground, and wait (shared watches) until they and the PV are gone | the CSI driver deletes the resource definition, then the PV (reclaim `Delete`): when `delete_volume` returns, the storage is released |
//! | create from an http(s) image | Kubernetes: a CDI DataVolume (`source.http`, `storage` with the tier's StorageClass) named after the volume | CDI imports into the PVC it makes (same name), which the CSI driver provisions from the class like any other; the status follows the DataVolume's phase and progress through a watch, then the claim and LINSTOR |
//!
//! ```no_run
//! # async fn demo(client: kube::Client, ca: Vec<u8>, cert: Vec<u8>, key: Vec<u8>) -> kubecloud_core::Result<()> {
//! use kubecloud_core::{BlockStorage, ByteSize, Tenant, VolumeSpec};
//! let storage = kubecloud_linstor::Linstor::builder(client, "https://linstor-controller.piraeus-datastore.svc:3371")
//!     .tls(ca, cert, key)
//!     .tier("fast", "nvme-thin")
//!     .tier("bulk", "hdd-zfs")
//!     .build()?;
//! let acme = Tenant::new("acme")?;
//! let volume = storage.create_volume(&acme, &VolumeSpec::blank("db", ByteSize::gib(20)).with_replicas(2)).await?;
//! # let _ = volume; Ok(()) }
//! ```
//!
//! ## Connecting: what is trusted, and why
//!
//! [`connect`] finds the controller as Piraeus' own operator does, and trusts only the Piraeus
//! installation the `LinstorCluster` belongs to: the controller's Service must be controlled by
//! the `LinstorCluster` (owner reference with its uid, `controller: true`), labelled Services it
//! does not own are ignored wherever they are, and the client TLS Secret is read in that
//! Service's namespace only (for an external controller, Piraeus' namespace:
//! [`connect::PIRAEUS_NAMESPACE`] or the one given with
//! [`connect::LinstorConnect::piraeus_namespace`], which also confines the Service lookup to it).
//! Otherwise anyone who may create a Service somewhere could redirect volume operations, and have
//! their own Secret read as the client certificate. A plain `http://` controller is refused
//! unless [`connect::LinstorConnect::allow_plain_http`] (or [`LinstorBuilder::insecure_http`] on
//! a builder) accepts it, and then a warning is logged. The [`connect`] module docs give the
//! details and the operator source they follow.
//!
//! ```
//! use kubecloud_kube::connect::ConnectOptions;
//! use kubecloud_linstor::connect::{LinstorConnect, LinstorSettings};
//! let options = ConnectOptions::new().piraeus_namespace("piraeus-datastore");
//! let settings = options.setting::<LinstorSettings>().unwrap();
//! assert!(!settings.allow_plain_http);
//! ```
//!
//! ## Crates chosen, and why
//! - `reqwest` (0.13, `rustls-no-provider`) + `rustls` with `ring` (the provider `kube` already
//!   uses, so no second crypto library) + `rustls-native-certs` for system roots when no CA is
//!   given: the common, well-kept HTTPS stack; TLS verification cannot be turned off, only plain
//!   HTTP allowed explicitly.
//! - `kubecloud-kube` for everything Kubernetes (server-side apply, ownership, watches, errors,
//!   retries), `k8s-openapi` types for core kinds and `serde_json` for the snapshot CRDs.

mod builder;
pub mod capabilities;
pub mod connect;
mod driver;
mod manifests;
pub mod plugin;
/// Typed models of Piraeus' `LinstorCluster` and the CSI snapshot kinds, generated from the
/// upstream CRDs (see `kubecloud-models`).
///
/// ```
/// use kubecloud_linstor::models::VolumeSnapshot;
/// let kind = <VolumeSnapshot as kube::Resource>::kind(&());
/// assert_eq!(kind, "VolumeSnapshot");
/// ```
pub mod models {
    pub use kubecloud_models::piraeus::*;
    pub use kubecloud_models::snapshot::*;
}
pub mod rest;
mod status;
pub mod translate;

pub use builder::{Linstor, LinstorBuilder, Tier};
pub use kubecloud_core::BlockStorage;
pub use manifests::TierPlans;
