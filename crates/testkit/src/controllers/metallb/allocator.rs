//! MetalLB's address allocation, without I/O, written from MetalLB's source (never from
//! kubecloud's IPAM or its MetalLB backend): metallb/metallb at commit
//! `7938d3f89b8bd808dae2e42d97d6ae7e18e9ed54` (after v0.16.1).
//!
//! - `internal/config/config.go` (`addressPoolFromCR`, `addressPoolServiceAllocationsFromCR`,
//!   `poolsByNamespace`, `poolsByServiceSelector`, `ParseCIDR`, `poolsFor`): `autoAssign`
//!   defaults to true; an `a-b` range becomes the smallest CIDRs covering it; a pool's
//!   `serviceAllocation.namespaces` plus the namespaces its `namespaceSelectors` match **when the
//!   configuration is read** make its namespace set; a `serviceAllocation` naming neither
//!   namespaces nor selectors selects every service; a duplicate namespace or selector, an
//!   invalid selector, a pool without addresses or CIDRs overlapping another's make the whole
//!   configuration invalid.
//! - `internal/allocator/allocator.go`:
//!   - `Allocate`: first the *pinned* pools (`pinnedPoolsForService`: those whose namespace set
//!     holds the service's namespace, then those with service selectors, each only if
//!     `autoAssign` and compatible), sorted by `sortPools` (priority > 0 first, lower first;
//!     priority 0 last); then every pool with `autoAssign` and **no** `serviceAllocation`. The
//!     order among pools of equal priority, and among the second group, is unspecified upstream
//!     (Go map iteration, an unstable sort with an inconsistent comparator): the double orders
//!     them by a hash of the name, so nothing can rely on name order. Failure is always
//!     `no available IPs`.
//!   - `getFreeIPsFromPool` / `getIPFromCIDR`: the pool's CIDRs in order, the **lowest**
//!     address of each (network and broadcast addresses included) that `avoidBuggyIPs` does not
//!     skip (IPv4 addresses ending in `.0` or `.255`, `ipConfusesBuggyFirmwares`) and that
//!     `checkSharing` allows; `no available IPs in pool <name>` when none.
//!   - `AllocateFromPool` (the `metallb.io/address-pool` annotation): `unknown pool "<name>"`;
//!     no `autoAssign` check; the pool must still be compatible.
//!   - `Assign` (a requested address, or the one the service holds): `["<ip>"] is not allowed in
//!     config` when no pool holds it (or it is a buggy IP of an `avoidBuggyIPs` pool),
//!     `pool <name> not compatible for ip assignment`.
//!   - `checkSharing` / `sharingOK`: an address in use may be shared only by services with the
//!     same non-empty sharing key **and** the same backend key (the selector, for
//!     `externalTrafficPolicy: Local`: `k8salloc.BackendKey`), else `can't change sharing key for
//!     "<svc>", address also in use by <others>`; no port (protocol and number) of the service
//!     may already be used on it by another service: `port TCP/80 is already in use on "<ip>"`.
//!   - `isPoolCompatibleWithService`: the namespace set (when not empty) holds the service's
//!     namespace, and one service selector (when there are any) matches its labels. A pool
//!     whose namespace selectors matched no namespace has an empty set and so admits every
//!     namespace here (though it is never pinned): MetalLB's behaviour, modelled as is.
//!   - `poolCount`, `updatePoolStats`: a pool's capacity is the sum of its CIDR sizes, less two
//!     addresses per /24 (or the `.0`/`.255` ends of a smaller CIDR) with `avoidBuggyIPs`, an
//!     IPv6 CIDR of 62 or more host bits counting as `i64::MAX`; assigned = distinct addresses
//!     in use.
//!
//! Not modelled: dual-stack services (one address of the service's family is given).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::controllers::kubeovn_ipam::{addr, num};

/// A label selector as `metav1.LabelSelectorAsSelector` reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// `matchLabels`: each must be present with this value.
    pub match_labels: BTreeMap<String, String>,
    /// `(key, operator, values)`: `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub match_expressions: Vec<(String, String, Vec<String>)>,
}

