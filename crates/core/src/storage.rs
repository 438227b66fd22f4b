//! Block volumes: specs, status, snapshots, pools, the [`BlockStorage`] trait and its capabilities.

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::attach::VolumeAttachment;
use crate::error::{Error, Result};
use crate::name::{Labels, Tenant, validate_name, validate_user_labels};
use crate::size::ByteSize;

/// The largest volume kubecloud accepts in one spec (1 PiB): anything larger is a typo.
pub const MAX_VOLUME_SIZE: ByteSize = ByteSize(1 << 50);

/// The most replicas of one volume kubecloud accepts (DRBD supports up to 32 peers; more than a
/// handful is a typo).
pub const MAX_REPLICAS: u8 = 7;

/// What a volume should be.
///
/// ```
/// use kubecloud_core::{VolumeSpec, ByteSize, AccessMode, VolumeMode};
/// let spec = VolumeSpec::blank("db-data", ByteSize::gib(20))
///     .with_replicas(2)
///     .with_access(AccessMode::ReadWriteMany);
/// assert_eq!(spec.mode, VolumeMode::Block);
/// assert!(spec.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSpec {
    /// The volume's name (a DNS-1123 label), unique in its tenant.
    pub name: String,
    /// Its size. For clones and restores, at least the source's size.
    pub size: ByteSize,
    /// How many replicas (on distinct nodes).
    #[serde(default = "default_replicas")]
    pub replicas: u8,
    /// Raw block device or filesystem.
    #[serde(default)]
    pub mode: VolumeMode,
    /// Read-write-once or read-write-many.
    #[serde(default)]
    pub access: AccessMode,
    /// The storage tier (pool); the backend's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Where the data comes from.
    #[serde(default)]
    pub source: VolumeSource,
    /// Labels.
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub labels: Labels,
}

fn default_replicas() -> u8 {
    1
}

impl VolumeSpec {
    /// A blank, single-replica, RWO block volume.
    pub fn blank(name: impl Into<String>, size: ByteSize) -> Self {
        Self {
            name: name.into(),
            size,
            replicas: 1,
            mode: VolumeMode::Block,
            access: AccessMode::ReadWriteOnce,
            tier: None,
            source: VolumeSource::Blank,
            labels: Labels::new(),
        }
    }

    /// The same spec with `replicas` replicas.
    pub fn with_replicas(mut self, replicas: u8) -> Self {
        self.replicas = replicas;
        self
    }

    /// The same spec with another access mode.
    pub fn with_access(mut self, access: AccessMode) -> Self {
        self.access = access;
        self
    }

    /// The same spec with another volume mode.
    pub fn with_mode(mut self, mode: VolumeMode) -> Self {
        self.mode = mode;
        self
    }

    /// The same spec in tier `tier`.
    pub fn with_tier(mut self, tier: impl Into<String>) -> Self {
        self.tier = Some(tier.into());
        self
    }

    /// The same spec with another data source.
    pub fn with_source(mut self, source: VolumeSource) -> Self {
        self.source = source;
        self
    }

    /// Checks the spec; the error names the first bad field.
    pub fn validate(&self) -> Result<()> {
        validate_name("name", &self.name)?;
        validate_size("size", self.size)?;
        validate_replicas("replicas", self.replicas)?;
        if let Some(tier) = &self.tier {
            validate_name("tier", tier)?;
        }
        match &self.source {
            VolumeSource::Blank => {}
            VolumeSource::Import { url } => crate::import::validate_import_url("source.url", url)?,
            VolumeSource::Clone { volume } => {
                validate_name("source.volume", volume)?;
                if volume == &self.name {
                    return Err(Error::invalid(
                        "source.volume",
                        "a volume cannot be cloned from itself",
                    ));
                }
            }
            VolumeSource::Snapshot { snapshot } => validate_name("source.snapshot", snapshot)?,
        }
        validate_user_labels("labels", &self.labels)
    }
}

