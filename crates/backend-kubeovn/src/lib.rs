//! # kubecloud-kubeovn
//!
//! kubecloud's [`Network`](kubecloud_core::Network) on [Kube-OVN](https://kubeovn.github.io/docs/)
//! with [Multus](https://github.com/k8snetworkplumbingwg/multus-cni) for secondary interfaces.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
//! use kubecloud_core::{Network, SubnetSpec, Tenant, VpcSpec};
//! let network = kubecloud_kubeovn::KubeOvn::builder(client).build();
//! let acme = Tenant::new("acme")?;
//! network.create_vpc(&acme, &VpcSpec::named("main")).await?;
//! let front = SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap());
//! let subnet = network.create_subnet(&acme, &front).await?;
//! assert!(subnet.ready);
//! # Ok(()) }
//! ```
//!
//! ## What it sends
//!
//! | domain | Kubernetes |
//! |---|---|
//! | VPC `v` of tenant `t` | `Vpc` `t-v` (`kubeovn.io/v1`, cluster-scoped) with `namespaces: [t]`, `staticRoutes` (`policyDst`), `vpcPeerings` |
//! | subnet `s` | `Subnet` `t-s` with `vpc`, `cidrBlock`, `gateway`, `excludeIps` (`a..b`), `protocol`, `private`, `allowSubnets`, `natOutgoing`; a primary subnet binds `namespaces: [t]` |
//! | secondary subnet `s` | the same `Subnet` with `provider: s.t.ovn`, and a Multus `NetworkAttachmentDefinition` `s` in namespace `t` whose CNI config is `{"type": "kube-ovn", "server_socket": "/run/openvswitch/kube-ovn-daemon.sock", "provider": "s.t.ovn"}` |
//! | reservation `r` | `Vip` `t-r` with `subnet: t-s`, `namespace: t`; a fixed address in `v4ip`/`v6ip`, a fixed MAC in `macAddress`; kube-ovn-controller fills in what is not fixed (spec and status) and labels it with the port that takes it |
//! | security group `g` | `SecurityGroup` `t-g` with `ingressRules`/`egressRules` (`ipVersion`, `protocol`, `portRangeMin/Max`, `remoteType` address or securityGroup, `priority`, `policy` allow/drop) |
//! | service `x` | core `Service` `x` (ClusterIP) in namespace `t`; DNS `x.t.svc.cluster.local` |
//! | external IP `e` | `OvnEip` `t-e` with `externalSubnet`, `type: nat`, a requested address in `v4Ip`/`v6Ip` |
//! | floating IP `f` | `OvnFip` `t-f` with `ovnEip: t-e`, `ipName` = the reservation's `Vip`, `ipType: vip` |
//! | SNAT rule `s` | `OvnSnatRule` `t-s` with `ovnEip: t-e`, `vpcSubnet: t-n` |
//!
//! Names come from [`kubecloud_kube::names`]. Every object carries
//! [`kubecloud_kube::ownership_labels`]; every read and write of a cluster-scoped object checks
//! them with [`kubecloud_kube::ensure_owned`], so another tenant's object reads as not found.
//! All writes are server-side applies through [`kubecloud_kube::Writer`] (field manager
//! `kubecloud`); an unchanged attachment is not re-sent.
//!
//! ## Behaviour a Kube-OVN user should know
//!
//! - **Checked before anything is sent**: the spec ([`InvalidInput`](kubecloud_core::Error::InvalidInput)
//!   naming the field), a CIDR overlapping another subnet of the VPC (`Conflict` naming it; the
//!   VPC's subnets are listed first), a fixed address that is outside the subnet, excluded or the
//!   gateway (`InvalidInput` on `ip`), an address or MAC already held in the subnet (`Conflict`),
//!   a full subnet (`Exhausted`), SCTP in a security-group rule (Kube-OVN cannot match it).
//! - **Waiting** is on watches only: `create_vpc` and `create_subnet` return once Kube-OVN reports
//!   them ready (the subnet with its address counts); `reserve_ip` once kube-ovn-controller has
//!   written the address and MAC into the `Vip`'s status; `release_ip` once the `Vip` is gone
//!   (Kube-OVN holds it with a finalizer until the address is free). The bound is
//!   [`KubeOvnBuilder::ready_timeout`]. A reservation that times out is deleted again.
//!   Inside [`kubecloud_core::wait::send_only`] (an apply with `wait: false`) `create_vpc` and
//!   `create_subnet` return once sent, not ready (Kube-OVN requeues a subnet whose VPC it has
//!   not set up yet, `pkg/controller/subnet.go`, and a VM's pod waits for its subnet);
//!   `reserve_ip` still waits, because what it returns, the address and MAC Kube-OVN chose, is
//!   what the VM using the reservation is pinned to; `release_ip` and `delete_subnet` still
//!   wait until gone. [`KEPT_WAITS`] lists every wait kept, and a tenant's plan reports them.
//! - **Usage** (`available`, `used`) is the subnet's `status.v4availableIPs`/`v4usingIPs`
//!   (`v6…` for IPv6), so it counts every address Kube-OVN handed out, pods and unbound
//!   reservations included. Kube-OVN writes the counts from a queue after the address changed:
//!   right after a reservation or a release they may still be the old ones (wait on
//!   `watch_subnet`).
//! - **VM interfaces** are attached by [`attach`]: the answer to `attach_interfaces` puts
//!   `ovn.kubernetes.io/ip_address`, `mac_address` and `logical_switch` (and the
//!   `<nad>.<ns>.ovn.kubernetes.io/…` forms for secondary attachments) on the VM's pod, with the
//!   interface's security groups and port security, which the compute backend applies. Kube-OVN keys a VM's `IP` by the VM
//!   (`<vm>.<ns>`), so the address and MAC survive live migration.
//! - **Reservations are `Vip`s**, Kube-OVN's object for an address held ahead of any pod (an
//!   `IP` object is only ever handled for the pod whose port it is named after, `<pod>.<ns>`:
//!   `pkg/controller/ip.go`). An interface fixing a reservation's address takes its `Vip`
//!   (`ovn.kubernetes.io/vip`, see [`attach`]); Kube-OVN labels the `Vip` with the VM's port,
//!   so its owner reads as the VM's name, the next pod of the VM reuses it, and Kube-OVN unbinds
//!   it when the VM goes. Kube-OVN gives a `Vip`'s address to every Kube-OVN interface of the
//!   pod, so a VM taking a reservation must have no other interface (`InvalidInput`), and a
//!   reservation another existing VM took is `Conflict`, both before anything is sent.
//!   Releasing a reservation is refused while the VM that took it exists.
//! - **Leaked IPs**: [`KubeOvn::reclaim_orphaned_ips`] deletes the `IP` objects Kube-OVN made for
//!   the tenant's pods and VMs in the tenant's subnets whose pod or VM is gone.
//!   [`KubeOvn::orphaned_ips`] only lists them.
//! - **Deletion** goes in dependency order and is refused while in use, as Kube-OVN would leave
//!   things dangling: a VPC with subnets, a subnet with a reservation or a pod's or VM's `IP`, a
//!   security group named by a running pod (`ovn.kubernetes.io/security_groups`). A secondary
//!   subnet's attachment goes before the subnet.
//! - **Round trips**: a subnet's gateway reads back as `None` when it is the first host; a rule
//!   "from anywhere" is sent as an IPv4 and an IPv6 rule and read back as one; tcp/udp rules
//!   without ports are sent as 1-65535 and read back without ports; a rule naming another group
//!   is IPv4 (Kube-OVN matches a group per IP family).
//! - **VPC peering** needs both VPCs to list each other (as in Kube-OVN); each side's
//!   `localConnectIP` is derived from the pair of names (a /30 in 169.254.0.0/16), so both ends
//!   agree without coordination.
//! - **Cluster-scoped names** are `tenant-name` (shortened with a hash when too long). Two
//!   tenants whose names concatenate alike (`a` + `b-c`, `a-b` + `c`) would meet on one name;
//!   the second gets `Conflict` and nothing of the first is touched.
//! - **External access** (capability `external_access`) uses Kube-OVN's OVN-native NAT objects,
//!   so the deployment needs the OVN external network (`enable-eip-snat` and its `Subnet`,
//!   [`KubeOvnBuilder::external_subnet`], default `ovn-vpc-external-network`). An external IP is
//!   an `OvnEip` (`type: nat`); `create_external_ip` returns once Kube-OVN wrote its address
//!   (`status.v4Ip`/`v6Ip`, `ready`). A requested address outside the external subnet's CIDR
//!   (when that `Subnet` is readable) is `InvalidInput` on `ip`, one held by any `OvnEip` is
//!   `Conflict`, both before anything is sent. A floating IP is an `OvnFip` binding the EIP to
//!   the reservation's `Vip` (`ipName`, `ipType: vip`), one-to-one; a SNAT rule an `OvnSnatRule` with
//!   `vpcSubnet`; both wait for `status.ready`. An external IP used by a floating IP or SNAT rule
//!   is not deleted (`Conflict`). Anything that does not become ready in time is deleted again.
//!
//! ## Crates chosen, and why
//! - `kube` through `kubecloud-kube`, the one shared Kubernetes layer: SSA, ownership checks,
//!   watch-based waits, error mapping and retries all come from there.
//! - [`models`] (`kubecloud-models`, generated from the upstream CRDs) and `k8s-openapi`: every
//!   object is **read** typed (`Api<Vpc>`, `Api<Subnet>`, `Api<Service>`, …), so a field of the
//!   wrong type is a decode error naming the kind, the object and the field, and a value the
//!   backend cannot use (an address that is not one, a count that is not a whole number) is a
//!   permanent error naming the field, never a default.
//! - `serde_json`: the objects are **built** as JSON in [`translate`] and [`external`] (pure,
//!   golden-tested; the GitOps output renders them as they are) and sent through
//!   `DynamicObject`; the answer of each write is read back as its model.
//! - `ipnet` and `kubecloud_core::ipam`: CIDRs and the address arithmetic Kube-OVN's IPAM does.

