//! Volume expansion: kube-controller-manager's expand controller (`ExternalExpanding`), the
//! driver's external-resizer, and kubelet's node step (`NodeExpandVolume`).
//!
//! Upstream read for this: kubernetes-csi/external-resizer `pkg/controller/expand_and_recover.go`
//! (`expandAndRecover`, `callResizeOnPlugin`) and `pkg/controller/resize_status.go`
//! (`markControllerResizeInProgress`, `markForPendingNodeExpansion`,
//! `markOverallExpansionAsFinished`), as the resizer works with `RecoverVolumeExpansionFailure`
//! (GA in Kubernetes 1.34).
//!
//! A bound claim of the driver whose `spec.resources.requests.storage` exceeds
//! `status.capacity.storage`:
//! - always gets `ExternalExpanding` ("waiting for an external controller to expand this PVC");
//!   a driver without `EXPAND_VOLUME` has no resizer, so nothing more happens;
//! - the resizer marks it: condition `Resizing`, `status.allocatedResources.storage` = the new
//!   size, `status.allocatedResourceStatuses.storage` = `ControllerResizeInProgress`;
//! - a driver expanding only offline, with a scheduled pod using the claim: `VolumeResizeFailed`
//!   `"Unable to expand <ns>/<name> because CSI driver <driver> only supports offline expansion and
//!   volume is currently in-use"`; it tries again when such a pod goes;
//! - else `Resizing` `"External resizer is resizing volume <pv>"` and `ControllerExpandVolume`: on
//!   an error `VolumeResizeFailed` `resize volume "<pv>" by resizer "<driver>" failed: <error>`
//!   and a `ControllerResizeError` condition (retried); on success the PV's capacity grows and,
//!   when the driver needs the node step (Filesystem volumes of most drivers), condition
//!   `FileSystemResizePending` ("Waiting for user to (re-)start a pod to finish file system
//!   resize of volume on node."), status `NodeResizePending`, event `FileSystemResizeRequired`;
//!   otherwise the claim's capacity follows, the resize conditions and status go, event
//!   `VolumeResizeSuccessful` "Resize volume succeeded";
//! - kubelet finishes `NodeResizePending` as soon as a scheduled pod uses the claim (online, or
//!   at its next mount): capacity = allocated, conditions and status cleared, event
//!   `FileSystemResizeSuccessful`.
//!
//! The API double itself refuses growing a claim whose class lacks `allowVolumeExpansion`
//! (kube-apiserver's `PersistentVolumeClaimResize` admission) and shrinking below
//! `status.capacity`. Not modelled: shrinking back to recover from a failed expansion (the
//! resizer's `ControllerResizeInfeasible` path).

use async_trait::async_trait;
use serde_json::{Value, json};

use super::claims::{self, meta};
use super::events::{self, NORMAL, WARNING};
use super::profile::Expansion;
use super::quantity;
use super::state::DriverState;
use crate::cluster::{Cluster, ObjectEvent};
use crate::controllers::{Controller, ControllerApi, ControllerError, Watched};
use crate::store::EventType;

const RESIZE_CONDITIONS: [&str; 3] = [
    "Resizing",
    "FileSystemResizePending",
    "ControllerResizeError",
];

/// The expand controller, external-resizer and kubelet node step of one driver.
pub(crate) struct Resizer {
    name: String,
    driver: DriverState,
}

impl Resizer {
    pub(crate) fn new(driver: DriverState) -> Self {
        Resizer {
            name: format!("csi-resizer-{}", driver.profile.short_name()),
            driver,
        }
    }

    fn component(&self) -> String {
        format!("external-resizer {}", self.driver.profile.driver())
    }

