//! Volumes as PersistentVolumeClaims, for every storage backend that serves its volumes through
//! a CSI driver (LINSTOR's, or any other): the pure translation of a [`VolumeSpec`] into its
//! claim, its CDI DataVolume (imports) and its VolumeSnapshots, and back ([`spec_from_claim`]);
//! and, in [`ClaimStore`], the I/O every such backend does the same way (finding a tenant's
//! volumes among claims and DataVolumes, checking clone and restore sources, snapshots, deleting
//! and waiting until the PersistentVolume is gone, watching a volume).
//!
//! | domain | Kubernetes |
//! |---|---|
//! | volume `v` of tenant `n` | PVC `names::claim(v)` in namespace `n`: volume mode, access mode, size in bytes, the class; `dataSource` PVC (clone) or VolumeSnapshot (restore); the spec's replicas, tier and source in `kubecloud.io/*` annotations |
//! | volume `v` imported from `url` | DataVolume `names::claim(v)` (`cdi.kubevirt.io/v1beta1`) in namespace `n`: `source.http.url`, `storage` with the same class, size, access and volume mode as the PVC; the same labels and annotations (`kubecloud.io/source: import:<url>`). CDI makes the PVC of the same name |
//! | snapshot `s` of `v` | VolumeSnapshot `s` in namespace `n` of claim `names::claim(v)`, of the backend's VolumeSnapshotClass |

mod store;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, TypedLocalObjectReference,
    TypedObjectReference, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kubecloud_core::{
    AccessMode, ByteSize, Error, Labels, Result, Snapshot, Tenant, Volume, VolumeMode, VolumePhase,
    VolumeSource, VolumeSpec,
};
use kubecloud_models::cdi::DataVolume;
use kubecloud_models::cdi::data_volume::DataVolumeStorage;
use kubecloud_models::snapshot::VolumeSnapshot;
use kubecloud_models::snapshot::volume_snapshot::{VolumeSnapshotSource, VolumeSnapshotSpec};

use crate::{MANAGED_BY, NAME, TENANT, names, ownership_labels, tenant_namespace};

pub use store::{ClaimStore, Owned, Reading, Resize, Source};

/// Annotation: the spec's replica count.
pub const REPLICAS: &str = "kubecloud.io/replicas";
/// Annotation: the spec's tier.
pub const TIER: &str = "kubecloud.io/tier";
/// Annotation: the spec's source (`clone:<volume>`, `snapshot:<snapshot>`, `import:<url>`).
pub const SOURCE: &str = "kubecloud.io/source";
/// Label on VolumeSnapshots: the volume it was taken of.
pub const VOLUME: &str = "kubecloud.io/volume";
/// Annotation on VolumeSnapshots: the volume's size when taken, in bytes.
pub const SIZE: &str = "kubecloud.io/size";
/// The API group of the CSI volume snapshot CRDs.
pub const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";

/// CDI's DataVolume API version.
pub const DATA_VOLUME_API: &str = crate::cdi::API_VERSION;

/// Whether `spec` is a read-write-many block volume (what a VM needs to live-migrate).
///
/// ```
/// use kubecloud_core::{AccessMode, ByteSize, VolumeSpec};
/// let spec = VolumeSpec::blank("root", ByteSize::gib(1)).with_access(AccessMode::ReadWriteMany);
/// assert!(kubecloud_kube::claims::is_rwx_block(&spec));
/// ```
pub fn is_rwx_block(spec: &VolumeSpec) -> bool {
    spec.access == AccessMode::ReadWriteMany && spec.mode == VolumeMode::Block
}

/// The labels of a volume's objects: the spec's and the ownership labels.
pub fn labels_of(tenant: &Tenant, spec: &VolumeSpec) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone();
    labels.extend(ownership_labels(tenant, &spec.name));
    labels
}

/// The annotations of a volume's objects: replicas, tier and source.
pub fn annotations_of(spec: &VolumeSpec, tier: &str) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::from([
        (REPLICAS.to_string(), spec.replicas.to_string()),
        (TIER.to_string(), tier.to_string()),
    ]);
    let source = match &spec.source {
        VolumeSource::Blank => None,
        VolumeSource::Import { url } => Some(format!("import:{url}")),
        VolumeSource::Clone { volume } => Some(format!("clone:{volume}")),
        VolumeSource::Snapshot { snapshot } => Some(format!("snapshot:{snapshot}")),
    };
    if let Some(source) = source {
        annotations.insert(SOURCE.into(), source);
    }
    annotations
}

