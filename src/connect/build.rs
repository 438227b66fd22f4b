//! Building the cloud from what discovery found.

use std::sync::Arc;

use kubecloud_core::{Error, Result};

use super::{ConnectOptions, Discovered, LinstorEndpoint, PROVISIONER, Part, System};
use crate::{Absent, Cloud};

/// The error for a required part whose system is missing, or the [`Absent`] stand-in.
fn missing(part: Part, reason: String, options: &ConnectOptions) -> Result<Absent> {
    if options.is_required(part) {
        let hint = format!(
            "{reason} (the {} part needs it; allow_missing({:?}) connects without it)",
            part.name(),
            part
        );
        return Err(Error::Backend {
            backend: "kubernetes".into(),
            message: hint,
            temporary: false,
            source: None,
        });
    }
    tracing::info!(part = part.name(), %reason, "connecting without this part");
    Ok(Absent::new(part.name(), &reason))
}

pub(super) fn build(
    client: kube::Client,
    options: &ConnectOptions,
    found: &Discovered,
) -> Result<Cloud> {
    let has = |s| found.installed.has(s);
    let mut cloud = Cloud::builder();

    cloud = match found.installed.missing(System::KubeVirt) {
        None => cloud.compute(
            crate::kubevirt::KubeVirt::builder(client.clone())
                .http_import(has(System::Cdi))
                .vm_snapshots(has(System::KubeVirtSnapshots) && has(System::VolumeSnapshots))
                .build(),
        ),
        Some(reason) => cloud.compute(missing(Part::Compute, reason, options)?),
    };

    cloud = match &found.linstor {
        Ok(endpoint) => cloud.storage_arc(storage(client.clone(), options, found, endpoint)?),
        Err(reason) => cloud.storage(missing(Part::Storage, reason.clone(), options)?),
    };

    cloud = match found.installed.missing(System::KubeOvn) {
        None => cloud.network(
            crate::kubeovn::KubeOvn::builder(client.clone())
                .secondary_subnets(has(System::Multus))
                .build(),
        ),
        Some(reason) => cloud.network(missing(Part::Network, reason, options)?),
    };

    cloud = match found.installed.missing(System::MetalLb) {
        None => {
            // BGPPeer is sent as v1beta2 (MetalLB 0.14+).
            let bgp = found
                .installed
                .versions("metallb.io")
                .iter()
                .any(|v| v == "v1beta2");
            let mut lb = crate::metallb::MetalLb::builder(client).bgp(bgp);
            if let Some(ns) = &options.metallb_namespace {
                lb = lb.namespace(ns.clone());
            }
            cloud.load_balancer(lb.build())
        }
        Some(reason) => cloud.load_balancer(missing(Part::LoadBalancer, reason, options)?),
    };
    cloud.build()
}

fn storage(
    client: kube::Client,
    options: &ConnectOptions,
    found: &Discovered,
    endpoint: &LinstorEndpoint,
) -> Result<Arc<dyn kubecloud_core::BlockStorage>> {
    if found.tiers.tiers.is_empty() {
        let reason = format!(
            "LINSTOR has no tiers: no StorageClass of {PROVISIONER} names a resource group \
             (parameter linstor.csi.linbit.com/resourceGroup) and none was given"
        );
        return Ok(Arc::new(missing(Part::Storage, reason, options)?));
    }
    let mut builder = crate::linstor::Linstor::builder(client, endpoint.url.clone())
        .http_import(found.installed.has(System::Cdi))
        .snapshots(found.installed.has(System::VolumeSnapshots));
    builder = match &endpoint.tls {
        Some(tls) => builder.tls(
            tls.ca_pem.clone(),
            tls.cert_pem.clone(),
            tls.key_pem.clone(),
        ),
        // Piraeus serves the API over plain http when `apiTLS` is not set: the cluster decides.
        None if endpoint.url.starts_with("http://") => builder.insecure_http(),
        None => builder,
    };
    for (tier, group) in &found.tiers.tiers {
        builder = builder.tier(tier.clone(), group.clone());
    }
    if let Some(default) = options.default_tier.clone().or(found.tiers.default.clone()) {
        builder = builder.default_tier(default);
    }
    Ok(Arc::new(builder.build()?))
}
