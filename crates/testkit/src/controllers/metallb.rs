//! A stand-in for MetalLB's controller (the part that assigns addresses; speakers, which
//! announce them, have nothing to simulate against an API server).
//!
//! Modelled on metallb/metallb at commit `7938d3f89b8bd808dae2e42d97d6ae7e18e9ed54` (after
//! v0.16.1): `controller/service.go` (`convergeBalancer`, `allocateIPs`, `getDesiredLbIPs`,
//! `SharingKey`), `internal/allocator/k8salloc/k8salloc.go` (ports, backend key) and, for the
//! allocator itself, the files cited in [`Allocator`]'s module. Nothing here calls kubecloud code;
//! pools' `serviceAllocation` selectors are read here, from MetalLB's semantics.
//!
//! On every change to a `Service`, an `IPAddressPool` (in MetalLB's namespace, `metallb-system`
//! unless set with [`MetalLbController::in_namespace`]) or a `Namespace`, it converges all
//! services of type `LoadBalancer` (without a `spec.loadBalancerClass`, or with `metallb`), as
//! `convergeBalancer` does for each:
//!
//! - without pools, or without a cluster IP, the service's address is cleared (no event);
//! - an address it holds (`status.loadBalancer.ingress`) is assigned again (`Assign`); refused,
//!   it is cleared with a Normal `ClearAssignment` event (`current IP for "ns/name" not allowed
//!   by config, will attempt for new IP assignment: <why>`); it is also cleared when another
//!   pool (`metallb.io/address-pool`) or other addresses (`metallb.io/loadBalancerIPs`,
//!   `spec.loadBalancerIP`) are asked for; unparsable requested addresses leave it as it is with
//!   a Warning `LoadBalancerFailed` (`invalid requested loadbalancer IPs: <why>`);
//! - a service without an address gets its requested addresses (`Assign`), or one from its
//!   requested pool (`AllocateFromPool`), or one from the pinned then the unpinned pools
//!   (`Allocate`); when it cannot, a Warning `AllocationFailed` `Failed to allocate IP for
//!   "ns/name": <why>` (once per service and message), with MetalLB's reasons: `no available IPs`,
//!   `no available IPs in pool <pool>`, `unknown pool "<pool>"`, `["<ip>"] is not allowed in
//!   config`, `pool <pool> not compatible for ip assignment`, `can't change sharing key for
//!   "ns/name", address also in use by <others>`, `port TCP/80 is already in use on "<ip>"`,
//!   `service can not have both metallb.io/loadBalancerIPs and svc.Spec.LoadBalancerIP`,
//!   `invalid metallb.io/loadBalancerIPs: "<value>"`, `invalid spec.loadBalancerIP "<value>"`,
//!   `requested loadBalancer IP(s) ["<ip>"] does not match the ipFamily of the service`,
//!   `requested loadBalancer IP(s) ["<ip>"] is not compatible with requested address pool <pool>`;
//!   an assigned address is announced with a Normal `IPAllocated` `Assigned IP ["<ip>"]`;
//! - annotations are read under `metallb.io/` first, `metallb.universe.tf/` when absent; a
//!   present but empty `allow-shared-ip` means no sharing;
//! - it writes the `metallb.io/ip-allocated-from-pool` annotation and the ingress address;
//! - it writes every pool's status (`assignedIPv4`, `availableIPv4`, `assignedIPv6`,
//!   `availableIPv6`) **before** the services' addresses, so a client that sees an address sees
//!   the pool's usage count it;
//! - a configuration MetalLB would reject (overlapping CIDRs, a pool without addresses, an
//!   invalid CIDR or selector, a duplicate namespace in `serviceAllocation`) changes nothing:
//!   MetalLB keeps its previous configuration (the double, which keeps none, gives no address
//!   to anyone until it is fixed: stricter).
//!
//! Services are converged in creation order: first those holding an address, then the others.
//! Differences from MetalLB: dual-stack services get one address of their first cluster IP's
//! family.