/// The Kubernetes access mode of `spec` (`ReadWriteOnce`, `ReadWriteMany`).
pub fn access_mode(spec: &VolumeSpec) -> &'static str {
    match spec.access {
        AccessMode::ReadWriteOnce => "ReadWriteOnce",
        AccessMode::ReadWriteMany => "ReadWriteMany",
    }
}

/// The Kubernetes volume mode of `spec` (`Block`, `Filesystem`).
pub fn volume_mode(spec: &VolumeSpec) -> &'static str {
    match spec.mode {
        VolumeMode::Block => "Block",
        VolumeMode::Filesystem => "Filesystem",
    }
}

/// The PVC of `spec` in `tenant`'s namespace, provisioned from `class`.
pub fn claim(tenant: &Tenant, spec: &VolumeSpec, tier: &str, class: &str) -> PersistentVolumeClaim {
    let labels = labels_of(tenant, spec);
    let annotations = annotations_of(spec, tier);
    let data_source = match &spec.source {
        VolumeSource::Clone { volume } => Some(TypedLocalObjectReference {
            api_group: None,
            kind: "PersistentVolumeClaim".into(),
            name: names::claim(volume),
        }),
        VolumeSource::Snapshot { snapshot } => Some(TypedLocalObjectReference {
            api_group: Some("snapshot.storage.k8s.io".into()),
            kind: "VolumeSnapshot".into(),
            name: snapshot.clone(),
        }),
        VolumeSource::Blank | VolumeSource::Import { .. } => None,
    };
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(names::claim(&spec.name)),
            namespace: Some(tenant_namespace(tenant)),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec![access_mode(spec).into()]),
            volume_mode: Some(volume_mode(spec).into()),
            storage_class_name: Some(class.to_string()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.size.as_u64().to_string()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            data_source,
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

/// The CDI DataVolume importing `spec`'s `source` URL into a claim of `class` in `tenant`'s
/// namespace. It carries the same labels and annotations as [`claim`] would, so the volume reads
/// back the same; CDI makes the PVC (same name) and the CSI driver provisions it.
///
/// ```
/// use kubecloud_core::{ByteSize, Tenant, VolumeSource, VolumeSpec};
/// let spec = VolumeSpec::blank("root", ByteSize::gib(10))
///     .with_source(VolumeSource::Import { url: "https://images.example.com/os.qcow2".into() });
/// let dv = kubecloud_kube::claims::data_volume(&Tenant::new("acme").unwrap(), &spec, "fast", "fast-r1");
/// let source = dv.spec.source.as_ref().and_then(|s| s.http.as_ref()).unwrap();
/// assert_eq!(source.url, "https://images.example.com/os.qcow2");
/// let storage = dv.spec.storage.as_ref().unwrap();
/// assert_eq!(storage.storage_class_name.as_deref(), Some("fast-r1"));
/// ```
pub fn data_volume(tenant: &Tenant, spec: &VolumeSpec, tier: &str, class: &str) -> DataVolume {
    let url = match &spec.source {
        VolumeSource::Import { url } => url.as_str(),
        _ => "",
    };
    let mut dv = DataVolume::new(
        &names::claim(&spec.name),
        crate::cdi::http_import_spec(&crate::cdi::HttpImport {
            url,
            size: spec.size.as_u64().to_string(),
            access: spec.access,
            mode: spec.mode,
            storage_class: Some(class),
        }),
    );
    dv.metadata.namespace = Some(tenant_namespace(tenant));
    dv.metadata.labels = Some(labels_of(tenant, spec));
    dv.metadata.annotations = Some(annotations_of(spec, tier));
    dv
}

/// The claim spec a DataVolume's `storage` describes (what CDI puts into the claim it makes,
/// before the class fills in the rest).
fn claim_spec_of(storage: &DataVolumeStorage) -> PersistentVolumeClaimSpec {
    let quantities = |m: &Option<BTreeMap<String, IntOrString>>| {
        m.as_ref().map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let q = match v {
                        IntOrString::Int(n) => n.to_string(),
                        IntOrString::String(s) => s.clone(),
                    };
                    (k.clone(), Quantity(q))
                })
                .collect()
        })
    };
    PersistentVolumeClaimSpec {
        access_modes: storage.access_modes.clone(),
        data_source: storage
            .data_source
            .as_ref()
            .map(|d| TypedLocalObjectReference {
                api_group: d.api_group.clone(),
                kind: d.kind.clone(),
                name: d.name.clone(),
            }),
        data_source_ref: storage
            .data_source_ref
            .as_ref()
            .map(|d| TypedObjectReference {
                api_group: d.api_group.clone(),
                kind: d.kind.clone(),
                name: d.name.clone(),
                namespace: d.namespace.clone(),
            }),
        resources: storage
            .resources
            .as_ref()
            .map(|r| VolumeResourceRequirements {
                limits: quantities(&r.limits),
                requests: quantities(&r.requests),
            }),
        selector: storage.selector.as_ref().map(|s| LabelSelector {
            match_expressions: s.match_expressions.as_ref().map(|e| {
                e.iter()
                    .map(|e| LabelSelectorRequirement {
                        key: e.key.clone(),
                        operator: e.operator.clone(),
                        values: e.values.clone(),
                    })
                    .collect()
            }),
            match_labels: s.match_labels.clone(),
        }),
        storage_class_name: storage.storage_class_name.clone(),
        volume_mode: storage.volume_mode.clone(),
        volume_name: storage.volume_name.clone(),
        ..PersistentVolumeClaimSpec::default()
    }
}

