//! The Kubernetes kinds this backend sends and reads, and the label and annotation keys it uses.

use kube::core::{ApiResource, GroupVersionKind};

/// The API version of every Kube-OVN kind.
pub const KUBEOVN_API: &str = "kubeovn.io/v1";
/// The API version of Multus' NetworkAttachmentDefinition.
pub const MULTUS_API: &str = "k8s.cni.cncf.io/v1";

/// Label on every Kube-OVN `IP` and `Vip` object naming its subnet (Kube-OVN sets it).
pub const SUBNET_LABEL: &str = "ovn.kubernetes.io/subnet";
/// Label Kube-OVN puts on `IP` objects (`"true"` when made ahead of a workload) and on `Vip`s
/// (the port name of the pod that took it, `""` while none has).
pub const RESERVED_LABEL: &str = "ovn.kubernetes.io/ip_reserved";
/// Label on a subnet naming its VPC's domain name (the object's `spec.vpc` holds the cluster name).
pub const VPC_LABEL: &str = "kubecloud.io/vpc";
/// Label on a reservation's `Vip` naming its subnet's domain name.
pub const SUBNET_NAME_LABEL: &str = "kubecloud.io/subnet";
/// Annotation on a VPC listing the domain names of its peers, comma-separated.
pub const PEERS_ANNOTATION: &str = "kubecloud.io/peers";
/// Label KubeVirt puts on a VM's virt-launcher pods.
pub const VM_POD_LABEL: &str = "vm.kubevirt.io/name";
/// The `podType` Kube-OVN records on the `IP` of a KubeVirt VM.
pub const VM_POD_TYPE: &str = "VirtualMachine";
/// The finalizer kube-ovn-controller puts on an `IP` while it holds the address.
pub const CONTROLLER_FINALIZER: &str = "kube-ovn-controller";
/// The socket kube-ovn-cni listens on, named in every attachment's CNI config.
pub const SERVER_SOCKET: &str = "/run/openvswitch/kube-ovn-daemon.sock";

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

/// Kube-OVN `Vpc` (cluster-scoped).
pub fn vpc() -> ApiResource {
    resource("kubeovn.io", "v1", "Vpc", "vpcs")
}

/// Kube-OVN `Subnet` (cluster-scoped).
pub fn subnet() -> ApiResource {
    resource("kubeovn.io", "v1", "Subnet", "subnets")
}

/// Kube-OVN `IP` (cluster-scoped).
pub fn ip() -> ApiResource {
    resource("kubeovn.io", "v1", "IP", "ips")
}

/// Kube-OVN `Vip` (cluster-scoped): an address held ahead of any pod (a reservation).
pub fn vip() -> ApiResource {
    resource("kubeovn.io", "v1", "Vip", "vips")
}

/// The pod annotation naming the `Vip` whose address a pod takes (`util.VipAnnotation`; not
/// per provider: Kube-OVN gives it to every Kube-OVN network of the pod).
pub const VIP_ANNOTATION: &str = "ovn.kubernetes.io/vip";

/// Kube-OVN `SecurityGroup` (cluster-scoped; hyphenated plural).
pub fn security_group() -> ApiResource {
    resource("kubeovn.io", "v1", "SecurityGroup", "security-groups")
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

/// Core `Service` (namespaced).
pub fn service() -> ApiResource {
    resource("", "v1", "Service", "services")
}

/// Core `Pod` (namespaced).
pub fn pod() -> ApiResource {
    resource("", "v1", "Pod", "pods")
}

/// KubeVirt `VirtualMachine` (namespaced).
pub fn virtual_machine() -> ApiResource {
    resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
}

/// Kube-OVN `OvnEip` (cluster-scoped; hyphenated plural): an address of the external network.
pub fn ovn_eip() -> ApiResource {
    resource("kubeovn.io", "v1", "OvnEip", "ovn-eips")
}

/// Kube-OVN `OvnFip` (cluster-scoped; hyphenated plural): an EIP bound to an `IP`.
pub fn ovn_fip() -> ApiResource {
    resource("kubeovn.io", "v1", "OvnFip", "ovn-fips")
}

/// Kube-OVN `OvnSnatRule` (cluster-scoped; hyphenated plural): a subnet's SNAT behind an EIP.
pub fn ovn_snat_rule() -> ApiResource {
    resource("kubeovn.io", "v1", "OvnSnatRule", "ovn-snat-rules")
}

/// The external subnet `OvnEip`s come from unless the builder names another (Kube-OVN's
/// default name for the OVN external network).
pub const DEFAULT_EXTERNAL_SUBNET: &str = "ovn-vpc-external-network";
/// Label on a floating IP's `OvnFip` and a SNAT rule's `OvnSnatRule` naming the external IP's
/// domain name.
pub const EXTERNAL_IP_LABEL: &str = "kubecloud.io/external-ip";
/// Label on a floating IP's `OvnFip` naming the reservation's domain name.
pub const RESERVATION_LABEL: &str = "kubecloud.io/reservation";
