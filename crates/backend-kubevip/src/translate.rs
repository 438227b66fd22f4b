//! Domain specs → the provider's ConfigMap keys and Services, and back, without I/O.
//!
//! | domain | objects |
//! |---|---|
//! | pool `p` of tenant `t` | ConfigMap `kubevip` keys `cidr-<t>` or `range-<t>` (and `interface-<t>`), annotation [`POOL_RECORD`]`<t>` |
//! | the global pool | keys `cidr-global` or `range-global` (the administrator's, read only) |
//! | exposure `e` of tenant `t` | `Service` `e` of type `LoadBalancer` in namespace `t` |

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Advertisement, Error, Exposure, ExposureSpec,
    ExposureState, IpRange, L2Advertisement, Protocol, Result, ServicePort, Tenant,
};
use kubecloud_kube::{exposure, ownership_labels};
use serde::{Deserialize, Serialize};

use crate::{Announcement, BACKEND, Settings};

pub use kubecloud_kube::exposure::{ingress_ip, ingress_ips};

/// `kube-vip.io/loadbalancerIPs`: the addresses of a Service (requested, or written by the
/// provider), comma-separated.
pub const LOADBALANCER_IPS: &str = "kube-vip.io/loadbalancerIPs";
/// The label the provider puts on the Services it has given (or confirmed) addresses.
pub const IMPLEMENTATION_LABEL: &str = "implementation";
/// Its value.
pub const IMPLEMENTATION: &str = "kube-vip";
/// The Service annotation recording an exposure's requested address.
pub const REQUESTED_IP: &str = "kubevip.kubecloud.io/requested-ip";
/// The Service annotation recording the address an exposure shares (requested for it).
pub const SHARED_IP: &str = "kubevip.kubecloud.io/shared-ip";
/// The Service annotation recording an exposure's requested pool.
pub const ADDRESS_POOL: &str = "kubevip.kubecloud.io/address-pool";
/// The Service annotation recording an exposure's sharing key.
pub const SHARING_KEY: &str = "kubevip.kubecloud.io/sharing-key";
/// The prefix of the ConfigMap annotation holding a namespace's pool record (followed by the
/// namespace).
pub const POOL_RECORD: &str = "pool.kubevip.kubecloud.io/";
/// The name of the shared (administrator's) pool, from `cidr-global` / `range-global`.
pub const GLOBAL: &str = "global";
/// The reasons of the Warning Events the provider writes when it cannot assign an address:
/// the cloud-provider service controller's, then the provider's class controller's.
pub const FAILURE_REASONS: [&str; 2] = ["SyncLoadBalancerFailed", "syncLoadBalancer"];

/// What the provider's keys cannot say about a pool, kept in the ConfigMap annotation
/// [`POOL_RECORD`]`<namespace>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolRecord {
    /// The pool's name.
    pub name: String,
    /// Its blocks, as given (a range entry does not say which were CIDRs).
    pub addresses: Vec<AddressBlock>,
    /// Whether exposures without pool or address take addresses from it.
    pub auto_assign: bool,
    /// Whether `.0` and `.255` addresses are refused when requested.
    pub avoid_buggy_ips: bool,
    /// The one L2 interface, if any (also `interface-<namespace>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Whether the pool was made for BGP (its peers are kube-vip's).
    #[serde(default)]
    pub bgp: bool,
}

fn unsupported(field: &str, why: &str) -> Error {
    Error::unsupported(
        BACKEND,
        "load_balancer.create_pool",
        format!("{field}: {why}"),
    )
}