pub mod addresses;
pub mod attach;
mod capabilities;
mod driver;
pub mod external;
pub mod kinds;
/// Typed models of the Kube-OVN kinds (and Multus' `NetworkAttachmentDefinition`), generated
/// from the upstream CRDs (see `kubecloud-models`).
///
/// ```
/// use kubecloud_kubeovn::models::{Vip, vip::VipSpec};
/// let vip = Vip::new("acme-db", VipSpec { subnet: Some("acme-front".into()), ..Default::default() });
/// assert_eq!(vip.spec.subnet.as_deref(), Some("acme-front"));
/// ```
pub mod models {
    pub use kubecloud_models::kubeovn::*;
    pub use kubecloud_models::multus::NetworkAttachmentDefinition;
}
mod manifests;
pub mod plugin;
pub mod translate;

use std::time::Duration;

use kubecloud_kube::{RetryPolicy, Writer};

pub use capabilities::capabilities;

/// The backend's name in errors and `Network::backend_name`.
pub const BACKEND: &str = "kube-ovn";

/// The `Network` backend on Kube-OVN and Multus. Cheap to clone.
#[derive(Clone)]
pub struct KubeOvn {
    client: kube::Client,
    writer: Writer,
    ready_timeout: Duration,
    external_subnet: String,
    capabilities: kubecloud_core::NetworkCapabilities,
    primary_binding: kubecloud_core::PodBinding,
}

