//! MetalLB's address allocation, without I/O: which pool a service may take an address from
//! (`autoAssign`, `serviceAllocation` with its priority, namespaces and selectors, a requested
//! pool or address, `avoidBuggyIPs`), and when two services may share one address (same sharing
//! key, same backend key, no port clash). Failure reasons are worded as MetalLB words them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kubecloud_core::IpRange;
use kubecloud_core::ipam::AddressSpace;

/// A label selector as a `metav1.LabelSelector` (`matchLabels`, `matchExpressions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// Labels that must all be present with these values.
    pub match_labels: BTreeMap<String, String>,
    /// `(key, operator, values)`: `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub match_expressions: Vec<(String, String, Vec<String>)>,
}

impl Selector {
    /// Whether `labels` match.
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
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }

    /// Parses a `metav1.LabelSelector` JSON value.
    pub fn from_json(value: &serde_json::Value) -> Self {
        let match_labels = value["matchLabels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let match_expressions = value["matchExpressions"]
            .as_array()
            .map(|exprs| {
                exprs
                    .iter()
                    .map(|e| {
                        (
                            e["key"].as_str().unwrap_or_default().to_string(),
                            e["operator"].as_str().unwrap_or_default().to_string(),
                            e["values"]
                                .as_array()
                                .map(|vs| {
                                    vs.iter()
                                        .filter_map(|v| v.as_str().map(String::from))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            match_labels,
            match_expressions,
        }
    }
}

/// An `IPAddressPool` as the allocator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolConfig {
    /// The pool's object name.
    pub name: String,
    /// Its addresses (CIDRs and ranges as inclusive ranges).
    pub blocks: Vec<IpRange>,
    /// `spec.autoAssign` (MetalLB's default is `true`).
    pub auto_assign: bool,
    /// `spec.avoidBuggyIPs`.
    pub avoid_buggy_ips: bool,
    /// `spec.serviceAllocation.priority`: lower goes first; pools without one come last.
    pub priority: Option<i64>,
    /// `spec.serviceAllocation.namespaces`.
    pub namespaces: Vec<String>,
    /// `spec.serviceAllocation.namespaceSelectors`.
    pub namespace_selectors: Vec<Selector>,
    /// `spec.serviceAllocation.serviceSelectors`.
    pub service_selectors: Vec<Selector>,
}

impl PoolConfig {
    /// Whether the pool's `serviceAllocation` lets `svc` take its addresses.
    pub fn admits(&self, svc: &ServiceRequest) -> bool {
        let ns_ok = (self.namespaces.is_empty() && self.namespace_selectors.is_empty())
            || self.namespaces.contains(&svc.namespace)
            || self
                .namespace_selectors
                .iter()
                .any(|s| s.matches(&svc.namespace_labels));
        let svc_ok = self.service_selectors.is_empty()
            || self
                .service_selectors
                .iter()
                .any(|s| s.matches(&svc.labels));
        ns_ok && svc_ok
    }
}

/// A `Service` of type LoadBalancer as the allocator sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRequest {
    /// `namespace/name`.
    pub key: String,
    /// Its namespace.
    pub namespace: String,
    /// Its namespace's labels.
    pub namespace_labels: BTreeMap<String, String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `(protocol, port)` pairs, protocol upper-case (`TCP`).
    pub ports: Vec<(String, u16)>,
    /// `metallb.io/allow-shared-ip`.
    pub sharing_key: Option<String>,
    /// The backend key: the selector when `externalTrafficPolicy: Local`, else empty.
    pub backend_key: String,
    /// `metallb.io/address-pool`.
    pub pool: Option<String>,
    /// `metallb.io/loadBalancerIPs` (or `spec.loadBalancerIP`).
    pub requested: Vec<IpAddr>,
    /// Whether the service is IPv6 (its first IP family).
    pub ipv6: bool,
}

/// Address usage of one pool, as MetalLB writes it into the pool's status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// `assignedIPv4`.
    pub assigned_v4: u128,
    /// `availableIPv4`.
    pub available_v4: u128,
    /// `assignedIPv6`.
    pub assigned_v6: u128,
    /// `availableIPv6`.
    pub available_v6: u128,
}

struct PoolState {
    config: PoolConfig,
    v4: AddressSpace,
    v6: AddressSpace,
}

impl PoolState {
    fn space(&mut self, ip: IpAddr) -> &mut AddressSpace {
        if ip.is_ipv4() {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }
}

/// The services on one address.
#[derive(Clone, Debug)]
struct IpUse {
    pool: String,
    sharing_key: Option<String>,
    backend_key: String,
    ports: BTreeMap<(String, u16), String>,
    services: BTreeSet<String>,
}

/// Where one service's address came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The address.
    pub ip: IpAddr,
    /// The pool's object name.
    pub pool: String,
}

/// MetalLB's allocator: pools in priority order, addresses and who uses them.
///
/// ```
/// use kubecloud_testkit::metallb::{Allocator, PoolConfig, ServiceRequest};
/// let pool = PoolConfig {
///     name: "p".into(),
///     blocks: vec!["192.0.2.10-192.0.2.11".parse()?],
///     auto_assign: true,
///     ..PoolConfig::default()
/// };
/// let mut alloc = Allocator::new(vec![pool]);
/// let svc = |n: &str| ServiceRequest { key: format!("ns/{n}"), namespace: "ns".into(),
///     ports: vec![("TCP".into(), 80)], ..ServiceRequest::default() };
/// assert_eq!(alloc.allocate(&svc("a")).unwrap().ip.to_string(), "192.0.2.10");
/// assert_eq!(alloc.allocate(&svc("b")).unwrap().ip.to_string(), "192.0.2.11");
/// assert_eq!(alloc.allocate(&svc("c")).unwrap_err(), "no available IPs");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub struct Allocator {
    pools: Vec<PoolState>,
    uses: BTreeMap<IpAddr, IpUse>,
    assigned: BTreeMap<String, Assignment>,
}

impl Allocator {
    /// An allocator over `pools`, nothing assigned yet.
    pub fn new(mut pools: Vec<PoolConfig>) -> Self {
        pools.sort_by(|a, b| {
            (a.priority.is_none(), a.priority, &a.name).cmp(&(
                b.priority.is_none(),
                b.priority,
                &b.name,
            ))
        });
        let pools = pools
            .into_iter()
            .map(|config| {
                let (v4, v6): (Vec<IpRange>, Vec<IpRange>) =
                    config.blocks.iter().partition(|r| r.first.is_ipv4());
                PoolState {
                    v4: AddressSpace::for_pool(&config.name, &v4, config.avoid_buggy_ips),
                    v6: AddressSpace::for_pool(&config.name, &v6, config.avoid_buggy_ips),
                    config,
                }
            })
            .collect();
        Self {
            pools,
            uses: BTreeMap::new(),
            assigned: BTreeMap::new(),
        }
    }

    /// The pool configurations, in the order they are tried.
    pub fn pools(&self) -> impl Iterator<Item = &PoolConfig> {
        self.pools.iter().map(|p| &p.config)
    }

    /// The address `svc` holds, if any.
    pub fn assignment(&self, svc: &str) -> Option<&Assignment> {
        self.assigned.get(svc)
    }

    /// Every assignment, by service key.
    pub fn assignments(&self) -> &BTreeMap<String, Assignment> {
        &self.assigned
    }

    /// The usage of the pool named `pool`.
    pub fn usage(&self, pool: &str) -> PoolUsage {
        self.pools
            .iter()
            .find(|p| p.config.name == pool)
            .map(|p| PoolUsage {
                assigned_v4: p.v4.used(),
                available_v4: p.v4.available(),
                assigned_v6: p.v6.used(),
                available_v6: p.v6.available(),
            })
            .unwrap_or_default()
    }

    /// Why `svc` may not join the services already on `ip`, if it may not.
    fn sharing_refusal(&self, svc: &ServiceRequest, ip: IpAddr, used: &IpUse) -> Option<String> {
        let others: Vec<&str> = used
            .services
            .iter()
            .filter(|s| **s != svc.key)
            .map(String::as_str)
            .collect();
        if others.is_empty() {
            return None;
        }
        let key_ok = matches!((&used.sharing_key, &svc.sharing_key), (Some(a), Some(b)) if a == b)
            && used.backend_key == svc.backend_key;
        if !key_ok {
            return Some(format!(
                "can't change sharing key for {:?}, address also in use by {}",
                svc.key,
                others.join(",")
            ));
        }
        for (proto, port) in &svc.ports {
            if let Some(holder) = used.ports.get(&(proto.clone(), *port))
                && *holder != svc.key
            {
                return Some(format!(
                    "port {proto}/{port} is already in use on {:?}",
                    ip.to_string()
                ));
            }
        }
        None
    }

    fn record(&mut self, svc: &ServiceRequest, ip: IpAddr, pool: &str) {
        let used = self.uses.entry(ip).or_insert_with(|| IpUse {
            pool: pool.to_string(),
            sharing_key: svc.sharing_key.clone(),
            backend_key: svc.backend_key.clone(),
            ports: BTreeMap::new(),
            services: BTreeSet::new(),
        });
        for port in &svc.ports {
            used.ports.insert(port.clone(), svc.key.clone());
        }
        used.services.insert(svc.key.clone());
        self.assigned.insert(
            svc.key.clone(),
            Assignment {
                ip,
                pool: pool.to_string(),
            },
        );
    }

    /// Gives `svc` the address `ip` (a requested address, or the one it had): refused if no pool
    /// admitting the service holds it, or if the services on it may not share with this one.
    pub fn assign(&mut self, svc: &ServiceRequest, ip: IpAddr) -> Result<Assignment, String> {
        if let Some(current) = self.assigned.get(&svc.key) {
            if current.ip == ip {
                return Ok(current.clone());
            }
            self.release(&svc.key);
        }
        let Some(index) = self
            .pools
            .iter()
            .position(|p| p.config.admits(svc) && p.space_for(ip).is_allocatable(ip))
        else {
            return Err(format!("{:?} is not allowed in config", ip.to_string()));
        };
        let pool = self.pools[index].config.name.clone();
        if let Some(wanted) = &svc.pool
            && *wanted != pool
        {
            return Err(format!(
                "requested loadBalancer IP(s) [{:?}] is not compatible with requested address pool {wanted}",
                ip.to_string()
            ));
        }
        if let Some(used) = self.uses.get(&ip) {
            if let Some(reason) = self.sharing_refusal(svc, ip, used) {
                return Err(reason);
            }
        } else {
            self.pools[index]
                .space(ip)
                .reserve(ip, &svc.key)
                .map_err(|e| e.to_string())?;
        }
        self.record(svc, ip, &pool);
        Ok(Assignment { ip, pool })
    }

    /// Gives `svc` an address the MetalLB way: its requested address, else one from its
    /// requested pool, else one from the first auto-assigning pool with room (in priority
    /// order). An address already used by compatible sharers comes before a free one.
    pub fn allocate(&mut self, svc: &ServiceRequest) -> Result<Assignment, String> {
        if let Some(current) = self.assigned.get(&svc.key) {
            return Ok(current.clone());
        }
        if let Some(ip) = svc.requested.first() {
            return self.assign(svc, *ip);
        }
        if let Some(wanted) = &svc.pool {
            let Some(index) = self.pools.iter().position(|p| p.config.name == *wanted) else {
                return Err(format!("unknown pool {wanted:?}"));
            };
            if !self.pools[index].config.admits(svc) {
                return Err(format!("pool {wanted} not compatible for ip assignment"));
            }
            return self
                .allocate_from(svc, index)
                .ok_or_else(|| format!("no available IPs in pool {wanted:?}"));
        }
        for index in 0..self.pools.len() {
            let config = &self.pools[index].config;
            if !config.auto_assign || !config.admits(svc) {
                continue;
            }
            if let Some(found) = self.allocate_from(svc, index) {
                return Ok(found);
            }
        }
        Err("no available IPs".into())
    }

    fn allocate_from(&mut self, svc: &ServiceRequest, index: usize) -> Option<Assignment> {
        let pool = self.pools[index].config.name.clone();
        if svc.sharing_key.is_some() {
            let shared = self
                .uses
                .iter()
                .filter(|(ip, used)| used.pool == pool && ip.is_ipv6() == svc.ipv6)
                .find(|(ip, used)| self.sharing_refusal(svc, **ip, used).is_none())
                .map(|(ip, _)| *ip);
            if let Some(ip) = shared {
                self.record(svc, ip, &pool);
                return Some(Assignment { ip, pool });
            }
        }
        let state = &mut self.pools[index];
        let space = if svc.ipv6 {
            &mut state.v6
        } else {
            &mut state.v4
        };
        let ip = space.allocate(&svc.key).ok()?;
        self.record(svc, ip, &pool);
        Some(Assignment { ip, pool })
    }

    /// Frees `svc`'s address (the address itself once its last user goes).
    pub fn release(&mut self, svc: &str) -> Option<Assignment> {
        let gone = self.assigned.remove(svc)?;
        if let Some(used) = self.uses.get_mut(&gone.ip) {
            used.services.remove(svc);
            used.ports.retain(|_, holder| holder != svc);
            if used.services.is_empty() {
                self.uses.remove(&gone.ip);
                if let Some(p) = self.pools.iter_mut().find(|p| p.config.name == gone.pool) {
                    p.space(gone.ip).release(gone.ip);
                }
            }
        }
        Some(gone)
    }
}

impl PoolState {
    fn space_for(&self, ip: IpAddr) -> &AddressSpace {
        if ip.is_ipv4() { &self.v4 } else { &self.v6 }
    }
}
