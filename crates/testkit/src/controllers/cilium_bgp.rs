//! A stand-in for Cilium's BGP control plane (`cilium.io/v2`): the operator part that turns
//! `CiliumBGPClusterConfig`s into one `CiliumBGPNodeConfig` per selected node, and (as a query,
//! [`advertised_routes`]) the agent part that decides which Service addresses a node announces to
//! which peer, with which path attributes. There is no BGP session: what a node would announce is
//! computed from the API objects, as the agent's reconcilers compute it.
//!
//! Modelled on cilium/cilium (main at the v1.19 branch cut, `933785d62034`, and the stored files
//! of the same code):
//!
//! - `operator/pkg/bgpv2/cluster.go` (`reconcileBGPClusterConfig`, `upsertNodeConfigs`,
//!   `deleteNodeConfigs`, `missingPeerConfigs`, `update*Condition`, `toNodeBGPInstance`): a
//!   cluster config without `nodeSelector` selects every node; for each selected node a
//!   `CiliumBGPNodeConfig` named after the node, owned (controller reference) by the cluster
//!   config, whose `bgpInstances` copy the cluster config's (`name`, `localASN`, `localPort`,
//!   peers with `name`, `peerAddress`, `peerASN`, `peerConfigRef`). A node whose node config is
//!   owned by another cluster config is skipped and that config is named in the condition
//!   `cilium.io/ConflictingClusterConfig` (reason `ConflictingClusterConfigs`, message `Selecting
//!   the same node(s) with ClusterConfig(s): [<names>]`, status True; False with no message
//!   otherwise). Node configs the config owns for nodes it no longer selects are deleted. The
//!   conditions `cilium.io/NoMatchingNode` (reason `NoMatchingNode`, message `No node matches
//!   spec.nodeSelector`) and `cilium.io/MissingPeerConfigs` (reason `MissingPeerConfigs`, message
//!   `Referenced CiliumBGPPeerConfig(s) are missing: [<names>]`) are written too, conditions
//!   sorted by type. Nodes are the Kubernetes `Node`s (the operator reads `CiliumNode`s, which
//!   carry the same names and labels). Cluster configs are handled oldest first, so the oldest
//!   keeps a contested node (the operator's store order decides).
//! - `pkg/bgpv1/manager/reconcilerv2/peer_advertisements.go` (`GetConfiguredAdvertisements`):
//!   for each peer of the node's instance, its `peerConfigRef`'s `CiliumBGPPeerConfig` (none, or
//!   missing: nothing is announced to it); per family of that peer config, the
//!   `CiliumBGPAdvertisement`s whose labels its `advertisements` selector matches (an absent
//!   selector matches nothing, an empty one everything).
//! - `pkg/bgpv1/manager/reconcilerv2/service.go` (`getServicePrefixes`, `getLBSvcPaths`,
//!   `getLoadBalancerIPRoutePolicy`, `checkServiceAdvertisement`, `serviceLabelSet`): of those
//!   advertisements' `Service` entries, those with a selector and `LoadBalancerIP` among
//!   `service.addresses`; they select Services by their labels plus
//!   `io.kubernetes.service.name`/`io.kubernetes.service.namespace`; only Services of type
//!   `LoadBalancer` without `loadBalancerClass` or with `io.cilium/bgp-control-plane`; each
//!   `status.loadBalancer.ingress` address of the family is announced as a host route with the
//!   entry's `attributes` (local preference, standard, well-known and large communities).
//!   `externalTrafficPolicy: Local` Services are announced only from nodes with a local endpoint:
//!   the double knows no endpoints, so it announces them from no node (stricter).
//! - Aggregation (`service.aggregationLengthIPv4`/`IPv6`, Cilium's BGP docs "Routing
//!   Aggregation" in `Documentation/network/bgp-control-plane/bgp-control-plane-v2.rst`): the
//!   address's prefix of that length instead of the host route; ignored for
//!   `externalTrafficPolicy: Local` Services.
//!
//! Only `ipv4`/`ipv6` `unicast` families are announced (the only ones Cilium supports). Where
//! several advertisements give one prefix to a peer, their communities are merged and differing
//! local preferences are reported as an error (`MergeRoutePolicies` refuses them).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use async_trait::async_trait;
use ipnet::IpNet;
use serde_json::{Value, json};

