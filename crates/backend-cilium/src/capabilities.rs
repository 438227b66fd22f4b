//! What the Cilium LB-IPAM backend can do.

use kubecloud_core::LoadBalancerCapabilities;

/// L2 announcement (`CiliumL2AnnouncementPolicy`), BGP announcement (Cilium's BGP control plane:
/// a `CiliumBGPAdvertisement` per pool, announced to the pool's peers of the cluster's BGP
/// speaker; see [`crate::bgp`]), IP sharing (`lbipam.cilium.io/sharing-key`) and requested
/// addresses (`lbipam.cilium.io/ips`). Not BFD: `CiliumBGPPeerConfig` has no BFD setting.
///
/// The BGP speaker (local ASN, nodes, peers and their sessions) is the cluster's, not a pool's:
/// only one `CiliumBGPClusterConfig` may select a node (a second one selecting the same nodes gets
/// `cilium.io/ConflictingClusterConfig` True, reason `ConflictingClusterConfigs`, and makes no
/// `CiliumBGPNodeConfig`: `operator/pkg/bgpv2/cluster.go`). So a pool names peers of that
/// speaker, and session settings (password, timers, port, multihop) differing from the peer's
/// `CiliumBGPPeerConfig` are refused naming the field.
///
/// ```
/// let caps = kubecloud_cilium::capabilities::CAPABILITIES;
/// assert!(caps.l2 && caps.ip_sharing && caps.requested_ip && caps.bgp && !caps.bfd);
/// ```
pub const CAPABILITIES: LoadBalancerCapabilities = LoadBalancerCapabilities {
    l2: true,
    bgp: true,
    bfd: false,
    ip_sharing: true,
    requested_ip: true,
};
