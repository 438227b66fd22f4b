//! Reading a volume back from Kubernetes alone: the claim's phase and capacity, and, while it is
//! not ready, the newest Warning event about it (the external-provisioner's
//! `ProvisioningFailed`, the external-resizer's `VolumeResizeFailed`), which says why.

use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim};
use kubecloud_core::{Result, Volume, VolumePhase, VolumeStatus};

use crate::translate::{bytes_of, spec_from_claim};

/// The volume claim `pvc` stands for; `warning` is the newest Warning event about it, if any;
/// `waits_for_consumer` whether its class binds on first use (`WaitForFirstConsumer`).
/// Ready once bound with at least the size asked; Resizing while bound with less; Pending
/// before (with the warning as message); Failed when the claim lost its volume. A claim whose
/// class waits for its first consumer is Ready unbound, at the size asked, unless a warning
/// says otherwise: it is provisioned when the pod using it (a VM's) is scheduled, as KubeVirt
/// and CDI expect (a DataVolume's `WaitForFirstConsumer` phase). Where the
/// driver keeps copies is not visible: `replicas` stays empty, as `used_by` (the compute
/// backend's to say).
///
/// ```
/// use k8s_openapi::api::core::v1::PersistentVolumeClaim;
/// use kubecloud_core::VolumePhase;
/// let pvc: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
///     "metadata": {"name": "db", "annotations": {"kubecloud.io/replicas": "1"}},
///     "spec": {"resources": {"requests": {"storage": "1Gi"}}},
///     "status": {"phase": "Pending"},
/// })).unwrap();
/// let v = kubecloud_csi::status::volume_of(&pvc, Some("no space left".into()), false).unwrap();
/// assert_eq!(v.status.phase, VolumePhase::Pending);
/// assert_eq!(v.status.message.as_deref(), Some("no space left"));
/// ```
pub fn volume_of(
    pvc: &PersistentVolumeClaim,
    warning: Option<String>,
    waits_for_consumer: bool,
) -> Result<Volume> {
    let spec = spec_from_claim(pvc)?;
    let status = pvc.status.clone().unwrap_or_default();
    let size = status
        .capacity
        .as_ref()
        .and_then(|c| c.get("storage"))
        .map(|q| bytes_of(&q.0))
        .transpose()?
        .unwrap_or_default();
    let (phase, message) = match status.phase.as_deref() {
        Some("Lost") => (
            VolumePhase::Failed,
            Some("the claim lost its PersistentVolume".to_string()),
        ),
        Some("Bound") if size < spec.size => (VolumePhase::Resizing, warning),
        Some("Bound") => (VolumePhase::Ready, None),
        _ if waits_for_consumer
            && warning.is_none()
            && pvc.metadata.deletion_timestamp.is_none() =>
        {
            (
                VolumePhase::Ready,
                Some(
                    "provisioned when its first consumer is scheduled (WaitForFirstConsumer)"
                        .into(),
                ),
            )
        }
        _ => (VolumePhase::Pending, warning),
    };
    let size = if phase == VolumePhase::Ready && status.phase.as_deref() != Some("Bound") {
        spec.size
    } else {
        size
    };
    Ok(Volume {
        status: VolumeStatus {
            phase,
            size,
            replicas: Vec::new(),
            used_by: Vec::new(),
            progress: None,
            message,
        },
        spec,
    })
}

/// The message of the newest Warning event among `events` (by last time seen), as
/// `Reason: message`.
pub fn newest_warning(events: &[Event]) -> Option<String> {
    events
        .iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .max_by_key(|e| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or(e.event_time.as_ref().map(|t| t.0))
                .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
        })
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.as_deref().unwrap_or("Warning"),
                e.message.as_deref().unwrap_or_default()
            )
        })
}