use super::{Controller, ControllerError, Watched};
use crate::cluster::{Cluster, ObjectEvent};
use crate::controllers::ControllerApi;

const V2: &str = "cilium.io/v2";
const CLUSTER_CONFIG: &str = "CiliumBGPClusterConfig";
const NODE_CONFIG: &str = "CiliumBGPNodeConfig";
const PEER_CONFIG: &str = "CiliumBGPPeerConfig";
const ADVERTISEMENT: &str = "CiliumBGPAdvertisement";
/// The condition of a cluster config selecting nodes another one already configures.
pub const CONFLICTING_CLUSTER_CONFIG: &str = "cilium.io/ConflictingClusterConfig";
/// The condition of a cluster config selecting no node.
pub const NO_MATCHING_NODE: &str = "cilium.io/NoMatchingNode";
/// The condition of a cluster config referring to missing peer configs.
pub const MISSING_PEER_CONFIGS: &str = "cilium.io/MissingPeerConfigs";
/// The load balancer class the BGP control plane announces besides the default.
pub const BGP_LOAD_BALANCER_CLASS: &str = "io.cilium/bgp-control-plane";

/// The simulated BGP control plane of the Cilium operator. Register it with
/// [`TestServerBuilder::controller`](crate::TestServerBuilder::controller); ask what a node
/// announces with [`advertised_routes`].
///
/// ```
/// use kubecloud_testkit::{CiliumBgpControlPlane, TestServer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::builder().controller(CiliumBgpControlPlane).start().await?;
/// assert!(server.controller("cilium-operator-bgp").is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct CiliumBgpControlPlane;

#[async_trait]
impl Controller for CiliumBgpControlPlane {
    fn name(&self) -> &str {
        "cilium-operator-bgp"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "nodes"),
            Watched::new("cilium.io", "ciliumbgpclusterconfigs"),
            Watched::new("cilium.io", "ciliumbgppeerconfigs"),
            Watched::new("cilium.io", "ciliumbgpnodeconfigs"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        _ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        converge(api.in_process()?)
    }
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `LabelSelectorAsSelector`: an absent (`null`) selector selects nothing, unless `nil_all`
/// (a cluster config's `nodeSelector`).
fn selects(selector: &Value, labels: &BTreeMap<String, String>, nil_all: bool) -> bool {
    if selector.is_null() {
        return nil_all;
    }
    let labels_ok = str_map(&selector["matchLabels"])
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
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

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// The cluster config owning a node config: `(name, uid)`.
fn owner(node_config: &Value) -> Option<(String, String)> {
    node_config["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["kind"] == CLUSTER_CONFIG && o["apiVersion"] == V2)
        .map(|o| {
            (
                o["name"].as_str().unwrap_or_default().to_string(),
                o["uid"].as_str().unwrap_or_default().to_string(),
            )
        })
}

/// `toNodeBGPInstance` (no overrides, no router-ID allocation).
fn node_instances(config: &Value) -> Value {
    let instances: Vec<Value> = config["spec"]["bgpInstances"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let mut out = json!({"name": i["name"]});
            for key in ["localASN", "localPort"] {
                if !i[key].is_null() {
                    out[key] = i[key].clone();
                }
            }
            let peers: Vec<Value> = i["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let mut peer = json!({"name": p["name"]});
                    for key in ["peerAddress", "peerASN", "peerConfigRef"] {
                        if !p[key].is_null() {
                            peer[key] = p[key].clone();
                        }
                    }
                    peer
                })
                .collect();
            if !peers.is_empty() {
                out["peers"] = json!(peers);
            }
            out
        })
        .collect();
    json!(instances)
}

fn set_condition(
    conditions: &mut Vec<Value>,
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: &Value,
) {
    let status = if status { "True" } else { "False" };
    let old = conditions.iter().position(|c| c["type"] == kind);
    let transition = match old.map(|i| &conditions[i]) {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(crate::meta::now()),
    };
    let cond = json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": transition,
    });
    match old {
        Some(i) => conditions[i] = cond,
        None => conditions.push(cond),
    }
}

