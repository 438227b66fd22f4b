//! # kubecloud-multus
//!
//! kubecloud's [`Network`](kubecloud_core::Network) on a cluster **without Kube-OVN**: the
//! cluster's own CNI (Cilium, Calico…) for pods and services, and [Multus] secondary networks
//! for VMs built from the reference CNI plugins (`bridge` with a VLAN per VPC) or `macvtap-cni`,
//! with [whereabouts] as IPAM and `MultiNetworkPolicy` ([multi-networkpolicy]) for security
//! groups.
//!
//! [Multus]: https://github.com/k8snetworkplumbingwg/multus-cni
//! [whereabouts]: https://github.com/k8snetworkplumbingwg/whereabouts
//! [multi-networkpolicy]: https://github.com/k8snetworkplumbingwg/multi-networkpolicy
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
//! use kubecloud_core::{Network, SubnetSpec, Tenant, VpcSpec};
//! let network = kubecloud_multus::Multus::builder(client).bridge("br1", 100..=199).build();
//! let acme = Tenant::new("acme")?;
//! network.create_vpc(&acme, &VpcSpec::named("main")).await?; // VLAN 100
//! let front = SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap());
//! network.create_subnet(&acme, &front).await?; // a NetworkAttachmentDefinition
//! # Ok(()) }
//! ```
//!
//! ## What it sends
//!
//! | domain | Kubernetes |
//! |---|---|
//! | VPC `v` of tenant `t` | a VLAN claim `ConfigMap` `kubecloud-vlan-<id>` in the system namespace (created, never applied, so two VPCs never get one VLAN), and `ConfigMap` `kubecloud-vpc.v` in namespace `t` naming the VLAN |
//! | subnet `s` | `NetworkAttachmentDefinition` `s` in `t`: CNI `bridge` on the configured bridge with the VPC's `vlan` (or `macvtap`, with annotation `k8s.v1.cni.cncf.io/resourceName: macvtap.network.kubevirt.io/<interface>`: macvtap-cni's device plugin hands out a macvtap device on that host interface, Multus passes it as `deviceID`), `capabilities: {mac: true}`, IPAM `whereabouts` with `range`, `gateway`, `exclude` (the gateway, the excluded ranges as CIDRs, the reserved addresses) and `network_name: t-s`, so two tenants' equal CIDRs are two pools |
//! | reservation `r` | `NetworkAttachmentDefinition` `ip.r` in `t`: the subnet's plugin with IPAM `static` (`addresses: [ip/prefix]`, the gateway); the address is added to the subnet's whereabouts `exclude`, so whereabouts never hands it out |
//! | security group `g` | `MultiNetworkPolicy` `sg.g` in `t` (`policy-for`: every subnet of the tenant) selecting pods labelled `sg.kubecloud.io/g`, `policyTypes: [Ingress, Egress]`, one allow rule per rule |
//! | service `x` | core `Service` `x` (ClusterIP) in `t` |
//! | with [`MultusBuilder::kubemacpool`] | label `mutatevirtualmachines.kubemacpool.io: allocate` on namespace `t` (field manager `kubecloud-multus-kubemacpool`) |
//!
//! ## Behaviour a user should know
//!
//! - **A VPC is an isolated layer-2 domain** (one VLAN). There is no router: subnets of a VPC
//!   share the VLAN but do not reach each other's CIDRs unless the guests route; static routes,
//!   peering and external access (EIP/FIP/SNAT) are not offered (capabilities `false`, refused
//!   with [`Error::Unsupported`](kubecloud_core::Error::Unsupported) naming `multus` and the
//!   capability). `natOutgoing` and `allow` on a subnet are refused likewise (no router to NAT
//!   or filter); a subnet is private to its VLAN by construction.
//! - **Every subnet is a Multus network**, whether `secondary` or not: the pod network is the
//!   cluster's CNI, which kubecloud does not configure. A VM interface on the pod network gets
//!   the cluster's addresses (masquerade), and no security groups (refused, naming the
//!   interface: NetworkPolicy for the pod network is not built yet: the API double serves no
//!   `networking.k8s.io`, so it could not be validated).
//! - **MACs**: without Kubemacpool, an interface without a fixed MAC gets the one KubeVirt and
//!   the CNI give it. With [`MultusBuilder::kubemacpool`] (capability `mac_pool`), the tenant's
//!   namespace opts in to Kubemacpool's VM webhook, which writes a MAC of its range into every
//!   masquerade or Multus interface of the VM when it is created or updated, unique in the
//!   cluster, kept while the VM exists (re-applies, restarts, live migration: the target pod
//!   gets the VM's MAC) and released when it is deleted ([`macpool`]). A fixed MAC is passed
//!   as asked (Kubemacpool records it; since v0.51 it accepts one another VM holds and reports
//!   the collision); two interfaces of one VM with the same MAC are refused before anything is
//!   sent (`InvalidInput` on `interfaces[i].mac`), as Kubemacpool would refuse the VM.
//! - **macvtap** ([`MultusBuilder::macvtap`]): subnet interfaces bind with
//!   [`PodBinding::Macvtap`](kubecloud_core::PodBinding::Macvtap) (KubeVirt's `macvtap`
//!   network binding plugin, which must be registered in the KubeVirt CR). KubeVirt cannot
//!   live-migrate it: the compute backend reports the blocker and refuses `migrate` with
//!   `Conflict`. macvtap-cni runs no IPAM, so the guest configures its address (a fixed IP on
//!   such an interface is refused naming `interfaces[i].fixedIp`), and its traffic passes no
//!   pod policy rules (security groups refused, `Unsupported`).
//! - **Addresses** come from whereabouts when the VM's pod starts (in the CNI plugin, lowest
//!   free offset first, `pkg/allocate/allocate.go`); the subnet's usage is the whereabouts
//!   `IPPool`'s allocations plus the reservations. A VM interface's address is not kept over
//!   live migration (the target pod gets its own whereabouts allocation): only a reservation
//!   keeps it (`addresses_kept_on_migration` says which).
//! - **Fixed addresses** are reservations: an interface whose `fixedIp` is a reservation's
//!   address attaches to the reservation's static attachment. whereabouts takes no requested
//!   address and KubeVirt passes no `ips` in the network selection, so a fixed address that is
//!   not a reservation's is refused (`InvalidInput` on `interfaces[i].fixedIp`, naming what is
//!   missing). A fixed MAC goes to KubeVirt (`macAddress`), which passes it in the network
//!   selection (`mac`, the attachments declare the `mac` capability).
//! - **Security groups** select pods, not ports: a group applies to all of a VM's subnet
//!   interfaces, so the interfaces on subnets of one VM must name the same groups
//!   (`InvalidInput` otherwise). Rules are allow-only (`drop` is refused naming the rule's
//!   `action`), ICMP cannot be matched (refused naming `protocol`); a rule's priority is kept but
//!   means nothing (allow rules do not compete). Traffic no rule allows is dropped in both
//!   directions, as Kube-OVN's groups do.
//! - **Leaked addresses**: [`Multus::leaked_addresses`] lists the whereabouts allocations of the
//!   tenant's subnets whose pod is gone, [`Multus::reclaim_leaked_addresses`] frees them (and
//!   their `OverlappingRangeIPReservation`), as whereabouts' `ip-control-loop` reconciler does
//!   (`pkg/reconciler/iploop.go`).
//! - **Deletion** is refused while in use: a VPC with subnets, a subnet with reservations or
//!   allocations, a security group named by a running pod, a reservation a VM rides (its spec
//!   names the reservation's attachment, or a pod of it still does: `Conflict` naming the VMs).
//!
//! Not built yet (issue 19): NetworkPolicy for the pod network (see above), IPv6 (whereabouts
//! supports it; not exercised here, so `ipv6` reads `false`), rendering a reservation for
//! GitOps (it needs the live subnet), and the opt-in label in GitOps output (the namespace is
//! rendered without it).

