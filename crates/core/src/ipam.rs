//! Address allocation shared by every backend that hands out addresses itself (subnets, external
//! pools): never two alike, exclusions and gateways skipped, fixed addresses honoured, exhaustion
//! an error, released addresses reusable.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::addr::{IpRange, ip_to_u128, u128_to_ip};
use crate::error::{Error, ResourceKind, Result};
use crate::network::{SubnetSpec, broadcast};

/// A set of allocatable addresses and who holds each.
///
/// ```
/// use kubecloud_core::{SubnetSpec, ipam::AddressSpace};
/// let spec = SubnetSpec::new("front", "main", "10.0.0.0/29".parse().unwrap());
/// let mut space = AddressSpace::for_subnet(&spec);
/// // .0 is the network, .1 the gateway, .7 the broadcast: five addresses remain.
/// assert_eq!(space.capacity(), 5);
/// let ip = space.allocate("vm-a/eth0")?;
/// assert_eq!(ip.to_string(), "10.0.0.2");
/// space.release(ip);
/// assert_eq!(space.used(), 0);
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AddressSpace {
    kind: ResourceKind,
    name: String,
    family: IpAddr,
    /// Disjoint, sorted candidate ranges as numbers (inclusive).
    ranges: Vec<(u128, u128)>,
    avoid_buggy: bool,
    used: BTreeMap<u128, String>,
    /// Where the next dynamic allocation starts looking.
    cursor: u128,
}

impl AddressSpace {
    /// The host addresses of a subnet, less its network, broadcast, gateway and exclusions.
    /// An IPv6 subnet's last address is not handed out either: Kube-OVN's `util.LastIP`
    /// (kubeovn/kube-ovn `pkg/util/net.go`) stops one short of it for both families.
    pub fn for_subnet(spec: &SubnetSpec) -> Self {
        let cidr = spec.cidr;
        let first = ip_to_u128(cidr.network()) + 1;
        let last = match broadcast(cidr) {
            Some(b) => ip_to_u128(b) - 1,
            None => ip_to_u128(cidr.broadcast()).saturating_sub(1),
        };
        let mut excluded: Vec<(u128, u128)> = spec
            .exclude
            .iter()
            .map(|r| (ip_to_u128(r.first), ip_to_u128(r.last)))
            .collect();
        let gw = ip_to_u128(spec.gateway_ip());
        excluded.push((gw, gw));
        Self::new(
            ResourceKind::Subnet,
            &spec.name,
            cidr.network(),
            vec![(first, last)],
            &excluded,
            false,
        )
    }

    /// The addresses of an external pool (CIDRs and ranges), optionally skipping IPv4 addresses
    /// ending in `.0` or `.255`.
    pub fn for_pool(name: &str, blocks: &[IpRange], avoid_buggy_ips: bool) -> Self {
        let family = blocks
            .first()
            .map(|b| b.first)
            .unwrap_or(IpAddr::V4(0.into()));
        let ranges = blocks
            .iter()
            .map(|r| (ip_to_u128(r.first), ip_to_u128(r.last)))
            .collect();
        Self::new(
            ResourceKind::AddressPool,
            name,
            family,
            ranges,
            &[],
            avoid_buggy_ips,
        )
    }

    fn new(
        kind: ResourceKind,
        name: &str,
        family: IpAddr,
        ranges: Vec<(u128, u128)>,
        excluded: &[(u128, u128)],
        avoid_buggy: bool,
    ) -> Self {
        let ranges = subtract(normalize(ranges), &normalize(excluded.to_vec()));
        let cursor = ranges.first().map(|r| r.0).unwrap_or(0);
        Self {
            kind,
            name: name.to_string(),
            family,
            ranges,
            avoid_buggy: avoid_buggy && family.is_ipv4(),
            used: BTreeMap::new(),
            cursor,
        }
    }

    fn is_buggy(&self, n: u128) -> bool {
        self.avoid_buggy && matches!(n & 0xff, 0 | 0xff)
    }

    fn is_candidate(&self, n: u128) -> bool {
        !self.is_buggy(n) && self.ranges.iter().any(|(a, b)| *a <= n && n <= *b)
    }

    /// Whether `ip` could ever be handed out (in range, not excluded, not the gateway).
    pub fn is_allocatable(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.family.is_ipv4() && self.is_candidate(ip_to_u128(ip))
    }

    /// Whether `ip` is held.
    pub fn holder(&self, ip: IpAddr) -> Option<&str> {
        self.used.get(&ip_to_u128(ip)).map(String::as_str)
    }

