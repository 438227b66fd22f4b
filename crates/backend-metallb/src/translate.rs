//! Domain specs → MetalLB objects and back, without I/O (golden-tested).
//!
//! | domain | objects (MetalLB's namespace unless said otherwise) |
//! |---|---|
//! | pool `p` of tenant `t` | `IPAddressPool` [`pool_object`]`(t, p)` dedicated to namespace `t` |
//! | its L2 announcement | `L2Advertisement` of the same name |
//! | its BGP announcement | `BGPAdvertisement` of the same name; a `BGPPeer` (v1beta2) per peer named [`peer_object`]`(t, p, peer)`; a `BFDProfile` of the peer's name when `bfd`; a `Secret` of the peer's name (type `kubernetes.io/basic-auth`, key `password`) when it has a password; a `Community` of the pool's name for well-known community names |
//! | exposure `e` of tenant `t` | `Service` `e` of type `LoadBalancer` in namespace `t` |
//!
//! Every object carries the ownership labels (`kubecloud.io/name` = the pool or exposure), and
//! peers also `kubecloud.io/peer` = the domain peer's name.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubecloud_core::{
    AddressBlock, AddressPoolSpec, AddressRequest, Advertisement, BgpAdvertisement, BgpPeer, Error,
    Exposure, ExposureSpec, ExposureState, IpRange, L2Advertisement, Protocol, Result,
    SecretString, ServicePort, Tenant,
};
use kubecloud_kube::exposure;
pub use kubecloud_kube::exposure::single_stack_ipv6;
use kubecloud_kube::{NAME, names, ownership_labels, tenant_namespace};
use kubecloud_models::metallb::{
    BgpAdvertisement as BgpAdvertisementObject, BgpPeer as BgpPeerObject, IpAddressPool,
    L2Advertisement as L2AdvertisementObject,
};
use serde_json::{Value, json};

/// MetalLB's CRD default for `BGPPeer.spec.peerPort`.
const BGP_PORT_DEFAULT: u64 = 179;
/// MetalLB's CRD default for `BGPAdvertisement.spec.aggregationLength`.
const AGGREGATION_V4_DEFAULT: u64 = 32;
/// MetalLB's CRD default for `BGPAdvertisement.spec.aggregationLengthV6`.
const AGGREGATION_V6_DEFAULT: u64 = 128;

/// One defaulted field: its name and a maker of its default value.
type SpecDefault = (&'static str, fn() -> Value);

/// The `spec` fields MetalLB's CRDs default (`default:` in their schemas), with the value the
/// API server fills in when an object leaves them out.
const SPEC_DEFAULTS: [SpecDefault; 7] = [
    ("peerPort", || json!(BGP_PORT_DEFAULT)),
    ("disableMP", || json!(false)),
    ("dualStackAddressFamily", || json!(false)),
    ("aggregationLength", || json!(AGGREGATION_V4_DEFAULT)),
    ("aggregationLengthV6", || json!(AGGREGATION_V6_DEFAULT)),
    ("autoAssign", || json!(true)),
    ("avoidBuggyIPs", || json!(false)),
];

/// Whether the live `spec` is the `desired` one, once the defaults the API server filled in
/// for fields `desired` leaves out are set aside: a field `desired` no longer sets (a dropped
/// `bfdProfile`) is still a difference.
pub fn same_spec(live: &Value, desired: &Value) -> bool {
    let mut live = live.clone();
    if let (Some(l), Some(d)) = (live.as_object_mut(), desired.as_object()) {
        for (field, default) in SPEC_DEFAULTS {
            if !d.contains_key(field) && l.get(field) == Some(&default()) {
                l.remove(field);
            }
        }
    }
    live == *desired
}

/// The API version of every MetalLB kind sent, except `BGPPeer`.
pub const METALLB_V1BETA1: &str = "metallb.io/v1beta1";
/// The API version `BGPPeer`s are sent as (the storage version).
pub const METALLB_V1BETA2: &str = "metallb.io/v1beta2";
/// The label naming the domain peer on a `BGPPeer`, its `BFDProfile` and password `Secret`.
pub const PEER: &str = "kubecloud.io/peer";
/// The service annotation naming the pool to take the address from.
pub const ADDRESS_POOL: &str = "metallb.io/address-pool";
/// The service annotation requesting addresses.
pub const LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
/// The service annotation holding the sharing key.
pub const ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
/// The service annotation MetalLB writes: the pool the address came from.
pub const ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";
/// The reason of the Event MetalLB writes when it cannot assign an address.
pub const ALLOCATION_FAILED: &str = "AllocationFailed";
/// The key of the password in a BGP password Secret.
pub const PASSWORD_KEY: &str = "password";

/// Well-known BGP communities (RFC 1997, RFC 3765) and their values.
const WELL_KNOWN: &[(&str, &str)] = &[
    ("no-export", "65535:65281"),
    ("no-advertise", "65535:65282"),
    ("no-export-subconfed", "65535:65283"),
    ("local-as", "65535:65283"),
    ("no-peer", "65535:65284"),
];

/// The `IPAddressPool` (and advertisement, community) name for pool `pool` of `tenant`.
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// assert_eq!(kubecloud_metallb::translate::pool_object(&acme, "public"), "acme-public");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn pool_object(tenant: &Tenant, pool: &str) -> String {
    names::cluster_scoped(tenant, pool)
}

