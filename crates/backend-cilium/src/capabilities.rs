//! What the Cilium LB-IPAM backend can do.

use kubecloud_core::LoadBalancerCapabilities;

/// L2 announcement (`CiliumL2AnnouncementPolicy`), IP sharing (`lbipam.cilium.io/sharing-key`)
/// and requested addresses (`lbipam.cilium.io/ips`). Not BGP: the backend does not send the BGP
/// control plane's kinds (`CiliumBGPClusterConfig` is per node set, one per cluster in practice,
/// which a tenant's pool cannot own), so BFD neither.
///
/// ```
/// let caps = kubecloud_cilium::capabilities::CAPABILITIES;
/// assert!(caps.l2 && caps.ip_sharing && caps.requested_ip && !caps.bgp && !caps.bfd);
/// ```
pub const CAPABILITIES: LoadBalancerCapabilities = LoadBalancerCapabilities {
    l2: true,
    bgp: false,
    bfd: false,
    ip_sharing: true,
    requested_ip: true,
};
