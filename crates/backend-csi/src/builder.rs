//! The builder and the backend handle.

use std::sync::Arc;
use std::time::Duration;

use crate::snapshot_class::VolumeSnapshotClass;
use k8s_openapi::api::storage::v1::{CSIDriver, CSIStorageCapacity, StorageClass};
use kube::api::{Api, DynamicObject, ListParams};
use kubecloud_core::{Error, ResourceKind, Result, StorageCapabilities};
use kubecloud_kube::claims::ClaimStore;
use kubecloud_kube::{RetryPolicy, Writer};

use crate::BACKEND;
use crate::tiers::{Cluster, Tier, tiers_of};

/// Options for [`Csi`]; validated by [`CsiBuilder::build`].
#[must_use]
pub struct CsiBuilder {
    client: kube::Client,
    cluster: Cluster,
    default_tier: Option<String>,
    retry: RetryPolicy,
    http_import: bool,
    snapshot_crds: bool,
    delete_timeout: Duration,
    system_namespaces: Vec<String>,
}

impl CsiBuilder {
    /// The cluster's StorageClasses (the tiers are made of those of CSI drivers).
    pub fn storage_classes(mut self, classes: Vec<StorageClass>) -> Self {
        self.cluster.classes = classes;
        self
    }

    /// The cluster's VolumeSnapshotClasses: a tier offers snapshots when one of its driver
    /// exists.
    pub fn snapshot_classes(mut self, classes: Vec<VolumeSnapshotClass>) -> Self {
        self.cluster.snapshot_classes = classes;
        self
    }

    /// The cluster's CSIDriver objects: classes of a driver without a profile count only when
    /// its CSIDriver provisions persistent volumes.
    pub fn drivers(mut self, drivers: Vec<CSIDriver>) -> Self {
        self.cluster.drivers = drivers;
        self
    }

    /// Whether the cluster serves `CSIStorageCapacity` (default off: pools then report no
    /// capacity; [`Csi::discover`] finds out).
    pub fn capacity_served(mut self, served: bool) -> Self {
        self.cluster.capacity_served = served;
        self
    }

    /// The tier of volumes that name none (default: the tier of the cluster's default class,
    /// else the first by name).
    pub fn default_tier(mut self, tier: impl Into<String>) -> Self {
        self.default_tier = Some(tier.into());
        self
    }

    /// Whether imports from http(s) URLs are offered (default on; off without CDI).
    pub fn http_import(mut self, offered: bool) -> Self {
        self.http_import = offered;
        self
    }

    /// Whether the volume snapshot CRDs are installed (default on): without them no snapshots.
    pub fn snapshots(mut self, installed: bool) -> Self {
        self.snapshot_crds = installed;
        self
    }

    /// Retries of temporary failures.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// How long deleting a volume waits, all told, until its claim and PersistentVolume are
    /// gone (default 5 minutes).
    pub fn delete_timeout(mut self, timeout: Duration) -> Self {
        self.delete_timeout = timeout;
        self
    }

    /// The namespaces the storage system runs in (its driver's pods): no tenant takes them.
    pub fn system_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.system_namespaces.push(namespace.into());
        self
    }

    /// Reads the tiers from the classes and builds the backend (nothing is sent). No tier
    /// (no class of a CSI driver): `InvalidInput` on `tiers`; an unknown default tier:
    /// `InvalidInput` on `default_tier`.
    pub fn build(self) -> Result<Csi> {
        let tiers = tiers_of(&self.cluster)?;
        if tiers.is_empty() {
            return Err(Error::invalid(
                "tiers",
                "no StorageClass of a CSI driver: a known driver's, or one whose CSIDriver provisions persistent volumes",
            ));
        }
        let default_tier = match self.default_tier {
            Some(t) if tiers.iter().any(|x| x.name == t) => t,
            Some(t) => {
                return Err(Error::invalid(
                    "default_tier",
                    format!("{t:?} is not a tier"),
                ));
            }
            None => tiers
                .iter()
                .find(|t| t.is_default())
                .unwrap_or(&tiers[0])
                .name
                .clone(),
        };
        let capabilities =
            crate::capabilities::capabilities(&tiers, self.http_import, self.snapshot_crds);
        let writer = Writer::new(BACKEND).with_retry(self.retry);
        Ok(Csi {
            inner: Arc::new(Inner {
                store: ClaimStore::new(self.client.clone(), writer.clone(), self.delete_timeout),
                client: self.client,
                writer,
                tiers,
                default_tier,
                capabilities,
                system_namespaces: self.system_namespaces,
            }),
        })
    }
}