/// Checks `spec` and refuses what kube-vip cannot do, naming the field.
///
/// ```
/// use kubecloud_core::{AddressBlock, AddressPoolSpec};
/// let mut spec = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
/// let settings = kubecloud_kubevip::Settings::default();
/// assert!(kubecloud_kubevip::translate::check_pool(&spec, &settings).is_ok());
/// if let kubecloud_core::Advertisement::L2(l2) = &mut spec.advertisement {
///     l2.node_selector.insert("zone".into(), "a".into());
/// }
/// let err = kubecloud_kubevip::translate::check_pool(&spec, &settings).unwrap_err();
/// assert!(err.to_string().contains("advertisement.l2.nodeSelector"));
/// ```
pub fn check_pool(spec: &AddressPoolSpec, settings: &Settings) -> Result<()> {
    spec.validate()?;
    if spec.name == GLOBAL {
        return Err(Error::invalid(
            "name",
            "\"global\" is the name of the cluster's global pool (cidr-global/range-global)",
        ));
    }
    match (&settings.announcement, &spec.advertisement) {
        (Announcement::Arp, Advertisement::L2(l2)) => {
            if !l2.node_selector.is_empty() {
                return Err(unsupported(
                    "advertisement.l2.nodeSelector",
                    "kube-vip announces from the node it elects, for any address",
                ));
            }
            if l2.interfaces.len() > 1 {
                return Err(unsupported(
                    "advertisement.l2.interfaces",
                    "kube-vip-cloud-provider sets one kube-vip.io/serviceInterface per namespace",
                ));
            }
        }
        (Announcement::Arp, Advertisement::Bgp(_)) => {
            return Err(unsupported(
                "advertisement.bgp",
                "the cluster's kube-vip announces over ARP, for every address",
            ));
        }
        (Announcement::Bgp(_), Advertisement::L2(_)) => {
            return Err(unsupported(
                "advertisement.l2",
                "the cluster's kube-vip announces over BGP, for every address",
            ));
        }
        (Announcement::Bgp(peers), Advertisement::Bgp(bgp)) => {
            if &bgp.peers != peers {
                return Err(unsupported(
                    "advertisement.bgp.peers",
                    "kube-vip peers with the routers its DaemonSet is configured with (bgp_peers), \
                     for every address; a pool cannot name its own",
                ));
            }
            if let Some((i, _)) = bgp.peers.iter().enumerate().find(|(_, p)| p.bfd) {
                return Err(unsupported(
                    &format!("advertisement.bgp.peers[{i}].bfd"),
                    "kube-vip's BGP sessions have no BFD",
                ));
            }
            if bgp.aggregation_length.is_some() {
                return Err(unsupported(
                    "advertisement.bgp.aggregationLength",
                    "kube-vip announces each address as a host route",
                ));
            }
            if bgp.local_preference.is_some() {
                return Err(unsupported(
                    "advertisement.bgp.localPreference",
                    "kube-vip sets no local preference per pool",
                ));
            }
            if !bgp.communities.is_empty() {
                return Err(unsupported(
                    "advertisement.bgp.communities",
                    "kube-vip sets no communities per pool",
                ));
            }
        }
    }
    Ok(())
}

/// The provider's keys for namespace `ns`: CIDRs, ranges, interface.
pub fn keys(ns: &str) -> [String; 3] {
    [
        format!("cidr-{ns}"),
        format!("range-{ns}"),
        format!("interface-{ns}"),
    ]
}

/// The ConfigMap entry for `spec`: (`cidr-<ns>` or `range-<ns>`, value).
///
/// ```
/// use kubecloud_core::{AddressBlock, AddressPoolSpec};
/// let spec = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
/// assert_eq!(kubecloud_kubevip::translate::entry("acme", &spec), ("cidr-acme".into(), "203.0.113.0/28".into()));
/// ```
pub fn entry(ns: &str, spec: &AddressPoolSpec) -> (String, String) {
    let [cidr, range, _] = keys(ns);
    if spec
        .addresses
        .iter()
        .all(|b| matches!(b, AddressBlock::Cidr(_)))
    {
        let v: Vec<String> = spec.addresses.iter().map(|b| b.to_string()).collect();
        (cidr, v.join(","))
    } else {
        let v: Vec<String> = spec
            .addresses
            .iter()
            .map(|b| {
                let r = b.range();
                format!("{}-{}", r.first, r.last)
            })
            .collect();
        (range, v.join(","))
    }
}

