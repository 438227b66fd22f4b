//! # kubecloud-metallb
//!
//! kubecloud's [`LoadBalancer`](kubecloud_core::LoadBalancer) on [MetalLB](https://metallb.io):
//! address pools a tenant owns, announced over L2 (ARP/NDP) or BGP, and VMs exposed on external
//! addresses through Services of type `LoadBalancer`.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
//! use std::time::Duration;
//! use kubecloud_core::{wait, AddressBlock, AddressPoolSpec, ExposureSpec, LoadBalancer, ServicePort, Tenant};
//! let lb = kubecloud_metallb::MetalLb::builder(client).namespace("metallb-system").build();
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
//! - **Pools**: an `IPAddressPool` (`metallb.io/v1beta1`) in MetalLB's namespace, named
//!   [`translate::pool_object`] (`<tenant>-<pool>`), with `addresses` (CIDRs and `a-b` ranges),
//!   `autoAssign`, `avoidBuggyIPs` and `serviceAllocation.namespaces: [<tenant>]`: the pool is
//!   dedicated to the tenant's namespace, so no other tenant's Service ever gets its addresses.
//!   A pool overlapping **any** existing `IPAddressPool` (another tenant's, or one the cluster
//!   administrator made) is refused with `Conflict` before anything is sent.
//! - **L2**: an `L2Advertisement` of the same name selecting the pool (`ipAddressPools`), with
//!   `nodeSelectors` and `interfaces`.
//! - **BGP**: a `BGPPeer` per peer, sent as `metallb.io/v1beta2` (`myASN`, `peerASN`,
//!   `peerAddress`, `peerPort`, `holdTime`, `keepaliveTime`, `ebgpMultiHop`), a `BFDProfile`
//!   (MetalLB's default timers) referenced as `bfdProfile` when `bfd` is on, the password in a
//!   `Secret` of type `kubernetes.io/basic-auth` (key `password`) in MetalLB's namespace
//!   referenced as `passwordSecret` (never inline, never logged: the backend's `Debug` output and
//!   errors never hold it); and a `BGPAdvertisement` of the pool's name (`aggregationLength`, or
//!   `aggregationLengthV6` for IPv6-only pools, `localPref`, `communities`, `peers`). Well-known
//!   community names (`no-export`, `no-advertise`, `no-export-subconfed`, `local-as`,
//!   `no-peer`) become aliases in a `Community` of the pool's name, so aliases never clash across
//!   pools.
//! - **Exposures**: a `Service` of type `LoadBalancer` named after the exposure in the tenant's
//!   namespace, selecting the VMs' pods by the exposure's selector (VM labels are on the
//!   virt-launcher pods), with one named port per exposure port, `externalTrafficPolicy: Local`
//!   when `local_traffic_only` (else `Cluster`), and the annotations `metallb.io/address-pool`
//!   (the pool's object name), `metallb.io/loadBalancerIPs` (a requested address) and
//!   `metallb.io/allow-shared-ip` (the sharing key).
//!
//! Every object carries kubecloud's ownership labels; reads and deletes touch only objects with
//! the calling tenant's labels (another tenant's pool or exposure reads as `NotFound`). Writes
//! are server-side apply with field manager `kubecloud`; [`MetalLb::apply_pool`] and
//! [`MetalLb::apply_exposure`] are idempotent upserts that send nothing when the live objects
//! already match.
//!
//! ## What is read back
//!
//! - Pool usage from the `IPAddressPool` status MetalLB writes (`assignedIPv4 + assignedIPv6`,
//!   `availableIPv4 + availableIPv6`); before MetalLB has written it, all addresses are free.
//! - An exposure's address from `status.loadBalancer.ingress`, its pool from the
//!   `metallb.io/ip-allocated-from-pool` annotation (mapped back to the domain pool name).
//! - **Why an address cannot be assigned**: a Service stuck in `<pending>` is MetalLB's most common
//!   complaint. MetalLB says why only in a Warning `Event` with reason `AllocationFailed` on the
//!   Service. [`LoadBalancer::watch_exposure`](kubecloud_core::LoadBalancer::watch_exposure)
//!   watches the Service **and** its Events and reports [`ExposureState::Failed`](kubecloud_core::ExposureState)
//!   with MetalLB's message as soon as such an Event appears (MetalLB v0.16: pool exhausted:
//!   `no available IPs in pool acme-tiny` (before v0.16: `["<nil>"] is not allowed in config`);
//!   requested address outside every pool: `["192.0.2.9"] is not allowed in config`; sharing
//!   conflict: `can't change sharing key for "acme/web", address also in use by
//!   acme/api` or `port TCP/80 is already in use on "203.0.113.1"`), so
//!   `wait::until(.., wait::exposure_assigned(), timeout)` ends at once with the cause instead of
//!   timing out.
//!
//! ## Semantics worth knowing
//!
//! - `delete_pool` is refused (`Conflict`) while addresses are assigned from the pool; it then
//!   deletes every object the pool is made of (advertisement, peers, BFD profiles, community,
//!   password Secrets, the pool last).
//! - `release` deletes the Service; when it held the last use of its address, it waits (on a
//!   watch, at most [`MetalLbBuilder::release_settle`], 10 s by default) until MetalLB's pool
//!   status counts the address free, so usage read right after is current (not inside
//!   [`kubecloud_core::wait::send_only`], an apply with `wait: false`: it keeps no wait).
//! - Pools the cluster administrator made (any `IPAddressPool` without kubecloud's labels) that
//!   admit the tenant's namespace through their `serviceAllocation` and that something announces
//!   are listed with `shared: true` under their object name ([`shared`]): the tenant may read them
//!   and take addresses from them by name (or automatically, if they auto-assign), never change or
//!   delete them (`Conflict`). Their peers' passwords are never read.
//! - Names longer than 63 characters are shortened with a hash ([`kubecloud_kube::names`]); the
//!   domain pool name is kept in the `kubecloud.io/name` label.
//!
//! ## Crates chosen, and why
//! - `kube` / `k8s-openapi` through `kubecloud-kube` (the shared layer: server-side apply,
//!   ownership, retries, watch-based waits, error mapping); MetalLB kinds as `DynamicObject`s
//!   built from `serde_json` values, which keeps the translation readable and golden-testable
//!   without generated types.
//! - `futures` to merge the Service and Event watches into one exposure stream.
//! - `ipnet` for CIDRs; allocation arithmetic is `kubecloud_core::ipam`.