mod allocator;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use async_trait::async_trait;
use serde_json::{Value, json};

pub use allocator::{
    Allocator, Assignment, PoolConfig, PoolUsage, Selector, ServiceAllocation, ServiceRequest,
    parse_addresses,
};

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::ObjectEvent;

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

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        if ev.resource == "ipaddresspools" && ev.namespace.as_deref() != Some(&self.namespace) {
            return Ok(());
        }
        self.converge(api).await
    }
}

fn labels_of(object: &Value) -> BTreeMap<String, String> {
    labels_of_value(&object["metadata"]["labels"])
}

fn labels_of_value(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `valueForAnnotation`: the `metallb.io/` annotation when present (even empty), else the
/// deprecated `metallb.universe.tf/` one.
fn annotation<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    let annotations = &object["metadata"]["annotations"];
    if let Some(v) = annotations.get(name) {
        return v.as_str();
    }
    let deprecated = name.replacen("metallb.io/", DEPRECATED_PREFIX, 1);
    annotations[deprecated.as_str()].as_str()
}

fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// An `IPAddressPool` object as the allocator's [`PoolConfig`] (`addressPoolFromCR`), its
/// `serviceAllocation.namespaceSelectors` resolved against `namespaces` (name and labels); why
/// MetalLB would reject it otherwise.
pub fn pool_config(
    pool: &Value,
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<PoolConfig, String> {
    let name = pool["metadata"]["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        return Err("missing pool name".into());
    }
    let spec = &pool["spec"];
    let entries: Vec<&str> = spec["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if entries.is_empty() {
        return Err(format!(
            "parsing address pool {name}: pool has no prefixes defined"
        ));
    }
    let mut blocks = Vec::new();
    for entry in entries {
        blocks.extend(parse_addresses(entry).map_err(|e| {
            format!("parsing address pool {name}: invalid CIDR {entry:?} in pool {name:?}: {e}")
        })?);
    }
    let alloc = &spec["serviceAllocation"];
    let service_allocation = if alloc.is_object() {
        let mut set = BTreeSet::new();
        for ns in alloc["namespaces"].as_array().into_iter().flatten() {
            let ns = ns.as_str().unwrap_or_default().to_string();
            if !set.insert(ns) {
                return Err(format!(
                    "parsing address pool {name}: duplicate definition in namespaces field"
                ));
            }
        }
        let selectors = |field: &str| -> Result<Vec<Selector>, String> {
            let raw: Vec<&Value> = alloc[field].as_array().into_iter().flatten().collect();
            for (i, a) in raw.iter().enumerate() {
                if raw[i + 1..].contains(a) {
                    return Err(format!(
                        "parsing address pool {name}: duplicate definition of {field}"
                    ));
                }
            }
            raw.into_iter()
                .map(|v| {
                    Selector::parse(v).map_err(|e| format!("parsing address pool {name}: {e}"))
                })
                .collect()
        };
        let ns_selectors = selectors("namespaceSelectors")?;
        let mut service_selectors = selectors("serviceSelectors")?;
        if set.is_empty() && ns_selectors.is_empty() && service_selectors.is_empty() {
            // "If no specific namespaces or service selectors are set, match everything".
            service_selectors.push(Selector::default());
        }
        for (ns, labels) in namespaces {
            if ns_selectors.iter().any(|s| s.matches(labels)) {
                set.insert(ns.clone());
            }
        }
        Some(ServiceAllocation {
            priority: alloc["priority"].as_i64().unwrap_or(0),
            namespaces: set,
            service_selectors,
        })
    } else {
        None
    };
    Ok(PoolConfig {
        name: name.to_string(),
        blocks,
        auto_assign: spec["autoAssign"].as_bool().unwrap_or(true),
        avoid_buggy_ips: spec["avoidBuggyIPs"].as_bool().unwrap_or(false),
        service_allocation,
    })
}

/// `poolsFor`: every pool, or why MetalLB rejects the configuration (including CIDRs of two
/// pools, or of one, overlapping).
pub fn pools_config(
    pools: &[Value],
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Vec<PoolConfig>, String> {
    let mut out: Vec<PoolConfig> = Vec::new();
    let mut all: Vec<ipnet::IpNet> = Vec::new();
    for pool in pools {
        let config = pool_config(pool, namespaces)?;
        for cidr in &config.blocks {
            if let Some(m) = all
                .iter()
                .find(|m| m.contains(&cidr.network()) || cidr.contains(&m.network()))
            {
                return Err(format!(
                    "CIDR {:?} in pool {:?} overlaps with already defined CIDR {:?}",
                    cidr.to_string(),
                    config.name,
                    m.to_string()
                ));
            }
            all.push(*cidr);
        }
        out.push(config);
    }
    Ok(out)
}

/// The addresses a service asks for (`getDesiredLbIPs`), or why they are unusable.
pub fn desired_ips(svc: &Value) -> Result<Vec<IpAddr>, String> {
    let annotated = annotation(svc, LOAD_BALANCER_IPS).unwrap_or_default();
    let spec_ip = svc["spec"]["loadBalancerIP"].as_str().unwrap_or_default();
    match (annotated.is_empty(), spec_ip.is_empty()) {
        (true, true) => Ok(vec![]),
        (false, false) => Err(format!(
            "service can not have both {LOAD_BALANCER_IPS} and svc.Spec.LoadBalancerIP"
        )),
        (false, true) => annotated
            .split(',')
            .map(|ip| {
                ip.trim()
                    .parse::<IpAddr>()
                    .map_err(|_| format!("invalid {LOAD_BALANCER_IPS}: {annotated:?}"))
            })
            .collect(),
        (true, false) => spec_ip
            .parse()
            .map(|ip| vec![ip])
            .map_err(|_| format!("invalid spec.loadBalancerIP {spec_ip:?}")),
    }
}

fn quoted_ips(ips: &[IpAddr]) -> String {
    let inner: Vec<String> = ips
        .iter()
        .map(|ip| format!("{:?}", ip.to_string()))
        .collect();
    format!("[{}]", inner.join(" "))
}

/// A `Service` as the allocator's [`ServiceRequest`] (requested addresses left out when they
/// are unusable: see [`desired_ips`]).
pub fn service_request(svc: &Value) -> ServiceRequest {
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
        labels_of_value(&spec["selector"])
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        String::new()
    };
    let cluster_ip = spec["clusterIPs"][0]
        .as_str()
        .or_else(|| spec["clusterIP"].as_str())
        .and_then(|ip| ip.parse::<IpAddr>().ok());
    ServiceRequest {
        key: format!("{namespace}/{name}"),
        namespace,
        labels: labels_of(svc),
        ports,
        sharing_key: annotation(svc, ALLOW_SHARED_IP)
            .filter(|k| !k.is_empty())
            .map(String::from),
        backend_key,
        pool: annotation(svc, ADDRESS_POOL)
            .filter(|p| !p.is_empty())
            .map(String::from),
        requested: desired_ips(svc).unwrap_or_default(),
        ipv6: match cluster_ip {
            Some(ip) => ip.is_ipv6(),
            None => spec["ipFamilies"][0] == "IPv6",
        },
    }
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
    /// No address, no event (no pools, no cluster IP).
    Cleared,
    /// Left as it is (the requested addresses are unparsable: `LoadBalancerFailed`).
    Keep,
}

/// A unique suffix for Event names, as client-go's recorder makes them (`<object>.<hex>`).
fn event_suffix() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = jiff::Timestamp::now().as_nanosecond() as u64;
    nanos.wrapping_add(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn has_cluster_ip(svc: &Value) -> bool {
    let spec = &svc["spec"];
    spec["clusterIPs"].as_array().is_some_and(|a| !a.is_empty())
        || spec["clusterIP"].as_str().is_some_and(|c| !c.is_empty())
}

/// `allocateIPs`: an address for a service holding none.
fn allocate_ips(
    alloc: &mut Allocator,
    svc: &Value,
    req: &ServiceRequest,
) -> Result<Assignment, String> {
    let desired = desired_ips(svc)?;
    if !desired.is_empty() {
        if desired.len() != 1 || desired[0].is_ipv6() != req.ipv6 {
            return Err(format!(
                "requested loadBalancer IP(s) {} does not match the ipFamily of the service",
                quoted_ips(&desired)
            ));
        }
        let a = alloc.assign(req, desired[0])?;
        if let Some(pool) = &req.pool
            && *pool != a.pool
        {
            alloc.release(&req.key);
            return Err(format!(
                "requested loadBalancer IP(s) {} is not compatible with requested address pool {pool}",
                quoted_ips(&desired)
            ));
        }
        return Ok(a);
    }
    if let Some(pool) = &req.pool {
        return alloc.allocate_from_pool(req, pool);
    }
    alloc.allocate(req)
}

impl MetalLbController {
    async fn converge(&self, api: &ControllerApi) -> Result<(), ControllerError> {
        let pools: Vec<Value> = api
            .list(POOL_API, "IPAddressPool", Some(&self.namespace))
            .await?
            .into_iter()
            .filter(|p| !is_deleting(p))
            .collect();
        let namespaces: BTreeMap<String, BTreeMap<String, String>> = api
            .list("v1", "Namespace", None)
            .await?
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
        let configs = match pools_config(&pools, &namespaces) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "metallb-controller: configuration rejected, nothing changes");
                return Ok(());
            }
        };
        let no_pools = configs.is_empty();
        let mut services: Vec<Value> = api
            .list("v1", "Service", None)
            .await?
            .into_iter()
            .filter(is_metallbs)
            .collect();
        services.sort_by_key(|s| {
            let meta = &s["metadata"];
            (
                meta["creationTimestamp"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                meta["namespace"].as_str().unwrap_or_default().to_string(),
                meta["name"].as_str().unwrap_or_default().to_string(),
            )
        });
        let mut alloc = Allocator::new(configs);
        let requests: Vec<ServiceRequest> = services.iter().map(service_request).collect();
        let mut outcomes: Vec<Option<Outcome>> = (0..services.len()).map(|_| None).collect();
        let mut notes: Vec<(usize, &str, &str, String)> = Vec::new();
        // First the addresses services hold (`convergeBalancer` with ingress addresses).
        for (i, (svc, req)) in services.iter().zip(&requests).enumerate() {
            if no_pools || !has_cluster_ip(svc) {
                outcomes[i] = Some(Outcome::Cleared);
                continue;
            }
            let Some(ip) = ingress_ip(svc) else {
                continue;
            };
            let a = match alloc.assign(req, ip) {
                Ok(a) => a,
                Err(e) => {
                    notes.push((
                        i,
                        "Normal",
                        "ClearAssignment",
                        format!(
                            "current IP for {:?} not allowed by config, will attempt for new IP assignment: {e}",
                            req.key
                        ),
                    ));
                    continue;
                }
            };
            if req.pool.as_ref().is_some_and(|p| *p != a.pool) {
                alloc.release(&req.key);
                continue;
            }
            match desired_ips(svc) {
                Err(e) => {
                    notes.push((
                        i,
                        "Warning",
                        "LoadBalancerFailed",
                        format!("invalid requested loadbalancer IPs: {e}"),
                    ));
                    outcomes[i] = Some(Outcome::Keep);
                }
                Ok(d) if !d.is_empty() && d != [ip] => {
                    alloc.release(&req.key);
                }
                Ok(_) => outcomes[i] = Some(Outcome::Assigned(a)),
            }
        }
        // Then the others, in creation order (`allocateIPs`).
        for (i, (svc, req)) in services.iter().zip(&requests).enumerate() {
            if outcomes[i].is_some() {
                continue;
            }
            outcomes[i] = Some(match allocate_ips(&mut alloc, svc, req) {
                Ok(a) => Outcome::Assigned(a),
                Err(reason) => Outcome::Failed(reason),
            });
        }
        // Pool usage first, so that whoever sees an address also sees it counted.
        for pool in &pools {
            let name = pool["metadata"]["name"].as_str().unwrap_or_default();
            let u = alloc.usage(name);
            let status = json!({
                "assignedIPv4": u.assigned_v4,
                "assignedIPv6": u.assigned_v6,
                "availableIPv4": u.available_v4,
                "availableIPv6": u.available_v6,
            });
            if pool["status"] != status {
                api.merge_patch_status(
                    POOL_API,
                    "IPAddressPool",
                    Some(&self.namespace),
                    name,
                    &json!({ "status": status }),
                )
                .await?;
            }
        }
        for (i, type_, reason, message) in notes {
            self.event_once(api, &services[i], type_, reason, &message)
                .await?;
        }
        for (svc, outcome) in services.iter().zip(outcomes) {
            match outcome {
                Some(Outcome::Assigned(a)) => self.publish(api, svc, &a).await?,
                Some(Outcome::Failed(reason)) => self.fail(api, svc, &reason).await?,
                Some(Outcome::Cleared) => self.clear(api, svc).await?,
                Some(Outcome::Keep) | None => {}
            }
        }
        Ok(())
    }

    async fn publish(
        &self,
        api: &ControllerApi,
        svc: &Value,
        a: &Assignment,
    ) -> Result<(), ControllerError> {
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
            )
            .await?;
        }
        if had != Some(a.ip) {
            api.merge_patch_status(
                "v1",
                "Service",
                ns,
                name,
                &json!({"status": {"loadBalancer": {"ingress": [{"ip": a.ip.to_string()}]}}}),
            )
            .await?;
            self.event(
                api,
                svc,
                "Normal",
                "IPAllocated",
                &format!("Assigned IP {}", quoted_ips(&[a.ip])),
            )
            .await?;
        }
        Ok(())
    }

    /// `clearServiceState`: no address, no pool annotation.
    async fn clear(&self, api: &ControllerApi, svc: &Value) -> Result<(), ControllerError> {
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        if annotation(svc, ALLOCATED_FROM_POOL).is_some() {
            api.merge_patch(
                "v1",
                "Service",
                Some(ns),
                name,
                &json!({"metadata": {"annotations": {ALLOCATED_FROM_POOL: null}}}),
            )
            .await?;
        }
        if ingress_ip(svc).is_some() {
            api.merge_patch_status(
                "v1",
                "Service",
                Some(ns),
                name,
                &json!({"status": {"loadBalancer": {"ingress": null}}}),
            )
            .await?;
        }
        Ok(())
    }

    async fn fail(
        &self,
        api: &ControllerApi,
        svc: &Value,
        reason: &str,
    ) -> Result<(), ControllerError> {
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = svc["metadata"]["name"].as_str().unwrap_or_default();
        self.clear(api, svc).await?;
        let message = format!(
            "Failed to allocate IP for {:?}: {reason}",
            format!("{ns}/{name}")
        );
        self.event_once(api, svc, "Warning", ALLOCATION_FAILED, &message)
            .await
    }

    /// Records an event unless the service already has one with this reason and message.
    async fn event_once(
        &self,
        api: &ControllerApi,
        svc: &Value,
        type_: &str,
        reason: &str,
        message: &str,
    ) -> Result<(), ControllerError> {
        let ns = svc["metadata"]["namespace"].as_str().unwrap_or_default();
        let uid = svc["metadata"]["uid"].as_str().unwrap_or_default();
        let already = api.list("v1", "Event", Some(ns)).await?.iter().any(|e| {
            e["involvedObject"]["uid"] == uid && e["reason"] == reason && e["message"] == message
        });
        if !already {
            self.event(api, svc, type_, reason, message).await?;
        }
        Ok(())
    }

    async fn event(
        &self,
        api: &ControllerApi,
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
        })).await?;
        Ok(())
    }
}