pub mod attach;
mod capabilities;
mod driver;
pub mod kinds;
pub mod macpool;
mod manifests;
pub mod plugin;
pub mod reclaim;
pub mod translate;

use std::ops::RangeInclusive;

use kubecloud_kube::{RetryPolicy, Writer};

pub use capabilities::capabilities;

/// The backend's name in errors and `Network::backend_name`.
pub const BACKEND: &str = "multus";

/// The namespace whereabouts keeps its `IPPool`s in by default (its `WHEREABOUTS_NAMESPACE`
/// default, `kube-system`).
pub const DEFAULT_WHEREABOUTS_NAMESPACE: &str = "kube-system";
/// The namespace VLAN claims are kept in by default.
pub const DEFAULT_SYSTEM_NAMESPACE: &str = "kubecloud-multus";

/// The layer-2 plugin subnets are built on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    /// The reference `bridge` plugin on a Linux bridge present on every node, each VPC a VLAN
    /// of `vlans` (`vlan` on the bridge port).
    Bridge {
        /// The node bridge's name.
        bridge: String,
        /// The VLAN ids VPCs take, lowest free first.
        vlans: RangeInclusive<u16>,
    },
    /// `macvtap-cni` on a host interface present on every node (one layer-2 domain: VPCs are
    /// not isolated from each other).
    Macvtap {
        /// The host interface (`master`).
        interface: String,
    },
}