/// The claim a volume imported by DataVolume `dv` stands for: the PVC CDI made (`pvc`, when it
/// exists yet) or, before that, one described by the DataVolume's `storage`; with the
/// DataVolume's labels and kubecloud annotations (CDI keeps its own on the claim).
pub fn claim_of_data_volume(
    dv: &DataVolume,
    pvc: Option<&PersistentVolumeClaim>,
) -> PersistentVolumeClaim {
    let mut claim = match pvc {
        Some(p) => p.clone(),
        None => {
            let mut c = PersistentVolumeClaim::default();
            c.metadata.name = dv.metadata.name.clone();
            c.metadata.namespace = dv.metadata.namespace.clone();
            c.spec = dv.spec.storage.as_ref().map(claim_spec_of);
            c
        }
    };
    claim.metadata.labels = dv.metadata.labels.clone();
    let ours = dv.metadata.annotations.as_ref();
    let annotations = claim.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for key in [REPLICAS, TIER, SOURCE] {
        if let Some(v) = ours.and_then(|o| o.get(key)) {
            annotations.insert(key.to_string(), v.clone());
        }
    }
    claim
}

/// The VolumeSnapshot `snapshot` of `volume` (whose size is `size`) in `tenant`'s namespace,
/// taken through the VolumeSnapshotClass `class`.
///
/// ```
/// use kubecloud_core::{ByteSize, Tenant};
/// let vs = kubecloud_kube::claims::volume_snapshot(&Tenant::new("acme").unwrap(), "root", "nightly", ByteSize::gib(1), "csi-rbdplugin-snapclass");
/// assert_eq!(vs.spec.source.persistent_volume_claim_name.as_deref(), Some("root"));
/// assert_eq!(vs.spec.volume_snapshot_class_name.as_deref(), Some("csi-rbdplugin-snapclass"));
/// ```
pub fn volume_snapshot(
    tenant: &Tenant,
    volume: &str,
    snapshot: &str,
    size: ByteSize,
    class: &str,
) -> VolumeSnapshot {
    let mut labels = ownership_labels(tenant, snapshot);
    labels.insert(VOLUME.into(), volume.into());
    let mut vs = VolumeSnapshot::new(
        snapshot,
        VolumeSnapshotSpec {
            volume_snapshot_class_name: Some(class.to_string()),
            source: VolumeSnapshotSource {
                persistent_volume_claim_name: Some(names::claim(volume)),
                volume_snapshot_content_name: None,
            },
        },
    );
    vs.metadata.namespace = Some(tenant_namespace(tenant));
    vs.metadata.labels = Some(labels);
    vs.metadata.annotations = Some(BTreeMap::from([(
        SIZE.to_string(),
        size.as_u64().to_string(),
    )]));
    vs
}

/// Parses a Kubernetes quantity of bytes (`1073741824`, `1Gi`, `500M`).
pub fn bytes_of(q: &str) -> Result<ByteSize> {
    q.parse()
}

