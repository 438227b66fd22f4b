//! A stand-in for the LB-IPAM part of the Cilium operator: it gives Services of type
//! `LoadBalancer` addresses from `CiliumLoadBalancerIPPool`s (`cilium.io/v2`) and says why it
//! cannot in the Service's `cilium.io/IPAMRequestSatisfied` condition. The agents' L2
//! announcement has nothing to simulate against an API server: `CiliumL2AnnouncementPolicy` is
//! only stored (and validated against its CRD). The BGP control plane is
//! [`CiliumBgpControlPlane`](super::cilium_bgp::CiliumBgpControlPlane).
//!
//! Modelled on cilium/cilium (main at the v1.19 branch cut, `933785d62034`, and the stored
//! files of the same code): `operator/pkg/lbipam/lbipam.go` (`handleNewPool`,
//! `stripInvalidAllocations`, `stripOrImportIngresses`, `satisfySpecificIPRequests`,
//! `satisfyGenericIPv4Requests`/`IPv6`, `allocateIPAddress`, `findRangeOfIP`,
//! `isResponsibleForSVC`, `serviceIPFamilyRequest`, `updatePoolCounts`, `settleConflicts`,
//! `markPoolConflicting`, `getSVCRequestedIPs`, `getSVCSharingKey`), `service_store.go`
//! (`isCompatible`, `isSatisfied`, `svcLabels`), `lbrange.go` (ranges, `Disabled`) and
//! `pkg/ipalloc/ipalloc.go` (`HashAllocator`: `AllocAny` takes the first address of the
//! smallest free block). Nothing here calls kubecloud code.
//!
//! On every change to a `Service` or a pool it works the whole state out again, as the
//! operator does after a restart, then writes what changed:
//!
//! - pools in creation order (then name): each block (`cidr`, or `start`..`stop`, `stop`
//!   absent = one address) is a range; with `allowFirstLastIPs: "No"` a CIDR's first and last
//!   addresses are reserved (counted used) unless the CIDR has at most two addresses. A pool with
//!   an unparsable block has no ranges (the operator fails half-way and retries: stricter).
//!   `disabled: true` pools hand out no new address. A pool whose ranges overlap each other or
//!   an older pool is marked `cilium.io/PoolConflict` True, reason `cidr_overlap`, message
//!   `Pool conflicts since range '<from> - <to>' overlaps range '<from> - <to>' from IP Pool
//!   '<pool>'`, and hands out nothing (`False`, `resolved`, empty message otherwise);
//! - services it is responsible for: type `LoadBalancer`, without `loadBalancerClass` (LB-IPAM
//!   is the default IPAM) or with `io.cilium/bgp-control-plane` / `io.cilium/l2-announcer`;
//!   their labels for selectors get `io.kubernetes.service.namespace` and
//!   `io.kubernetes.service.name` added; requested addresses come from `spec.loadBalancerIP`
//!   and the annotation `lbipam.cilium.io/ips` (alias `io.cilium/lb-ipam-ips`), the sharing key
//!   from `lbipam.cilium.io/sharing-key` (alias `io.cilium/lb-ipam-sharing-key`), namespaces
//!   allowed to share from `lbipam.cilium.io/sharing-cross-namespace` (alias
//!   `io.cilium/lb-ipam-sharing-cross-namespace`, `*` for all);
//! - first the addresses services hold (`status.loadBalancer.ingress`) are kept when they are
//!   still requested, of a requested family, in a range (not disabled for a conflict) of a pool
//!   that selects the service, and free or held only by services compatible with it; others
//!   are dropped. A pool disabled later keeps the addresses it gave (the running operator's
//!   behaviour);
//! - then each service still missing an address (oldest first): requested addresses are taken
//!   from the first enabled range holding them whose pool selects the service, else the
//!   condition is False with `no_pool` (`No pool exists with a CIDR containing '<ip>'`),
//!   `pool_selector_mismatch` (`The pool with the CIDR containing '<ip>', doesn't select this
//!   service`), `already_allocated` (`The IP '<ip>' is already allocated to another service`,
//!   no sharing key) or `already_allocated_incompatible_service` (`The IP '<ip>' is already
//!   allocated to an incompatible service. Reason: <why>`, with `different sharing key`,
//!   `different and not permitted namespace`, `same port`, `different ExternalTrafficPolicy`
//!   or `compatible ExternalTrafficPolicy local but selecting different set of pods`); without
//!   requested addresses, an address of a compatible service with the same sharing key is shared,
//!   else the first range (pool order) of the family whose pool selects the service gives its
//!   next address, else `out_of_ips` (`All enabled CiliumLoadBalancerIPPools that match this
//!   service ran out of allocatable IPs`) when a matching range was full, `no_pool` (`There are
//!   no enabled CiliumLoadBalancerIPPools that match this service`) otherwise. A satisfied
//!   service has the condition True, reason `satisfied`, empty message;
//! - it writes the services' status first, then the pools' counts as conditions
//!   `cilium.io/IPsTotal`, `cilium.io/IPsAvailable`, `cilium.io/IPsUsed` (status `Unknown`,
//!   reason `noreason`, the number as message), in that order as the operator does.
//!
//! The cluster is taken to have IPv4 and IPv6 enabled. Differences: the operator handles the
//! unsatisfied services in Go map order; the double goes oldest first. Where several free
//! blocks of one range have the smallest size, the double takes the lowest.

