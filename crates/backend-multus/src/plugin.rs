//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it
//! is, the RBAC it needs and how `Cloud::connect` finds it (Multus served, Kube-OVN not).

use kubecloud_core::Result;
use kubecloud_kube::connect::{Built, ConnectOptions, Connector, Installed, System};
use kubecloud_kube::plugin::{Need, Part, Rbac, Unexercised, WRITE};

/// Every verb on every resource this backend sends, and those the conformance suite does not
/// exercise.
pub const RBAC: Rbac = Rbac {
    backend: crate::BACKEND,
    part: Part::Network,
    needs: NEEDS,
    not_exercised: NOT_EXERCISED,
};

const NEEDS: &[Need] = &[
    // Subnets and reservations are attachments in the tenant's namespace.
    Need {
        group: "k8s.cni.cncf.io",
        resources: &["network-attachment-definitions", "multi-networkpolicies"],
        verbs: WRITE,
    },
    // whereabouts' pools: read for usage; leaked allocations removed (a merge patch), an empty
    // pool deleted with its subnet; leaked addresses' overlapping-range reservations deleted.
    Need {
        group: "whereabouts.cni.cncf.io",
        resources: &["ippools"],
        verbs: &["get", "list", "watch", "patch", "delete"],
    },
    Need {
        group: "whereabouts.cni.cncf.io",
        resources: &["overlappingrangeipreservations"],
        verbs: &["delete"],
    },
    // VPCs and VLAN claims are ConfigMaps; services are ClusterIP Services.
    Need {
        group: "",
        resources: &["configmaps", "services"],
        verbs: WRITE,
    },
    // The system namespace of the VLAN claims is created when missing; with Kubemacpool, the
    // tenant's namespace gets its opt-in label (an apply of the label alone).
    Need {
        group: "",
        resources: &["namespaces"],
        verbs: &["get", "create", "patch"],
    },
    // A reservation a VM rides is not released: the tenant's VMs are read.
    Need {
        group: "kubevirt.io",
        resources: &["virtualmachines"],
        verbs: &["list"],
    },
    // Endpoints of services, members of security groups, the pods of allocations.
    Need {
        group: "",
        resources: &["pods"],
        verbs: &["get", "list", "watch"],
    },
];

const LEAKS: &str = "only addresses whose pod is gone are touched; the simulated whereabouts \
                     releases every address of a pod that goes, as the CNI DEL does";

const NOT_EXERCISED: &[Unexercised] = &[
    Unexercised {
        group: "",
        resource: "namespaces",
        verb: "patch",
        why: "only with the Kubemacpool option (MultusBuilder::kubemacpool), which the \
              conformance stacks do not set; tests/all_backends_multus.rs exercises it",
    },
    Unexercised {
        group: "whereabouts.cni.cncf.io",
        resource: "ippools",
        verb: "patch",
        why: LEAKS,
    },
    Unexercised {
        group: "whereabouts.cni.cncf.io",
        resource: "overlappingrangeipreservations",
        verb: "delete",
        why: LEAKS,
    },
];

/// Multus (`k8s.cni.cncf.io/v1`).
pub const MULTUS_CNI: System = System {
    name: "Multus",
    group: "k8s.cni.cncf.io",
    version: "v1",
};

/// whereabouts (`whereabouts.cni.cncf.io/v1alpha1`).
pub const WHEREABOUTS: System = System {
    name: "whereabouts",
    group: "whereabouts.cni.cncf.io",
    version: "v1alpha1",
};

/// Kube-OVN (`kubeovn.io/v1`): where it is served, the Kube-OVN backend is the network.
pub const KUBE_OVN: System = System {
    name: "Kube-OVN",
    group: "kubeovn.io",
    version: "v1",
};

/// The options of the Multus backend when connecting (`ConnectOptions::with`): the layer-2
/// plugin, whereabouts' namespace and whether MACs come from Kubemacpool.
///
/// ```
/// use kubecloud_kube::connect::ConnectOptions;
/// use kubecloud_multus::{Link, plugin::MultusOptions};
/// let options = ConnectOptions::new().with(MultusOptions {
///     link: Link::Bridge { bridge: "br-vm".into(), vlans: 200..=299 },
///     whereabouts_namespace: None,
///     kubemacpool: true,
/// });
/// assert!(options.setting::<MultusOptions>().is_some());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultusOptions {
    /// Bridge and VLAN range, or macvtap interface.
    pub link: crate::Link,
    /// whereabouts' namespace (default `kube-system`).
    pub whereabouts_namespace: Option<String>,
    /// MACs from Kubemacpool ([`crate::MultusBuilder::kubemacpool`]).
    pub kubemacpool: bool,
}

/// Builds the Multus backend when connecting: Multus and whereabouts must be served, and
/// Kube-OVN must not (there, the Kube-OVN backend is the network).
pub const CONNECTOR: MultusConnector = MultusConnector;

/// The [`Connector`] of the Multus backend.
#[derive(Clone, Copy, Debug)]
pub struct MultusConnector;

#[kubecloud_core::async_trait]
impl Connector for MultusConnector {
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
        options: &ConnectOptions,
    ) -> Result<std::result::Result<Built, String>> {
        if installed.has(&KUBE_OVN) && options.chosen(Part::Network) != Some(crate::BACKEND) {
            return Ok(Err(
                "Kube-OVN is installed: its backend is the network".into()
            ));
        }
        for system in [&MULTUS_CNI, &WHEREABOUTS] {
            if let Some(reason) = installed.missing(system) {
                return Ok(Err(reason));
            }
        }
        let mut builder = crate::Multus::builder(client.clone());
        if let Some(o) = options.setting::<MultusOptions>() {
            builder = match &o.link {
                crate::Link::Bridge { bridge, vlans } => {
                    builder.bridge(bridge.clone(), vlans.clone())
                }
                crate::Link::Macvtap { interface } => builder.macvtap(interface.clone()),
            };
            if let Some(ns) = &o.whereabouts_namespace {
                builder = builder.whereabouts_namespace(ns.clone());
            }
            if o.kubemacpool {
                builder = builder.kubemacpool();
            }
        }
        Ok(Ok(Built::Network(std::sync::Arc::new(builder.build()))))
    }
}
