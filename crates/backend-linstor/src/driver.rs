//! The [`BlockStorage`] implementation: thin, sending objects through `kubecloud_kube` and
//! reading LINSTOR through [`crate::rest`].

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kubecloud_core::{
    AccessMode, BlockStorage, ByteSize, Error, Labels, MAX_REPLICAS, ResourceKind, Result,
    Snapshot, StorageCapabilities, StoragePool, Tenant, Volume, VolumeAttachment, VolumeMode,
    VolumeSource, VolumeSpec, validate_name, validate_size,
};
use kubecloud_kube::cdi;
use kubecloud_kube::{
    ensure_namespace, ensure_owned, from_kube, is_owned, names, tenant_namespace, tenant_selector,
};
use serde_json::{Value, json};

use crate::builder::{Linstor, Tier};
use crate::capabilities::capabilities;
use crate::rest::{BACKEND, Subject, model};
use crate::status::{not_found, with_import};
use crate::translate::{self, TierPlan};

mod deletion;

/// A volume as found in Kubernetes: its claim and, for an import, its DataVolume (one of the two
/// may not exist yet, or any more).
#[derive(Clone, Debug, Default)]
struct Owned {
    pvc: Option<PersistentVolumeClaim>,
    dv: Option<Value>,
}

impl Owned {
    /// The claim the volume stands for (for an import, with the DataVolume's metadata).
    fn claim(&self) -> PersistentVolumeClaim {
        match &self.dv {
            Some(dv) => translate::claim_of_data_volume(dv, self.pvc.as_ref()),
            None => self.pvc.clone().unwrap_or_default(),
        }
    }

    fn exists(&self) -> bool {
        self.pvc.is_some() || self.dv.is_some()
    }

    /// The volume's name (its claim's, or its import's).
    fn name(&self) -> &str {
        match (&self.pvc, &self.dv) {
            (Some(pvc), _) => pvc.metadata.name.as_deref().unwrap_or_default(),
            (None, Some(dv)) => dv["metadata"]["name"].as_str().unwrap_or_default(),
            (None, None) => "",
        }
    }
}

/// How much of a volume to read: its spec only, or its state too.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Specs,
    States,
}

/// A list of DataVolumes, or none when CDI is not installed (the resource is not found).
fn or_none_without_cdi<T: Default>(listed: Result<T>) -> Result<T> {
    match listed {
        Err(e) if e.is_not_found() => Ok(T::default()),
        other => other,
    }
}

/// Whether DataVolume `dv` is a volume of this backend (the KubeVirt backend's boot-disk imports
/// are not).
fn is_our_import(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(translate::REPLICAS))
}

fn to_value(dv: &DynamicObject) -> Result<Value> {
    serde_json::to_value(dv).map_err(|e| Error::backend(BACKEND, "data volume", false, e))
}

