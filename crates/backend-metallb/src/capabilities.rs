//! What the MetalLB backend can do.

use kubecloud_core::LoadBalancerCapabilities;

/// Everything: L2 and BGP announcement, BFD on BGP sessions, IP sharing and requested addresses.
///
/// ```
/// assert!(kubecloud_metallb::capabilities::CAPABILITIES.bfd);
/// ```
pub const CAPABILITIES: LoadBalancerCapabilities = LoadBalancerCapabilities {
    l2: true,
    bgp: true,
    bfd: true,
    ip_sharing: true,
    requested_ip: true,
};
