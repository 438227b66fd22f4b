//! The cloud the operator reconciles into: the four Kubernetes backends on one `kube::Client`,
//! built by [`Cloud::connect_with`] from what the cluster has installed.

use kubecloud::Cloud;
use kubecloud::connect::ConnectOptions;
use kubecloud::linstor::connect::{LinstorConnect, LinstorEndpoint};

/// Connects to the cluster behind `client`: one round of API discovery decides which systems
/// (KubeVirt, CDI, Kube-OVN, Multus, MetalLB, snapshot CRDs, Piraeus) back the cloud, LINSTOR is
/// found as Piraeus deploys it and tiers from LINSTOR's StorageClasses.
///
/// Environment variables override discovery, for clusters where it cannot see enough:
/// `LINSTOR_URL` (the controller's URL, e.g. a port-forward), `KUBECLOUD_TIERS`
/// (`name=resource-group,...`) and `PIRAEUS_NAMESPACE` (the namespace Piraeus runs in: the
/// controller's Service and client Secret are looked for there only). A plain `http://` LINSTOR
/// controller (Piraeus without `spec.apiTLS`, or such a `LINSTOR_URL`) is refused unless
/// `LINSTOR_ALLOW_PLAIN_HTTP=true`; then a warning is logged.
pub async fn cloud_for(client: kube::Client) -> kubecloud::Result<Cloud> {
    let mut options = ConnectOptions::default();
    if let Ok(url) = std::env::var("LINSTOR_URL") {
        options = options.linstor(LinstorEndpoint::new(url));
    }
    if let Ok(namespace) = std::env::var("PIRAEUS_NAMESPACE") {
        options = options.piraeus_namespace(namespace);
    }
    match std::env::var("LINSTOR_ALLOW_PLAIN_HTTP").as_deref() {
        Ok("true") => options = options.allow_plain_http(),
        Ok("false") | Err(_) => {}
        Ok(other) => {
            return Err(kubecloud::Error::invalid(
                "LINSTOR_ALLOW_PLAIN_HTTP",
                format!("{other:?} is neither true nor false"),
            ));
        }
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