use std::collections::BTreeMap;
use std::net::IpAddr;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Controller, ControllerError, Watched};
use crate::cluster::{Cluster, ObjectEvent};
use crate::controllers::ControllerApi;

/// The Service condition LB-IPAM writes.
pub const REQUEST_SATISFIED: &str = "cilium.io/IPAMRequestSatisfied";
/// `lbipam.cilium.io/ips`: requested addresses, comma-separated.
pub const IPS: &str = "lbipam.cilium.io/ips";
/// `lbipam.cilium.io/sharing-key`.
pub const SHARING_KEY: &str = "lbipam.cilium.io/sharing-key";
/// `lbipam.cilium.io/sharing-cross-namespace`.
pub const SHARING_CROSS_NAMESPACE: &str = "lbipam.cilium.io/sharing-cross-namespace";
/// The label LB-IPAM adds for selectors: the Service's namespace.
pub const SERVICE_NAMESPACE_LABEL: &str = "io.kubernetes.service.namespace";
/// The label LB-IPAM adds for selectors: the Service's name.
pub const SERVICE_NAME_LABEL: &str = "io.kubernetes.service.name";

const POOL_API: &str = "cilium.io/v2";
const POOL_KIND: &str = "CiliumLoadBalancerIPPool";
const LB_CLASSES: [&str; 2] = ["io.cilium/bgp-control-plane", "io.cilium/l2-announcer"];

/// The simulated LB-IPAM of the Cilium operator. Register it with
/// [`TestServerBuilder::controller`](crate::TestServerBuilder::controller).
///
/// ```
/// use kubecloud_testkit::{CiliumLbIpam, TestServer};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = TestServer::builder().controller(CiliumLbIpam).start().await?;
/// assert!(server.controller("cilium-operator-lb-ipam").is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct CiliumLbIpam;

#[async_trait]
impl Controller for CiliumLbIpam {
    fn name(&self) -> &str {
        "cilium-operator-lb-ipam"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "services"),
            Watched::new("cilium.io", "ciliumloadbalancerippools"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        _ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        // Runs inside the API double only (not yet in `kubecloud-sim`).
        converge(api.in_process()?)
    }
}

/// An address as a number, and whether it is IPv6.
fn num(ip: IpAddr) -> (u128, bool) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), false),
        IpAddr::V6(v6) => (u128::from(v6), true),
    }
}

fn addr(n: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(n.into())
    } else {
        IpAddr::V4((n as u32).into())
    }
}

/// One block of a pool (`LBRange`).
struct Range {
    pool: usize,
    first: u128,
    last: u128,
    v6: bool,
    /// `spec.disabled`.
    externally_disabled: bool,
    /// The pool conflicts with another.
    internally_disabled: bool,
    /// Allocated addresses and the services sharing each (empty: reserved first/last).
    allocs: BTreeMap<u128, Vec<usize>>,
}

impl Range {
    fn disabled(&self) -> bool {
        self.externally_disabled || self.internally_disabled
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (n, v6) = num(ip);
        v6 == self.v6 && self.first <= n && n <= self.last
    }

    fn text(&self) -> String {
        format!(
            "{} - {}",
            addr(self.first, self.v6),
            addr(self.last, self.v6)
        )
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.v6 == other.v6 && self.first <= other.last && other.first <= self.last
    }

