//! How a VM's interfaces attach on Kube-OVN (pure): the answer to
//! [`Network::attach_interfaces`](kubecloud_core::Network::attach_interfaces) that the compute
//! backend applies to the VM's pod.
//!
//! | interface | network | binding | pod annotations |
//! |---|---|---|---|
//! | on the pod network | pod | its own | security groups only |
//! | first on a subnet, when no interface uses the pod network | pod (the pod's default interface, placed in the subnet) | [`KubeOvnBuilder::primary_subnet_binding`](crate::KubeOvnBuilder::primary_subnet_binding) (bridge by default) | `ovn.kubernetes.io/logical_switch: t-s`, `ip_address`, `mac_address` |
//! | any other on a subnet | Multus: `NetworkAttachmentDefinition` `t/s` | bridge | `s.t.ovn.kubernetes.io/logical_switch`, `ip_address`, `mac_address` |
//!
//! Security groups are kept in step on the running pod (Kube-OVN reads them on every pod
//! update, `handleUpdatePodSecurity`): `<provider>.kubernetes.io/security_groups` lists the
//! groups' objects (`t-g`, comma-separated) and `<provider>.kubernetes.io/port_security: "true"`
//! turns on port security (the port then sends only from its own MAC and addresses), where the
//! provider is `ovn` on the pod network and `s.t.ovn` on an attachment. An interface without a
//! group has neither, and Kube-OVN applies no security-group ACL to its port: all traffic is
//! allowed (the documented default).
//!
//! **Reservations.** An interface whose fixed address is one of the tenant's reservations takes
//! the reservation's `Vip` instead: `ovn.kubernetes.io/vip: t-r` (and no `ip_address` or
//! `mac_address`), the way Kube-OVN gives a pod an address held ahead of it
//! (`pkg/controller/pod.go` `acquireAddress`, `podReuseVip`); the VM's next pod (after a live
//! migration) reuses it, and Kube-OVN unbinds it when the VM goes. The annotation is not per
//! provider: Kube-OVN hands the `Vip`'s address to *every* Kube-OVN network of the pod, so a VM
//! taking a reservation must have no other interface, and is refused with
//! [`Error::InvalidInput`] otherwise.
//!
//! Kube-OVN keys a VM's address by the VM, so addresses are kept over live migration on a
//! subnet, and a bridge binding on the pod network migrates (KubeVirt's
//! `allow-pod-bridge-network-live-migration`); on the plain pod network they are not promised.

use std::collections::BTreeMap;
use std::net::IpAddr;

use kubecloud_core::{
    Attachment, Error, Guarantees, InterfaceAttachment, IpReservation, IpReservationSpec,
    NetworkInterface, NetworkSelection, PodBinding, Result, Tenant,
};
use kubecloud_kube::{names, tenant_namespace};

use crate::kinds::VIP_ANNOTATION;

/// A reservation an interface can take: its name, subnet (domain name) and address.
///
/// ```
/// use kubecloud_core::IpReservationSpec;
/// use kubecloud_kubeovn::attach::Reserved;
/// let spec = IpReservationSpec::new("db", "back").with_ip("10.2.0.10".parse().unwrap());
/// assert_eq!(Reserved::of_spec(&spec).unwrap().subnet, "back");
/// assert!(Reserved::of_spec(&IpReservationSpec::new("any", "back")).is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// The reservation's name.
    pub name: String,
    /// Its subnet's name.
    pub subnet: String,
    /// The address it holds.
    pub ip: IpAddr,
}

impl Reserved {
    /// A reservation as declared, when its address is fixed (a dynamic one's address is not
    /// known before Kube-OVN picks it, so no interface can name it yet).
    pub fn of_spec(spec: &IpReservationSpec) -> Option<Self> {
        Some(Reserved {
            name: spec.name.clone(),
            subnet: spec.subnet.clone(),
            ip: spec.ip?,
        })
    }
}

impl From<&IpReservation> for Reserved {
    fn from(r: &IpReservation) -> Self {
        Reserved {
            name: r.name.clone(),
            subnet: r.subnet.clone(),
            ip: r.ip,
        }
    }
}

/// The provider of the pod's default interface.
pub const DEFAULT_PROVIDER: &str = "ovn";