fn snapshot_resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("snapshot.storage.k8s.io", "v1", kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

fn selector(tenant: &Tenant, labels: &Labels) -> String {
    let mut s = tenant_selector(tenant);
    for (k, v) in labels {
        s.push_str(&format!(",{k}={v}"));
    }
    s
}

impl Linstor {
    /// The tenant's volumes carrying all `labels`, by name, as their claims and imports. With
    /// [`Reading::Specs`] the imports are read as metadata only (an import's spec is its
    /// claim's), whole only while CDI has not made the claim yet.
    async fn owned_volumes(
        &self,
        tenant: &Tenant,
        labels: &Labels,
        reading: Reading,
    ) -> Result<Vec<Owned>> {
        let params = ListParams::default().labels(&selector(tenant, labels));
        // Through the Writer: identical lists within one `shared_lists` scope (a plan, where the
        // compute backend may list DataVolumes too) are sent once.
        let (writer, kind) = (&self.inner.writer, ResourceKind::Volume);
        // Read in place (within a plan the list is shared): only the claims of volumes are
        // copied out, not those of VMs' boot disks.
        let list = writer
            .list_shared(&self.claims(tenant), &params, kind, "*")
            .await?;
        let mut claims: BTreeMap<&str, &PersistentVolumeClaim> = list
            .iter()
            .filter(|c| is_owned(&c.metadata, tenant))
            .map(|c| (c.metadata.name.as_deref().unwrap_or_default(), c))
            .collect();
        let data_volumes = self.data_volumes(tenant);
        let mut owned: Vec<Owned> = Vec::new();
        match reading {
            Reading::States => {
                for dv in or_none_without_cdi(
                    writer.list_shared(&data_volumes, &params, kind, "*").await,
                )?
                .iter()
                .filter(|dv| is_owned(&dv.metadata, tenant) && is_our_import(&dv.metadata))
                {
                    let name = dv.metadata.name.as_deref().unwrap_or_default();
                    owned.push(Owned {
                        pvc: claims.remove(name).cloned(),
                        dv: Some(to_value(dv)?),
                    });
                }
            }
            Reading::Specs => {
                for dv in or_none_without_cdi(
                    writer
                        .list_metadata(&data_volumes, &params, kind, "*")
                        .await,
                )?
                .iter()
                .filter(|dv| is_owned(&dv.metadata, tenant) && is_our_import(&dv.metadata))
                {
                    let name = dv.metadata.name.clone().unwrap_or_default();
                    let pvc = claims.remove(name.as_str()).cloned();
                    let dv = match pvc {
                        Some(_) => json!({"metadata": dv.metadata}),
                        None => match writer.get_opt(&data_volumes, &name, kind, &name).await? {
                            Some(whole) => to_value(&whole)?,
                            None => continue,
                        },
                    };
                    owned.push(Owned { pvc, dv: Some(dv) });
                }
            }
        }
        owned.extend(
            claims
                .into_values()
                .filter(|c| is_our_import(&c.metadata))
                .map(|c| Owned {
                    pvc: Some(c.clone()),
                    dv: None,
                }),
        );
        owned.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(owned)
    }

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

    fn claims(&self, tenant: &Tenant) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.inner.client.clone(), &tenant_namespace(tenant))
    }

    fn data_volumes(&self, tenant: &Tenant) -> Api<DynamicObject> {
        cdi::data_volumes(&self.inner.client, &tenant_namespace(tenant))
    }

    /// The tenant's volume `volume`: its claim, and its DataVolume when it is (or was made by) an
    /// import of this backend; `NotFound` when neither exists or they are not the tenant's.
    async fn owned_volume(&self, tenant: &Tenant, volume: &str) -> Result<Owned> {
        let name = names::claim(volume);
        let pvc = self
            .inner
            .writer
            .get_opt(&self.claims(tenant), &name, ResourceKind::Volume, volume)
            .await?;
        let dv = if pvc.as_ref().is_none_or(cdi::made_by_cdi) {
            self.inner
                .writer
                .get_opt(
                    &self.data_volumes(tenant),
                    &name,
                    ResourceKind::Volume,
                    volume,
                )
                .await?
                .filter(|dv| is_our_import(&dv.metadata))
        } else {
            None
        };
        match (&dv, &pvc) {
            (Some(dv), _) => ensure_owned(&dv.metadata, tenant, ResourceKind::Volume, volume)?,
            (None, Some(pvc)) => {
                ensure_owned(&pvc.metadata, tenant, ResourceKind::Volume, volume)?;
            }
            (None, None) => return Err(not_found(volume)),
        }
        Ok(Owned {
            pvc,
            dv: dv.as_ref().map(to_value).transpose()?,
        })
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

    /// The states of an imported volume, from two watches (its claim and its DataVolume); ends
    /// when both are gone.
    fn watch_import(
        &self,
        tenant: &Tenant,
        name: &str,
        owned: Owned,
    ) -> BoxStream<'static, Result<Volume>> {
        enum Seen {
            Claim(Box<Option<PersistentVolumeClaim>>),
            Import(Box<Option<DynamicObject>>),
        }
        let object = names::claim(name);
        let writer = &self.inner.writer;
        let claims = writer
            .states(&self.claims(tenant), &object)
            .filter_map(|s| async move { s.ok().map(|c| Seen::Claim(Box::new(c))) });
        let imports = writer
            .states(&self.data_volumes(tenant), &object)
            .filter_map(|s| async move { s.ok().map(|d| Seen::Import(Box::new(d))) });
        let owner = tenant.clone();
        let this = self.clone();
        futures::stream::select(claims, imports)
            .scan(owned, move |state, seen| {
                match seen {
                    Seen::Claim(c) => state.pvc = (*c).filter(|c| is_owned(&c.metadata, &owner)),
                    Seen::Import(d) => {
                        state.dv = (*d)
                            .filter(|d| is_owned(&d.metadata, &owner) && is_our_import(&d.metadata))
                            .and_then(|d| to_value(&d).ok());
                    }
                }
                let next = state.exists().then(|| state.clone());
                async move { next }
            })
            .then(move |owned| {
                let this = this.clone();
                async move { this.volume_owned(owned).await }
            })
            .boxed()
    }

    fn snapshots(&self, tenant: &Tenant) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.inner.client.clone(),
            &tenant_namespace(tenant),
            &snapshot_resource("VolumeSnapshot", "volumesnapshots"),
        )
    }

    /// The tenant's claim of `volume`, or `NotFound`.
    async fn owned_claim(&self, tenant: &Tenant, volume: &str) -> Result<PersistentVolumeClaim> {
        let pvc = self
            .inner
            .writer
            .get_opt(
                &self.claims(tenant),
                &names::claim(volume),
                ResourceKind::Volume,
                volume,
            )
            .await?
            .ok_or_else(|| not_found(volume))?;
        ensure_owned(&pvc.metadata, tenant, ResourceKind::Volume, volume)?;
        Ok(pvc)
    }

    async fn owned_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<DynamicObject> {
        let vs = self
            .inner
            .writer
            .get_opt(
                &self.snapshots(tenant),
                snapshot,
                ResourceKind::Snapshot,
                snapshot,
            )
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::Snapshot, snapshot))?;
        ensure_owned(&vs.metadata, tenant, ResourceKind::Snapshot, snapshot)?;
        Ok(vs)
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

    /// Checks the source of a clone or restore: it exists in the tenant and is not larger.
    async fn check_source(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<()> {
        match &spec.source {
            VolumeSource::Blank | VolumeSource::Import { .. } => Ok(()),
            VolumeSource::Clone { volume } => {
                let pvc = self.owned_claim(tenant, volume).await?;
                let source = translate::spec_from_claim(&pvc)?;
                if spec.size < source.size {
                    return Err(Error::invalid(
                        "size",
                        format!(
                            "{} is smaller than the source volume {volume:?} ({})",
                            spec.size, source.size
                        ),
                    ));
                }
                Ok(())
            }
            VolumeSource::Snapshot { snapshot } => {
                let vs = self.owned_snapshot(tenant, snapshot).await?;
                let size = snapshot_size(&vs);
                if spec.size < size {
                    return Err(Error::invalid(
                        "size",
                        format!(
                            "{} is smaller than the snapshot {snapshot:?} ({size})",
                            spec.size
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    async fn ensure_storage_class(&self, class: &StorageClass) -> Result<()> {
        let api: Api<StorageClass> = Api::all(self.inner.client.clone());
        let name = class.metadata.name.clone().unwrap_or_default();
        let current = self
            .inner
            .writer
            .get_opt(&api, &name, ResourceKind::StoragePool, &name)
            .await?;
        self.inner
            .writer
            .apply_if_changed(
                &api,
                current.as_ref(),
                class,
                ResourceKind::StoragePool,
                &name,
            )
            .await?;
        Ok(())
    }

    async fn ensure_snapshot_class(&self) -> Result<()> {
        let api: Api<DynamicObject> = Api::all_with(
            self.inner.client.clone(),
            &snapshot_resource("VolumeSnapshotClass", "volumesnapshotclasses"),
        );
        let desired: DynamicObject = serde_json::from_value(translate::snapshot_class())
            .map_err(|e| Error::backend(BACKEND, "snapshot class", false, e))?;
        let name = translate::SNAPSHOT_CLASS;
        let current = self
            .inner
            .writer
            .get_opt(&api, name, ResourceKind::Snapshot, name)
            .await?;
        self.inner
            .writer
            .apply_if_changed(
                &api,
                current.as_ref(),
                &desired,
                ResourceKind::Snapshot,
                name,
            )
            .await?;
        Ok(())
    }

    async fn volume(&self, pvc: PersistentVolumeClaim) -> Result<Volume> {
        let mut v = self.volumes_of(std::slice::from_ref(&pvc)).await?;
        v.pop()
            .ok_or_else(|| not_found(&pvc.metadata.name.unwrap_or_default()))
    }
}

fn snapshot_size(vs: &DynamicObject) -> ByteSize {
    let annotated = vs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(translate::SIZE))
        .and_then(|s| s.parse::<u64>().ok());
    let restore = vs.data["status"]["restoreSize"]
        .as_str()
        .and_then(|s| translate::bytes_of(s).ok())
        .map(|b| b.as_u64());
    ByteSize(annotated.or(restore).unwrap_or(0))
}

fn snapshot_of(vs: &DynamicObject) -> Snapshot {
    Snapshot {
        name: vs.metadata.name.clone().unwrap_or_default(),
        volume: vs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(translate::VOLUME))
            .cloned()
            .unwrap_or_default(),
        size: snapshot_size(vs),
        ready: vs.data["status"]["readyToUse"] == true,
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
        let claims = self.claims(tenant);
        let claim_name = names::claim(&spec.name);
        let mut taken = self
            .inner
            .writer
            .get_opt(&claims, &claim_name, ResourceKind::Volume, &spec.name)
            .await?
            .is_some();
        if import && !taken {
            // CDI makes the claim a moment after the DataVolume.
            taken = self
                .inner
                .writer
                .get_opt(
                    &self.data_volumes(tenant),
                    &claim_name,
                    ResourceKind::Volume,
                    &spec.name,
                )
                .await?
                .is_some();
        }
        if taken {
            return Err(Error::already_exists(ResourceKind::Volume, &spec.name));
        }
        self.check_source(tenant, spec).await?;
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
            let desired: DynamicObject = serde_json::from_value(desired)
                .map_err(|e| Error::backend(BACKEND, "data volume", false, e))?;
            let dv = self
                .inner
                .writer
                .apply(
                    &self.data_volumes(tenant),
                    &desired,
                    ResourceKind::Volume,
                    &spec.name,
                )
                .await?;
            tracing::debug!(%tenant, volume = %spec.name, class = %class_name, "volume import asked of CDI");
            let dv = to_value(&dv)?;
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
        let owned = self.owned_volume(tenant, name).await?;
        let spec = translate::spec_from_claim(&owned.claim())?;
        Ok(translate::volume_attachment(&spec))
    }

    async fn get_volume(&self, tenant: &Tenant, name: &str) -> Result<Volume> {
        let owned = self.owned_volume(tenant, name).await?;
        self.volume_owned(owned).await
    }

    async fn list_volumes(&self, tenant: &Tenant, labels: &Labels) -> Result<Vec<Volume>> {
        let owned = self.owned_volumes(tenant, labels, Reading::States).await?;
        self.volumes_of_owned(&owned).await
    }

    async fn list_volume_specs(&self, tenant: &Tenant, labels: &Labels) -> Result<Vec<VolumeSpec>> {
        // The spec is the claim's (or the import's): no LINSTOR resources, no VM instances.
        let owned = self.owned_volumes(tenant, labels, Reading::Specs).await?;
        owned
            .iter()
            .map(|o| translate::spec_from_claim(&o.claim()))
            .collect()
    }

    async fn resize_volume(&self, tenant: &Tenant, name: &str, size: ByteSize) -> Result<Volume> {
        validate_size("size", size)?;
        let owned = self.owned_volume(tenant, name).await?;
        if owned.pvc.is_none() {
            return Err(Error::conflict(
                ResourceKind::Volume,
                name,
                "the import has no claim yet; resize it once CDI has made it",
            ));
        }
        let pvc = owned.claim();
        let mut spec = translate::spec_from_claim(&pvc)?;
        if size < spec.size {
            return Err(Error::invalid(
                "size",
                format!(
                    "shrinking {name:?} from {} to {size} is not supported",
                    spec.size
                ),
            ));
        }
        if size == spec.size {
            return self.volume_owned(owned).await;
        }
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
            .apply(&self.claims(tenant), &desired, ResourceKind::Volume, name)
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
        let owned = self.owned_volume(tenant, name).await?;
        let pvc = owned.claim();
        if force {
            // Forced: the volume may be in use, and a claim a pod uses keeps kube-apiserver's
            // `kubernetes.io/pvc-protection` finalizer until the pod is gone (which LINSTOR's
            // DRBD state need not show yet), so waiting here could only wait for the timeout.
            // The claim and its storage go once nothing uses them.
            return self.delete_without_waiting(tenant, name, &owned).await;
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
        self.delete_and_wait(tenant, name, &owned).await
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
        let pvc = self.owned_claim(tenant, volume).await?;
        let api = self.snapshots(tenant);
        if self
            .inner
            .writer
            .get_opt(&api, snapshot, ResourceKind::Snapshot, snapshot)
            .await?
            .is_some()
        {
            return Err(Error::already_exists(ResourceKind::Snapshot, snapshot));
        }
        let size = translate::spec_from_claim(&pvc)?.size;
        self.ensure_snapshot_class().await?;
        let desired: DynamicObject =
            serde_json::from_value(translate::volume_snapshot(tenant, volume, snapshot, size))
                .map_err(|e| Error::backend(BACKEND, "volume snapshot", false, e))?;
        let vs = self
            .inner
            .writer
            .apply(&api, &desired, ResourceKind::Snapshot, snapshot)
            .await?;
        Ok(snapshot_of(&vs))
    }

    async fn list_snapshots(&self, tenant: &Tenant, volume: Option<&str>) -> Result<Vec<Snapshot>> {
        let mut labels = Labels::new();
        if let Some(v) = volume {
            labels.insert(translate::VOLUME.to_string(), v.to_string());
        }
        let params = ListParams::default().labels(&selector(tenant, &labels));
        let list = self
            .snapshots(tenant)
            .list(&params)
            .await
            .map_err(|e| from_kube(BACKEND, ResourceKind::Snapshot, "*", e))?;
        let mut out: Vec<Snapshot> = list
            .items
            .iter()
            .filter(|vs| is_owned(&vs.metadata, tenant))
            .map(snapshot_of)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn delete_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()> {
        self.owned_snapshot(tenant, snapshot).await?;
        self.inner
            .writer
            .delete(
                &self.snapshots(tenant),
                snapshot,
                ResourceKind::Snapshot,
                snapshot,
            )
            .await?;
        Ok(())
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
        let owned = self.owned_volume(tenant, name).await?;
        if owned.dv.is_some() {
            return Ok(self.watch_import(tenant, name, owned));
        }
        let this = self.clone();
        let tenant = tenant.clone();
        let owner = tenant.clone();
        let states = self
            .inner
            .writer
            .states(&self.claims(&tenant), &names::claim(name))
            .filter_map(|s| async move { s.ok() })
            .take_while(move |s| {
                let alive = s.as_ref().is_some_and(|p| is_owned(&p.metadata, &owner));
                async move { alive }
            })
            .filter_map(|s| async move { s })
            .then(move |pvc| {
                let this = this.clone();
                async move { this.volume(pvc).await }
            });
        Ok(states.boxed())
    }
}
