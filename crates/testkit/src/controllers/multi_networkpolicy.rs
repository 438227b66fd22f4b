//! The multi-network policy controller (`multi-networkpolicy-iptables`) as it enforces
//! `MultiNetworkPolicy` on pods' secondary interfaces, kept as an in-memory view tests query
//! ([`MultiPolicies::allows`]: "would this packet be let through"), like the Kube-OVN double's
//! [`super::kubeovn_security::Northbound`]. Modelled from k8snetworkplumbingwg/multi-networkpolicy
//! (`README.md`, `scheme.yml`: the `NetworkPolicy` spec on `k8s.cni.cncf.io/v1beta1`) and
//! multi-networkpolicy-iptables (`pkg/server/policyrules.go`, `pkg/controllers/networkpolicy.go`):
//!
//! - A policy applies to a pod's interface on network `ns/nad` when it is in the pod's
//!   namespace, its `podSelector` selects the pod, and its annotation
//!   `k8s.v1.cni.cncf.io/policy-for` (comma-separated `ns/name` or `name`, the latter in the
//!   policy's namespace) names that network. A policy without the annotation applies to no
//!   network. The pod's interfaces and their addresses are Multus' `network-status`.
//! - `policyTypes` as NetworkPolicy defaults them (`Ingress`, plus `Egress` when there are egress
//!   rules). An interface some applying policy isolates in a direction lets through only what a
//!   rule of one of those policies allows (the union); otherwise everything.
//! - A rule's peers: none means every peer; `ipBlock` (`cidr` less `except`); `podSelector`
//!   (with `namespaceSelector` absent: the policy's namespace) means the addresses those pods
//!   have on the policy's networks. Ports: none means all; `protocol` (default TCP), a numeric
//!   `port` and `endPort`.
//!
//! Stricter where unsure: a named port, a `namespaceSelector`, or an ICMP packet against a rule
//! with ports match nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ipnet::IpNet;
use serde_json::Value;

use super::kubeovn_security::PacketQuery;
use super::whereabouts::NETWORK_STATUS;
use super::{Controller, ControllerError, Watched};
use crate::cluster::{Cluster, ObjectEvent};
use crate::controllers::ControllerApi;

const MNP: (&str, &str) = ("k8s.cni.cncf.io/v1beta1", "MultiNetworkPolicy");
/// The annotation naming the networks a policy applies to.
pub const POLICY_FOR: &str = "k8s.v1.cni.cncf.io/policy-for";

/// A pod's secondary interface as the controller sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInterface {
    /// The network (`ns/nad`).
    pub network: String,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
    /// The policies (`ns/name`) applying to it, sorted.
    pub policies: Vec<String>,
}

#[derive(Clone, Debug, Default)]
struct Pod {
    labels: BTreeMap<String, String>,
    /// network → addresses
    networks: BTreeMap<String, Vec<IpAddr>>,
}

#[derive(Clone, Debug, Default)]
struct State {
    /// (ns, name) → pod
    pods: BTreeMap<(String, String), Pod>,
    /// policies as stored
    policies: Vec<Value>,
}

/// The controller's view, shared with tests. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MultiPolicies {
    state: Arc<Mutex<State>>,
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for MultiPolicies {
    fn default() -> Self {
        Self {
            state: Arc::default(),
            changes: tokio::sync::watch::channel(0).0,
        }
    }
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(v["metadata"]["labels"].clone()).unwrap_or_default()
}

/// Whether a `LabelSelector` (matchLabels, matchExpressions) selects `labels`; an empty one
/// selects everything.
fn selects(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let exact = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let key = e["key"].as_str().unwrap_or_default();
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => labels
                    .get(key)
                    .is_some_and(|v| values.contains(&v.as_str())),
                Some("NotIn") => labels
                    .get(key)
                    .is_none_or(|v| !values.contains(&v.as_str())),
                Some("Exists") => labels.contains_key(key),
                Some("DoesNotExist") => !labels.contains_key(key),
                _ => false,
            }
        });
    exact && expressions
}

fn policy_networks(policy: &Value) -> Vec<String> {
    let ns = policy["metadata"]["namespace"].as_str().unwrap_or_default();
    policy["metadata"]["annotations"][POLICY_FOR]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            if s.contains('/') {
                s.to_string()
            } else {
                format!("{ns}/{s}")
            }
        })
        .collect()
}

fn policy_types(policy: &Value) -> (bool, bool) {
    match policy["spec"]["policyTypes"].as_array() {
        Some(types) => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        None => (true, policy["spec"]["egress"].is_array()),
    }
}

impl State {
    fn applies(&self, policy: &Value, ns: &str, pod: &Pod, network: &str) -> bool {
        policy["metadata"]["namespace"] == ns
            && selects(&policy["spec"]["podSelector"], &pod.labels)
            && policy_networks(policy).iter().any(|n| n == network)
    }

    fn peer_matches(&self, policy: &Value, peer: &Value, ip: IpAddr) -> bool {
        if let Some(cidr) = peer["ipBlock"]["cidr"].as_str() {
            let Ok(net) = cidr.parse::<IpNet>() else {
                return false;
            };
            let excepted = peer["ipBlock"]["except"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str()?.parse::<IpNet>().ok())
                .any(|e| e.contains(&ip));
            return net.contains(&ip) && !excepted;
        }
        if !peer["namespaceSelector"].is_null() {
            return false;
        }
        if peer["podSelector"].is_object() {
            let ns = policy["metadata"]["namespace"].as_str().unwrap_or_default();
            let networks = policy_networks(policy);
            return self.pods.iter().any(|((pns, _), p)| {
                pns == ns
                    && selects(&peer["podSelector"], &p.labels)
                    && networks
                        .iter()
                        .any(|n| p.networks.get(n).is_some_and(|ips| ips.contains(&ip)))
            });
        }
        false
    }

