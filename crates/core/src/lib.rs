//! # kubecloud-core
//!
//! The domain of a self-run cloud on Kubernetes, independent of any backend: tenants, VMs,
//! volumes, VPCs, subnets, IP reservations, security groups, services, external address pools
//! and exposures; the four traits every backend implements ([`Compute`], [`BlockStorage`],
//! [`Network`], [`LoadBalancer`]), one capability struct per trait, one [`Error`] type, and
//! watch-based [`wait`]ing.
//!
//! Every trait call names its [`Tenant`]: a backend can only see the tenant it is asked about,
//! and the facade (`kubecloud::Cloud`) hands out tenant handles that cannot name another tenant.
//!
//! ```
//! use kubecloud_core::{Tenant, VolumeSpec, ByteSize, AccessMode};
//! let acme = Tenant::new("acme")?;
//! let disk = VolumeSpec::blank("web-root", ByteSize::gib(10))
//!     .with_replicas(2)
//!     .with_access(AccessMode::ReadWriteMany);
//! disk.validate()?;
//! # Ok::<(), kubecloud_core::Error>(())
//! ```
//!
//! ## Crates chosen, and why
//! - `ipnet`: CIDR parsing and containment (well kept, serde support); range arithmetic on top
//!   of it lives in [`ipam`] because no crate offers allocation with exclusions.
//! - `thiserror`: the error enum; `async-trait`: object-safe async traits (`&dyn Compute`).
//! - `tokio` (timer only): timeouts of [`wait::until`].
//! - Sizes ([`ByteSize`]) are our own: `bytesize` rounds when it prints, and a volume size must
//!   round-trip exactly through a YAML spec.
//!
//! ## Features
//! - `conformance`: [`conformance`], the shared suite every backend runs against its own test
//!   target.

mod addr;
mod attach;
pub mod catalog;
mod compute;
mod console;
mod error;
pub mod hotplug;
mod import;
pub mod ipam;
mod loadbalancer;
mod name;
mod network;
mod nodes;
mod quota;
pub mod secret;
mod size;
mod storage;
pub mod wait;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use addr::{IpRange, MacAddress, ip_to_u128, u128_to_ip};
pub use attach::{
    Guarantees, InterfaceAttachment, NetworkSelection, VmAttachments, VolumeAttachment,
    ensure_volume_unused,
};
pub use catalog::{CatalogImage, CatalogImageSpec, DEFAULT_CATALOG_NAMESPACE, ImageSource};
pub use compute::{
    Attachment, BootDisk, CloudInit, Compute, ComputeCapabilities, Condition, InterfaceStatus,
    MAX_CLOUD_INIT_SIZE, Migration, MigrationBlocker, MigrationTarget, NetworkInterface, Placement,
    PodBinding, PowerAction, RunStrategy, Vm, VmPhase, VmResources, VmSnapshot, VmSpec, VmStatus,
};
pub use console::{ConsoleKind, ConsoleStream};
pub use error::{BoxError, Error, ResourceKind, Result};
pub use import::{
    ImportPolicy, MAX_URL_LEN, METADATA_ADDRESSES, METADATA_HOSTS, url_host, validate_import_url,
};
pub use loadbalancer::{
    AddressBlock, AddressPool, AddressPoolSpec, AddressRequest, Advertisement, BgpAdvertisement,
    BgpPeer, Exposure, ExposureSpec, ExposureState, L2Advertisement, LoadBalancer,
    LoadBalancerCapabilities,
};
pub use name::{
    Labels, MAX_NAME_LEN, QUOTE_MAX, RESERVED_LABEL_KEYS, RESERVED_LABEL_PREFIXES, Tenant,
    is_reserved_label, quote, shorten, validate_labels, validate_name, validate_user_labels,
};
pub use network::{
    Direction, ExternalIp, ExternalIpSpec, FloatingIp, FloatingIpSpec, IpReservation,
    IpReservationSpec, Network, NetworkCapabilities, Packet, PortRange, Protocol, Remote, Rule,
    RuleAction, SPECIAL_BLOCKS, SecurityGroup, SecurityGroupSpec, Service, ServicePort,
    ServiceSpec, SnatRule, SnatRuleSpec, StaticRoute, Subnet, SubnetSpec, Vpc, VpcSpec, broadcast,
    cidrs_overlap, first_host, special_block, validate_ports,
};
pub use nodes::{
    EvacuateOptions, EvacuationEvent, EvacuationReport, GuestFilesystem, GuestInfo, GuestInterface,
    GuestOs, GuestUser, NodeInfo, VmRef,
};
pub use quota::{
    Consumption, Quota, QuotaResource, Quotas, TierConsumption, TierQuota, Usage, UsageLine,
};
pub use secret::SecretString;
pub use size::ByteSize;
pub use storage::{
    AccessMode, BlockStorage, MAX_REPLICAS, MAX_VOLUME_SIZE, Replica, ReplicaState, Snapshot,
    StorageCapabilities, StoragePool, Volume, VolumeMode, VolumePhase, VolumeSource, VolumeSpec,
    VolumeStatus, validate_replicas, validate_size,
};

/// Re-exported so implementers use the same macro version.
pub use async_trait::async_trait;
/// Re-exported so implementers name the same stream type.
pub use futures::stream::BoxStream;
/// Re-exported CIDR type.
pub use ipnet::IpNet;

/// Whether `labels` carries every label of `selector` (an empty selector matches everything).
///
/// ```
/// use kubecloud_core::{Labels, labels_match};
/// let labels: Labels = [("app".to_string(), "web".to_string())].into();
/// assert!(labels_match(&Labels::new(), &labels));
/// assert!(labels_match(&labels, &labels));
/// ```
pub fn labels_match(selector: &Labels, labels: &Labels) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
