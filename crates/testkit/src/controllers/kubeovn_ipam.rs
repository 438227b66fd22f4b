//! Kube-OVN's IPAM, as kube-ovn-controller keeps it in memory for each subnet: which address is
//! handed out, which are refused, what happens on release, and the address counts it writes into
//! a `Subnet`'s status. Written from Kube-OVN's source, not from kubecloud's IPAM (the double must
//! catch kubecloud's mistakes, not share them).
//!
//! Modelled on kubeovn/kube-ovn at commit `1533681d7a6b3dbdd7e8870fa70f0dc6aa49a82a`:
//!
//! - `pkg/ipam/subnet.go` (`NewSubnet`, `getV4RandomAddress`, `GetStaticAddress`,
//!   `staticAddressFamilyForIP`, `allocateStaticAddress`, `releaseV4Addr`, `GetStaticMac`,
//!   `GetRandomMac`): the allocatable addresses are `FirstIP..LastIP` (network + 1 to broadcast
//!   minus 1; a /31 starts at its network address); `excludeIps` are *reserved*. A dynamic address
//!   is the **lowest free** one (free = never handed out since the subnet was loaded, less the
//!   reserved ones); a released address goes to a *released* list that is used only once no free
//!   address is left (then the released list becomes the free list). A fixed address outside
//!   `FirstIP..LastIP` is `AddressOutOfRange`; the gateway or an address held by another NIC is
//!   `AddressConflict`; a fixed address in `excludeIps` **is** granted (only dynamic allocation
//!   skips them). A MAC held by another NIC is `AddressConflict`; a generated MAC is random,
//!   locally administered and unicast (`pkg/util/net.go` `GenerateMac`).
//! - `pkg/ipam/ip_range_list.go` (`Allocate`, `Separate`, `String`): ranges render as `a-b`,
//!   single addresses as `a`, joined by `,`.
//! - `pkg/util/net.go` (`FirstIP`, `LastIP`, `ExpandExcludeIPs`, `CountIPNumsBigInt`,
//!   `AddressCountBigInt`, `ContainsIPs`): `excludeIps` entries are addresses or `a..b` ranges,
//!   clipped to `FirstIP..LastIP`; a single address that is the network or broadcast address or
//!   outside the CIDR is dropped.
//! - `pkg/controller/subnet.go` (`formatExcludeIPs`, `GetGwByCidr`): the gateway defaults to
//!   the first address and is added to `excludeIps` when no entry contains it.
//! - `pkg/controller/subnet_status.go` (`calcSubnetStatusIP`, `calculateUsingIPs`) and
//!   `pkg/ipam/ipam.go` (`GetSubnetIPRangeString`): `usingIPs` is the number of `IP` objects of
//!   the subnet (terminating ones included, as the lister has them) less those inside a
//!   non-gateway `excludeIps` entry, plus the `OvnEip`s labelled with the subnet;
//!   `availableIPs` is `AddressCount(cidr)` (2^host bits - 2, or all of a /31 or /32) less the
//!   expanded `excludeIps` count (overlapping entries counted twice, as Kube-OVN does) less
//!   `usingIPs`, never below 0; `…availableIPrange` is the available list less the reserved, and
//!   `…usingIPrange` the using list less the reserved. All eight `v4…`/`v6…` fields are written.
//!
//! Not modelled: IP pools (`IPPool`), dual-stack subnets (the first CIDR of `cidrBlock` is used),
//! skipped addresses (`validatePodIP`), VIPs and iptables EIPs in the counts.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde_json::{Value, json};

/// Why Kube-OVN's IPAM refused an address, spelled as Kube-OVN's errors (`pkg/ipam/ipam.go`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpamError {
    /// `AddressOutOfRange`: not in `FirstIP..LastIP` of the subnet.
    OutOfRange,
    /// `AddressConflict`: the gateway, or held by another NIC (address or MAC).
    Conflict,
    /// `NoAvailableAddress`: no free or released address left.
    NoAvailable,
}

impl fmt::Display for IpamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OutOfRange => "AddressOutOfRange",
            Self::Conflict => "AddressConflict",
            Self::NoAvailable => "NoAvailableAddress",
        })
    }
}

/// Sorted, disjoint, merged inclusive ranges of one family (Kube-OVN's `IPRangeList`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeList(Vec<(u128, u128)>);

impl RangeList {
    /// The range `first..=last` (empty when `first > last`).
    pub fn range(first: u128, last: u128) -> Self {
        if first > last {
            Self::default()
        } else {
            Self(vec![(first, last)])
        }
    }

