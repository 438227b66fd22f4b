//! Whole-spec validation: every resource, names, references inside the spec, fixed addresses.

use std::net::IpAddr;

// foldhash, not std's SipHash: a 10,000-object spec hashes tens of thousands of short names and
// addresses, where SipHash showed in profiles; foldhash's maps are randomly seeded, so a spec
// crafted to collide is still not a cheap attack on a portal that validates users' specs.
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use kubecloud_core::{AddressRequest, Error, Protocol, Result};

use super::spec::TenantSpec;

impl TenantSpec {
    /// Checks the whole spec without asking any backend: each resource's own rules, names
    /// unique per kind, references between resources of the spec (a subnet's VPC, an
    /// interface's subnet and security groups, a reservation's subnet, a VM's volumes — each
    /// either in the spec or left for [`crate::TenantHandle::plan`] to find in the cloud), fixed
    /// IPs inside their subnet and unique, exposure ports unique per requested address.
    /// The error names the field, e.g. `vms[2].interfaces[0].fixedIp`.
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
            if let Some(spec) = subnets.get(subnet)
                && !spec.cidr.contains(&ip)
            {
                return Err(Error::invalid(
                    field_of(at),
                    format!("{ip} is not inside subnet {subnet:?} ({})", spec.cidr),
                ));
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
