//! The Kubernetes kinds this backend sends and reads, and the label and annotation keys it uses.

use kube::core::{ApiResource, GroupVersionKind};

/// The API version of Multus' `NetworkAttachmentDefinition`.
pub const MULTUS_API: &str = "k8s.cni.cncf.io/v1";
/// The API version of `MultiNetworkPolicy` (the only one served).
pub const MULTI_POLICY_API: &str = "k8s.cni.cncf.io/v1beta1";
/// The API version of whereabouts' kinds.
pub const WHEREABOUTS_API: &str = "whereabouts.cni.cncf.io/v1alpha1";

/// Label on a subnet's and a reservation's attachment naming the VPC's domain name.
pub const VPC_LABEL: &str = "kubecloud.io/vpc";
/// Label on a reservation's attachment naming its subnet's domain name.
pub const SUBNET_LABEL: &str = "kubecloud.io/subnet";
/// Label saying what an object of this backend stands for (`vpc`, `subnet`, `reservation`).
pub const ROLE_LABEL: &str = "kubecloud.io/multus-role";
/// Annotation on a subnet's attachment holding the subnet spec (JSON), so it reads back as
/// written.
pub const SPEC_ANNOTATION: &str = "kubecloud.io/spec";
/// Annotation on a subnet's attachment listing the reserved addresses (comma-separated).
pub const RESERVED_ANNOTATION: &str = "kubecloud.io/reserved";
/// Annotation on a reservation's attachment holding its MAC.
pub const MAC_ANNOTATION: &str = "kubecloud.io/mac";
/// Annotation on a VPC's ConfigMap and a VLAN claim holding the VLAN id.
pub const VLAN_KEY: &str = "vlan";
/// Multus' annotation on a `MultiNetworkPolicy` naming the networks (`ns/name`, comma-separated)
/// it applies to (multi-networkpolicy `README.md`, `PolicyNetworkAnnotation`).
pub const POLICY_FOR: &str = "k8s.v1.cni.cncf.io/policy-for";
/// Multus' annotation naming the device-plugin resource of an attachment (macvtap-cni's
/// `macvtap.network.kubevirt.io/<interface>`).
pub const RESOURCE_NAME: &str = "k8s.v1.cni.cncf.io/resourceName";
/// The label prefix of security-group membership on a VM's pods: `sg.kubecloud.io/<group>`.
pub const GROUP_LABEL_PREFIX: &str = "sg.kubecloud.io/";
/// Multus' network-selection annotation on a pod (virt-controller writes it on a VM's
/// launcher pod): the attachments the pod's interfaces ride.
pub const NETWORKS: &str = "k8s.v1.cni.cncf.io/networks";
/// Label KubeVirt puts on a VM's virt-launcher pods.
pub const VM_POD_LABEL: &str = "vm.kubevirt.io/name";

/// The pod label that puts a VM's pods in security group `group`.
///
/// ```
/// assert_eq!(kubecloud_multus::kinds::group_label("web"), "sg.kubecloud.io/web");
/// ```
pub fn group_label(group: &str) -> String {
    format!("{GROUP_LABEL_PREFIX}{group}")
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Multus `NetworkAttachmentDefinition` (namespaced).
pub fn attachment() -> ApiResource {
    resource(
        "k8s.cni.cncf.io",
        "v1",
        "NetworkAttachmentDefinition",
        "network-attachment-definitions",
    )
}

/// `MultiNetworkPolicy` (namespaced).
pub fn multi_policy() -> ApiResource {
    resource(
        "k8s.cni.cncf.io",
        "v1beta1",
        "MultiNetworkPolicy",
        "multi-networkpolicies",
    )
}

/// whereabouts `IPPool` (namespaced, in whereabouts' namespace).
pub fn ip_pool() -> ApiResource {
    resource("whereabouts.cni.cncf.io", "v1alpha1", "IPPool", "ippools")
}

/// whereabouts `OverlappingRangeIPReservation` (namespaced, in whereabouts' namespace).
pub fn overlapping_reservation() -> ApiResource {
    resource(
        "whereabouts.cni.cncf.io",
        "v1alpha1",
        "OverlappingRangeIPReservation",
        "overlappingrangeipreservations",
    )
}

/// Core `ConfigMap` (namespaced): VPCs and VLAN claims.
pub fn config_map() -> ApiResource {
    resource("", "v1", "ConfigMap", "configmaps")
}

/// Core `Service` (namespaced).
pub fn service() -> ApiResource {
    resource("", "v1", "Service", "services")
}

/// Core `Pod` (namespaced).
pub fn pod() -> ApiResource {
    resource("", "v1", "Pod", "pods")
}

/// The name of the ConfigMap that is VPC `vpc` in the tenant's namespace.
pub fn vpc_object(vpc: &str) -> String {
    format!("kubecloud-vpc.{vpc}")
}

/// The name of the ConfigMap claiming VLAN `id` in the system namespace.
pub fn vlan_claim(id: u16) -> String {
    format!("kubecloud-vlan-{id}")
}

/// The name of the attachment of reservation `name` (a dot cannot be in a subnet's name, so
/// the two never meet).
pub fn reservation_object(name: &str) -> String {
    format!("ip.{name}")
}

/// The name of the `MultiNetworkPolicy` of security group `name`.
pub fn group_object(name: &str) -> String {
    format!("sg.{name}")
}
