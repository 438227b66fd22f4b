//! Multus and whereabouts as a VM's pod meets them when it starts and goes: the CNI `ADD` and
//! `DEL` Multus runs for each network of a pod's network-selection annotation, with whereabouts
//! as IPAM. Modelled from the upstream sources:
//!
//! - **Multus** (multus-cni `pkg/multus/multus.go`, `pkg/k8sclient/k8sclient.go`,
//!   `docs/how-to-use.md`): the pod annotation `k8s.v1.cni.cncf.io/networks` (a JSON list of
//!   `{name, namespace, interface, mac, ips}` or a comma-separated `ns/name` list) names
//!   `NetworkAttachmentDefinition`s (namespace defaults to the pod's); interfaces are `net1`,
//!   `net2`… unless named. A runtime `mac` (or `ips`) reaches the plugin only when its config
//!   declares the capability (`capabilities: {"mac": true}`), else it is dropped. When every
//!   network is added, Multus writes `k8s.v1.cni.cncf.io/network-status` (name `ns/nad`,
//!   `interface`, `ips`, `mac`). A missing definition fails the sandbox: the pod gets no status
//!   (here: stays without it; Multus retries as the kubelet does, here on the next pod event).
//! - **whereabouts** (`pkg/allocate/allocate.go`, `pkg/storage/kubernetes/ipam.go` at v0.9.4):
//!   the `IPPool` is `<network_name>-<range with : and / as ->` in whereabouts' namespace,
//!   created empty when missing; allocations are keyed by the offset from the range's network
//!   address (`id` = container id, `podref` = `ns/pod`, `ifname`). A pod/interface that already
//!   has an allocation gets it again; otherwise the lowest address from the first usable
//!   (network + 1, or `range_start`) to the last usable (broadcast − 1, or `range_end`) that is
//!   neither allocated, nor inside an `exclude` CIDR, nor held in an
//!   `OverlappingRangeIPReservation` of another pod (name `<network_name>-<ip>`, `:` as `-`;
//!   overlapping ranges are on by default). whereabouts does **not** skip the gateway: only
//!   `exclude` does. A full range fails the `ADD` (no status). `DEL` removes the allocation of
//!   that container id and interface and its overlapping-range reservation. IPAM `static`
//!   (reference plugins) hands out its `addresses`.
//!
//! Here the `DEL` is run when the pod is deleted: every allocation (and overlapping-range
//! reservation) whose container id is the pod's uid goes, found by scanning whereabouts'
//! namespace (so it works after the attachment is gone, as Multus' cached config does).
//! [`WhereaboutsKnobs::leak_releases`] makes it skip that, leaving what a node crash leaves:
//! allocations whose pod is gone, for whereabouts' reconciler (or kubecloud) to reclaim.
//!
//! Not modelled: node slices (`node_slice_size`), `ipRanges` with several ranges (the first is
//! taken), leader election, IPv6 normalisation beyond `:` → `-`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use ipnet::IpNet;
use serde_json::{Value, json};

use super::{Controller, ControllerError, Watched};
use crate::cluster::{Cluster, ObjectEvent};
use crate::controllers::ControllerApi;
use crate::store::EventType;

/// The network-selection annotation.
pub const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
/// The network-status annotation Multus writes.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";
const NAD: (&str, &str) = ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition");
const POOL: (&str, &str) = ("whereabouts.cni.cncf.io/v1alpha1", "IPPool");
const ORIP: (&str, &str) = (
    "whereabouts.cni.cncf.io/v1alpha1",
    "OverlappingRangeIPReservation",
);

/// Knobs of a running [`WhereaboutsController`]. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct WhereaboutsKnobs {
    leak: Arc<AtomicBool>,
}

impl WhereaboutsKnobs {
    /// While `true`, a deleted pod's addresses are not released (a `DEL` that never ran).
    pub fn leak_releases(&self, leak: bool) {
        self.leak.store(leak, Ordering::SeqCst);
    }
}