fn converge(api: &Cluster) -> Result<(), ControllerError> {
    let mut configs: Vec<Value> = api
        .list(V2, CLUSTER_CONFIG, None)?
        .into_iter()
        .filter(|c| !is_deleting(c))
        .collect();
    configs.sort_by_key(|c| {
        (
            c["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            name_of(c).to_string(),
        )
    });
    let nodes = api.list("v1", "Node", None)?;
    let peer_configs: BTreeSet<String> = api
        .list(V2, PEER_CONFIG, None)?
        .iter()
        .map(|p| name_of(p).to_string())
        .collect();
    let mut node_configs: BTreeMap<String, Value> = api
        .list(V2, NODE_CONFIG, None)?
        .into_iter()
        .map(|n| (name_of(&n).to_string(), n))
        .collect();
    for config in &configs {
        let name = name_of(config).to_string();
        let uid = config["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let selector = &config["spec"]["nodeSelector"];
        let matching: BTreeSet<String> = nodes
            .iter()
            .filter(|n| selects(selector, &str_map(&n["metadata"]["labels"]), true))
            .map(|n| name_of(n).to_string())
            .collect();
        let mut conflicting = BTreeSet::new();
        let spec = json!({"bgpInstances": node_instances(config)});
        for node in &matching {
            match node_configs.get(node) {
                Some(existing) if owner(existing).is_none_or(|(_, u)| u != uid) => {
                    if let Some((other, _)) = owner(existing) {
                        conflicting.insert(other);
                    }
                }
                Some(existing) => {
                    if existing["spec"] != spec {
                        let mut updated = existing.clone();
                        updated["spec"] = spec.clone();
                        let written = api.replace(updated)?;
                        node_configs.insert(node.clone(), written);
                    }
                }
                None => {
                    let created = api.create(json!({
                        "apiVersion": V2,
                        "kind": NODE_CONFIG,
                        "metadata": {
                            "name": node,
                            "ownerReferences": [{
                                "apiVersion": V2,
                                "kind": CLUSTER_CONFIG,
                                "name": name,
                                "uid": uid,
                                "controller": true,
                            }],
                        },
                        "spec": spec,
                    }))?;
                    node_configs.insert(node.clone(), created);
                }
            }
        }
        let stale: Vec<String> = node_configs
            .iter()
            .filter(|(n, c)| !matching.contains(*n) && owner(c).is_some_and(|(_, u)| u == uid))
            .map(|(n, _)| n.clone())
            .collect();
        for node in stale {
            match api.delete(V2, NODE_CONFIG, None, &node) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
            node_configs.remove(&node);
        }
        let mut missing: Vec<String> = config["spec"]["bgpInstances"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|i| i["peers"].as_array().into_iter().flatten())
            .filter_map(|p| p["peerConfigRef"]["name"].as_str())
            .filter(|n| !peer_configs.contains(*n))
            .map(String::from)
            .collect();
        missing.sort();
        missing.dedup();
        let generation = &config["metadata"]["generation"];
        let before: Vec<Value> = config["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conditions = before.clone();
        set_condition(
            &mut conditions,
            NO_MATCHING_NODE,
            matching.is_empty(),
            "NoMatchingNode",
            "No node matches spec.nodeSelector",
            generation,
        );
        let missing_message = if missing.is_empty() {
            String::new()
        } else {
            format!(
                "Referenced CiliumBGPPeerConfig(s) are missing: [{}]",
                missing.join(" ")
            )
        };
        set_condition(
            &mut conditions,
            MISSING_PEER_CONFIGS,
            !missing.is_empty(),
            "MissingPeerConfigs",
            &missing_message,
            generation,
        );
        let conflict_message = if conflicting.is_empty() {
            String::new()
        } else {
            format!(
                "Selecting the same node(s) with ClusterConfig(s): [{}]",
                conflicting.into_iter().collect::<Vec<_>>().join(" ")
            )
        };
        set_condition(
            &mut conditions,
            CONFLICTING_CLUSTER_CONFIG,
            !conflict_message.is_empty(),
            "ConflictingClusterConfigs",
            &conflict_message,
            generation,
        );
        conditions.sort_by(|a, b| {
            a["type"]
                .as_str()
                .unwrap_or_default()
                .cmp(b["type"].as_str().unwrap_or_default())
        });
        let strip = |list: &[Value]| -> Vec<Value> {
            list.iter()
                .map(|c| {
                    let mut c = c.clone();
                    if let Some(m) = c.as_object_mut() {
                        m.remove("lastTransitionTime");
                    }
                    c
                })
                .collect()
        };
        if strip(&conditions) != strip(&before) {
            api.merge_patch_status(
                V2,
                CLUSTER_CONFIG,
                None,
                &name,
                &json!({"status": {"conditions": conditions}}),
            )?;
        }
    }
    Ok(())
}

/// A route a node announces to a peer, with its path attributes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BgpRoute {
    /// The prefix (a host route, or the aggregate).
    pub prefix: IpNet,
    /// The local preference attribute, if set.
    pub local_preference: Option<i64>,
    /// Standard communities (`<0-65535>:<0-65535>` or a 32-bit number), sorted.
    pub standard_communities: Vec<String>,
    /// Well-known communities by name (`no-export`...), sorted.
    pub well_known_communities: Vec<String>,
    /// Large communities (`a:b:c`), sorted.
    pub large_communities: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

fn merge(into: &mut Vec<String>, more: Vec<String>) {
    into.extend(more);
    into.sort();
    into.dedup();
}

/// What node `node` announces to its peer named `peer` (of any BGP instance of its
/// `CiliumBGPNodeConfig`): the Service routes, sorted by prefix. Empty when the node has no node
/// config, no such peer, or the peer has no (existing) peer config. An error when two
/// advertisements give one prefix different local preferences.
///
/// ```
/// use kubecloud_testkit::{CiliumBgpControlPlane, TestServer, cilium_bgp};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::builder().controller(CiliumBgpControlPlane).start().await?;
/// assert!(cilium_bgp::advertised_routes(&server.cluster(), "node-a", "tor")?.is_empty());
/// # Ok(()) }
/// ```
pub fn advertised_routes(
    cluster: &Cluster,
    node: &str,
    peer: &str,
) -> Result<Vec<BgpRoute>, String> {
    let err = |e: crate::ApiError| e.to_string();
    let Some(node_config) = cluster.get_opt(V2, NODE_CONFIG, None, node).map_err(err)? else {
        return Ok(Vec::new());
    };
    let advertisements = cluster.list(V2, ADVERTISEMENT, None).map_err(err)?;
    let services = cluster.list("v1", "Service", None).map_err(err)?;
    let mut routes: BTreeMap<IpNet, BgpRoute> = BTreeMap::new();
    let peers = node_config["spec"]["bgpInstances"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["peers"].as_array().into_iter().flatten())
        .filter(|p| p["name"] == peer);
    for node_peer in peers {
        let Some(config_name) = node_peer["peerConfigRef"]["name"].as_str() else {
            continue;
        };
        let Some(peer_config) = cluster
            .get_opt(V2, PEER_CONFIG, None, config_name)
            .map_err(err)?
        else {
            continue;
        };
        for family in peer_config["spec"]["families"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if family["safi"] != "unicast" {
                continue;
            }
            let v6 = match family["afi"].as_str() {
                Some("ipv4") => false,
                Some("ipv6") => true,
                _ => continue,
            };
            let selected = advertisements.iter().filter(|a| {
                selects(
                    &family["advertisements"],
                    &str_map(&a["metadata"]["labels"]),
                    false,
                )
            });
            for entry in
                selected.flat_map(|a| a["spec"]["advertisements"].as_array().into_iter().flatten())
            {
                if entry["advertisementType"] != "Service"
                    || entry["selector"].is_null()
                    || !strings(&entry["service"]["addresses"])
                        .iter()
                        .any(|a| a == "LoadBalancerIP")
                {
                    continue;
                }
                let aggregation = entry["service"][if v6 {
                    "aggregationLengthIPv6"
                } else {
                    "aggregationLengthIPv4"
                }]
                .as_u64();
                for svc in &services {
                    let spec = &svc["spec"];
                    if spec["type"] != "LoadBalancer" {
                        continue;
                    }
                    if spec["loadBalancerClass"]
                        .as_str()
                        .is_some_and(|c| c != BGP_LOAD_BALANCER_CLASS)
                    {
                        continue;
                    }
                    let local = spec["externalTrafficPolicy"] == "Local";
                    if local {
                        // No endpoints are known: announced from no node.
                        continue;
                    }
                    let mut labels = str_map(&svc["metadata"]["labels"]);
                    labels.insert("io.kubernetes.service.name".into(), name_of(svc).into());
                    labels.insert(
                        "io.kubernetes.service.namespace".into(),
                        svc["metadata"]["namespace"]
                            .as_str()
                            .unwrap_or_default()
                            .into(),
                    );
                    if !selects(&entry["selector"], &labels, false) {
                        continue;
                    }
                    let ingress = svc["status"]["loadBalancer"]["ingress"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i["ip"].as_str()?.parse::<IpAddr>().ok())
                        .filter(|ip| ip.is_ipv6() == v6);
                    for ip in ingress {
                        let host = IpNet::from(ip);
                        let prefix = match aggregation {
                            Some(len) => {
                                IpNet::new(ip, len as u8).map(|n| n.trunc()).unwrap_or(host)
                            }
                            None => host,
                        };
                        let attributes = &entry["attributes"];
                        let local_preference = attributes["localPreference"].as_i64();
                        let route = routes.entry(prefix).or_insert_with(|| BgpRoute {
                            prefix,
                            local_preference,
                            standard_communities: Vec::new(),
                            well_known_communities: Vec::new(),
                            large_communities: Vec::new(),
                        });
                        if route.local_preference != local_preference {
                            return Err(format!(
                                "advertisements give {prefix} the local preferences {:?} and \
                                 {local_preference:?}",
                                route.local_preference
                            ));
                        }
                        let communities = &attributes["communities"];
                        merge(
                            &mut route.standard_communities,
                            strings(&communities["standard"]),
                        );
                        merge(
                            &mut route.well_known_communities,
                            strings(&communities["wellKnown"]),
                        );
                        merge(&mut route.large_communities, strings(&communities["large"]));
                    }
                }
            }
        }
    }
    Ok(routes.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn an_absent_selector_selects_nothing_but_an_absent_node_selector_everything() {
        let l = labels(&[("a", "1")]);
        assert!(!selects(&Value::Null, &l, false));
        assert!(selects(&Value::Null, &l, true));
        assert!(selects(&json!({}), &l, false));
        assert!(selects(&json!({"matchLabels": {"a": "1"}}), &l, false));
        assert!(!selects(&json!({"matchLabels": {"a": "2"}}), &l, false));
        assert!(selects(
            &json!({"matchExpressions": [{"key": "b", "operator": "DoesNotExist"}]}),
            &l,
            false
        ));
    }
}