/// The `BGPPeer` (and BFD profile, password Secret) name for peer `peer` of pool `pool`.
pub fn peer_object(tenant: &Tenant, pool: &str, peer: &str) -> String {
    names::cluster_scoped(tenant, &format!("{pool}-{peer}"))
}

/// The domain pool name behind a pool object name, when it is one of the tenant's
/// (`None` for another's or the administrator's pool).
pub fn domain_pool(tenant: &Tenant, object: &str) -> Option<String> {
    let prefix = format!("{}-", tenant.as_str());
    let name = object.strip_prefix(&prefix)?;
    (pool_object(tenant, name) == object).then(|| name.to_string())
}

/// Everything one address pool is made of.
#[derive(Clone, Default, PartialEq)]
pub struct PoolObjects {
    /// The `IPAddressPool`.
    pub pool: Value,
    /// The `L2Advertisement`, for L2 pools.
    pub l2_advertisement: Option<Value>,
    /// The `BGPAdvertisement`, for BGP pools.
    pub bgp_advertisement: Option<Value>,
    /// One `BGPPeer` (v1beta2) per peer.
    pub peers: Vec<Value>,
    /// One `BFDProfile` per peer with BFD.
    pub bfd_profiles: Vec<Value>,
    /// The `Community` defining well-known community names used, if any.
    pub community: Option<Value>,
    /// One `Secret` per peer with a password.
    pub secrets: Vec<Secret>,
}

