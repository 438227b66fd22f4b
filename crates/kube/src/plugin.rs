//! What a Kubernetes backend tells the facade about itself, so the facade names no backend:
//! which part of the cloud it is ([`Part`]) and the RBAC it needs ([`Rbac`]: every verb on every
//! resource it sends, and which of those the conformance suite does not exercise, with why).
//!
//! Each backend crate exports its [`Rbac`] as `plugin::RBAC`; the facade's `rbac::rules`
//! combines those of the parts asked for into one ClusterRole. For GitOps output, a backend
//! renders what it would send through the `*Manifests` traits ([`ComputeManifests`],
//! [`StorageManifests`], [`NetworkManifests`], [`LoadBalancerManifests`]), which the facade's
//! `gitops::Renderer` takes.
//!
//! ```
//! use kubecloud_kube::plugin::{Need, Part, Rbac};
//! const RBAC: Rbac = Rbac {
//!     part: Part::LoadBalancer,
//!     needs: &[Need { group: "example.io", resources: &["pools"], verbs: &["get", "patch"] }],
//!     not_exercised: &[],
//! };
//! assert!(RBAC.needs[0].verbs.contains(&"patch"));
//! ```

use kubecloud_core::{
    AddressPoolSpec, Error, ExposureSpec, InterfaceAttachment, IpReservationSpec, NetworkInterface,
    Result, SecurityGroupSpec, ServiceSpec, SubnetSpec, Tenant, VmAttachments, VmSpec,
    VolumeAttachment, VolumeSpec, VpcSpec,
};
use serde_json::Value;

/// A part of the cloud: which trait a backend implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Virtual machines ([`kubecloud_core::Compute`]).
    Compute,
    /// Block storage ([`kubecloud_core::BlockStorage`]).
    Storage,
    /// Networks ([`kubecloud_core::Network`]).
    Network,
    /// External addresses ([`kubecloud_core::LoadBalancer`]).
    LoadBalancer,
}

impl Part {
    /// Every part, in a stable order.
    pub const ALL: [Part; 4] = [
        Part::Compute,
        Part::Storage,
        Part::Network,
        Part::LoadBalancer,
    ];

    /// The part's name (`compute`, `storage`, `network`, `load_balancer`).
    ///
    /// ```
    /// assert_eq!(kubecloud_kube::plugin::Part::LoadBalancer.name(), "load_balancer");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Part::Compute => "compute",
            Part::Storage => "storage",
            Part::Network => "network",
            Part::LoadBalancer => "load_balancer",
        }
    }
}

impl std::str::FromStr for Part {
    type Err = Error;

    /// A part by its name (`load-balancer` is accepted too); anything else is
    /// [`Error::InvalidInput`] on field `part`.
    fn from_str(s: &str) -> Result<Self> {
        Part::ALL
            .into_iter()
            .find(|p| p.name() == s || (s == "load-balancer" && *p == Part::LoadBalancer))
            .ok_or_else(|| {
                Error::invalid(
                    "part",
                    format!("{s:?} is not one of compute, storage, network, load_balancer"),
                )
            })
    }
}

/// Verbs a backend sends on resources of one API group (`""` for the core group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Need {
    /// The API group.
    pub group: &'static str,
    /// The resources (`resource/subresource` for a subresource).
    pub resources: &'static [&'static str],
    /// The RBAC verbs.
    pub verbs: &'static [&'static str],
}

/// An access a backend needs that the conformance suite does not exercise, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unexercised {
    /// The API group.
    pub group: &'static str,
    /// The resource.
    pub resource: &'static str,
    /// The verb.
    pub verb: &'static str,
    /// Why the suite does not send it.
    pub why: &'static str,
}

/// A backend's RBAC: what it sends, for which part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rbac {
    /// The part the backend is.
    pub part: Part,
    /// Everything it sends (server-side apply is a `patch`, and a `create` when it creates;
    /// `get_opt` a `get`; waits a `list` then a `watch`).
    pub needs: &'static [Need],
    /// The accesses among those the conformance suite does not exercise.
    pub not_exercised: &'static [Unexercised],
}

/// Read verbs.
pub const READ: &[&str] = &["get", "list", "watch"];
/// Read and write verbs (everything server-side apply, waits and deletion send).
pub const WRITE: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// A compute backend rendering, instead of sending, the objects applying a VM sends (GitOps).
pub trait ComputeManifests: Send + Sync + std::fmt::Debug {
    /// The objects applying `spec`, attached as `attachments` say, would send.
    fn vm_manifests(
        &self,
        tenant: &Tenant,
        spec: &VmSpec,
        attachments: &VmAttachments,
    ) -> Result<Vec<Value>>;
}

/// A network backend rendering its objects instead of sending them (GitOps).
pub trait NetworkManifests: Send + Sync + std::fmt::Debug {
    /// The objects creating VPC `spec` would send.
    fn vpc_manifests(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vec<Value>>;
    /// The objects creating subnet `spec` would send.
    fn subnet_manifests(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Vec<Value>>;
    /// The objects creating security group `spec` would send.
    fn security_group_manifests(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<Vec<Value>>;
    /// The objects reserving `spec` would send.
    fn ip_reservation_manifests(
        &self,
        tenant: &Tenant,
        spec: &IpReservationSpec,
    ) -> Result<Vec<Value>>;
    /// The objects creating service `spec` would send.
    fn service_manifests(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Vec<Value>>;
    /// How `interfaces` attach (what `Network::attach_interfaces` answers), the references not
    /// checked against the cluster.
    fn interface_attachments(
        &self,
        tenant: &Tenant,
        interfaces: &[NetworkInterface],
    ) -> Vec<InterfaceAttachment>;
}

/// A storage backend rendering volumes instead of creating them (GitOps).
#[kubecloud_core::async_trait]
pub trait StorageManifests: Send + Sync + std::fmt::Debug {
    /// Reads from the storage system what rendering `volumes` needs (each thing once; nothing
    /// is written), and gives what renders them. Errors name the volume's field
    /// (`volumes[i].tier`).
    async fn volume_renderer(&self, volumes: &[VolumeSpec]) -> Result<Box<dyn VolumeManifests>>;
}

/// Renders volumes (from [`StorageManifests::volume_renderer`]).
pub trait VolumeManifests: Send + Sync {
    /// The objects creating `spec` would send.
    fn volume_manifests(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Vec<Value>>;
    /// How a VM mounts the volume of `spec` (what `BlockStorage::attach_volume` answers).
    fn volume_attachment(&self, spec: &VolumeSpec) -> VolumeAttachment;
}

/// A load-balancer backend rendering its objects instead of sending them (GitOps).
pub trait LoadBalancerManifests: Send + Sync + std::fmt::Debug {
    /// The objects creating address pool `spec` would send.
    fn pool_manifests(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<Vec<Value>>;
    /// The objects exposing `spec` would send, the tenant's own pools being `tenant_pools`.
    fn exposure_manifests(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        tenant_pools: &[AddressPoolSpec],
    ) -> Result<Vec<Value>>;
}
