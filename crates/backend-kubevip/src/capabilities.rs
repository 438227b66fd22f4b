//! What the kube-vip backend can do: it depends on how the cluster's kube-vip runs (ARP or BGP,
//! a cluster-wide setting of its DaemonSet), given to [`crate::KubeVipBuilder::bgp`].

use kubecloud_core::LoadBalancerCapabilities;

/// With kube-vip announcing over ARP (the default): L2 announcement, IP sharing (a shared
/// address is requested through `kube-vip.io/loadbalancerIPs`) and requested addresses; not
/// BGP (kube-vip runs one mode for the whole cluster), not BFD.
///
/// ```
/// let caps = kubecloud_kubevip::capabilities::ARP;
/// assert!(caps.l2 && caps.ip_sharing && caps.requested_ip && !caps.bgp && !caps.bfd);
/// ```
pub const ARP: LoadBalancerCapabilities = LoadBalancerCapabilities {
    l2: true,
    bgp: false,
    bfd: false,
    ip_sharing: true,
    requested_ip: true,
};

/// With kube-vip announcing over BGP: every address to the peers the DaemonSet is configured
/// with (`bgp_peers`, `bgp_as`), the same for every pool. A pool's peers must be those peers
/// (a tenant cannot name its own, nor change them: `update_pool` is refused), without BFD,
/// communities, local preference or aggregation (kube-vip announces each address as a host
/// route with none of these per pool).
///
/// ```
/// let caps = kubecloud_kubevip::capabilities::BGP;
/// assert!(caps.bgp && !caps.l2 && !caps.bfd);
/// ```
pub const BGP: LoadBalancerCapabilities = LoadBalancerCapabilities {
    l2: false,
    bgp: true,
    bfd: false,
    ip_sharing: true,
    requested_ip: true,
};
