//! BGP announcement on Cilium's BGP control plane (`cilium.io/v2`).
//!
//! Cilium's BGP speaker is configured cluster-wide: a `CiliumBGPClusterConfig` (the local ASN,
//! the nodes that speak, the peers with their address and ASN) and, per peer, a
//! `CiliumBGPPeerConfig` (timers, port, eBGP multihop, password secret, and per address family
//! a selector of the `CiliumBGPAdvertisement`s announced to that peer). Only one cluster config
//! may select a node (a second one gets `cilium.io/ConflictingClusterConfig` and makes no
//! `CiliumBGPNodeConfig`: `operator/pkg/bgpv2/cluster.go`), so the speaker is the cluster
//! administrator's setting, not a tenant's:
//!
//! - either given to the backend as [`CiliumBgp`] ([`CiliumBuilder::bgp`](crate::CiliumBuilder::bgp),
//!   or [`ConnectOptions::with`](kubecloud_kube::connect::ConnectOptions::with) when connecting):
//!   kubecloud then writes the cluster config ([`CiliumBgp::name`]) and one peer config per peer
//!   ([`peer_config_object`]) whose families select the advertisements labelled
//!   [`peer_label`]`(peer) = "true"`, before the first BGP pool is written (refused with
//!   `Conflict` if another cluster config, not kubecloud's, exists);
//! - or adopted: without [`CiliumBgp`], the cluster configs and peer configs already in the
//!   cluster are used as they are.
//!
//! A tenant's BGP pool names peers of that speaker: each pool peer must be a cluster peer of the
//! same `name`, `address`, `peerAsn` and `myAsn` (the instance's `localASN`); otherwise the pool is
//! refused naming the field, before anything is sent. Per pool, kubecloud writes a
//! `CiliumBGPAdvertisement` named like the pool (`advertisementType: Service`, `service.addresses:
//! [LoadBalancerIP]`, a selector matching exactly the pool's Services, `attributes` with the local
//! preference and communities) labelled [`peer_label`]`(peer)` for each of its peers. Before
//! sending, the pool's peers' peer configs must select it (for the pool's address families) and
//! no other peer's peer config may: so the pool is announced to exactly its peers.
//!
//! What a pool cannot set on Cilium (refused naming the field): a peer `password` (Cilium reads
//! it from the peer config's `authSecretRef`), `bfd` (`CiliumBGPPeerConfig` has no BFD), and
//! `port`, `holdTimeSecs`, `keepaliveTimeSecs`, `ebgpMultihop: true` unless they equal the peer
//! config's (defaults 179, 90, 30 and a TTL of 1). `aggregationLength` is Cilium's
//! `aggregationLengthIPv4` (at most 31; 32 means exact routes) or `aggregationLengthIPv6` (at most
//! 127) by the pool's family; Cilium ignores it for Services with `externalTrafficPolicy: Local`
//! (its BGP docs, "Routing Aggregation"), so such pools refuse nothing but announce exact routes
//! for those Services.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kubecloud_core::{AddressPoolSpec, BgpAdvertisement, Error, Labels, Result, Tenant};
use kubecloud_kube::{MANAGED_BY, MANAGER, TENANT, ownership_labels, tenant_namespace};
use kubecloud_models::cilium::bgp_advertisement::{
    CiliumBgpAdvertisementAdvertisements, CiliumBgpAdvertisementAdvertisementsAdvertisementType,
    CiliumBgpAdvertisementAdvertisementsAttributes,
    CiliumBgpAdvertisementAdvertisementsAttributesCommunities,
    CiliumBgpAdvertisementAdvertisementsSelector, CiliumBgpAdvertisementAdvertisementsService,
    CiliumBgpAdvertisementSpec,
};
use kubecloud_models::cilium::bgp_cluster_config::{
    CiliumBgpClusterConfigBgpInstances, CiliumBgpClusterConfigBgpInstancesPeers,
    CiliumBgpClusterConfigBgpInstancesPeersPeerConfigRef, CiliumBgpClusterConfigNodeSelector,
    CiliumBgpClusterConfigSpec,
};
use kubecloud_models::cilium::bgp_peer_config::{
    CiliumBgpPeerConfigFamilies, CiliumBgpPeerConfigFamiliesAdvertisements,
    CiliumBgpPeerConfigFamiliesAfi, CiliumBgpPeerConfigFamiliesSafi, CiliumBgpPeerConfigSpec,
    CiliumBgpPeerConfigTimers, CiliumBgpPeerConfigTransport,
};
use kubecloud_models::cilium::{
    CiliumBgpAdvertisement, CiliumBgpClusterConfig, CiliumBgpPeerConfig,
};
use serde_json::Value;

