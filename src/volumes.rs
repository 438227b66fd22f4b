//! [`TenantVolumes`]: a tenant's block volumes and snapshots.

use std::time::Duration;

use futures::stream::BoxStream;
use kubecloud_core::wait::{self, Condition};
use kubecloud_core::{
    AccessMode, BlockStorage, ByteSize, Error, Labels, Result, Snapshot, StoragePool, Tenant,
    Volume, VolumeMode, VolumeSource, VolumeSpec, ensure_volume_unused, validate_labels,
    validate_size,
};

use crate::cloud::Cloud;
use crate::tenant::{check_name, require};

/// A tenant's block volumes (from [`crate::TenantHandle::volumes`]).
///
/// ```
/// use kubecloud::{Cloud, VolumeSpec, ByteSize};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kubecloud::Result<()> {
/// let acme = Cloud::in_memory().tenant("acme")?;
/// acme.volumes().create(&VolumeSpec::blank("data", ByteSize::gib(1))).await?;
/// acme.volumes().wait_ready("data", std::time::Duration::from_secs(10)).await?;
/// let grown = acme.volumes().resize("data", ByteSize::gib(2)).await?;
/// assert_eq!(grown.spec.size, ByteSize::gib(2));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TenantVolumes<'a> {
    backend: &'a dyn BlockStorage,
    cloud: &'a Cloud,
    tenant: &'a Tenant,
}

impl<'a> TenantVolumes<'a> {
    pub(crate) fn new(cloud: &'a Cloud, tenant: &'a Tenant) -> Self {
        Self {
            backend: &*cloud.storage,
            cloud,
            tenant,
        }
    }

    /// Fills each volume's `used_by` with the VMs the compute backend says use it (the storage
    /// backend cannot know which VM mounts a volume).
    async fn with_users(&self, mut volumes: Vec<Volume>) -> Result<Vec<Volume>> {
        if volumes.is_empty() {
            return Ok(volumes);
        }
        let mut users = self.cloud.compute.volume_users(self.tenant).await?;
        for v in &mut volumes {
            v.status.used_by = users.remove(&v.spec.name).unwrap_or_default();
        }
        Ok(volumes)
    }

    fn require(&self, operation: &str, capability: &str, has: bool) -> Result<()> {
        require(self.backend.backend_name(), operation, capability, has)
    }

    /// Creates a volume (blank, imported, cloned or restored, per its source).
    pub async fn create(&self, spec: &VolumeSpec) -> Result<Volume> {
        spec.validate()?;
        let caps = self.backend.capabilities();
        let op = "volumes.create";
        if spec.access == AccessMode::ReadWriteMany {
            match spec.mode {
                VolumeMode::Block => self.require(op, "rwx_block", caps.rwx_block)?,
                VolumeMode::Filesystem => {
                    self.require(op, "rwx_filesystem", caps.rwx_filesystem)?
                }
            }
        }
        match &spec.source {
            VolumeSource::Blank => {}
            VolumeSource::Import { .. } => self.require(op, "http_import", caps.http_import)?,
            VolumeSource::Clone { .. } => self.require(op, "clones", caps.clones)?,
            VolumeSource::Snapshot { .. } => self.require(op, "snapshots", caps.snapshots)?,
        }
        caps.check_size("size", spec.size, spec.mode, self.backend.backend_name())?;
        if let VolumeSource::Import { url } = &spec.source {
            crate::import::check_import_urls(
                &self.cloud.import_policy,
                &[("source.url".to_string(), url.as_str())],
            )
            .await?;
        }
        if spec.replicas > caps.max_replicas {
            return Err(Error::invalid(
                "replicas",
                format!(
                    "{} replicas asked, {} keeps at most {}",
                    spec.replicas,
                    self.backend.backend_name(),
                    caps.max_replicas
                ),
            ));
        }
        crate::quota::check_tiered(self.cloud, self.tenant, |default| {
            kubecloud_core::Consumption::of_volume(spec, default)
        })
        .await?;
        self.backend.create_volume(self.tenant, spec).await
    }

    /// Creates `new_name` as a copy of `source`, with the source's size, mode and access.
    pub async fn clone_volume(&self, source: &str, new_name: &str) -> Result<Volume> {
        check_name("source", source)?;
        let original = self.get(source).await?;
        let spec = VolumeSpec {
            name: new_name.to_string(),
            source: VolumeSource::Clone {
                volume: source.to_string(),
            },
            labels: Labels::new(),
            ..original.spec
        };
        self.create(&spec).await
    }

    /// Creates `new_name` from `snapshot`, with the snapshot's size and the given layout.
    pub async fn restore(&self, snapshot: &str, spec: &VolumeSpec) -> Result<Volume> {
        check_name("snapshot", snapshot)?;
        let spec = VolumeSpec {
            source: VolumeSource::Snapshot {
                snapshot: snapshot.to_string(),
            },
            ..spec.clone()
        };
        self.create(&spec).await
    }

