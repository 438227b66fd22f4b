//! The [`BlockStorage`] implementation: thin, sending objects through `kubecloud_kube` and
//! reading LINSTOR through [`crate::rest`].

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DynamicObject};
use kubecloud_core::{
    AccessMode, BlockStorage, ByteSize, Error, Labels, MAX_REPLICAS, ResourceKind, Result,
    Snapshot, StorageCapabilities, StoragePool, Tenant, Volume, VolumeAttachment, VolumeMode,
    VolumeSource, VolumeSpec, validate_name,
};
use kubecloud_kube::ensure_namespace;

use crate::builder::{Linstor, Tier};
use crate::capabilities::capabilities;
use crate::rest::{BACKEND, Subject, model};
use crate::status::{not_found, with_import};
use crate::translate::{self, TierPlan};
use kubecloud_kube::claims::{Owned, Reading, Resize};

impl Linstor {
    /// What a volume spec must satisfy on this backend before anything is sent or rendered:
    /// valid, not a ReadWriteMany filesystem, replicas within the backend's maximum.
    pub(crate) fn check_volume_spec(&self, spec: &VolumeSpec) -> Result<()> {
        spec.validate()?;
        self.capabilities()
            .check_size("size", spec.size, spec.mode, BACKEND)?;
        if spec.access == AccessMode::ReadWriteMany && spec.mode == VolumeMode::Filesystem {
            return Err(Error::unsupported(
                BACKEND,
                "create_volume (ReadWriteMany filesystem)",
                "rwx_filesystem",
            ));
        }
        if spec.replicas > self.inner.max_replicas {
            return Err(Error::invalid(
                "replicas",
                format!(
                    "{} is above this backend's maximum of {}",
                    spec.replicas, self.inner.max_replicas
                ),
            ));
        }
        Ok(())
    }

    /// The volumes of `owned`, with one request per plane.
    async fn volumes_of_owned(&self, owned: &[Owned]) -> Result<Vec<Volume>> {
        let claims: Vec<PersistentVolumeClaim> = owned.iter().map(Owned::claim).collect();
        let volumes = self.volumes_of(&claims).await?;
        Ok(volumes
            .into_iter()
            .zip(owned)
            .map(|(v, o)| match &o.dv {
                Some(dv) => with_import(v, dv),
                None => v,
            })
            .collect())
    }

    async fn volume_owned(&self, owned: Owned) -> Result<Volume> {
        let name = owned.claim().metadata.name.unwrap_or_default();
        let mut v = self.volumes_of_owned(std::slice::from_ref(&owned)).await?;
        v.pop().ok_or_else(|| not_found(&name))
    }

    /// The tier's resource group (`GET /v1/resource-groups?resource_groups=`: the document
    /// has no `GET` of one group).
    pub(crate) async fn resource_group(&self, tier: &Tier) -> Result<model::ResourceGroup> {
        let groups: Vec<model::ResourceGroup> = self
            .inner
            .rest
            .get(
                &format!(
                    "/v1/resource-groups?resource_groups={}",
                    tier.resource_group
                ),
                &Subject::new(ResourceKind::StoragePool, &tier.name),
            )
            .await?;
        groups
            .into_iter()
            .find(|g| g.name.eq_ignore_ascii_case(&tier.resource_group))
            .ok_or_else(|| {
                tracing::warn!(tier = %tier.name, group = %tier.resource_group, "the tier's resource group does not exist in LINSTOR");
                Error::not_found(ResourceKind::StoragePool, &tier.name)
            })
    }

    async fn storage_pools(&self) -> Result<Vec<model::StoragePool>> {
        let pools: Vec<model::StoragePool> = self
            .inner
            .rest
            .get(
                "/v1/view/storage-pools",
                &crate::rest::RestClient::cluster_subject(),
            )
            .await?;
        Ok(pools.into_iter().filter(|p| p.is_diskful()).collect())
    }