/// The Kube-OVN provider of secondary subnet `subnet`: `<nad>.<namespace>.ovn`, as Kube-OVN
/// derives it from the attachment's reference (`getPodAttachmentNet`).
///
/// ```
/// let acme = kubecloud_core::Tenant::new("acme")?;
/// assert_eq!(kubecloud_kubeovn::attach::provider(&acme, "storage"), "storage.acme.ovn");
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn provider(tenant: &Tenant, subnet: &str) -> String {
    format!(
        "{}.{}.ovn",
        names::attachment(subnet),
        tenant_namespace(tenant)
    )
}

/// The annotation `key` of `provider` (`<provider>.kubernetes.io/<key>`).
fn key(provider: &str, key: &str) -> String {
    format!("{provider}.kubernetes.io/{key}")
}

/// How each of `interfaces` attaches (one per interface, in order), with `primary_binding` for
/// a subnet placed on the pod network, and `reserved` the tenant's reservations an interface may
/// take by fixing its address. References are not checked here (the driver does); a VM taking a
/// reservation with more than one interface is [`Error::InvalidInput`] on that interface's
/// `fixedIp` (see the module docs).
///
/// ```
/// use kubecloud_core::{NetworkInterface, NetworkSelection, PodBinding, Tenant};
/// let acme = Tenant::new("acme")?;
/// let mut eth0 = NetworkInterface::on_subnet("eth0", "web");
/// eth0.security_groups = vec!["ssh-only".into()];
/// let eth1 = NetworkInterface::on_subnet("eth1", "storage");
/// let got = kubecloud_kubeovn::attach::attachments(&acme, &[eth0, eth1], PodBinding::Bridge, &[])?;
/// assert_eq!(got[0].network, NetworkSelection::PodNetwork);
/// assert_eq!(got[0].pod_annotations["ovn.kubernetes.io/logical_switch"], "acme-web");
/// assert_eq!(got[0].live_pod_annotations["ovn.kubernetes.io/security_groups"], "acme-ssh-only");
/// assert_eq!(got[1].network, NetworkSelection::Multus { namespace: "acme".into(), name: "storage".into() });
/// # Ok::<(), kubecloud_core::Error>(())
/// ```
pub fn attachments(
    tenant: &Tenant,
    interfaces: &[NetworkInterface],
    primary_binding: PodBinding,
    reserved: &[Reserved],
) -> Result<Vec<InterfaceAttachment>> {
    let taking = |iface: &NetworkInterface| {
        let subnet = iface.subnet()?;
        let ip = iface.fixed_ip?;
        reserved.iter().find(|r| r.subnet == subnet && r.ip == ip)
    };
    if interfaces.len() > 1
        && let Some((i, r)) = interfaces
            .iter()
            .enumerate()
            .find_map(|(i, iface)| taking(iface).map(|r| (i, r)))
    {
        return Err(Error::invalid(
            format!("interfaces[{i}].fixedIp"),
            format!(
                "{} is reservation {:?}: Kube-OVN gives a reservation's address (its Vip) to every \
                 Kube-OVN interface of the VM, so a VM taking one can have no other interface \
                 (it has {})",
                r.ip,
                r.name,
                interfaces.len()
            ),
        ));
    }
    let mut pod_taken = interfaces
        .iter()
        .any(|i| matches!(i.attachment, Attachment::PodNetwork { .. }));
    Ok(interfaces
        .iter()
        .map(|iface| {
            let mut out = InterfaceAttachment::pod(iface, PodBinding::Masquerade);
            let provider = match &iface.attachment {
                Attachment::PodNetwork { binding } => {
                    out.binding = *binding;
                    DEFAULT_PROVIDER.to_string()
                }
                Attachment::Subnet { subnet } => {
                    let provider = if pod_taken {
                        out.network = NetworkSelection::Multus {
                            namespace: tenant_namespace(tenant),
                            name: names::attachment(subnet),
                        };
                        out.binding = PodBinding::Bridge;
                        provider(tenant, subnet)
                    } else {
                        pod_taken = true;
                        out.binding = primary_binding;
                        DEFAULT_PROVIDER.to_string()
                    };
                    let a = &mut out.pod_annotations;
                    a.insert(
                        key(&provider, "logical_switch"),
                        names::cluster_scoped(tenant, subnet),
                    );
                    if let Some(r) = taking(iface) {
                        a.insert(
                            VIP_ANNOTATION.into(),
                            names::cluster_scoped(tenant, &r.name),
                        );
                    } else {
                        if let Some(ip) = iface.fixed_ip {
                            a.insert(key(&provider, "ip_address"), ip.to_string());
                        }
                        if let Some(mac) = iface.mac {
                            a.insert(key(&provider, "mac_address"), mac.to_string());
                        }
                    }
                    out.guarantees.addresses_kept_on_migration = true;
                    provider
                }
            };
            out.live_annotation_keys = vec![
                key(&provider, "security_groups"),
                key(&provider, "port_security"),
            ];
            out.live_pod_annotations = security_annotations(tenant, &provider, iface);
            out.guarantees = Guarantees {
                security_groups: iface.security_groups.clone(),
                ..out.guarantees
            };
            out
        })
        .collect())
}

