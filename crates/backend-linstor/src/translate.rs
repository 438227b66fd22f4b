//! Domain specs → Kubernetes objects (pure; golden-tested), and the way back.
//!
//! | domain | Kubernetes |
//! |---|---|
//! | tier `t` with `r` replicas (RWX block: `-rwx`) | StorageClass `linstor-<t>-r<r>[-rwx]`, provisioner `linstor.csi.linbit.com`, parameters `resourceGroup`, `placementCount`, `storagePool` (when the group has exactly one), `DrbdOptions/Net/allow-two-primaries: "yes"` for RWX block; `allowVolumeExpansion: true`, reclaim `Delete` |
//! | volume `v` of tenant `n` | PVC `names::claim(v)` in namespace `n`: volume mode, access mode, size in bytes, the class; `dataSource` PVC (clone) or VolumeSnapshot (restore); the spec's replicas, tier and source in `kubecloud.io/*` annotations |
//! | volume `v` imported from `url` | DataVolume `names::claim(v)` (`cdi.kubevirt.io/v1beta1`) in namespace `n`: `source.http.url`, `storage` with the same class, size, access and volume mode as the PVC; the same labels and annotations (`kubecloud.io/source: import:<url>`). CDI makes the PVC of the same name |
//! | snapshot `s` of `v` | VolumeSnapshot `s` in namespace `n` of claim `names::claim(v)`, class `linstor-kubecloud` |

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimSpec, TypedLocalObjectReference,
    VolumeResourceRequirements,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kubecloud_core::{
    AccessMode, ByteSize, Labels, Result, Tenant, VolumeMode, VolumeSource, VolumeSpec,
};
use kubecloud_kube::{
    MANAGED_BY, MANAGER, NAME, TENANT, names, ownership_labels, tenant_namespace,
};
use serde_json::{Value, json};

/// The LINSTOR CSI driver's name.
pub const PROVISIONER: &str = "linstor.csi.linbit.com";
/// The VolumeSnapshotClass kubecloud uses for LINSTOR snapshots.
pub const SNAPSHOT_CLASS: &str = "linstor-kubecloud";
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

/// CDI's DataVolume API version.
pub const DATA_VOLUME_API: &str = kubecloud_kube::cdi::API_VERSION;

const RG: &str = "linstor.csi.linbit.com/resourceGroup";
const PLACEMENT: &str = "linstor.csi.linbit.com/placementCount";
const POOL: &str = "linstor.csi.linbit.com/storagePool";
const TWO_PRIMARIES: &str = "property.linstor.csi.linbit.com/DrbdOptions/Net/allow-two-primaries";

/// What a StorageClass needs to know about a tier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierPlan {
    /// The tier's name.
    pub name: String,
    /// Its LINSTOR resource group.
    pub resource_group: String,
    /// The one storage pool of the group, when it has exactly one.
    pub storage_pool: Option<String>,
}

/// Whether `spec` is a read-write-many block volume (needs DRBD dual primary for live migration).
pub fn is_rwx_block(spec: &VolumeSpec) -> bool {
    spec.access == AccessMode::ReadWriteMany && spec.mode == VolumeMode::Block
}

/// The StorageClass name for a tier, replica count and RWX block.
///
/// ```
/// assert_eq!(kubecloud_linstor::translate::storage_class_name("fast", 2, true), "linstor-fast-r2-rwx");
/// ```
pub fn storage_class_name(tier: &str, replicas: u8, rwx_block: bool) -> String {
    let suffix = if rwx_block { "-rwx" } else { "" };
    format!("linstor-{tier}-r{replicas}{suffix}")
}

/// The StorageClass for `tier` with `replicas` replicas (cluster-scoped, shared by tenants, so
/// labelled as kubecloud's but not as any tenant's).
pub fn storage_class(tier: &TierPlan, replicas: u8, rwx_block: bool) -> StorageClass {
    let mut parameters = BTreeMap::from([
        (RG.to_string(), tier.resource_group.clone()),
        (PLACEMENT.to_string(), replicas.to_string()),
    ]);
    if let Some(pool) = &tier.storage_pool {
        parameters.insert(POOL.to_string(), pool.clone());
    }
    if rwx_block {
        parameters.insert(TWO_PRIMARIES.to_string(), "yes".to_string());
    }
    StorageClass {
        metadata: ObjectMeta {
            name: Some(storage_class_name(&tier.name, replicas, rwx_block)),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.to_string(), MANAGER.to_string()),
                (TIER.to_string(), tier.name.clone()),
            ])),
            ..ObjectMeta::default()
        },
        provisioner: PROVISIONER.to_string(),
        parameters: Some(parameters),
        allow_volume_expansion: Some(true),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("Immediate".into()),
        ..StorageClass::default()
    }
}