/// Simulated Multus + whereabouts (see the module docs).
///
/// ```
/// let multus = kubecloud_testkit::WhereaboutsController::new("kube-system");
/// multus.knobs().leak_releases(false);
/// ```
#[derive(Debug, Clone)]
pub struct WhereaboutsController {
    namespace: String,
    knobs: WhereaboutsKnobs,
}

impl Default for WhereaboutsController {
    fn default() -> Self {
        Self::new("kube-system")
    }
}

impl WhereaboutsController {
    /// whereabouts keeping its pools in `namespace` (its `WHEREABOUTS_NAMESPACE`).
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            knobs: WhereaboutsKnobs::default(),
        }
    }

    /// The knobs, shared with the running controller.
    pub fn knobs(&self) -> WhereaboutsKnobs {
        self.knobs.clone()
    }
}

/// One element of a network-selection annotation.
#[derive(Debug, Clone)]
struct Selection {
    namespace: String,
    name: String,
    interface: Option<String>,
    mac: Option<String>,
}

fn selections(pod_ns: &str, value: &str) -> Vec<Selection> {
    if let Ok(list) = serde_json::from_str::<Vec<Value>>(value) {
        return list
            .iter()
            .filter_map(|e| {
                Some(Selection {
                    namespace: e["namespace"].as_str().unwrap_or(pod_ns).to_string(),
                    name: e["name"].as_str()?.to_string(),
                    interface: e["interface"].as_str().map(String::from),
                    mac: e["mac"].as_str().map(String::from),
                })
            })
            .collect();
    }
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (ns, name) = s.split_once('/').unwrap_or((pod_ns, s));
            Selection {
                namespace: ns.to_string(),
                name: name.split('@').next().unwrap_or(name).to_string(),
                interface: s.split_once('@').map(|(_, i)| i.to_string()),
                mac: None,
            }
        })
        .collect()
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(n: u128, like: IpAddr) -> Option<IpAddr> {
    match like {
        IpAddr::V4(_) => u32::try_from(n).ok().map(|v| IpAddr::V4(v.into())),
        IpAddr::V6(_) => Some(IpAddr::V6(n.into())),
    }
}

