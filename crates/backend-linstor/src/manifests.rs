//! The Kubernetes objects creating a volume makes, rendered instead of sent (GitOps output).
//!
//! What happens only on LINSTOR's REST API at create time — checking that the tier's storage
//! pools have room for the replicas — is not a manifest: a folder applied by Flux or Argo CD
//! skips that check, and the CSI driver reports a volume that cannot be placed on its claim.

use kube::api::DynamicObject;
use kubecloud_core::{Error, Result, Tenant, VolumeSource, VolumeSpec};
use kubecloud_kube::render::{manifest, stamped};
use serde_json::Value;

use crate::Linstor;
use crate::rest::BACKEND;
use crate::translate::{self, TierPlan};

impl Linstor {
    /// What a StorageClass of tier `tier` (the default tier when `None`) is made from: its
    /// resource group and, when the group has exactly one, its storage pool, read from LINSTOR
    /// (`GET /v1/resource-groups`; nothing is written). Unknown tier: `InvalidInput` on `tier`.
    pub async fn tier_plan(&self, tier: Option<&str>) -> Result<TierPlan> {
        let tier = self.tier(tier)?.clone();
        let group = self.resource_group(&tier).await?;
        let pools = group.storage_pools();
        Ok(TierPlan {
            storage_pool: (pools.len() == 1).then(|| pools[0].clone()),
            name: tier.name,
            resource_group: tier.resource_group,
        })
    }

    /// The tier of volumes that name none.
    pub fn default_tier(&self) -> &str {
        &self.inner.default_tier
    }

    /// The objects [`kubecloud_core::BlockStorage::create_volume`] would send for `spec` on tier
    /// `plan` ([`Linstor::tier_plan`]), exactly as it sends them, without sending anything: the
    /// StorageClass of the tier and replica count, then the PersistentVolumeClaim (or, for an
    /// import, the CDI DataVolume that makes it). The same checks as creating come first
    /// (invalid spec, too many replicas, a read-write-many filesystem, a plan of another tier).
    ///
    /// ```no_run
    /// # async fn demo(storage: kubecloud_linstor::Linstor) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{ByteSize, Tenant, VolumeSpec};
    /// let spec = VolumeSpec::blank("db", ByteSize::gib(20)).with_replicas(2);
    /// let plan = storage.tier_plan(spec.tier.as_deref()).await?;
    /// let objects = storage.volume_manifests(&Tenant::new("acme")?, &spec, &plan)?;
    /// assert_eq!(objects[0]["kind"], "StorageClass");
    /// assert_eq!(objects[1]["kind"], "PersistentVolumeClaim");
    /// # Ok(()) }
    /// ```
    pub fn volume_manifests(
        &self,
        tenant: &Tenant,
        spec: &VolumeSpec,
        plan: &TierPlan,
    ) -> Result<Vec<Value>> {
        self.check_volume_spec(spec)?;
        let tier = self.tier(spec.tier.as_deref())?;
        if tier.name != plan.name {
            return Err(Error::invalid(
                "tier",
                format!(
                    "the volume is on tier {:?}, the plan is of tier {:?}",
                    tier.name, plan.name
                ),
            ));
        }
        let class = translate::storage_class(plan, spec.replicas, translate::is_rwx_block(spec));
        let class_name = class.metadata.name.clone().unwrap_or_default();
        let mut out = vec![manifest(BACKEND, &stamped(&class))?];
        if matches!(spec.source, VolumeSource::Import { .. }) {
            let dv: DynamicObject = serde_json::from_value(translate::data_volume(
                tenant,
                spec,
                &tier.name,
                &class_name,
            ))
            .map_err(|e| Error::backend(BACKEND, "data volume", false, e))?;
            out.push(manifest(BACKEND, &dv)?);
        } else {
            let claim = translate::claim(tenant, spec, &tier.name, &class_name);
            out.push(manifest(BACKEND, &claim)?);
        }
        Ok(out)
    }
}
