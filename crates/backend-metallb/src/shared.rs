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
use serde_json::Value;

use crate::translate::{self, capacity, pool_usage};

/// Whether `labels` satisfy a `metav1.LabelSelector`.
pub fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let match_labels = selector["matchLabels"].as_object();
    let labels_ok = match_labels
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let expressions_ok = selector["matchExpressions"]
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
    labels_ok && expressions_ok
}

fn any_selects(selectors: &Value, labels: &BTreeMap<String, String>) -> bool {
    selectors
        .as_array()
        .is_some_and(|s| s.iter().any(|sel| selects(sel, labels)))
}

/// Whether the administrator's pool `pool` admits Services of the tenant's namespace
/// `namespace` (labelled `namespace_labels`) carrying `service_labels`.
pub fn admits(
    pool: &Value,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    service_labels: &BTreeMap<String, String>,
) -> bool {
    let alloc = &pool["spec"]["serviceAllocation"];
    let namespaces = alloc["namespaces"].as_array().filter(|a| !a.is_empty());
    let selectors = alloc["namespaceSelectors"]
        .as_array()
        .filter(|a| !a.is_empty());
    let ns_ok = (namespaces.is_none() && selectors.is_none())
        || namespaces.is_some_and(|n| n.iter().any(|n| n == namespace))
        || any_selects(&alloc["namespaceSelectors"], namespace_labels);
    let svc_selectors = alloc["serviceSelectors"]
        .as_array()
        .filter(|a| !a.is_empty());
    ns_ok && (svc_selectors.is_none() || any_selects(&alloc["serviceSelectors"], service_labels))
}

fn announces(adv: &Value, pool: &Value) -> bool {
    let name = &pool["metadata"]["name"];
    let named = adv["spec"]["ipAddressPools"].as_array();
    let selectors = adv["spec"]["ipAddressPoolSelectors"].as_array();
    match (
        named.filter(|a| !a.is_empty()),
        selectors.filter(|a| !a.is_empty()),
    ) {
        (None, None) => true,
        (named, _) => {
            named.is_some_and(|n| n.contains(name))
                || any_selects(
                    &adv["spec"]["ipAddressPoolSelectors"],
                    &labels(&pool["metadata"]["labels"]),
                )
        }
    }
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect()
}

fn secs(v: &Value) -> Option<u32> {
    v.as_str()?.strip_suffix('s')?.parse().ok()
}

/// The administrator's pool as the tenant sees it, if something announces it.
pub fn view(pool: &Value, l2s: &[Value], bgps: &[Value], peers: &[Value]) -> Option<AddressPool> {
    let name = pool["metadata"]["name"].as_str()?.to_string();
    let addresses = pool["spec"]["addresses"]
        .as_array()?
        .iter()
        .filter_map(|a| a.as_str().and_then(translate::parse_block))
        .collect();
    let advertisement = if let Some(l2) = l2s.iter().find(|a| announces(a, pool)) {
        Advertisement::L2(L2Advertisement {
            node_selector: labels(&l2["spec"]["nodeSelectors"][0]["matchLabels"]),
            interfaces: l2["spec"]["interfaces"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i.as_str().map(String::from))
                .collect(),
        })
    } else {
        let bgp = bgps.iter().find(|a| announces(a, pool))?;
        let s = &bgp["spec"];
        let named: Vec<&str> = s["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let peers = peers
            .iter()
            .filter(|p| {
                named.is_empty()
                    || named.contains(&p["metadata"]["name"].as_str().unwrap_or_default())
            })
            .filter_map(|p| {
                let ps = &p["spec"];
                Some(BgpPeer {
                    name: p["metadata"]["name"].as_str()?.to_string(),
                    my_asn: ps["myASN"].as_u64()? as u32,
                    peer_asn: ps["peerASN"].as_u64().unwrap_or_default() as u32,
                    address: ps["peerAddress"].as_str()?.parse().ok()?,
                    port: ps["peerPort"].as_u64().map(|p| p as u16),
                    hold_time_secs: secs(&ps["holdTime"]),
                    keepalive_time_secs: secs(&ps["keepaliveTime"]),
                    ebgp_multihop: ps["ebgpMultiHop"].as_bool().unwrap_or(false),
                    bfd: ps["bfdProfile"].is_string(),
                    password: None,
                })
            })
            .collect();
        Advertisement::Bgp(BgpAdvertisement {
            peers,
            aggregation_length: s["aggregationLength"].as_u64().map(|l| l as u8),
            local_preference: s["localPref"].as_u64().map(|l| l as u32),
            communities: s["communities"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c.as_str().map(String::from))
                .collect(),
        })
    };
    let spec = AddressPoolSpec {
        name,
        addresses,
        auto_assign: pool["spec"]["autoAssign"].as_bool().unwrap_or(true),
        avoid_buggy_ips: pool["spec"]["avoidBuggyIPs"].as_bool().unwrap_or(false),
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
