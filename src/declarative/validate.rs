//! Whole-spec validation: every resource, names, references inside the spec, fixed addresses.

use std::net::IpAddr;

// foldhash, not std's SipHash: a 10,000-object spec hashes tens of thousands of short names and
// addresses, where SipHash showed in profiles; foldhash's maps are randomly seeded, so a spec
// crafted to collide is still not a cheap attack on a portal that validates users' specs.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use kubecloud_core::{AddressRequest, Error, IpRange, Protocol, Result};

use super::spec::TenantSpec;

impl TenantSpec {
    /// Checks the whole spec without asking any backend: each resource's own rules, names
    /// unique per kind, references between resources of the spec (a subnet's VPC, an
    /// interface's subnet and security groups, a reservation's subnet, a VM's volumes — each
    /// either in the spec or left for [`crate::TenantHandle::plan`] to find in the cloud), fixed
    /// IPs usable in their subnet (inside it, not its network, broadcast or gateway address, not
    /// excluded) and unique, address pools overlapping neither each other nor the spec's
    /// subnets, exposure ports unique per requested address. Each resource's own rules refuse
    /// special CIDRs (unspecified, loopback, link-local, multicast), reserved label keys,
    /// cloud-init data larger than a Secret holds and malformed import URLs; messages quote at
    /// most a prefix of what the spec holds.
    /// The error names the field, e.g. `vms[2].interfaces[0].fixedIp`.
    ///
    /// ```
    /// let spec = kubecloud::TenantSpec::from_yaml(r#"
    /// subnets: [{ name: web, vpc: main, cidr: 10.1.0.0/24 }]
    /// vms:
    ///   - name: web
    ///     resources: { custom: { cpuCores: 1, memory: 1Gi } }
    ///     bootDisk: { containerImage: { image: quay.io/containerdisks/fedora:40 } }
    ///     interfaces: [{ name: eth0, attachment: { subnet: { subnet: web } }, fixedIp: 10.1.0.1 }]
    /// "#)?;
    /// let err = spec.validate().unwrap_err();   // 10.1.0.1 is the gateway
    /// assert_eq!(err.invalid_field(), Some("vms[0].interfaces[0].fixedIp"));
    /// # Ok::<(), kubecloud::Error>(())
    /// ```
    pub fn validate(&self) -> Result<()> {
        macro_rules! each {
            ($list:expr, $field:literal) => {
                for (i, item) in $list.iter().enumerate() {
                    item.validate()
                        .map_err(|e| e.within(&format!(concat!($field, "[{}]"), i)))?;
                }
                unique($list.iter().map(|x| x.name.as_str()), $field)?;
            };
        }
        each!(self.vpcs, "vpcs");
        each!(self.subnets, "subnets");
        each!(self.security_groups, "securityGroups");
        each!(self.ip_reservations, "ipReservations");
        each!(self.volumes, "volumes");
        each!(self.vms, "vms");
        each!(self.services, "services");
        each!(self.address_pools, "addressPools");
        each!(self.exposures, "exposures");
        if let Some(quota) = &self.quota {
            quota.validate().map_err(|e| e.within("quota"))?;
        }

        let subnets: HashMap<&str, _> = self.subnets.iter().map(|s| (s.name.as_str(), s)).collect();
        for (i, subnet) in self.subnets.iter().enumerate() {
            for (j, other) in self.subnets[..i].iter().enumerate() {
                if other.vpc == subnet.vpc && kubecloud_core::cidrs_overlap(other.cidr, subnet.cidr)
                {
                    return Err(Error::invalid(
                        format!("subnets[{i}].cidr"),
                        format!(
                            "{} overlaps subnets[{j}] ({}) in VPC {:?}",
                            subnet.cidr, other.cidr, subnet.vpc
                        ),
                    ));
                }
            }
        }

        // Fixed addresses: inside their subnet (when the subnet is in the spec) and unique.
        // The field names are written only for an error: (list, index, interface).
        type At = (&'static str, usize, usize);
        let field_of = |(list, i, j): At| match list {
            "ipReservations" => format!("ipReservations[{i}].ip"),
            _ => format!("vms[{i}].interfaces[{j}].fixedIp"),
        };
        let mut taken: HashMap<(&str, IpAddr), At> = HashMap::new();
        let mut hold = |subnet, ip: IpAddr, at: At| -> Result<()> {
            if let Some(spec) = subnets.get(subnet) {
                spec.check_host_address(&field_of(at), ip)?;
            }
            if let Some(first) = taken.insert((subnet, ip), at) {
                return Err(Error::invalid(
                    field_of(at),
                    format!("{ip} is already used by {}", field_of(first)),
                ));
            }
            Ok(())
        };
        for (i, r) in self.ip_reservations.iter().enumerate() {
            if let Some(ip) = r.ip {
                hold(r.subnet.as_str(), ip, ("ipReservations", i, 0))?;
            }
        }
        for (i, vm) in self.vms.iter().enumerate() {
            for (j, iface) in vm.interfaces.iter().enumerate() {
                if let (Some(subnet), Some(ip)) = (iface.subnet(), iface.fixed_ip) {
                    // A VM may take an address reserved for it in the same spec.
                    let reserved = self
                        .ip_reservations
                        .iter()
                        .any(|r| r.subnet == subnet && r.ip == Some(ip));
                    if !reserved {
                        hold(subnet, ip, ("vms", i, j))?;
                    }
                }
            }
        }

        // Address pools: none overlapping another, nor a subnet of the tenant (traffic to the
        // address would be routed into the subnet).
        let blocks: Vec<(usize, usize, IpRange)> = self
            .address_pools
            .iter()
            .enumerate()
            .flat_map(|(i, p)| {
                p.addresses
                    .iter()
                    .enumerate()
                    .map(move |(j, b)| (i, j, b.range()))
            })
            .collect();
        for (n, (i, j, range)) in blocks.iter().enumerate() {
            if let Some((k, l, _)) = blocks[..n]
                .iter()
                .find(|(k, _, other)| k != i && other.overlaps(range))
            {
                return Err(Error::invalid(
                    format!("addressPools[{i}].addresses[{j}]"),
                    format!(
                        "{} overlaps addressPools[{k}].addresses[{l}] ({})",
                        self.address_pools[*i].addresses[*j], self.address_pools[*k].addresses[*l]
                    ),
                ));
            }
            if let Some((s, subnet)) = self.subnets.iter().enumerate().find(|(_, s)| {
                range.overlaps(&IpRange {
                    first: s.cidr.network(),
                    last: s.cidr.broadcast(),
                })
            }) {
                return Err(Error::invalid(
                    format!("addressPools[{i}].addresses[{j}]"),
                    format!(
                        "{} overlaps subnets[{s}] ({}): a pool's addresses must be outside the tenant's subnets",
                        self.address_pools[*i].addresses[*j], subnet.cidr
                    ),
                ));
            }
        }

        // Exposures asking for the same address must not clash on a port.
        let mut ports: HashMap<(IpAddr, u16, Protocol), usize> = HashMap::new();
        for (i, e) in self.exposures.iter().enumerate() {
            if let AddressRequest::Ip(ip) = e.address {
                for (j, p) in e.ports.iter().enumerate() {
                    if let Some(other) = ports.insert((ip, p.port, p.protocol), i) {
                        return Err(Error::invalid(
                            format!("exposures[{i}].ports[{j}]"),
                            format!(
                                "{ip}:{}/{} is also exposed by exposures[{other}]",
                                p.port, p.protocol
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

fn unique<'a>(names: impl ExactSizeIterator<Item = &'a str>, field: &str) -> Result<()> {
    let mut seen = HashSet::with_capacity(names.len());
    for (i, name) in names.enumerate() {
        if !seen.insert(name) {
            return Err(Error::invalid(
                format!("{field}[{i}].name"),
                format!("{name:?} is used twice"),
            ));
        }
    }
    Ok(())
}