    /// Adds one address; whether it was absent.
    pub fn add(&mut self, x: u128) -> bool {
        if self.contains(x) {
            return false;
        }
        self.add_range(x, x);
        true
    }

    /// Adds `a..=b`.
    pub fn add_range(&mut self, a: u128, b: u128) {
        if a > b {
            return;
        }
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let (mut lo, mut hi) = (a, b);
        let mut placed = false;
        for &(s, e) in &self.0 {
            if e.saturating_add(1) < lo {
                out.push((s, e));
            } else if hi.saturating_add(1) < s {
                if !placed {
                    out.push((lo, hi));
                    placed = true;
                }
                out.push((s, e));
            } else {
                lo = lo.min(s);
                hi = hi.max(e);
            }
        }
        if !placed {
            out.push((lo, hi));
        }
        out.sort_unstable();
        self.0 = out;
    }

    /// Removes one address; whether it was there.
    pub fn remove(&mut self, x: u128) -> bool {
        let Some(i) = self.0.iter().position(|&(s, e)| s <= x && x <= e) else {
            return false;
        };
        let (s, e) = self.0.remove(i);
        if x < e {
            self.0.insert(i, (x + 1, e));
        }
        if s < x {
            self.0.insert(i, (s, x - 1));
        }
        true
    }

    /// Whether `x` is in the list.
    pub fn contains(&self, x: u128) -> bool {
        self.0.iter().any(|&(s, e)| s <= x && x <= e)
    }

    /// The list less `other` (`IPRangeList.Separate`).
    pub fn separate(&self, other: &RangeList) -> RangeList {
        let mut out = Vec::new();
        for &(s, e) in &self.0 {
            let mut start = s;
            let mut covered = false;
            for &(os, oe) in &other.0 {
                if oe < start || os > e {
                    continue;
                }
                if os > start {
                    out.push((start, os - 1));
                }
                if oe >= e {
                    covered = true;
                    break;
                }
                start = oe + 1;
            }
            if !covered {
                out.push((start, e));
            }
        }
        RangeList(out)
    }

