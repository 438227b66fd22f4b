//! The cloud the operator reconciles into: the four Kubernetes backends on one `kube::Client`,
//! built by [`Cloud::connect_with`] from what the cluster has installed.

use kubecloud::Cloud;
use kubecloud::connect::ConnectOptions;
use kubecloud::linstor::connect::{LinstorConnect, LinstorEndpoint};

/// Connects to the cluster behind `client`: one round of API discovery decides which systems
/// (KubeVirt, CDI, Kube-OVN, Multus, MetalLB, snapshot CRDs, Piraeus) back the cloud, LINSTOR is
/// found as Piraeus deploys it and tiers from LINSTOR's StorageClasses.
///
/// Two environment variables override discovery, for clusters where it cannot see enough:
/// `LINSTOR_URL` (the controller's URL, e.g. a port-forward) and `KUBECLOUD_TIERS`
/// (`name=resource-group,...`).
pub async fn cloud_for(client: kube::Client) -> kubecloud::Result<Cloud> {
    let mut options = ConnectOptions::default();
    if let Ok(url) = std::env::var("LINSTOR_URL") {
        options = options.linstor(LinstorEndpoint::new(url));
    }
    let tiers = std::env::var("KUBECLOUD_TIERS").unwrap_or_default();
    for pair in tiers.split(',').filter(|p| !p.is_empty()) {
        let (tier, group) = pair.split_once('=').ok_or_else(|| {
            kubecloud::Error::invalid(
                "KUBECLOUD_TIERS",
                format!("{pair:?} is not name=resource-group"),
            )
        })?;
        options = options.tier(tier.trim(), group.trim());
    }
    Cloud::connect_with(client, options).await
}
