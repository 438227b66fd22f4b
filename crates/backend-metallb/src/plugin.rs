//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it is
//! and the RBAC it needs, read from its driver and from `kubecloud-kube`: MetalLB (its objects live
//! in MetalLB's namespace).

use kubecloud_core::Result;
use kubecloud_kube::connect::{Built, ConnectOptions, Connector, Installed, System};
use kubecloud_kube::plugin::{Need, Part, Rbac, Unexercised, WRITE};

const SECRETS: &str = "BGP passwords are Secrets; the suite's BGP peers have no password";
const BGP_EXTRAS: &str =
    "BFD profiles and BGP communities of a pool; the suite's BGP pool sets neither";

/// Every verb on every resource this backend sends, and those the conformance suite does not
/// exercise.
pub const RBAC: Rbac = Rbac {
    backend: crate::BACKEND,
    part: Part::LoadBalancer,
    needs: NEEDS,
    not_exercised: NOT_EXERCISED,
};

const NEEDS: &[Need] = &[
    Need {
        group: "metallb.io",
        resources: &["ipaddresspools"],
        verbs: WRITE,
    },
    Need {
        group: "metallb.io",
        resources: &[
            "l2advertisements",
            "bgpadvertisements",
            "bgppeers",
            "bfdprofiles",
            "communities",
        ],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    // LoadBalancer Services in the tenant's namespace; MetalLB reports through Events.
    Need {
        group: "",
        resources: &["services"],
        verbs: WRITE,
    },
    Need {
        group: "",
        resources: &["events"],
        verbs: &["list", "watch"],
    },
    // BGP passwords go into Secrets in MetalLB's namespace.
    Need {
        group: "",
        resources: &["secrets"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
];

const NOT_EXERCISED: &[Unexercised] = &[
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "get",
        why: SECRETS,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "create",
        why: SECRETS,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "patch",
        why: SECRETS,
    },
    Unexercised {
        group: "",
        resource: "secrets",
        verb: "delete",
        why: SECRETS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "bfdprofiles",
        verb: "get",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "bfdprofiles",
        verb: "create",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "bfdprofiles",
        verb: "patch",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "bfdprofiles",
        verb: "delete",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "communities",
        verb: "get",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "communities",
        verb: "create",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "communities",
        verb: "patch",
        why: BGP_EXTRAS,
    },
    Unexercised {
        group: "metallb.io",
        resource: "communities",
        verb: "delete",
        why: BGP_EXTRAS,
    },
];

/// MetalLB (`metallb.io/v1beta1`): load balancing.
pub const METALLB: System = System {
    name: "MetalLB",
    group: "metallb.io",
    version: "v1beta1",
};

/// The namespace MetalLB runs in, given instead of the default (see [`MetalLbConnect`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetalLbNamespace(pub String);

/// MetalLB's settings on [`ConnectOptions`].
///
/// ```
/// use kubecloud_kube::connect::ConnectOptions;
/// use kubecloud_metallb::plugin::{MetalLbConnect, MetalLbNamespace};
/// let options = ConnectOptions::new().metallb_namespace("lb-system");
/// assert_eq!(options.setting::<MetalLbNamespace>(), Some(&MetalLbNamespace("lb-system".into())));
/// ```
pub trait MetalLbConnect: Sized {
    /// The namespace MetalLB runs in (default `metallb-system`).
    fn metallb_namespace(self, namespace: impl Into<String>) -> Self;
}

impl MetalLbConnect for ConnectOptions {
    fn metallb_namespace(self, namespace: impl Into<String>) -> Self {
        self.with(MetalLbNamespace(namespace.into()))
    }
}

/// Builds the MetalLB backend when connecting: MetalLB must be served; BGP peers are sent as
/// `v1beta2` (MetalLB 0.14+) when that version is served.
pub const CONNECTOR: MetalLbConnector = MetalLbConnector;

/// The [`Connector`] of the MetalLB backend.
#[derive(Clone, Copy, Debug)]
pub struct MetalLbConnector;

#[kubecloud_core::async_trait]
impl Connector for MetalLbConnector {
    fn name(&self) -> &'static str {
        crate::BACKEND
    }

    fn part(&self) -> Part {
        Part::LoadBalancer
    }

    async fn connect(
        &self,
        client: &kube::Client,
        installed: &Installed,
        options: &ConnectOptions,
    ) -> Result<std::result::Result<Built, String>> {
        if let Some(reason) = installed.missing(&METALLB) {
            return Ok(Err(reason));
        }
        let bgp = installed
            .versions(METALLB.group)
            .iter()
            .any(|v| v == "v1beta2");
        let mut backend = crate::MetalLb::builder(client.clone()).bgp(bgp);
        if let Some(MetalLbNamespace(ns)) = options.setting::<MetalLbNamespace>() {
            backend = backend.namespace(ns.clone());
        }
        Ok(Ok(Built::LoadBalancer(std::sync::Arc::new(
            backend.build(),
        ))))
    }
}
