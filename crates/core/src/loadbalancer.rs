//! External addresses: address pools, exposures of VMs, the [`LoadBalancer`] trait.

use std::net::IpAddr;

use async_trait::async_trait;
use futures::stream::BoxStream;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::addr::IpRange;
use crate::error::{Error, Result};
use crate::name::{Labels, Tenant, validate_labels, validate_name, validate_user_labels};
use crate::network::{ServicePort, validate_ports};
use crate::secret::SecretString;

/// A pool of external addresses a tenant owns.
///
/// ```
/// use kubecloud_core::{AddressPoolSpec, AddressBlock, Advertisement};
/// let pool = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
/// assert!(pool.validate().is_ok());
/// assert_eq!(pool.size(), 16);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressPoolSpec {
    /// The pool's name.
    pub name: String,
    /// Its addresses.
    pub addresses: Vec<AddressBlock>,
    /// Whether exposures without an explicit pool or IP may take addresses from it.
    #[serde(default = "yes")]
    pub auto_assign: bool,
    /// Skip `.0` and `.255` addresses, which some old clients mishandle.
    #[serde(default)]
    pub avoid_buggy_ips: bool,
    /// How the addresses are announced.
    pub advertisement: Advertisement,
}

fn yes() -> bool {
    true
}

impl AddressPoolSpec {
    /// An auto-assigning pool announced over L2 (ARP/NDP) from all nodes.
    pub fn l2(name: impl Into<String>, addresses: Vec<AddressBlock>) -> Self {
        Self {
            name: name.into(),
            addresses,
            auto_assign: true,
            avoid_buggy_ips: false,
            advertisement: Advertisement::L2(L2Advertisement::default()),
        }
    }

    /// How many addresses the pool holds (saturating).
    pub fn size(&self) -> u128 {
        self.addresses
            .iter()
            .map(|b| b.range().len())
            .fold(0u128, u128::saturating_add)
    }

    /// Checks the spec; overlaps with other pools are the backend's check.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        if self.addresses.is_empty() {
            return Err(Error::invalid(
                "addresses",
                "at least one CIDR or range is needed",
            ));
        }
        for (i, block) in self.addresses.iter().enumerate() {
            if let AddressBlock::Cidr(net) = block
                && *net != net.trunc()
            {
                return Err(Error::invalid(
                    format!("addresses[{i}]"),
                    format!("{net} has host bits set"),
                ));
            }
            let range = block.range();
            if range.first > range.last || range.first.is_ipv4() != range.last.is_ipv4() {
                return Err(Error::invalid(
                    format!("addresses[{i}]"),
                    format!("{block} is not a range from a first to a last address"),
                ));
            }
            if let Some((what, special)) = crate::network::special_block(&range) {
                return Err(Error::invalid(
                    format!("addresses[{i}]"),
                    format!(
                        "{block} overlaps {special}, the {what} block: not usable for external addresses"
                    ),
                ));
            }
            if let Some(j) = self.addresses[..i]
                .iter()
                .position(|o| o.range().overlaps(&range))
            {
                return Err(Error::invalid(
                    format!("addresses[{i}]"),
                    format!("{block} overlaps addresses[{j}]"),
                ));
            }
        }
        match &self.advertisement {
            Advertisement::L2(l2) => {
                validate_labels("advertisement.l2.nodeSelector", &l2.node_selector)?;
            }
            Advertisement::Bgp(bgp) => {
                if bgp.peers.is_empty() {
                    return Err(Error::invalid(
                        "advertisement.bgp.peers",
                        "at least one peer is needed",
                    ));
                }
                for (i, peer) in bgp.peers.iter().enumerate() {
                    let field = |f: &str| format!("advertisement.bgp.peers[{i}].{f}");
                    validate_name(&field("name"), &peer.name)?;
                    if peer.my_asn == 0 {
                        return Err(Error::invalid(field("myAsn"), "must not be 0"));
                    }
                    if peer.peer_asn == 0 {
                        return Err(Error::invalid(field("peerAsn"), "must not be 0"));
                    }
                    if bgp.peers[..i].iter().any(|o| o.name == peer.name) {
                        return Err(Error::invalid(
                            field("name"),
                            format!("{:?} is used twice", peer.name),
                        ));
                    }
                }
                if let Some(len) = bgp.aggregation_length {
                    let max = if self.addresses.iter().all(|b| b.range().first.is_ipv4()) {
                        32
                    } else {
                        128
                    };
                    if len > max {
                        return Err(Error::invalid(
                            "advertisement.bgp.aggregationLength",
                            format!("{len} is longer than {max}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A block of pool addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AddressBlock {
    /// All addresses of a CIDR.
    Cidr(IpNet),
    /// An inclusive range.
    Range(IpRange),
}

impl AddressBlock {
    /// The block as an inclusive range.
    pub fn range(&self) -> IpRange {
        match self {
            Self::Cidr(net) => IpRange {
                first: net.network(),
                last: net.broadcast(),
            },
            Self::Range(r) => *r,
        }
    }
}

impl std::fmt::Display for AddressBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cidr(net) => write!(f, "{net}"),
            Self::Range(r) => write!(f, "{}-{}", r.first, r.last),
        }
    }
}

/// How a pool's addresses are announced to the network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Advertisement {
    /// ARP/NDP from one node per address.
    L2(L2Advertisement),
    /// BGP to routers.
    Bgp(BgpAdvertisement),
}

/// L2 announcement settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L2Advertisement {
    /// Only nodes with these labels announce.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub node_selector: Labels,
    /// Only on these interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<String>,
}

/// BGP announcement settings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpAdvertisement {
    /// The routers to peer with.
    pub peers: Vec<BgpPeer>,
    /// Announce aggregated prefixes of this length instead of /32s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation_length: Option<u8>,
    /// BGP local preference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_preference: Option<u32>,
    /// BGP communities (`65535:65282` or `no-advertise` style).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
}

