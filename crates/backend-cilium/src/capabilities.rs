//! What the Cilium LB-IPAM backend can do.

use kubecloud_core::LoadBalancerCapabilities;

/// L2 announcement (`CiliumL2AnnouncementPolicy`), IP sharing (`lbipam.cilium.io/sharing-key`)
/// and requested addresses (`lbipam.cilium.io/ips`). Not BGP, so not BFD either: a pool's BGP
/// advertisement names its own peers and ASN, which in Cilium's BGP control plane is a
/// `CiliumBGPClusterConfig`, and only one of those may select a node (a second one selecting the
/// same nodes gets `cilium.io/ConflictingClusterConfig` True, reason `ConflictingClusterConfigs`,
/// and makes no `CiliumBGPNodeConfig`: Cilium's BGP troubleshooting docs and
/// `operator/pkg/bgpv2/cluster.go`). A tenant-owned pool cannot own the cluster's one BGP
/// configuration, so BGP pools are refused with `Unsupported` rather than accepted and never
/// announced.
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