/// The labels of a volume's objects: the spec's and the ownership labels.
fn labels_of(tenant: &Tenant, spec: &VolumeSpec) -> BTreeMap<String, String> {
    let mut labels = spec.labels.clone();
    labels.extend(ownership_labels(tenant, &spec.name));
    labels
}

/// The annotations of a volume's objects: replicas, tier and source.
fn annotations_of(spec: &VolumeSpec, tier: &str) -> BTreeMap<String, String> {
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

fn access_mode(spec: &VolumeSpec) -> &'static str {
    match spec.access {
        AccessMode::ReadWriteOnce => "ReadWriteOnce",
        AccessMode::ReadWriteMany => "ReadWriteMany",
    }
}

fn volume_mode(spec: &VolumeSpec) -> &'static str {
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
/// let dv = kubecloud_linstor::translate::data_volume(&Tenant::new("acme").unwrap(), &spec, "fast", "linstor-fast-r1");
/// assert_eq!(dv["spec"]["source"]["http"]["url"], "https://images.example.com/os.qcow2");
/// assert_eq!(dv["spec"]["storage"]["storageClassName"], "linstor-fast-r1");
/// ```
pub fn data_volume(tenant: &Tenant, spec: &VolumeSpec, tier: &str, class: &str) -> Value {
    let url = match &spec.source {
        VolumeSource::Import { url } => url.as_str(),
        _ => "",
    };
    json!({
        "apiVersion": DATA_VOLUME_API,
        "kind": "DataVolume",
        "metadata": {
            "name": names::claim(&spec.name),
            "namespace": tenant_namespace(tenant),
            "labels": labels_of(tenant, spec),
            "annotations": annotations_of(spec, tier),
        },
        "spec": kubecloud_kube::cdi::data_volume_spec(&kubecloud_kube::cdi::HttpImport {
            url,
            size: spec.size.as_u64().to_string(),
            access: spec.access,
            mode: spec.mode,
            storage_class: Some(class),
        }),
    })
}

/// The claim a volume imported by DataVolume `dv` stands for: the PVC CDI made (`pvc`, when it
/// exists yet) or, before that, one described by the DataVolume's `storage`; with the
/// DataVolume's labels and kubecloud annotations (CDI keeps its own on the claim).
pub fn claim_of_data_volume(
    dv: &Value,
    pvc: Option<&PersistentVolumeClaim>,
) -> PersistentVolumeClaim {
    let mut claim = match pvc {
        Some(p) => p.clone(),
        None => {
            let storage = &dv["spec"]["storage"];
            let mut c = PersistentVolumeClaim::default();
            c.metadata.name = dv["metadata"]["name"].as_str().map(String::from);
            c.metadata.namespace = dv["metadata"]["namespace"].as_str().map(String::from);
            c.spec = serde_json::from_value(storage.clone()).ok();
            c
        }
    };
    claim.metadata.labels = serde_json::from_value(dv["metadata"]["labels"].clone()).ok();
    let ours: BTreeMap<String, String> =
        serde_json::from_value(dv["metadata"]["annotations"].clone()).unwrap_or_default();
    let annotations = claim.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for key in [REPLICAS, TIER, SOURCE] {
        if let Some(v) = ours.get(key) {
            annotations.insert(key.to_string(), v.clone());
        }
    }
    claim
}

/// The VolumeSnapshotClass of the LINSTOR CSI driver (cluster-scoped, shared).
pub fn snapshot_class() -> Value {
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": SNAPSHOT_CLASS, "labels": {MANAGED_BY: MANAGER}},
        "driver": PROVISIONER,
        "deletionPolicy": "Delete",
    })
}

/// The VolumeSnapshot `snapshot` of `volume` (whose size is `size`) in `tenant`'s namespace.
pub fn volume_snapshot(tenant: &Tenant, volume: &str, snapshot: &str, size: ByteSize) -> Value {
    let mut labels = ownership_labels(tenant, snapshot);
    labels.insert(VOLUME.into(), volume.into());
    json!({
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": snapshot,
            "namespace": tenant_namespace(tenant),
            "labels": labels,
            "annotations": {SIZE: size.as_u64().to_string()},
        },
        "spec": {
            "volumeSnapshotClassName": SNAPSHOT_CLASS,
            "source": {"persistentVolumeClaimName": names::claim(volume)},
        },
    })
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
/// let a = kubecloud_linstor::translate::volume_attachment(&spec);
/// assert_eq!((a.claim.as_str(), a.access), ("root", AccessMode::ReadWriteMany));
/// ```
pub fn volume_attachment(spec: &kubecloud_core::VolumeSpec) -> kubecloud_core::VolumeAttachment {
    kubecloud_core::VolumeAttachment {
        volume: spec.name.clone(),
        claim: names::claim(&spec.name),
        access: spec.access,
    }
}
