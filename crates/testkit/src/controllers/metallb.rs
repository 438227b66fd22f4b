//! A stand-in for MetalLB's controller (the part that assigns addresses; speakers, which
//! announce them, have nothing to simulate against an API server).
//!
//! On every change to a `Service`, an `IPAddressPool` (in MetalLB's namespace, `metallb-system`
//! unless set with [`MetalLbController::in_namespace`]) or a `Namespace`, it converges all
//! services of type `LoadBalancer` (without a `spec.loadBalancerClass`, or with `metallb`), as
//! MetalLB's controller does:
//!
//! - a service keeps the address in `status.loadBalancer.ingress` while it is still allowed;
//! - otherwise it gets its requested address (`metallb.io/loadBalancerIPs` or
//!   `spec.loadBalancerIP`), or one from its requested pool (`metallb.io/address-pool`), or one
//!   from the first pool with `autoAssign` (pools with a `serviceAllocation.priority` first, lower
//!   first), honouring `serviceAllocation` (namespaces, namespace and service selectors) and
//!   `avoidBuggyIPs`; services with the same `metallb.io/allow-shared-ip` key (and the same
//!   backend key: the selector under `externalTrafficPolicy: Local`) share an address when their
//!   ports do not clash;
//! - it writes the `metallb.io/ip-allocated-from-pool` annotation and the ingress address, and
//!   an `IPAllocated` Event; when it cannot, a Warning Event `AllocationFailed` with MetalLB's
//!   message (`Failed to allocate IP for "ns/name": no available IPs in pool "p"`, `... "192.0.2.9"
//!   is not allowed in config`, `... can't change sharing key for ...`, `... port TCP/80 is already
//!   in use on ...`), once per service and message;
//! - it writes every pool's status (`assignedIPv4`, `availableIPv4`, `assignedIPv6`,
//!   `availableIPv6`) **before** the services' addresses, so a client that sees an address sees
//!   the pool's usage count it;
//! - deleted services free their addresses, and pending services are tried again.
//!
//! Differences from MetalLB: a configuration change that would strand assigned addresses is
//! applied (MetalLB keeps its previous configuration and logs an error); dual-stack services get
//! one address of their first family.
//!
//! The allocator itself is the pure [`Allocator`], usable on its own in property tests.

mod allocator;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use async_trait::async_trait;
use kubecloud_core::IpRange;
use serde_json::{Value, json};

pub use allocator::{Allocator, Assignment, PoolConfig, PoolUsage, Selector, ServiceRequest};

use super::{Controller, ControllerError, Watched};
use crate::cluster::{Cluster, ObjectEvent};

/// `metallb.io/address-pool`: the pool a service wants its address from.
pub const ADDRESS_POOL: &str = "metallb.io/address-pool";
/// `metallb.io/loadBalancerIPs`: the addresses a service asks for (comma-separated).
pub const LOAD_BALANCER_IPS: &str = "metallb.io/loadBalancerIPs";
/// `metallb.io/allow-shared-ip`: the sharing key.
pub const ALLOW_SHARED_IP: &str = "metallb.io/allow-shared-ip";
/// `metallb.io/ip-allocated-from-pool`: written by the controller, the pool the address is from.
pub const ALLOCATED_FROM_POOL: &str = "metallb.io/ip-allocated-from-pool";
/// The reason of the Warning Event written when no address can be given.
pub const ALLOCATION_FAILED: &str = "AllocationFailed";

const DEPRECATED_PREFIX: &str = "metallb.universe.tf/";
const POOL_API: &str = "metallb.io/v1beta1";

/// The simulated MetalLB controller. Register it with
/// [`TestServerBuilder::controller`](crate::TestServerBuilder::controller).
///
/// ```
/// use kubecloud_testkit::{MetalLbController, TestServer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::builder()
///     .controller(MetalLbController::new())
///     .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: metallb-system}\n")
///     .start()
///     .await?;
/// assert!(server.controller("metallb-controller").is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct MetalLbController {
    namespace: String,
}

impl Default for MetalLbController {
    fn default() -> Self {
        Self::new()
    }
}

impl MetalLbController {
    /// A controller reading its configuration from `metallb-system`.
    pub fn new() -> Self {
        Self::in_namespace("metallb-system")
    }

    /// A controller reading its configuration from `namespace`.
    pub fn in_namespace(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
        }
    }
}

#[async_trait]
impl Controller for MetalLbController {
    fn name(&self) -> &str {
        "metallb-controller"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "services"),
            Watched::new("", "namespaces"),
            Watched::new("metallb.io", "ipaddresspools"),
        ]
    }

    async fn reconcile(&self, api: &Cluster, ev: &ObjectEvent) -> Result<(), ControllerError> {
        if ev.resource == "ipaddresspools" && ev.namespace.as_deref() != Some(&self.namespace) {
            return Ok(());
        }
        self.converge(api)
    }
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    let annotations = &object["metadata"]["annotations"];
    annotations[name].as_str().or_else(|| {
        let deprecated = name.replacen("metallb.io/", DEPRECATED_PREFIX, 1);
        annotations[deprecated.as_str()].as_str()
    })
}

fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// Parses one `spec.addresses` entry: a CIDR or an `a-b` range.
pub fn parse_block(entry: &str) -> Option<IpRange> {
    if let Ok(net) = entry.trim().parse::<ipnet::IpNet>() {
        return IpRange::new(net.network(), net.broadcast()).ok();
    }
    let (a, b) = entry.split_once('-')?;
    IpRange::new(a.trim().parse().ok()?, b.trim().parse().ok()?).ok()
}

/// An `IPAddressPool` object as the allocator's [`PoolConfig`].
pub fn pool_config(pool: &Value) -> PoolConfig {
    let spec = &pool["spec"];
    let alloc = &spec["serviceAllocation"];
    let selectors = |field: &str| -> Vec<Selector> {
        alloc[field]
            .as_array()
            .map(|a| a.iter().map(Selector::from_json).collect())
            .unwrap_or_default()
    };
    PoolConfig {
        name: pool["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        blocks: spec["addresses"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().and_then(parse_block))
                    .collect()
            })
            .unwrap_or_default(),
        auto_assign: spec["autoAssign"].as_bool().unwrap_or(true),
        avoid_buggy_ips: spec["avoidBuggyIPs"].as_bool().unwrap_or(false),
        priority: alloc["priority"].as_i64(),
        namespaces: alloc["namespaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
        namespace_selectors: selectors("namespaceSelectors"),
        service_selectors: selectors("serviceSelectors"),
    }
}