impl std::fmt::Debug for KubeOvn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeOvn")
            .field("ready_timeout", &self.ready_timeout)
            .field("external_subnet", &self.external_subnet)
            .finish_non_exhaustive()
    }
}

impl KubeOvn {
    /// A builder on a Kubernetes client.
    pub fn builder(client: kube::Client) -> KubeOvnBuilder {
        KubeOvnBuilder {
            client,
            retry: RetryPolicy::default(),
            ready_timeout: Duration::from_secs(60),
            external_subnet: kinds::DEFAULT_EXTERNAL_SUBNET.to_string(),
            capabilities: capabilities(),
            primary_binding: kubecloud_core::PodBinding::Bridge,
        }
    }
}

/// Builds a [`KubeOvn`].
///
/// ```no_run
/// # fn demo(client: kube::Client) {
/// use std::time::Duration;
/// let network = kubecloud_kubeovn::KubeOvn::builder(client)
///     .ready_timeout(Duration::from_secs(30))
///     .build();
/// # }
/// ```
#[derive(Clone)]
pub struct KubeOvnBuilder {
    client: kube::Client,
    retry: RetryPolicy,
    ready_timeout: Duration,
    external_subnet: String,
    capabilities: kubecloud_core::NetworkCapabilities,
    primary_binding: kubecloud_core::PodBinding,
}

