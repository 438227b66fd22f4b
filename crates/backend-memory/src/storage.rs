//! Block storage as LINSTOR does it: tiers (pools) with capacity on every node, replicas on
//! distinct nodes with the most free space, imports, clones, restores, snapshots that block
//! deletion, and online growth.

use futures::stream::BoxStream;
use kubecloud_core::{
    AccessMode, BlockStorage, ByteSize, Error, Labels, MAX_REPLICAS, Replica, ReplicaState,
    ResourceKind, Result, Snapshot, StorageCapabilities, StoragePool, Tenant, VmPhase, Volume,
    VolumeAttachment, VolumeMode, VolumePhase, VolumeSource, VolumeSpec, VolumeStatus, async_trait,
    labels_match, url_host, validate_name, validate_size,
};

use crate::driver::StepKind;
use crate::state::{State, TenantState, find, find_mut};
use crate::watch::Watchers;
use crate::{BACKEND, MemoryCloud};

/// The smallest raw block volume: the floor LINSTOR CSI puts on the real stack (4 KiB), so a
/// spec that plans on the in-memory cloud plans on a cluster.
pub(crate) const MIN_BLOCK_SIZE: ByteSize = ByteSize::kib(4);

/// The smallest filesystem volume: LINSTOR CSI's floor for ext4 (2 MiB).
pub(crate) const MIN_FILESYSTEM_SIZE: ByteSize = ByteSize::mib(2);

/// How far an import gets per step, in percent.
const IMPORT_STEP: u8 = 25;

/// A tier: the same capacity on every node.
pub(crate) struct PoolState {
    pub(crate) name: String,
    pub(crate) per_node: u64,
    /// Bytes allocated on each node.
    pub(crate) used: Vec<u64>,
}

impl PoolState {
    pub(crate) fn new(name: String, per_node: ByteSize, nodes: usize) -> Self {
        Self {
            name,
            per_node: per_node.0,
            used: vec![0; nodes],
        }
    }

    fn free(&self, node: usize) -> u64 {
        self.per_node.saturating_sub(self.used[node])
    }
}

/// A volume and what the cloud keeps about it.
pub(crate) struct VolumeRecord {
    pub(crate) spec: VolumeSpec,
    pub(crate) status: VolumeStatus,
    pub(crate) pool: usize,
    pub(crate) nodes: Vec<usize>,
    pub(crate) epoch: u64,
    /// The VM that created it (an imported boot disk) and deletes it with itself.
    pub(crate) owner: Option<String>,
    pub(crate) snapshots: usize,
    pub(crate) watchers: Watchers<Volume>,
}

impl VolumeRecord {
    pub(crate) fn snapshot(&self) -> Volume {
        Volume {
            spec: self.spec.clone(),
            status: self.status.clone(),
        }
    }

    pub(crate) fn publish(&mut self) {
        let (spec, status) = (&self.spec, &self.status);
        self.watchers.publish(|| Volume {
            spec: spec.clone(),
            status: status.clone(),
        });
    }

    /// Whether a VM can use it now.
    pub(crate) fn usable(&self) -> bool {
        matches!(
            self.status.phase,
            VolumePhase::Ready | VolumePhase::Resizing
        )
    }

    fn set_replica_state(&mut self, state: ReplicaState) {
        for replica in &mut self.status.replicas {
            replica.state = state;
        }
    }

    pub(crate) fn add_user(&mut self, vm: &str) {
        if let Err(at) = self.status.used_by.binary_search_by(|u| u.as_str().cmp(vm)) {
            self.status.used_by.insert(at, vm.to_string());
        }
    }

    pub(crate) fn remove_user(&mut self, vm: &str) {
        if let Ok(at) = self.status.used_by.binary_search_by(|u| u.as_str().cmp(vm)) {
            self.status.used_by.remove(at);
        }
    }
}

/// A snapshot and its epoch.
pub(crate) struct SnapshotRecord {
    pub(crate) snapshot: Snapshot,
    epoch: u64,
}

/// A checked volume creation: where it goes; committing it cannot fail.
pub(crate) struct VolumePlan {
    spec: VolumeSpec,
    pool: usize,
    nodes: Vec<usize>,
}

/// Why an import from `url` fails, if it does: hosts under `.invalid` (the reserved TLD that
/// never resolves) cannot be reached.
pub(crate) fn import_failure(url: &str) -> Option<String> {
    let host = url_host(url).trim_end_matches('.').to_ascii_lowercase();
    (host == "invalid" || host.ends_with(".invalid"))
        .then(|| format!("import failed: could not resolve host {host:?} ({url})"))
}

