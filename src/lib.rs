//! # kubecloud
//!
//! One typed, async Rust API for running your own cloud on Kubernetes: virtual machines on
//! KubeVirt + CDI, replicated block storage on LINSTOR, tenant networks on Kube-OVN + Multus and
//! external addresses on MetalLB, or all of it in memory for quickstarts and tests.
//!
//! A [`Cloud`] composes one backend per trait ([`Compute`], [`BlockStorage`], [`Network`],
//! [`LoadBalancer`]). Everything goes through a [`TenantHandle`], which validates input and
//! checks the backend's capabilities *before* anything is sent, and which cannot name another
//! tenant's resources.
//!
//! ```
//! use kubecloud::{Cloud, VolumeSpec, ByteSize, AccessMode};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kubecloud::Result<()> {
//! let cloud = Cloud::in_memory();
//! let acme = cloud.tenant("acme")?;
//! let volume = acme
//!     .volumes()
//!     .create(&VolumeSpec::blank("data", ByteSize::gib(10)).with_replicas(2).with_access(AccessMode::ReadWriteMany))
//!     .await?;
//! assert_eq!(volume.spec.replicas, 2);
//! // Bad input is refused before anything is sent, naming the field.
//! let err = acme.volumes().create(&VolumeSpec::blank("Bad Name", ByteSize::gib(1))).await.unwrap_err();
//! assert_eq!(err.invalid_field(), Some("name"));
//! # Ok(()) }
//! ```
//!
//! ## Features
//! - `memory` (default): [`Cloud::in_memory`], the embedded in-memory cloud (`kubecloud-memory`).
//! - `kubevirt`, `linstor`, `kubeovn`, `metallb` (or all four: `kubernetes`): the backends for
//!   the real stack, re-exported as `kubecloud::kubevirt` and so on; with all four,
//!   `kubecloud::gitops` renders a tenant as manifests for Flux or Argo CD instead of applying it.
//! - `cilium`: load balancing on Cilium LB-IPAM instead of (or besides) MetalLB, re-exported as
//!   `kubecloud::cilium`; `Cloud::connect` takes it where MetalLB is not installed, or when
//!   `ConnectOptions::backend(Part::LoadBalancer, "cilium")` chooses it.
//! - `kubevip`: load balancing on kube-vip with kube-vip-cloud-provider, re-exported as
//!   `kubecloud::kubevip`; `Cloud::connect` takes it where neither MetalLB nor Cilium is
//!   installed, or when `ConnectOptions::backend(Part::LoadBalancer, "kubevip")` chooses it.
//! - `kubernetes` also brings `Cloud::connect` (a real cluster: one discovery round, LINSTOR
//!   found through Piraeus, each backend built with what is installed; see `kubecloud::connect`)
//!   and `kubecloud::rbac` (the ClusterRole the chosen parts need).
//! - `multus` (with `kubernetes`): networks without Kube-OVN (`kubecloud::multus`): Multus
//!   secondary networks, whereabouts IPAM, MultiNetworkPolicy; `Cloud::connect` picks it where
//!   Multus and whereabouts are served and Kube-OVN is not.
//!
//! ## Crates
//! `kubecloud-core` (re-exported here whole) holds the domain, the traits and the conformance
//! suite; each backend is its own crate, turned on here with a cargo feature. Of the crates this
//! one uses directly: `futures` (joining the backends' reads), `serde`/`serde_json` (specs and
//! field-by-field plan differences), `foldhash` (the hash maps of whole-spec validation, where
//! std's SipHash showed in profiles of a 10,000-object plan).

mod absent;
#[cfg(feature = "kubernetes")]
mod backends;
mod cloud;
/// Connecting to a real cluster (feature `kubernetes`).
#[cfg(feature = "kubernetes")]
pub mod connect;
mod declarative;
#[cfg(feature = "kubernetes")]
pub mod gitops;
mod image_catalog;
mod import;
mod load_balancer;
mod network;
mod nodes;
mod quota;
/// The RBAC rules the backends need (feature `kubernetes`).
#[cfg(feature = "kubernetes")]
pub mod rbac;
pub mod reserved;
mod tenant;
mod vm_hotplug;
mod vms;
mod volumes;

pub use absent::Absent;
pub use cloud::{Capabilities, Cloud, CloudBuilder};
#[cfg(feature = "kubernetes")]
pub use connect::{ConnectOptions, Part};
pub use declarative::{
    Action, ApplyEvent, ApplyOptions, ApplyReport, FieldChange, Plan, Progress, Step, TenantSpec,
};
pub use image_catalog::ImageCatalog;
pub use kubecloud_core::*;
pub use load_balancer::TenantLoadBalancer;
pub use network::TenantNetwork;
pub use nodes::Nodes;
pub use reserved::ReservedNamespaces;
pub use tenant::TenantHandle;
pub use vms::TenantVms;
pub use volumes::TenantVolumes;

#[cfg(feature = "memory")]
pub use kubecloud_memory::MemoryCloud;

/// Tenant quotas kept in each tenant's `ResourceQuota` (feature `kubernetes`; `Cloud::connect`
/// uses it).
#[cfg(feature = "kubernetes")]
pub use kubecloud_kube::quota::KubeQuotas;

/// Load balancing on Cilium LB-IPAM (feature `cilium`).
#[cfg(feature = "cilium")]
pub use kubecloud_cilium as cilium;
/// Block storage on any CSI driver, through Kubernetes alone (feature `csi`).
#[cfg(feature = "csi")]
pub use kubecloud_csi as csi;
/// Networking on Kube-OVN + Multus (feature `kubeovn`).
#[cfg(feature = "kubeovn")]
pub use kubecloud_kubeovn as kubeovn;
/// Load balancing on kube-vip with kube-vip-cloud-provider (feature `kubevip`).
#[cfg(feature = "kubevip")]
pub use kubecloud_kubevip as kubevip;
/// Compute on KubeVirt + CDI (feature `kubevirt`).
#[cfg(feature = "kubevirt")]
pub use kubecloud_kubevirt as kubevirt;
/// Block storage on LINSTOR (feature `linstor`).
#[cfg(feature = "linstor")]
pub use kubecloud_linstor as linstor;
/// Load balancing on MetalLB (feature `metallb`).
#[cfg(feature = "metallb")]
pub use kubecloud_metallb as metallb;
/// Networking without Kube-OVN: Multus secondary networks, whereabouts IPAM and
/// MultiNetworkPolicy (feature `multus`).
#[cfg(feature = "multus")]
pub use kubecloud_multus as multus;

/// Typed models of every upstream kind the Kubernetes backends send and read, generated from
/// the upstream CRDs (`kubecloud-models`); each backend re-exports its own as `models`
/// (e.g. `kubecloud::kubevirt::models::VirtualMachine`).
#[cfg(feature = "kubernetes")]
pub use kubecloud_models as models;

/// The README's code, compiled as a doctest so it cannot rot.
#[cfg(all(doctest, feature = "memory"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
