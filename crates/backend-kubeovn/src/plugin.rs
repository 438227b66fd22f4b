//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it is
//! and the RBAC it needs, read from its driver and from `kubecloud-kube`: Kube-OVN + Multus (all
//! Kube-OVN kinds kubecloud uses are cluster-scoped).

use kubecloud_core::Result;
use kubecloud_kube::connect::{Built, ConnectOptions, Connector, Installed, System};
use kubecloud_kube::plugin::{Need, Part, Rbac, Unexercised, WRITE};

const MULTUS: &str = "secondary subnets are Multus attachments; the suite's subnets are primary";
const POD_OWNER: &str =
    "the owner of an address that is a pod; the suite's addresses are VMs' or unbound";

/// Every verb on every resource this backend sends, and those the conformance suite does not
/// exercise.
pub const RBAC: Rbac = Rbac {
    backend: crate::BACKEND,
    part: Part::Network,
    needs: NEEDS,
    not_exercised: NOT_EXERCISED,
};

const NEEDS: &[Need] = &[
    Need {
        group: "kubeovn.io",
        resources: &[
            "vpcs",
            "subnets",
            "vips",
            "ovn-eips",
            "ovn-fips",
            "ovn-snat-rules",
        ],
        verbs: WRITE,
    },
    // The `IP`s Kube-OVN makes for pods and VMs: read to see what holds an address, deleted
    // when their owner is gone (reclaim, subnet deletion). Reservations are `Vip`s.
    Need {
        group: "kubeovn.io",
        resources: &["ips"],
        verbs: &["list", "watch", "delete"],
    },
    Need {
        group: "kubeovn.io",
        resources: &["security-groups"],
        // `watch`: the groups an interface names are checked through a shared watch.
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
    },
    // Secondary subnets are Multus attachments in the tenant's namespace.
    Need {
        group: "k8s.cni.cncf.io",
        resources: &["network-attachment-definitions"],
        verbs: &["get", "create", "patch", "delete"],
    },
    // ClusterIP services.
    Need {
        group: "",
        resources: &["services"],
        verbs: WRITE,
    },
    // The owner of an address (a pod or a VM) when reservations are listed.
    Need {
        group: "",
        resources: &["pods"],
        verbs: &["get", "list"],
    },
    Need {
        group: "kubevirt.io",
        resources: &["virtualmachines"],
        verbs: &["get"],
    },
];

const NOT_EXERCISED: &[Unexercised] = &[
    Unexercised {
        group: "kubeovn.io",
        resource: "ips",
        verb: "delete",
        why: "an IP is deleted only when Kube-OVN left it behind for a workload that is gone \
              (reclaim, subnet deletion); the simulated controller never leaks one",
    },
    Unexercised {
        group: "k8s.cni.cncf.io",
        resource: "network-attachment-definitions",
        verb: "get",
        why: MULTUS,
    },
    Unexercised {
        group: "k8s.cni.cncf.io",
        resource: "network-attachment-definitions",
        verb: "create",
        why: MULTUS,
    },
    Unexercised {
        group: "k8s.cni.cncf.io",
        resource: "network-attachment-definitions",
        verb: "patch",
        why: MULTUS,
    },
    Unexercised {
        group: "k8s.cni.cncf.io",
        resource: "network-attachment-definitions",
        verb: "delete",
        why: MULTUS,
    },
    Unexercised {
        group: "",
        resource: "pods",
        verb: "get",
        why: POD_OWNER,
    },
];

/// Kube-OVN (`kubeovn.io/v1`): networks.
pub const KUBE_OVN: System = System {
    name: "Kube-OVN",
    group: "kubeovn.io",
    version: "v1",
};

/// Multus (`k8s.cni.cncf.io/v1`): secondary subnets.
pub const MULTUS_CNI: System = System {
    name: "Multus",
    group: "k8s.cni.cncf.io",
    version: "v1",
};

/// Builds the Kube-OVN backend when connecting: Kube-OVN must be served; secondary subnets
/// need Multus.
pub const CONNECTOR: KubeOvnConnector = KubeOvnConnector;

/// The [`Connector`] of the Kube-OVN backend.
#[derive(Clone, Copy, Debug)]
pub struct KubeOvnConnector;

#[kubecloud_core::async_trait]
impl Connector for KubeOvnConnector {
    fn name(&self) -> &'static str {
        crate::BACKEND
    }

    fn part(&self) -> Part {
        Part::Network
    }

    async fn connect(
        &self,
        client: &kube::Client,
        installed: &Installed,
        _: &ConnectOptions,
    ) -> Result<std::result::Result<Built, String>> {
        if let Some(reason) = installed.missing(&KUBE_OVN) {
            return Ok(Err(reason));
        }
        let backend = crate::KubeOvn::builder(client.clone())
            .secondary_subnets(installed.has(&MULTUS_CNI))
            .build();
        Ok(Ok(Built::Network(std::sync::Arc::new(backend))))
    }
}
