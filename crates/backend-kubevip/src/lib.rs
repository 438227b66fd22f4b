//! # kubecloud-kubevip
//!
//! kubecloud's [`LoadBalancer`](kubecloud_core::LoadBalancer) on
//! [kube-vip](https://kube-vip.io) with
//! [kube-vip-cloud-provider](https://github.com/kube-vip/kube-vip-cloud-provider): a tenant's
//! address pool is its namespace's range or CIDR in the provider's ConfigMap, VMs are exposed
//! through Services of type `LoadBalancer`, kube-vip announces the addresses over ARP or BGP.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
//! use std::time::Duration;
//! use kubecloud_core::{wait, AddressBlock, AddressPoolSpec, ExposureSpec, LoadBalancer, ServicePort, Tenant};
//! let lb = kubecloud_kubevip::KubeVip::builder(client).build();
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
//! - **Pools**: kube-vip-cloud-provider reads one ConfigMap (`kubevip` in `kube-system` unless
//!   [`KubeVipBuilder::config_map`] says otherwise; `KUBEVIP_CONFIG_MAP`/`KUBEVIP_NAMESPACE`)
//!   and in it, for a Service of namespace `ns`, `cidr-<ns>`, else `range-<ns>`, else
//!   `cidr-global`, else `range-global` (`pkg/provider/loadBalancer.go`, `discoverPool`). A
//!   tenant's pool is therefore its namespace's entry: `cidr-<ns>` (the CIDRs, comma-separated)
//!   when every block is a CIDR, else `range-<ns>` (`first-last` per block), plus
//!   `interface-<ns>` for an L2 pool naming one interface (the provider copies it into
//!   `kube-vip.io/serviceInterface`), and the annotation [`translate::POOL_RECORD`]`<ns>` holding
//!   the pool's name and the settings the provider has no key for. Only these keys are sent, as
//!   a JSON merge patch carrying the ConfigMap's `resourceVersion` (re-read, re-checked and
//!   re-sent on a conflict): other tenants' and the administrator's keys are never touched. The
//!   ConfigMap is created (with only these keys) where it is missing.
//! - A pool overlapping **any** entry of the ConfigMap (another tenant's, or the
//!   administrator's, `*-global` included) is refused with `Conflict` before anything is sent:
//!   the provider checks no overlap and would hand one address to two namespaces.
//! - **Exposures**: a `Service` of type `LoadBalancer` named after the exposure in the tenant's
//!   namespace (the shared builder [`kubecloud_kube::exposure`]), with `spec.loadBalancerClass`
//!   when the provider runs with one ([`KubeVipBuilder::load_balancer_class`]). A requested
//!   address, and the address of a sharer (below), is the annotation `kube-vip.io/loadbalancerIPs`;
//!   kubecloud's own annotations record the request ([`translate::REQUESTED_IP`],
//!   [`translate::ADDRESS_POOL`], [`translate::SHARING_KEY`], [`translate::SHARED_IP`]).
//!
//! Writes are sent only when they change something (server-side apply with field manager
//! `kubecloud` for Services).
//!
//! ## What the provider does not check, and kubecloud does
//!
//! kube-vip-cloud-provider takes a requested address **as it is**: a Service with
//! `kube-vip.io/loadbalancerIPs` is only labelled `implementation: kube-vip`, checked against no
//! range and no other Service (`syncLoadBalancer`), and kube-vip announces it. So before
//! anything is sent kubecloud refuses:
//!
//! - a requested address outside every pool the tenant may use (its own, or the global one):
//!   `InvalidInput` naming `address.ip` and the address;
//! - a requested address another Service holds: `Conflict`, unless it is an exposure of the
//!   tenant with the same sharing key, disjoint ports and the same traffic policy (then they
//!   share it);
//! - an exposure without pool or address when the tenant's pool does not assign automatically
//!   (`InvalidInput` naming `address`: the provider would take an address from it anyway).
//!
//! **Sharing**: the provider's own sharing (`allow-share-<ns>`) puts any two Services of a
//! namespace with disjoint ports on one address, with or without a key; kubecloud never sets it.
//! An exposure with a sharing key joins the address of another exposure of the tenant with that
//! key (ports disjoint, same traffic policy) by requesting it; the first one gets its address
//! from the provider.
//!
//! ## What is read back
//!
//! - An exposure's address from `status.loadBalancer.ingress` (kube-vip writes it once it
//!   announces the address), its pool: the tenant's pool holding it, or `global`.
//! - **Why an address cannot be assigned**: the provider says so only in a Warning Event on the
//!   Service: `SyncLoadBalancerFailed` `Error syncing load balancer: failed to ensure load
//!   balancer: <why>` (kubernetes/cloud-provider's service controller), or, with a class,
//!   `syncLoadBalancer` `Error syncing load balancer: <why>` (`pkg/provider/loadbalancerclass.go`),
//!   `<why>` being e.g. `no addresses available in [acme] cidr [203.0.113.0/28]`
//!   (`pkg/ipam/ipam.go`, `OutOfIPsError`) or `no address pools could be found`.
//!   [`LoadBalancer::watch_exposure`](kubecloud_core::LoadBalancer::watch_exposure) watches the
//!   Service and those Events and reports
//!   [`ExposureState::Failed`](kubecloud_core::ExposureState) with that message as soon as one
//!   names the Service (by uid) while it has no address.
//! - Pool usage: the distinct addresses the Services of the pool's namespace (all namespaces for
//!   the global pool) hold in its blocks, by annotation or ingress.
//!
//! ## Semantics worth knowing
//!
//! - **One pool per tenant**: the provider reads one entry per namespace; a second pool is
//!   refused with `Unsupported` (operation `load_balancer.create_pool`). The tenant's pool
//!   replaces the global one for its Services (the provider falls back to `*-global` only
//!   without a namespace entry); the global pool is listed as a shared pool named `global`.
//! - The provider never assigns an IPv4 address ending in `.0` or `.255` by itself
//!   (`FindFreeAddress`), whatever `avoidBuggyIps` says; such an address of a pool with
//!   `avoidBuggyIps: false` is still assigned when requested.
//! - ARP or BGP is how the cluster's kube-vip runs, for every address: see
//!   [`capabilities`]. Refused with `Unsupported` naming the field, before anything is sent:
//!   L2 node selectors and more than one interface, BGP peers other than kube-vip's, BFD,
//!   communities, local preference, aggregation, and L2 pools on BGP (or BGP pools on ARP).
//! - `delete_pool` is refused (`Conflict`) while addresses are assigned from the pool.
//!
//! ## Crates chosen, and why
//! - `kube` / `k8s-openapi` through `kubecloud-kube` (server-side apply, ownership, retries,
//!   shared watches, error mapping); the provider has no CRDs: ConfigMap, Service and Event are
//!   core kinds.
//! - `serde` for the pool record annotation, `futures` for the exposure watch stream.