impl State {
    /// Checks a volume creation (name, tier, source, capacity) and places its replicas, without
    /// changing anything.
    pub(crate) fn plan_volume(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<VolumePlan> {
        let min = match spec.mode {
            VolumeMode::Block => MIN_BLOCK_SIZE,
            VolumeMode::Filesystem => MIN_FILESYSTEM_SIZE,
        };
        if spec.size < min {
            return Err(Error::invalid(
                "size",
                format!(
                    "{} is below {BACKEND}'s minimum of {min} for a {:?} volume",
                    spec.size, spec.mode
                ),
            ));
        }
        let ts = self.tenant(tenant);
        if ts.is_some_and(|ts| ts.volumes.contains_key(&spec.name)) {
            return Err(Error::already_exists(ResourceKind::Volume, &spec.name));
        }
        let pool = match &spec.tier {
            None if !self.storage_pools.is_empty() => 0,
            tier => {
                let tier = tier.as_deref().unwrap_or_default();
                self.storage_pools
                    .iter()
                    .position(|p| p.name == tier)
                    .ok_or_else(|| {
                        let known: Vec<&str> =
                            self.storage_pools.iter().map(|p| p.name.as_str()).collect();
                        Error::invalid(
                            "tier",
                            format!("unknown tier {tier:?}; known tiers: {}", known.join(", ")),
                        )
                    })?
            }
        };
        match &spec.source {
            VolumeSource::Blank | VolumeSource::Import { .. } => {}
            VolumeSource::Clone { volume } => {
                let source = find(ts, |t| &t.volumes, ResourceKind::Volume, volume)?;
                if source.status.phase == VolumePhase::Failed {
                    return Err(Error::conflict(
                        ResourceKind::Volume,
                        volume,
                        "the volume failed and cannot be cloned",
                    ));
                }
                if spec.size < source.status.size {
                    return Err(Error::invalid(
                        "size",
                        format!(
                            "{} is smaller than the source volume {volume:?} ({})",
                            spec.size, source.status.size
                        ),
                    ));
                }
            }
            VolumeSource::Snapshot { snapshot } => {
                let source = find(ts, |t| &t.snapshots, ResourceKind::Snapshot, snapshot)?;
                if spec.size < source.snapshot.size {
                    return Err(Error::invalid(
                        "size",
                        format!(
                            "{} is smaller than the snapshot {snapshot:?} ({})",
                            spec.size, source.snapshot.size
                        ),
                    ));
                }
            }
        }
        let pool_state = &self.storage_pools[pool];
        let replicas = usize::from(spec.replicas);
        let nodes = pool_state.used.len();
        if replicas > nodes {
            return Err(Error::exhausted(
                ResourceKind::StoragePool,
                &pool_state.name,
                format!("{replicas} replicas need {replicas} distinct nodes; the tier has {nodes}"),
            ));
        }
        let mut candidates: Vec<usize> = (0..nodes)
            .filter(|&n| pool_state.free(n) >= spec.size.0)
            .collect();
        if candidates.len() < replicas {
            return Err(Error::exhausted(
                ResourceKind::StoragePool,
                &pool_state.name,
                format!(
                    "{replicas} replicas of {} need room on {replicas} nodes; {} have it",
                    spec.size,
                    candidates.len()
                ),
            ));
        }
        candidates.sort_by_key(|&n| (std::cmp::Reverse(pool_state.free(n)), n));
        candidates.truncate(replicas);
        Ok(VolumePlan {
            spec: spec.clone(),
            pool,
            nodes: candidates,
        })
    }

    /// Creates a planned volume (owned by VM `owner`, if given) and starts populating it.
    pub(crate) fn commit_volume(
        &mut self,
        tenant: &Tenant,
        plan: VolumePlan,
        owner: Option<&str>,
    ) -> Volume {
        let pool = &mut self.storage_pools[plan.pool];
        for &n in &plan.nodes {
            pool.used[n] += plan.spec.size.0;
        }
        let replicas = plan
            .nodes
            .iter()
            .map(|&n| Replica {
                node: self.nodes[n].name.clone(),
                state: ReplicaState::Inconsistent,
            })
            .collect();
        let phase = match plan.spec.source {
            VolumeSource::Blank | VolumeSource::Import { .. } => VolumePhase::Pending,
            VolumeSource::Clone { .. } | VolumeSource::Snapshot { .. } => VolumePhase::Populating,
        };
        let name = plan.spec.name.clone();
        let epoch = self.queue.schedule(StepKind::Volume, tenant, &name);
        let record = VolumeRecord {
            status: VolumeStatus {
                phase,
                size: plan.spec.size,
                replicas,
                used_by: Vec::new(),
                progress: None,
                message: None,
            },
            spec: plan.spec,
            pool: plan.pool,
            nodes: plan.nodes,
            epoch,
            owner: owner.map(str::to_string),
            snapshots: 0,
            watchers: Watchers::default(),
        };
        let volume = record.snapshot();
        self.tenant_mut(tenant).volumes.insert(name, record);
        volume
    }

    /// Removes a volume and frees its capacity (the checks are the caller's).
    pub(crate) fn remove_volume(&mut self, tenant: &Tenant, name: &str) {
        let Some(record) = self
            .tenants
            .get_mut(tenant)
            .and_then(|ts| ts.volumes.remove(name))
        else {
            return;
        };
        let pool = &mut self.storage_pools[record.pool];
        for &n in &record.nodes {
            pool.used[n] = pool.used[n].saturating_sub(record.status.size.0);
        }
        tracing::debug!(%tenant, volume = name, "volume deleted");
    }

    /// The volume's next phase (a driver step).
    pub(crate) fn advance_volume(&mut self, tenant: &Tenant, name: &str, epoch: u64) {
        let State { tenants, queue, .. } = self;
        let Some(volume) = tenants
            .get_mut(tenant)
            .and_then(|ts| ts.volumes.get_mut(name))
        else {
            return;
        };
        if volume.epoch != epoch {
            return;
        }
        let import_url = match &volume.spec.source {
            VolumeSource::Import { url } => Some(url.as_str()),
            _ => None,
        };
        let mut settled = false;
        match (volume.status.phase, import_url) {
            (VolumePhase::Pending, Some(_)) => {
                volume.status.phase = VolumePhase::Populating;
                volume.status.progress = Some(0);
                volume.epoch = queue.schedule(StepKind::Volume, tenant, name);
            }
            (VolumePhase::Populating, Some(url)) => {
                if let Some(message) = import_failure(url) {
                    volume.status.phase = VolumePhase::Failed;
                    volume.status.progress = None;
                    volume.status.message = Some(message);
                    settled = true;
                } else if volume.status.progress == Some(100) {
                    volume.status.phase = VolumePhase::Ready;
                    volume.status.progress = None;
                    volume.set_replica_state(ReplicaState::UpToDate);
                    settled = true;
                } else {
                    let progress = volume.status.progress.unwrap_or(0);
                    volume.status.progress = Some(progress.saturating_add(IMPORT_STEP).min(100));
                    volume.epoch = queue.schedule(StepKind::Volume, tenant, name);
                }
            }
            (VolumePhase::Pending | VolumePhase::Populating | VolumePhase::Resizing, _) => {
                volume.status.phase = VolumePhase::Ready;
                volume.status.progress = None;
                volume.set_replica_state(ReplicaState::UpToDate);
                settled = true;
            }
            _ => return,
        }
        volume.publish();
        if settled {
            let users = volume.status.used_by.clone();
            for vm in users {
                self.settle_vm(tenant, &vm);
            }
        }
    }

    /// Marks a snapshot ready (a driver step).
    pub(crate) fn advance_snapshot(&mut self, tenant: &Tenant, name: &str, epoch: u64) {
        if let Some(snapshot) = self
            .tenants
            .get_mut(tenant)
            .and_then(|ts| ts.snapshots.get_mut(name))
            && snapshot.epoch == epoch
        {
            snapshot.snapshot.ready = true;
        }
    }

    fn create_volume(&mut self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Volume> {
        spec.validate()?;
        let plan = self.plan_volume(tenant, spec)?;
        let tier = self.storage_pools.get(plan.pool).map(|p| p.name.as_str());
        self.check_quota(tenant, &kubecloud_core::Consumption::of_volume(spec, tier))?;
        tracing::debug!(%tenant, volume = %spec.name, nodes = ?plan.nodes, "volume created");
        Ok(self.commit_volume(tenant, plan, None))
    }

    fn resize_volume(&mut self, tenant: &Tenant, name: &str, size: ByteSize) -> Result<Volume> {
        validate_size("size", size)?;
        if let Some(volume) = self.tenant(tenant).and_then(|t| t.volumes.get(name))
            && size > volume.status.size
        {
            let tier = self.storage_pools.get(volume.pool).map(|p| p.name.as_str());
            let growth = size.as_u64() - volume.status.size.as_u64();
            self.check_quota(tenant, &kubecloud_core::Consumption::growth(tier, growth))?;
        }
        let State {
            tenants,
            storage_pools,
            nodes,
            queue,
            ..
        } = self;
        let volume = find_mut(
            tenants.get_mut(tenant),
            |t| &mut t.volumes,
            ResourceKind::Volume,
            name,
        )?;
        let current = volume.status.size;
        if size < current {
            return Err(Error::invalid(
                "size",
                format!("volumes only grow: {size} is smaller than the current {current}"),
            ));
        }
        if size == current {
            return Ok(volume.snapshot());
        }
        if volume.status.phase != VolumePhase::Ready {
            return Err(Error::conflict(
                ResourceKind::Volume,
                name,
                format!("the volume is {}, not ready", volume.status.phase),
            ));
        }
        let grow = size.0 - current.0;
        let pool = &mut storage_pools[volume.pool];
        if let Some(&full) = volume.nodes.iter().find(|&&n| pool.free(n) < grow) {
            return Err(Error::exhausted(
                ResourceKind::StoragePool,
                &pool.name,
                format!(
                    "{} has {} free, growing by {} needs more",
                    nodes[full].name,
                    ByteSize(pool.free(full)),
                    ByteSize(grow)
                ),
            ));
        }
        for &n in &volume.nodes {
            pool.used[n] += grow;
        }
        volume.spec.size = size;
        volume.status.size = size;
        volume.status.phase = VolumePhase::Resizing;
        volume.epoch = queue.schedule(StepKind::Volume, tenant, name);
        volume.publish();
        Ok(volume.snapshot())
    }

    fn delete_volume(&mut self, tenant: &Tenant, name: &str, force: bool) -> Result<()> {
        let ts = self.tenant(tenant);
        let volume = find(ts, |t| &t.volumes, ResourceKind::Volume, name)?;
        if volume.snapshots > 0 {
            return Err(Error::conflict(
                ResourceKind::Volume,
                name,
                format!(
                    "the volume has {} snapshot(s); delete them first",
                    volume.snapshots
                ),
            ));
        }
        if !force {
            let running: Vec<&str> = volume
                .status
                .used_by
                .iter()
                .filter(|vm| {
                    ts.and_then(|t| t.vms.get(vm.as_str()))
                        .is_some_and(|vm| vm.status.phase != VmPhase::Stopped)
                })
                .map(String::as_str)
                .collect();
            if !running.is_empty() {
                return Err(Error::conflict(
                    ResourceKind::Volume,
                    name,
                    format!(
                        "in use by VM(s) that are not stopped: {}; stop them or force",
                        running.join(", ")
                    ),
                ));
            }
        }
        self.remove_volume(tenant, name);
        Ok(())
    }

    fn create_snapshot(&mut self, tenant: &Tenant, volume: &str, name: &str) -> Result<Snapshot> {
        validate_name("snapshot", name)?;
        let ts = self.tenant(tenant);
        let source = find(ts, |t| &t.volumes, ResourceKind::Volume, volume)?;
        if ts.is_some_and(|t| t.snapshots.contains_key(name)) {
            return Err(Error::already_exists(ResourceKind::Snapshot, name));
        }
        if source.status.phase == VolumePhase::Failed {
            return Err(Error::conflict(
                ResourceKind::Volume,
                volume,
                "the volume failed; there is nothing to snapshot",
            ));
        }
        let snapshot = Snapshot {
            name: name.to_string(),
            volume: volume.to_string(),
            size: source.status.size,
            ready: false,
        };
        let epoch = self.queue.schedule(StepKind::Snapshot, tenant, name);
        let ts = self.tenant_mut(tenant);
        if let Some(source) = ts.volumes.get_mut(volume) {
            source.snapshots += 1;
        }
        ts.snapshots.insert(
            name.to_string(),
            SnapshotRecord {
                snapshot: snapshot.clone(),
                epoch,
            },
        );
        Ok(snapshot)
    }

    fn delete_snapshot(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        let ts: Option<&mut TenantState> = self.tenants.get_mut(tenant);
        let Some(ts) = ts else {
            return Err(Error::not_found(ResourceKind::Snapshot, name));
        };
        let record = ts
            .snapshots
            .remove(name)
            .ok_or_else(|| Error::not_found(ResourceKind::Snapshot, name))?;
        if let Some(volume) = ts.volumes.get_mut(&record.snapshot.volume) {
            volume.snapshots = volume.snapshots.saturating_sub(1);
        }
        Ok(())
    }

    fn storage_pools(&self) -> Vec<StoragePool> {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        self.storage_pools
            .iter()
            .enumerate()
            .map(|(i, pool)| {
                let capacity = pool.per_node.saturating_mul(pool.used.len() as u64);
                let free = (0..pool.used.len()).map(|n| pool.free(n)).sum();
                StoragePool {
                    name: pool.name.clone(),
                    driver: BACKEND.into(),
                    nodes: nodes.clone(),
                    capacity: ByteSize(capacity),
                    free: ByteSize(free),
                    default: i == 0,
                }
            })
            .collect()
    }
}

#[async_trait]
impl BlockStorage for MemoryCloud {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> StorageCapabilities {
        StorageCapabilities {
            snapshots: true,
            clones: true,
            resize: true,
            online_resize: true,
            rwx_block: true,
            rwx_filesystem: true,
            http_import: true,
            max_replicas: u8::try_from(self.inner.nodes)
                .unwrap_or(u8::MAX)
                .min(MAX_REPLICAS),
            min_volume_size: MIN_BLOCK_SIZE,
            min_filesystem_size: MIN_FILESYSTEM_SIZE,
            replica_placement: true,
            pool_capacity: true,
        }
    }

    async fn create_volume(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Volume> {
        self.lock().create_volume(tenant, spec)
    }

    async fn attach_volume(&self, tenant: &Tenant, name: &str) -> Result<VolumeAttachment> {
        let state = self.lock();
        let volume = find(
            state.tenant(tenant),
            |t| &t.volumes,
            ResourceKind::Volume,
            name,
        )?;
        Ok(VolumeAttachment {
            volume: name.to_string(),
            claim: name.to_string(),
            access: volume.spec.access,
        })
    }

    async fn get_volume(&self, tenant: &Tenant, name: &str) -> Result<Volume> {
        let state = self.lock();
        find(
            state.tenant(tenant),
            |t| &t.volumes,
            ResourceKind::Volume,
            name,
        )
        .map(VolumeRecord::snapshot)
    }

    async fn list_volumes(&self, tenant: &Tenant, selector: &Labels) -> Result<Vec<Volume>> {
        let state = self.lock();
        Ok(state
            .tenant(tenant)
            .map(|ts| {
                ts.volumes
                    .values()
                    .filter(|v| labels_match(selector, &v.spec.labels))
                    .map(VolumeRecord::snapshot)
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn resize_volume(&self, tenant: &Tenant, name: &str, size: ByteSize) -> Result<Volume> {
        self.lock().resize_volume(tenant, name, size)
    }

    async fn delete_volume(&self, tenant: &Tenant, name: &str, force: bool) -> Result<()> {
        self.lock().delete_volume(tenant, name, force)
    }

    async fn create_snapshot(
        &self,
        tenant: &Tenant,
        volume: &str,
        snapshot: &str,
    ) -> Result<Snapshot> {
        self.lock().create_snapshot(tenant, volume, snapshot)
    }

    async fn list_snapshots(&self, tenant: &Tenant, volume: Option<&str>) -> Result<Vec<Snapshot>> {
        let state = self.lock();
        Ok(state
            .tenant(tenant)
            .map(|ts| {
                ts.snapshots
                    .values()
                    .filter(|s| volume.is_none_or(|v| s.snapshot.volume == v))
                    .map(|s| s.snapshot.clone())
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn delete_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()> {
        self.lock().delete_snapshot(tenant, snapshot)
    }

    async fn list_pools(&self, _tenant: &Tenant) -> Result<Vec<StoragePool>> {
        Ok(self.lock().storage_pools())
    }

    fn tier_names(&self) -> Option<Vec<String>> {
        Some(
            self.lock()
                .storage_pools
                .iter()
                .map(|p| p.name.clone())
                .collect(),
        )
    }

    async fn watch_volume(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Volume>>> {
        let mut state = self.lock();
        let volume = find_mut(
            state.tenants.get_mut(tenant),
            |t| &mut t.volumes,
            ResourceKind::Volume,
            name,
        )?;
        let current = volume.snapshot();
        Ok(volume.watchers.subscribe(current))
    }
}

/// Whether a volume may be attached to another VM besides those using it.
pub(crate) fn shareable(volume: &VolumeRecord) -> bool {
    volume.spec.access == AccessMode::ReadWriteMany
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_hosts_are_found_behind_users_ports_and_brackets() {
        assert_eq!(url_host("https://example.com/a.img"), "example.com");
        assert_eq!(
            url_host("http://u:p@mirror.invalid:8080/x"),
            "mirror.invalid"
        );
        assert_eq!(url_host("http://[fd00::1]:80/x"), "fd00::1");
        assert!(import_failure("https://images.example.invalid/f.qcow2").is_some());
        assert!(import_failure("https://images.example.com/f.qcow2").is_none());
        assert!(import_failure("https://invalid.example.com/f.qcow2").is_none());
    }
}
