//! The `VolumeSnapshotClass` (`snapshot.storage.k8s.io/v1`) as this backend reads it.
//!
//! Hand-written, not generated: the class holds its fields at the top level of the object (no
//! `spec`), which kopium cannot model, so `kubecloud-models` has no type for it. The fields are
//! those of `external-snapshotter/snapshot.storage.k8s.io_volumesnapshotclasses.yaml` (v1,
//! the served and storage version) that kubecloud reads; the two the CRD requires
//! (`driver`, `deletionPolicy`) are required here too, so a class without them, or with a
//! value of the wrong type, is a decode error naming the class and the field
//! ([`kubecloud_kube::convert`]) instead of a class read as having no driver.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// A `VolumeSnapshotClass`: which CSI driver takes snapshots, and what happens to them.
///
/// ```
/// use kubecloud_csi::snapshot_class::{DeletionPolicy, VolumeSnapshotClass};
/// let class: VolumeSnapshotClass = serde_json::from_value(serde_json::json!({
///     "apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
///     "metadata": {"name": "longhorn"}, "driver": "driver.longhorn.io", "deletionPolicy": "Delete"
/// })).unwrap();
/// assert_eq!(class.driver, "driver.longhorn.io");
/// assert_eq!(class.deletion_policy, DeletionPolicy::Delete);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotClass {
    /// The class's metadata (its name, the default-class annotation).
    pub metadata: ObjectMeta,
    /// The CSI driver that takes its snapshots.
    pub driver: String,
    /// Whether a snapshot's content is deleted with it.
    pub deletion_policy: DeletionPolicy,
    /// Parameters handed to the driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<BTreeMap<String, String>>,
}

/// What happens to a snapshot's content when the snapshot is deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeletionPolicy {
    /// The content and the storage's snapshot are deleted.
    #[default]
    Delete,
    /// The content and the storage's snapshot are kept.
    Retain,
}

impl VolumeSnapshotClass {
    /// A class of `driver` named `name` (as tests and [`crate::CsiBuilder::snapshot_classes`]
    /// take them).
    ///
    /// ```
    /// let class = kubecloud_csi::snapshot_class::VolumeSnapshotClass::new("rbd", "rbd.csi.ceph.com");
    /// assert_eq!(class.metadata.name.as_deref(), Some("rbd"));
    /// ```
    pub fn new(name: &str, driver: &str) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_string()),
                ..ObjectMeta::default()
            },
            driver: driver.to_string(),
            ..Self::default()
        }
    }

    /// Whether the class is its driver's default
    /// ([`DEFAULT_SNAPSHOT_CLASS`](crate::tiers::DEFAULT_SNAPSHOT_CLASS) is `"true"`).
    pub fn is_default(&self) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::tiers::DEFAULT_SNAPSHOT_CLASS))
            .is_some_and(|v| v == "true")
    }

    /// The class's name (empty when it has none, which the API server never stores).
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecloud_core::ResourceKind;
    use serde_json::json;

    fn read(class: serde_json::Value) -> kubecloud_core::Result<VolumeSnapshotClass> {
        kubecloud_kube::convert(&class, "csi", ResourceKind::StoragePool, "fast")
    }

    #[test]
    fn a_class_without_a_driver_or_with_an_unknown_policy_is_an_error_naming_the_field() {
        let base = json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotClass",
            "metadata": {"name": "fast"}, "driver": "rbd.csi.ceph.com", "deletionPolicy": "Retain"});
        assert_eq!(
            read(base.clone()).unwrap().deletion_policy,
            DeletionPolicy::Retain
        );

        let mut no_driver = base.clone();
        no_driver.as_object_mut().unwrap().remove("driver");
        let err = read(no_driver).unwrap_err().to_string();
        assert!(
            err.contains("VolumeSnapshotClass \"fast\"") && err.contains("driver"),
            "{err}"
        );

        let mut policy = base;
        policy["deletionPolicy"] = json!("Keep");
        let err = read(policy).unwrap_err().to_string();
        assert!(err.contains("deletionPolicy"), "{err}");
    }
}
