//! Storage tiers from the cluster's LINSTOR StorageClasses.

use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ListParams};
use kubecloud_core::{Error, Result, validate_name};

/// The LINSTOR CSI driver's provisioner name.
pub const PROVISIONER: &str = "linstor.csi.linbit.com";
const RESOURCE_GROUP: &str = "linstor.csi.linbit.com/resourceGroup";
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

/// Tiers found in StorageClasses, as `(tier, resource group)`, and the default tier.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundTiers {
    /// `(tier, resource group)`, by tier name.
    pub tiers: Vec<(String, String)>,
    /// The tier of the cluster's default StorageClass, if it is one of them.
    pub default: Option<String>,
}

/// Every StorageClass of the LINSTOR CSI driver that names a resource group (parameter
/// `linstor.csi.linbit.com/resourceGroup`) is a tier named after the class; the classes kubecloud
/// itself makes (label `app.kubernetes.io/managed-by=kubecloud`) are skipped.
pub(crate) async fn from_storage_classes(client: &kube::Client) -> Result<FoundTiers> {
    let api: Api<StorageClass> = Api::all(client.clone());
    let classes = api.list(&ListParams::default()).await.map_err(|e| {
        Error::backend(
            "linstor",
            "listing StorageClasses for tiers failed",
            true,
            e,
        )
    })?;
    Ok(tiers_of(&classes.items))
}

/// The pure part of [`from_storage_classes`].
pub(crate) fn tiers_of(classes: &[StorageClass]) -> FoundTiers {
    let mut found = FoundTiers::default();
    for class in classes {
        let Some(name) = class.metadata.name.as_deref() else {
            continue;
        };
        let ours = class
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(kubecloud_kube::MANAGED_BY))
            .is_some_and(|v| v == kubecloud_kube::MANAGER);
        let group = class
            .parameters
            .as_ref()
            .and_then(|p| p.get(RESOURCE_GROUP).or_else(|| p.get("resourceGroup")));
        let Some(group) = group else { continue };
        if ours || class.provisioner != PROVISIONER || validate_name("tier", name).is_err() {
            continue;
        }
        found.tiers.push((name.to_string(), group.clone()));
        let is_default = class
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS))
            .is_some_and(|v| v == "true");
        if is_default {
            found.default = Some(name.to_string());
        }
    }
    found.tiers.sort();
    found
}
