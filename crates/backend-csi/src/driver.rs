//! The [`BlockStorage`] implementation: thin, sending claims, DataVolumes and VolumeSnapshots
//! through the shared [`kubecloud_kube::claims::ClaimStore`], and StorageClasses derived for a
//! replica count or RWX block where the driver takes them as class parameters.

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::{CSINode, CSIStorageCapacity, StorageClass, VolumeAttachment};
use kube::api::{Api, ListParams};
use kubecloud_core::{
    BlockStorage, ByteSize, Error, Labels, ResourceKind, Result, Snapshot, StorageCapabilities,
    StoragePool, Tenant, Volume, VolumeAttachment as Attachment, VolumeSource, VolumeSpec,
    validate_name,
};
use kubecloud_kube::claims::{Owned, Reading, Resize, Source, with_import};
use kubecloud_kube::ensure_namespace;

use crate::BACKEND;
use crate::builder::Csi;
use crate::status::{newest_warning, volume_of};
use crate::tiers::{TIER_LABEL, Tier};
use crate::translate::{self, Choice};

/// A list of a kind the API server does not serve (a cluster, or a double, without
/// `CSINode`, `CSIStorageCapacity` or `VolumeAttachment`) as an empty list: nothing of it exists.
fn or_empty<T>(listed: Result<Vec<T>>) -> Result<Vec<T>> {
    match listed {
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        other => other,
    }
}