    /// `AllocAny`: the first address of the smallest free block (the lowest such block).
    fn next_free(&self) -> Option<u128> {
        let mut best: Option<(u128, u128)> = None; // (size, start)
        let mut start = self.first;
        let mut consider = |from: u128, to: u128| {
            let size = to - from;
            if best.is_none_or(|(s, _)| size < s) {
                best = Some((size, from));
            }
        };
        let mut done = false;
        for &taken in self.allocs.keys() {
            if taken > start {
                consider(start, taken - 1);
            }
            if taken == self.last {
                done = true;
                break;
            }
            start = taken + 1;
        }
        if !done && start <= self.last {
            consider(start, self.last);
        }
        best.map(|(_, from)| from)
    }

    /// `(used, available)` as `Stats` counts them (reserved addresses are used).
    fn stats(&self) -> (u128, u128) {
        let used = self.allocs.len() as u128;
        (used, (self.last - self.first + 1).saturating_sub(used))
    }
}

/// A pool as read.
struct Pool {
    name: String,
    object: Value,
    selector: Option<Value>,
    /// Why it conflicts, if it does.
    conflict: Option<String>,
}

/// `ServiceView`.
struct Svc {
    object: Value,
    namespace: String,
    labels: BTreeMap<String, String>,
    requested: Vec<IpAddr>,
    v4: bool,
    v6: bool,
    sharing_key: String,
    cross_namespace: Vec<String>,
    local: bool,
    ports: Vec<i64>,
    selector: BTreeMap<String, String>,
    /// Addresses allocated: (address, range index).
    allocated: Vec<(IpAddr, usize)>,
    /// The condition to write: (satisfied, reason, message).
    condition: Option<(bool, String, String)>,
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

/// `annotation.Get`: the key, else its alias.
fn annotation<'a>(svc: &'a Value, key: &str, alias: &str) -> &'a str {
    let a = &svc["metadata"]["annotations"];
    a[key]
        .as_str()
        .filter(|v| !v.is_empty())
        .or_else(|| a[alias].as_str())
        .unwrap_or_default()
}

impl Svc {
    fn of(object: Value) -> Svc {
        let meta = &object["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or_default().to_string();
        let mut labels = str_map(&meta["labels"]);
        labels.insert(
            SERVICE_NAME_LABEL.into(),
            meta["name"].as_str().unwrap_or_default().into(),
        );
        labels.insert(SERVICE_NAMESPACE_LABEL.into(), namespace.clone());
        let spec = &object["spec"];
        let mut requested: Vec<IpAddr> = Vec::new();
        if let Some(ip) = spec["loadBalancerIP"].as_str().and_then(|s| s.parse().ok()) {
            requested.push(ip);
        }
        let ips = annotation(&object, IPS, "io.cilium/lb-ipam-ips");
        for ip in ips.split(',').filter_map(|s| s.trim().parse().ok()) {
            requested.push(ip);
        }
        requested.dedup();
        let families: Vec<&str> = spec["ipFamilies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let (v4, v6) = match spec["ipFamilyPolicy"].as_str() {
            Some("PreferDualStack") if !families.is_empty() => {
                (families.contains(&"IPv4"), families.contains(&"IPv6"))
            }
            Some("PreferDualStack") | Some("RequireDualStack") => (true, true),
            _ => match families.first() {
                Some(&"IPv6") => (false, true),
                _ => (true, false),
            },
        };
        let sharing_key =
            annotation(&object, SHARING_KEY, "io.cilium/lb-ipam-sharing-key").to_string();
        let cross = annotation(
            &object,
            SHARING_CROSS_NAMESPACE,
            "io.cilium/lb-ipam-sharing-cross-namespace",
        );
        let cross_namespace = if cross.is_empty() {
            Vec::new()
        } else {
            cross.split(',').map(String::from).collect()
        };
        Svc {
            namespace,
            labels,
            requested,
            v4,
            v6,
            sharing_key,
            cross_namespace,
            local: spec["externalTrafficPolicy"] == "Local",
            ports: spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["port"].as_i64())
                .collect(),
            selector: str_map(&spec["selector"]),
            allocated: Vec::new(),
            condition: None,
            object,
        }
    }

    fn ingress(&self) -> Vec<IpAddr> {
        self.object["status"]["loadBalancer"]["ingress"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["ip"].as_str().and_then(|s| s.parse().ok()))
            .collect()
    }

