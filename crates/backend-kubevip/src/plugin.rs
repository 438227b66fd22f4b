//! What this backend tells the facade about itself (see [`kubecloud_kube::plugin`]): the part it
//! is, the RBAC it needs, and how it is found when connecting: kube-vip-cloud-provider has no
//! CRDs, so by its ConfigMap (`kubevip` in `kube-system`), which kube-vip's install creates
//! (`kubectl create configmap --namespace kube-system kubevip ...`, the README) and the
//! provider itself creates on its first Service. (Its Deployment is not looked for: the
//! ConfigMap is what the backend works with, and a Deployment of another name or namespace
//! would be missed anyway.)

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
];

const NOT_EXERCISED: &[Unexercised] = &[Unexercised {
    group: "",
    resource: "configmaps",
    verb: "create",
    why: "the kubevip ConfigMap exists in the suite's cluster (kube-vip's install creates it)",
}];

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
        let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
        let config = writer
            .get_opt(&config_maps, cm, ResourceKind::AddressPool, cm)
            .await?;
        if config.is_none() {
            return Ok(Err(format!(
                "kube-vip-cloud-provider: its ConfigMap {ns}/{cm} does not exist"
            )));
        }
        Ok(Ok(Built::LoadBalancer(std::sync::Arc::new(
            crate::KubeVip::builder(client.clone())
                .settings(settings)
                .build(),
        ))))
    }
}
