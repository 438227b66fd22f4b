//! The checks made before anything is sent: CIDR overlap inside a VPC, and whether a reservation
//! can be had (address allocatable and free, subnet not full, MAC free). Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubecloud_core::ipam::AddressSpace;
use kubecloud_core::{
    Error, IpReservationSpec, MacAddress, ResourceKind, Result, SubnetSpec, cidrs_overlap,
};
use kubecloud_models::kubeovn::{Ip, Vip};
use std::net::IpAddr;

use crate::translate::{ip_address, ip_mac, label, object_name, vip_spec_address, vip_spec_mac};

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
pub fn terminating(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// An address (and MAC) held in a subnet, as Kube-OVN records it: in an `IP` (a pod's or VM's
/// interface) or a `Vip` (a reservation).
///
/// ```
/// use kubecloud_kubeovn::addresses::Held;
/// use kubecloud_kubeovn::models::{Vip, vip::VipSpec};
/// let vip = Vip::new("acme-db", VipSpec { v4ip: Some("10.1.0.10".into()), ..Default::default() });
/// let held = Held::of_vip(&vip)?;
/// assert_eq!(held.ip, Some("10.1.0.10".parse().unwrap()));
/// assert_eq!(held.holder, "acme-db");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// Who holds it, for messages: the domain name of a kubecloud reservation (its
    /// `kubecloud.io/name` label), else the object's name.
    pub holder: String,
    /// The object's name.
    pub object: String,
    /// The address, once allocated.
    pub ip: Option<IpAddr>,
    /// The MAC address, once allocated.
    pub mac: Option<MacAddress>,
}

impl Held {
    /// What an `IP` object holds (a field that is not an address or a MAC is an error naming
    /// it).
    pub fn of_ip(object: &Ip) -> Result<Self> {
        Self::new(object, ip_address(object)?, ip_mac(object)?)
    }

    /// What a `Vip` holds by its spec (fixed, or written back by kube-ovn-controller).
    pub fn of_vip(object: &Vip) -> Result<Self> {
        Self::new(object, vip_spec_address(object)?, vip_spec_mac(object)?)
    }

    fn new<K>(object: &K, ip: Option<IpAddr>, mac: Option<MacAddress>) -> Result<Self>
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let name = object_name(object)?;
        let holder =
            label(object.meta(), kubecloud_kube::NAME).map_or_else(|| name.clone(), str::to_string);
        Ok(Held {
            holder,
            object: name,
            ip,
            mac,
        })
    }
}

/// The subnet's address space with every address in `held` taken, by holder. Addresses outside
/// the space are skipped.
pub fn space(subnet: &SubnetSpec, held: &[Held]) -> AddressSpace {
    let mut space = AddressSpace::for_subnet(subnet);
    for h in held {
        if let Some(ip) = h.ip {
            let _ = space.reserve(ip, &h.holder);
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
    held: &[Held],
) -> Result<()> {
    let space = space(subnet, held);
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
        && let Some(holder) = held.iter().find(|h| h.mac == Some(mac)).map(|h| &h.object)
    {
        return Err(Error::conflict(
            ResourceKind::IpReservation,
            &spec.name,
            format!("MAC {mac} is already used by {holder}"),
        ));
    }
    Ok(())
}