impl Selector {
    /// Reads a `metav1.LabelSelector`, refusing what `LabelSelectorAsSelector` refuses: an
    /// unknown operator, `In`/`NotIn` without values, `Exists`/`DoesNotExist` with values.
    pub fn parse(value: &serde_json::Value) -> Result<Self, String> {
        let mut match_labels = BTreeMap::new();
        for (k, v) in value["matchLabels"].as_object().into_iter().flatten() {
            let v = v
                .as_str()
                .ok_or_else(|| format!("matchLabels {k}: not a string"))?;
            match_labels.insert(k.clone(), v.to_string());
        }
        let mut match_expressions = Vec::new();
        for e in value["matchExpressions"].as_array().into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let op = e["operator"].as_str().unwrap_or_default().to_string();
            let values: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            match op.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(format!("{op} operator for {key} needs values"));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(format!("{op} operator for {key} takes no values"));
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            }
            match_expressions.push((key, op, values));
        }
        Ok(Self {
            match_labels,
            match_expressions,
        })
    }

    /// Whether `labels` match (every requirement holds; an empty selector matches everything).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|(k, op, values)| {
                let value = labels.get(k);
                match op.as_str() {
                    "In" => value.is_some_and(|v| values.contains(v)),
                    "NotIn" => value.is_none_or(|v| !values.contains(v)),
                    "Exists" => value.is_some(),
                    _ => value.is_none(),
                }
            })
    }
}

/// A pool's `serviceAllocation` as MetalLB holds it once the configuration is read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// `priority` (0: none; lower goes first).
    pub priority: i64,
    /// `namespaces` plus the namespaces `namespaceSelectors` matched.
    pub namespaces: BTreeSet<String>,
    /// `serviceSelectors` (one that matches everything when nothing was named).
    pub service_selectors: Vec<Selector>,
}

/// An `IPAddressPool` as the allocator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolConfig {
    /// The pool's object name.
    pub name: String,
    /// Its addresses as CIDRs, in order (ranges already summarised).
    pub blocks: Vec<IpNet>,
    /// `spec.autoAssign` (MetalLB's default is `true`).
    pub auto_assign: bool,
    /// `spec.avoidBuggyIPs`.
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation`, if any.
    pub service_allocation: Option<ServiceAllocation>,
}

impl PoolConfig {
    /// `isPoolCompatibleWithService`.
    pub fn compatible(&self, svc: &ServiceRequest) -> bool {
        let Some(sa) = &self.service_allocation else {
            return true;
        };
        if !sa.namespaces.is_empty() && !sa.namespaces.contains(&svc.namespace) {
            return false;
        }
        sa.service_selectors.is_empty()
            || sa.service_selectors.iter().any(|s| s.matches(&svc.labels))
    }

    fn priority(&self) -> i64 {
        self.service_allocation.as_ref().map_or(0, |s| s.priority)
    }

    fn holds(&self, ip: IpAddr) -> bool {
        !(self.avoid_buggy_ips && buggy(ip)) && self.blocks.iter().any(|b| b.contains(&ip))
    }
}

/// A `Service` of type LoadBalancer as the allocator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRequest {
    /// `namespace/name`.
    pub key: String,
    /// Its namespace.
    pub namespace: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `(protocol, port)` pairs as in `spec.ports` (`k8salloc.Ports`).
    pub ports: Vec<(String, u16)>,
    /// `metallb.io/allow-shared-ip` (`None` or empty: no sharing).
    pub sharing_key: Option<String>,
    /// `k8salloc.BackendKey`: the selector (`k=v,…`, sorted) with `externalTrafficPolicy:
    /// Local`, else empty.
    pub backend_key: String,
    /// `metallb.io/address-pool`.
    pub pool: Option<String>,
    /// `metallb.io/loadBalancerIPs` (or `spec.loadBalancerIP`).
    pub requested: Vec<IpAddr>,
    /// Whether the service is IPv6 (the family of its cluster IP).
    pub ipv6: bool,
}

impl ServiceRequest {
    fn sharing(&self) -> &str {
        self.sharing_key.as_deref().unwrap_or_default()
    }
}

/// Address usage of one pool, as MetalLB writes it into the pool's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// `assignedIPv4`.
    pub assigned_v4: i64,
    /// `availableIPv4`.
    pub available_v4: i64,
    /// `assignedIPv6`.
    pub assigned_v6: i64,
    /// `availableIPv6`.
    pub available_v6: i64,
}

/// Where one service's address came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The address.
    pub ip: IpAddr,
    /// The pool's object name.
    pub pool: String,
}

#[derive(Clone, Debug)]
struct Alloc {
    pool: String,
    ip: IpAddr,
    ports: Vec<(String, u16)>,
}

/// `ipConfusesBuggyFirmwares`: an IPv4 address ending in 0 or 255.
pub fn buggy(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v) if matches!(v.octets()[3], 0 | 255))
}