    fn wants_family(&self, ip: IpAddr) -> bool {
        if ip.is_ipv6() { self.v6 } else { self.v4 }
    }

    /// `isCompatible`: whether `self` and `other` may share an address, or why not.
    fn compatible(&self, other: &Svc) -> Result<(), &'static str> {
        if self.sharing_key != other.sharing_key {
            return Err("different sharing key");
        }
        if self.namespace != other.namespace {
            let allows = |a: &Svc, b: &Svc| {
                a.cross_namespace
                    .iter()
                    .any(|n| n == &b.namespace || n == "*")
            };
            if !allows(self, other) || !allows(other, self) {
                return Err("different and not permitted namespace");
            }
        }
        if self.ports.iter().any(|p| other.ports.contains(p)) {
            return Err("same port");
        }
        if self.local != other.local {
            return Err("different ExternalTrafficPolicy");
        }
        if self.local
            && (self.selector.is_empty()
                || other.selector.is_empty()
                || self.selector != other.selector)
        {
            return Err(
                "compatible ExternalTrafficPolicy local but selecting different set of pods",
            );
        }
        Ok(())
    }

    /// `isSatisfied`, on the allocations.
    fn satisfied(&self) -> bool {
        if !self.requested.is_empty() {
            return self
                .requested
                .iter()
                .all(|r| self.allocated.iter().any(|(ip, _)| ip == r));
        }
        let has4 = self.allocated.iter().any(|(ip, _)| ip.is_ipv4());
        let has6 = self.allocated.iter().any(|(ip, _)| ip.is_ipv6());
        (has4 || !self.v4) && (has6 || !self.v6)
    }
}

/// Whether a `metav1.LabelSelector` matches `labels` (absent selector: everything).
fn selects(selector: Option<&Value>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
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

/// `ipRangeFromBlock`: `(first, last, v6, from a CIDR)`.
fn block_range(block: &Value) -> Option<(u128, u128, bool, bool)> {
    if let Some(cidr) = block["cidr"].as_str().filter(|c| !c.is_empty()) {
        let net: ipnet::IpNet = cidr.parse().ok()?;
        let (first, v6) = num(net.network());
        let (last, _) = num(net.broadcast());
        return Some((first, last, v6, true));
    }
    let start: IpAddr = block["start"].as_str()?.parse().ok()?;
    let stop: IpAddr = match block["stop"].as_str().filter(|s| !s.is_empty()) {
        Some(s) => s.parse().ok()?,
        None => start,
    };
    let ((first, v6), (last, v6b)) = (num(start), num(stop));
    (v6 == v6b && first <= last).then_some((first, last, v6, false))
}

fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

fn creation_key(object: &Value) -> (String, String, String) {
    let meta = &object["metadata"];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (
        s(&meta["creationTimestamp"]),
        s(&meta["namespace"]),
        s(&meta["name"]),
    )
}

fn responsible(svc: &Value) -> bool {
    svc["spec"]["type"] == "LoadBalancer"
        && svc["spec"]["loadBalancerClass"]
            .as_str()
            .is_none_or(|c| LB_CLASSES.contains(&c))
        && !is_deleting(svc)
}

/// The pools and their ranges, conflicts settled.
fn pools_and_ranges(api: &Cluster) -> Result<(Vec<Pool>, Vec<Range>), ControllerError> {
    let mut objects: Vec<Value> = api
        .list(POOL_API, POOL_KIND, None)?
        .into_iter()
        .filter(|p| !is_deleting(p))
        .collect();
    objects.sort_by_key(creation_key);
    let mut pools = Vec::new();
    let mut ranges: Vec<Range> = Vec::new();
    for (i, object) in objects.into_iter().enumerate() {
        let spec = &object["spec"];
        let blocks: Vec<&Value> = spec["blocks"].as_array().into_iter().flatten().collect();
        let parsed: Option<Vec<_>> = blocks.iter().map(|b| block_range(b)).collect();
        let reserve = spec["allowFirstLastIPs"] == "No";
        for (first, last, v6, from_cidr) in parsed.unwrap_or_default() {
            let mut allocs = BTreeMap::new();
            if from_cidr && reserve && last - first >= 2 {
                allocs.insert(first, Vec::new());
                allocs.insert(last, Vec::new());
            }
            ranges.push(Range {
                pool: i,
                first,
                last,
                v6,
                externally_disabled: spec["disabled"].as_bool().unwrap_or(false),
                internally_disabled: false,
                allocs,
            });
        }
        pools.push(Pool {
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            selector: spec
                .get("serviceSelector")
                .filter(|s| s.is_object())
                .cloned(),
            object,
            conflict: None,
        });
    }
    // `settleConflicts`: a pool overlapping itself, or an older pool that does not conflict.
    for p in 0..pools.len() {
        let own: Vec<usize> = (0..ranges.len()).filter(|&r| ranges[r].pool == p).collect();
        let mut conflict = None;
        'own: for &a in &own {
            for &b in &own {
                if a != b && ranges[a].overlaps(&ranges[b]) {
                    conflict = Some((a, b, p));
                    break 'own;
                }
            }
        }
        if conflict.is_none() {
            'outer: for (q, older) in pools.iter().enumerate().take(p) {
                if older.conflict.is_some() {
                    continue;
                }
                for &a in &own {
                    for b in (0..ranges.len()).filter(|&r| ranges[r].pool == q) {
                        if ranges[a].overlaps(&ranges[b]) {
                            conflict = Some((a, b, q));
                            break 'outer;
                        }
                    }
                }
            }
        }
        if let Some((a, b, q)) = conflict {
            pools[p].conflict = Some(format!(
                "Pool conflicts since range '{}' overlaps range '{}' from IP Pool '{}'",
                ranges[a].text(),
                ranges[b].text(),
                pools[q].name
            ));
            for &r in &own {
                ranges[r].internally_disabled = true;
            }
        }
    }
    Ok((pools, ranges))
}

