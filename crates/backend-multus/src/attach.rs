//! How a VM's interfaces attach (the answer to `attach_interfaces`): pure, from the tenant's
//! subnets, reservations and security groups as read (or as declared, for GitOps rendering).
//!
//! - An interface on a subnet rides the subnet's `NetworkAttachmentDefinition` (KubeVirt's
//!   `multus` network, bridge binding, or macvtap binding on a macvtap link; KubeVirt passes
//!   the interface's MAC in the network selection). One fixing a reservation's address rides the reservation's attachment (IPAM
//!   `static`), so every pod of the VM, the migration target's included, has that address.
//! - Security groups are live pod labels `sg.kubecloud.io/<group>: "true"`, which the groups'
//!   `MultiNetworkPolicy`s select; the keys are those of every group of the tenant, so the
//!   compute backend removes the label of a group the VM left from its running pod.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use kubecloud_core::{
    Error, Guarantees, InterfaceAttachment, MacAddress, NetworkInterface, NetworkSelection,
    PodBinding, ResourceKind, Result, SubnetSpec, Tenant,
};
use kubecloud_kube::tenant_namespace;

use crate::{BACKEND, Link, kinds};

/// A reservation as attaching needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// The reservation's name.
    pub name: String,
    /// Its subnet.
    pub subnet: String,
    /// The address it holds.
    pub ip: IpAddr,
    /// The MAC it holds.
    pub mac: Option<MacAddress>,
}

/// What attaching reads: the tenant's subnets, reservations and security groups.
#[derive(Clone, Debug, Default)]
pub struct Known<'a> {
    /// The subnets (by name); `None` when not checked (rendering).
    pub subnets: Option<&'a BTreeMap<String, SubnetSpec>>,
    /// The reservations.
    pub reservations: &'a [Reserved],
    /// The security groups; `None` when not checked (rendering).
    pub groups: Option<&'a BTreeSet<String>>,
}