/// FNV-1a of a name: the order of pools MetalLB leaves unspecified.
fn scramble(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// `sortPools`, with ties in the double's unspecified order.
fn sort_pools(pools: &mut [&PoolConfig]) {
    pools.sort_by_key(|p| {
        let pr = p.priority();
        (pr <= 0, if pr > 0 { pr } else { 0 }, scramble(&p.name))
    });
}

/// `poolCount`: (IPv4, IPv6) capacity.
fn pool_count(p: &PoolConfig) -> (i64, i64) {
    let (mut v4, mut v6) = (0i64, 0i64);
    for cidr in &p.blocks {
        let host = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
        if host >= 62 {
            v6 = i64::MAX;
            continue;
        }
        let mut size = 1i64 << host;
        if p.avoid_buggy_ips {
            let prefix = u32::from(cidr.prefix_len());
            if prefix <= 24 {
                size -= (1i64 << (24 - prefix)) * 2;
            } else {
                if buggy(cidr.network()) {
                    size -= 1;
                }
                if buggy(cidr.broadcast()) {
                    size -= 1;
                }
            }
        }
        if cidr.network().is_ipv4() {
            v4 += size;
        } else {
            v6 = v6.saturating_add(size);
        }
    }
    (v4, v6)
}

/// MetalLB's allocator: pools, addresses and who uses them.
///
/// ```
/// use kubecloud_testkit::metallb::{Allocator, PoolConfig, ServiceRequest, parse_addresses};
/// let pool = PoolConfig {
///     name: "p".into(),
///     blocks: parse_addresses("192.0.2.10-192.0.2.11").unwrap(),
///     auto_assign: true,
///     ..PoolConfig::default()
/// };
/// let mut alloc = Allocator::new(vec![pool]);
/// let svc = |n: &str| ServiceRequest { key: format!("ns/{n}"), namespace: "ns".into(),
///     ports: vec![("TCP".into(), 80)], ..ServiceRequest::default() };
/// assert_eq!(alloc.allocate(&svc("a")).unwrap().ip.to_string(), "192.0.2.10");
/// assert_eq!(alloc.allocate(&svc("b")).unwrap().ip.to_string(), "192.0.2.11");
/// assert_eq!(alloc.allocate(&svc("c")).unwrap_err(), "no available IPs");
/// ```
pub struct Allocator {
    pools: Vec<PoolConfig>,
    allocated: BTreeMap<String, Alloc>,
    sharing_key_for_ip: BTreeMap<IpAddr, (String, String)>,
    ports_in_use: BTreeMap<IpAddr, BTreeMap<(String, u16), String>>,
    services_on_ip: BTreeMap<IpAddr, BTreeSet<String>>,
    pool_ips_in_use: BTreeMap<String, BTreeMap<IpAddr, usize>>,
}

impl Allocator {
    /// An allocator over `pools`, nothing assigned yet.
    pub fn new(pools: Vec<PoolConfig>) -> Self {
        Self {
            pools,
            allocated: BTreeMap::new(),
            sharing_key_for_ip: BTreeMap::new(),
            ports_in_use: BTreeMap::new(),
            services_on_ip: BTreeMap::new(),
            pool_ips_in_use: BTreeMap::new(),
        }
    }

    /// The pool configurations.
    pub fn pools(&self) -> impl Iterator<Item = &PoolConfig> {
        self.pools.iter()
    }

    /// The address `svc` holds, if any.
    pub fn assignment(&self, svc: &str) -> Option<Assignment> {
        self.allocated.get(svc).map(|a| Assignment {
            ip: a.ip,
            pool: a.pool.clone(),
        })
    }

    /// Every assignment, by service key.
    pub fn assignments(&self) -> BTreeMap<String, Assignment> {
        self.allocated
            .keys()
            .filter_map(|k| Some((k.clone(), self.assignment(k)?)))
            .collect()
    }

    /// The usage of the pool named `pool` (`updatePoolStats`).
    pub fn usage(&self, pool: &str) -> PoolUsage {
        let Some(p) = self.pools.iter().find(|p| p.name == pool) else {
            return PoolUsage::default();
        };
        let (cap4, cap6) = pool_count(p);
        let used = self.pool_ips_in_use.get(pool);
        let n =
            |v4: bool| used.map_or(0, |u| u.keys().filter(|ip| ip.is_ipv4() == v4).count()) as i64;
        PoolUsage {
            assigned_v4: n(true),
            available_v4: cap4 - n(true),
            assigned_v6: n(false),
            available_v6: cap6.saturating_sub(n(false)),
        }
    }

    /// `poolFor`: the pool holding `ip`.
    fn pool_for(&self, ip: IpAddr) -> Option<&PoolConfig> {
        let mut pools: Vec<&PoolConfig> = self.pools.iter().collect();
        pools.sort_by_key(|p| scramble(&p.name));
        pools.into_iter().find(|p| p.holds(ip))
    }

    /// `checkSharing`.
    fn check_sharing(&self, svc: &ServiceRequest, ip: IpAddr) -> Result<(), String> {
        let Some((sharing, backend)) = self.sharing_key_for_ip.get(&ip) else {
            return Ok(());
        };
        let ok = !sharing.is_empty()
            && !svc.sharing().is_empty()
            && sharing == svc.sharing()
            && *backend == svc.backend_key;
        if !ok {
            let others: Vec<&str> = self
                .services_on_ip
                .get(&ip)
                .into_iter()
                .flatten()
                .filter(|s| **s != svc.key)
                .map(String::as_str)
                .collect();
            if !others.is_empty() {
                return Err(format!(
                    "can't change sharing key for {:?}, address also in use by {}",
                    svc.key,
                    others.join(",")
                ));
            }
        }
        for (proto, port) in &svc.ports {
            if let Some(holder) = self
                .ports_in_use
                .get(&ip)
                .and_then(|m| m.get(&(proto.clone(), *port)))
                && *holder != svc.key
            {
                return Err(format!(
                    "port {proto}/{port} is already in use on {:?}",
                    ip.to_string()
                ));
            }
        }
        Ok(())
    }

    /// `Assign`: gives `svc` the address `ip` (a requested address, or the one it holds).
    pub fn assign(&mut self, svc: &ServiceRequest, ip: IpAddr) -> Result<Assignment, String> {
        let Some(pool) = self.pool_for(ip) else {
            return Err(format!("[{:?}] is not allowed in config", ip.to_string()));
        };
        if !pool.compatible(svc) {
            return Err(format!(
                "pool {} not compatible for ip assignment",
                pool.name
            ));
        }
        let pool = pool.name.clone();
        self.check_sharing(svc, ip)?;
        self.release(&svc.key);
        let key = (svc.sharing().to_string(), svc.backend_key.clone());
        self.sharing_key_for_ip.insert(ip, key);
        let ports = self.ports_in_use.entry(ip).or_default();
        for p in &svc.ports {
            ports.insert(p.clone(), svc.key.clone());
        }
        self.services_on_ip
            .entry(ip)
            .or_default()
            .insert(svc.key.clone());
        *self
            .pool_ips_in_use
            .entry(pool.clone())
            .or_default()
            .entry(ip)
            .or_default() += 1;
        self.allocated.insert(
            svc.key.clone(),
            Alloc {
                pool: pool.clone(),
                ip,
                ports: svc.ports.clone(),
            },
        );
        Ok(Assignment { ip, pool })
    }

    /// `Unassign`: frees `svc`'s address.
    pub fn release(&mut self, svc: &str) -> Option<Assignment> {
        let gone = self.allocated.remove(svc)?;
        let ip = gone.ip;
        if let Some(ports) = self.ports_in_use.get_mut(&ip) {
            for p in &gone.ports {
                ports.remove(p);
            }
        }
        if let Some(s) = self.services_on_ip.get_mut(&ip) {
            s.remove(svc);
            if s.is_empty() {
                self.services_on_ip.remove(&ip);
            }
        }
        if self.ports_in_use.get(&ip).is_none_or(BTreeMap::is_empty) {
            self.ports_in_use.remove(&ip);
            self.sharing_key_for_ip.remove(&ip);
        }
        if let Some(used) = self.pool_ips_in_use.get_mut(&gone.pool)
            && let Some(n) = used.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                used.remove(&ip);
            }
        }
        Some(Assignment {
            ip,
            pool: gone.pool,
        })
    }

    /// `getIPFromCIDR` over the pool's CIDRs, for the service's family.
    fn free_ip(&self, pool: &PoolConfig, svc: &ServiceRequest) -> Option<IpAddr> {
        for cidr in pool
            .blocks
            .iter()
            .filter(|c| c.network().is_ipv6() == svc.ipv6)
        {
            let v4 = cidr.network().is_ipv4();
            let (first, last) = (num(cidr.network()), num(cidr.broadcast()));
            let mut n = first;
            loop {
                let ip = addr(n, v4);
                if !(pool.avoid_buggy_ips && buggy(ip)) && self.check_sharing(svc, ip).is_ok() {
                    return Some(ip);
                }
                if n == last {
                    break;
                }
                n += 1;
            }
        }
        None
    }

    /// Whether the pool has any free address of either family (`getFreeIPsFromPool` errs
    /// only when it has none).
    fn any_free(&self, pool: &PoolConfig, svc: &ServiceRequest) -> bool {
        let mut other = svc.clone();
        other.ipv6 = !svc.ipv6;
        self.free_ip(pool, svc).is_some() || self.free_ip(pool, &other).is_some()
    }

    /// `Allocate`: the address it holds, else one from the pinned pools, else from the pools
    /// without `serviceAllocation`.
    pub fn allocate(&mut self, svc: &ServiceRequest) -> Result<Assignment, String> {
        if let Some(current) = self.allocated.get(&svc.key).map(|a| a.ip) {
            return self.assign(svc, current);
        }
        let mut pinned: Vec<&PoolConfig> = self
            .pools
            .iter()
            .filter(|p| {
                p.service_allocation.as_ref().is_some_and(|sa| {
                    sa.namespaces.contains(&svc.namespace) || !sa.service_selectors.is_empty()
                }) && p.auto_assign
                    && p.compatible(svc)
            })
            .collect();
        sort_pools(&mut pinned);
        let mut rest: Vec<&PoolConfig> = self
            .pools
            .iter()
            .filter(|p| p.auto_assign && p.service_allocation.is_none())
            .collect();
        rest.sort_by_key(|p| scramble(&p.name));
        // `findBestPoolForService`: the first pool with an address of the family.
        let found = [pinned, rest]
            .iter()
            .find_map(|group| group.iter().find_map(|p| self.free_ip(p, svc)));
        match found {
            Some(ip) => self
                .assign(svc, ip)
                .map_err(|_| "no available IPs".to_string()),
            None => Err("no available IPs".into()),
        }
    }

    /// `AllocateFromPool` (the `metallb.io/address-pool` annotation).
    pub fn allocate_from_pool(
        &mut self,
        svc: &ServiceRequest,
        pool: &str,
    ) -> Result<Assignment, String> {
        if let Some(current) = self.allocated.get(&svc.key).map(|a| a.ip) {
            if current.is_ipv6() != svc.ipv6 {
                return Err("IP for wrong family assigned".into());
            }
            return self.assign(svc, current);
        }
        let Some(config) = self.pools.iter().find(|p| p.name == pool) else {
            return Err(format!("unknown pool {pool:?}"));
        };
        if !self.any_free(config, svc) {
            return Err(format!("no available IPs in pool {pool}"));
        }
        match self.free_ip(config, svc) {
            Some(ip) => self.assign(svc, ip),
            // `selectIPsForFamilyAndPolicy` hands `Assign` a nil address.
            None => Err("[\"<nil>\"] is not allowed in config".into()),
        }
    }
}