/// `exclude` entries: CIDRs or single addresses (`parseExcludedRange`).
fn excluded(config: &Value) -> Vec<IpNet> {
    config["exclude"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|s| {
            s.parse::<IpNet>()
                .ok()
                .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}

fn normalized(ip: IpAddr, network_name: &str) -> String {
    let ip = ip.to_string().replace(':', "-");
    if network_name.is_empty() {
        ip
    } else {
        format!("{network_name}-{ip}")
    }
}

impl WhereaboutsController {
    fn ensure_namespace(&self, api: &Cluster) -> Result<(), ControllerError> {
        if api
            .get_opt("v1", "Namespace", None, &self.namespace)?
            .is_none()
        {
            match api.create(json!({"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": self.namespace}}))
            {
                Ok(_) => {}
                Err(e) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// whereabouts' `ADD`: the address of `podref`/`ifname` in the range of `ipam`, or `None`
    /// when the range is full.
    fn allocate(
        &self,
        api: &Cluster,
        ipam: &Value,
        container: &str,
        podref: &str,
        ifname: &str,
    ) -> Result<Option<(IpAddr, u8)>, ControllerError> {
        let range = ipam["range"]
            .as_str()
            .or(ipam["ipRanges"][0]["range"].as_str())
            .unwrap_or_default();
        let Ok(net) = range.parse::<IpNet>() else {
            return Err(ControllerError::Other(format!(
                "whereabouts: range {range:?} is not a CIDR"
            )));
        };
        let network_name = ipam["network_name"].as_str().unwrap_or_default();
        let mut pool_range = net.to_string();
        if pool_range.ends_with(':') {
            pool_range.push('0');
        }
        let normalized_range = pool_range.replace([':', '/'], "-");
        let pool_name = if network_name.is_empty() {
            normalized_range
        } else {
            format!("{network_name}-{normalized_range}")
        };
        self.ensure_namespace(api)?;
        let ns = Some(self.namespace.as_str());
        let mut pool = match api.get_opt(POOL.0, POOL.1, ns, &pool_name)? {
            Some(p) => p,
            None => api.create(json!({
                "apiVersion": POOL.0, "kind": POOL.1,
                "metadata": {"name": pool_name, "namespace": self.namespace},
                "spec": {"range": net.to_string(), "allocations": {}},
            }))?,
        };
        let base = to_u128(net.network());
        let allocations = pool["spec"]["allocations"].clone();
        let allocations = allocations.as_object().cloned().unwrap_or_default();
        // The same pod and interface again: its address.
        for (offset, a) in &allocations {
            if a["podref"] == podref && a["ifname"] == ifname {
                let ip = offset
                    .parse::<u128>()
                    .ok()
                    .and_then(|o| from_u128(base + o, net.network()));
                return Ok(ip.map(|ip| (ip, net.prefix_len())));
            }
        }
        let first = ipam["range_start"]
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .filter(|ip| net.contains(ip))
            .map(to_u128)
            .unwrap_or(base + 1);
        let last_usable = to_u128(net.broadcast()) - 1;
        let last = ipam["range_end"]
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .filter(|ip| net.contains(ip))
            .map(to_u128)
            .filter(|e| *e >= first)
            .unwrap_or(last_usable);
        let exclude = excluded(ipam);
        let overlapping = ipam["enable_overlapping_ranges"].as_bool().unwrap_or(true);
        let mut n = first;
        while n <= last {
            let offset = n - base;
            let Some(ip) = from_u128(n, net.network()) else {
                break;
            };
            n += 1;
            if allocations.contains_key(&offset.to_string()) {
                continue;
            }
            if exclude.iter().any(|e| e.contains(&ip)) {
                continue;
            }
            if overlapping
                && let Some(r) = api.get_opt(ORIP.0, ORIP.1, ns, &normalized(ip, network_name))?
                && r["spec"]["podref"] != podref
            {
                continue;
            }
            pool["spec"]["allocations"][offset.to_string()] =
                json!({"id": container, "podref": podref, "ifname": ifname});
            // An update with the pool's resourceVersion: a concurrent writer makes it fail and
            // the reconcile is retried, as whereabouts retries on conflicts.
            api.replace(pool)?;
            if overlapping {
                let name = normalized(ip, network_name);
                match api.create(json!({
                    "apiVersion": ORIP.0, "kind": ORIP.1,
                    "metadata": {"name": name, "namespace": self.namespace},
                    "spec": {"containerid": container, "podref": podref, "ifname": ifname},
                })) {
                    Ok(_) => {}
                    Err(e) if e.code == 409 => {}
                    Err(e) => return Err(e.into()),
                }
            }
            return Ok(Some((ip, net.prefix_len())));
        }
        tracing::warn!(range, podref, "whereabouts: no address left in the range");
        Ok(None)
    }

    /// whereabouts' `DEL` for every interface of the pod with container id `container`.
    fn release(&self, api: &Cluster, container: &str) -> Result<(), ControllerError> {
        let ns = Some(self.namespace.as_str());
        if api
            .get_opt("v1", "Namespace", None, &self.namespace)?
            .is_none()
        {
            return Ok(());
        }
        for mut pool in api.list(POOL.0, POOL.1, ns)? {
            let Some(allocations) = pool["spec"]["allocations"].as_object().cloned() else {
                continue;
            };
            let kept: serde_json::Map<String, Value> = allocations
                .iter()
                .filter(|(_, a)| a["id"] != container)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if kept.len() != allocations.len() {
                pool["spec"]["allocations"] = Value::Object(kept);
                api.replace(pool)?;
            }
        }
        for r in api.list(ORIP.0, ORIP.1, ns)? {
            if r["spec"]["containerid"] == container {
                let name = r["metadata"]["name"].as_str().unwrap_or_default();
                match api.delete(ORIP.0, ORIP.1, ns, name) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Multus' `ADD` of every selected network, then the network-status annotation.
    fn add(&self, api: &Cluster, pod: &Value) -> Result<(), ControllerError> {
        let ann = &pod["metadata"]["annotations"];
        let (Some(networks), true) = (ann[NETWORKS].as_str(), ann[NETWORK_STATUS].is_null()) else {
            return Ok(());
        };
        if pod["spec"]["nodeName"].as_str().is_none()
            || pod["metadata"]["deletionTimestamp"].is_string()
        {
            return Ok(());
        }
        let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or_default();
        let podref = format!("{ns}/{name}");
        let mut status = vec![json!({"name": "default-cni-network", "interface": "eth0",
                                     "default": true, "dns": {}})];
        for (i, sel) in selections(ns, networks).iter().enumerate() {
            let Some(nad) = api.get_opt(NAD.0, NAD.1, Some(&sel.namespace), &sel.name)? else {
                tracing::warn!(pod = %podref, network = %sel.name, "multus: no such NetworkAttachmentDefinition; the sandbox fails");
                return Ok(());
            };
            let config: Value = nad["spec"]["config"]
                .as_str()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or(Value::Null);
            let ifname = sel.interface.clone().unwrap_or(format!("net{}", i + 1));
            let ip = match config["ipam"]["type"].as_str() {
                Some("whereabouts") => {
                    match self.allocate(api, &config["ipam"], uid, &podref, &ifname)? {
                        Some((ip, _)) => Some(ip),
                        None => return Ok(()),
                    }
                }
                Some("static") => config["ipam"]["addresses"][0]["address"]
                    .as_str()
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse().ok()),
                _ => None,
            };
            let mac = match (&sel.mac, config["capabilities"]["mac"] == true) {
                (Some(mac), true) => mac.clone(),
                _ => {
                    let h = hash(&format!("{uid}/{ifname}"));
                    let b = h.to_be_bytes();
                    format!("0a:58:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
                }
            };
            let mut entry = json!({"name": format!("{}/{}", sel.namespace, sel.name),
                                   "interface": ifname, "mac": mac, "dns": {}});
            if let Some(ip) = ip {
                entry["ips"] = json!([ip.to_string()]);
            }
            status.push(entry);
        }
        let status = serde_json::to_string(&status).unwrap_or_default();
        api.merge_patch(
            "v1",
            "Pod",
            Some(ns),
            name,
            &json!({"metadata": {"annotations": {NETWORK_STATUS: status}}}),
        )?;
        Ok(())
    }
}

/// FNV-1a, for deterministic MACs.
pub(crate) fn hash(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[async_trait]
impl Controller for WhereaboutsController {
    fn name(&self) -> &str {
        "multus-whereabouts"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "pods"),
            Watched::new("k8s.cni.cncf.io", "network-attachment-definitions"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        // Runs inside the API double only (not yet in `kubecloud-sim`).
        let api = api.in_process()?;
        let ns = ev.namespace.as_deref();
        match (ev.resource.as_str(), ev.kind) {
            ("pods", EventType::Deleted) => {
                if self.knobs.leak.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let uid = ev.object["metadata"]["uid"].as_str().unwrap_or_default();
                if uid.is_empty() || ev.object["metadata"]["annotations"][NETWORKS].is_null() {
                    return Ok(());
                }
                self.release(api, uid)
            }
            ("pods", _) => match api.get_opt("v1", "Pod", ns, &ev.name)? {
                Some(pod) => self.add(api, &pod),
                None => Ok(()),
            },
            // A definition that appears lets the pods waiting for it start.
            (_, EventType::Deleted) => Ok(()),
            _ => {
                for pod in api.list("v1", "Pod", ns)? {
                    if pod["metadata"]["annotations"][NETWORK_STATUS].is_null() {
                        self.add(api, &pod)?;
                    }
                }
                Ok(())
            }
        }
    }
}
