//! Domain specs → Cilium objects and back, without I/O.
//!
//! | domain | objects |
//! |---|---|
//! | pool `p` of tenant `t` | `CiliumLoadBalancerIPPool` (`cilium.io/v2`, cluster-scoped) [`pool_object`]`(t, p)` selecting only Services of namespace `t` labelled [`ADDRESS_POOL`]` = p` |
//! | its L2 announcement | `CiliumL2AnnouncementPolicy` (`cilium.io/v2alpha1`) of the same name selecting the same Services |
//! | or its BGP announcement | `CiliumBGPAdvertisement` (`cilium.io/v2`) of the same name selecting the same Services, labelled for its peers (see [`crate::bgp`]) |
//! | exposure `e` of tenant `t` | `Service` `e` of type `LoadBalancer` in namespace `t`, labelled with its pool |
//!
//! Every object carries the ownership labels (`kubecloud.io/name` = the pool or exposure).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Advertisement, Error, Exposure, ExposureSpec,
    ExposureState, IpRange, L2Advertisement, Protocol, Result, ServicePort, Tenant,
};
use kubecloud_kube::exposure;
pub use kubecloud_kube::exposure::{ingress_ip, ingress_ips, single_stack_ipv6};
use kubecloud_kube::{MANAGED_BY, MANAGER, TENANT, names, ownership_labels, tenant_namespace};
use kubecloud_models::cilium::l2_announcement_policy::{
    CiliumL2AnnouncementPolicyNodeSelector, CiliumL2AnnouncementPolicyServiceSelector,
    CiliumL2AnnouncementPolicySpec,
};
use kubecloud_models::cilium::load_balancer_ip_pool::{
    CiliumLoadBalancerIpPoolAllowFirstLastIPs, CiliumLoadBalancerIpPoolBlocks,
    CiliumLoadBalancerIpPoolServiceSelector, CiliumLoadBalancerIpPoolSpec,
};
use kubecloud_models::cilium::{
    CiliumBgpAdvertisement, CiliumL2AnnouncementPolicy, CiliumLoadBalancerIpPool,
};

/// The Service label naming the (domain) pool an exposure takes its address from; pools and
/// announcement policies select Services by it.
pub const ADDRESS_POOL: &str = "kubecloud.io/address-pool";
/// The pool annotation saying whether exposures without a pool or address may use it.
pub const AUTO_ASSIGN: &str = "kubecloud.io/auto-assign";
/// The Service annotation marking an exposure that asked for any address (its pool label was
/// chosen by the backend).
pub const ADDRESS_AUTO: &str = "kubecloud.io/address-auto";
/// `lbipam.cilium.io/ips`: the requested addresses.
pub const IPS: &str = "lbipam.cilium.io/ips";
/// `lbipam.cilium.io/sharing-key`.
pub const SHARING_KEY: &str = "lbipam.cilium.io/sharing-key";
/// The Service condition LB-IPAM writes.
pub const REQUEST_SATISFIED: &str = "cilium.io/IPAMRequestSatisfied";
/// The label LB-IPAM adds to a Service for pool selectors: its namespace (a Service cannot
/// forge it).
pub const SERVICE_NAMESPACE: &str = "io.kubernetes.service.namespace";

/// The `CiliumLoadBalancerIPPool` (and L2 policy) name for pool `pool` of `tenant`.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// assert_eq!(kubecloud_cilium::translate::pool_object(&acme, "public"), "acme-public");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn pool_object(tenant: &Tenant, pool: &str) -> String {
    names::cluster_scoped(tenant, pool)
}

/// Everything one address pool is made of.
#[derive(Clone, Debug, PartialEq)]
pub struct PoolObjects {
    /// The pool.
    pub pool: CiliumLoadBalancerIpPool,
    /// Its L2 announcement policy (an L2 pool).
    pub l2: Option<CiliumL2AnnouncementPolicy>,
    /// Its BGP advertisement (a BGP pool; see [`crate::bgp`]).
    pub bgp: Option<CiliumBgpAdvertisement>,
}

impl PoolObjects {
    /// The announcement object's kind.
    pub fn announcement_kind(&self) -> &'static str {
        if self.bgp.is_some() {
            "CiliumBGPAdvertisement"
        } else {
            "CiliumL2AnnouncementPolicy"
        }
    }
}

fn refuse_unsupported(spec: &AddressPoolSpec) -> Result<()> {
    if spec.avoid_buggy_ips {
        return Err(Error::invalid(
            "avoidBuggyIps",
            "Cilium LB-IPAM cannot skip .0 and .255 addresses (allowFirstLastIPs reserves only \
             the first and last address of each CIDR)",
        ));
    }
    if let Advertisement::L2(l2) = &spec.advertisement {
        for (i, name) in l2.interfaces.iter().enumerate() {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@:".contains(c))
            {
                return Err(Error::invalid(
                    format!("advertisement.l2.interfaces[{i}]"),
                    format!("{name:?} is not an interface name"),
                ));
            }
        }
    }
    Ok(())
}

