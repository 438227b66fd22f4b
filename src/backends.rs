//! The Kubernetes backends of this build, one line each behind its cargo feature: what the
//! facade's generic parts (RBAC, connecting) read instead of naming backends. A new backend
//! crate adds its feature in `Cargo.toml` and its lines here.

use kubecloud_kube::connect::Connector;
use kubecloud_kube::plugin::Rbac;

/// Every backend's RBAC.
pub(crate) const RBAC: &[Rbac] = &[
    #[cfg(feature = "kubevirt")]
    kubecloud_kubevirt::plugin::RBAC,
    #[cfg(feature = "linstor")]
    kubecloud_linstor::plugin::RBAC,
    #[cfg(feature = "csi")]
    kubecloud_csi::plugin::RBAC,
    #[cfg(feature = "kubeovn")]
    kubecloud_kubeovn::plugin::RBAC,
    #[cfg(feature = "multus")]
    kubecloud_multus::plugin::RBAC,
    #[cfg(feature = "metallb")]
    kubecloud_metallb::plugin::RBAC,
    #[cfg(feature = "cilium")]
    kubecloud_cilium::plugin::RBAC,
    #[cfg(feature = "kubevip")]
    kubecloud_kubevip::plugin::RBAC,
];

/// Every backend's connector, in the order `Cloud::connect` tries those of a part (LINSTOR
/// before CSI: where Piraeus is installed, storage is LINSTOR's; MetalLB before Cilium).
pub(crate) const CONNECTORS: &[&dyn Connector] = &[
    #[cfg(feature = "kubevirt")]
    &kubecloud_kubevirt::plugin::CONNECTOR,
    #[cfg(feature = "linstor")]
    &kubecloud_linstor::connect::CONNECTOR,
    #[cfg(feature = "csi")]
    &kubecloud_csi::connect::CONNECTOR,
    #[cfg(feature = "kubeovn")]
    &kubecloud_kubeovn::plugin::CONNECTOR,
    #[cfg(feature = "multus")]
    &kubecloud_multus::plugin::CONNECTOR,
    #[cfg(feature = "metallb")]
    &kubecloud_metallb::plugin::CONNECTOR,
    // After MetalLB: where both are installed, MetalLB unless the options choose Cilium.
    #[cfg(feature = "cilium")]
    &kubecloud_cilium::plugin::CONNECTOR,
    // After Cilium: kube-vip's ConfigMap may stay behind another load balancer.
    #[cfg(feature = "kubevip")]
    &kubecloud_kubevip::plugin::CONNECTOR,
];

/// What node maintenance sends, per compute backend that supports it (kept apart from the
/// tenants' rules: an operator's ClusterRole).
pub(crate) const NODE_MAINTENANCE: &[&[kubecloud_kube::plugin::Need]] = &[
    #[cfg(feature = "kubevirt")]
    kubecloud_kubevirt::plugin::NODE_MAINTENANCE,
];