    /// The claim's conditions without the resize ones, plus `add`.
    fn conditions(claim: &Value, add: Option<Value>) -> Value {
        let mut kept: Vec<Value> = claim["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| !RESIZE_CONDITIONS.iter().any(|t| c["type"] == *t))
            .cloned()
            .collect();
        kept.extend(add);
        json!(kept)
    }

    fn patch_status(api: &Cluster, claim: &Value, status: Value) -> Result<Value, ControllerError> {
        Ok(api.merge_patch_status(
            "v1",
            "PersistentVolumeClaim",
            Some(meta(claim, "namespace")),
            meta(claim, "name"),
            &json!({"status": status}),
        )?)
    }

    fn sync(&self, api: &Cluster, claim: &Value) -> Result<(), ControllerError> {
        if claims::deleting(claim) || claim["status"]["phase"] != "Bound" {
            return Ok(());
        }
        let Some(pv) = api.get_opt(
            "v1",
            "PersistentVolume",
            None,
            claim["spec"]["volumeName"].as_str().unwrap_or_default(),
        )?
        else {
            return Ok(());
        };
        if pv["spec"]["csi"]["driver"] != self.driver.profile.driver()
            || pv["spec"]["claimRef"]["uid"] != claim["metadata"]["uid"]
        {
            return Ok(());
        }
        let ns = meta(claim, "namespace");
        let name = meta(claim, "name");
        let want = quantity::parse(&claim["spec"]["resources"]["requests"]["storage"]).unwrap_or(0);
        let have = quantity::parse(&claim["status"]["capacity"]["storage"]).unwrap_or(0);
        let allocated = quantity::parse(&claim["status"]["allocatedResources"]["storage"]);
        let resize_status = claim["status"]["allocatedResourceStatuses"]["storage"].as_str();
        let users = claims::pods_using(api, ns, name)?;
        if resize_status == Some("NodeResizePending") && allocated.is_some_and(|a| want <= a) {
            return self.node_expand(api, claim, &pv, &users);
        }
        if want <= have {
            return Ok(());
        }
        let already =
            resize_status == Some("ControllerResizeInProgress") && allocated == Some(want);
        let expansion = self.driver.expansion;
        if !already {
            events::record(
                api,
                claim,
                NORMAL,
                "ExternalExpanding",
                "waiting for an external controller to expand this PVC",
                "volume_expand",
            )?;
        }
        if expansion == Expansion::None {
            return Ok(());
        }
        let Some(sc) = claims::class_of(api, claim)? else {
            return Ok(());
        };
        if sc["allowVolumeExpansion"] != true {
            return Ok(());
        }
        let pv_name = meta(&pv, "name");
        let claim = if already {
            claim.clone()
        } else {
            Self::patch_status(
                api,
                claim,
                json!({
                    "conditions": Self::conditions(claim, Some(json!({
                        "type": "Resizing", "status": "True",
                        "lastTransitionTime": crate::meta::now(),
                    }))),
                    "allocatedResources": {"storage": quantity::format(want)},
                    "allocatedResourceStatuses": {"storage": "ControllerResizeInProgress"},
                }),
            )?
        };
        if expansion == Expansion::Offline && !users.is_empty() {
            if already {
                return Ok(());
            }
            return events::record(
                api,
                &claim,
                WARNING,
                "VolumeResizeFailed",
                &format!(
                    "Unable to expand {ns}/{name} because CSI driver {} only supports offline expansion and volume is currently in-use",
                    self.driver.profile.driver()
                ),
                &self.component(),
            );
        }
        events::record(
            api,
            &claim,
            NORMAL,
            "Resizing",
            &format!("External resizer is resizing volume {pv_name}"),
            &self.component(),
        )?;
        let handle = pv["spec"]["csi"]["volumeHandle"]
            .as_str()
            .unwrap_or_default();
        let size = match self.driver.expand_volume(handle, want) {
            Ok(size) => size,
            Err(e) => {
                let message = format!(
                    "resize volume \"{pv_name}\" by resizer \"{}\" failed: {e}",
                    self.driver.profile.driver()
                );
                Self::patch_status(
                    api,
                    &claim,
                    json!({"conditions": Self::conditions(&claim, Some(json!({
                        "type": "ControllerResizeError", "status": "True",
                        "lastTransitionTime": crate::meta::now(),
                        "message": format!("CSI resizer failed to expand volume: {e}"),
                    })))}),
                )?;
                events::record(
                    api,
                    &claim,
                    WARNING,
                    "VolumeResizeFailed",
                    &message,
                    &self.component(),
                )?;
                // Retried with backoff, as the resizer's work queue does.
                return Err(ControllerError::Other(message));
            }
        };
        api.merge_patch(
            "v1",
            "PersistentVolume",
            None,
            pv_name,
            &json!({"spec": {"capacity": {"storage": quantity::format(size)}}}),
        )?;
        if self.driver.profile.node_expansion(claims::is_block(&claim)) {
            let claim = Self::patch_status(
                api,
                &claim,
                json!({
                    "conditions": Self::conditions(&claim, Some(json!({
                        "type": "FileSystemResizePending", "status": "True",
                        "lastTransitionTime": crate::meta::now(),
                        "message": "Waiting for user to (re-)start a pod to finish file system resize of volume on node.",
                    }))),
                    "allocatedResources": {"storage": quantity::format(size)},
                    "allocatedResourceStatuses": {"storage": "NodeResizePending"},
                }),
            )?;
            events::record(
                api,
                &claim,
                NORMAL,
                "FileSystemResizeRequired",
                "Require file system resize of volume on node",
                &self.component(),
            )?;
            let pv = api.get("v1", "PersistentVolume", None, pv_name)?;
            return self.node_expand(api, &claim, &pv, &users);
        }
        let claim = Self::patch_status(
            api,
            &claim,
            json!({
                "capacity": {"storage": quantity::format(size)},
                "conditions": Self::conditions(&claim, None),
                "allocatedResources": {"storage": quantity::format(size)},
                "allocatedResourceStatuses": {"storage": null},
            }),
        )?;
        events::record(
            api,
            &claim,
            NORMAL,
            "VolumeResizeSuccessful",
            "Resize volume succeeded",
            &self.component(),
        )
    }

    /// kubelet's `NodeExpandVolume` once a scheduled pod uses the claim.
    fn node_expand(
        &self,
        api: &Cluster,
        claim: &Value,
        pv: &Value,
        users: &[Value],
    ) -> Result<(), ControllerError> {
        let Some(node) = users.iter().find_map(claims::pod_node) else {
            return Ok(());
        };
        let claim = Self::patch_status(
            api,
            claim,
            json!({
                "capacity": pv["spec"]["capacity"],
                "conditions": Self::conditions(claim, None),
                "allocatedResourceStatuses": {"storage": null},
            }),
        )?;
        events::record(
            api,
            &claim,
            NORMAL,
            "FileSystemResizeSuccessful",
            &format!(
                "MountVolume.NodeExpandVolume succeeded for volume \"{}\" {node}",
                meta(pv, "name")
            ),
            "kubelet",
        )
    }
}

#[async_trait]
impl Controller for Resizer {
    fn name(&self) -> &str {
        &self.name
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
        let Some(ns) = ev.namespace.as_deref() else {
            return Ok(());
        };
        match (ev.resource.as_str(), ev.kind) {
            ("persistentvolumeclaims", EventType::Deleted) => Ok(()),
            ("persistentvolumeclaims", _) => {
                match api.get_opt("v1", "PersistentVolumeClaim", Some(ns), &ev.name)? {
                    Some(claim) => self.sync(api, &claim),
                    None => Ok(()),
                }
            }
            ("pods", _) => {
                // A pod arriving finishes node steps; a pod going lets offline expansion run.
                for name in claims::claims_of(&ev.object) {
                    if let Some(claim) =
                        api.get_opt("v1", "PersistentVolumeClaim", Some(ns), &name)?
                    {
                        self.sync(api, &claim)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
