//! The image catalog as CDI keeps it: an image is imported once (one driver step) when it is
//! created or its source changes, never again for the VMs cloning it; a VM's boot disk from the
//! catalog is a new volume of the tenant, `<vm>-boot`, owned by the VM (populated by a copy in
//! the storage, not a download). Imports from `.invalid` hosts fail, as volume imports do. The
//! cloud counts the imports it ran ([`crate::MemoryCloud::catalog_imports`]).
//!
//! A registry source's `schedule` is kept but not run: the in-memory cloud has no clock to poll a
//! registry on; re-applying with a new source re-imports.

use std::time::{SystemTime, UNIX_EPOCH};

use futures::stream::BoxStream;
use kubecloud_core::catalog::check_boot_image;
use kubecloud_core::{
    BootDisk, CatalogImage, CatalogImageSpec, DEFAULT_CATALOG_NAMESPACE, Error, Labels,
    ResourceKind, Result, Tenant, VmSpec, VolumeSource, VolumeSpec,
};

use crate::driver::StepKind;
use crate::state::State;
use crate::storage::import_failure;
use crate::watch::Watchers;

/// One catalog image and its watchers.
pub(crate) struct CatalogRecord {
    image: CatalogImage,
    epoch: u64,
    watchers: Watchers<CatalogImage>,
}

impl CatalogRecord {
    fn publish(&mut self) {
        let image = &self.image;
        self.watchers.publish(|| image.clone());
    }
}

/// The key catalog steps are queued under (steps name a tenant; images belong to none).
fn catalog_key() -> Tenant {
    Tenant::new(DEFAULT_CATALOG_NAMESPACE).unwrap_or_else(|_| unreachable!("a valid tenant name"))
}

/// Now as RFC 3339 (UTC, seconds).
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl State {
    pub(crate) fn apply_catalog_image(&mut self, spec: &CatalogImageSpec) -> Result<CatalogImage> {
        spec.validate()?;
        if let Some(record) = self.catalog.get(&spec.name)
            && record.image.spec == *spec
        {
            return Ok(record.image.clone());
        }
        let epoch = self
            .queue
            .schedule(StepKind::CatalogImage, &catalog_key(), &spec.name);
        let record = self
            .catalog
            .entry(spec.name.clone())
            .or_insert_with(|| CatalogRecord {
                image: CatalogImage {
                    spec: spec.clone(),
                    ready: false,
                    failed: false,
                    last_import: None,
                    message: None,
                },
                epoch,
                watchers: Watchers::default(),
            });
        record.epoch = epoch;
        record.image.spec = spec.clone();
        // Until the new import is done, VMs clone the last one (if any).
        record.image.failed = false;
        record.image.message = Some("import scheduled".into());
        record.publish();
        tracing::debug!(image = %spec.name, "catalog image import scheduled");
        Ok(record.image.clone())
    }

    /// Runs the import of catalog image `name` (a driver step).
    pub(crate) fn advance_catalog_image(&mut self, name: &str, epoch: u64) {
        let Some(record) = self.catalog.get_mut(name) else {
            return;
        };
        if record.epoch != epoch {
            return;
        }
        self.catalog_imports += 1;
        match import_failure(record.image.spec.source.url()) {
            Some(message) => {
                record.image.failed = true;
                record.image.message = Some(message);
            }
            None => {
                record.image.ready = true;
                record.image.failed = false;
                record.image.message = None;
                record.image.last_import = Some(now_rfc3339());
            }
        }
        record.publish();
    }

    pub(crate) fn get_catalog_image(&self, name: &str) -> Result<CatalogImage> {
        self.catalog
            .get(name)
            .map(|r| r.image.clone())
            .ok_or_else(|| Error::not_found(ResourceKind::CatalogImage, name))
    }

    pub(crate) fn list_catalog_images(&self) -> Vec<CatalogImage> {
        self.catalog.values().map(|r| r.image.clone()).collect()
    }

    pub(crate) fn watch_catalog_image(
        &mut self,
        name: &str,
    ) -> Result<BoxStream<'static, Result<CatalogImage>>> {
        let record = self
            .catalog
            .get_mut(name)
            .ok_or_else(|| Error::not_found(ResourceKind::CatalogImage, name))?;
        let current = record.image.clone();
        Ok(record.watchers.subscribe(current))
    }

    pub(crate) fn delete_catalog_image(&mut self, name: &str) -> Result<()> {
        // Dropping the record ends its watches; clones are the tenants' volumes and stay.
        self.catalog
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(ResourceKind::CatalogImage, name))
    }

    /// The boot volume a VM booting from the catalog gets, after checking the image exists, is
    /// ready and fits (errors name `bootDisk.image` / `bootDisk.size`); `None` for other disks.
    pub(crate) fn catalog_boot_volume(&self, spec: &VmSpec) -> Result<Option<VolumeSpec>> {
        let BootDisk::Catalog {
            image,
            size,
            tier,
            replicas,
            access,
            mode,
        } = &spec.boot_disk
        else {
            return Ok(None);
        };
        let found = self.catalog.get(image).map(|r| &r.image);
        check_boot_image("bootDisk.image", "bootDisk.size", image, *size, found)?;
        let image_size = found.map_or(kubecloud_core::ByteSize(0), |i| i.spec.size);
        Ok(Some(VolumeSpec {
            name: BootDisk::import_volume_name(&spec.name),
            size: size.unwrap_or(image_size),
            replicas: *replicas,
            mode: *mode,
            access: *access,
            tier: tier.clone(),
            // A copy made in the storage: no source the tenant could name.
            source: VolumeSource::Blank,
            labels: Labels::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_well_formed() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.starts_with("20") && now.ends_with('Z'), "{now}");
    }
}
