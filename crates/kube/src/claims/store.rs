//! The I/O every claim-based storage backend does alike: finding the tenant's volumes among
//! claims and DataVolumes, clone and restore sources, VolumeSnapshots, cluster-scoped classes,
//! deleting a volume and waiting until its PersistentVolume is gone, watching a volume.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Resource;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kubecloud_core::{
    ByteSize, Error, Labels, ResourceKind, Result, Snapshot, Tenant, VolumeSource, VolumeSpec,
    validate_size, wait,
};
use kubecloud_models::cdi::DataVolume;
use kubecloud_models::snapshot::VolumeSnapshot;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{SNAPSHOT_GROUP, VOLUME, is_volume, snapshot_of, snapshot_size, spec_from_claim};
use crate::{Writer, cdi, ensure_owned, from_kube, is_owned, names, tenant_namespace};

/// A volume as found in Kubernetes: its claim and, for an import, its DataVolume (one of the two
/// may not exist yet, or any more).
#[derive(Clone, Debug, Default)]
pub struct Owned {
    /// The claim.
    pub pvc: Option<PersistentVolumeClaim>,
    /// The DataVolume of an import (only its metadata, with a default spec and no status, when
    /// read with [`Reading::Specs`] and the claim exists).
    pub dv: Option<DataVolume>,
}

/// What [`ClaimStore::resize_of`] found.
#[derive(Debug)]
pub enum Resize {
    /// The volume already has the size asked for.
    Unchanged(Owned),
    /// The volume grows: what was found of it, and its spec as it is now.
    Grow {
        /// What was found of the volume (its claim is `owned.claim()`).
        owned: Owned,
        /// Its spec (the current size).
        spec: VolumeSpec,
    },
}

impl Owned {
    /// The claim the volume stands for (for an import, with the DataVolume's metadata).
    pub fn claim(&self) -> PersistentVolumeClaim {
        match &self.dv {
            Some(dv) => super::claim_of_data_volume(dv, self.pvc.as_ref()),
            None => self.pvc.clone().unwrap_or_default(),
        }
    }

    /// Whether either object exists.
    pub fn exists(&self) -> bool {
        self.pvc.is_some() || self.dv.is_some()
    }

    /// The volume's name (its claim's, or its import's).
    pub fn name(&self) -> &str {
        match (&self.pvc, &self.dv) {
            (Some(pvc), _) => pvc.metadata.name.as_deref().unwrap_or_default(),
            (None, Some(dv)) => dv.metadata.name.as_deref().unwrap_or_default(),
            (None, None) => "",
        }
    }

    /// The name of the PersistentVolume bound to the claim, if any.
    pub fn volume_name(&self) -> Option<String> {
        self.pvc
            .as_ref()
            .and_then(|c| c.spec.as_ref())
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty())
    }
}

/// How much of a volume to read: its spec only, or its state too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// The spec only: an import's DataVolume as metadata while its claim exists.
    Specs,
    /// Everything.
    States,
}

/// A list of DataVolumes, or none when CDI is not installed (the resource is not found).
fn or_none_without_cdi<T: Default>(listed: Result<T>) -> Result<T> {
    match listed {
        Err(e) if e.is_not_found() => Ok(T::default()),
        other => other,
    }
}

/// The resource of a kind of the volume snapshot CRDs (`VolumeSnapshot`, `VolumeSnapshotClass`).
fn snapshot_resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(SNAPSHOT_GROUP, "v1", kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

fn selector(tenant: &Tenant, labels: &Labels) -> String {
    let mut s = crate::tenant_selector(tenant);
    for (k, v) in labels {
        s.push_str(&format!(",{k}={v}"));
    }
    s
}

/// The claims, DataVolumes and VolumeSnapshots of a storage backend's volumes, read and written
/// through its [`Writer`] (the writer's backend name is the one errors carry).
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
/// use std::time::Duration;
/// use kubecloud_core::{Labels, Tenant};
/// use kubecloud_kube::claims::{ClaimStore, Reading};
/// let store = ClaimStore::new(client, kubecloud_kube::Writer::new("csi"), Duration::from_secs(300));
/// let volumes = store.owned_volumes(&Tenant::new("acme")?, &Labels::new(), Reading::Specs).await?;
/// # let _ = volumes; Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClaimStore {
    client: kube::Client,
    writer: Writer,
    delete_timeout: Duration,
}

