//! What this backend can do on Multus and whereabouts.

use kubecloud_core::NetworkCapabilities;

use crate::Link;

/// VPCs isolated as VLANs (bridge; not on macvtap), reservations with fixed addresses and MACs
/// (a fixed address on an interface is a reservation's: `fixed_ips_through_reservations`),
/// security groups (`MultiNetworkPolicy`), services; no static routes, peering or external
/// access (no router), no IPv6 (not exercised).
///
/// ```
/// let caps = kubecloud_multus::capabilities(&kubecloud_multus::Link::Bridge {
///     bridge: "br1".into(),
///     vlans: 100..=199,
/// });
/// assert!(caps.vpc_isolation && caps.security_groups && !caps.vpc_peering);
/// ```
pub fn capabilities(link: &Link) -> NetworkCapabilities {
    NetworkCapabilities {
        vpc_isolation: matches!(link, Link::Bridge { .. }),
        static_routes: false,
        vpc_peering: false,
        fixed_ips: true,
        fixed_macs: true,
        secondary_subnets: true,
        security_groups: true,
        services: true,
        ipv6: false,
        external_access: false,
        fixed_ips_through_reservations: true,
        mac_pool: false,
    }
}
