//! # kubecloud-cilium
//!
//! kubecloud's [`LoadBalancer`](kubecloud_core::LoadBalancer) on
//! [Cilium LB-IPAM](https://docs.cilium.io/en/stable/network/lb-ipam/): address pools a tenant
//! owns (`CiliumLoadBalancerIPPool`), announced over L2 (`CiliumL2AnnouncementPolicy`) or over
//! BGP by Cilium's BGP control plane (`CiliumBGPAdvertisement`, to peers of the cluster's BGP
//! speaker: see [`bgp`]), and VMs exposed on external addresses through Services of type
//! `LoadBalancer`.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
//! use std::time::Duration;
//! use kubecloud_core::{wait, AddressBlock, AddressPoolSpec, ExposureSpec, LoadBalancer, ServicePort, Tenant};
//! let lb = kubecloud_cilium::Cilium::builder(client).build();
//! let acme = Tenant::new("acme")?;
//! lb.create_pool(&acme, &AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())])).await?;
//! lb.expose(&acme, &ExposureSpec::new("web", [("app", "web")], vec![ServicePort::tcp(443)])).await?;
//! let web = wait::until(lb.watch_exposure(&acme, "web").await?, wait::exposure_assigned(), Duration::from_secs(30)).await?;
//! println!("web is on {:?}", web.ip);
//! # Ok(()) }
//! ```
//!
//! ## What is sent
//!
//! - **Pools**: a cluster-scoped `CiliumLoadBalancerIPPool` (`cilium.io/v2`) named
//!   [`translate::pool_object`] (`<tenant>-<pool>`) with `blocks` (`cidr`, or `start`/`stop`),
//!   `allowFirstLastIPs: "Yes"` (every address usable, as the domain pool's size says),
//!   `disabled: false` and a `serviceSelector` matching `io.kubernetes.service.namespace:
//!   <tenant>` (a label LB-IPAM adds to every Service itself, so no other namespace's Service
//!   can match) and [`translate::ADDRESS_POOL`]` = <pool>`. Whether exposures without a pool take
//!   addresses from it is the annotation [`translate::AUTO_ASSIGN`] (LB-IPAM has no such field).
//!   A pool overlapping **any** existing pool (another tenant's, or the administrator's) is
//!   refused with `Conflict` before anything is sent (LB-IPAM would mark the newer pool
//!   `cilium.io/PoolConflict` and never use it).
//! - **L2**: a `CiliumL2AnnouncementPolicy` (`cilium.io/v2alpha1`) of the same name with
//!   `loadBalancerIPs: true`, the pool's `nodeSelector` and `interfaces` (each name as an
//!   anchored regular expression, which is how Cilium reads them), selecting the tenant's
//!   Services labelled with the pool.
//! - **BGP** (see [`bgp`]): a `CiliumBGPAdvertisement` (`cilium.io/v2`) of the same name,
//!   `advertisementType: Service` with `service.addresses: [LoadBalancerIP]` (and
//!   `aggregationLengthIPv4`/`IPv6` for `aggregationLength`), `attributes.localPreference` and
//!   `attributes.communities` (`standard`, `wellKnown`, `large`), selecting the tenant's Services
//!   labelled with the pool (and `io.kubernetes.service.namespace: <tenant>`), labelled
//!   [`bgp::peer_label`]`(peer) = "true"` for each of the pool's peers, whose
//!   `CiliumBGPPeerConfig`s select it. The pool's peers must be peers of the cluster's BGP
//!   speaker, which is the administrator's: given as [`bgp::CiliumBgp`] (builder or connect
//!   options; kubecloud then writes its `CiliumBGPClusterConfig` and `CiliumBGPPeerConfig`s with
//!   the first BGP pool) or adopted as configured in the cluster. A peer unknown to the speaker,
//!   or session settings it does not have, are refused naming the field before anything is
//!   written.
//! - **Exposures**: a `Service` of type `LoadBalancer` named after the exposure in the tenant's
//!   namespace, selecting the VMs' pods, one named port per exposure port,
//!   `externalTrafficPolicy: Local` when `local_traffic_only`, the label
//!   [`translate::ADDRESS_POOL`] naming its pool, the annotations `lbipam.cilium.io/ips` (a
//!   requested address) and `lbipam.cilium.io/sharing-key`. LB-IPAM chooses pools by selector
//!   only, so the backend chooses the pool label: the named pool; for a requested address the
//!   tenant's pool holding it (none when no pool holds it: LB-IPAM then says so); for any
//!   address the tenant's first auto-assigning pool (by name) with a free address, else the
//!   first (LB-IPAM then says it ran out), kept while the Service exists; such Services carry
//!   [`translate::ADDRESS_AUTO`].
//!
//! Every object carries kubecloud's ownership labels; reads and deletes touch only objects with
//! the calling tenant's labels. Writes are server-side apply with field manager `kubecloud`,
//! sent only when they change something.
//!
//! ## What is read back
//!
//! - An exposure's address from `status.loadBalancer.ingress`, its pool from its label.
//! - **Why an address cannot be assigned**: LB-IPAM writes the Service condition
//!   `cilium.io/IPAMRequestSatisfied`; when it is `False` (for the Service's current
//!   generation), [`LoadBalancer::watch_exposure`](kubecloud_core::LoadBalancer::watch_exposure)
//!   reports [`ExposureState::Failed`](kubecloud_core::ExposureState) with `"<message>
//!   (<reason>)"`, e.g. `No pool exists with a CIDR containing '192.0.2.9' (no_pool)`, `All
//!   enabled CiliumLoadBalancerIPPools that match this service ran out of allocatable IPs
//!   (out_of_ips)`, `The IP '203.0.113.1' is already allocated to another service
//!   (already_allocated)` or `The IP '203.0.113.1' is already allocated to an incompatible
//!   service. Reason: same port (already_allocated_incompatible_service)`
//!   (`operator/pkg/lbipam/lbipam.go`), so waits end at once with the cause.
//! - Pool usage: the distinct addresses the tenant's Services hold inside the pool's blocks (only
//!   the tenant's Services can match its selector), so usage is current as soon as an address
//!   is seen or a Service is gone (LB-IPAM's `cilium.io/IPsUsed` condition is written after the
//!   Services).
//!
//! ## Semantics worth knowing
//!
//! - `delete_pool` is refused (`Conflict`) while addresses are assigned from the pool; it deletes
//!   the announcement policy or BGP advertisement, then the pool (the cluster's BGP speaker
//!   stays). `update_pool` may switch a pool between L2 and BGP: the new announcement is written,
//!   then the old one deleted.
//! - With no pool at all in the cluster LB-IPAM is dormant and says nothing: an exposure then
//!   stays `Pending`.
//! - Not offered: BFD, and BGP session settings per pool (password, timers, port, multihop:
//!   the speaker's; see [`bgp`]); `avoidBuggyIps` (refused naming the field:
//!   `allowFirstLastIPs` reserves a CIDR's first and last address, not `.0`/`.255`); pools of
//!   the cluster administrator (not listed).
//!
//! ## Crates chosen, and why
//! - `kube` / `k8s-openapi` through `kubecloud-kube` (server-side apply, ownership, retries,
//!   shared watches, error mapping); the Cilium kinds as typed models from `kubecloud-models`
//!   (generated from the upstream CRDs by kopium).
//! - `futures` for the exposure watch stream.

