//! Pools the cluster administrator made (any `IPAddressPool` without kubecloud's labels) that a
//! tenant may use: listed as `shared`, readable, usable by name, never changed or deleted.
//!
//! A pool admits the tenant when its `serviceAllocation` is absent, names the tenant's namespace,
//! or selects it by its labels; a pool whose `serviceSelectors` select none of kubecloud's
//! Services is left out. Its announcement is read from the advertisements that select it (by
//! name, by `ipAddressPoolSelectors`, or all pools when they name none); pools nothing announces
//! are left out. Peers keep their object names; their passwords are never read.

use std::collections::BTreeMap;

use kubecloud_core::{
    AddressPool, AddressPoolSpec, Advertisement, BgpAdvertisement, BgpPeer, L2Advertisement,
};
use kubecloud_models::metallb::{
    BgpAdvertisement as BgpAdvertisementObject, BgpPeer as BgpPeerObject, IpAddressPool,
    L2Advertisement as L2AdvertisementObject,
};

use crate::selectors::{Selector, any_selects};
use crate::translate::{self, capacity, pool_usage};

/// Whether the administrator's pool `pool` admits Services of the tenant's namespace
/// `namespace` (labelled `namespace_labels`) carrying `service_labels`.
pub fn admits(
    pool: &IpAddressPool,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    service_labels: &BTreeMap<String, String>,
) -> bool {
    let Some(alloc) = &pool.spec.service_allocation else {
        return true;
    };
    let namespaces = alloc.namespaces.as_deref().unwrap_or_default();
    let namespace_selectors = alloc.namespace_selectors.as_deref().unwrap_or_default();
    let ns_ok = (namespaces.is_empty() && namespace_selectors.is_empty())
        || namespaces.iter().any(|n| n == namespace)
        || any_selects(namespace_selectors, namespace_labels);
    let service_selectors = alloc.service_selectors.as_deref().unwrap_or_default();
    ns_ok && (service_selectors.is_empty() || any_selects(service_selectors, service_labels))
}

/// Whether an advertisement naming `named` pools and selecting by `selectors` announces `pool`
/// (an advertisement naming and selecting none announces every pool).
fn announces<S: Selector>(
    named: Option<&[String]>,
    selectors: Option<&[S]>,
    pool: &IpAddressPool,
) -> bool {
    let named = named.unwrap_or_default();
    let selectors = selectors.unwrap_or_default();
    if named.is_empty() && selectors.is_empty() {
        return true;
    }
    let name = pool.metadata.name.as_deref().unwrap_or_default();
    let labels = pool.metadata.labels.clone().unwrap_or_default();
    named.iter().any(|n| n == name) || any_selects(selectors, &labels)
}

fn l2_announces(adv: &L2AdvertisementObject, pool: &IpAddressPool) -> bool {
    announces(
        adv.spec.ip_address_pools.as_deref(),
        adv.spec.ip_address_pool_selectors.as_deref(),
        pool,
    )
}

fn bgp_announces(adv: &BgpAdvertisementObject, pool: &IpAddressPool) -> bool {
    announces(
        adv.spec.ip_address_pools.as_deref(),
        adv.spec.ip_address_pool_selectors.as_deref(),
        pool,
    )
}

/// The administrator's pool as the tenant sees it, if something announces it.
pub fn view(
    pool: &IpAddressPool,
    l2s: &[L2AdvertisementObject],
    bgps: &[BgpAdvertisementObject],
    peers: &[BgpPeerObject],
) -> Option<AddressPool> {
    let name = pool.metadata.name.clone()?;
    let addresses = pool
        .spec
        .addresses
        .iter()
        .filter_map(|a| translate::parse_block(a))
        .collect();
    let advertisement = if let Some(l2) = l2s.iter().find(|a| l2_announces(a, pool)) {
        Advertisement::L2(L2Advertisement {
            node_selector: l2
                .spec
                .node_selectors
                .iter()
                .flatten()
                .next()
                .and_then(|s| s.match_labels.clone())
                .unwrap_or_default(),
            interfaces: l2.spec.interfaces.clone().unwrap_or_default(),
        })
    } else {
        let bgp = bgps.iter().find(|a| bgp_announces(a, pool))?;
        let named = bgp.spec.peers.as_deref().unwrap_or_default();
        let peers = peers
            .iter()
            .filter(|p| {
                named.is_empty()
                    || named
                        .iter()
                        .any(|n| Some(n.as_str()) == p.metadata.name.as_deref())
            })
            .filter_map(|p| {
                let ps = &p.spec;
                Some(BgpPeer {
                    name: p.metadata.name.clone()?,
                    my_asn: u32::try_from(ps.my_asn).ok()?,
                    peer_asn: ps
                        .peer_asn
                        .and_then(|a| u32::try_from(a).ok())
                        .unwrap_or_default(),
                    address: ps.peer_address.as_deref()?.parse().ok()?,
                    port: ps.peer_port.and_then(|p| u16::try_from(p).ok()),
                    hold_time_secs: ps.hold_time.as_deref().and_then(translate::secs),
                    keepalive_time_secs: ps.keepalive_time.as_deref().and_then(translate::secs),
                    ebgp_multihop: ps.ebgp_multi_hop.unwrap_or(false),
                    bfd: ps.bfd_profile.is_some(),
                    password: None,
                })
            })
            .collect();
        Advertisement::Bgp(BgpAdvertisement {
            peers,
            aggregation_length: bgp
                .spec
                .aggregation_length
                .and_then(|l| u8::try_from(l).ok()),
            local_preference: bgp.spec.local_pref.and_then(|l| u32::try_from(l).ok()),
            communities: bgp.spec.communities.clone().unwrap_or_default(),
        })
    };
    let spec = AddressPoolSpec {
        name,
        addresses,
        auto_assign: pool.spec.auto_assign.unwrap_or(true),
        avoid_buggy_ips: pool.spec.avoid_buggy_i_ps.unwrap_or(false),
        advertisement,
    };
    let (assigned, available) = pool_usage(pool, capacity(&spec));
    Some(AddressPool {
        spec,
        assigned,
        available,
        shared: true,
        incomplete: false,
    })
}