/// `config.ParseCIDR`: one `spec.addresses` entry as CIDRs (an `a-b` range summarised).
pub fn parse_addresses(entry: &str) -> Result<Vec<IpNet>, String> {
    let entry = entry.trim();
    let Some((a, b)) = entry.split_once('-') else {
        return entry
            .parse::<IpNet>()
            .map(|n| vec![n.trunc()])
            .map_err(|_| format!("invalid CIDR {entry:?}"));
    };
    let start: IpAddr = a
        .trim()
        .parse()
        .map_err(|_| format!("invalid IP range {entry:?}: invalid start IP {a:?}"))?;
    let end: IpAddr = b
        .trim()
        .parse()
        .map_err(|_| format!("invalid IP range {entry:?}: invalid end IP {b:?}"))?;
    match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) if s <= e => {
            Ok(ipnet::Ipv4Subnets::new(s, e, 0).map(IpNet::V4).collect())
        }
        (IpAddr::V6(s), IpAddr::V6(e)) if s <= e => {
            Ok(ipnet::Ipv6Subnets::new(s, e, 0).map(IpNet::V6).collect())
        }
        _ => Err(format!(
            "invalid IP range {entry:?}: start IP {start:?} is after the end IP {end:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_become_the_smallest_covering_cidrs() {
        let nets = parse_addresses("192.0.2.254-192.0.3.1").unwrap();
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["192.0.2.254/31", "192.0.3.0/31"]);
    }

    #[test]
    fn capacity_follows_pool_count() {
        let p = |cidr: &str, avoid| PoolConfig {
            name: "p".into(),
            blocks: parse_addresses(cidr).unwrap(),
            auto_assign: true,
            avoid_buggy_ips: avoid,
            service_allocation: None,
        };
        assert_eq!(pool_count(&p("192.0.2.0/24", false)), (256, 0));
        assert_eq!(pool_count(&p("192.0.2.0/23", true)), (512 - 4, 0));
        assert_eq!(pool_count(&p("192.0.2.0/30", true)), (3, 0));
        assert_eq!(pool_count(&p("2001:db8::/64", true)), (0, i64::MAX));
    }
}