/// A `Service` as the allocator's [`ServiceRequest`], or why its requested addresses are
/// unusable.
pub fn service_request(
    svc: &Value,
    namespace_labels: BTreeMap<String, String>,
) -> Result<ServiceRequest, String> {
    let namespace = svc["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let name = svc["metadata"]["name"].as_str().unwrap_or_default();
    let spec = &svc["spec"];
    let ports = spec["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    (
                        p["protocol"].as_str().unwrap_or("TCP").to_string(),
                        p["port"].as_u64().unwrap_or(0) as u16,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let backend_key = if spec["externalTrafficPolicy"] == "Local" {
        let selector: BTreeMap<String, String> = spec["selector"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        String::new()
    };
    let annotated = annotation(svc, LOAD_BALANCER_IPS);
    let spec_ip = spec["loadBalancerIP"].as_str().filter(|s| !s.is_empty());
    let requested = match (annotated, spec_ip) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "service can not have both {LOAD_BALANCER_IPS} and svc.Spec.LoadBalancerIP"
            ));
        }
        (Some(list), None) => list
            .split(',')
            .map(|ip| {
                ip.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("invalid {LOAD_BALANCER_IPS}: {list:?}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(ip)) => vec![
            ip.parse()
                .map_err(|_| format!("invalid spec.loadBalancerIP {ip:?}"))?,
        ],
        (None, None) => vec![],
    };
    Ok(ServiceRequest {
        key: format!("{namespace}/{name}"),
        namespace,
        namespace_labels,
        labels: labels_of(svc),
        ports,
        sharing_key: annotation(svc, ALLOW_SHARED_IP)
            .filter(|k| !k.is_empty())
            .map(String::from),
        backend_key,
        pool: annotation(svc, ADDRESS_POOL)
            .filter(|p| !p.is_empty())
            .map(String::from),
        requested,
        ipv6: spec["ipFamilies"][0] == "IPv6",
    })
}

fn ingress_ip(svc: &Value) -> Option<IpAddr> {
    svc["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
}

fn is_metallbs(svc: &Value) -> bool {
    svc["spec"]["type"] == "LoadBalancer"
        && svc["spec"]["loadBalancerClass"]
            .as_str()
            .is_none_or(|c| c == "metallb")
        && !is_deleting(svc)
}

/// What converging decided for one service.
enum Outcome {
    Assigned(Assignment),
    Failed(String),
}

/// A unique suffix for Event names, as client-go's recorder makes them (`<object>.<hex>`).
fn event_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = jiff::Timestamp::now().as_nanosecond() as u64;
    nanos.wrapping_add(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn count(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl MetalLbController {
    fn converge(&self, api: &Cluster) -> Result<(), ControllerError> {
        let pools: Vec<Value> = api
            .list(POOL_API, "IPAddressPool", Some(&self.namespace))?
            .into_iter()
            .filter(|p| !is_deleting(p))
            .collect();
        let namespaces: BTreeMap<String, BTreeMap<String, String>> = api
            .list("v1", "Namespace", None)?
            .iter()
            .map(|n| {
                (
                    n["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    labels_of(n),
                )
            })
            .collect();
        let mut services: Vec<Value> = api
            .list("v1", "Service", None)?
            .into_iter()
            .filter(is_metallbs)
            .collect();
        services.sort_by(|a, b| {
            let key = |s: &Value| {
                (
                    s["metadata"]["creationTimestamp"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    s["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    s["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            };
            key(a).cmp(&key(b))
        });
        let mut alloc = Allocator::new(pools.iter().map(pool_config).collect());
        let mut requests = Vec::with_capacity(services.len());
        for svc in &services {
            let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
            requests.push(service_request(
                svc,
                namespaces.get(ns).cloned().unwrap_or_default(),
            ));
        }
        let mut outcomes: Vec<Option<Outcome>> = (0..services.len()).map(|_| None).collect();
        // First the addresses services hold and may keep, then new ones, in creation order.
        for (i, (svc, req)) in services.iter().zip(&requests).enumerate() {
            let (Some(ip), Ok(req)) = (ingress_ip(svc), req) else {
                continue;
            };
            let wanted_ip_changed = !req.requested.is_empty() && !req.requested.contains(&ip);
            if wanted_ip_changed {
                continue;
            }
            if let Ok(a) = alloc.assign(req, ip) {
                if req.pool.as_ref().is_some_and(|p| *p != a.pool) {
                    alloc.release(&req.key);
                    continue;
                }
                outcomes[i] = Some(Outcome::Assigned(a));
            }
        }
        for (i, req) in requests.iter().enumerate() {
            if outcomes[i].is_some() {
                continue;
            }
            outcomes[i] = Some(match req {
                Err(reason) => Outcome::Failed(reason.clone()),
                Ok(req) => match alloc.allocate(req) {
                    Ok(a) => Outcome::Assigned(a),
                    Err(reason) => Outcome::Failed(reason),
                },
            });
        }
        // Pool usage first, so that whoever sees an address also sees it counted.
        for pool in &pools {
            let name = pool["metadata"]["name"].as_str().unwrap_or_default();
            let u = alloc.usage(name);
            let status = json!({
                "assignedIPv4": count(u.assigned_v4),
                "assignedIPv6": count(u.assigned_v6),
                "availableIPv4": count(u.available_v4),
                "availableIPv6": count(u.available_v6),
            });
            if pool["status"] != status {
                api.merge_patch_status(
                    POOL_API,
                    "IPAddressPool",
                    Some(&self.namespace),
                    name,
                    &json!({ "status": status }),
                )?;
            }
        }
        for (svc, outcome) in services.iter().zip(outcomes) {
            match outcome {
                Some(Outcome::Assigned(a)) => self.publish(api, svc, &a)?,
                Some(Outcome::Failed(reason)) => self.fail(api, svc, &reason)?,
                None => {}
            }
        }
        Ok(())
    }

    fn publish(&self, api: &Cluster, svc: &Value, a: &Assignment) -> Result<(), ControllerError> {
        let ns = svc["metadata"]["namespace"].as_str();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        let had = ingress_ip(svc);
        if annotation(svc, ALLOCATED_FROM_POOL) != Some(a.pool.as_str()) {
            api.merge_patch(
                "v1",
                "Service",
                ns,
                name,
                &json!({"metadata": {"annotations": {ALLOCATED_FROM_POOL: a.pool}}}),
            )?;
        }
        if had != Some(a.ip) {
            api.merge_patch_status(
                "v1",
                "Service",
                ns,
                name,
                &json!({"status": {"loadBalancer": {"ingress": [{"ip": a.ip.to_string()}]}}}),
            )?;
            self.event(
                api,
                svc,
                "Normal",
                "IPAllocated",
                &format!("Assigned IP [{:?}]", a.ip.to_string()),
            )?;
        }
        Ok(())
    }

    fn fail(&self, api: &Cluster, svc: &Value, reason: &str) -> Result<(), ControllerError> {
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        if ingress_ip(svc).is_some() || annotation(svc, ALLOCATED_FROM_POOL).is_some() {
            api.merge_patch(
                "v1",
                "Service",
                Some(ns),
                name,
                &json!({"metadata": {"annotations": {ALLOCATED_FROM_POOL: null}}}),
            )?;
            api.merge_patch_status(
                "v1",
                "Service",
                Some(ns),
                name,
                &json!({"status": {"loadBalancer": {"ingress": null}}}),
            )?;
        }
        let message = format!(
            "Failed to allocate IP for {:?}: {reason}",
            format!("{ns}/{name}")
        );
        let uid = svc["metadata"]["uid"].as_str().unwrap_or_default();
        let already: BTreeSet<String> = api
            .list("v1", "Event", Some(ns))?
            .iter()
            .filter(|e| e["involvedObject"]["uid"] == uid && e["reason"] == ALLOCATION_FAILED)
            .filter_map(|e| e["message"].as_str().map(String::from))
            .collect();
        if !already.contains(&message) {
            self.event(api, svc, "Warning", ALLOCATION_FAILED, &message)?;
        }
        Ok(())
    }

    fn event(
        &self,
        api: &Cluster,
        svc: &Value,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), ControllerError> {
        let meta = &svc["metadata"];
        let now = crate::meta::now();
        api.create(json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": format!("{}.{:016x}", meta["name"].as_str().unwrap_or_default(), event_suffix()),
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Service",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.name()},
            "reportingComponent": self.name(),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }))?;
        Ok(())
    }
}
