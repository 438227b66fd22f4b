//! The Kubernetes objects creating a volume makes, rendered instead of sent (GitOps output): the
//! class derived for it, when one is, then its PersistentVolumeClaim (or, for an import, the CDI
//! DataVolume that makes it). The tiers are those read when the backend was built, so rendering
//! reads nothing.

use kubecloud_core::{Result, Tenant, VolumeAttachment, VolumeSource, VolumeSpec};
use kubecloud_kube::plugin::{StorageManifests, VolumeManifests};
use kubecloud_kube::render::{manifest, stamped};
use serde_json::Value;

use crate::translate::{self, Choice};
use crate::{BACKEND, Csi};

impl Csi {
    /// The objects [`kubecloud_core::BlockStorage::create_volume`] would send for `spec`,
    /// exactly as it sends them, without sending anything; the same checks as creating come
    /// first (invalid spec, unknown tier, what the tier's driver cannot serve).
    ///
    /// ```no_run
    /// # fn demo(storage: kubecloud_csi::Csi) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{ByteSize, Tenant, VolumeSpec};
    /// let objects = storage.volume_manifests(&Tenant::new("acme")?, &VolumeSpec::blank("db", ByteSize::gib(5)))?;
    /// assert_eq!(objects.last().unwrap()["kind"], "PersistentVolumeClaim");
    /// # Ok(()) }
    /// ```
    pub fn volume_manifests(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Vec<Value>> {
        let (tier, choice) = self.plan(spec)?;
        let mut out = Vec::new();
        if let Choice::Derived(class) = &choice {
            out.push(manifest(BACKEND, &stamped(class.as_ref()))?);
        }
        let class = choice.class_name();
        if matches!(spec.source, VolumeSource::Import { .. }) {
            let dv = translate::data_volume(tenant, spec, &tier.name, &class);
            out.push(manifest(BACKEND, &dv)?);
        } else {
            out.push(manifest(
                BACKEND,
                &translate::claim(tenant, spec, &tier.name, &class),
            )?);
        }
        Ok(out)
    }
}

impl VolumeManifests for Csi {
    fn volume_manifests(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Vec<Value>> {
        Csi::volume_manifests(self, tenant, spec)
    }

    fn volume_attachment(&self, spec: &VolumeSpec) -> VolumeAttachment {
        translate::volume_attachment(spec)
    }
}

#[kubecloud_core::async_trait]
impl StorageManifests for Csi {
    async fn volume_renderer(&self, volumes: &[VolumeSpec]) -> Result<Box<dyn VolumeManifests>> {
        for (i, volume) in volumes.iter().enumerate() {
            self.tier(volume.tier.as_deref())
                .map_err(|e| e.within(&format!("volumes[{i}]")))?;
        }
        Ok(Box::new(self.clone()))
    }
}