/// A BGP peer (router).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpPeer {
    /// The peer's name.
    pub name: String,
    /// Our AS number.
    pub my_asn: u32,
    /// The router's AS number.
    pub peer_asn: u32,
    /// The router's address.
    pub address: IpAddr,
    /// The router's port (179 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Hold time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time_secs: Option<u32>,
    /// Keepalive time in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time_secs: Option<u32>,
    /// Allow a multi-hop eBGP session.
    #[serde(default)]
    pub ebgp_multihop: bool,
    /// Enable BFD with default timers.
    #[serde(default)]
    pub bfd: bool,
    /// The session password (stored as a Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
}

/// Address-pool usage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressPool {
    /// Its spec.
    pub spec: AddressPoolSpec,
    /// Addresses assigned.
    pub assigned: u128,
    /// Addresses still free.
    pub available: u128,
    /// Whether the pool is shared by the cluster's administrator rather than owned by the
    /// tenant: tenants may use it but never change or delete it.
    #[serde(default)]
    pub shared: bool,
    /// Whether some of the objects the pool is made of are missing: its creation or deletion
    /// was interrupted half-way (or someone removed a part by hand). An incomplete pool does not
    /// do what its spec says (e.g. its addresses are not announced); its `spec` holds what could
    /// be read, missing parts as their defaults. [`LoadBalancer::create_pool`] completes it,
    /// [`LoadBalancer::delete_pool`] removes what is left of it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
}

/// Exposes VMs (selected by labels) on an external address.
///
/// ```
/// use kubecloud_core::{ExposureSpec, ServicePort};
/// let web = ExposureSpec::new("web", [("app", "web")], vec![ServicePort::tcp(443)]);
/// assert!(web.validate().is_ok());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExposureSpec {
    /// The exposure's name.
    pub name: String,
    /// VM labels that select its backends (must not be empty).
    pub selector: Labels,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// Which address to take.
    #[serde(default)]
    pub address: AddressRequest,
    /// Exposures with the same key may share one address if their ports do not clash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sharing_key: Option<String>,
    /// Keep client source addresses (traffic only to nodes running a backend).
    #[serde(default)]
    pub local_traffic_only: bool,
}