/// The security-group and port-security annotations of `iface` on `provider` (none without a
/// group).
fn security_annotations(
    tenant: &Tenant,
    provider: &str,
    iface: &NetworkInterface,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if iface.security_groups.is_empty() {
        return out;
    }
    let groups: Vec<String> = iface
        .security_groups
        .iter()
        .map(|g| names::cluster_scoped(tenant, g))
        .collect();
    out.insert(key(provider, "security_groups"), groups.join(","));
    out.insert(key(provider, "port_security"), "true".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_network_interface_pushes_subnets_to_multus() {
        let acme = Tenant::new("acme").unwrap();
        let ifaces = [
            NetworkInterface::on_subnet("eth0", "front"),
            NetworkInterface::pod_network("pod"),
        ];
        let got = attachments(&acme, &ifaces, PodBinding::Bridge, &[]).unwrap();
        assert!(matches!(got[0].network, NetworkSelection::Multus { .. }));
        assert_eq!(got[0].binding, PodBinding::Bridge);
        assert!(
            got[0]
                .pod_annotations
                .contains_key("front.acme.ovn.kubernetes.io/logical_switch")
        );
        assert_eq!(got[1].network, NetworkSelection::PodNetwork);
        assert_eq!(got[1].binding, PodBinding::Masquerade);
        assert!(!got[1].guarantees.addresses_kept_on_migration);
    }

    #[test]
    fn an_interface_without_groups_has_no_security_annotations_but_names_the_keys() {
        let acme = Tenant::new("acme").unwrap();
        let got = attachments(
            &acme,
            &[NetworkInterface::on_subnet("eth0", "front")],
            PodBinding::Masquerade,
            &[],
        )
        .unwrap();
        assert!(got[0].live_pod_annotations.is_empty());
        assert_eq!(
            got[0].live_annotation_keys,
            [
                "ovn.kubernetes.io/security_groups",
                "ovn.kubernetes.io/port_security"
            ]
        );
        assert_eq!(got[0].binding, PodBinding::Masquerade);
    }

    #[test]
    fn an_interface_fixing_a_reserved_address_takes_the_vip_and_nothing_else() {
        let acme = Tenant::new("acme").unwrap();
        let ip: IpAddr = "10.1.0.10".parse().unwrap();
        let reserved = [Reserved {
            name: "db".into(),
            subnet: "front".into(),
            ip,
        }];
        let mut eth0 = NetworkInterface::on_subnet("eth0", "front");
        eth0.fixed_ip = Some(ip);
        eth0.mac = Some("02:00:00:00:00:01".parse().unwrap());
        let got = attachments(&acme, &[eth0.clone()], PodBinding::Bridge, &reserved).unwrap();
        let a = &got[0].pod_annotations;
        assert_eq!(a["ovn.kubernetes.io/vip"], "acme-db");
        assert!(!a.contains_key("ovn.kubernetes.io/ip_address"), "{a:?}");
        assert!(!a.contains_key("ovn.kubernetes.io/mac_address"), "{a:?}");
        // The same address in another subnet is not the reservation.
        let mut other = eth0.clone();
        other.attachment = Attachment::Subnet {
            subnet: "back".into(),
        };
        let got = attachments(&acme, &[other], PodBinding::Bridge, &reserved).unwrap();
        assert_eq!(
            got[0].pod_annotations["ovn.kubernetes.io/ip_address"],
            "10.1.0.10"
        );
        assert!(!got[0].pod_annotations.contains_key("ovn.kubernetes.io/vip"));
        // A second interface: Kube-OVN would give it the Vip's address too.
        let err = attachments(
            &acme,
            &[NetworkInterface::pod_network("pod"), eth0],
            PodBinding::Bridge,
            &reserved,
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { field, .. } if field == "interfaces[1].fixedIp"),
            "{err:?}"
        );
    }
}