pub mod bgp;
pub mod capabilities;
mod driver;
mod manifests;
pub mod plugin;
/// Typed models of the Cilium kinds, generated from the upstream CRDs (see
/// `kubecloud-models`).
///
/// ```
/// use kubecloud_cilium::models::{CiliumLoadBalancerIpPool, load_balancer_ip_pool::CiliumLoadBalancerIpPoolSpec};
/// let pool = CiliumLoadBalancerIpPool::new("public", CiliumLoadBalancerIpPoolSpec::default());
/// assert!(pool.spec.blocks.is_none());
/// ```
pub mod models {
    pub use kubecloud_models::cilium::*;
}
pub mod translate;

use kubecloud_kube::Writer;

pub use capabilities::CAPABILITIES;

/// The backend's name, in errors.
pub const BACKEND: &str = "cilium";

/// The load balancer on Cilium LB-IPAM. Build one with [`Cilium::builder`]. Cheap to clone.
#[derive(Clone)]
pub struct Cilium {
    client: kube::Client,
    writer: Writer,
    bgp: Option<bgp::CiliumBgp>,
}

impl std::fmt::Debug for Cilium {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cilium")
            .field("retry", &self.writer.retry())
            .finish_non_exhaustive()
    }
}

impl Cilium {
    /// A builder on `client`.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) {
    /// let lb = kubecloud_cilium::Cilium::builder(client).build();
    /// assert!(kubecloud_core::LoadBalancer::capabilities(&lb).l2);
    /// # }
    /// ```
    pub fn builder(client: kube::Client) -> CiliumBuilder {
        CiliumBuilder {
            client,
            retry: kubecloud_kube::RetryPolicy::default(),
            bgp: None,
        }
    }
}

/// Builds a [`Cilium`].
#[derive(Clone)]
pub struct CiliumBuilder {
    client: kube::Client,
    retry: kubecloud_kube::RetryPolicy,
    bgp: Option<bgp::CiliumBgp>,
}

impl std::fmt::Debug for CiliumBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CiliumBuilder").finish_non_exhaustive()
    }
}

impl CiliumBuilder {
    /// How temporary API failures are retried (see [`kubecloud_kube::RetryPolicy`]).
    pub fn retry(mut self, retry: kubecloud_kube::RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The cluster's BGP speaker (an administrator's setting, see [`bgp`]): kubecloud writes
    /// its `CiliumBGPClusterConfig` and `CiliumBGPPeerConfig`s with the first BGP pool. Without
    /// it, BGP pools use the speaker already configured in the cluster.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) {
    /// use kubecloud_cilium::bgp::{CiliumBgp, CiliumBgpPeer};
    /// let bgp = CiliumBgp::new(64512).peer(CiliumBgpPeer::new("tor", "192.0.2.1".parse().unwrap(), 64513));
    /// let lb = kubecloud_cilium::Cilium::builder(client).bgp(bgp).build();
    /// # }
    /// ```
    pub fn bgp(mut self, bgp: bgp::CiliumBgp) -> Self {
        self.bgp = Some(bgp);
        self
    }

    /// The load balancer.
    pub fn build(self) -> Cilium {
        Cilium {
            client: self.client,
            writer: Writer::new(BACKEND).with_retry(self.retry),
            bgp: self.bgp,
        }
    }
}