/// The `Network` backend on Multus and whereabouts. Cheap to clone.
#[derive(Clone)]
pub struct Multus {
    client: kube::Client,
    writer: Writer,
    link: Link,
    whereabouts_namespace: String,
    system_namespace: String,
    kubemacpool: bool,
}

impl std::fmt::Debug for Multus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Multus")
            .field("link", &self.link)
            .field("whereabouts_namespace", &self.whereabouts_namespace)
            .field("kubemacpool", &self.kubemacpool)
            .finish_non_exhaustive()
    }
}

impl Multus {
    /// A builder on a Kubernetes client (default: bridge `br1`, VLANs 100 to 4094).
    pub fn builder(client: kube::Client) -> MultusBuilder {
        MultusBuilder {
            client,
            retry: RetryPolicy::default(),
            link: Link::Bridge {
                bridge: "br1".into(),
                vlans: 100..=4094,
            },
            whereabouts_namespace: DEFAULT_WHEREABOUTS_NAMESPACE.into(),
            system_namespace: DEFAULT_SYSTEM_NAMESPACE.into(),
            kubemacpool: false,
        }
    }

    /// The layer-2 plugin subnets are built on.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Whether VM MACs come from Kubemacpool ([`MultusBuilder::kubemacpool`]).
    pub fn uses_kubemacpool(&self) -> bool {
        self.kubemacpool
    }
}

/// Builds a [`Multus`].
///
/// ```no_run
/// # fn demo(client: kube::Client) {
/// let network = kubecloud_multus::Multus::builder(client)
///     .macvtap("eth1")
///     .whereabouts_namespace("whereabouts")
///     .build();
/// # }
/// ```
#[derive(Clone)]
pub struct MultusBuilder {
    client: kube::Client,
    retry: RetryPolicy,
    link: Link,
    whereabouts_namespace: String,
    system_namespace: String,
    kubemacpool: bool,
}

impl std::fmt::Debug for MultusBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultusBuilder")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl MultusBuilder {
    /// Subnets on the Linux bridge `bridge`, each VPC a VLAN of `vlans` (the default: `br1`,
    /// 100 to 4094).
    pub fn bridge(mut self, bridge: impl Into<String>, vlans: RangeInclusive<u16>) -> Self {
        self.link = Link::Bridge {
            bridge: bridge.into(),
            vlans,
        };
        self
    }

    /// Subnets on macvtap over host interface `interface` (VPCs are then not isolated).
    pub fn macvtap(mut self, interface: impl Into<String>) -> Self {
        self.link = Link::Macvtap {
            interface: interface.into(),
        };
        self
    }

    /// The namespace whereabouts keeps its `IPPool`s in (default `kube-system`).
    pub fn whereabouts_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.whereabouts_namespace = namespace.into();
        self
    }

    /// The namespace VLAN claims are kept in (default `kubecloud-multus`, created when
    /// missing).
    pub fn system_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.system_namespace = namespace.into();
        self
    }

    /// MACs from Kubemacpool: the tenant's namespace opts in to Kubemacpool's
    /// `VirtualMachine` webhook (label `mutatevirtualmachines.kubemacpool.io: allocate`, see
    /// [`macpool`]), so an interface without a fixed MAC gets one from Kubemacpool's range,
    /// unique in the cluster and kept for the VM's life (restarts and live migration).
    /// Kubemacpool must be installed with its VM webhook in opt-in or opt-out mode.
    pub fn kubemacpool(mut self) -> Self {
        self.kubemacpool = true;
        self
    }

    /// The retry policy for temporary API failures.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The backend.
    pub fn build(self) -> Multus {
        Multus {
            client: self.client,
            writer: Writer::new(BACKEND).with_retry(self.retry),
            link: self.link,
            whereabouts_namespace: self.whereabouts_namespace,
            system_namespace: self.system_namespace,
            kubemacpool: self.kubemacpool,
        }
    }
}