    /// How many addresses can be handed out in all.
    pub fn capacity(&self) -> u128 {
        self.ranges
            .iter()
            .map(|&(a, b)| (b - a + 1) - if self.avoid_buggy { buggy_in(a, b) } else { 0 })
            .sum()
    }

    /// How many are held.
    pub fn used(&self) -> u128 {
        self.used.len() as u128
    }

    /// How many are free.
    pub fn available(&self) -> u128 {
        self.capacity() - self.used()
    }

    /// Holds `ip` for `owner`. Refused if outside the space, excluded, the gateway, or held by
    /// another owner; holding it again for the same owner is a no-op.
    pub fn reserve(&mut self, ip: IpAddr, owner: &str) -> Result<()> {
        if !self.is_allocatable(ip) {
            return Err(Error::conflict(
                self.kind,
                &self.name,
                format!(
                    "{ip} is not an allocatable address here (outside the range, excluded or the gateway)"
                ),
            ));
        }
        let n = ip_to_u128(ip);
        match self.used.get(&n) {
            Some(holder) if holder == owner => Ok(()),
            Some(holder) => Err(Error::conflict(
                self.kind,
                &self.name,
                format!("{ip} is already taken by {holder}"),
            )),
            None => {
                self.used.insert(n, owner.to_string());
                Ok(())
            }
        }
    }

    /// Hands the next free address to `owner`; [`Error::Exhausted`] when none is left.
    pub fn allocate(&mut self, owner: &str) -> Result<IpAddr> {
        if self.available() == 0 {
            return Err(Error::exhausted(
                self.kind,
                &self.name,
                format!("all {} addresses are in use", self.capacity()),
            ));
        }
        let start = self.cursor;
        let found = self.scan_from(start).or_else(|| self.scan_from(0));
        let n = found.ok_or_else(|| Error::exhausted(self.kind, &self.name, "no free address"))?;
        self.used.insert(n, owner.to_string());
        self.cursor = n + 1;
        u128_to_ip(n, self.family)
            .ok_or_else(|| Error::exhausted(self.kind, &self.name, "address out of family range"))
    }

    fn scan_from(&self, from: u128) -> Option<u128> {
        for &(a, b) in &self.ranges {
            if b < from {
                continue;
            }
            let mut n = a.max(from);
            while n <= b {
                if !self.used.contains_key(&n) && !self.is_buggy(n) {
                    return Some(n);
                }
                n += 1;
            }
        }
        None
    }

    /// Frees `ip`; returns its holder, if it was held.
    pub fn release(&mut self, ip: IpAddr) -> Option<String> {
        self.used.remove(&ip_to_u128(ip))
    }

    /// Every held address with its holder, in address order.
    pub fn holders(&self) -> impl Iterator<Item = (IpAddr, &str)> {
        self.used
            .iter()
            .filter_map(|(n, owner)| u128_to_ip(*n, self.family).map(|ip| (ip, owner.as_str())))
    }
}

fn buggy_in(a: u128, b: u128) -> u128 {
    // Count n in [a, b] with n % 256 == 0 or 255.
    let count = |limit: u128, rem: u128| -> u128 {
        // numbers in [0, limit] congruent to rem mod 256
        if limit < rem {
            0
        } else {
            (limit - rem) / 256 + 1
        }
    };
    let upto = |x: u128| count(x, 0) + count(x, 255);
    upto(b) - if a == 0 { 0 } else { upto(a - 1) }
}