/// Checks a volume size: more than zero, at most [`MAX_VOLUME_SIZE`].
pub fn validate_size(field: &str, size: ByteSize) -> Result<()> {
    if size.is_zero() {
        return Err(Error::invalid(field, "must be greater than zero"));
    }
    if size > MAX_VOLUME_SIZE {
        return Err(Error::invalid(
            field,
            format!("{size} is above the maximum of {MAX_VOLUME_SIZE}"),
        ));
    }
    Ok(())
}

/// Checks a replica count: 1 to [`MAX_REPLICAS`].
pub fn validate_replicas(field: &str, replicas: u8) -> Result<()> {
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        return Err(Error::invalid(
            field,
            format!("{replicas} is outside 1..={MAX_REPLICAS}"),
        ));
    }
    Ok(())
}

/// Raw block device or filesystem.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VolumeMode {
    /// A raw block device (best for VM disks).
    #[default]
    Block,
    /// A formatted filesystem.
    Filesystem,
}

/// Who may write a volume at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AccessMode {
    /// One node at a time.
    #[default]
    ReadWriteOnce,
    /// Several nodes at once (needed for live migration).
    ReadWriteMany,
}

/// Where a volume's data comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum VolumeSource {
    /// Empty.
    #[default]
    Blank,
    /// Imported from an http(s) image URL.
    Import {
        /// The URL.
        url: String,
    },
    /// A copy of another volume of the tenant.
    Clone {
        /// The source volume.
        volume: String,
    },
    /// Restored from a snapshot of the tenant.
    Snapshot {
        /// The snapshot's name.
        snapshot: String,
    },
}

/// A volume as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// The spec it was created with (size updated by resizes).
    pub spec: VolumeSpec,
    /// What the backend observes.
    pub status: VolumeStatus,
}

impl Volume {
    /// The volume's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// The observed state of a volume.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeStatus {
    /// Where the volume is in its life.
    pub phase: VolumePhase,
    /// Its current size.
    pub size: ByteSize,
    /// Where its replicas are and in which state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
    /// The VMs using it, as the compute backend says ([`crate::Compute::volume_users`]): the
    /// facade fills it in; a storage backend that cannot know (any but the in-memory cloud)
    /// leaves it empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<String>,
    /// Import progress in percent, while importing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// Why the volume failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Where a volume is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VolumePhase {
    /// Being created or placed.
    #[default]
    Pending,
    /// Data is being imported, cloned or restored.
    Populating,
    /// Usable.
    Ready,
    /// Being resized.
    Resizing,
    /// Failed; see the message.
    Failed,
}

impl std::fmt::Display for VolumePhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// One replica of a volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Replica {
    /// The node holding it.
    pub node: String,
    /// Its state (DRBD disk state on LINSTOR).
    pub state: ReplicaState,
}

/// The state of one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ReplicaState {
    /// Current.
    UpToDate,
    /// Syncing from a peer.
    Inconsistent,
    /// Behind, waiting to sync.
    Outdated,
    /// Attached over the network without local data.
    Diskless,
    /// Not reachable.
    Unknown,
}

/// A point-in-time snapshot of a volume.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// The snapshot's name, unique in its tenant.
    pub name: String,
    /// The volume it was taken of.
    pub volume: String,
    /// The volume's size when taken.
    pub size: ByteSize,
    /// Whether it can be restored from yet.
    pub ready: bool,
}

/// A storage pool (tier) and its capacity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoragePool {
    /// The pool's (tier's) name.
    pub name: String,
    /// The kind of backing store (`LVM_THIN`, `ZFS`, `memory`).
    pub driver: String,
    /// Nodes contributing to it.
    pub nodes: Vec<String>,
    /// Total capacity over all nodes.
    pub capacity: ByteSize,
    /// Free capacity over all nodes.
    pub free: ByteSize,
    /// Whether volumes without a tier land here.
    pub default: bool,
}