impl ExposureSpec {
    /// An exposure of the VMs labelled `selector` on an automatically assigned address.
    pub fn new<'a>(
        name: impl Into<String>,
        selector: impl IntoIterator<Item = (&'a str, &'a str)>,
        ports: Vec<ServicePort>,
    ) -> Self {
        Self {
            name: name.into(),
            selector: selector
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ports,
            ..Self::default()
        }
    }

    /// Checks the spec.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        if self.selector.is_empty() {
            return Err(Error::invalid(
                "selector",
                "must select VMs by at least one label",
            ));
        }
        validate_user_labels("selector", &self.selector)?;
        validate_ports("ports", &self.ports)?;
        if let AddressRequest::Ip(ip) = self.address
            && let Some((what, special)) = crate::network::special_block(&IpRange {
                first: ip,
                last: ip,
            })
        {
            return Err(Error::invalid(
                "address.ip",
                format!("{ip} is in {special}, the {what} block: not an external address"),
            ));
        }
        if let AddressRequest::Pool(pool) = &self.address {
            validate_name("address.pool", pool)?;
        }
        if let Some(key) = &self.sharing_key
            && (key.is_empty()
                || key.len() > 63
                || !key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return Err(Error::invalid(
                "sharingKey",
                "must be 1-63 characters of alphanumerics, '-', '_' or '.'",
            ));
        }
        Ok(())
    }
}

/// Which external address an exposure takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AddressRequest {
    /// Any address of an auto-assigning pool.
    #[default]
    Auto,
    /// Any address of the named pool.
    Pool(String),
    /// This address (it must lie in a pool).
    Ip(IpAddr),
}

/// An exposure as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exposure {
    /// Its spec.
    pub spec: ExposureSpec,
    /// The external address, once assigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The pool the address came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Where the assignment stands.
    pub state: ExposureState,
}

/// Where an exposure's address assignment stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExposureState {
    /// Waiting for an address.
    #[default]
    Pending,
    /// The address is assigned and announced.
    Assigned,
    /// No address can be assigned; the reason says why (pool exhausted, IP outside every pool,
    /// sharing conflict).
    Failed {
        /// Why, as the load balancer reported it.
        reason: String,
    },
}

/// What a load-balancer backend can do. The facade checks these before dispatching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerCapabilities {
    /// L2 (ARP/NDP) announcement.
    pub l2: bool,
    /// BGP announcement.
    pub bgp: bool,
    /// BFD on BGP sessions.
    pub bfd: bool,
    /// Several exposures on one address.
    pub ip_sharing: bool,
    /// A requested specific address.
    pub requested_ip: bool,
}

/// External addresses of a tenant. Implemented by each load-balancer backend.
#[async_trait]
pub trait LoadBalancer: Send + Sync + std::fmt::Debug {
    /// The backend's name for errors.
    fn backend_name(&self) -> &str;
    /// The namespaces the backend's system runs in or keeps its own objects in (MetalLB's
    /// `metallb-system`, say): never a tenant's. [`Tenant`] names equal to one of them are
    /// refused by the facade before anything is sent. None by default.
    fn system_namespaces(&self) -> Vec<String> {
        Vec::new()
    }
    /// What this backend can do.
    fn capabilities(&self) -> LoadBalancerCapabilities;

    /// The waits this backend keeps even when an apply does not wait
    /// ([`wait::send_only`](crate::wait::send_only)), each with the reason a later step needs
    /// it; none by default. A tenant's plan reports them on the steps they hold up.
    fn kept_waits(&self) -> &'static [crate::wait::KeptWait] {
        &[]
    }
    /// Creates an address pool owned by (and only usable by) the tenant; refused if it overlaps
    /// any existing pool. An [incomplete](AddressPool::incomplete) pool of that name (an earlier
    /// create or delete interrupted half-way) is completed to match `spec`; any other existing
    /// pool of that name is refused with `AlreadyExists`.
    async fn create_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool>;
    /// Changes a pool the tenant owns in place to match `spec`: how its addresses are announced
    /// (L2 or BGP, peers with their timers and passwords, communities, local preference) and
    /// whether they are assigned automatically. A password rotation or a hold-time change is an
    /// ordinary update. Its addresses (and `avoidBuggyIps`, which changes which of them are
    /// usable) stay: a change to them is refused with a typed error naming the field, before
    /// anything is sent. Assigned addresses are kept.
    ///
    /// The default refuses with [`Error::Unsupported`], for backends that cannot change a pool.
    async fn update_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        let _ = (tenant, spec);
        Err(Error::unsupported(
            self.backend_name(),
            "load_balancer.update_pool",
            "changing a pool in place",
        ))
    }
    /// The pool named `name`, with usage.
    async fn get_pool(&self, tenant: &Tenant, name: &str) -> Result<AddressPool>;
    /// The pools the tenant may use.
    async fn list_pools(&self, tenant: &Tenant) -> Result<Vec<AddressPool>>;
    /// Deletes a pool; refused while addresses are assigned from it.
    async fn delete_pool(&self, tenant: &Tenant, name: &str) -> Result<()>;
    /// Exposes VMs; the address is assigned asynchronously (see [`LoadBalancer::watch_exposure`]).
    async fn expose(&self, tenant: &Tenant, spec: &ExposureSpec) -> Result<Exposure>;
    /// The exposure named `name`.
    async fn get_exposure(&self, tenant: &Tenant, name: &str) -> Result<Exposure>;
    /// The tenant's exposures.
    async fn list_exposures(&self, tenant: &Tenant) -> Result<Vec<Exposure>>;
    /// Removes an exposure and frees its address.
    async fn release(&self, tenant: &Tenant, name: &str) -> Result<()>;
    /// The exposure's state now and at every change, until it is released.
    async fn watch_exposure(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Exposure>>>;
}

