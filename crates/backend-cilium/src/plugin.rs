//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it
//! is, the RBAC it needs, and how it is found when connecting (Cilium's LB-IPAM CRD served).

use kubecloud_core::Result;
use kubecloud_kube::connect::{Built, ConnectOptions, Connector, Installed, System};
use kubecloud_kube::plugin::{Need, Part, Rbac, Unexercised, WRITE};

/// Every verb on every resource this backend sends, and those the conformance suite does not
/// exercise.
pub const RBAC: Rbac = Rbac {
    backend: crate::BACKEND,
    part: Part::LoadBalancer,
    needs: NEEDS,
    not_exercised: NOT_EXERCISED,
};

const NEEDS: &[Need] = &[
    // Pools: listed (overlap checks, usage), read, applied, deleted; cluster-scoped.
    Need {
        group: "cilium.io",
        resources: &["ciliumloadbalancerippools"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    Need {
        group: "cilium.io",
        resources: &["ciliuml2announcementpolicies"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    // BGP pools: their advertisements; the cluster's BGP speaker, read (and written when given
    // to the builder or in the connect options).
    Need {
        group: "cilium.io",
        resources: &["ciliumbgpadvertisements"],
        verbs: &["get", "list", "create", "patch", "delete"],
    },
    Need {
        group: "cilium.io",
        resources: &["ciliumbgpclusterconfigs", "ciliumbgppeerconfigs"],
        verbs: &["get", "list", "create", "patch"],
    },
    // LoadBalancer Services in the tenant's namespace; LB-IPAM reports in their status.
    Need {
        group: "",
        resources: &["services"],
        verbs: WRITE,
    },
];

const NOT_EXERCISED: &[Unexercised] = &[Unexercised {
    group: "cilium.io",
    resource: "ciliumbgppeerconfigs",
    verb: "list",
    why: "peer configs are listed only to adopt a BGP speaker the administrator configured; the \
          suite's stacks give kubecloud the speaker (CiliumBgp), whose peer configs are read by \
          name",
}];

/// Cilium's LB-IPAM (`cilium.io/v2`, where `CiliumLoadBalancerIPPool` is served since Cilium
/// 1.15).
pub const CILIUM: System = System {
    name: "Cilium LB-IPAM",
    group: "cilium.io",
    version: "v2",
};

/// Builds the Cilium backend when connecting: `cilium.io/v2` (LB-IPAM pools, the BGP control
/// plane) and `cilium.io/v2alpha1` (L2 announcement policies) must be served. The cluster's BGP
/// speaker is the setting [`CiliumBgp`](crate::bgp::CiliumBgp) of the options, if given
/// (`ConnectOptions::with`).
pub const CONNECTOR: CiliumConnector = CiliumConnector;

/// The [`Connector`] of the Cilium LB-IPAM backend.
#[derive(Clone, Copy, Debug)]
pub struct CiliumConnector;

#[kubecloud_core::async_trait]
impl Connector for CiliumConnector {
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
        if let Some(reason) = installed.missing(&CILIUM) {
            return Ok(Err(reason));
        }
        let l2 = System {
            name: "Cilium L2 announcements",
            version: "v2alpha1",
            ..CILIUM
        };
        if let Some(reason) = installed.missing(&l2) {
            return Ok(Err(reason));
        }
        let mut builder = crate::Cilium::builder(client.clone());
        if let Some(bgp) = options.setting::<crate::bgp::CiliumBgp>() {
            builder = builder.bgp(bgp.clone());
        }
        Ok(Ok(Built::LoadBalancer(std::sync::Arc::new(
            builder.build(),
        ))))
    }
}
