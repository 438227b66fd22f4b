//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it
//! is, the RBAC it needs, and how it is found when connecting (kube-vip-cloud-provider's
//! Deployment or its ConfigMap in `kube-system`; it has no CRDs).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kubecloud_core::{ResourceKind, Result};
use kubecloud_kube::connect::{Built, ConnectOptions, Connector, Installed};
use kubecloud_kube::plugin::{Need, Part, Rbac, Unexercised, WRITE};

use crate::Settings;

/// Every verb on every resource this backend sends, and those the conformance suite does not
/// exercise.
pub const RBAC: Rbac = Rbac {
    backend: crate::BACKEND,
    part: Part::LoadBalancer,
    needs: NEEDS,
    not_exercised: NOT_EXERCISED,
};

const NEEDS: &[Need] = &[
    // The provider's ConfigMap: read, created where missing, merge-patched (the tenant's keys).
    Need {
        group: "",
        resources: &["configmaps"],
        verbs: &["get", "create", "patch"],
    },
    // LoadBalancer Services in the tenant's namespace (listed cluster-wide for addresses in use
    // and the global pool's usage); the provider reports through Events.
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
    // Detection: the provider's Deployment.
    Need {
        group: "apps",
        resources: &["deployments"],
        verbs: &["get"],
    },
];

const NOT_EXERCISED: &[Unexercised] = &[Unexercised {
    group: "",
    resource: "configmaps",
    verb: "create",
    why: "the kubevip ConfigMap exists in the suite's cluster (kube-vip's install creates it)",
}];

/// The name of kube-vip-cloud-provider's Deployment (its `manifest/kube-vip-cloud-controller.yaml`).
pub const DEPLOYMENT: &str = "kube-vip-cloud-provider";

/// Builds the kube-vip backend when connecting, with the [`Settings`] given on the
/// [`ConnectOptions`] (`options.with(settings)`) or the defaults.
pub const CONNECTOR: KubeVipConnector = KubeVipConnector;

/// The [`Connector`] of the kube-vip backend.
#[derive(Clone, Copy, Debug)]
pub struct KubeVipConnector;

#[kubecloud_core::async_trait]
impl Connector for KubeVipConnector {
    fn name(&self) -> &'static str {
        crate::BACKEND
    }

    fn part(&self) -> Part {
        Part::LoadBalancer
    }

    async fn connect(
        &self,
        client: &kube::Client,
        _installed: &Installed,
        options: &ConnectOptions,
    ) -> Result<std::result::Result<Built, String>> {
        let settings = options.setting::<Settings>().cloned().unwrap_or_default();
        let (ns, cm) = &settings.config_map;
        let writer = kubecloud_kube::Writer::new(crate::BACKEND);
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
        let deployment = writer
            .get_opt(
                &deployments,
                DEPLOYMENT,
                ResourceKind::AddressPool,
                DEPLOYMENT,
            )
            .await?;
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let config = writer
            .get_opt(&config_maps, cm, ResourceKind::AddressPool, cm)
            .await?;
        if deployment.is_none() && config.is_none() {
            return Ok(Err(format!(
                "kube-vip-cloud-provider: neither its Deployment {ns}/{DEPLOYMENT} nor its ConfigMap {ns}/{cm} exists"
            )));
        }
        Ok(Ok(Built::LoadBalancer(std::sync::Arc::new(
            crate::KubeVip::builder(client.clone())
                .settings(settings)
                .build(),
        ))))
    }
}