/// `findRangeOfIP`: the first enabled range holding `ip` whose pool selects `svc`, and whether
/// some range held it.
fn find_range(
    pools: &[Pool],
    ranges: &[Range],
    svc: &Svc,
    ip: IpAddr,
    include_disabled: bool,
) -> (Option<usize>, bool) {
    let mut found_pool = false;
    for (i, r) in ranges.iter().enumerate() {
        let skip = if include_disabled {
            r.internally_disabled
        } else {
            r.disabled()
        };
        if skip || !r.contains(ip) {
            continue;
        }
        found_pool = true;
        if selects(pools[r.pool].selector.as_ref(), &svc.labels) {
            return (Some(i), false);
        }
    }
    (None, found_pool)
}

fn converge(api: &Cluster) -> Result<(), ControllerError> {
    let (pools, mut ranges) = pools_and_ranges(api)?;
    let mut objects: Vec<Value> = api
        .list("v1", "Service", None)?
        .into_iter()
        .filter(responsible)
        .collect();
    // Those holding addresses first (the operator's satisfied services), then the others.
    objects.sort_by_key(|s| {
        let holds = s["status"]["loadBalancer"]["ingress"]
            .as_array()
            .is_some_and(|i| !i.is_empty());
        (!holds, creation_key(s))
    });
    let mut svcs: Vec<Svc> = objects.into_iter().map(Svc::of).collect();
    if pools.is_empty() {
        // Dormant until the first pool appears: nothing is touched.
        return Ok(());
    }
    // Keep (import) the addresses services hold, where still valid.
    for i in 0..svcs.len() {
        for ip in svcs[i].ingress() {
            let svc = &svcs[i];
            if !svc.requested.is_empty() && !svc.requested.contains(&ip) {
                continue;
            }
            if !svc.wants_family(ip) {
                continue;
            }
            let (Some(r), _) = find_range(&pools, &ranges, svc, ip, true) else {
                continue;
            };
            let n = num(ip).0;
            let holders = ranges[r].allocs.get(&n).cloned();
            match holders {
                None => {
                    ranges[r].allocs.insert(n, vec![i]);
                }
                Some(h) if h.is_empty() => continue,
                Some(h) => {
                    if h.iter().any(|&o| svcs[o].compatible(&svcs[i]).is_err()) {
                        continue;
                    }
                    ranges[r].allocs.entry(n).or_default().push(i);
                }
            }
            svcs[i].allocated.push((ip, r));
        }
    }
    for i in 0..svcs.len() {
        if svcs[i].satisfied() {
            continue;
        }
        if svcs[i].requested.is_empty() {
            satisfy_generic(&pools, &mut ranges, &mut svcs, i);
        } else {
            satisfy_specific(&pools, &mut ranges, &mut svcs, i);
        }
    }
    for svc in &mut svcs {
        if svc.satisfied() {
            svc.condition = Some((true, "satisfied".into(), String::new()));
        }
    }
    for svc in &svcs {
        write_service(api, svc)?;
    }
    for (p, pool) in pools.iter().enumerate() {
        let (mut used, mut available) = (0u128, 0u128);
        for r in ranges.iter().filter(|r| r.pool == p) {
            let (u, a) = r.stats();
            used += u;
            available += a;
        }
        write_pool(api, pool, used, available)?;
    }
    Ok(())
}