pub mod capabilities;
mod driver;
mod manifests;
pub mod objects;
pub mod plugin;
/// Typed models of the MetalLB kinds, generated from the upstream CRDs (see
/// `kubecloud-models`).
///
/// ```
/// use kubecloud_metallb::models::{IpAddressPool, ip_address_pool::IpAddressPoolSpec};
/// let spec = IpAddressPoolSpec { addresses: vec!["192.0.2.0/28".into()], ..Default::default() };
/// assert_eq!(IpAddressPool::new("public", spec).spec.addresses.len(), 1);
/// ```
pub mod models {
    pub use kubecloud_models::metallb::*;
}
pub mod selectors;
pub mod shared;
pub mod translate;

use std::time::Duration;

use kubecloud_kube::Writer;

pub use capabilities::CAPABILITIES;

/// The backend's name, in errors.
pub const BACKEND: &str = "metallb";

/// MetalLB's namespace when none is set.
pub const DEFAULT_NAMESPACE: &str = "metallb-system";

/// The load balancer on MetalLB. Build one with [`MetalLb::builder`]. Cheap to clone.
#[derive(Clone)]
pub struct MetalLb {
    client: kube::Client,
    namespace: String,
    writer: Writer,
    release_settle: Duration,
    capabilities: kubecloud_core::LoadBalancerCapabilities,
}

impl std::fmt::Debug for MetalLb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetalLb")
            .field("namespace", &self.namespace)
            .field("retry", &self.writer.retry())
            .field("release_settle", &self.release_settle)
            .finish_non_exhaustive()
    }
}

impl MetalLb {
    /// A builder on `client`.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) {
    /// let lb = kubecloud_metallb::MetalLb::builder(client).build();
    /// assert_eq!(lb.namespace(), "metallb-system");
    /// # }
    /// ```
    pub fn builder(client: kube::Client) -> MetalLbBuilder {
        MetalLbBuilder {
            client,
            namespace: DEFAULT_NAMESPACE.to_string(),
            retry: kubecloud_kube::RetryPolicy::default(),
            release_settle: Duration::from_secs(10),
            bgp: true,
        }
    }

    /// The namespace MetalLB's configuration objects live in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// Builds a [`MetalLb`].
#[derive(Clone)]
pub struct MetalLbBuilder {
    client: kube::Client,
    namespace: String,
    retry: kubecloud_kube::RetryPolicy,
    release_settle: Duration,
    bgp: bool,
}

impl std::fmt::Debug for MetalLbBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetalLbBuilder")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl MetalLbBuilder {
    /// The namespace MetalLB watches for its configuration (`metallb-system` by default).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How temporary API failures are retried (see [`kubecloud_kube::RetryPolicy`]).
    pub fn retry(mut self, retry: kubecloud_kube::RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long `release` waits at most for MetalLB to count a freed address (10 s by default).
    pub fn release_settle(mut self, timeout: Duration) -> Self {
        self.release_settle = timeout;
        self
    }

    /// Whether BGP announcement (and BFD) is offered (default on). Turn off on a MetalLB that
    /// does not serve `metallb.io/v1beta2` `BGPPeer` (before 0.14): the capabilities then read
    /// `false` and BGP pools are refused before anything is sent.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) {
    /// let lb = kubecloud_metallb::MetalLb::builder(client).bgp(false).build();
    /// assert!(!kubecloud_core::LoadBalancer::capabilities(&lb).bgp);
    /// # }
    /// ```
    pub fn bgp(mut self, offered: bool) -> Self {
        self.bgp = offered;
        self
    }

    /// The load balancer.
    pub fn build(self) -> MetalLb {
        MetalLb {
            client: self.client,
            namespace: self.namespace,
            writer: Writer::new(BACKEND).with_retry(self.retry),
            release_settle: self.release_settle,
            capabilities: kubecloud_core::LoadBalancerCapabilities {
                bgp: self.bgp,
                bfd: self.bgp && CAPABILITIES.bfd,
                ..CAPABILITIES
            },
        }
    }
}