/// What a block-storage backend can do. The facade checks these before dispatching.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageCapabilities {
    /// Snapshots and restore from them.
    pub snapshots: bool,
    /// Clones of volumes.
    pub clones: bool,
    /// Growing volumes.
    pub resize: bool,
    /// Growing volumes while a running VM uses them.
    pub online_resize: bool,
    /// RWX block volumes (live-migratable VM disks).
    pub rwx_block: bool,
    /// RWX filesystem volumes.
    pub rwx_filesystem: bool,
    /// Imports from http(s) URLs.
    pub http_import: bool,
    /// The most replicas of one volume.
    pub max_replicas: u8,
    /// The smallest raw block volume the backend creates as asked (zero: no floor).
    #[serde(default)]
    pub min_volume_size: ByteSize,
    /// The smallest filesystem volume the backend creates as asked (zero: no floor).
    #[serde(default)]
    pub min_filesystem_size: ByteSize,
    /// The backend sees where each replica of a volume is and in which state
    /// ([`VolumeStatus::replicas`]). A storage system that keeps its copies out of sight (a CSI
    /// driver seen through Kubernetes alone) leaves `replicas` empty.
    #[serde(default)]
    pub replica_placement: bool,
    /// The backend knows its pools' capacity ([`StoragePool::capacity`] and `free`). Without
    /// it, `list_pools` reports zero for both: unknown, not empty (a CSI driver that publishes
    /// no `CSIStorageCapacity`).
    #[serde(default)]
    pub pool_capacity: bool,
}

impl StorageCapabilities {
    /// The smallest volume of `mode` the backend creates as asked.
    ///
    /// ```
    /// use kubecloud_core::{ByteSize, StorageCapabilities, VolumeMode};
    /// let caps = StorageCapabilities {
    ///     min_volume_size: ByteSize::kib(4),
    ///     min_filesystem_size: ByteSize::mib(2),
    ///     ..StorageCapabilities::default()
    /// };
    /// assert_eq!(caps.min_size(VolumeMode::Filesystem), ByteSize::mib(2));
    /// ```
    pub fn min_size(&self, mode: VolumeMode) -> ByteSize {
        match mode {
            VolumeMode::Block => self.min_volume_size,
            VolumeMode::Filesystem => self.min_filesystem_size,
        }
    }

    /// Refuses a volume of `size` and `mode` below [`StorageCapabilities::min_size`], naming
    /// `field` and `backend`.
    ///
    /// ```
    /// use kubecloud_core::{ByteSize, StorageCapabilities, VolumeMode};
    /// let caps = StorageCapabilities { min_volume_size: ByteSize::kib(4), ..Default::default() };
    /// let err = caps.check_size("size", ByteSize(10), VolumeMode::Block, "linstor").unwrap_err();
    /// assert_eq!(err.invalid_field(), Some("size"));
    /// assert!(caps.check_size("size", ByteSize::gib(1), VolumeMode::Block, "linstor").is_ok());
    /// ```
    pub fn check_size(
        &self,
        field: &str,
        size: ByteSize,
        mode: VolumeMode,
        backend: &str,
    ) -> Result<()> {
        let min = self.min_size(mode);
        if size < min {
            return Err(Error::invalid(
                field,
                format!(
                    "{size} is below {backend}'s minimum of {min} for a {} volume",
                    match mode {
                        VolumeMode::Block => "block",
                        VolumeMode::Filesystem => "filesystem",
                    }
                ),
            ));
        }
        Ok(())
    }
}

/// Block volumes of a tenant. Implemented by each storage backend.
#[async_trait]
pub trait BlockStorage: Send + Sync + std::fmt::Debug {
    /// The backend's name for errors.
    fn backend_name(&self) -> &str;
    /// The namespaces the backend's system runs in or keeps its own objects in (MetalLB's
    /// `metallb-system`, say): never a tenant's. [`Tenant`] names equal to one of them are
    /// refused by the facade before anything is sent. None by default.
    fn system_namespaces(&self) -> Vec<String> {
        Vec::new()
    }
    /// What this backend can do.
    fn capabilities(&self) -> StorageCapabilities;