impl std::fmt::Debug for PoolObjects {
    /// Names only: the Secrets hold passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |v: &Value| {
            v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        f.debug_struct("PoolObjects")
            .field("pool", &name(&self.pool))
            .field(
                "l2_advertisement",
                &self.l2_advertisement.as_ref().map(name),
            )
            .field(
                "bgp_advertisement",
                &self.bgp_advertisement.as_ref().map(name),
            )
            .field("peers", &self.peers.iter().map(name).collect::<Vec<_>>())
            .field(
                "secrets",
                &self
                    .secrets
                    .iter()
                    .map(|s| s.metadata.name.clone().unwrap_or_default())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl PoolObjects {
    /// The MetalLB objects (not the Secrets) in the order they are sent: profiles, community
    /// and peers before the pool, the pool before its advertisement.
    pub fn metallb_objects(&self) -> Vec<&Value> {
        self.bfd_profiles
            .iter()
            .chain(&self.community)
            .chain(&self.peers)
            .chain(std::iter::once(&self.pool))
            .chain(&self.l2_advertisement)
            .chain(&self.bgp_advertisement)
            .collect()
    }
}

fn metadata(name: &str, namespace: &str, labels: BTreeMap<String, String>) -> Value {
    json!({"name": name, "namespace": namespace, "labels": labels})
}

fn block_string(block: &AddressBlock) -> String {
    match block {
        AddressBlock::Cidr(net) => net.to_string(),
        AddressBlock::Range(r) => format!("{}-{}", r.first, r.last),
    }
}

/// Parses a pool's `spec.addresses` entry (a CIDR or an `a-b` range).
pub fn parse_block(entry: &str) -> Option<AddressBlock> {
    if let Ok(net) = entry.trim().parse::<ipnet::IpNet>() {
        return Some(AddressBlock::Cidr(net));
    }
    let (a, b) = entry.split_once('-')?;
    IpRange::new(a.trim().parse().ok()?, b.trim().parse().ok()?)
        .ok()
        .map(AddressBlock::Range)
}

fn is_numeric_community(c: &str) -> bool {
    let parts: Vec<&str> = c.split(':').collect();
    match parts.as_slice() {
        [a, b] => [a, b].iter().all(|p| p.parse::<u16>().is_ok()),
        ["large", a, b, d] => [a, b, d].iter().all(|p| p.parse::<u32>().is_ok()),
        _ => false,
    }
}

fn selector_terms(labels: &BTreeMap<String, String>) -> Option<Value> {
    (!labels.is_empty()).then(|| json!([{"matchLabels": labels}]))
}

/// The objects for pool `spec` of `tenant`, in MetalLB's namespace `namespace`. Checks the spec
/// first (nothing is built for bad input).
pub fn pool_objects(
    tenant: &Tenant,
    namespace: &str,
    spec: &AddressPoolSpec,
) -> Result<PoolObjects> {
    spec.validate()?;
    let name = pool_object(tenant, &spec.name);
    let labels = ownership_labels(tenant, &spec.name);
    let pool = json!({
        "apiVersion": METALLB_V1BETA1,
        "kind": "IPAddressPool",
        "metadata": metadata(&name, namespace, labels.clone()),
        "spec": {
            "addresses": spec.addresses.iter().map(block_string).collect::<Vec<_>>(),
            "autoAssign": spec.auto_assign,
            "avoidBuggyIPs": spec.avoid_buggy_ips,
            "serviceAllocation": {"namespaces": [tenant_namespace(tenant)]},
        },
    });
    let mut objects = PoolObjects {
        pool,
        ..PoolObjects::default()
    };
    match &spec.advertisement {
        Advertisement::L2(l2) => {
            let mut adv_spec = json!({"ipAddressPools": [name]});
            if let Some(terms) = selector_terms(&l2.node_selector) {
                adv_spec["nodeSelectors"] = terms;
            }
            if !l2.interfaces.is_empty() {
                adv_spec["interfaces"] = json!(l2.interfaces);
            }
            objects.l2_advertisement = Some(json!({
                "apiVersion": METALLB_V1BETA1,
                "kind": "L2Advertisement",
                "metadata": metadata(&name, namespace, labels),
                "spec": adv_spec,
            }));
        }
        Advertisement::Bgp(bgp) => bgp_objects(tenant, namespace, spec, bgp, &mut objects)?,
    }
    Ok(objects)
}

fn bgp_objects(
    tenant: &Tenant,
    namespace: &str,
    spec: &AddressPoolSpec,
    bgp: &BgpAdvertisement,
    objects: &mut PoolObjects,
) -> Result<()> {
    let name = pool_object(tenant, &spec.name);
    let labels = ownership_labels(tenant, &spec.name);
    let mut peer_names = Vec::new();
    for (i, peer) in bgp.peers.iter().enumerate() {
        let field = |f: &str| format!("advertisement.bgp.peers[{i}].{f}");
        let object = peer_object(tenant, &spec.name, &peer.name);
        let mut peer_labels = labels.clone();
        peer_labels.insert(PEER.to_string(), peer.name.clone());
        let mut peer_spec = json!({
            "myASN": peer.my_asn,
            "peerASN": peer.peer_asn,
            "peerAddress": peer.address.to_string(),
        });
        if let Some(port) = peer.port {
            if port == 0 {
                return Err(Error::invalid(field("port"), "must not be 0"));
            }
            peer_spec["peerPort"] = json!(port);
        }
        if let Some(hold) = peer.hold_time_secs {
            if hold != 0 && hold < 3 {
                return Err(Error::invalid(
                    field("holdTimeSecs"),
                    "must be 0 or at least 3 seconds",
                ));
            }
            peer_spec["holdTime"] = json!(format!("{hold}s"));
        }
        if let Some(keepalive) = peer.keepalive_time_secs {
            if let Some(hold) = peer.hold_time_secs
                && keepalive > hold
            {
                return Err(Error::invalid(
                    field("keepaliveTimeSecs"),
                    "must not be longer than the hold time",
                ));
            }
            peer_spec["keepaliveTime"] = json!(format!("{keepalive}s"));
        }
        if peer.ebgp_multihop {
            peer_spec["ebgpMultiHop"] = json!(true);
        }
        if peer.bfd {
            peer_spec["bfdProfile"] = json!(object);
            objects.bfd_profiles.push(json!({
                "apiVersion": METALLB_V1BETA1,
                "kind": "BFDProfile",
                "metadata": metadata(&object, namespace, peer_labels.clone()),
                "spec": {},
            }));
        }
        if let Some(password) = &peer.password {
            if password.is_empty() {
                return Err(Error::invalid(field("password"), "must not be empty"));
            }
            peer_spec["passwordSecret"] = json!({"name": object, "namespace": namespace});
            objects.secrets.push(Secret {
                metadata: ObjectMeta {
                    name: Some(object.clone()),
                    namespace: Some(namespace.to_string()),
                    labels: Some(peer_labels.clone()),
                    ..ObjectMeta::default()
                },
                type_: Some("kubernetes.io/basic-auth".into()),
                data: Some(BTreeMap::from([(
                    PASSWORD_KEY.to_string(),
                    ByteString(password.expose().as_bytes().to_vec()),
                )])),
                ..Secret::default()
            });
        }
        objects.peers.push(json!({
            "apiVersion": METALLB_V1BETA2,
            "kind": "BGPPeer",
            "metadata": metadata(&object, namespace, peer_labels),
            "spec": peer_spec,
        }));
        peer_names.push(object);
    }
    let mut communities = Vec::new();
    let mut aliases = Vec::new();
    for (i, community) in bgp.communities.iter().enumerate() {
        if is_numeric_community(community) {
            communities.push(community.clone());
        } else if let Some((_, value)) = WELL_KNOWN.iter().find(|(n, _)| n == community) {
            let alias = format!("{name}.{community}");
            aliases.push(json!({"name": alias, "value": value}));
            communities.push(alias);
        } else {
            return Err(Error::invalid(
                format!("advertisement.bgp.communities[{i}]"),
                format!(
                    "{community:?} is neither a community like 65535:65282 or large:1:2:3 nor a \
                     well-known name ({})",
                    WELL_KNOWN
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    if !aliases.is_empty() {
        objects.community = Some(json!({
            "apiVersion": METALLB_V1BETA1,
            "kind": "Community",
            "metadata": metadata(&name, namespace, labels.clone()),
            "spec": {"communities": aliases},
        }));
    }
    let mut adv_spec = json!({"ipAddressPools": [name], "peers": peer_names});
    if let Some(len) = bgp.aggregation_length {
        let v6_only = spec.addresses.iter().all(|b| b.range().first.is_ipv6());
        if v6_only {
            adv_spec["aggregationLengthV6"] = json!(len);
        } else if len > 32 {
            return Err(Error::invalid(
                "advertisement.bgp.aggregationLength",
                format!("{len} is longer than 32, and the pool has IPv4 addresses"),
            ));
        } else {
            adv_spec["aggregationLength"] = json!(len);
        }
    }
    if let Some(pref) = bgp.local_preference {
        adv_spec["localPref"] = json!(pref);
    }
    if !communities.is_empty() {
        adv_spec["communities"] = json!(communities);
    }
    objects.bgp_advertisement = Some(json!({
        "apiVersion": METALLB_V1BETA1,
        "kind": "BGPAdvertisement",
        "metadata": metadata(&name, namespace, labels),
        "spec": adv_spec,
    }));
    Ok(())
}

/// Seconds from a Go duration as kubecloud writes it (`"90s"`).
pub(crate) fn secs(v: &str) -> Option<u32> {
    v.strip_suffix('s')?.parse().ok()
}

fn malformed(what: &str) -> Error {
    Error::backend(
        "metallb",
        format!("malformed {what}"),
        false,
        std::io::Error::other(format!("{what} does not have the shape kubecloud writes")),
    )
}

/// Reads a pool's spec back from its objects: the pool, its L2 or BGP advertisement, its peers,
/// and the passwords of the peers' Secrets (by Secret name). Parts that are missing read as
/// their defaults; [`read_pool`] says whether any was.
pub fn pool_spec(
    tenant: &Tenant,
    pool: &IpAddressPool,
    l2: Option<&L2AdvertisementObject>,
    bgp: Option<&BgpAdvertisementObject>,
    peers: &[BgpPeerObject],
    passwords: &BTreeMap<String, SecretString>,
) -> Result<AddressPoolSpec> {
    read_pool(tenant, pool, l2, bgp, peers, passwords).map(|(spec, _)| spec)
}

/// Reads a pool back from its objects like [`pool_spec`], and says whether it is complete: the
/// `IPAddressPool` is written first and deleted last, so an interrupted create or delete leaves
/// a pool without its advertisement, a BGP advertisement without some of its peers, or a peer
/// without its password Secret. Such a pool reads as incomplete (missing parts as defaults),
/// never as an error, so that it can be completed or deleted.
///
/// Values equal to the defaults MetalLB's CRDs declare (and the API server fills in) read as
/// unset: `peerPort` 179, `aggregationLength` 32 (IPv4) and `aggregationLengthV6` 128.
pub fn read_pool(
    tenant: &Tenant,
    pool: &IpAddressPool,
    l2: Option<&L2AdvertisementObject>,
    bgp: Option<&BgpAdvertisementObject>,
    peers: &[BgpPeerObject],
    passwords: &BTreeMap<String, SecretString>,
) -> Result<(AddressPoolSpec, bool)> {
    let mut complete = true;
    let object = pool.metadata.name.as_deref().unwrap_or_default();
    let name = pool
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(NAME))
        .cloned()
        .or_else(|| domain_pool(tenant, object))
        .ok_or_else(|| malformed("IPAddressPool"))?;
    let addresses = pool
        .spec
        .addresses
        .iter()
        .map(|a| parse_block(a).ok_or_else(|| malformed("IPAddressPool addresses")))
        .collect::<Result<Vec<_>>>()?;
    let advertisement = match (l2, bgp) {
        (_, Some(bgp)) => {
            let s = &bgp.spec;
            let alias_prefix = format!("{object}.");
            let mut domain_peers = Vec::new();
            for peer_name in s.peers.iter().flatten() {
                let Some(peer) = peers
                    .iter()
                    .find(|p| p.metadata.name.as_deref() == Some(peer_name.as_str()))
                else {
                    complete = false;
                    continue;
                };
                let peer = peer_from(peer, passwords)?;
                complete &= peer.1;
                domain_peers.push(peer.0);
            }
            // The API server fills in the CRD's defaults (aggregationLength 32,
            // aggregationLengthV6 128): the one that applies to the pool's family is read, and
            // its default value reads as unset, which is what it means.
            let v6_only = addresses.iter().all(|b| b.range().first.is_ipv6());
            let (length, default) = if v6_only {
                (s.aggregation_length_v6, AGGREGATION_V6_DEFAULT)
            } else {
                (s.aggregation_length, AGGREGATION_V4_DEFAULT)
            };
            Advertisement::Bgp(BgpAdvertisement {
                peers: domain_peers,
                aggregation_length: length
                    .filter(|l| i64::from(*l) != default as i64)
                    .map(|l| {
                        u8::try_from(l).map_err(|_| malformed("BGPAdvertisement aggregationLength"))
                    })
                    .transpose()?,
                local_preference: s
                    .local_pref
                    .map(|p| u32::try_from(p).map_err(|_| malformed("BGPAdvertisement localPref")))
                    .transpose()?,
                communities: s
                    .communities
                    .iter()
                    .flatten()
                    .map(|c| match c.strip_prefix(&alias_prefix) {
                        Some(name) => name.to_string(),
                        None => c.clone(),
                    })
                    .collect(),
            })
        }
        (Some(l2), None) => Advertisement::L2(L2Advertisement {
            node_selector: l2
                .spec
                .node_selectors
                .iter()
                .flatten()
                .next()
                .and_then(|s| s.match_labels.clone())
                .unwrap_or_default(),
            interfaces: l2.spec.interfaces.clone().unwrap_or_default(),
        }),
        (None, None) => {
            complete = false;
            Advertisement::L2(L2Advertisement::default())
        }
    };
    let spec = AddressPoolSpec {
        name,
        addresses,
        auto_assign: pool.spec.auto_assign.unwrap_or(true),
        avoid_buggy_ips: pool.spec.avoid_buggy_i_ps.unwrap_or(false),
        advertisement,
    };
    Ok((spec, complete))
}

/// A peer read back, and whether its password Secret (if it names one) was there.
fn peer_from(
    peer: &BgpPeerObject,
    passwords: &BTreeMap<String, SecretString>,
) -> Result<(BgpPeer, bool)> {
    let s = &peer.spec;
    let password = s
        .password_secret
        .as_ref()
        .and_then(|p| p.name.as_deref())
        .map(|n| passwords.get(n).cloned());
    let name = peer
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(PEER))
        .cloned()
        .ok_or_else(|| malformed("BGPPeer"))?;
    let asn = |n: i64, what: &str| u32::try_from(n).map_err(|_| malformed(what));
    let peer = BgpPeer {
        name,
        my_asn: asn(s.my_asn, "BGPPeer myASN")?,
        peer_asn: s
            .peer_asn
            .map(|n| asn(n, "BGPPeer peerASN"))
            .transpose()?
            .unwrap_or_default(),
        address: s
            .peer_address
            .as_deref()
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| malformed("BGPPeer peerAddress"))?,
        // The CRD defaults `peerPort` to 179 (BGP's port): the default reads as unset.
        port: s
            .peer_port
            .filter(|p| *p != BGP_PORT_DEFAULT as i64)
            .map(|p| u16::try_from(p).map_err(|_| malformed("BGPPeer peerPort")))
            .transpose()?,
        hold_time_secs: s.hold_time.as_deref().and_then(secs),
        keepalive_time_secs: s.keepalive_time.as_deref().and_then(secs),
        ebgp_multihop: s.ebgp_multi_hop.unwrap_or(false),
        bfd: s.bfd_profile.is_some(),
        password: password.clone().flatten(),
    };
    let secret_missing = matches!(password, Some(None));
    Ok((peer, !secret_missing))
}

/// The password held by a BGP password Secret.
pub fn secret_password(secret: &Secret) -> Option<SecretString> {
    let bytes = secret.data.as_ref()?.get(PASSWORD_KEY)?;
    String::from_utf8(bytes.0.clone())
        .ok()
        .map(SecretString::new)
}

/// `(assigned, available)` from the pool's status as MetalLB writes it; before MetalLB has
/// written it, nothing assigned and `capacity` available.
pub fn pool_usage(pool: &IpAddressPool, capacity: u128) -> (u128, u128) {
    match &pool.status {
        Some(s) => {
            // The CRD has no minimum, MetalLB never writes a negative count.
            let n = |v: i64| u128::from(v.max(0).unsigned_abs());
            (
                n(s.assigned_i_pv4) + n(s.assigned_i_pv6),
                n(s.available_i_pv4) + n(s.available_i_pv6),
            )
        }
        None => (0, capacity),
    }
}

/// How many addresses a pool hands out (less `.0`/`.255` with `avoid_buggy_ips`).
pub fn capacity(spec: &AddressPoolSpec) -> u128 {
    let (v4, v6): (Vec<IpRange>, Vec<IpRange>) = spec
        .addresses
        .iter()
        .map(|b| b.range())
        .partition(|r| r.first.is_ipv4());
    [v4, v6]
        .iter()
        .map(|blocks| {
            kubecloud_core::ipam::AddressSpace::for_pool(&spec.name, blocks, spec.avoid_buggy_ips)
                .capacity()
        })
        .sum()
}

/// The `Service` exposing `spec`'s VMs for `tenant`, with MetalLB's annotations. Checks the
/// spec first.
pub fn service(tenant: &Tenant, spec: &ExposureSpec) -> Result<Service> {
    let mut annotations = BTreeMap::new();
    match &spec.address {
        AddressRequest::Auto => {}
        AddressRequest::Pool(pool) => {
            annotations.insert(ADDRESS_POOL.to_string(), pool_object(tenant, pool));
        }
        AddressRequest::Ip(ip) => {
            annotations.insert(LOAD_BALANCER_IPS.to_string(), ip.to_string());
        }
    }
    if let Some(key) = &spec.sharing_key {
        annotations.insert(ALLOW_SHARED_IP.to_string(), key.clone());
    }
    exposure::load_balancer_service(
        tenant,
        spec,
        ownership_labels(tenant, &spec.name),
        annotations,
    )
}

/// Reads an exposure back from its `Service`; `failure` is the message of MetalLB's latest
/// `AllocationFailed` Event for it, if any.
pub fn exposure(tenant: &Tenant, svc: &Service, failure: Option<&str>) -> Exposure {
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let spec = svc.spec.clone().unwrap_or_default();
    let address = if let Some(pool) = annotations.get(ADDRESS_POOL) {
        AddressRequest::Pool(domain_pool(tenant, pool).unwrap_or_else(|| pool.clone()))
    } else if let Some(ip) = annotations
        .get(LOAD_BALANCER_IPS)
        .and_then(|ips| ips.split(',').next())
        .and_then(|ip| ip.trim().parse::<IpAddr>().ok())
    {
        AddressRequest::Ip(ip)
    } else {
        AddressRequest::Auto
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
        sharing_key: annotations.get(ALLOW_SHARED_IP).cloned(),
        local_traffic_only: spec.external_traffic_policy.as_deref() == Some("Local"),
    };
    let ip = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .and_then(|i| i.first())
        .and_then(|i| i.ip.as_deref())
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    let pool = ip
        .and(annotations.get(ALLOCATED_FROM_POOL))
        .map(|object| domain_pool(tenant, object).unwrap_or_else(|| object.clone()));
    let state = match (ip, failure) {
        (Some(_), _) => ExposureState::Assigned,
        (None, Some(reason)) => ExposureState::Failed {
            reason: reason.to_string(),
        },
        (None, None) => ExposureState::Pending,
    };
    Exposure {
        spec: domain,
        ip,
        pool,
        state,
    }
}