pub mod capabilities;
mod driver;
mod manifests;
pub mod plugin;
pub mod translate;

use kubecloud_core::{BgpPeer, LoadBalancerCapabilities};
use kubecloud_kube::Writer;

/// The backend's name, in errors.
pub const BACKEND: &str = "kubevip";

/// How the cluster's kube-vip announces addresses (its `vip_arp` or `bgp_enable` setting, the
/// same for every address).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Announcement {
    /// ARP/NDP from the node holding the address (the default).
    #[default]
    Arp,
    /// BGP to these peers (kube-vip's `bgp_peers` and `bgp_as`).
    Bgp(Vec<BgpPeer>),
}

/// The settings of a [`KubeVip`] that describe the cluster's installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// ARP or BGP.
    pub announcement: Announcement,
    /// The load-balancer class the provider runs with (`KUBEVIP_ENABLE_LOADBALANCERCLASS`;
    /// `kube-vip.io/kube-vip-class` unless `KUBEVIP_CUSTOM_LOADBALANCERCLASS_NAME`), or none.
    pub load_balancer_class: Option<String>,
    /// The provider's ConfigMap: namespace and name.
    pub config_map: (String, String),
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            announcement: Announcement::Arp,
            load_balancer_class: None,
            config_map: ("kube-system".into(), "kubevip".into()),
        }
    }
}

/// The load balancer on kube-vip. Build one with [`KubeVip::builder`]. Cheap to clone.
#[derive(Clone)]
pub struct KubeVip {
    client: kube::Client,
    writer: Writer,
    settings: Settings,
}

impl std::fmt::Debug for KubeVip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeVip")
            .field("retry", &self.writer.retry())
            .field(
                "bgp",
                &matches!(self.settings.announcement, Announcement::Bgp(_)),
            )
            .field("class", &self.settings.load_balancer_class)
            .finish_non_exhaustive()
    }
}

impl KubeVip {
    /// A builder on `client`.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) {
    /// let lb = kubecloud_kubevip::KubeVip::builder(client).build();
    /// assert!(kubecloud_core::LoadBalancer::capabilities(&lb).l2);
    /// # }
    /// ```
    pub fn builder(client: kube::Client) -> KubeVipBuilder {
        KubeVipBuilder {
            client,
            retry: kubecloud_kube::RetryPolicy::default(),
            settings: Settings::default(),
        }
    }

    /// What this backend can do with the cluster's announcement mode.
    pub fn capabilities(&self) -> LoadBalancerCapabilities {
        match self.settings.announcement {
            Announcement::Arp => capabilities::ARP,
            Announcement::Bgp(_) => capabilities::BGP,
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

/// Builds a [`KubeVip`].
#[derive(Clone)]
pub struct KubeVipBuilder {
    client: kube::Client,
    retry: kubecloud_kube::RetryPolicy,
    settings: Settings,
}

impl std::fmt::Debug for KubeVipBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeVipBuilder").finish_non_exhaustive()
    }
}

impl KubeVipBuilder {
    /// How temporary API failures are retried (see [`kubecloud_kube::RetryPolicy`]).
    pub fn retry(mut self, retry: kubecloud_kube::RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The cluster's kube-vip announces over BGP to `peers` (default: ARP).
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client, peers: Vec<kubecloud_core::BgpPeer>) {
    /// let lb = kubecloud_kubevip::KubeVip::builder(client).bgp(peers).build();
    /// assert!(lb.capabilities().bgp && !lb.capabilities().l2);
    /// # }
    /// ```
    pub fn bgp(mut self, peers: Vec<BgpPeer>) -> Self {
        self.settings.announcement = Announcement::Bgp(peers);
        self
    }

    /// The provider (and kube-vip) take only Services of load-balancer class `class`.
    pub fn load_balancer_class(mut self, class: impl Into<String>) -> Self {
        self.settings.load_balancer_class = Some(class.into());
        self
    }

    /// The provider's ConfigMap (default `kube-system`/`kubevip`).
    pub fn config_map(mut self, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        self.settings.config_map = (namespace.into(), name.into());
        self
    }

    /// All settings at once.
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// The load balancer.
    pub fn build(self) -> KubeVip {
        KubeVip {
            client: self.client,
            writer: Writer::new(BACKEND).with_retry(self.retry),
            settings: self.settings,
        }
    }
}