impl std::fmt::Debug for KubeOvnBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeOvnBuilder")
            .field("retry", &self.retry)
            .field("ready_timeout", &self.ready_timeout)
            .field("external_subnet", &self.external_subnet)
            .finish_non_exhaustive()
    }
}

impl KubeOvnBuilder {
    /// How long to wait for Kube-OVN to report a VPC or subnet ready, allocate a reservation or
    /// free a released one (default 60 s); a deletion that waits for several objects (a subnet
    /// whose leaked addresses are reclaimed) waits this long for all of them together. The
    /// deadline of an operation the wait is part of (a tenant's `destroy`) ends it earlier if it
    /// comes first.
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// The retry policy for temporary API failures (default: [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The Kube-OVN `Subnet` of the OVN external network external IPs (`OvnEip`) come from
    /// (default [`kinds::DEFAULT_EXTERNAL_SUBNET`], `ovn-vpc-external-network`).
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) {
    /// let network = kubecloud_kubeovn::KubeOvn::builder(client)
    ///     .external_subnet("external204")
    ///     .build();
    /// # }
    /// ```
    pub fn external_subnet(mut self, subnet: impl Into<String>) -> Self {
        self.external_subnet = subnet.into();
        self
    }

    /// Whether secondary subnets (Multus `NetworkAttachmentDefinition`s of type `kube-ovn`) are
    /// offered (default on). Turn off on a cluster without Multus (`k8s.cni.cncf.io`): the
    /// capability then reads `false` and a secondary subnet is refused before anything is sent.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) {
    /// let network = kubecloud_kubeovn::KubeOvn::builder(client).secondary_subnets(false).build();
    /// assert!(!kubecloud_core::Network::capabilities(&network).secondary_subnets);
    /// # }
    /// ```
    pub fn secondary_subnets(mut self, offered: bool) -> Self {
        self.capabilities.secondary_subnets = offered;
        self
    }

    /// How a VM's first subnet interface, placed on the pod network, is bound (default
    /// [`PodBinding::Bridge`](kubecloud_core::PodBinding::Bridge): the VM has the pod's address,
    /// which Kube-OVN keeps over live migration).
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) {
    /// use kubecloud_core::PodBinding;
    /// let network = kubecloud_kubeovn::KubeOvn::builder(client)
    ///     .primary_subnet_binding(PodBinding::Masquerade)
    ///     .build();
    /// # }
    /// ```
    pub fn primary_subnet_binding(mut self, binding: kubecloud_core::PodBinding) -> Self {
        self.primary_binding = binding;
        self
    }

    /// The backend.
    pub fn build(self) -> KubeOvn {
        KubeOvn {
            client: self.client,
            writer: Writer::new(BACKEND).with_retry(self.retry),
            ready_timeout: self.ready_timeout,
            external_subnet: self.external_subnet,
            capabilities: self.capabilities,
            primary_binding: self.primary_binding,
        }
    }
}

/// The waits this backend keeps inside [`kubecloud_core::wait::send_only`] (an apply with
/// `wait: false`): each is what a later step cannot be sent without.
///
/// ```
/// use kubecloud_core::ResourceKind;
/// let kept = kubecloud_kubeovn::KEPT_WAITS;
/// assert!(kept.iter().any(|w| w.applies_to(ResourceKind::IpReservation, false)));
/// // VPCs and subnets are sent without waiting for Kube-OVN to report them ready.
/// assert!(!kept.iter().any(|w| w.applies_to(ResourceKind::Subnet, false)));
/// ```
pub const KEPT_WAITS: &[kubecloud_core::wait::KeptWait] = &[
    kubecloud_core::wait::KeptWait::creating(
        kubecloud_core::ResourceKind::IpReservation,
        "Kube-OVN has written the reservation's address and MAC into its Vip",
        "the VMs that fix the reservation's address are pinned to that address and MAC",
    ),
    kubecloud_core::wait::KeptWait::deleting(
        kubecloud_core::ResourceKind::IpReservation,
        "the reservation's Vip is gone (Kube-OVN keeps it until the address is free)",
        "a later step may reserve or fix the same address",
    ),
    kubecloud_core::wait::KeptWait::deleting(
        kubecloud_core::ResourceKind::Subnet,
        "every address of the subnet is freed and the subnet is gone",
        "a later step may create a subnet with the same name or CIDR, or delete its VPC",
    ),
];