/// The objects of pool `spec` of `tenant` (checked first): the pool, and its L2 announcement
/// policy or its BGP advertisement. Whether a BGP pool's peers are the cluster's is checked
/// against the cluster (see [`crate::bgp::check_peers`]), not here.
///
/// ```
/// use kubecloud_core::{AddressBlock, AddressPoolSpec, Tenant};
/// let spec = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
/// let objects = kubecloud_cilium::translate::pool_objects(&Tenant::new("acme")?, &spec)?;
/// assert_eq!(objects.pool.spec.blocks.as_ref().unwrap()[0].cidr.as_deref(), Some("203.0.113.0/28"));
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn pool_objects(tenant: &Tenant, spec: &AddressPoolSpec) -> Result<PoolObjects> {
    spec.validate()?;
    refuse_unsupported(spec)?;
    let object = pool_object(tenant, &spec.name);
    let labels = ownership_labels(tenant, &spec.name);
    let blocks = spec
        .addresses
        .iter()
        .map(|b| match b {
            AddressBlock::Cidr(net) => CiliumLoadBalancerIpPoolBlocks {
                cidr: Some(net.to_string()),
                ..Default::default()
            },
            AddressBlock::Range(r) => CiliumLoadBalancerIpPoolBlocks {
                start: Some(r.first.to_string()),
                stop: Some(r.last.to_string()),
                ..Default::default()
            },
        })
        .collect();
    let mut pool = CiliumLoadBalancerIpPool::new(
        &object,
        CiliumLoadBalancerIpPoolSpec {
            allow_first_last_i_ps: Some(CiliumLoadBalancerIpPoolAllowFirstLastIPs::Yes),
            blocks: Some(blocks),
            disabled: Some(false),
            service_selector: Some(CiliumLoadBalancerIpPoolServiceSelector {
                match_labels: Some(BTreeMap::from([
                    (SERVICE_NAMESPACE.to_string(), tenant_namespace(tenant)),
                    (ADDRESS_POOL.to_string(), spec.name.clone()),
                ])),
                ..Default::default()
            }),
        },
    );
    pool.metadata.labels = Some(labels.clone());
    pool.metadata.annotations = Some(BTreeMap::from([(
        AUTO_ASSIGN.to_string(),
        spec.auto_assign.to_string(),
    )]));
    let l2 = match &spec.advertisement {
        Advertisement::L2(l2) => l2,
        Advertisement::Bgp(bgp) => {
            let advertisement = crate::bgp::advertisement_object(tenant, &object, spec, bgp)?;
            return Ok(PoolObjects {
                pool,
                l2: None,
                bgp: Some(advertisement),
            });
        }
    };
    let mut policy = CiliumL2AnnouncementPolicy::new(
        &object,
        CiliumL2AnnouncementPolicySpec {
            external_i_ps: Some(false),
            load_balancer_i_ps: Some(true),
            interfaces: (!l2.interfaces.is_empty())
                .then(|| l2.interfaces.iter().map(|i| interface_regex(i)).collect()),
            node_selector: (!l2.node_selector.is_empty()).then(|| {
                CiliumL2AnnouncementPolicyNodeSelector {
                    match_labels: Some(l2.node_selector.clone()),
                    ..Default::default()
                }
            }),
            service_selector: Some(CiliumL2AnnouncementPolicyServiceSelector {
                match_labels: Some(BTreeMap::from([
                    (MANAGED_BY.to_string(), MANAGER.to_string()),
                    (TENANT.to_string(), tenant.as_str().to_string()),
                    (ADDRESS_POOL.to_string(), spec.name.clone()),
                ])),
                ..Default::default()
            }),
        },
    );
    policy.metadata.labels = Some(labels);
    Ok(PoolObjects {
        pool,
        l2: Some(policy),
        bgp: None,
    })
}

/// Cilium matches `interfaces` as regular expressions: an interface name, anchored.
fn interface_regex(name: &str) -> String {
    format!("^{}$", name.replace('.', "\\."))
}

fn interface_name(regex: &str) -> String {
    regex
        .strip_prefix('^')
        .and_then(|r| r.strip_suffix('$'))
        .unwrap_or(regex)
        .replace("\\.", ".")
}

/// The blocks of a pool object.
pub fn blocks(pool: &CiliumLoadBalancerIpPool) -> Vec<AddressBlock> {
    pool.spec
        .blocks
        .iter()
        .flatten()
        .filter_map(|b| match (&b.cidr, &b.start, &b.stop) {
            (Some(c), _, _) if !c.is_empty() => c.parse().ok().map(AddressBlock::Cidr),
            (_, Some(start), stop) => {
                let first: IpAddr = start.parse().ok()?;
                let last: IpAddr = match stop.as_deref().filter(|s| !s.is_empty()) {
                    Some(s) => s.parse().ok()?,
                    None => first,
                };
                IpRange::new(first, last).ok().map(AddressBlock::Range)
            }
            _ => None,
        })
        .collect()
}

