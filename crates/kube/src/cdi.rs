//! CDI imports, shared by every backend that imports an image into a volume: the storage
//! backends (a volume imported from a URL) and the compute backend (a boot disk imported in a
//! VM's `dataVolumeTemplates`). CDI (the Containerized Data Importer) is not one storage
//! system's: it fills a claim of any CSI driver, so what it takes and what it reports live here.
//!
//! - [`http_import_spec`]: the typed `spec` of a [`DataVolume`] (`cdi.kubevirt.io/v1beta1`)
//!   importing over HTTP into a claim of the given size, access, volume mode and class
//!   (`spec.storage`, so CDI fills in what the class implies); [`data_volume_spec`] is the same
//!   as JSON, for the compute backend's `dataVolumeTemplates`.
//! - [`import_state_of`]: what a [`DataVolume`]'s status says, as CDI writes it: `phase`
//!   (`Pending`, `ImportScheduled`, `ImportInProgress`, `Succeeded`, `Failed`...), `progress`
//!   (`"45.5%"`, or `"N/A"`) and the conditions' messages (the `Running` condition carries the
//!   importer's failure).
//! - [`data_volume_api`]: the typed `Api<DataVolume>` of a namespace (the storage and compute
//!   backends read through it).
//! - [`made_by_cdi`]: whether a claim is the one CDI made for a `DataVolume` (owned by it).

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ApiResource};
use kube::core::GroupVersionKind;
use kubecloud_core::{AccessMode, VolumeMode};
pub use kubecloud_models::cdi::DataVolume;
use kubecloud_models::cdi::data_volume::{
    DataVolumeSource, DataVolumeSourceHttp, DataVolumeSpec, DataVolumeStorage,
    DataVolumeStorageResources,
};
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

/// The `DataVolume`s of namespace `ns`, typed: an object that does not decode (a required field
/// missing, a field of the wrong type) is an error of the read, not a default.
pub fn data_volume_api(client: &kube::Client, ns: &str) -> Api<DataVolume> {
    Api::namespaced(client.clone(), ns)
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

/// The typed `spec` of a `DataVolume` doing `import`: what [`data_volume_spec`] writes as JSON.
///
/// ```
/// use kubecloud_core::{AccessMode, VolumeMode};
/// use kubecloud_kube::cdi::{HttpImport, http_import_spec};
/// let spec = http_import_spec(&HttpImport {
///     url: "https://images.example.com/os.qcow2",
///     size: "10Gi".into(),
///     access: AccessMode::ReadWriteMany,
///     mode: VolumeMode::Block,
///     storage_class: Some("fast"),
/// });
/// let storage = spec.storage.unwrap();
/// assert_eq!(storage.access_modes.unwrap(), ["ReadWriteMany"]);
/// assert_eq!(storage.storage_class_name.as_deref(), Some("fast"));
/// ```
pub fn http_import_spec(import: &HttpImport<'_>) -> DataVolumeSpec {
    let access = match import.access {
        AccessMode::ReadWriteOnce => "ReadWriteOnce",
        AccessMode::ReadWriteMany => "ReadWriteMany",
    };
    let mode = match import.mode {
        VolumeMode::Block => "Block",
        VolumeMode::Filesystem => "Filesystem",
    };
    DataVolumeSpec {
        source: Some(DataVolumeSource {
            http: Some(DataVolumeSourceHttp {
                url: import.url.to_string(),
                ..DataVolumeSourceHttp::default()
            }),
            ..DataVolumeSource::default()
        }),
        storage: Some(DataVolumeStorage {
            access_modes: Some(vec![access.to_string()]),
            volume_mode: Some(mode.to_string()),
            resources: Some(DataVolumeStorageResources {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    IntOrString::String(import.size.clone()),
                )])),
                limits: None,
            }),
            storage_class_name: import.storage_class.map(str::to_string),
            ..DataVolumeStorage::default()
        }),
        ..DataVolumeSpec::default()
    }
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