/// The attachments of `interfaces` of a VM of `tenant` on `link`.
///
/// ```
/// use kubecloud_core::{NetworkInterface, NetworkSelection, Tenant};
/// use kubecloud_multus::{Link, attach};
/// let link = Link::Bridge { bridge: "br1".into(), vlans: 100..=199 };
/// let eth0 = NetworkInterface::on_subnet("eth0", "front");
/// let got = attach::attachments(&Tenant::new("acme")?, &[eth0], &link, &attach::Known::default())?;
/// assert_eq!(got[0].network, NetworkSelection::Multus { namespace: "acme".into(), name: "front".into() });
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn attachments(
    tenant: &Tenant,
    interfaces: &[NetworkInterface],
    link: &Link,
    known: &Known<'_>,
) -> Result<Vec<InterfaceAttachment>> {
    let ns = tenant_namespace(tenant);
    let mut out = Vec::with_capacity(interfaces.len());
    let mut subnet_groups: Option<(usize, BTreeSet<&str>)> = None;
    for (i, iface) in interfaces.iter().enumerate() {
        if let Some(groups) = known.groups {
            for g in &iface.security_groups {
                if !groups.contains(g) {
                    return Err(Error::not_found(ResourceKind::SecurityGroup, g));
                }
            }
        }
        let Some(subnet) = iface.subnet() else {
            if !iface.security_groups.is_empty() {
                return Err(Error::unsupported(
                    BACKEND,
                    "network.attach_interfaces",
                    format!(
                        "security groups on the pod network (interfaces[{i}].securityGroups): \
                         NetworkPolicy for the cluster's CNI is not built; use a subnet"
                    ),
                ));
            }
            if iface.fixed_ip.is_some() {
                return Err(Error::invalid(
                    format!("interfaces[{i}].fixedIp"),
                    "the pod network's addresses are the cluster CNI's; fix an address on a subnet",
                ));
            }
            let binding = match &iface.attachment {
                kubecloud_core::Attachment::PodNetwork { binding } => *binding,
                kubecloud_core::Attachment::Subnet { .. } => PodBinding::Masquerade,
            };
            out.push(InterfaceAttachment::pod(iface, binding));
            continue;
        };
        let macvtap = matches!(link, Link::Macvtap { .. });
        if macvtap && iface.fixed_ip.is_some() {
            // macvtap-cni runs no IPAM (its NetConf has none: `pkg/cni/plugin.go`), so
            // neither whereabouts nor a reservation's static address reaches the interface.
            return Err(Error::invalid(
                format!("interfaces[{i}].fixedIp"),
                "a macvtap subnet's addresses are the guest's own (macvtap-cni runs no IPAM); \
                 configure the address in the guest",
            ));
        }
        if macvtap && !iface.security_groups.is_empty() {
            // The guest's traffic leaves through the tap device, past the pod's iptables where
            // multi-networkpolicy enforces policies.
            return Err(Error::unsupported(
                BACKEND,
                "network.attach_interfaces",
                format!(
                    "security groups on a macvtap interface (interfaces[{i}].securityGroups): \
                     its traffic does not pass the pod's policy rules"
                ),
            ));
        }
        let spec = match known.subnets {
            Some(subnets) => Some(
                subnets
                    .get(subnet)
                    .ok_or_else(|| Error::not_found(ResourceKind::Subnet, subnet))?,
            ),
            None => None,
        };
        let groups: BTreeSet<&str> = iface.security_groups.iter().map(String::as_str).collect();
        match &subnet_groups {
            Some((first, seen)) if *seen != groups => {
                return Err(Error::invalid(
                    format!("interfaces[{i}].securityGroups"),
                    format!(
                        "must be those of interfaces[{first}]: on Multus a security group is a \
                         MultiNetworkPolicy selecting the VM's pods, so it applies to all of the \
                         VM's subnet interfaces"
                    ),
                ));
            }
            Some(_) => {}
            None => subnet_groups = Some((i, groups)),
        }
        let mut network = kubecloud_kube::names::attachment(subnet);
        let mut mac = iface.mac;
        let mut kept = false;
        if let Some(ip) = iface.fixed_ip {
            if let Some(spec) = spec {
                spec.check_host_address(&format!("interfaces[{i}].fixedIp"), ip)?;
            }
            let reservation = known
                .reservations
                .iter()
                .find(|r| r.subnet == subnet && r.ip == ip)
                .ok_or_else(|| {
                    Error::invalid(
                        format!("interfaces[{i}].fixedIp"),
                        format!(
                            "{ip} is not a reservation of subnet {subnet:?}: whereabouts takes no \
                             requested address and KubeVirt passes no `ips` in the network \
                             selection, so reserve the address first"
                        ),
                    )
                })?;
            network = kinds::reservation_object(&reservation.name);
            mac = mac.or(reservation.mac);
            kept = true;
        }
        let binding = if macvtap {
            PodBinding::Macvtap
        } else {
            PodBinding::Bridge
        };
        let mut attachment = InterfaceAttachment::pod(iface, binding);
        attachment.network = NetworkSelection::Multus {
            namespace: ns.clone(),
            name: network,
        };
        attachment.mac = mac;
        attachment.live_pod_labels = iface
            .security_groups
            .iter()
            .map(|g| (kinds::group_label(g), "true".to_string()))
            .collect();
        // Every group of the tenant's label, so leaving one removes it from a running pod.
        attachment.live_label_keys = match known.groups {
            Some(groups) => groups.iter().map(|g| kinds::group_label(g)).collect(),
            None => attachment.live_pod_labels.keys().cloned().collect(),
        };
        attachment.guarantees = Guarantees {
            addresses_kept_on_migration: kept,
            security_groups: iface.security_groups.clone(),
        };
        out.push(attachment);
    }
    check_distinct_macs(&out)?;
    Ok(out)
}

/// Refuses two interfaces of one VM with the same MAC (a fixed one, or a reservation's):
/// two NICs of one machine cannot share it, and Kubemacpool refuses such a VM
/// (`checkIntraVMDuplicateMACs`).
fn check_distinct_macs(attachments: &[InterfaceAttachment]) -> Result<()> {
    for (i, a) in attachments.iter().enumerate() {
        let Some(mac) = a.mac else { continue };
        if let Some(j) = attachments[..i].iter().position(|b| b.mac == Some(mac)) {
            return Err(Error::invalid(
                format!("interfaces[{i}].mac"),
                format!("{mac} is also the MAC of interfaces[{j}]; a VM's NICs need distinct MACs"),
            ));
        }
    }
    Ok(())
}