use crate::translate::{ADDRESS_POOL, SERVICE_NAMESPACE};

/// The label prefix of a `CiliumBGPAdvertisement` announced to a peer: the key is
/// [`peer_label`]`(peer)`, the value `"true"`.
pub const PEER_LABEL_PREFIX: &str = "peer.bgp.kubecloud.io/";
/// The advertisement annotation holding the pool's BGP settings as given (peers, communities in
/// their order), read back by `get_pool`.
pub const SPEC_ANNOTATION: &str = "kubecloud.io/bgp-advertisement";
/// Cilium's peer config defaults (CRD defaults of `CiliumBGPPeerConfig`).
const DEFAULT_PORT: u16 = 179;
const DEFAULT_HOLD: u32 = 90;
const DEFAULT_KEEPALIVE: u32 = 30;

/// Well-known communities Cilium names in `attributes.communities.wellKnown` (the
/// `BGPWellKnownCommunity` enum of the CRD).
const WELL_KNOWN: &[&str] = &[
    "internet",
    "planned-shut",
    "accept-own",
    "route-filter-translated-v4",
    "route-filter-v4",
    "route-filter-translated-v6",
    "route-filter-v6",
    "llgr-stale",
    "no-llgr",
    "blackhole",
    "no-export",
    "no-advertise",
    "no-export-subconfed",
    "no-peer",
];

/// The label key selecting advertisements for the cluster peer `peer`.
///
/// ```
/// assert_eq!(kubecloud_cilium::bgp::peer_label("tor"), "peer.bgp.kubecloud.io/tor");
/// ```
pub fn peer_label(peer: &str) -> String {
    format!("{PEER_LABEL_PREFIX}{peer}")
}

/// The name of the `CiliumBGPPeerConfig` kubecloud writes for the cluster peer `peer`.
///
/// ```
/// assert_eq!(kubecloud_cilium::bgp::peer_config_object("tor"), "kubecloud-tor");
/// ```
pub fn peer_config_object(peer: &str) -> String {
    format!("kubecloud-{peer}")
}

/// The cluster's BGP speaker, an administrator's setting (see the module docs).
///
/// ```
/// use kubecloud_cilium::bgp::{CiliumBgp, CiliumBgpPeer};
/// let bgp = CiliumBgp::new(64512).peer(CiliumBgpPeer::new("tor", "192.0.2.1".parse().unwrap(), 64513));
/// assert_eq!(bgp.name, "kubecloud");
/// assert!(bgp.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumBgp {
    /// The `CiliumBGPClusterConfig`'s name (`kubecloud` by default).
    pub name: String,
    /// The local ASN of the one BGP instance.
    pub local_asn: u32,
    /// Only nodes with these labels speak BGP (all nodes when empty).
    pub node_selector: Labels,
    /// The routers.
    pub peers: Vec<CiliumBgpPeer>,
}

/// A router of the cluster's BGP speaker, with its session settings (its `CiliumBGPPeerConfig`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CiliumBgpPeer {
    /// The peer's name: what tenants' pools name it.
    pub name: String,
    /// Its address.
    pub address: IpAddr,
    /// Its ASN.
    pub peer_asn: u32,
    /// Its port (179 when absent).
    pub port: Option<u16>,
    /// Hold time in seconds (90 when absent).
    pub hold_time_secs: Option<u32>,
    /// Keepalive time in seconds (30 when absent).
    pub keepalive_time_secs: Option<u32>,
    /// The eBGP multihop TTL (1 when absent).
    pub ebgp_multihop: Option<u8>,
    /// The name of the Secret (in Cilium's BGP secrets namespace) holding the session password
    /// under the key `password` (`authSecretRef`); kubecloud never reads it.
    pub auth_secret: Option<String>,
}

