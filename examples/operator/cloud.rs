//! The cloud the operator reconciles into: the four Kubernetes backends on one `kube::Client`.

use kubecloud::Cloud;

/// The LINSTOR controller's URL when `LINSTOR_URL` is not set (the Service Piraeus creates).
pub const DEFAULT_LINSTOR_URL: &str = "http://linstor-controller.piraeus-datastore.svc:3370";

/// Builds the cloud for `client`: KubeVirt + CDI, LINSTOR (at `$LINSTOR_URL`, tiers from
/// `$KUBECLOUD_TIERS` as `name=resource-group,...`, default `fast=rg-fast`), Kube-OVN and
/// MetalLB.
///
/// This is the one place that composes the backends: when `Cloud::connect_with(client,
/// options)` (discovery of the installed systems, the LINSTOR controller found as Piraeus deploys
/// it) lands, this function becomes a call to it.
pub fn cloud_for(client: kube::Client) -> kubecloud::Result<Cloud> {
    let url = std::env::var("LINSTOR_URL").unwrap_or_else(|_| DEFAULT_LINSTOR_URL.to_owned());
    let tiers = std::env::var("KUBECLOUD_TIERS").unwrap_or_else(|_| "fast=rg-fast".to_owned());
    let mut storage = kubecloud::linstor::Linstor::builder(client.clone(), url.as_str());
    if url.starts_with("http://") {
        storage = storage.insecure_http();
    }
    for pair in tiers.split(',').filter(|p| !p.is_empty()) {
        let (tier, group) = pair.split_once('=').ok_or_else(|| {
            kubecloud::Error::invalid(
                "KUBECLOUD_TIERS",
                format!("{pair:?} is not name=resource-group"),
            )
        })?;
        storage = storage.tier(tier.trim(), group.trim());
    }
    Cloud::builder()
        .compute(kubecloud::kubevirt::KubeVirt::builder(client.clone()).build())
        .storage(storage.build()?)
        .network(kubecloud::kubeovn::KubeOvn::builder(client.clone()).build())
        .load_balancer(kubecloud::metallb::MetalLb::builder(client).build())
        .build()
}