impl AddressPoolSpec {
    /// Checks that `self` changes only what [`LoadBalancer::update_pool`] may change in place
    /// from `current`: the error names the field (`addresses`, `avoidBuggyIps`, `name`).
    ///
    /// ```
    /// use kubecloud_core::{AddressBlock, AddressPoolSpec};
    /// let now = AddressPoolSpec::l2("p", vec![AddressBlock::Cidr("203.0.113.0/29".parse().unwrap())]);
    /// let mut next = now.clone();
    /// next.auto_assign = false;
    /// assert!(next.check_update_of(&now).is_ok());
    /// next.addresses = vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())];
    /// assert_eq!(next.check_update_of(&now).unwrap_err().invalid_field(), Some("addresses"));
    /// ```
    pub fn check_update_of(&self, current: &AddressPoolSpec) -> Result<()> {
        let refuse = |field: &str, what: &str| {
            Err(Error::invalid(
                field,
                format!(
                    "address pool {:?} cannot change {what} in place; delete it and create it again",
                    current.name
                ),
            ))
        };
        if self.name != current.name {
            return refuse("name", "its name");
        }
        if self.addresses != current.addresses {
            return refuse("addresses", "its addresses");
        }
        if self.avoid_buggy_ips != current.avoid_buggy_ips {
            return refuse("avoidBuggyIps", "which of its addresses are usable");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_refuse_overlapping_blocks_and_bad_peers() {
        let cidr = |s: &str| AddressBlock::Cidr(s.parse().unwrap());
        let pool = AddressPoolSpec::l2("p", vec![cidr("192.0.2.0/28"), cidr("192.0.2.8/29")]);
        assert_eq!(
            pool.validate().unwrap_err().invalid_field(),
            Some("addresses[1]")
        );
        let pool = AddressPoolSpec::l2("p", vec![]);
        assert_eq!(
            pool.validate().unwrap_err().invalid_field(),
            Some("addresses")
        );
        let mut pool = AddressPoolSpec::l2("p", vec![cidr("192.0.2.0/28")]);
        pool.advertisement = Advertisement::Bgp(BgpAdvertisement {
            peers: vec![BgpPeer {
                name: "tor".into(),
                my_asn: 64500,
                peer_asn: 0,
                address: "192.0.2.254".parse().unwrap(),
                port: None,
                hold_time_secs: None,
                keepalive_time_secs: None,
                ebgp_multihop: false,
                bfd: false,
                password: Some("s3cret".into()),
            }],
            ..BgpAdvertisement::default()
        });
        let err = pool.validate().unwrap_err();
        assert_eq!(
            err.invalid_field(),
            Some("advertisement.bgp.peers[0].peerAsn")
        );
        assert!(!format!("{pool:?}").contains("s3cret"));
    }

    #[test]
    fn exposures_need_a_selector_and_ports() {
        let e = ExposureSpec::new("web", [], vec![ServicePort::tcp(80)]);
        assert_eq!(e.validate().unwrap_err().invalid_field(), Some("selector"));
        let e = ExposureSpec::new("web", [("app", "web")], vec![]);
        assert_eq!(e.validate().unwrap_err().invalid_field(), Some("ports"));
    }
}
