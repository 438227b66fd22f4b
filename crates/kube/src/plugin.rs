//! What a Kubernetes backend tells the facade about itself, so the facade names no backend:
//! which part of the cloud it is ([`Part`]), the RBAC it needs ([`Rbac`]: every verb on every
//! resource it sends, and which of those the conformance suite does not exercise, with why),
//! and how it renders what it would send for GitOps output (the `*Manifests` traits:
//! [`ComputeManifests`], [`StorageManifests`], [`NetworkManifests`],
//! [`LoadBalancerManifests`]). The facade's `rbac::rules` combines the backends' [`Rbac`], and
//! its `gitops::Renderer` takes any `*Manifests` implementations.
//!
//! # Adding a backend
//!
//! A backend is a crate of the same shape as `crates/backend-*`, plus one feature line in the
//! root `Cargo.toml` and one line in the facade's `src/backends.rs`:
//!
//! 1. **The trait** of its part (`Compute`, `BlockStorage`, `Network` or `LoadBalancer` of
//!    `kubecloud-core`), in `driver.rs`, with `capabilities.rs` honest about what it can do
//!    (the facade refuses what a capability says it cannot, before calling it).
//!    - A network answers `attach_interfaces` with `kubecloud_core::InterfaceAttachment`s:
//!      the network selection, binding, pod annotations (and which of them it reads live, such
//!      as security groups) and what it guarantees. The compute backend applies exactly that;
//!      it never reads another system's API.
//!    - A storage backend answers `attach_volume` (claim and access) and imports through
//!      [`crate::cdi`]; which VM uses a volume is the compute backend's `volume_users`.
//! 2. **Pure translation** in `translate.rs` (domain spec to objects, golden-tested and
//!    validated against the upstream schemas), all I/O through this crate's [`crate::Writer`]
//!    (server-side apply, shared watches, retries, ownership checks).
//! 3. **`plugin.rs`** with `pub const RBAC: Rbac` (the facade's `tests/rbac.rs` checks it
//!    allows every request the conformance suite makes, and that every rule is used or listed
//!    in `not_exercised`), and the `*Manifests` trait of its part in `manifests.rs` (GitOps).
//! 4. **Doubles and conformance**: a simulated controller of its system in `crates/testkit`,
//!    written from the upstream source (cited in its module docs) and acting only through the
//!    API; the shared conformance suite (`kubecloud_core::conformance`) run against it, with a
//!    `PortProbe` when the network enforces security groups; the whole-stack tests with it.
//! 5. **Connecting**: a [`crate::connect::Connector`] (its `name` the backend's, its part) listed
//!    in the facade's `src/backends.rs`. `Cloud::connect` tries the connectors of a part in that
//!    order and takes the first that finds its system (`Ok(Err(reason))` declines, so storage is
//!    LINSTOR's where a `LinstorCluster` exists and the CSI backend's otherwise), or the one
//!    `ConnectOptions::backend` chooses. `Rbac::backend` names the backend, so
//!    `rbac::rules_for` makes the role of the backends a cloud runs.
//!
//! A worked example: the plug-in side of a load balancer on a made-up `example.io` API.
//!
//! ```
//! use kubecloud_core::{AddressPoolSpec, ExposureSpec, Result, Tenant};
//! use kubecloud_kube::plugin::{LoadBalancerManifests, Need, Part, Rbac, Unexercised, WRITE};
//! use serde_json::{Value, json};
//!
//! /// What the backend sends: pools it applies and watches, and Services it reads.
//! pub const RBAC: Rbac = Rbac {
//!     backend: "example-lb",
//!     part: Part::LoadBalancer,
//!     needs: &[
//!         Need { group: "example.io", resources: &["pools"], verbs: WRITE },
//!         Need { group: "", resources: &["services"], verbs: &["get", "list", "watch"] },
//!     ],
//!     not_exercised: &[Unexercised {
//!         group: "example.io",
//!         resource: "pools",
//!         verb: "delete",
//!         why: "the suite's pools are never deleted while used",
//!     }],
//! };
//!
//! #[derive(Debug)]
//! struct ExampleLb;
//!
//! impl LoadBalancerManifests for ExampleLb {
//!     fn pool_manifests(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<Vec<Value>> {
//!         spec.validate()?;
//!         let name = kubecloud_kube::names::cluster_scoped(tenant, &spec.name);
//!         Ok(vec![json!({"apiVersion": "example.io/v1", "kind": "Pool", "metadata": {"name": name}})])
//!     }
//!     fn exposure_manifests(&self, _: &Tenant, _: &ExposureSpec, _: &[AddressPoolSpec])
//!         -> Result<Vec<Value>> {
//!         Ok(Vec::new())
//!     }
//! }
//!
//! let pool = AddressPoolSpec::l2("public", vec![kubecloud_core::AddressBlock::Cidr("192.0.2.0/28".parse().unwrap())]);
//! let objects = ExampleLb.pool_manifests(&Tenant::new("acme")?, &pool)?;
//! assert_eq!(objects[0]["metadata"]["name"], "acme-public");
//! assert_eq!(RBAC.part, Part::LoadBalancer);
//! # Ok::<(), kubecloud_core::Error>(())
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
    /// The backend's name (its `backend_name()`), so a role can be made for the backends a
    /// cloud runs.
    pub backend: &'static str,
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
    /// How `interfaces` attach (what `Network::attach_interfaces` answers), given the tenant's
    /// declared `reservations` (an interface may take one by fixing its address), the
    /// references not checked against the cluster.
    fn interface_attachments(
        &self,
        tenant: &Tenant,
        interfaces: &[NetworkInterface],
        reservations: &[IpReservationSpec],
    ) -> Result<Vec<InterfaceAttachment>>;
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
