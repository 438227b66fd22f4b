//! CDI imports, shared by every backend that imports an image into a volume: the storage
//! backends (a volume imported from a URL) and the compute backend (a boot disk imported in a
//! VM's `dataVolumeTemplates`). CDI (the Containerized Data Importer) is not one storage
//! system's: it fills a claim of any CSI driver, so what it takes and what it reports live here.
//!
//! - [`data_volume_spec`]: the `spec` of a `DataVolume` (`cdi.kubevirt.io/v1beta1`) importing
//!   over HTTP into a claim of the given size, access, volume mode and class (`spec.storage`, so
//!   CDI fills in what the class implies).
//! - [`import_state`]: what a `DataVolume`'s status says, as CDI writes it: `phase` (`Pending`,
//!   `ImportScheduled`, `ImportInProgress`, `Succeeded`, `Failed`...), `progress` (`"45.5%"`,
//!   or `"N/A"`) and the conditions' messages (the `Running` condition carries the importer's
//!   failure).
//! - [`made_by_cdi`]: whether a claim is the one CDI made for a `DataVolume` (owned by it).

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kubecloud_core::{AccessMode, VolumeMode};
use serde_json::{Value, json};

/// CDI (`cdi.kubevirt.io/v1beta1`): imports from http(s) URLs.
pub const SYSTEM: crate::connect::System = crate::connect::System {
    name: "CDI",
    group: "cdi.kubevirt.io",
    version: "v1beta1",
};

/// The API version of CDI's `DataVolume`.
pub const API_VERSION: &str = "cdi.kubevirt.io/v1beta1";

/// CDI's `DataVolume` resource.
pub fn resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk("cdi.kubevirt.io", "v1beta1", "DataVolume");
    ApiResource::from_gvk_with_plural(&gvk, "datavolumes")
}

/// The `DataVolume`s of namespace `ns`.
pub fn data_volumes(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource())
}

/// An import over HTTP: where from, and the claim it fills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpImport<'a> {
    /// The image's URL.
    pub url: &'a str,
    /// The claim's requested size, as a Kubernetes quantity (`"10Gi"`, `"10737418240"`).
    pub size: String,
    /// The claim's access mode.
    pub access: AccessMode,
    /// The claim's volume mode.
    pub mode: VolumeMode,
    /// The claim's StorageClass (`None`: the cluster's default).
    pub storage_class: Option<&'a str>,
}

/// The `spec` of a `DataVolume` doing `import`.
///
/// ```
/// use kubecloud_core::{AccessMode, VolumeMode};
/// use kubecloud_kube::cdi::{HttpImport, data_volume_spec};
/// let spec = data_volume_spec(&HttpImport {
///     url: "https://images.example.com/os.qcow2",
///     size: "10Gi".into(),
///     access: AccessMode::ReadWriteMany,
///     mode: VolumeMode::Block,
///     storage_class: Some("fast"),
/// });
/// assert_eq!(spec["source"]["http"]["url"], "https://images.example.com/os.qcow2");
/// assert_eq!(spec["storage"]["accessModes"][0], "ReadWriteMany");
/// assert_eq!(spec["storage"]["storageClassName"], "fast");
/// ```
pub fn data_volume_spec(import: &HttpImport<'_>) -> Value {
    let mut storage = json!({
        "accessModes": [match import.access {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadWriteMany => "ReadWriteMany",
        }],
        "volumeMode": match import.mode {
            VolumeMode::Block => "Block",
            VolumeMode::Filesystem => "Filesystem",
        },
        "resources": {"requests": {"storage": import.size}},
    });
    if let Some(class) = import.storage_class {
        storage["storageClassName"] = json!(class);
    }
    json!({"source": {"http": {"url": import.url}}, "storage": storage})
}

/// Where an import is, from its `DataVolume`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportState {
    /// Not started (no phase yet, or `Pending`).
    Pending,
    /// Under way, in CDI's `phase`, with its progress in percent when CDI reports one.
    Importing {
        /// CDI's phase (`ImportScheduled`, `ImportInProgress`, `WaitForFirstConsumer`...).
        phase: String,
        /// The progress, 0 to 100.
        progress: Option<u8>,
    },
    /// Done: the claim holds the image.
    Succeeded,
    /// Failed, with CDI's message.
    Failed(String),
}

/// What the status of `DataVolume` `dv` says.
///
/// ```
/// use kubecloud_kube::cdi::{ImportState, import_state};
/// let dv = serde_json::json!({"status": {"phase": "ImportInProgress", "progress": "45.5%"}});
/// assert_eq!(import_state(&dv), ImportState::Importing { phase: "ImportInProgress".into(), progress: Some(45) });
/// let failed = serde_json::json!({"status": {"phase": "Failed", "conditions": [
///     {"type": "Ready", "message": ""},
///     {"type": "Running", "message": "Unable to connect to http data source"}]}});
/// assert_eq!(import_state(&failed), ImportState::Failed("Unable to connect to http data source".into()));
/// ```
pub fn import_state(dv: &Value) -> ImportState {
    let status = &dv["status"];
    match status["phase"].as_str().unwrap_or_default() {
        "" | "Pending" => ImportState::Pending,
        "Succeeded" => ImportState::Succeeded,
        "Failed" => {
            let conditions = status["conditions"].as_array();
            let message = conditions
                .into_iter()
                .flatten()
                .filter(|c| c["type"] == "Running")
                .chain(conditions.into_iter().flatten())
                .find_map(|c| c["message"].as_str().filter(|m| !m.is_empty()))
                .unwrap_or("the import failed");
            ImportState::Failed(message.to_string())
        }
        phase => ImportState::Importing {
            phase: phase.to_string(),
            progress: progress_percent(status["progress"].as_str()),
        },
    }
}

/// CDI's progress text (`"45.5%"`) in whole percent, clamped to 0..=100; `None` for `"N/A"`.
///
/// ```
/// assert_eq!(kubecloud_kube::cdi::progress_percent(Some("99.9%")), Some(99));
/// assert_eq!(kubecloud_kube::cdi::progress_percent(Some("N/A")), None);
/// ```
pub fn progress_percent(progress: Option<&str>) -> Option<u8> {
    let percent: f64 = progress?.trim().strip_suffix('%')?.trim().parse().ok()?;
    // Clamped to 0..=100 first, so the cast cannot truncate.
    Some(percent.clamp(0.0, 100.0).floor() as u8)
}

/// Whether `pvc` is the claim CDI made for a `DataVolume` (owned by one).
pub fn made_by_cdi(pvc: &PersistentVolumeClaim) -> bool {
    pvc.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "DataVolume")
}