    /// Refuses a placement LINSTOR could not make: more replicas than nodes with the tier's
    /// pools, or not enough free space on enough of them.
    fn check_room(
        tier: &Tier,
        group: &model::ResourceGroup,
        pools: &[model::StoragePool],
        replicas: u8,
        size: ByteSize,
    ) -> Result<()> {
        let wanted = group.storage_pools();
        let mut free_by_node: BTreeMap<&str, u64> = BTreeMap::new();
        for p in pools
            .iter()
            .filter(|p| wanted.is_empty() || wanted.contains(&p.storage_pool_name))
        {
            let free = free_by_node.entry(p.node_name.as_str()).or_default();
            *free = (*free).max(p.free_capacity.unwrap_or(0));
        }
        let replicas = usize::from(replicas);
        if replicas > free_by_node.len() {
            return Err(Error::exhausted(
                ResourceKind::StoragePool,
                &tier.name,
                format!(
                    "{replicas} replicas need {replicas} distinct nodes; the tier has {} ({})",
                    free_by_node.len(),
                    free_by_node.keys().copied().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let need = size.as_kib_ceil();
        let roomy = free_by_node.values().filter(|f| **f >= need).count();
        if roomy < replicas {
            let most = free_by_node.values().max().copied().unwrap_or(0);
            return Err(Error::exhausted(
                ResourceKind::StoragePool,
                &tier.name,
                format!(
                    "{replicas} replicas of {size} need room on {replicas} nodes; {roomy} have it (most free on one node: {})",
                    ByteSize(most * 1024)
                ),
            ));
        }
        Ok(())
    }

    async fn ensure_storage_class(&self, class: &StorageClass) -> Result<()> {
        let api: Api<StorageClass> = Api::all(self.inner.client.clone());
        let name = class.metadata.name.clone().unwrap_or_default();
        self.inner
            .store
            .ensure_cluster_object(&api, class, ResourceKind::StoragePool, &name)
            .await
    }

    async fn ensure_snapshot_class(&self) -> Result<()> {
        let desired: DynamicObject = serde_json::from_value(translate::snapshot_class())
            .map_err(|e| Error::backend(BACKEND, "snapshot class", false, e))?;
        let store = &self.inner.store;
        let name = translate::SNAPSHOT_CLASS;
        store
            .ensure_cluster_object(
                &store.snapshot_classes(),
                &desired,
                ResourceKind::Snapshot,
                name,
            )
            .await
    }
}

#[async_trait]
impl BlockStorage for Linstor {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    /// Piraeus' namespace, when known (set by connecting, or by
    /// [`crate::LinstorBuilder::system_namespace`]).
    fn system_namespaces(&self) -> Vec<String> {
        self.inner.system_namespace.iter().cloned().collect()
    }

    fn capabilities(&self) -> StorageCapabilities {
        StorageCapabilities {
            snapshots: self.inner.snapshots,
            http_import: self.inner.http_import,
            ..capabilities(self.inner.max_replicas.min(MAX_REPLICAS))
        }
    }

    fn tier_names(&self) -> Option<Vec<String>> {
        Some(self.tiers().iter().map(|t| t.name.clone()).collect())
    }

    async fn create_volume(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Volume> {
        self.check_volume_spec(spec)?;
        let tier = self.tier(spec.tier.as_deref())?.clone();
        let import = matches!(spec.source, VolumeSource::Import { .. });
        let claims = self.inner.store.claims(tenant);
        let taken = self.inner.store.taken(tenant, spec).await?;
        if taken {
            return Err(Error::already_exists(ResourceKind::Volume, &spec.name));
        }
        self.inner.store.check_source(tenant, spec).await?;
        let group = self.resource_group(&tier).await?;
        let pools = self.storage_pools().await?;
        Self::check_room(&tier, &group, &pools, spec.replicas, spec.size)?;

        let group_pools = group.storage_pools();
        let plan = TierPlan {
            name: tier.name.clone(),
            resource_group: tier.resource_group.clone(),
            storage_pool: (group_pools.len() == 1).then(|| group_pools[0].clone()),
        };
        let rwx = translate::is_rwx_block(spec);
        let class = translate::storage_class(&plan, spec.replicas, rwx);
        ensure_namespace(&self.inner.client, &self.inner.writer, tenant).await?;
        self.ensure_storage_class(&class).await?;
        let class_name = class.metadata.name.clone().unwrap_or_default();
        if import {
            let desired = translate::data_volume(tenant, spec, &tier.name, &class_name);
            let dv = self
                .inner
                .writer
                .apply(
                    &self.inner.store.data_volumes(tenant),
                    &desired,
                    ResourceKind::Volume,
                    &spec.name,
                )
                .await?;
            tracing::debug!(%tenant, volume = %spec.name, class = %class_name, "volume import asked of CDI");
            let claim = translate::claim_of_data_volume(&dv, None);
            return Ok(with_import(crate::status::volume_of(&claim, &[])?, &dv));
        }
        let desired = translate::claim(tenant, spec, &tier.name, &class_name);
        let pvc = self
            .inner
            .writer
            .apply(&claims, &desired, ResourceKind::Volume, &spec.name)
            .await?;
        tracing::debug!(%tenant, volume = %spec.name, class = %class_name, "volume claimed");
        crate::status::volume_of(&pvc, &[])
    }

    async fn attach_volume(&self, tenant: &Tenant, name: &str) -> Result<VolumeAttachment> {
        let owned = self.inner.store.owned_volume(tenant, name).await?;
        let spec = translate::spec_from_claim(&owned.claim())?;
        Ok(translate::volume_attachment(&spec))
    }

    async fn get_volume(&self, tenant: &Tenant, name: &str) -> Result<Volume> {
        let owned = self.inner.store.owned_volume(tenant, name).await?;
        self.volume_owned(owned).await
    }

    async fn list_volumes(&self, tenant: &Tenant, labels: &Labels) -> Result<Vec<Volume>> {
        let owned = self
            .inner
            .store
            .owned_volumes(tenant, labels, Reading::States)
            .await?;
        self.volumes_of_owned(&owned).await
    }

    async fn list_volume_specs(&self, tenant: &Tenant, labels: &Labels) -> Result<Vec<VolumeSpec>> {
        // The spec is the claim's (or the import's): nothing of the storage system is read.
        self.inner.store.volume_specs(tenant, labels).await
    }

    async fn resize_volume(&self, tenant: &Tenant, name: &str, size: ByteSize) -> Result<Volume> {
        let (pvc, owned, mut spec) = match self.inner.store.resize_of(tenant, name, size).await? {
            Resize::Unchanged(owned) => return self.volume_owned(owned).await,
            Resize::Grow { owned, spec } => (owned.claim(), owned, spec),
        };
        // LINSTOR must have the extra space on every node holding a replica.
        if let Some(rd) = self.resource_definition(&pvc).await? {
            let delta = (size.as_u64() - spec.size.as_u64()).div_ceil(1024);
            let resources = self.resources(std::slice::from_ref(&rd)).await?;
            let pools = self.storage_pools().await?;
            for r in resources
                .get(&rd)
                .into_iter()
                .flatten()
                .filter(|r| !r.is_diskless())
            {
                let pool = r.volumes.first().and_then(|v| v.storage_pool_name.clone());
                let free = pools
                    .iter()
                    .find(|p| {
                        p.node_name == r.node_name && Some(&p.storage_pool_name) == pool.as_ref()
                    })
                    .and_then(|p| p.free_capacity);
                if free.is_some_and(|f| f < delta) {
                    return Err(Error::exhausted(
                        ResourceKind::StoragePool,
                        spec.tier.clone().unwrap_or_default(),
                        format!(
                            "growing {name:?} to {size} needs {} more on node {}",
                            ByteSize(delta * 1024),
                            r.node_name
                        ),
                    ));
                }
            }
        }
        spec.size = size;
        let tier = spec
            .tier
            .clone()
            .unwrap_or_else(|| self.inner.default_tier.clone());
        let class = pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .unwrap_or_default();
        let desired = translate::claim(tenant, &spec, &tier, &class);
        let pvc = self
            .inner
            .writer
            .apply(
                &self.inner.store.claims(tenant),
                &desired,
                ResourceKind::Volume,
                name,
            )
            .await?;
        let mut volume = self
            .volume_owned(Owned {
                pvc: Some(pvc),
                dv: owned.dv,
            })
            .await?;
        volume.spec.size = size;
        Ok(volume)
    }

    async fn delete_volume(&self, tenant: &Tenant, name: &str, force: bool) -> Result<()> {
        let owned = self.inner.store.owned_volume(tenant, name).await?;
        let pvc = owned.claim();
        if force {
            // Forced: the volume may be in use, and a claim a pod uses keeps kube-apiserver's
            // `kubernetes.io/pvc-protection` finalizer until the pod is gone (which LINSTOR's
            // DRBD state need not show yet), so waiting here could only wait for the timeout.
            // The claim and its storage go once nothing uses them.
            return self
                .inner
                .store
                .delete_without_waiting(tenant, name, &owned)
                .await;
        }
        if owned.pvc.is_some() {
            let nodes = self.in_use_on(&pvc).await?;
            if !nodes.is_empty() {
                return Err(Error::conflict(
                    ResourceKind::Volume,
                    name,
                    format!(
                        "LINSTOR reports it in use (DRBD primary) on {}; delete with force to delete anyway",
                        nodes.join(", ")
                    ),
                ));
            }
        }
        self.inner.store.delete_and_wait(tenant, name, &owned).await
    }

    async fn create_snapshot(
        &self,
        tenant: &Tenant,
        volume: &str,
        snapshot: &str,
    ) -> Result<Snapshot> {
        validate_name("volume", volume)?;
        validate_name("snapshot", snapshot)?;
        if !self.inner.snapshots {
            return Err(Error::unsupported(BACKEND, "volumes.snapshot", "snapshots"));
        }
        // The class first: the shared store then checks the volume and the name, and applies.
        self.ensure_snapshot_class().await?;
        self.inner
            .store
            .create_snapshot(tenant, volume, snapshot, translate::SNAPSHOT_CLASS)
            .await
    }

    async fn list_snapshots(&self, tenant: &Tenant, volume: Option<&str>) -> Result<Vec<Snapshot>> {
        self.inner.store.list_snapshots(tenant, volume).await
    }

    async fn delete_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()> {
        self.inner.store.delete_snapshot(tenant, snapshot).await
    }

    async fn list_pools(&self, _tenant: &Tenant) -> Result<Vec<StoragePool>> {
        let pools = self.storage_pools().await?;
        let mut out = Vec::new();
        for tier in &self.inner.tiers {
            let group = self.resource_group(tier).await?;
            let wanted = group.storage_pools();
            let mine: Vec<&model::StoragePool> = pools
                .iter()
                .filter(|p| wanted.is_empty() || wanted.contains(&p.storage_pool_name))
                .collect();
            let drivers: BTreeSet<&str> = mine.iter().map(|p| p.provider_kind.as_str()).collect();
            let nodes: BTreeSet<String> = mine.iter().map(|p| p.node_name.clone()).collect();
            out.push(StoragePool {
                name: tier.name.clone(),
                driver: drivers.into_iter().collect::<Vec<_>>().join(","),
                nodes: nodes.into_iter().collect(),
                capacity: ByteSize(
                    mine.iter()
                        .map(|p| p.total_capacity.unwrap_or(0))
                        .sum::<u64>()
                        * 1024,
                ),
                free: ByteSize(
                    mine.iter()
                        .map(|p| p.free_capacity.unwrap_or(0))
                        .sum::<u64>()
                        * 1024,
                ),
                default: tier.name == self.inner.default_tier,
            });
        }
        Ok(out)
    }

    async fn watch_volume(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Volume>>> {
        let owned = self.inner.store.owned_volume(tenant, name).await?;
        let this = self.clone();
        Ok(self
            .inner
            .store
            .watch(tenant, name, owned)
            .then(move |owned| {
                let this = this.clone();
                async move { this.volume_owned(owned).await }
            })
            .boxed())
    }
}
