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
//! Kube-OVN keys a VM's address by the VM, so addresses are kept over live migration on a
//! subnet, and a bridge binding on the pod network migrates (KubeVirt's
//! `allow-pod-bridge-network-live-migration`); on the plain pod network they are not promised.

use std::collections::BTreeMap;

use kubecloud_core::{
    Attachment, Guarantees, InterfaceAttachment, NetworkInterface, NetworkSelection, PodBinding,
    Tenant,
};
use kubecloud_kube::{names, tenant_namespace};

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
/// a subnet placed on the pod network. References are not checked here (the driver does).
///
/// ```
/// use kubecloud_core::{NetworkInterface, NetworkSelection, PodBinding, Tenant};
/// let acme = Tenant::new("acme")?;
/// let mut eth0 = NetworkInterface::on_subnet("eth0", "web");
/// eth0.security_groups = vec!["ssh-only".into()];
/// let eth1 = NetworkInterface::on_subnet("eth1", "storage");
/// let got = kubecloud_kubeovn::attach::attachments(&acme, &[eth0, eth1], PodBinding::Bridge);
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
) -> Vec<InterfaceAttachment> {
    let mut pod_taken = interfaces
        .iter()
        .any(|i| matches!(i.attachment, Attachment::PodNetwork { .. }));
    interfaces
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
                    if let Some(ip) = iface.fixed_ip {
                        a.insert(key(&provider, "ip_address"), ip.to_string());
                    }
                    if let Some(mac) = iface.mac {
                        a.insert(key(&provider, "mac_address"), mac.to_string());
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
        .collect()
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
        let got = attachments(&acme, &ifaces, PodBinding::Bridge);
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
        );
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
}
