//! The Kubernetes objects creating a volume makes, rendered instead of sent (GitOps output).
//!
//! What happens only on LINSTOR's REST API at create time — checking that the tier's storage
//! pools have room for the replicas — is not a manifest: a folder applied by Flux or Argo CD
//! skips that check, and the CSI driver reports a volume that cannot be placed on its claim.

use std::collections::BTreeMap;

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
            let dv = translate::data_volume(tenant, spec, &tier.name, &class_name);
            out.push(manifest(BACKEND, &dv)?);
        } else {
            let claim = translate::claim(tenant, spec, &tier.name, &class_name);
            out.push(manifest(BACKEND, &claim)?);
        }
        Ok(out)
    }
}

/// A LINSTOR backend rendering with tier plans given here rather than read from LINSTOR (for
/// rendering without a LINSTOR controller); tiers without one are read as
/// [`Linstor::tier_plan`] does.
///
/// ```no_run
/// # fn demo(storage: kubecloud_linstor::Linstor) {
/// use kubecloud_linstor::TierPlans;
/// use kubecloud_linstor::translate::TierPlan;
/// let offline = TierPlans::new(storage).with(TierPlan {
///     name: "fast".into(),
///     resource_group: "rg-fast".into(),
///     storage_pool: Some("lvm-thin".into()),
/// });
/// # let _ = offline;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct TierPlans {
    storage: Linstor,
    plans: BTreeMap<String, TierPlan>,
}

impl TierPlans {
    /// `storage` with no plan given yet.
    pub fn new(storage: Linstor) -> Self {
        Self {
            storage,
            plans: BTreeMap::new(),
        }
    }

    /// The same, with `plan` given for its tier.
    pub fn with(mut self, plan: TierPlan) -> Self {
        self.plans.insert(plan.name.clone(), plan);
        self
    }

    /// The plans of the tiers `volumes` use: given, or read from LINSTOR once per tier.
    async fn plans_for(&self, volumes: &[VolumeSpec]) -> Result<BTreeMap<String, TierPlan>> {
        let mut plans = self.plans.clone();
        for (i, volume) in volumes.iter().enumerate() {
            let tier = volume
                .tier
                .as_deref()
                .unwrap_or(self.storage.default_tier());
            if plans.contains_key(tier) {
                continue;
            }
            let plan = self
                .storage
                .tier_plan(Some(tier))
                .await
                .map_err(|e| e.within(&format!("volumes[{i}]")))?;
            plans.insert(plan.name.clone(), plan);
        }
        Ok(plans)
    }
}

/// Renders volumes on known tier plans.
struct Rendering {
    storage: Linstor,
    plans: BTreeMap<String, TierPlan>,
}

impl kubecloud_kube::plugin::VolumeManifests for Rendering {
    fn volume_manifests(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Vec<Value>> {
        let tier = self.storage.tier(spec.tier.as_deref())?;
        let plan = self.plans.get(&tier.name).ok_or_else(|| {
            Error::invalid("tier", format!("no plan of tier {:?} was read", tier.name))
        })?;
        self.storage.volume_manifests(tenant, spec, plan)
    }

    fn volume_attachment(&self, spec: &VolumeSpec) -> kubecloud_core::VolumeAttachment {
        translate::volume_attachment(spec)
    }
}

#[kubecloud_core::async_trait]
impl kubecloud_kube::plugin::StorageManifests for TierPlans {
    async fn volume_renderer(
        &self,
        volumes: &[VolumeSpec],
    ) -> Result<Box<dyn kubecloud_kube::plugin::VolumeManifests>> {
        Ok(Box::new(Rendering {
            storage: self.storage.clone(),
            plans: self.plans_for(volumes).await?,
        }))
    }
}

#[kubecloud_core::async_trait]
impl kubecloud_kube::plugin::StorageManifests for Linstor {
    async fn volume_renderer(
        &self,
        volumes: &[VolumeSpec],
    ) -> Result<Box<dyn kubecloud_kube::plugin::VolumeManifests>> {
        TierPlans::new(self.clone()).volume_renderer(volumes).await
    }
}