/// What the status of `DataVolume` `dv` says: CDI's `phase`, its `progress` and, for a failure,
/// the message of the first condition that has one.
///
/// ```
/// use kubecloud_kube::cdi::{DataVolume, ImportState, import_state_of};
/// let dv: DataVolume = serde_json::from_value(serde_json::json!({
///     "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
///     "metadata": {"name": "os"}, "spec": {},
///     "status": {"phase": "ImportInProgress", "progress": "45.5%"}}))?;
/// assert_eq!(import_state_of(&dv), ImportState::Importing { phase: "ImportInProgress".into(), progress: Some(45) });
/// let failed: DataVolume = serde_json::from_value(serde_json::json!({
///     "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
///     "metadata": {"name": "os"}, "spec": {},
///     "status": {"phase": "Failed", "conditions": [
///         {"type": "Ready", "status": "False"},
///         {"type": "Running", "status": "False", "message": "Unable to connect to http data source"}]}}))?;
/// assert_eq!(import_state_of(&failed), ImportState::Failed("Unable to connect to http data source".into()));
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn import_state_of(dv: &DataVolume) -> ImportState {
    let Some(status) = &dv.status else {
        return ImportState::Pending;
    };
    state_from(
        status.phase.as_deref(),
        status.progress.as_deref(),
        status
            .conditions
            .iter()
            .flatten()
            .map(|c| (c.r#type.as_str(), c.message.as_deref().unwrap_or_default())),
    )
}

/// The import state from CDI's `phase`, `progress` and conditions (`(type, message)`).
fn state_from<'a>(
    phase: Option<&str>,
    progress: Option<&str>,
    conditions: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> ImportState {
    match phase.unwrap_or_default() {
        "" | "Pending" => ImportState::Pending,
        "Succeeded" => ImportState::Succeeded,
        "Failed" => {
            let message = conditions
                .clone()
                .filter(|(type_, _)| *type_ == "Running")
                .chain(conditions)
                .map(|(_, message)| message)
                .find(|m| !m.is_empty())
                .unwrap_or("the import failed");
            ImportState::Failed(message.to_string())
        }
        phase => ImportState::Importing {
            phase: phase.to_string(),
            progress: progress_percent(progress),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_typed_spec_is_the_json_spec() {
        for (access, mode, class) in [
            (AccessMode::ReadWriteMany, VolumeMode::Block, Some("fast")),
            (AccessMode::ReadWriteOnce, VolumeMode::Filesystem, None),
        ] {
            let import = HttpImport {
                url: "https://images.example.com/os.qcow2",
                size: "10737418240".into(),
                access,
                mode,
                storage_class: class,
            };
            let typed = serde_json::to_value(http_import_spec(&import)).unwrap();
            assert_eq!(typed, data_volume_spec(&import));
        }
    }

    #[test]
    fn states_follow_phase_progress_and_conditions() {
        let cases = [
            (json!({}), ImportState::Pending),
            (json!({"phase": "Pending"}), ImportState::Pending),
            (
                json!({"phase": "ImportInProgress", "progress": "12.5%"}),
                ImportState::Importing {
                    phase: "ImportInProgress".into(),
                    progress: Some(12),
                },
            ),
            (
                json!({"phase": "Succeeded", "progress": "100.0%"}),
                ImportState::Succeeded,
            ),
            (
                json!({"phase": "Failed", "conditions": [
                    {"type": "Ready", "status": "False"},
                    {"type": "Running", "status": "False", "message": "Unable to connect"}]}),
                ImportState::Failed("Unable to connect".into()),
            ),
        ];
        for (status, expected) in cases {
            let object = json!({"apiVersion": API_VERSION, "kind": "DataVolume",
                "metadata": {"name": "os"}, "spec": {}, "status": status});
            let dv: DataVolume = serde_json::from_value(object).unwrap();
            assert_eq!(import_state_of(&dv), expected, "{status}");
        }
    }
}