fn satisfy_specific(pools: &[Pool], ranges: &mut [Range], svcs: &mut [Svc], i: usize) {
    for ip in svcs[i].requested.clone() {
        if svcs[i].allocated.iter().any(|(a, _)| *a == ip) {
            continue;
        }
        let (range, found_pool) = find_range(pools, ranges, &svcs[i], ip, false);
        let Some(r) = range else {
            let (reason, message) = if found_pool {
                (
                    "pool_selector_mismatch",
                    format!(
                        "The pool with the CIDR containing '{ip}', doesn't select this service"
                    ),
                )
            } else {
                (
                    "no_pool",
                    format!("No pool exists with a CIDR containing '{ip}'"),
                )
            };
            svcs[i].condition = Some((false, reason.into(), message));
            continue;
        };
        let n = num(ip).0;
        match ranges[r].allocs.get(&n).cloned() {
            Some(holders) => {
                if svcs[i].sharing_key.is_empty() {
                    svcs[i].condition = Some((
                        false,
                        "already_allocated".into(),
                        format!("The IP '{ip}' is already allocated to another service"),
                    ));
                    continue;
                }
                if let Some(why) = holders
                    .iter()
                    .find_map(|&o| svcs[o].compatible(&svcs[i]).err())
                {
                    svcs[i].condition = Some((
                        false,
                        "already_allocated_incompatible_service".into(),
                        format!(
                            "The IP '{ip}' is already allocated to an incompatible service. Reason: {why}"
                        ),
                    ));
                    continue;
                }
                // A reserved first/last address has no holders: `Update` then hands it to
                // this service (what `satisfySpecificIPRequests` does with a sharing key).
                ranges[r].allocs.entry(n).or_default().push(i);
            }
            None => {
                ranges[r].allocs.insert(n, vec![i]);
            }
        }
        svcs[i].allocated.push((ip, r));
    }
}

fn satisfy_generic(pools: &[Pool], ranges: &mut [Range], svcs: &mut [Svc], i: usize) {
    for v6 in [false, true] {
        let wanted = if v6 { svcs[i].v6 } else { svcs[i].v4 };
        if !wanted || svcs[i].allocated.iter().any(|(ip, _)| ip.is_ipv6() == v6) {
            continue;
        }
        // An address of the same sharing key, if this service is compatible with its holders.
        if !svcs[i].sharing_key.is_empty() {
            let mut shared = None;
            'search: for (r, range) in ranges.iter().enumerate() {
                if range.v6 != v6 {
                    continue;
                }
                for (&n, holders) in &range.allocs {
                    if holders.is_empty()
                        || holders.contains(&i)
                        || svcs[holders[0]].sharing_key != svcs[i].sharing_key
                    {
                        continue;
                    }
                    if holders
                        .iter()
                        .all(|&o| svcs[o].compatible(&svcs[i]).is_ok())
                    {
                        shared = Some((r, n));
                        break 'search;
                    }
                }
            }
            if let Some((r, n)) = shared {
                ranges[r].allocs.entry(n).or_default().push(i);
                svcs[i].allocated.push((addr(n, v6), r));
                continue;
            }
        }
        let mut full = false;
        let mut got = None;
        for (r, range) in ranges.iter().enumerate() {
            if range.disabled()
                || range.v6 != v6
                || !selects(pools[range.pool].selector.as_ref(), &svcs[i].labels)
            {
                continue;
            }
            match range.next_free() {
                Some(n) => {
                    got = Some((r, n));
                    break;
                }
                None => full = true,
            }
        }
        match got {
            Some((r, n)) => {
                ranges[r].allocs.insert(n, vec![i]);
                svcs[i].allocated.push((addr(n, v6), r));
            }
            None => {
                let (reason, message) = if full {
                    (
                        "out_of_ips",
                        "All enabled CiliumLoadBalancerIPPools that match this service ran out of allocatable IPs",
                    )
                } else {
                    (
                        "no_pool",
                        "There are no enabled CiliumLoadBalancerIPPools that match this service",
                    )
                };
                svcs[i].condition = Some((false, reason.into(), message.into()));
            }
        }
    }
}