impl CiliumBgpPeer {
    /// A peer with Cilium's default session settings.
    pub fn new(name: impl Into<String>, address: IpAddr, peer_asn: u32) -> Self {
        Self {
            name: name.into(),
            address,
            peer_asn,
            port: None,
            hold_time_secs: None,
            keepalive_time_secs: None,
            ebgp_multihop: None,
            auth_secret: None,
        }
    }
}

impl CiliumBgp {
    /// A speaker of `local_asn` on all nodes, without peers yet.
    pub fn new(local_asn: u32) -> Self {
        Self {
            name: "kubecloud".into(),
            local_asn,
            node_selector: Labels::new(),
            peers: Vec::new(),
        }
    }

    /// Adds a peer.
    pub fn peer(mut self, peer: CiliumBgpPeer) -> Self {
        self.peers.push(peer);
        self
    }

    /// Only nodes with these labels speak BGP.
    pub fn node_selector(mut self, labels: Labels) -> Self {
        self.node_selector = labels;
        self
    }

    /// Checks the setting (field names as in [`CiliumBgp`]).
    pub fn validate(&self) -> Result<()> {
        kubecloud_core::validate_name("bgp.name", &self.name)?;
        if self.local_asn == 0 {
            return Err(Error::invalid("bgp.localAsn", "must not be 0"));
        }
        kubecloud_core::validate_labels("bgp.nodeSelector", &self.node_selector)?;
        for (i, peer) in self.peers.iter().enumerate() {
            let field = |f: &str| format!("bgp.peers[{i}].{f}");
            kubecloud_core::validate_name(&field("name"), &peer.name)?;
            if self.peers[..i].iter().any(|o| o.name == peer.name) {
                return Err(Error::invalid(
                    field("name"),
                    format!("{:?} is used twice", peer.name),
                ));
            }
            if peer.peer_asn == 0 {
                return Err(Error::invalid(field("peerAsn"), "must not be 0"));
            }
            if let (Some(hold), Some(keepalive)) = (peer.hold_time_secs, peer.keepalive_time_secs)
                && keepalive > hold
            {
                return Err(Error::invalid(
                    field("keepaliveTimeSecs"),
                    "must not be longer than the hold time (a rule of CiliumBGPPeerConfig)",
                ));
            }
            if peer.hold_time_secs.is_some_and(|h| h > 65535) {
                return Err(Error::invalid(field("holdTimeSecs"), "at most 65535"));
            }
            if peer.keepalive_time_secs.is_some_and(|h| h > 65535) {
                return Err(Error::invalid(field("keepaliveTimeSecs"), "at most 65535"));
            }
            if peer.ebgp_multihop == Some(0) {
                return Err(Error::invalid(field("ebgpMultihop"), "must be 1 or more"));
            }
        }
        Ok(())
    }
}