/// The domain spec of the tenant's pool `object`, and whether it is complete (its announcement
/// policy or BGP advertisement exists). A pool with a BGP advertisement is a BGP pool.
pub fn read_pool(
    name: &str,
    pool: &CiliumLoadBalancerIpPool,
    l2: Option<&CiliumL2AnnouncementPolicy>,
    bgp: Option<&CiliumBgpAdvertisement>,
) -> (AddressPoolSpec, bool) {
    let auto_assign = pool
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(AUTO_ASSIGN))
        .is_none_or(|v| v != "false");
    let advertisement = L2Advertisement {
        node_selector: l2
            .and_then(|p| p.spec.node_selector.as_ref())
            .and_then(|s| s.match_labels.clone())
            .unwrap_or_default(),
        interfaces: l2
            .and_then(|p| p.spec.interfaces.as_ref())
            .map(|i| i.iter().map(|r| interface_name(r)).collect())
            .unwrap_or_default(),
    };
    let bgp = bgp.and_then(crate::bgp::read_advertisement);
    let complete = l2.is_some() || bgp.is_some();
    let spec = AddressPoolSpec {
        name: name.to_string(),
        addresses: blocks(pool),
        auto_assign,
        avoid_buggy_ips: false,
        advertisement: match bgp {
            Some(bgp) => Advertisement::Bgp(bgp),
            None => Advertisement::L2(advertisement),
        },
    };
    (spec, complete)
}

/// How many addresses a pool hands out (every address of every block: `allowFirstLastIPs` is
/// always `Yes`).
pub fn capacity(addresses: &[AddressBlock]) -> u128 {
    addresses
        .iter()
        .map(|b| b.range().len())
        .fold(0u128, u128::saturating_add)
}

/// The `Service` exposing `spec`'s VMs for `tenant`, taking its address from the tenant's pool
/// `pool` (none: no pool selects it, and Cilium says why). Checks the spec first.
pub fn service(tenant: &Tenant, spec: &ExposureSpec, pool: Option<&str>) -> Result<Service> {
    let mut annotations = BTreeMap::new();
    match &spec.address {
        AddressRequest::Auto => {
            annotations.insert(ADDRESS_AUTO.to_string(), "true".to_string());
        }
        AddressRequest::Pool(_) => {}
        AddressRequest::Ip(ip) => {
            annotations.insert(IPS.to_string(), ip.to_string());
        }
    }
    if let Some(key) = &spec.sharing_key {
        annotations.insert(SHARING_KEY.to_string(), key.clone());
    }
    let mut labels = ownership_labels(tenant, &spec.name);
    if let Some(pool) = pool {
        labels.insert(ADDRESS_POOL.to_string(), pool.to_string());
    }
    exposure::load_balancer_service(tenant, spec, labels, annotations)
}

/// The pool label of a Service.
pub fn pool_label(svc: &Service) -> Option<&str> {
    svc.metadata
        .labels
        .as_ref()?
        .get(ADDRESS_POOL)
        .map(String::as_str)
}

/// Why LB-IPAM cannot satisfy the Service, from its `cilium.io/IPAMRequestSatisfied` condition
/// (False, for the Service's current generation): `"<message> (<reason>)"`.
pub fn failure(svc: &Service) -> Option<String> {
    let generation = svc.metadata.generation;
    let condition = svc
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == REQUEST_SATISFIED)?;
    if condition.status != "False" {
        return None;
    }
    if let (Some(seen), Some(now)) = (condition.observed_generation, generation)
        && seen != now
    {
        return None;
    }
    Some(format!("{} ({})", condition.message, condition.reason))
}

/// Reads an exposure back from its `Service`.
pub fn exposure(svc: &Service) -> Exposure {
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let spec = svc.spec.clone().unwrap_or_default();
    let pool = pool_label(svc).map(String::from);
    let address = if let Some(ip) = annotations
        .get(IPS)
        .and_then(|ips| ips.split(',').next())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
    {
        AddressRequest::Ip(ip)
    } else if annotations.contains_key(ADDRESS_AUTO) {
        AddressRequest::Auto
    } else {
        pool.clone()
            .map(AddressRequest::Pool)
            .unwrap_or(AddressRequest::Auto)
    };
    let ports = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| {
            let port = p.port as u16;
            let target = match &p.target_port {
                Some(IntOrString::Int(t)) if *t as u16 != port => Some(*t as u16),
                _ => None,
            };
            ServicePort {
                port,
                target_port: target,
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => Protocol::Udp,
                    Some("SCTP") => Protocol::Sctp,
                    _ => Protocol::Tcp,
                },
            }
        })
        .collect();
    let domain = ExposureSpec {
        name: svc.metadata.name.clone().unwrap_or_default(),
        selector: spec.selector.unwrap_or_default(),
        ports,
        address,
        sharing_key: annotations.get(SHARING_KEY).cloned(),
        local_traffic_only: spec.external_traffic_policy.as_deref() == Some("Local"),
    };
    let ip = ingress_ip(svc);
    let state = match (ip, failure(svc)) {
        (Some(_), _) => ExposureState::Assigned,
        (None, Some(reason)) => ExposureState::Failed { reason },
        (None, None) => ExposureState::Pending,
    };
    Exposure {
        spec: domain,
        ip,
        pool: ip.and(pool),
        state,
    }
}