impl std::fmt::Debug for ClaimStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClaimStore")
            .field("backend", &self.writer.backend())
            .field("delete_timeout", &self.delete_timeout)
            .finish_non_exhaustive()
    }
}

impl ClaimStore {
    /// A store sending through `client` and `writer`; deleting a volume waits at most
    /// `delete_timeout`, all told.
    pub fn new(client: kube::Client, writer: Writer, delete_timeout: Duration) -> Self {
        Self {
            client,
            writer,
            delete_timeout,
        }
    }

    /// The resource of a kind of the volume snapshot CRDs.
    ///
    /// ```
    /// use kubecloud_kube::claims::ClaimStore;
    /// let r = ClaimStore::snapshot_resource("VolumeSnapshotClass", "volumesnapshotclasses");
    /// assert_eq!(r.api_version, "snapshot.storage.k8s.io/v1");
    /// ```
    pub fn snapshot_resource(kind: &str, plural: &str) -> ApiResource {
        snapshot_resource(kind, plural)
    }

    /// The writer.
    pub fn writer(&self) -> &Writer {
        &self.writer
    }

    /// The client.
    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    fn backend(&self) -> &str {
        self.writer.backend()
    }

    /// The claims of `tenant`'s namespace.
    pub fn claims(&self, tenant: &Tenant) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), &tenant_namespace(tenant))
    }

    /// The DataVolumes of `tenant`'s namespace (typed).
    pub fn data_volumes(&self, tenant: &Tenant) -> Api<DataVolume> {
        cdi::data_volume_api(&self.client, &tenant_namespace(tenant))
    }

    /// The VolumeSnapshots of `tenant`'s namespace (typed).
    pub fn snapshots(&self, tenant: &Tenant) -> Api<VolumeSnapshot> {
        Api::namespaced(self.client.clone(), &tenant_namespace(tenant))
    }

    /// The tenant's volumes carrying all `labels`, by name, as their claims and imports. With
    /// [`Reading::Specs`] the imports are read as metadata only (an import's spec is its
    /// claim's), whole only while CDI has not made the claim yet.
    pub async fn owned_volumes(
        &self,
        tenant: &Tenant,
        labels: &Labels,
        reading: Reading,
    ) -> Result<Vec<Owned>> {
        let params = ListParams::default().labels(&selector(tenant, labels));
        // Through the Writer: identical lists within one `shared_lists` scope (a plan, where the
        // compute backend may list DataVolumes too) are sent once.
        let (writer, kind) = (&self.writer, ResourceKind::Volume);
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
                .filter(|dv| is_owned(&dv.metadata, tenant) && is_volume(&dv.metadata))
                {
                    let name = dv.metadata.name.as_deref().unwrap_or_default();
                    owned.push(Owned {
                        pvc: claims.remove(name).cloned(),
                        dv: Some(dv.clone()),
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
                .filter(|dv| is_owned(&dv.metadata, tenant) && is_volume(&dv.metadata))
                {
                    let name = dv.metadata.name.clone().unwrap_or_default();
                    let pvc = claims.remove(name.as_str()).cloned();
                    let dv = match pvc {
                        Some(_) => DataVolume {
                            metadata: dv.metadata.clone(),
                            spec: Default::default(),
                            status: None,
                        },
                        None => match writer.get_opt(&data_volumes, &name, kind, &name).await? {
                            Some(whole) => whole,
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
                .filter(|c| is_volume(&c.metadata))
                .map(|c| Owned {
                    pvc: Some(c.clone()),
                    dv: None,
                }),
        );
        owned.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(owned)
    }

    /// The specs of the tenant's volumes matching `labels`, from their claims (or imports)
    /// alone: nothing of the storage system is read.
    pub async fn volume_specs(&self, tenant: &Tenant, labels: &Labels) -> Result<Vec<VolumeSpec>> {
        self.owned_volumes(tenant, labels, Reading::Specs)
            .await?
            .iter()
            .map(|o| spec_from_claim(&o.claim()))
            .collect()
    }

    /// What resizing volume `name` to `size` means, checked the same way for every storage
    /// backend: an import without its claim yet is `Conflict`, shrinking is `InvalidInput` on
    /// `size`, the same size changes nothing.
    pub async fn resize_of(&self, tenant: &Tenant, name: &str, size: ByteSize) -> Result<Resize> {
        validate_size("size", size)?;
        let owned = self.owned_volume(tenant, name).await?;
        if owned.pvc.is_none() {
            return Err(Error::conflict(
                ResourceKind::Volume,
                name,
                "the import has no claim yet; resize it once CDI has made it",
            ));
        }
        let spec = spec_from_claim(&owned.claim())?;
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
            return Ok(Resize::Unchanged(owned));
        }
        Ok(Resize::Grow { owned, spec })
    }

    /// The tenant's volume `volume`: its claim, and its DataVolume when it is (or was made by) an
    /// import of a storage backend; `NotFound` when neither exists or they are not the tenant's.
    pub async fn owned_volume(&self, tenant: &Tenant, volume: &str) -> Result<Owned> {
        let name = names::claim(volume);
        let pvc = self
            .writer
            .get_opt(&self.claims(tenant), &name, ResourceKind::Volume, volume)
            .await?;
        let dv = if pvc.as_ref().is_none_or(cdi::made_by_cdi) {
            or_none_without_cdi(
                self.writer
                    .get_opt(
                        &self.data_volumes(tenant),
                        &name,
                        ResourceKind::Volume,
                        volume,
                    )
                    .await,
            )?
            .filter(|dv| is_volume(&dv.metadata))
        } else {
            None
        };
        match (&dv, &pvc) {
            (Some(dv), _) => ensure_owned(&dv.metadata, tenant, ResourceKind::Volume, volume)?,
            (None, Some(pvc)) => {
                ensure_owned(&pvc.metadata, tenant, ResourceKind::Volume, volume)?;
            }
            (None, None) => return Err(Error::not_found(ResourceKind::Volume, volume)),
        }
        Ok(Owned { pvc, dv })
    }

    /// Whether a volume named like `spec` exists already in the tenant's namespace (its claim,
    /// or for an import its DataVolume, which CDI turns into a claim a moment later).
    pub async fn taken(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<bool> {
        let claim_name = names::claim(&spec.name);
        let kind = ResourceKind::Volume;
        if self
            .writer
            .get_opt(&self.claims(tenant), &claim_name, kind, &spec.name)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        if !matches!(spec.source, VolumeSource::Import { .. }) {
            return Ok(false);
        }
        Ok(self
            .writer
            .get_opt(&self.data_volumes(tenant), &claim_name, kind, &spec.name)
            .await?
            .is_some())
    }

    /// The tenant's claim of `volume`, or `NotFound`.
    pub async fn owned_claim(
        &self,
        tenant: &Tenant,
        volume: &str,
    ) -> Result<PersistentVolumeClaim> {
        let pvc = self
            .writer
            .get_opt(
                &self.claims(tenant),
                &names::claim(volume),
                ResourceKind::Volume,
                volume,
            )
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::Volume, volume))?;
        ensure_owned(&pvc.metadata, tenant, ResourceKind::Volume, volume)?;
        Ok(pvc)
    }

    /// The tenant's VolumeSnapshot `snapshot`, or `NotFound`.
    pub async fn owned_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<VolumeSnapshot> {
        let vs = self
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

    /// The source of a clone or restore, checked: it exists in the tenant and is not larger
    /// than `spec`. A clone's source claim, a restore's VolumeSnapshot; `None` otherwise.
    pub async fn check_source(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Source> {
        match &spec.source {
            VolumeSource::Blank | VolumeSource::Import { .. } => Ok(Source::None),
            VolumeSource::Clone { volume } => {
                let pvc = self.owned_claim(tenant, volume).await?;
                let source = spec_from_claim(&pvc)?;
                if spec.size < source.size {
                    return Err(Error::invalid(
                        "size",
                        format!(
                            "{} is smaller than the source volume {volume:?} ({})",
                            spec.size, source.size
                        ),
                    ));
                }
                Ok(Source::Claim(Box::new(pvc)))
            }
            VolumeSource::Snapshot { snapshot } => {
                let vs = self.owned_snapshot(tenant, snapshot).await?;
                let size = snapshot_size(&vs)?;
                if spec.size < size {
                    return Err(Error::invalid(
                        "size",
                        format!(
                            "{} is smaller than the snapshot {snapshot:?} ({size})",
                            spec.size
                        ),
                    ));
                }
                Ok(Source::Snapshot(Box::new(vs)))
            }
        }
    }

    /// Applies the cluster-scoped object `desired` (a StorageClass, a VolumeSnapshotClass) unless
    /// it holds already; `kind` and `name` name the domain resource in errors.
    pub async fn ensure_cluster_object<K>(
        &self,
        api: &Api<K>,
        desired: &K,
        kind: ResourceKind,
        name: &str,
    ) -> Result<()>
    where
        K: Resource
            + Clone
            + std::fmt::Debug
            + Serialize
            + DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let object = desired.meta().name.clone().unwrap_or_default();
        let current = self.writer.get_opt(api, &object, kind, name).await?;
        self.writer
            .apply_if_changed(api, current.as_ref(), desired, kind, name)
            .await?;
        Ok(())
    }

    /// The VolumeSnapshotClasses of the cluster (cluster-scoped).
    pub fn snapshot_classes(&self) -> Api<DynamicObject> {
        Api::all_with(
            self.client.clone(),
            &snapshot_resource("VolumeSnapshotClass", "volumesnapshotclasses"),
        )
    }

    /// Takes snapshot `snapshot` of the tenant's `volume` through the VolumeSnapshotClass
    /// `class`: refused when the volume is not the tenant's or the name is taken.
    pub async fn create_snapshot(
        &self,
        tenant: &Tenant,
        volume: &str,
        snapshot: &str,
        class: &str,
    ) -> Result<Snapshot> {
        let pvc = self.owned_claim(tenant, volume).await?;
        let api = self.snapshots(tenant);
        if self
            .writer
            .get_opt(&api, snapshot, ResourceKind::Snapshot, snapshot)
            .await?
            .is_some()
        {
            return Err(Error::already_exists(ResourceKind::Snapshot, snapshot));
        }
        let size = spec_from_claim(&pvc)?.size;
        let desired = super::volume_snapshot(tenant, volume, snapshot, size, class);
        let vs = self
            .writer
            .apply(&api, &desired, ResourceKind::Snapshot, snapshot)
            .await?;
        snapshot_of(&vs)
    }

    /// The tenant's snapshots (of `volume`, when given), by name.
    pub async fn list_snapshots(
        &self,
        tenant: &Tenant,
        volume: Option<&str>,
    ) -> Result<Vec<Snapshot>> {
        let mut labels = Labels::new();
        if let Some(v) = volume {
            labels.insert(VOLUME.to_string(), v.to_string());
        }
        let params = ListParams::default().labels(&selector(tenant, &labels));
        let list = self
            .snapshots(tenant)
            .list(&params)
            .await
            .map_err(|e| from_kube(self.backend(), ResourceKind::Snapshot, "*", e))?;
        let mut out = list
            .items
            .iter()
            .filter(|vs| is_owned(&vs.metadata, tenant))
            .map(snapshot_of)
            .collect::<Result<Vec<Snapshot>>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Deletes the tenant's snapshot `snapshot` and waits, through the shared watch, until it
    /// is gone: the snapshot controller keeps its finalizers until the driver has deleted the
    /// snapshot (or, for one a restore is reading, until the restore is done), so when this
    /// returns the snapshot is no longer listed. Within the store's delete timeout.
    pub async fn delete_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()> {
        let vs = self.owned_snapshot(tenant, snapshot).await?;
        let api = self.snapshots(tenant);
        let kind = ResourceKind::Snapshot;
        self.writer.delete(&api, snapshot, kind, snapshot).await?;
        let uid = vs.metadata.uid.as_deref();
        let gone = self
            .writer
            .wait_gone(&api, snapshot, uid, kind, snapshot, self.delete_timeout);
        wait::within(self.delete_timeout, kind, snapshot, "gone", gone).await
    }

    /// The PersistentVolumes bound to `claims`, in their order: one GET for one bound claim, one
    /// list of the PersistentVolumes for more.
    pub async fn bound_volumes(
        &self,
        claims: &[PersistentVolumeClaim],
    ) -> Result<Vec<Option<PersistentVolume>>> {
        let volume_name = |c: &PersistentVolumeClaim| {
            c.spec
                .as_ref()?
                .volume_name
                .clone()
                .filter(|v| !v.is_empty())
        };
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        if claims.iter().filter_map(volume_name).take(2).count() < 2 {
            let mut out = Vec::with_capacity(claims.len());
            for c in claims {
                out.push(match volume_name(c) {
                    Some(pv) => {
                        let name = c.metadata.name.clone().unwrap_or_default();
                        self.writer
                            .get_opt(&api, &pv, ResourceKind::Volume, &name)
                            .await?
                    }
                    None => None,
                });
            }
            return Ok(out);
        }
        let pvs = self
            .writer
            .list(&api, &ListParams::default(), ResourceKind::Volume, "*")
            .await?;
        let mut by_name: BTreeMap<String, PersistentVolume> = pvs
            .into_iter()
            .map(|pv| (pv.metadata.name.clone().unwrap_or_default(), pv))
            .collect();
        Ok(claims
            .iter()
            .map(|c| volume_name(c).and_then(|pv| by_name.remove(&pv)))
            .collect())
    }

    /// Deletes what `owned` found of the volume `name` (foreground propagation) and waits,
    /// through the shared watches of their kinds, until the DataVolume, the claim and its
    /// PersistentVolume are gone (the CSI driver deletes the PV, reclaim `Delete`, only after it
    /// has deleted the storage behind it): all of it within the store's delete timeout (or the
    /// deadline of the operation it is part of, if earlier), not a timeout per object. A claim a
    /// pod still uses keeps its `kubernetes.io/pvc-protection` finalizer; the timeout then says
    /// so.
    pub async fn delete_and_wait(&self, tenant: &Tenant, name: &str, owned: &Owned) -> Result<()> {
        let timeout = self.delete_timeout;
        let all = self.delete_and_wait_within(tenant, name, owned, timeout, true);
        wait::within(timeout, ResourceKind::Volume, name, "gone", all).await
    }

    /// Deletes what `owned` found of the volume `name` without waiting for it to go: for a
    /// forced delete, whose claim a pod may still use. Such a claim keeps its
    /// `kubernetes.io/pvc-protection` finalizer (from kube-apiserver's admission) until the pod
    /// is gone, however long that is; the claim and its storage go once the VM using it is
    /// deleted.
    pub async fn delete_without_waiting(
        &self,
        tenant: &Tenant,
        name: &str,
        owned: &Owned,
    ) -> Result<()> {
        self.delete_and_wait_within(tenant, name, owned, self.delete_timeout, false)
            .await
    }

    async fn delete_and_wait_within(
        &self,
        tenant: &Tenant,
        name: &str,
        owned: &Owned,
        timeout: Duration,
        wait: bool,
    ) -> Result<()> {
        let writer = &self.writer;
        let object = names::claim(name);
        let volume = owned.volume_name();
        let data_volumes = self.data_volumes(tenant);
        // The DataVolume first, so CDI does not make its claim again; in the foreground, it
        // stays until its claim is gone.
        let dv_uid = match owned.dv {
            Some(_) => {
                writer
                    .delete_foreground(&data_volumes, &object, ResourceKind::Volume, name)
                    .await?
            }
            None => None,
        };
        let claims = self.claims(tenant);
        let claim_uid = writer
            .delete_foreground(&claims, &object, ResourceKind::Volume, name)
            .await?;
        if !wait {
            tracing::debug!(%tenant, volume = name, "volume marked for deletion, maybe in use");
            return Ok(());
        }
        if dv_uid.is_some() {
            writer
                .wait_gone(
                    &data_volumes,
                    &object,
                    dv_uid.as_deref(),
                    ResourceKind::Volume,
                    name,
                    timeout,
                )
                .await?;
        }
        writer
            .wait_gone(
                &claims,
                &object,
                claim_uid.as_deref(),
                ResourceKind::Volume,
                name,
                timeout,
            )
            .await?;
        if let Some(volume) = volume {
            let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
            writer
                .wait_gone(&volumes, &volume, None, ResourceKind::Volume, name, timeout)
                .await?;
        }
        tracing::debug!(%tenant, volume = name, "volume deleted");
        Ok(())
    }

    /// The states of the volume `name` (found as `owned`), from the shared watches of its claim
    /// and, for an import, its DataVolume; ends when they are gone (or no longer the tenant's).
    pub fn watch(&self, tenant: &Tenant, name: &str, owned: Owned) -> BoxStream<'static, Owned> {
        let object = names::claim(name);
        let owner = tenant.clone();
        if owned.dv.is_none() {
            return self
                .writer
                .states(&self.claims(tenant), &object)
                .filter_map(|s| async move { logged(s) })
                .take_while(move |s| {
                    let alive = s.as_ref().is_some_and(|p| is_owned(&p.metadata, &owner));
                    async move { alive }
                })
                .filter_map(|s| async move {
                    s.map(|pvc| Owned {
                        pvc: Some(pvc),
                        dv: None,
                    })
                })
                .boxed();
        }
        enum Seen {
            Claim(Box<Option<PersistentVolumeClaim>>),
            Import(Box<Option<DataVolume>>),
        }
        let claims = self
            .writer
            .states(&self.claims(tenant), &object)
            .filter_map(|s| async move { logged(s).map(|c| Seen::Claim(Box::new(c))) });
        let imports = self
            .writer
            .states(&self.data_volumes(tenant), &object)
            .filter_map(|s| async move { logged(s).map(|d| Seen::Import(Box::new(d))) });
        futures::stream::select(claims, imports)
            .scan(owned, move |state, seen| {
                match seen {
                    Seen::Claim(c) => state.pvc = (*c).filter(|c| is_owned(&c.metadata, &owner)),
                    Seen::Import(d) => {
                        state.dv = (*d)
                            .filter(|d| is_owned(&d.metadata, &owner) && is_volume(&d.metadata));
                    }
                }
                let next = state.exists().then(|| state.clone());
                async move { next }
            })
            .boxed()
    }
}

/// A watched state, or `None` (logged) for an error: a state that does not decode is skipped,
/// the next one is read again.
fn logged<T>(state: Result<T>) -> Option<T> {
    state
        .inspect_err(|e| tracing::warn!(error = %e, "a watched volume state was not read"))
        .ok()
}

/// The checked source of a clone or restore ([`ClaimStore::check_source`]).
#[derive(Clone, Debug)]
pub enum Source {
    /// A blank volume or an import.
    None,
    /// A clone's source claim.
    Claim(Box<PersistentVolumeClaim>),
    /// A restore's VolumeSnapshot.
    Snapshot(Box<VolumeSnapshot>),
}
