//! The checks made before anything is sent: CIDR overlap inside a VPC, and whether a reservation
//! can be had (address allocatable and free, subnet not full, MAC free). Pure.

use kubecloud_core::ipam::AddressSpace;
use kubecloud_core::{
    Error, IpReservationSpec, MacAddress, ResourceKind, Result, SubnetSpec, cidrs_overlap,
};
use serde_json::Value;

use crate::translate::ip_address;

/// Refuses `spec` with [`Error::Conflict`] naming the first of `others` (subnets of the same VPC)
/// whose CIDR overlaps it.
///
/// ```
/// use kubecloud_core::SubnetSpec;
/// let a = SubnetSpec::new("a", "main", "10.0.0.0/16".parse().unwrap());
/// let b = SubnetSpec::new("b", "main", "10.0.4.0/24".parse().unwrap());
/// let err = kubecloud_kubeovn::addresses::refuse_overlap(&b, &[a]).unwrap_err();
/// assert!(err.to_string().contains("\"a\""));
/// ```
pub fn refuse_overlap(spec: &SubnetSpec, others: &[SubnetSpec]) -> Result<()> {
    match others
        .iter()
        .find(|o| o.name != spec.name && o.vpc == spec.vpc && cidrs_overlap(o.cidr, spec.cidr))
    {
        Some(other) => Err(Error::conflict(
            ResourceKind::Subnet,
            &spec.name,
            format!(
                "{} overlaps subnet {:?} ({}) of VPC {:?}",
                spec.cidr, other.name, other.cidr, spec.vpc
            ),
        )),
        None => Ok(()),
    }
}

/// Whether a live object is being deleted (reads treat it as gone).
pub fn terminating(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// The subnet's address space with every address the given `IP` objects hold taken, by object
/// name. Objects being deleted and addresses outside the space are skipped.
pub fn space(subnet: &SubnetSpec, ips: &[Value]) -> AddressSpace {
    let mut space = AddressSpace::for_subnet(subnet);
    for object in ips.iter().filter(|o| !terminating(o)) {
        if let Some(ip) = ip_address(object) {
            let holder = object["metadata"]["labels"][kubecloud_kube::NAME]
                .as_str()
                .or_else(|| object["metadata"]["name"].as_str())
                .unwrap_or("an IP");
            let _ = space.reserve(ip, holder);
        }
    }
    space
}

/// Refuses a reservation that Kube-OVN would refuse, before anything is sent: a fixed address
/// that is not a host address of the subnet (or is excluded, or the gateway) is
/// [`Error::InvalidInput`] naming `ip`; one already held is [`Error::Conflict`]; a dynamic one in
/// a full subnet is [`Error::Exhausted`]; a MAC already used in the subnet is a conflict.
pub fn check_reservation(
    spec: &IpReservationSpec,
    subnet: &SubnetSpec,
    ips: &[Value],
) -> Result<()> {
    let space = space(subnet, ips);
    match spec.ip {
        Some(ip) if !space.is_allocatable(ip) => {
            return Err(Error::invalid(
                "ip",
                format!(
                    "{ip} is not an allocatable address of subnet {:?} ({}): outside it, excluded, \
                     or its network, gateway or broadcast address",
                    subnet.name, subnet.cidr
                ),
            ));
        }
        Some(ip) => {
            if let Some(holder) = space.holder(ip) {
                return Err(Error::conflict(
                    ResourceKind::IpReservation,
                    &spec.name,
                    format!("{ip} is already taken by {holder}"),
                ));
            }
        }
        None if space.available() == 0 => {
            return Err(Error::exhausted(
                ResourceKind::Subnet,
                &subnet.name,
                format!("all {} addresses are in use", space.capacity()),
            ));
        }
        None => {}
    }
    if let Some(mac) = spec.mac
        && let Some(holder) = mac_holder(mac, ips)
    {
        return Err(Error::conflict(
            ResourceKind::IpReservation,
            &spec.name,
            format!("MAC {mac} is already used by {holder}"),
        ));
    }
    Ok(())
}

fn mac_holder(mac: MacAddress, ips: &[Value]) -> Option<&str> {
    ips.iter()
        .filter(|o| !terminating(o))
        .find(|o| {
            o["spec"]["macAddress"]
                .as_str()
                .and_then(|m| m.parse::<MacAddress>().ok())
                == Some(mac)
        })
        .and_then(|o| o["metadata"]["name"].as_str())
}