/// The spec a PVC was made from (its size is the current request).
pub fn spec_from_claim(pvc: &PersistentVolumeClaim) -> Result<VolumeSpec> {
    let meta = &pvc.metadata;
    let ann = meta.annotations.clone().unwrap_or_default();
    let name = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(NAME))
        .cloned()
        .or_else(|| meta.name.clone())
        .unwrap_or_default();
    let spec = pvc.spec.clone().unwrap_or_default();
    let size = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .map(|q| bytes_of(&q.0))
        .transpose()?
        .unwrap_or_default();
    let labels: Labels = meta
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| k != MANAGED_BY && k != TENANT && k != NAME)
        .collect();
    let source = match ann.get(SOURCE).and_then(|s| s.split_once(':')) {
        Some(("clone", v)) => VolumeSource::Clone { volume: v.into() },
        Some(("snapshot", s)) => VolumeSource::Snapshot { snapshot: s.into() },
        Some(("import", url)) => VolumeSource::Import { url: url.into() },
        _ => VolumeSource::Blank,
    };
    let access = match spec.access_modes.as_deref() {
        Some([m, ..]) if m == "ReadWriteMany" => AccessMode::ReadWriteMany,
        _ => AccessMode::ReadWriteOnce,
    };
    let mode = match spec.volume_mode.as_deref() {
        Some("Filesystem") => VolumeMode::Filesystem,
        _ => VolumeMode::Block,
    };
    // A claim another component made for the tenant (CDI's import of a VM's boot disk) carries
    // no replica annotation: its spec says one replica, its status lists the real ones.
    let replicas = ann.get(REPLICAS).and_then(|r| r.parse().ok()).unwrap_or(1);
    Ok(VolumeSpec {
        name,
        size,
        replicas,
        mode,
        access,
        tier: ann
            .get(TIER)
            .cloned()
            .or_else(|| spec.storage_class_name.clone()),
        source,
        labels,
    })
}

/// How a VM mounts the volume of `spec`: its claim ([`names::claim`]) and access mode.
///
/// ```
/// use kubecloud_core::{AccessMode, ByteSize, VolumeSpec};
/// let spec = VolumeSpec::blank("root", ByteSize::gib(1)).with_access(AccessMode::ReadWriteMany);
/// let a = kubecloud_kube::claims::volume_attachment(&spec);
/// assert_eq!((a.claim.as_str(), a.access), ("root", AccessMode::ReadWriteMany));
/// ```
pub fn volume_attachment(spec: &kubecloud_core::VolumeSpec) -> kubecloud_core::VolumeAttachment {
    kubecloud_core::VolumeAttachment {
        volume: spec.name.clone(),
        claim: names::claim(&spec.name),
        access: spec.access,
    }
}

/// The volume's size recorded on VolumeSnapshot `vs` when it was taken, else its
/// `status.restoreSize`, else (neither known yet) zero. A value that is not a size is an error
/// naming the snapshot and the field.
pub fn snapshot_size(vs: &VolumeSnapshot) -> Result<ByteSize> {
    let name = vs.metadata.name.as_deref().unwrap_or_default();
    let refuse = |field: &str, value: &str, e: Error| {
        Error::backend(
            "kubernetes",
            format!("VolumeSnapshot {name:?}: {field} holds {value:?}, not a size"),
            false,
            e,
        )
    };
    let annotated = vs.metadata.annotations.as_ref().and_then(|a| a.get(SIZE));
    let restore = vs.status.as_ref().and_then(|s| s.restore_size.as_deref());
    match (annotated, restore) {
        (Some(s), _) => s.parse::<u64>().map(ByteSize).map_err(|e| {
            refuse(
                &format!("annotation {SIZE}"),
                s,
                Error::invalid(SIZE, e.to_string()),
            )
        }),
        (None, Some(q)) => bytes_of(q).map_err(|e| refuse("status.restoreSize", q, e)),
        (None, None) => Ok(ByteSize(0)),
    }
}

/// The snapshot VolumeSnapshot `vs` stands for.
pub fn snapshot_of(vs: &VolumeSnapshot) -> Result<Snapshot> {
    Ok(Snapshot {
        name: vs.metadata.name.clone().unwrap_or_default(),
        volume: vs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(VOLUME))
            .cloned()
            .unwrap_or_default(),
        size: snapshot_size(vs)?,
        ready: vs.status.as_ref().and_then(|s| s.ready_to_use) == Some(true),
    })
}

/// Whether a claim or DataVolume with metadata `meta` is a volume of a storage backend (it carries
/// the replica annotation); the KubeVirt backend's boot-disk imports are not.
pub fn is_volume(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(REPLICAS))
}

/// Puts the state of the import (DataVolume `dv`) into `volume`'s status: `Failed` with CDI's
/// message, `Pending` until CDI has a bound claim, `Populating` with the progress while it
/// imports, and what the claim and the storage say once it `Succeeded`.
pub fn with_import(mut volume: Volume, dv: &DataVolume) -> Volume {
    match crate::cdi::import_state_of(dv) {
        crate::cdi::ImportState::Succeeded => {}
        crate::cdi::ImportState::Failed(message) => {
            volume.status.phase = VolumePhase::Failed;
            volume.status.message = Some(message);
        }
        crate::cdi::ImportState::Pending => volume.status.phase = VolumePhase::Pending,
        crate::cdi::ImportState::Importing { progress, .. } => {
            volume.status.phase = VolumePhase::Populating;
            volume.status.progress = progress;
        }
    }
    volume
}