/// The record kept for `spec`.
pub fn record(spec: &AddressPoolSpec) -> PoolRecord {
    let (interface, bgp) = match &spec.advertisement {
        Advertisement::L2(l2) => (l2.interfaces.first().cloned(), false),
        Advertisement::Bgp(_) => (None, true),
    };
    PoolRecord {
        name: spec.name.clone(),
        addresses: spec.addresses.clone(),
        auto_assign: spec.auto_assign,
        avoid_buggy_ips: spec.avoid_buggy_ips,
        interface,
        bgp,
    }
}

/// The ConfigMap merge patch setting namespace `ns`'s pool to `spec` (or removing it), with
/// `resource_version` as precondition: only this namespace's keys.
pub fn pool_patch(
    ns: &str,
    spec: Option<&AddressPoolSpec>,
    resource_version: Option<&str>,
) -> Result<serde_json::Value> {
    let [cidr, range, interface] = keys(ns);
    let mut data = serde_json::Map::new();
    for k in [&cidr, &range, &interface] {
        data.insert(k.clone(), serde_json::Value::Null);
    }
    let mut record_value = serde_json::Value::Null;
    if let Some(spec) = spec {
        let (key, value) = entry(ns, spec);
        data.insert(key, value.into());
        let rec = record(spec);
        if let Some(i) = &rec.interface {
            data.insert(interface, i.clone().into());
        }
        record_value = serde_json::to_string(&rec)
            .map_err(|e| Error::backend(BACKEND, "pool record", false, e))?
            .into();
    }
    let mut meta = serde_json::json!({
        "annotations": {format!("{POOL_RECORD}{ns}"): record_value},
    });
    if let Some(rv) = resource_version {
        meta["resourceVersion"] = rv.into();
    }
    Ok(serde_json::json!({"metadata": meta, "data": data}))
}

/// Parses a `cidr-*` (`cidr`) or `range-*` value as the provider does
/// (`addressbuilder.go`): comma-separated CIDRs or `from-to` ranges.
pub fn parse_entry(value: &str, cidr: bool) -> std::result::Result<Vec<IpRange>, String> {
    value
        .split(',')
        .map(|part| {
            if cidr {
                let net: kubecloud_core::IpNet = part
                    .parse()
                    .map_err(|_| format!("{part:?} is not a CIDR"))?;
                Ok(IpRange {
                    first: net.network(),
                    last: net.broadcast(),
                })
            } else {
                let (a, b) = part
                    .split_once('-')
                    .ok_or_else(|| format!("{part:?} is not a range"))?;
                let parse = |t: &str| {
                    t.parse::<IpAddr>()
                        .map_err(|_| format!("{t:?} is not an address"))
                };
                IpRange::new(parse(a)?, parse(b)?).map_err(|e| e.to_string())
            }
        })
        .collect()
}

/// A tenant's own pool as read from the ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub struct OwnPool {
    /// Its spec (from the record; the advertisement from the settings for BGP).
    pub spec: AddressPoolSpec,
    /// Whether the provider's entry is missing or says other addresses.
    pub incomplete: bool,
}

/// The pools that matter for one namespace, read from the ConfigMap.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolView {
    /// The tenant's pool, if it has one.
    pub own: Option<OwnPool>,
    /// The provider's entry for the namespace without a kubecloud record (the administrator's).
    pub foreign_entry: Option<String>,
    /// The global pool's ranges (`cidr-global`, else `range-global`).
    pub global: Option<Vec<IpRange>>,
    /// Every entry of the ConfigMap: (key, ranges or why they cannot be read).
    pub entries: Vec<(String, std::result::Result<Vec<IpRange>, String>)>,
    /// The ConfigMap's resourceVersion, if it exists.
    pub resource_version: Option<String>,
}