impl std::fmt::Debug for CsiBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsiBuilder")
            .field("classes", &self.cluster.classes.len())
            .field("default_tier", &self.default_tier)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub client: kube::Client,
    pub writer: Writer,
    pub store: ClaimStore,
    pub tiers: Vec<Tier>,
    pub default_tier: String,
    pub capabilities: StorageCapabilities,
    pub system_namespaces: Vec<String>,
}

/// Block storage on the cluster's CSI drivers, through Kubernetes alone. Cheap to clone. See
/// the crate docs.
#[derive(Clone)]
pub struct Csi {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Csi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tiers: Vec<(&str, &str)> = self
            .inner
            .tiers
            .iter()
            .map(|t| (t.name.as_str(), t.driver.as_str()))
            .collect();
        f.debug_struct("Csi")
            .field("tiers", &tiers)
            .field("default_tier", &self.inner.default_tier)
            .finish()
    }
}

fn listing(what: &str, e: kube::Error) -> Error {
    kubecloud_kube::from_kube(BACKEND, ResourceKind::StoragePool, what, e)
}

impl Csi {
    /// A builder writing through `client`, with no classes yet.
    pub fn builder(client: kube::Client) -> CsiBuilder {
        CsiBuilder {
            client,
            cluster: Cluster::default(),
            default_tier: None,
            retry: RetryPolicy::default(),
            http_import: true,
            snapshot_crds: true,
            delete_timeout: Duration::from_secs(300),
            system_namespaces: Vec::new(),
        }
    }

    /// A builder with the cluster's StorageClasses, CSIDrivers and (when `snapshot_crds`)
    /// VolumeSnapshotClasses read through `client`, and whether it serves
    /// `CSIStorageCapacity` (four lists; nothing is written).
    ///
    /// ```no_run
    /// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// let storage = kubecloud_csi::Csi::discover(client, true).await?.build()?;
    /// # let _ = storage; Ok(()) }
    /// ```
    pub async fn discover(client: kube::Client, snapshot_crds: bool) -> Result<CsiBuilder> {
        let params = ListParams::default();
        let classes = Api::<StorageClass>::all(client.clone())
            .list(&params)
            .await
            .map_err(|e| listing("storageclasses", e))?
            .items;
        // CSIDriver is served by every supported Kubernetes (storage.k8s.io/v1 since 1.18); a
        // server without it has no CSIDriver objects to read.
        let drivers = match Api::<CSIDriver>::all(client.clone()).list(&params).await {
            Ok(list) => list.items,
            Err(e) if kubecloud_kube::is_not_found(&e) => Vec::new(),
            Err(e) => return Err(listing("csidrivers", e)),
        };
        // Whether capacities can be read at all (storage.k8s.io/v1 since 1.24).
        let capacity_served = match Api::<CSIStorageCapacity>::all(client.clone())
            .list(&ListParams::default().limit(1))
            .await
        {
            Ok(_) => true,
            Err(e) if kubecloud_kube::is_not_found(&e) => false,
            Err(e) => return Err(listing("csistoragecapacities", e)),
        };
        let snapshot_classes = if snapshot_crds {
            let api: Api<DynamicObject> = Api::all_with(
                client.clone(),
                &ClaimStore::snapshot_resource("VolumeSnapshotClass", "volumesnapshotclasses"),
            );
            api.list(&params)
                .await
                .map_err(|e| listing("volumesnapshotclasses", e))?
                .items
                .iter()
                .map(|c| {
                    let name = c.metadata.name.as_deref().unwrap_or_default();
                    kubecloud_kube::convert(c, BACKEND, ResourceKind::StoragePool, name)
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(Self::builder(client)
            .capacity_served(capacity_served)
            .storage_classes(classes)
            .drivers(drivers)
            .snapshot_classes(snapshot_classes)
            .snapshots(snapshot_crds))
    }

    /// The tiers, by name.
    pub fn tiers(&self) -> &[Tier] {
        &self.inner.tiers
    }

    /// The tier of volumes that name none.
    pub fn default_tier(&self) -> &str {
        &self.inner.default_tier
    }

    /// Tier `name` (the default when `None`); unknown: `InvalidInput` on `tier`.
    pub fn tier(&self, name: Option<&str>) -> Result<&Tier> {
        let name = name.unwrap_or(&self.inner.default_tier);
        self.inner
            .tiers
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.inner.tiers.iter().map(|t| t.name.as_str()).collect();
                Error::invalid(
                    "tier",
                    format!("unknown tier {name:?}; known tiers: {}", known.join(", ")),
                )
            })
    }
}