/// `metav1.Condition`s with `kind` set to (`status`, `reason`, `message`), its transition time
/// kept when the status does not change (`SetStatusCondition`).
fn set_condition(
    conditions: &Value,
    kind: &str,
    status: &str,
    reason: &str,
    message: &str,
    generation: &Value,
) -> Value {
    let mut list: Vec<Value> = conditions.as_array().cloned().unwrap_or_default();
    let old = list.iter().position(|c| c["type"] == kind);
    let transition = match old.map(|i| &list[i]) {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(crate::meta::now()),
    };
    let mut cond = json!({
        "type": kind,
        "status": status,
        "lastTransitionTime": transition,
        "reason": reason,
        "message": message,
    });
    if let Some(g) = generation.as_i64() {
        cond["observedGeneration"] = json!(g);
    }
    match old {
        Some(i) => list[i] = cond,
        None => list.push(cond),
    }
    Value::Array(list)
}

/// Whether two condition lists say the same, transition times aside.
fn same_conditions(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.as_array().cloned().unwrap_or_default();
        for c in &mut v {
            if let Some(o) = c.as_object_mut() {
                o.remove("lastTransitionTime");
            }
        }
        v
    };
    strip(a) == strip(b)
}

fn write_service(api: &Cluster, svc: &Svc) -> Result<(), ControllerError> {
    let meta = &svc.object["metadata"];
    let status = &svc.object["status"];
    // Ingress in the order held, then new ones (`satisfyService` appends).
    let held = svc.ingress();
    let mut ingress: Vec<IpAddr> = held
        .iter()
        .copied()
        .filter(|ip| svc.allocated.iter().any(|(a, _)| a == ip))
        .collect();
    for (ip, _) in &svc.allocated {
        if !ingress.contains(ip) {
            ingress.push(*ip);
        }
    }
    let mut conditions = status["conditions"].clone();
    if let Some((ok, reason, message)) = &svc.condition {
        conditions = set_condition(
            &conditions,
            REQUEST_SATISFIED,
            if *ok { "True" } else { "False" },
            reason,
            message,
            &meta["generation"],
        );
    }
    let conditions_same = same_conditions(&conditions, &status["conditions"]);
    if ingress == held && conditions_same {
        return Ok(());
    }
    let ingress_value = if ingress.is_empty() {
        Value::Null
    } else {
        json!(
            ingress
                .iter()
                .map(|ip| json!({"ip": ip.to_string()}))
                .collect::<Vec<_>>()
        )
    };
    api.merge_patch_status(
        "v1",
        "Service",
        meta["namespace"].as_str(),
        meta["name"].as_str().unwrap_or_default(),
        &json!({"status": {"loadBalancer": {"ingress": ingress_value}, "conditions": conditions}}),
    )?;
    Ok(())
}

fn write_pool(
    api: &Cluster,
    pool: &Pool,
    used: u128,
    available: u128,
) -> Result<(), ControllerError> {
    let status = &pool.object["status"];
    let generation = &pool.object["metadata"]["generation"];
    let mut conditions = status["conditions"].clone();
    conditions = match &pool.conflict {
        Some(message) => set_condition(
            &conditions,
            "cilium.io/PoolConflict",
            "True",
            "cidr_overlap",
            message,
            generation,
        ),
        None => set_condition(
            &conditions,
            "cilium.io/PoolConflict",
            "False",
            "resolved",
            "",
            generation,
        ),
    };
    for (kind, n) in [
        ("cilium.io/IPsTotal", used + available),
        ("cilium.io/IPsAvailable", available),
        ("cilium.io/IPsUsed", used),
    ] {
        conditions = set_condition(
            &conditions,
            kind,
            "Unknown",
            "noreason",
            &n.to_string(),
            generation,
        );
    }
    if same_conditions(&conditions, &status["conditions"]) {
        return Ok(());
    }
    api.merge_patch_status(
        POOL_API,
        POOL_KIND,
        None,
        &pool.name,
        &json!({"status": {"conditions": conditions}}),
    )?;
    Ok(())
}