impl PoolView {
    /// The pool (own or global) holding `ip`, by name.
    pub fn pool_of(&self, ip: IpAddr) -> Option<String> {
        if let Some(own) = &self.own
            && own.spec.addresses.iter().any(|b| b.range().contains(ip))
        {
            return Some(own.spec.name.clone());
        }
        self.global
            .as_ref()
            .filter(|g| g.iter().any(|r| r.contains(ip)))
            .map(|_| GLOBAL.to_string())
    }
}

/// Reads the pools of namespace `ns` from the ConfigMap (absent: none).
pub fn read_pools(cm: Option<&ConfigMap>, ns: &str, settings: &Settings) -> Result<PoolView> {
    let Some(cm) = cm else {
        return Ok(PoolView::default());
    };
    let data = cm.data.clone().unwrap_or_default();
    let annotations = cm.metadata.annotations.clone().unwrap_or_default();
    let mut view = PoolView {
        resource_version: cm.metadata.resource_version.clone(),
        ..PoolView::default()
    };
    for (key, value) in &data {
        let cidr = key.starts_with("cidr-");
        if (cidr || key.starts_with("range-")) && value != "0.0.0.0/32" {
            view.entries.push((key.clone(), parse_entry(value, cidr)));
        }
    }
    let read = |key: &str, cidr: bool| data.get(key).map(|v| parse_entry(v, cidr));
    view.global = match read("cidr-global", true).or_else(|| read("range-global", false)) {
        Some(Ok(r)) => Some(r),
        _ => None,
    };
    let [cidr, range, _] = keys(ns);
    let entry_now = data.get(&cidr).or_else(|| data.get(&range));
    match annotations.get(&format!("{POOL_RECORD}{ns}")) {
        Some(text) => {
            let rec: PoolRecord = serde_json::from_str(text).map_err(|e| {
                Error::backend(
                    BACKEND,
                    format!(
                        "the kubevip ConfigMap's annotation {POOL_RECORD}{ns} is not a pool record: {e}"
                    ),
                    false,
                    e,
                )
            })?;
            let advertisement = match (&settings.announcement, rec.bgp) {
                (Announcement::Bgp(peers), true) => {
                    Advertisement::Bgp(kubecloud_core::BgpAdvertisement {
                        peers: peers.clone(),
                        ..kubecloud_core::BgpAdvertisement::default()
                    })
                }
                _ => Advertisement::L2(L2Advertisement {
                    interfaces: rec.interface.clone().into_iter().collect(),
                    ..L2Advertisement::default()
                }),
            };
            let spec = AddressPoolSpec {
                name: rec.name.clone(),
                addresses: rec.addresses.clone(),
                auto_assign: rec.auto_assign,
                avoid_buggy_ips: rec.avoid_buggy_ips,
                advertisement,
            };
            let (want_key, want_value) = entry(ns, &spec);
            let incomplete = data.get(&want_key) != Some(&want_value)
                || (want_key == cidr && data.contains_key(&range));
            view.own = Some(OwnPool { spec, incomplete });
        }
        None => view.foreign_entry = entry_now.cloned(),
    }
    Ok(view)
}

/// How many addresses of `spec` can be assigned (without `.0`/`.255` with `avoidBuggyIps`).
///
/// ```
/// use kubecloud_core::{AddressBlock, AddressPoolSpec};
/// let mut spec = AddressPoolSpec::l2("p", vec![AddressBlock::Cidr("10.0.0.0/23".parse().unwrap())]);
/// assert_eq!(kubecloud_kubevip::translate::capacity(&spec), 512);
/// spec.avoid_buggy_ips = true;
/// assert_eq!(kubecloud_kubevip::translate::capacity(&spec), 508);
/// ```
pub fn capacity(spec: &AddressPoolSpec) -> u128 {
    let mut n = spec.size();
    if spec.avoid_buggy_ips {
        for b in &spec.addresses {
            let r = b.range();
            if let (IpAddr::V4(a), IpAddr::V4(z)) = (r.first, r.last) {
                let (a, z) = (i64::from(u32::from(a)), i64::from(u32::from(z)));
                // How many x in a..=z have x % 256 == rest.
                let count = |rest: i64| (z - rest).div_euclid(256) - (a - 1 - rest).div_euclid(256);
                n = n.saturating_sub((count(0) + count(255)) as u128);
            }
        }
    }
    n
}