/// The `CiliumBGPClusterConfig` and the `CiliumBGPPeerConfig`s of `bgp` (checked first).
pub fn cluster_objects(
    bgp: &CiliumBgp,
) -> Result<(CiliumBgpClusterConfig, Vec<CiliumBgpPeerConfig>)> {
    bgp.validate()?;
    let labels = BTreeMap::from([(MANAGED_BY.to_string(), MANAGER.to_string())]);
    let mut config = CiliumBgpClusterConfig::new(
        &bgp.name,
        CiliumBgpClusterConfigSpec {
            bgp_instances: vec![CiliumBgpClusterConfigBgpInstances {
                name: bgp.name.clone(),
                local_asn: Some(i64::from(bgp.local_asn)),
                local_port: None,
                peers: Some(
                    bgp.peers
                        .iter()
                        .map(|p| CiliumBgpClusterConfigBgpInstancesPeers {
                            auto_discovery: None,
                            name: p.name.clone(),
                            peer_asn: Some(i64::from(p.peer_asn)),
                            peer_address: Some(p.address.to_string()),
                            peer_config_ref: Some(
                                CiliumBgpClusterConfigBgpInstancesPeersPeerConfigRef {
                                    name: peer_config_object(&p.name),
                                },
                            ),
                        })
                        .collect(),
                ),
            }],
            node_selector: (!bgp.node_selector.is_empty()).then(|| {
                CiliumBgpClusterConfigNodeSelector {
                    match_labels: Some(bgp.node_selector.clone()),
                    ..Default::default()
                }
            }),
        },
    );
    config.metadata.labels = Some(labels.clone());
    let mut peers = Vec::new();
    for p in &bgp.peers {
        let selector = CiliumBgpPeerConfigFamiliesAdvertisements {
            match_labels: Some(BTreeMap::from([(peer_label(&p.name), "true".to_string())])),
            ..Default::default()
        };
        let family = |afi| CiliumBgpPeerConfigFamilies {
            advertisements: Some(selector.clone()),
            afi,
            safi: CiliumBgpPeerConfigFamiliesSafi::Unicast,
        };
        let mut object = CiliumBgpPeerConfig::new(
            &peer_config_object(&p.name),
            CiliumBgpPeerConfigSpec {
                auth_secret_ref: p.auth_secret.clone(),
                ebgp_multihop: p.ebgp_multihop.map(i32::from),
                families: Some(vec![
                    family(CiliumBgpPeerConfigFamiliesAfi::Ipv4),
                    family(CiliumBgpPeerConfigFamiliesAfi::Ipv6),
                ]),
                graceful_restart: None,
                timers: (p.hold_time_secs.is_some() || p.keepalive_time_secs.is_some()).then(
                    || CiliumBgpPeerConfigTimers {
                        hold_time_seconds: p.hold_time_secs.map(|v| v as i32),
                        keep_alive_time_seconds: p.keepalive_time_secs.map(|v| v as i32),
                        ..Default::default()
                    },
                ),
                transport: p.port.map(|port| CiliumBgpPeerConfigTransport {
                    peer_port: Some(i32::from(port)),
                    ..Default::default()
                }),
            },
        );
        object.metadata.labels = Some(labels.clone());
        peers.push(object);
    }
    Ok((config, peers))
}

/// Whether a `metav1.LabelSelector` (as JSON) selects `labels`; an absent selector selects
/// nothing (Cilium's `LabelSelectorAsSelector(nil)`), an empty one everything.
fn selects(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_null()) else {
        return false;
    };
    let match_labels = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let value = e["key"].as_str().and_then(|k| labels.get(k));
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => value.is_some_and(|v| values.contains(&v.as_str())),
                Some("NotIn") => value.is_none_or(|v| !values.contains(&v.as_str())),
                Some("Exists") => value.is_some(),
                Some("DoesNotExist") => value.is_none(),
                _ => false,
            }
        });
    match_labels && expressions
}

/// The advertisement families (`ipv4`, `ipv6`) a peer config announces objects with `labels` in.
fn families_selecting(
    peer_config: &CiliumBgpPeerConfig,
    labels: &BTreeMap<String, String>,
) -> (bool, bool) {
    let mut out = (false, false);
    for family in peer_config.spec.families.iter().flatten() {
        if family.safi != CiliumBgpPeerConfigFamiliesSafi::Unicast {
            continue;
        }
        let selector = family
            .advertisements
            .as_ref()
            .and_then(|s| serde_json::to_value(s).ok());
        if !selects(selector.as_ref(), labels) {
            continue;
        }
        match family.afi {
            CiliumBgpPeerConfigFamiliesAfi::Ipv4 => out.0 = true,
            CiliumBgpPeerConfigFamiliesAfi::Ipv6 => out.1 = true,
            _ => {}
        }
    }
    out
}

