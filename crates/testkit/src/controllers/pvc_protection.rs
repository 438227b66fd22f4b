//! Storage-object-in-use protection for claims, as kube-apiserver's `StorageObjectInUseProtection`
//! admission plugin and kube-controller-manager's PVC protection controller do together
//! (kubernetes `pkg/controller/volume/pvcprotection/pvc_protection_controller.go`).
//!
//! - A claim that is not being deleted gets the finalizer [`PVC_PROTECTION`]
//!   (`kubernetes.io/pvc-protection`): the API double's admission adds it on creation, as the
//!   `StorageObjectInUseProtection` plugin does, and the controller adds it to claims that lack
//!   it (`NeedToAddFinalizer`).
//! - A claim being deleted keeps the finalizer while a pod uses it, and loses it (so the API
//!   server removes it) once none does (`IsDeletionCandidate`, `isBeingUsed`). A pod uses a claim,
//!   as upstream's `podUsesPVC` decides, when it is scheduled (`spec.nodeName` set) in the
//!   claim's namespace and one of its `spec.volumes` names the claim in
//!   `persistentVolumeClaim.claimName`, whatever the pod's phase: upstream waits until such a
//!   pod is deleted (its `Deleted` event, or one for a terminated or unscheduled pod, re-queues
//!   the claims it names, as `enqueuePVCs` does). Generic ephemeral volumes are not modelled.
//!
//! So a claim a VM's launcher pod mounts (the simulated KubeVirt's launcher pods carry the
//! instance's claims as volumes) stays, marked for deletion, until the pod is gone, as on a real
//! cluster. A default controller of [`TestServer`](crate::TestServer) and of
//! [`FakeCloud`](crate::FakeCloud).
//!
//! A finalizer nothing ever removes (one a third-party controller that is not running would
//! own) is simply written on the object at creation; the API double keeps the object, marked for
//! deletion, as long as it is there.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::{Cluster, ObjectEvent};
use crate::store::EventType;

/// The finalizer protecting a claim in use (upstream's `volumeutil.PVCProtectionFinalizer`).
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

/// Keeps claims that pods use from going (see the module docs of `controllers::pvc_protection`).
#[derive(Debug, Default)]
pub struct PvcProtection;

fn finalizers(object: &Value) -> Vec<Value> {
    object["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn has_protection(claim: &Value) -> bool {
    finalizers(claim).iter().any(|f| f == PVC_PROTECTION)
}

/// The claims `pod` names in its volumes.
fn claims_of(pod: &Value) -> Vec<String> {
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .map(String::from)
        .collect()
}

/// Whether `pod` uses the claim `claim` (upstream's `podUsesPVC`).
fn uses(pod: &Value, claim: &str) -> bool {
    let scheduled = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    scheduled && claims_of(pod).iter().any(|c| c == claim)
}

impl PvcProtection {
    /// Adds or removes the finalizer of the claim `name` in `namespace` as its state and the
    /// pods of its namespace say (upstream's `processPVC`).
    fn process(api: &Cluster, namespace: &str, name: &str) -> Result<(), ControllerError> {
        let Some(claim) = api.get_opt("v1", "PersistentVolumeClaim", Some(namespace), name)? else {
            return Ok(());
        };
        let deleting = claim["metadata"]["deletionTimestamp"].is_string();
        if deleting && has_protection(&claim) {
            let in_use = api
                .list("v1", "Pod", Some(namespace))?
                .iter()
                .any(|pod| uses(pod, name));
            if !in_use {
                let mut released = claim.clone();
                let kept: Vec<Value> = finalizers(&claim)
                    .into_iter()
                    .filter(|f| f != PVC_PROTECTION)
                    .collect();
                released["metadata"]["finalizers"] = json!(kept);
                api.replace(released)?;
            }
        } else if !deleting && !has_protection(&claim) {
            let mut protected = claim.clone();
            let mut all = finalizers(&claim);
            all.push(json!(PVC_PROTECTION));
            protected["metadata"]["finalizers"] = json!(all);
            api.replace(protected)?;
        }
        Ok(())
    }
}

#[async_trait]
impl Controller for PvcProtection {
    fn name(&self) -> &str {
        "pvc-protection-controller"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "persistentvolumeclaims"),
            Watched::new("", "pods"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let api = api.in_process()?;
        let Some(namespace) = ev.namespace.as_deref() else {
            return Ok(());
        };
        match (ev.resource.as_str(), ev.kind) {
            ("persistentvolumeclaims", EventType::Deleted) => Ok(()),
            ("persistentvolumeclaims", _) => Self::process(api, namespace, &ev.name),
            ("pods", kind) => {
                // Only a pod that can no longer hold a claim can release one (upstream's
                // `enqueuePVCs`): deleted, terminated, or not scheduled.
                let phase = ev.object["status"]["phase"].as_str();
                let released = kind == EventType::Deleted
                    || matches!(phase, Some("Succeeded" | "Failed"))
                    || ev.object["spec"]["nodeName"]
                        .as_str()
                        .is_none_or(str::is_empty);
                if !released {
                    return Ok(());
                }
                for claim in claims_of(&ev.object) {
                    Self::process(api, namespace, &claim)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_scheduled_pod_naming_the_claim_uses_it() {
        let pod = |node: Option<&str>, claim: &str| {
            json!({"spec": {"nodeName": node, "volumes": [
                {"name": "disk", "persistentVolumeClaim": {"claimName": claim}},
                {"name": "cloudinit", "secret": {"secretName": "x"}},
            ]}})
        };
        assert!(uses(&pod(Some("node-1"), "data"), "data"));
        assert!(!uses(&pod(Some("node-1"), "other"), "data"));
        assert!(!uses(&pod(None, "data"), "data"), "not scheduled");
        assert!(!uses(&pod(Some(""), "data"), "data"), "not scheduled");
    }
}
