//! What this backend can do on Kube-OVN and Multus.

use kubecloud_core::NetworkCapabilities;

/// Everything the `Network` trait names: VPCs (isolated per tenant, with static routes and
/// peering), fixed IPs and MACs (Kube-OVN `IP` objects), secondary subnets (Multus attachments
/// of type `kube-ovn`), security groups, ClusterIP services, IPv6 subnets, and external access
/// (`OvnEip`, `OvnFip`, `OvnSnatRule`).
///
/// ```
/// let caps = kubecloud_kubeovn::capabilities();
/// assert!(caps.vpc_isolation && caps.secondary_subnets && caps.ipv6);
/// ```
pub fn capabilities() -> NetworkCapabilities {
    NetworkCapabilities {
        vpc_isolation: true,
        static_routes: true,
        vpc_peering: true,
        fixed_ips: true,
        fixed_macs: true,
        secondary_subnets: true,
        security_groups: true,
        services: true,
        ipv6: true,
        external_access: true,
        fixed_ips_through_reservations: false,
        mac_pool: false,
    }
}