    /// The lowest address.
    pub fn first(&self) -> Option<u128> {
        self.0.first().map(|&(s, _)| s)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many addresses it holds.
    #[cfg(test)]
    pub fn count(&self) -> u128 {
        self.0.iter().map(|&(s, e)| e - s + 1).sum()
    }

    /// Kube-OVN's rendering: `a-b` or `a`, joined by `,`.
    pub fn render(&self, v4: bool) -> String {
        self.0
            .iter()
            .map(|&(s, e)| {
                if s == e {
                    addr(s, v4).to_string()
                } else {
                    format!("{}-{}", addr(s, v4), addr(e, v4))
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// An address as a number.
pub fn num(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// A number as an address of the family.
pub fn addr(n: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(n as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(n))
    }
}

fn host_bits(net: &IpNet) -> u32 {
    u32::from(net.max_prefix_len() - net.prefix_len())
}

/// `util.FirstIP`: network + 1, or the network address of a /31 (/127).
fn first_ip(net: &IpNet) -> u128 {
    let n = num(net.network());
    if host_bits(net) == 1 { n } else { n + 1 }
}

/// `util.LastIP`: network + 2^host bits - 2 (- 1 for a /31).
fn last_ip(net: &IpNet) -> u128 {
    let bits = host_bits(net);
    let size = if bits >= 128 {
        u128::MAX
    } else {
        1u128 << bits
    };
    let less = if bits == 1 { 1 } else { 2 };
    num(net.network()) + size.saturating_sub(less)
}

/// `util.AddressCountBigInt`: 2^host bits, less 2 when there are at least 2 host bits.
fn address_count(net: &IpNet) -> u128 {
    let bits = host_bits(net);
    let size = if bits >= 128 {
        u128::MAX
    } else {
        1u128 << bits
    };
    if bits >= 2 { size - 2 } else { size }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

/// `util.ExpandExcludeIPs` for one CIDR: the entries as inclusive numeric ranges, clipped.
pub fn expand_exclude_ips(entries: &[String], net: &IpNet) -> Vec<(u128, u128)> {
    let v4 = net.network().is_ipv4();
    let (first, last) = (first_ip(net), last_ip(net));
    let mut out = Vec::new();
    for entry in entries {
        if let Some((a, b)) = entry.split_once("..") {
            let (Some(a), Some(b)) = (parse_ip(a), parse_ip(b)) else {
                continue;
            };
            if a.is_ipv4() != v4 || b.is_ipv4() != v4 || num(a) > num(b) {
                continue;
            }
            let (s, e) = (num(a).max(first), num(b).min(last));
            if s <= e {
                out.push((s, e));
            }
        } else if let Some(ip) = parse_ip(entry)
            && ip.is_ipv4() == v4
            && net.contains(&ip)
            && ip != net.network()
            && ip != net.broadcast()
        {
            out.push((num(ip), num(ip)));
        }
    }
    out
}

/// `util.ContainsIPs`: whether an `excludeIps` entry holds `ip`.
fn entry_contains(entry: &str, ip: IpAddr) -> bool {
    match entry.split_once("..") {
        Some((a, b)) => match (parse_ip(a), parse_ip(b)) {
            (Some(a), Some(b)) => {
                a.is_ipv4() == ip.is_ipv4() && num(a) <= num(ip) && num(ip) <= num(b)
            }
            _ => false,
        },
        None => parse_ip(entry) == Some(ip),
    }
}

/// The parts of a `Subnet` spec the IPAM depends on, as kube-ovn-controller formats them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetShape {
    /// The first CIDR of `cidrBlock`, as its network.
    pub cidr: IpNet,
    /// `spec.gateway` of the CIDR's family, else the first address.
    pub gateway: IpAddr,
    /// `spec.excludeIps` with the gateway added when no entry holds it (`formatExcludeIPs`).
    pub exclude_ips: Vec<String>,
    /// `spec.excludeIps` as written, for the `usingIPs` count (`filterNonGatewayExcludeIPs`).
    pub written_exclude_ips: Vec<String>,
}

impl SubnetShape {
    /// Reads a `Subnet` object; `None` without a parsable `cidrBlock`.
    pub fn of(subnet: &Value) -> Option<Self> {
        let cidr: IpNet = subnet["spec"]["cidrBlock"]
            .as_str()?
            .split(',')
            .next()?
            .trim()
            .parse()
            .ok()?;
        let cidr = cidr.trunc();
        let v4 = cidr.network().is_ipv4();
        let gateway = subnet["spec"]["gateway"]
            .as_str()
            .unwrap_or_default()
            .split(',')
            .filter_map(parse_ip)
            .find(|g| g.is_ipv4() == v4)
            .unwrap_or_else(|| addr(num(cidr.network()) + 1, v4));
        let written: Vec<String> = subnet["spec"]["excludeIps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect();
        let mut exclude_ips = written.clone();
        if !exclude_ips.iter().any(|e| entry_contains(e, gateway)) {
            exclude_ips.push(gateway.to_string());
            exclude_ips.sort();
        }
        Some(Self {
            cidr,
            gateway,
            exclude_ips,
            written_exclude_ips: written,
        })
    }

    /// Whether the address family is IPv4.
    pub fn v4(&self) -> bool {
        self.cidr.network().is_ipv4()
    }

    /// The gateway as it is annotated on pods.
    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }
}

/// One subnet's IPAM state (`ipam.Subnet`, one family).
#[derive(Clone, Debug)]
pub struct SubnetIpam {
    /// The spec this state was built from; a changed spec rebuilds it.
    pub shape: SubnetShape,
    ips: RangeList,
    reserved: RangeList,
    free: RangeList,
    released: RangeList,
    nic_to_ip: BTreeMap<String, u128>,
    ip_to_nic: BTreeMap<u128, String>,
    nic_to_mac: BTreeMap<String, String>,
    mac_to_nic: BTreeMap<String, String>,
}

/// A random, locally administered, unicast MAC (`util.GenerateMac`).
pub fn random_mac() -> String {
    let mut buf: [u8; 6] = rand::random();
    buf[0] = (buf[0] | 0x02) & 0xfe;
    buf.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn mac_key(mac: &str) -> String {
    mac.trim().to_ascii_lowercase()
}

impl SubnetIpam {
    /// A subnet as `NewSubnet` loads it: nothing handed out, nothing released.
    pub fn new(shape: SubnetShape) -> Self {
        let ips = RangeList::range(first_ip(&shape.cidr), last_ip(&shape.cidr));
        let mut reserved = RangeList::default();
        for (a, b) in expand_exclude_ips(&shape.exclude_ips, &shape.cidr) {
            reserved.add_range(a, b);
        }
        let free = ips.separate(&reserved);
        Self {
            shape,
            ips,
            reserved,
            free,
            released: RangeList::default(),
            nic_to_ip: BTreeMap::new(),
            ip_to_nic: BTreeMap::new(),
            nic_to_mac: BTreeMap::new(),
            mac_to_nic: BTreeMap::new(),
        }
    }

    fn v4(&self) -> bool {
        self.shape.v4()
    }

    /// The address and MAC `nic` holds.
    pub fn held(&self, nic: &str) -> Option<(IpAddr, String)> {
        let ip = *self.nic_to_ip.get(nic)?;
        let mac = self.nic_to_mac.get(nic)?.clone();
        Some((addr(ip, self.v4()), mac))
    }

    fn static_mac(&mut self, nic: &str, mac: &str) -> Result<(), IpamError> {
        let key = mac_key(mac);
        if let Some(other) = self.mac_to_nic.get(&key)
            && other != nic
        {
            return Err(IpamError::Conflict);
        }
        if let Some(old) = self.nic_to_mac.insert(nic.to_string(), mac.to_string()) {
            self.mac_to_nic.remove(&mac_key(&old));
        }
        self.mac_to_nic.insert(key, nic.to_string());
        Ok(())
    }

    fn random_mac(&mut self, nic: &str) -> String {
        if let Some(mac) = self.nic_to_mac.get(nic) {
            return mac.clone();
        }
        loop {
            let mac = random_mac();
            if !self.mac_to_nic.contains_key(&mac) {
                self.mac_to_nic.insert(mac.clone(), nic.to_string());
                self.nic_to_mac.insert(nic.to_string(), mac.clone());
                return mac;
            }
        }
    }

    /// `getV4RandomAddress`: the lowest free address (released ones only once none is free),
    /// and the fixed `mac` or a random one. A NIC that already holds an address keeps it.
    pub fn allocate(
        &mut self,
        nic: &str,
        mac: Option<&str>,
    ) -> Result<(IpAddr, String), IpamError> {
        if let Some(&ip) = self.nic_to_ip.get(nic)
            && self.nic_to_mac.contains_key(nic)
        {
            let mac = self.nic_to_mac[nic].clone();
            return Ok((addr(ip, self.v4()), mac));
        }
        self.free = self.free.separate(&self.reserved);
        if self.free.is_empty() {
            self.free = self.released.separate(&self.reserved);
            self.released = RangeList::default();
            if self.free.is_empty() {
                return Err(IpamError::NoAvailable);
            }
        }
        let ip = self.free.first().ok_or(IpamError::NoAvailable)?;
        self.free.remove(ip);
        self.nic_to_ip.insert(nic.to_string(), ip);
        self.ip_to_nic.insert(ip, nic.to_string());
        let mac = match mac {
            None => self.random_mac(nic),
            Some(m) => {
                if let Err(e) = self.static_mac(nic, m) {
                    self.release(nic);
                    return Err(e);
                }
                m.to_string()
            }
        };
        Ok((addr(ip, self.v4()), mac))
    }

    /// `GetStaticAddress`: the fixed `ip` for `nic`, with the fixed `mac` (checked first) or the
    /// NIC's or a random one. With `check_conflict` false (Kube-OVN rebuilding its IPAM from the
    /// `IP` objects, or a live migration), an address or MAC held by another NIC is shared.
    pub fn assign(
        &mut self,
        nic: &str,
        ip: IpAddr,
        mac: Option<&str>,
        check_conflict: bool,
    ) -> Result<String, IpamError> {
        if ip.is_ipv4() != self.v4() || !self.shape.cidr.contains(&ip) {
            return Err(IpamError::OutOfRange);
        }
        let n = num(ip);
        if !self.ips.contains(n) {
            return Err(IpamError::OutOfRange);
        }
        if check_conflict && ip == self.shape.gateway {
            return Err(IpamError::Conflict);
        }
        if let Some(&current) = self.nic_to_ip.get(nic)
            && current != n
        {
            self.release_ip_only(nic);
        }
        let mac = match mac {
            None => self.random_mac(nic),
            Some(m) => {
                if check_conflict {
                    self.static_mac(nic, m)?;
                } else {
                    self.nic_to_mac.insert(nic.to_string(), m.to_string());
                    self.mac_to_nic.insert(mac_key(m), nic.to_string());
                }
                m.to_string()
            }
        };
        match self.ip_to_nic.get(&n) {
            Some(other) if other == nic => return Ok(mac),
            Some(_) if check_conflict => return Err(IpamError::Conflict),
            Some(_) => {
                self.nic_to_ip.insert(nic.to_string(), n);
                return Ok(mac);
            }
            None => {}
        }
        if !(self.reserved.contains(n) || self.free.remove(n) || self.released.remove(n)) {
            return Err(IpamError::NoAvailable);
        }
        self.nic_to_ip.insert(nic.to_string(), n);
        self.ip_to_nic.insert(n, nic.to_string());
        Ok(mac)
    }

    fn release_ip_only(&mut self, nic: &str) -> Option<u128> {
        let ip = self.nic_to_ip.remove(nic)?;
        if self.ip_to_nic.get(&ip).map(String::as_str) == Some(nic) {
            self.ip_to_nic.remove(&ip);
            let in_cidr = self.shape.cidr.contains(&addr(ip, self.v4()));
            if in_cidr && !self.reserved.contains(ip) {
                self.released.add(ip);
            }
        }
        Some(ip)
    }

    /// `releaseAddr`: frees what `nic` holds; its address goes to the released list (unless
    /// excluded), its MAC is forgotten.
    pub fn release(&mut self, nic: &str) {
        self.release_ip_only(nic);
        if let Some(mac) = self.nic_to_mac.remove(nic) {
            self.mac_to_nic.remove(&mac_key(&mac));
        }
    }

    /// The status fields `calcSubnetStatusIP` writes, given the subnet's `IP` objects and the
    /// number of `OvnEip`s labelled with it.
    pub fn status(&self, ip_objects: &[&Value], eips: usize) -> Value {
        let shape = &self.shape;
        let non_gw: Vec<&String> = shape
            .written_exclude_ips
            .iter()
            .filter(|e| parse_ip(e) != Some(shape.gateway))
            .collect();
        let mut using: i128 = ip_objects.len() as i128;
        for o in ip_objects {
            let addrs = ["v4IpAddress", "v6IpAddress"]
                .iter()
                .filter_map(|f| o["spec"][f].as_str())
                .filter_map(parse_ip)
                .collect::<Vec<_>>();
            if addrs
                .iter()
                .any(|a| non_gw.iter().any(|e| entry_contains(e, *a)))
            {
                using -= 1;
            }
        }
        using += eips as i128;
        let excluded: u128 = expand_exclude_ips(&shape.exclude_ips, &shape.cidr)
            .iter()
            .map(|&(a, b)| b - a + 1)
            .sum();
        let total = address_count(&shape.cidr) as i128;
        let available = (total - excluded as i128 - using).max(0);
        let mut using_list = RangeList::default();
        for &ip in self.ip_to_nic.keys() {
            using_list.add(ip);
        }
        let available_list = self.ips.separate(&self.reserved).separate(&using_list);
        let using_list = using_list.separate(&self.reserved);
        let v4 = self.v4();
        let (mine, other) = if v4 { ("v4", "v6") } else { ("v6", "v4") };
        json!({
            format!("{mine}availableIPs"): available as f64,
            format!("{mine}usingIPs"): using as f64,
            format!("{mine}availableIPrange"): available_list.render(v4),
            format!("{mine}usingIPrange"): using_list.render(v4),
            format!("{other}availableIPs"): 0.0,
            format!("{other}usingIPs"): 0.0,
            format!("{other}availableIPrange"): "",
            format!("{other}usingIPrange"): "",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(cidr: &str, extra: Value) -> SubnetShape {
        let mut spec = json!({"cidrBlock": cidr});
        if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), extra) {
            s.extend(e);
        }
        SubnetShape::of(&json!({"spec": spec})).unwrap()
    }

    #[test]
    fn separate_and_render() {
        let mut a = RangeList::range(1, 10);
        let mut b = RangeList::default();
        b.add_range(3, 4);
        b.add(10);
        b.add(1);
        let c = a.separate(&b);
        assert_eq!(c, RangeList(vec![(2, 2), (5, 9)]));
        assert!(a.remove(5));
        assert_eq!(a, RangeList(vec![(1, 4), (6, 10)]));
        assert!(a.add(5));
        assert_eq!(a, RangeList(vec![(1, 10)]));
        assert_eq!(
            RangeList(vec![(
                num("10.0.0.2".parse().unwrap()),
                num("10.0.0.4".parse().unwrap())
            )])
            .render(true),
            "10.0.0.2-10.0.0.4"
        );
    }

    #[test]
    fn first_and_last_follow_util_first_ip_and_last_ip() {
        let s = SubnetIpam::new(shape("10.0.0.0/30", json!({})));
        // /30: .1 is the gateway, .2 the only other host.
        assert_eq!(
            s.ips,
            RangeList::range(
                num("10.0.0.1".parse().unwrap()),
                num("10.0.0.2".parse().unwrap())
            )
        );
        let p2p = SubnetIpam::new(shape("10.0.0.4/31", json!({})));
        assert_eq!(
            p2p.ips.count(),
            2,
            "a /31 runs from its network address to network + 1"
        );
    }
}