    /// The waits this backend keeps even when an apply does not wait
    /// ([`wait::send_only`](crate::wait::send_only)), each with the reason a later step needs
    /// it; none by default. A tenant's plan reports them on the steps they hold up.
    fn kept_waits(&self) -> &'static [crate::wait::KeptWait] {
        &[]
    }
    /// Creates a volume (blank, imported, cloned or restored, per its source).
    /// [`Error::AlreadyExists`] if the name is taken; [`Error::Exhausted`] if no pool has room.
    async fn create_volume(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Volume>;
    /// How a VM mounts volume `name`: its claim and access mode. Refuses a volume the tenant
    /// does not have ([`Error::NotFound`]). What the facade hands the compute backend.
    async fn attach_volume(&self, tenant: &Tenant, name: &str) -> Result<VolumeAttachment>;
    /// The volume named `name`.
    async fn get_volume(&self, tenant: &Tenant, name: &str) -> Result<Volume>;
    /// The tenant's volumes carrying all `selector` labels, by name.
    async fn list_volumes(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<Volume>>;
    /// The specs of the volumes [`BlockStorage::list_volumes`] lists, in the same order, without
    /// reading their state: what planning compares against. The default lists the volumes; a
    /// backend whose state lives elsewhere (LINSTOR: replicas in the controller, users in the
    /// VM instances) reads only the specs.
    async fn list_volume_specs(
        &self,
        tenant: &Tenant,
        selector: &Labels,
    ) -> Result<Vec<VolumeSpec>> {
        Ok(self
            .list_volumes(tenant, selector)
            .await?
            .into_iter()
            .map(|v| v.spec)
            .collect())
    }
    /// Grows the volume to `size`; shrinking is refused with [`Error::InvalidInput`].
    async fn resize_volume(&self, tenant: &Tenant, name: &str, size: ByteSize) -> Result<Volume>;
    /// Deletes the volume; refused with [`Error::Conflict`] while a running VM uses it, unless
    /// `force`.
    async fn delete_volume(&self, tenant: &Tenant, name: &str, force: bool) -> Result<()>;
    /// Takes a snapshot `snapshot` of `volume`.
    async fn create_snapshot(
        &self,
        tenant: &Tenant,
        volume: &str,
        snapshot: &str,
    ) -> Result<Snapshot>;
    /// The tenant's snapshots, of one volume or all.
    async fn list_snapshots(&self, tenant: &Tenant, volume: Option<&str>) -> Result<Vec<Snapshot>>;
    /// Deletes a snapshot.
    async fn delete_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()>;
    /// The storage pools (tiers) the tenant may use, with capacity.
    async fn list_pools(&self, tenant: &Tenant) -> Result<Vec<StoragePool>>;
    /// The names of the tiers a volume may name, when the backend knows them without asking
    /// its system (from its configuration); `None` (the default) when it does not, and then a
    /// plan leaves an unknown tier for the backend to refuse.
    fn tier_names(&self) -> Option<Vec<String>> {
        None
    }
    /// The volume's state now and at every change, until it is deleted.
    async fn watch_volume(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Volume>>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_replicas_are_bounded() {
        let err = VolumeSpec::blank("v", ByteSize(0)).validate().unwrap_err();
        assert_eq!(err.invalid_field(), Some("size"));
        let err = VolumeSpec::blank("v", ByteSize(1 << 51))
            .validate()
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("size"));
        let err = VolumeSpec::blank("v", ByteSize::gib(1))
            .with_replicas(0)
            .validate()
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("replicas"));
        let err = VolumeSpec::blank("v", ByteSize::gib(1))
            .with_replicas(8)
            .validate()
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("replicas"));
        let err = VolumeSpec::blank("v", ByteSize::gib(1))
            .with_source(VolumeSource::Clone { volume: "v".into() })
            .validate()
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("source.volume"));
    }
}