fn normalize(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.retain(|(a, b)| a <= b);
    ranges.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

fn subtract(ranges: Vec<(u128, u128)>, holes: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for (mut a, b) in ranges {
        let mut alive = true;
        for &(h0, h1) in holes {
            if h1 < a || h0 > b {
                continue;
            }
            if h0 > a {
                out.push((a, h0 - 1));
            }
            if h1 >= b {
                alive = false;
                break;
            }
            a = h1 + 1;
        }
        if alive && a <= b {
            out.push((a, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    fn subnet(cidr: &str, exclude: &[&str]) -> SubnetSpec {
        let mut spec = SubnetSpec::new("s", "v", cidr.parse().unwrap());
        spec.exclude = exclude.iter().map(|e| e.parse().unwrap()).collect();
        spec
    }

    #[test]
    fn gateway_and_exclusions_are_never_handed_out() {
        let mut space = AddressSpace::for_subnet(&subnet("10.0.0.0/28", &["10.0.0.2..10.0.0.4"]));
        // 14 hosts - gateway - 3 excluded
        assert_eq!(space.capacity(), 10);
        let got: Vec<String> = (0..10)
            .map(|i| space.allocate(&format!("o{i}")).unwrap().to_string())
            .collect();
        assert_eq!(got[0], "10.0.0.5");
        assert!(!got.iter().any(|ip| {
            [
                "10.0.0.0",
                "10.0.0.1",
                "10.0.0.2",
                "10.0.0.3",
                "10.0.0.4",
                "10.0.0.15",
            ]
            .contains(&ip.as_str())
        }));
        let err = space.allocate("late").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Exhausted {
                    kind: ResourceKind::Subnet,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn fixed_addresses_are_checked() {
        let mut space = AddressSpace::for_subnet(&subnet("10.0.0.0/24", &[]));
        space.reserve("10.0.0.10".parse().unwrap(), "a").unwrap();
        space.reserve("10.0.0.10".parse().unwrap(), "a").unwrap();
        assert!(space.reserve("10.0.0.10".parse().unwrap(), "b").is_err());
        assert!(
            space.reserve("10.0.0.1".parse().unwrap(), "b").is_err(),
            "gateway"
        );
        assert!(
            space.reserve("10.0.1.1".parse().unwrap(), "b").is_err(),
            "outside"
        );
        assert!(
            space.reserve("10.0.0.255".parse().unwrap(), "b").is_err(),
            "broadcast"
        );
    }

    #[test]
    fn buggy_ips_are_skipped_in_pools() {
        let block: IpRange = "192.0.2.0..192.0.3.255".parse().unwrap();
        let mut space = AddressSpace::for_pool("p", &[block], true);
        assert_eq!(space.capacity(), 512 - 4);
        assert_eq!(space.allocate("x").unwrap().to_string(), "192.0.2.1");
    }

    proptest! {
        #[test]
        fn allocation_stays_in_range_never_duplicates_and_exhausts_exactly_at_capacity(
            prefix in 24u8..=29,
            third in 0u8..=255,
            exclude_start in 0u32..64,
            exclude_len in 0u32..8,
        ) {
            let cidr: ipnet::IpNet = format!("10.9.{third}.0/{prefix}").parse().unwrap();
            let size = 1u32 << (32 - prefix);
            let base = u32::from(match cidr.network() { IpAddr::V4(v) => v, _ => unreachable!() });
            let mut spec = SubnetSpec::new("s", "v", cidr);
            let ex_first = base + (exclude_start % size);
            let ex_last = (ex_first + exclude_len).min(base + size - 1);
            let range = IpRange::new(IpAddr::V4(ex_first.into()), IpAddr::V4(ex_last.into())).unwrap();
            spec.exclude = vec![range];
            let mut space = AddressSpace::for_subnet(&spec);
            let capacity = space.capacity();
            let mut seen = HashSet::new();
            for i in 0..capacity {
                let ip = space.allocate(&format!("o{i}")).unwrap();
                prop_assert!(cidr.contains(&ip));
                prop_assert!(!range.contains(ip), "{ip} excluded");
                prop_assert!(ip != spec.gateway_ip());
                prop_assert!(ip != cidr.network() && ip != cidr.broadcast());
                prop_assert!(seen.insert(ip), "{ip} twice");
            }
            prop_assert!(space.allocate("one-too-many").is_err());
            // The brute-force count of allowed addresses agrees with the computed capacity.
            let brute = (1..size - 1)
                .map(|o| IpAddr::V4((base + o).into()))
                .filter(|ip| !range.contains(*ip) && *ip != spec.gateway_ip())
                .count() as u128;
            prop_assert_eq!(capacity, brute);
        }

        #[test]
        fn released_addresses_are_reused(n in 1usize..20, release_idx in 0usize..20) {
            let mut space = AddressSpace::for_subnet(&subnet("10.1.0.0/27", &[]));
            let n = n.min(space.capacity() as usize);
            let ips: Vec<_> = (0..n).map(|i| space.allocate(&format!("o{i}")).unwrap()).collect();
            let victim = ips[release_idx % n];
            prop_assert!(space.release(victim).is_some());
            // Fill the space: the released address must come back exactly once.
            let mut again = Vec::new();
            while let Ok(ip) = space.allocate("refill") { again.push(ip); }
            prop_assert_eq!(again.iter().filter(|ip| **ip == victim).count(), 1);
            prop_assert_eq!(space.available(), 0);
        }

        #[test]
        fn buggy_count_matches_brute_force(a in 0u32..2000, len in 0u32..2000) {
            let (a, b) = (u128::from(a), u128::from(a + len));
            let brute = (a..=b).filter(|n| matches!(n & 0xff, 0 | 0xff)).count() as u128;
            prop_assert_eq!(buggy_in(a, b), brute);
        }
    }
}