/// Whether `ip` is an IPv4 address ending in `.0` or `.255`.
pub fn buggy(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if matches!(v4.octets()[3], 0 | 255))
}

/// The addresses a Service holds: its `kube-vip.io/loadbalancerIPs` and its ingress.
pub fn held(svc: &Service) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = svc
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(LOADBALANCER_IPS))
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_default();
    for ip in ingress_ips(svc) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    ips
}

/// The `LoadBalancer` Service for `spec`: `address` is the address to request through
/// `kube-vip.io/loadbalancerIPs` (a requested one, or a sharer's: `shared`).
pub fn service(
    tenant: &Tenant,
    spec: &ExposureSpec,
    class: Option<&str>,
    address: Option<(IpAddr, bool)>,
) -> Result<Service> {
    let mut annotations = BTreeMap::new();
    match &spec.address {
        AddressRequest::Ip(ip) => {
            annotations.insert(REQUESTED_IP.to_string(), ip.to_string());
        }
        AddressRequest::Pool(pool) => {
            annotations.insert(ADDRESS_POOL.to_string(), pool.clone());
        }
        AddressRequest::Auto => {}
    }
    if let Some(key) = &spec.sharing_key {
        annotations.insert(SHARING_KEY.to_string(), key.clone());
    }
    if let Some((ip, shared)) = address {
        annotations.insert(LOADBALANCER_IPS.to_string(), ip.to_string());
        if shared {
            annotations.insert(SHARED_IP.to_string(), ip.to_string());
        }
    }
    let mut svc = exposure::load_balancer_service(
        tenant,
        spec,
        ownership_labels(tenant, &spec.name),
        annotations,
    )?;
    if let Some(class) = class
        && let Some(s) = svc.spec.as_mut()
    {
        s.load_balancer_class = Some(class.to_string());
    }
    Ok(svc)
}

/// Reads an exposure back from its Service; `failure` is the provider's latest failure Event
/// message for it, `pools` the pools of its namespace.
pub fn exposure(svc: &Service, failure: Option<&str>, pools: &PoolView) -> Exposure {
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let s = svc.spec.clone().unwrap_or_default();
    let address = if let Some(ip) = annotations
        .get(REQUESTED_IP)
        .and_then(|v| v.parse::<IpAddr>().ok())
    {
        AddressRequest::Ip(ip)
    } else if let Some(pool) = annotations.get(ADDRESS_POOL) {
        AddressRequest::Pool(pool.clone())
    } else {
        AddressRequest::Auto
    };
    let ports = s
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
        selector: s.selector.unwrap_or_default(),
        ports,
        address,
        sharing_key: annotations.get(SHARING_KEY).cloned(),
        local_traffic_only: s.external_traffic_policy.as_deref() == Some("Local"),
    };
    let ip = ingress_ip(svc);
    let requested = annotations
        .get(LOADBALANCER_IPS)
        .is_some_and(|v| !v.is_empty());
    let state = match (ip, failure) {
        (Some(_), _) => ExposureState::Assigned,
        (None, Some(reason)) if !requested => ExposureState::Failed {
            reason: reason.to_string(),
        },
        _ => ExposureState::Pending,
    };
    Exposure {
        pool: ip.and_then(|ip| pools.pool_of(ip)),
        spec: domain,
        ip,
        state,
    }
}