    /// The volume named `name`.
    pub async fn get(&self, name: &str) -> Result<Volume> {
        check_name("name", name)?;
        let volume = self.backend.get_volume(self.tenant, name).await?;
        let mut filled = self.with_users(vec![volume]).await?;
        Ok(filled.remove(0))
    }

    /// The tenant's volumes with all `selector` labels.
    pub async fn list(&self, selector: &Labels) -> Result<Vec<Volume>> {
        validate_labels("selector", selector)?;
        let volumes = self.backend.list_volumes(self.tenant, selector).await?;
        self.with_users(volumes).await
    }

    /// The specs of the tenant's volumes with all `selector` labels, without their state
    /// (cheaper than [`TenantVolumes::list`] where the backend keeps them apart; what `plan`
    /// reads).
    pub async fn list_specs(&self, selector: &Labels) -> Result<Vec<VolumeSpec>> {
        validate_labels("selector", selector)?;
        self.backend.list_volume_specs(self.tenant, selector).await
    }

    /// Grows the volume to `size` (shrinking is refused).
    pub async fn resize(&self, name: &str, size: ByteSize) -> Result<Volume> {
        check_name("name", name)?;
        validate_size("size", size)?;
        self.require(
            "volumes.resize",
            "resize",
            self.backend.capabilities().resize,
        )?;
        if !crate::quota::limits(self.cloud, self.tenant)
            .await?
            .is_unlimited()
        {
            let current = self.backend.get_volume(self.tenant, name).await?;
            let now = current.status.size.max(current.spec.size);
            if size > now {
                let grown = size.as_u64() - now.as_u64();
                let tier = current.spec.tier.clone();
                crate::quota::check_tiered(self.cloud, self.tenant, |default| {
                    kubecloud_core::Consumption::growth(tier.as_deref().or(default), grown)
                })
                .await?;
            }
        }
        self.backend.resize_volume(self.tenant, name, size).await
    }

    /// Deletes the volume; refused while a VM uses it (as the compute backend says) or the
    /// storage system sees it in use, unless `force`.
    pub async fn delete(&self, name: &str, force: bool) -> Result<()> {
        check_name("name", name)?;
        if !force {
            ensure_volume_unused(&*self.cloud.compute, self.tenant, name).await?;
        }
        self.backend.delete_volume(self.tenant, name, force).await
    }

    /// Takes a snapshot named `snapshot` of `volume`.
    pub async fn snapshot(&self, volume: &str, snapshot: &str) -> Result<Snapshot> {
        check_name("volume", volume)?;
        check_name("snapshot", snapshot)?;
        self.require(
            "volumes.snapshot",
            "snapshots",
            self.backend.capabilities().snapshots,
        )?;
        self.backend
            .create_snapshot(self.tenant, volume, snapshot)
            .await
    }

    /// The tenant's snapshots, of one volume or all.
    pub async fn snapshots(&self, volume: Option<&str>) -> Result<Vec<Snapshot>> {
        if let Some(volume) = volume {
            check_name("volume", volume)?;
        }
        self.require(
            "volumes.snapshots",
            "snapshots",
            self.backend.capabilities().snapshots,
        )?;
        self.backend.list_snapshots(self.tenant, volume).await
    }

    /// Deletes a snapshot.
    pub async fn delete_snapshot(&self, snapshot: &str) -> Result<()> {
        check_name("snapshot", snapshot)?;
        self.require(
            "volumes.delete_snapshot",
            "snapshots",
            self.backend.capabilities().snapshots,
        )?;
        self.backend.delete_snapshot(self.tenant, snapshot).await
    }

    /// The storage pools (tiers) with capacity.
    pub async fn pools(&self) -> Result<Vec<StoragePool>> {
        self.backend.list_pools(self.tenant).await
    }

    /// The volume's state now and at every change.
    pub async fn watch(&self, name: &str) -> Result<BoxStream<'static, Result<Volume>>> {
        check_name("name", name)?;
        self.backend.watch_volume(self.tenant, name).await
    }

    /// Waits (on a watch) until `condition` holds, failing fast on terminal failure. The whole
    /// wait, opening the watch included, ends by `timeout` (or by the
    /// [`Deadline`](wait::Deadline) of the operation it is part of, if earlier) with
    /// [`Error::Timeout`](crate::Error::Timeout) naming the volume, the condition and its last
    /// state seen.
    pub async fn wait(
        &self,
        name: &str,
        condition: impl Condition<Volume>,
        timeout: Duration,
    ) -> Result<Volume> {
        wait::named(name, self.watch(name), condition, timeout).await
    }

    /// Waits until the volume is ready.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> Result<Volume> {
        self.wait(name, wait::volume_ready(), timeout).await
    }
}