/// Checks the BGP pool `spec`'s peers against the cluster's BGP speaker (`configs`, `peer_configs`)
/// and that its advertisement `labels` are announced to exactly those peers. Nothing is sent.
pub fn check_peers(
    spec: &AddressPoolSpec,
    bgp: &BgpAdvertisement,
    advertisement_labels: &BTreeMap<String, String>,
    configs: &[CiliumBgpClusterConfig],
    peer_configs: &[CiliumBgpPeerConfig],
) -> Result<()> {
    let cilium = "Cilium's BGP control plane";
    let peer_config = |name: &str| {
        peer_configs
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
    };
    let wants_v4 = spec.addresses.iter().any(|b| b.range().first.is_ipv4());
    let wants_v6 = spec.addresses.iter().any(|b| b.range().first.is_ipv6());
    let cluster_peers: Vec<(
        &CiliumBgpClusterConfigBgpInstances,
        &CiliumBgpClusterConfigBgpInstancesPeers,
    )> = configs
        .iter()
        .flat_map(|c| c.spec.bgp_instances.iter())
        .flat_map(|i| i.peers.iter().flatten().map(move |p| (i, p)))
        .collect();
    for (i, peer) in bgp.peers.iter().enumerate() {
        let field = |f: &str| format!("advertisement.bgp.peers[{i}].{f}");
        let Some((instance, cluster_peer)) =
            cluster_peers.iter().find(|(_, p)| p.name == peer.name)
        else {
            let known: Vec<&str> = cluster_peers.iter().map(|(_, p)| p.name.as_str()).collect();
            return Err(Error::invalid(
                field("name"),
                format!(
                    "{:?} is not a peer of the cluster's BGP configuration (CiliumBGPClusterConfig \
                     peers: {})",
                    peer.name,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        if cluster_peer
            .peer_address
            .as_deref()
            .and_then(|a| a.parse::<IpAddr>().ok())
            != Some(peer.address)
        {
            return Err(Error::invalid(
                field("address"),
                format!(
                    "the cluster's peer {:?} is at {}, not {}",
                    peer.name,
                    cluster_peer
                        .peer_address
                        .as_deref()
                        .unwrap_or("an auto-discovered address"),
                    peer.address
                ),
            ));
        }
        if cluster_peer.peer_asn != Some(i64::from(peer.peer_asn)) {
            return Err(Error::invalid(
                field("peerAsn"),
                format!(
                    "the cluster's peer {:?} has ASN {}, not {}",
                    peer.name,
                    cluster_peer.peer_asn.unwrap_or_default(),
                    peer.peer_asn
                ),
            ));
        }
        if instance.local_asn != Some(i64::from(peer.my_asn)) {
            return Err(Error::invalid(
                field("myAsn"),
                format!(
                    "the cluster's BGP instance {:?} has local ASN {}, not {}",
                    instance.name,
                    instance.local_asn.unwrap_or_default(),
                    peer.my_asn
                ),
            ));
        }
        if peer.password.is_some() {
            return Err(Error::invalid(
                field("password"),
                format!(
                    "{cilium} reads a session's password from its CiliumBGPPeerConfig's \
                     authSecretRef, the cluster administrator's setting: a pool cannot set one"
                ),
            ));
        }
        if peer.bfd {
            return Err(Error::invalid(
                field("bfd"),
                format!("{cilium} has no BFD (CiliumBGPPeerConfig has no such setting)"),
            ));
        }
        let config_name = cluster_peer
            .peer_config_ref
            .as_ref()
            .map(|r| r.name.as_str());
        let Some(config) = config_name.and_then(peer_config) else {
            return Err(Error::invalid(
                field("name"),
                format!(
                    "the cluster's peer {:?} has no CiliumBGPPeerConfig{}: nothing is announced \
                     to it",
                    peer.name,
                    config_name
                        .map(|n| format!(" ({n:?} is missing)"))
                        .unwrap_or_default()
                ),
            ));
        };
        let spec_of = &config.spec;
        let session = [
            (
                "port",
                peer.port.map(u32::from),
                spec_of
                    .transport
                    .as_ref()
                    .and_then(|t| t.peer_port)
                    .map_or(u32::from(DEFAULT_PORT), |v| v as u32),
            ),
            (
                "holdTimeSecs",
                peer.hold_time_secs,
                spec_of
                    .timers
                    .as_ref()
                    .and_then(|t| t.hold_time_seconds)
                    .map_or(DEFAULT_HOLD, |v| v as u32),
            ),
            (
                "keepaliveTimeSecs",
                peer.keepalive_time_secs,
                spec_of
                    .timers
                    .as_ref()
                    .and_then(|t| t.keep_alive_time_seconds)
                    .map_or(DEFAULT_KEEPALIVE, |v| v as u32),
            ),
        ];
        for (name, asked, configured) in session {
            if let Some(asked) = asked
                && asked != configured
            {
                return Err(Error::invalid(
                    field(name),
                    format!(
                        "{cilium} sets it per peer in CiliumBGPPeerConfig {:?} ({configured}), \
                         the cluster administrator's setting: a pool cannot set {asked}",
                        config.metadata.name.as_deref().unwrap_or_default()
                    ),
                ));
            }
        }
        if peer.ebgp_multihop && spec_of.ebgp_multihop.unwrap_or(1) <= 1 {
            return Err(Error::invalid(
                field("ebgpMultihop"),
                format!(
                    "{cilium} sets eBGP multihop per peer in CiliumBGPPeerConfig {:?} (a TTL of \
                     1 there), the cluster administrator's setting",
                    config.metadata.name.as_deref().unwrap_or_default()
                ),
            ));
        }
        let (v4, v6) = families_selecting(config, advertisement_labels);
        if (wants_v4 && !v4) || (wants_v6 && !v6) {
            return Err(Error::invalid(
                field("name"),
                format!(
                    "CiliumBGPPeerConfig {:?} of the cluster's peer {:?} does not announce \
                     kubecloud's advertisements for this pool's address family (its families' \
                     advertisements selector must select the label {}=true)",
                    config.metadata.name.as_deref().unwrap_or_default(),
                    peer.name,
                    peer_label(&peer.name)
                ),
            ));
        }
    }
    for (_, other) in &cluster_peers {
        if bgp.peers.iter().any(|p| p.name == other.name) {
            continue;
        }
        let Some(config) = other
            .peer_config_ref
            .as_ref()
            .and_then(|r| peer_config(&r.name))
        else {
            continue;
        };
        let (v4, v6) = families_selecting(config, advertisement_labels);
        if (wants_v4 && v4) || (wants_v6 && v6) {
            return Err(Error::invalid(
                "advertisement.bgp.peers",
                format!(
                    "CiliumBGPPeerConfig {:?} of the cluster's peer {:?}, which the pool does not \
                     name, would announce it too",
                    config.metadata.name.as_deref().unwrap_or_default(),
                    other.name
                ),
            ));
        }
    }
    Ok(())
}

/// The `CiliumBGPAdvertisement` announcing the Services of pool `spec` of `tenant` (named
/// `object`), labelled for each of its peers. Refuses what Cilium cannot express, naming the
/// field.
pub fn advertisement_object(
    tenant: &Tenant,
    object: &str,
    spec: &AddressPoolSpec,
    bgp: &BgpAdvertisement,
) -> Result<CiliumBgpAdvertisement> {
    let mut labels = ownership_labels(tenant, &spec.name);
    for peer in &bgp.peers {
        labels.insert(peer_label(&peer.name), "true".into());
    }
    let v6_only = spec.addresses.iter().all(|b| b.range().first.is_ipv6());
    let v4_only = spec.addresses.iter().all(|b| b.range().first.is_ipv4());
    let (mut agg4, mut agg6) = (None, None);
    if let Some(len) = bgp.aggregation_length {
        let field = "advertisement.bgp.aggregationLength";
        if v4_only {
            if len < 32 {
                agg4 = Some(i64::from(len));
            }
        } else if v6_only {
            if len < 128 {
                agg6 = Some(i64::from(len));
            }
        } else {
            return Err(Error::invalid(
                field,
                "the pool has IPv4 and IPv6 addresses and Cilium takes one length per family \
                 (aggregationLengthIPv4, aggregationLengthIPv6): use one pool per family",
            ));
        }
    }
    let (mut standard, mut large, mut well_known) = (Vec::new(), Vec::new(), Vec::new());
    for (i, community) in bgp.communities.iter().enumerate() {
        let parts: Vec<&str> = community.split(':').collect();
        match parts.as_slice() {
            [a, b] if a.parse::<u16>().is_ok() && b.parse::<u16>().is_ok() => {
                standard.push(community.clone())
            }
            ["large", a, b, c] if [a, b, c].iter().all(|p| p.parse::<u32>().is_ok()) => {
                large.push(format!("{a}:{b}:{c}"))
            }
            [name] if WELL_KNOWN.contains(name) => well_known.push(community.clone()),
            _ => {
                return Err(Error::invalid(
                    format!("advertisement.bgp.communities[{i}]"),
                    format!(
                        "{community:?} is neither a community like 65535:65282 or large:1:2:3 \
                         nor a well-known name Cilium knows ({})",
                        WELL_KNOWN.join(", ")
                    ),
                ));
            }
        }
    }
    let some = |v: Vec<String>| (!v.is_empty()).then_some(v);
    let communities =
        (!standard.is_empty() || !large.is_empty() || !well_known.is_empty()).then(|| {
            CiliumBgpAdvertisementAdvertisementsAttributesCommunities {
                large: some(large),
                standard: some(standard),
                well_known: some(well_known),
            }
        });
    let attributes = (communities.is_some() || bgp.local_preference.is_some()).then(|| {
        CiliumBgpAdvertisementAdvertisementsAttributes {
            communities,
            local_preference: bgp.local_preference.map(i64::from),
        }
    });
    let mut stored = bgp.clone();
    for p in &mut stored.peers {
        p.password = None;
    }
    let mut advertisement = CiliumBgpAdvertisement::new(
        object,
        CiliumBgpAdvertisementSpec {
            advertisements: vec![CiliumBgpAdvertisementAdvertisements {
                advertisement_type: CiliumBgpAdvertisementAdvertisementsAdvertisementType::Service,
                attributes,
                interface: None,
                selector: Some(CiliumBgpAdvertisementAdvertisementsSelector {
                    match_labels: Some(BTreeMap::from([
                        (MANAGED_BY.to_string(), MANAGER.to_string()),
                        (TENANT.to_string(), tenant.as_str().to_string()),
                        (ADDRESS_POOL.to_string(), spec.name.clone()),
                        (SERVICE_NAMESPACE.to_string(), tenant_namespace(tenant)),
                    ])),
                    ..Default::default()
                }),
                service: Some(CiliumBgpAdvertisementAdvertisementsService {
                    addresses: vec!["LoadBalancerIP".into()],
                    aggregation_length_i_pv4: agg4,
                    aggregation_length_i_pv6: agg6,
                }),
            }],
        },
    );
    advertisement.metadata.labels = Some(labels);
    advertisement.metadata.annotations = Some(BTreeMap::from([(
        SPEC_ANNOTATION.to_string(),
        serde_json::to_string(&stored).map_err(|e| {
            Error::invalid("advertisement.bgp", format!("cannot be written down: {e}"))
        })?,
    )]));
    Ok(advertisement)
}

/// The pool's BGP settings read back from its advertisement (`None` if it is not one of
/// kubecloud's).
pub fn read_advertisement(advertisement: &CiliumBgpAdvertisement) -> Option<BgpAdvertisement> {
    let text = advertisement
        .metadata
        .annotations
        .as_ref()?
        .get(SPEC_ANNOTATION)?;
    serde_json::from_str(text).ok()
}