impl Csi {
    /// The tier a volume's claim is on (its `kubecloud.io/tier` annotation, else its class's).
    fn tier_of_claim(&self, pvc: &PersistentVolumeClaim) -> Result<&Tier> {
        let spec = translate::spec_from_claim(pvc)?;
        let class = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone());
        self.inner
            .tiers
            .iter()
            .find(|t| Some(&t.name) == spec.tier.as_ref())
            .or_else(|| {
                self.inner
                    .tiers
                    .iter()
                    .find(|t| t.classes.iter().any(|c| Some(&c.name) == class.as_ref()))
            })
            .ok_or_else(|| {
                Error::failed(
                    ResourceKind::Volume,
                    spec.name.clone(),
                    format!(
                        "its tier {:?} (class {:?}) is not one of this backend's",
                        spec.tier, class
                    ),
                )
            })
    }

    /// The nodes running `driver`: the CSINode objects listing it (kubelet's record of the
    /// drivers registered on each node) or, where no CSINode lists it, every Node.
    async fn driver_nodes(&self, driver: &str) -> Result<BTreeSet<String>> {
        let writer = &self.inner.writer;
        let all = ListParams::default();
        let csi_nodes = or_empty(
            writer
                .list(
                    &Api::<CSINode>::all(self.inner.client.clone()),
                    &all,
                    ResourceKind::StoragePool,
                    driver,
                )
                .await,
        )?;
        let listed: BTreeSet<String> = csi_nodes
            .iter()
            .filter(|n| n.spec.drivers.iter().any(|d| d.name == driver))
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        if !listed.is_empty() {
            return Ok(listed);
        }
        let nodes = writer
            .list(
                &Api::<Node>::all(self.inner.client.clone()),
                &all,
                ResourceKind::StoragePool,
                driver,
            )
            .await?;
        Ok(nodes
            .iter()
            .filter_map(|n| n.metadata.name.clone())
            .collect())
    }

    /// The newest Warning event about claim `pvc` (why it is not bound, or not grown).
    async fn warning_of(&self, pvc: &PersistentVolumeClaim) -> Result<Option<String>> {
        let name = pvc.metadata.name.clone().unwrap_or_default();
        let namespace = pvc.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.inner.client.clone(), &namespace);
        let fields = format!(
            "involvedObject.kind=PersistentVolumeClaim,involvedObject.name={name},type=Warning"
        );
        let events = self
            .inner
            .writer
            .list(
                &api,
                &ListParams::default().fields(&fields),
                ResourceKind::Volume,
                &name,
            )
            .await?;
        let uid = pvc.metadata.uid.as_deref();
        let mine: Vec<Event> = events
            .into_iter()
            .filter(|e| uid.is_none() || e.involved_object.uid.as_deref() == uid)
            .collect();
        Ok(newest_warning(&mine))
    }

    /// The volume of one claim (reading its events while it is not ready).
    async fn volume_of_claim(&self, pvc: &PersistentVolumeClaim) -> Result<Volume> {
        let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let waits = !bound && self.waits_for_consumer(pvc);
        let volume = volume_of(pvc, None, false)?;
        if volume.status.phase == kubecloud_core::VolumePhase::Ready {
            return Ok(volume);
        }
        volume_of(pvc, self.warning_of(pvc).await?, waits)
    }

    /// Whether the class of `pvc` binds on first use (`volumeBindingMode: WaitForFirstConsumer`;
    /// a derived class binds as the tier's class it was derived from).
    fn waits_for_consumer(&self, pvc: &PersistentVolumeClaim) -> bool {
        let Ok(tier) = self.tier_of_claim(pvc) else {
            return false;
        };
        let class = pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref());
        let found = tier
            .classes
            .iter()
            .find(|c| Some(c.name.as_str()) == class)
            .unwrap_or(tier.base());
        found.object.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer")
    }

    async fn volume_owned(&self, owned: &Owned) -> Result<Volume> {
        let volume = match &owned.pvc {
            Some(_) => self.volume_of_claim(&owned.claim()).await?,
            None => volume_of(&owned.claim(), None, false)?,
        };
        Ok(match &owned.dv {
            Some(dv) => with_import(volume, dv),
            None => volume,
        })
    }

    /// The nodes where the volume bound to `pvc` is attached (its VolumeAttachments).
    async fn attached_on(&self, pvc: &PersistentVolumeClaim) -> Result<Vec<String>> {
        let Some(pv) = pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty())
        else {
            return Ok(Vec::new());
        };
        let api: Api<VolumeAttachment> = Api::all(self.inner.client.clone());
        let name = pvc.metadata.name.clone().unwrap_or_default();
        let attachments = or_empty(
            self.inner
                .writer
                .list(&api, &ListParams::default(), ResourceKind::Volume, &name)
                .await,
        )?;
        Ok(attachments
            .iter()
            .filter(|a| a.spec.source.persistent_volume_name.as_deref() == Some(pv.as_str()))
            .map(|a| a.spec.node_name.clone())
            .collect())
    }

    /// Checks a clone or restore source against `tier`: the driver clones (restores), and the
    /// source is on the same driver.
    fn check_source_on(&self, tier: &Tier, spec: &VolumeSpec, source: &Source) -> Result<()> {
        let refuse = |what: &str, capability: &str| {
            Error::unsupported(
                BACKEND,
                format!(
                    "create_volume ({what}) on driver {} ({}), class {:?} of tier {:?}",
                    tier.driver,
                    tier.profile.name,
                    tier.base().name,
                    tier.name
                ),
                capability,
            )
        };
        match source {
            Source::None => Ok(()),
            Source::Claim(pvc) => {
                if !tier.profile.clones {
                    return Err(refuse("clone", "clones"));
                }
                let from = self.tier_of_claim(pvc)?;
                if from.driver != tier.driver {
                    return Err(Error::invalid(
                        "source.volume",
                        format!(
                            "the source is on driver {} (tier {:?}); a clone is made by the source's driver, so tier {:?} (driver {}) cannot",
                            from.driver, from.name, tier.name, tier.driver
                        ),
                    ));
                }
                Ok(())
            }
            Source::Snapshot(vs) => {
                if !tier.snapshots() {
                    return Err(refuse("restore from a snapshot", "snapshots"));
                }
                let class = vs.spec.volume_snapshot_class_name.as_deref();
                let same_driver = self
                    .inner
                    .tiers
                    .iter()
                    .any(|t| t.driver == tier.driver && t.snapshot_class.as_deref() == class);
                if !same_driver {
                    return Err(Error::invalid(
                        "source.snapshot",
                        format!(
                            "snapshot {:?} was taken with class {class:?}, not by driver {} of tier {:?}",
                            spec.name, tier.driver, tier.name
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Everything `create_volume` checks before it writes, without reading the cluster: valid,
    /// a known tier, a class for it. Returns the tier and the class.
    pub(crate) fn plan(&self, spec: &VolumeSpec) -> Result<(&Tier, Choice)> {
        spec.validate()?;
        let tier = self.tier(spec.tier.as_deref())?;
        let choice = translate::choose_class(tier, spec)?;
        if matches!(spec.source, VolumeSource::Import { .. })
            && !self.inner.capabilities.http_import
        {
            return Err(Error::unsupported(
                BACKEND,
                "create_volume (http import)",
                "http_import",
            ));
        }
        Ok((tier, choice))
    }

    async fn ensure_class(&self, class: &StorageClass) -> Result<()> {
        let api: Api<StorageClass> = Api::all(self.inner.client.clone());
        let name = class.metadata.name.clone().unwrap_or_default();
        self.inner
            .store
            .ensure_cluster_object(&api, class, ResourceKind::StoragePool, &name)
            .await
    }
}

#[async_trait]
impl BlockStorage for Csi {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn system_namespaces(&self) -> Vec<String> {
        self.inner.system_namespaces.clone()
    }

    fn capabilities(&self) -> StorageCapabilities {
        self.inner.capabilities
    }

    fn tier_names(&self) -> Option<Vec<String>> {
        Some(self.inner.tiers.iter().map(|t| t.name.clone()).collect())
    }

    async fn create_volume(&self, tenant: &Tenant, spec: &VolumeSpec) -> Result<Volume> {
        let (tier, choice) = self.plan(spec)?;
        if let crate::profiles::Replication::ClassParameter(_) = tier.profile.replication
            && spec.replicas > 1
        {
            let nodes = self.driver_nodes(&tier.driver).await?;
            if usize::from(spec.replicas) > nodes.len() {
                return Err(Error::exhausted(
                    ResourceKind::StoragePool,
                    &tier.name,
                    format!(
                        "{} replicas need {} nodes running driver {}; {} do ({})",
                        spec.replicas,
                        spec.replicas,
                        tier.driver,
                        nodes.len(),
                        nodes.iter().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
        }
        let store = &self.inner.store;
        if store.taken(tenant, spec).await? {
            return Err(Error::already_exists(ResourceKind::Volume, &spec.name));
        }
        let source = store.check_source(tenant, spec).await?;
        self.check_source_on(tier, spec, &source)?;
        ensure_namespace(&self.inner.client, &self.inner.writer, tenant).await?;
        if let Choice::Derived(class) = &choice {
            self.ensure_class(class).await?;
        }
        let class = choice.class_name();
        if matches!(spec.source, VolumeSource::Import { .. }) {
            let desired = translate::data_volume(tenant, spec, &tier.name, &class);
            let dv = self
                .inner
                .writer
                .apply(
                    &store.data_volumes(tenant),
                    &desired,
                    ResourceKind::Volume,
                    &spec.name,
                )
                .await?;
            tracing::debug!(%tenant, volume = %spec.name, %class, driver = %tier.driver, "volume import asked of CDI");
            let claim = translate::claim_of_data_volume(&dv, None);
            return Ok(with_import(volume_of(&claim, None, false)?, &dv));
        }
        let desired = translate::claim(tenant, spec, &tier.name, &class);
        let pvc = self
            .inner
            .writer
            .apply(
                &store.claims(tenant),
                &desired,
                ResourceKind::Volume,
                &spec.name,
            )
            .await?;
        tracing::debug!(%tenant, volume = %spec.name, %class, driver = %tier.driver, "volume claimed");
        self.volume_of_claim(&pvc).await
    }

    async fn attach_volume(&self, tenant: &Tenant, name: &str) -> Result<Attachment> {
        let owned = self.inner.store.owned_volume(tenant, name).await?;
        let spec = translate::spec_from_claim(&owned.claim())?;
        Ok(translate::volume_attachment(&spec))
    }

    async fn get_volume(&self, tenant: &Tenant, name: &str) -> Result<Volume> {
        let owned = self.inner.store.owned_volume(tenant, name).await?;
        self.volume_owned(&owned).await
    }

    async fn list_volumes(&self, tenant: &Tenant, labels: &Labels) -> Result<Vec<Volume>> {
        let owned = self
            .inner
            .store
            .owned_volumes(tenant, labels, Reading::States)
            .await?;
        let mut out = Vec::with_capacity(owned.len());
        for o in &owned {
            out.push(self.volume_owned(o).await?);
        }
        Ok(out)
    }

    async fn list_volume_specs(&self, tenant: &Tenant, labels: &Labels) -> Result<Vec<VolumeSpec>> {
        // The spec is the claim's (or the import's): nothing of the storage system is read.
        self.inner.store.volume_specs(tenant, labels).await
    }

    async fn resize_volume(&self, tenant: &Tenant, name: &str, size: ByteSize) -> Result<Volume> {
        let (pvc, owned, mut spec) = match self.inner.store.resize_of(tenant, name, size).await? {
            Resize::Unchanged(owned) => return self.volume_owned(&owned).await,
            Resize::Grow { owned, spec } => (owned.claim(), owned, spec),
        };
        let tier = self.tier_of_claim(&pvc)?;
        let class_name = pvc
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
            .unwrap_or_default();
        let classes: Api<StorageClass> = Api::all(self.inner.client.clone());
        let class = self
            .inner
            .writer
            .get_opt(&classes, &class_name, ResourceKind::Volume, name)
            .await?;
        let expands = class
            .as_ref()
            .is_some_and(|c| c.allow_volume_expansion == Some(true));
        if !tier.profile.expansion || !expands {
            return Err(Error::unsupported(
                BACKEND,
                format!(
                    "resize_volume on driver {} ({}), class {class_name:?} (allowVolumeExpansion is not true)",
                    tier.driver, tier.profile.name
                ),
                "resize",
            ));
        }
        if !tier.profile.online_expansion {
            let nodes = self.attached_on(&pvc).await?;
            if !nodes.is_empty() {
                return Err(Error::conflict(
                    ResourceKind::Volume,
                    name,
                    format!(
                        "driver {} ({}) grows volumes only while detached; it is attached on {}",
                        tier.driver,
                        tier.profile.name,
                        nodes.join(", ")
                    ),
                ));
            }
        }
        spec.size = size;
        let tier_name = spec
            .tier
            .clone()
            .unwrap_or_else(|| self.inner.default_tier.clone());
        let desired = translate::claim(tenant, &spec, &tier_name, &class_name);
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
            .volume_owned(&Owned {
                pvc: Some(pvc),
                dv: owned.dv,
            })
            .await?;
        volume.spec.size = size;
        Ok(volume)
    }

    async fn delete_volume(&self, tenant: &Tenant, name: &str, force: bool) -> Result<()> {
        let owned = self.inner.store.owned_volume(tenant, name).await?;
        if !force && let Some(pvc) = &owned.pvc {
            let nodes = self.attached_on(pvc).await?;
            if !nodes.is_empty() {
                return Err(Error::conflict(
                    ResourceKind::Volume,
                    name,
                    format!(
                        "it is attached (VolumeAttachment) on {}; delete with force to delete anyway",
                        nodes.join(", ")
                    ),
                ));
            }
        }
        if force {
            // Forced: the volume may be in use, and a claim a pod uses keeps kube-apiserver's
            // `kubernetes.io/pvc-protection` finalizer until the pod is gone, so waiting here
            // could only wait for the timeout. The claim and its storage go once nothing uses
            // them.
            return self
                .inner
                .store
                .delete_without_waiting(tenant, name, &owned)
                .await;
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
        if !self.inner.capabilities.snapshots {
            return Err(Error::unsupported(BACKEND, "volumes.snapshot", "snapshots"));
        }
        let pvc = self.inner.store.owned_claim(tenant, volume).await?;
        let tier = self.tier_of_claim(&pvc)?;
        let Some(class) = tier.snapshot_class.as_deref().filter(|_| tier.snapshots()) else {
            return Err(Error::unsupported(
                BACKEND,
                format!(
                    "volumes.snapshot on driver {} ({}), class {:?} of tier {:?}{}",
                    tier.driver,
                    tier.profile.name,
                    tier.base().name,
                    tier.name,
                    if tier.profile.snapshots {
                        " (no VolumeSnapshotClass of the driver)"
                    } else {
                        " (the driver restores no snapshot)"
                    }
                ),
                "snapshots",
            ));
        };
        self.inner
            .store
            .create_snapshot(tenant, volume, snapshot, class)
            .await
    }

    async fn list_snapshots(&self, tenant: &Tenant, volume: Option<&str>) -> Result<Vec<Snapshot>> {
        self.inner.store.list_snapshots(tenant, volume).await
    }

    async fn delete_snapshot(&self, tenant: &Tenant, snapshot: &str) -> Result<()> {
        self.inner.store.delete_snapshot(tenant, snapshot).await
    }

    async fn list_pools(&self, _tenant: &Tenant) -> Result<Vec<StoragePool>> {
        let writer = &self.inner.writer;
        let client = &self.inner.client;
        let kind = ResourceKind::StoragePool;
        let all = ListParams::default();
        let capacities = or_empty(
            writer
                .list(
                    &Api::<CSIStorageCapacity>::all(client.clone()),
                    &all,
                    kind,
                    "*",
                )
                .await,
        )?;
        let volumes = writer
            .list(
                &Api::<PersistentVolume>::all(client.clone()),
                &all,
                kind,
                "*",
            )
            .await?;
        let classes = writer
            .list(&Api::<StorageClass>::all(client.clone()), &all, kind, "*")
            .await?;
        let mut out = Vec::new();
        for tier in &self.inner.tiers {
            // The tier's classes now: those read when connecting, and those derived for it since.
            let mine: BTreeSet<String> = classes
                .iter()
                .filter(|c| {
                    tier.classes
                        .iter()
                        .any(|t| Some(&t.name) == c.metadata.name.as_ref())
                        || (c.provisioner == tier.driver
                            && c.metadata.labels.as_ref().and_then(|l| l.get(TIER_LABEL))
                                == Some(&tier.name))
                })
                .filter_map(|c| c.metadata.name.clone())
                .collect();
            // The driver reports what is available per class and topology segment; classes of
            // one tier draw on the same storage, so the largest report is the tier's.
            let free = mine
                .iter()
                .map(|class| {
                    capacities
                        .iter()
                        .filter(|c| &c.storage_class_name == class)
                        .filter_map(|c| c.capacity.as_ref())
                        .filter_map(|q| translate::bytes_of(&q.0).ok())
                        .map(|b| b.as_u64())
                        .sum::<u64>()
                })
                .max()
                .unwrap_or(0);
            let used: u64 = volumes
                .iter()
                .filter_map(|pv| pv.spec.as_ref())
                .filter(|s| {
                    s.storage_class_name
                        .as_ref()
                        .is_some_and(|c| mine.contains(c))
                })
                .filter_map(|s| s.capacity.as_ref()?.get("storage"))
                .filter_map(|q| translate::bytes_of(&q.0).ok())
                .map(|b| b.as_u64())
                .sum();
            let on: Vec<String> = self.driver_nodes(&tier.driver).await?.into_iter().collect();
            // Without the driver's CSIStorageCapacity the capacity is unknown: zero, as the
            // capability `pool_capacity` says.
            let (capacity, free) = if tier.capacity_tracked {
                (free + used, free)
            } else {
                (0, 0)
            };
            out.push(StoragePool {
                name: tier.name.clone(),
                driver: tier.driver.clone(),
                nodes: on,
                capacity: ByteSize(capacity),
                free: ByteSize(free),
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
                async move { this.volume_owned(&owned).await }
            })
            .boxed())
    }
}