    fn port_matches(port: &Value, packet: &PacketQuery) -> bool {
        let protocol = port["protocol"]
            .as_str()
            .unwrap_or("TCP")
            .to_ascii_lowercase();
        if protocol != packet.protocol {
            return false;
        }
        match (&port["port"], packet.port) {
            (Value::Null, _) => true,
            (Value::Number(n), Some(p)) => {
                let first = n.as_u64().unwrap_or(0);
                let last = port["endPort"].as_u64().unwrap_or(first);
                (first..=last).contains(&u64::from(p))
            }
            _ => false,
        }
    }

    fn rule_matches(
        &self,
        policy: &Value,
        rule: &Value,
        peers_key: &str,
        packet: &PacketQuery,
    ) -> bool {
        let peers_ok = match rule[peers_key].as_array() {
            None => true,
            Some(peers) if peers.is_empty() => true,
            Some(peers) => peers
                .iter()
                .any(|p| self.peer_matches(policy, p, packet.peer)),
        };
        let ports_ok = match rule["ports"].as_array() {
            None => true,
            Some(ports) if ports.is_empty() => true,
            Some(ports) => ports.iter().any(|p| Self::port_matches(p, packet)),
        };
        peers_ok && ports_ok
    }
}

impl MultiPolicies {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver that changes whenever the view does.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The interface of pod `ns/pod` on `network` (`ns/nad`), `None` while the pod has none.
    pub fn interface(&self, ns: &str, pod: &str, network: &str) -> Option<PodInterface> {
        let state = self.lock();
        let p = state.pods.get(&(ns.to_string(), pod.to_string()))?;
        let ips = p.networks.get(network)?.clone();
        let mut policies: Vec<String> = state
            .policies
            .iter()
            .filter(|pol| state.applies(pol, ns, p, network))
            .map(|pol| {
                format!(
                    "{ns}/{}",
                    pol["metadata"]["name"].as_str().unwrap_or_default()
                )
            })
            .collect();
        policies.sort();
        Some(PodInterface {
            network: network.to_string(),
            ips,
            policies,
        })
    }

    /// The pods (names) of namespace `ns` whose labels include `key=value`.
    pub fn pods_labelled(&self, ns: &str, key: &str, value: &str) -> Vec<String> {
        self.lock()
            .pods
            .iter()
            .filter(|((pns, _), p)| {
                pns == ns && p.labels.get(key).map(String::as_str) == Some(value)
            })
            .map(|((_, name), _)| name.clone())
            .collect()
    }

    /// Whether pod `ns/pod`'s interface on `network` lets `packet` through; `None` while it
    /// has no such interface.
    pub fn allows(&self, ns: &str, pod: &str, network: &str, packet: &PacketQuery) -> Option<bool> {
        let state = self.lock();
        let p = state.pods.get(&(ns.to_string(), pod.to_string()))?;
        p.networks.get(network)?;
        let applying: Vec<&Value> = state
            .policies
            .iter()
            .filter(|pol| state.applies(pol, ns, p, network))
            .collect();
        let (peers_key, rules_key) = if packet.ingress {
            ("from", "ingress")
        } else {
            ("to", "egress")
        };
        let isolating: Vec<&&Value> = applying
            .iter()
            .filter(|pol| {
                let (ingress, egress) = policy_types(pol);
                if packet.ingress { ingress } else { egress }
            })
            .collect();
        if isolating.is_empty() {
            return Some(true);
        }
        Some(isolating.iter().any(|pol| {
            pol["spec"][rules_key]
                .as_array()
                .into_iter()
                .flatten()
                .any(|rule| state.rule_matches(pol, rule, peers_key, packet))
        }))
    }

    fn rebuild(&self, api: &Cluster) -> Result<(), ControllerError> {
        let mut pods = BTreeMap::new();
        for pod in api.list("v1", "Pod", None)? {
            if pod["metadata"]["deletionTimestamp"].is_string() {
                continue;
            }
            let Some(status) = pod["metadata"]["annotations"][NETWORK_STATUS].as_str() else {
                continue;
            };
            let entries: Vec<Value> = serde_json::from_str(status).unwrap_or_default();
            let networks = entries
                .iter()
                .filter(|e| e["default"] != true)
                .filter_map(|e| {
                    let ips = e["ips"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|i| i.as_str()?.parse().ok())
                        .collect();
                    Some((e["name"].as_str()?.to_string(), ips))
                })
                .collect();
            let key = (
                pod["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                pod["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            pods.insert(
                key,
                Pod {
                    labels: labels_of(&pod),
                    networks,
                },
            );
        }
        let policies = api.list(MNP.0, MNP.1, None)?;
        *self.lock() = State { pods, policies };
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }
}

/// The simulated multi-networkpolicy controller (see the module docs).
///
/// ```
/// let controller = kubecloud_testkit::MultiNetworkPolicyController::default();
/// let view = controller.policies();
/// assert!(view.interface("acme", "virt-launcher-web-abcde", "acme/front").is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct MultiNetworkPolicyController {
    view: MultiPolicies,
}

impl MultiNetworkPolicyController {
    /// The view tests query.
    pub fn policies(&self) -> MultiPolicies {
        self.view.clone()
    }
}

#[async_trait]
impl Controller for MultiNetworkPolicyController {
    fn name(&self) -> &str {
        "multi-networkpolicy"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "pods"),
            Watched::new("k8s.cni.cncf.io", "multi-networkpolicies"),
        ]
    }

    async fn reconcile(&self, api: &ControllerApi, _: &ObjectEvent) -> Result<(), ControllerError> {
        // Runs inside the API double only (not yet in `kubecloud-sim`).
        self.view.rebuild(api.in_process()?)
    }
}
