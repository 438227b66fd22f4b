//! A stand-in for CDI's DataVolume controller and importer.
//!
//! A DataVolume with an `http` (or `blank`) source gets a PersistentVolumeClaim of its name (its
//! labels, the `storage`/`pvc` size, access modes, volume mode and class, owned by the
//! DataVolume); the claim is bound by the [`super::PvcBinder`] (a StorageClass must exist, as on
//! a real cluster). While the claim's class binds `WaitForFirstConsumer` and no consumer was
//! scheduled (no `volume.kubernetes.io/selected-node`), the DataVolume is in CDI's phase
//! `WaitForFirstConsumer` (the simulated KubeVirt then starts the VM, whose temporary pod is
//! that consumer). The DataVolume then moves, one step per reconcile: `ImportScheduled` →
//! `ImportInProgress` with `progress` `"0.00%"`, `"50.00%"`, `"100.00%"` → `Succeeded`, with
//! CDI's `Bound`, `Running` and `Ready` conditions, each with `lastHeartbeatTime` (now) and
//! `lastTransitionTime` (kept while the condition's status stays, now when it changes), as
//! `updateCondition` in CDI's `pkg/controller/datavolume/conditions.go` sets them. An import whose URL host ends in `.invalid`,
//! or contains a substring given to [`CdiController::failing_url`], ends `Failed` with a
//! `Running` condition saying why. Clone (`pvc`) and snapshot sources succeed like imports.
//! Registry sources (`registry.url`, `docker://`) import like http ones.
//!
//! Every import the importer runs (an http or registry DataVolume entering `ImportInProgress`)
//! is counted ([`CdiController::imports`]), so a test can assert how many downloads happened.
//! DataImportCron, DataSource and clones from a DataSource (`spec.sourceRef`) are
//! [`super::cdi_catalog`]'s.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};

use super::cdi_catalog;
use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::ObjectEvent;
use crate::store::EventType;

const DV: (&str, &str) = ("cdi.kubevirt.io/v1beta1", "DataVolume");

/// Simulated CDI. Not registered by default: add it with
/// [`crate::TestServerBuilder::controller`].
#[derive(Clone, Debug, Default)]
pub struct CdiController {
    failing: Arc<Mutex<Vec<String>>>,
    /// The version of the image published at each registry URL (0 unless bumped).
    versions: Arc<Mutex<std::collections::HashMap<String, u64>>>,
    /// The source URL of every import run, in order.
    imports: Arc<Mutex<Vec<String>>>,
}

impl CdiController {
    /// A controller failing only `.invalid` hosts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Imports whose URL contains `fragment` fail (also after start: clones share the list).
    pub fn failing_url(self, fragment: impl Into<String>) -> Self {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(fragment.into());
        self
    }

    /// Publishes a new version of the image at registry URL `url` (a new digest): a
    /// DataImportCron with a schedule importing it imports again when next reconciled (clones
    /// share the versions).
    pub fn publish_image(&self, url: &str) {
        *self
            .versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(url.to_string())
            .or_default() += 1;
    }

    fn version(&self, url: &str) -> u64 {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .copied()
            .unwrap_or_default()
    }

    /// How many imports (downloads) the importer has run, of every source (clones share the
    /// count).
    ///
    /// ```
    /// assert_eq!(kubecloud_testkit::CdiController::new().imports(), 0);
    /// ```
    pub fn imports(&self) -> usize {
        self.imports.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// How many imports ran from a URL containing `fragment`.
    pub fn imports_of(&self, fragment: &str) -> usize {
        self.imports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|u| u.contains(fragment))
            .count()
    }

    fn source_url(dv: &Value) -> Option<&str> {
        let source = &dv["spec"]["source"];
        source["http"]["url"]
            .as_str()
            .or_else(|| source["registry"]["url"].as_str())
    }

    fn fails(&self, url: &str) -> Option<String> {
        let host = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split(['/', ':']).next())
            .unwrap_or("");
        if host.ends_with(".invalid") {
            return Some(format!(
                "Unable to connect to http data source: dial tcp: lookup {host}: no such host"
            ));
        }
        let failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        failing
            .iter()
            .any(|f| url.contains(f.as_str()))
            .then(|| format!("Unable to process data: HTTP 404 Not Found from {url}"))
    }

    fn storage(dv: &Value) -> &Value {
        if dv["spec"]["storage"].is_object() {
            &dv["spec"]["storage"]
        } else {
            &dv["spec"]["pvc"]
        }
    }

    fn claim(dv: &Value) -> Value {
        let ns = dv["metadata"]["namespace"].clone();
        let name = dv["metadata"]["name"].clone();
        let storage = Self::storage(dv);
        let mut spec = json!({
            "accessModes": storage["accessModes"].as_array().cloned().unwrap_or_else(|| vec![json!("ReadWriteOnce")]),
            "resources": storage["resources"].clone(),
            "volumeMode": storage["volumeMode"].as_str().unwrap_or("Filesystem"),
        });
        if let Some(class) = storage["storageClassName"].as_str() {
            spec["storageClassName"] = json!(class);
        }
        let mut labels = dv["metadata"]["labels"].clone();
        if !labels.is_object() {
            labels = json!({});
        }
        labels["app"] = json!("containerized-data-importer");
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": labels,
                "annotations": {"cdi.kubevirt.io/storage.contentType": "kubevirt"},
                "ownerReferences": [{
                    "apiVersion": DV.0, "kind": DV.1,
                    "name": dv["metadata"]["name"], "uid": dv["metadata"]["uid"],
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "spec": spec,
        })
    }

    fn status(phase: &str, progress: &str, bound: bool, running: (bool, &str, &str)) -> Value {
        let c = |type_: &str, status: bool, reason: &str, message: &str| json!({"type": type_, "status": if status {"True"} else {"False"}, "reason": reason, "message": message});
        json!({"status": {
            "phase": phase,
            "progress": progress,
            "conditions": [
                c("Bound", bound, if bound {"Bound"} else {"Pending"}, ""),
                c("Running", running.0, running.1, running.2),
                c("Ready", phase == "Succeeded", if phase == "Succeeded" {"Completed"} else {phase}, ""),
            ],
        }})
    }

    /// Sets `lastHeartbeatTime` of every condition to now and `lastTransitionTime` to the one
    /// `dv` has for that condition while its status stays, else to now.
    fn stamp_conditions(dv: &Value, conditions: &mut Value) {
        let now = crate::meta::now();
        let previous = dv["status"]["conditions"].as_array();
        for c in conditions.as_array_mut().into_iter().flatten() {
            let kept = previous
                .into_iter()
                .flatten()
                .find(|p| p["type"] == c["type"] && p["status"] == c["status"])
                .and_then(|p| p["lastTransitionTime"].as_str())
                .map(str::to_string);
            c["lastTransitionTime"] = json!(kept.unwrap_or_else(|| now.clone()));
            c["lastHeartbeatTime"] = json!(now);
        }
    }

    async fn reconcile_dv(&self, api: &ControllerApi, dv: &Value) -> Result<(), ControllerError> {
        if dv["metadata"]["deletionTimestamp"].is_string() {
            return Ok(());
        }
        let ns = dv["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = dv["metadata"]["name"].as_str().unwrap_or_default();
        let phase = dv["status"]["phase"].as_str().unwrap_or("");
        if matches!(phase, "Succeeded" | "Failed") {
            return Ok(());
        }
        // A clone from a DataSource: its source claim, or nothing to do yet.
        let source = if dv["spec"]["sourceRef"].is_object() {
            let Some((source_ns, source_name)) = cdi_catalog::source_of(api, dv).await? else {
                return Ok(());
            };
            match api
                .get_opt(
                    "v1",
                    "PersistentVolumeClaim",
                    Some(&source_ns),
                    &source_name,
                )
                .await?
            {
                Some(claim) => Some(claim),
                None => return Ok(()),
            }
        } else {
            None
        };
        if let Some(source) = &source
            && let (Some(want), Some(have)) = (
                crate::builtin::quantity(&Self::storage(dv)["resources"]["requests"]["storage"]),
                crate::builtin::quantity(&source["spec"]["resources"]["requests"]["storage"]),
            )
            && want < have
        {
            let why = "The clone doesn't meet the validation requirements: target resources requests storage size is smaller than the source";
            let mut status = Self::status(
                "Failed",
                "N/A",
                false,
                (false, "CloneValidationFailed", why),
            );
            Self::stamp_conditions(dv, &mut status["status"]["conditions"]);
            api.merge_patch_status(DV.0, DV.1, Some(ns), name, &status)
                .await?;
            return Ok(());
        }
        let claim = match api
            .get_opt("v1", "PersistentVolumeClaim", Some(ns), name)
            .await?
        {
            Some(c) => c,
            None => {
                let mut claim = Self::claim(dv);
                if let Some(source) = &source {
                    // No size asked for: CDI takes the source's (`renderPvcSpec`).
                    if claim["spec"]["resources"]["requests"]["storage"].is_null() {
                        claim["spec"]["resources"] = json!({"requests": {
                            "storage": source["spec"]["resources"]["requests"]["storage"].clone()
                        }});
                    }
                    // CDI's planner: the storage's own clone within one class, else a copy.
                    let same_class = source["spec"]["storageClassName"]
                        == claim["spec"]["storageClassName"]
                        && !claim["spec"]["storageClassName"].is_null();
                    claim["metadata"]["annotations"]["cdi.kubevirt.io/cloneType"] =
                        json!(if same_class { "csi-clone" } else { "copy" });
                }
                api.create(claim).await?
            }
        };
        let bound = claim["status"]["phase"] == "Bound";
        let set = async |status: Value| {
            api.merge_patch_status(DV.0, DV.1, Some(ns), name, &status)
                .await
                .map(|_| ())
        };
        let waits_for_consumer = !bound
            && claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"].is_null()
            && match claim["spec"]["storageClassName"].as_str() {
                Some(sc) => api
                    .get_opt("storage.k8s.io/v1", "StorageClass", None, sc)
                    .await?
                    .is_some_and(|sc| sc["volumeBindingMode"] == "WaitForFirstConsumer"),
                None => false,
            };
        let immediate = dv["metadata"]["annotations"]["cdi.kubevirt.io/storage.bind.immediate.requested"]
            == "true";
        if waits_for_consumer && immediate {
            // Immediate binding asked for: CDI's importer pod is the first consumer, scheduled
            // on some node.
            let nodes = api.list("v1", "Node", None).await?;
            let mut names: Vec<&str> = nodes
                .iter()
                .filter_map(|n| n["metadata"]["name"].as_str())
                .collect();
            names.sort_unstable();
            if let Some(node) = names.first() {
                api.merge_patch(
                    "v1",
                    "PersistentVolumeClaim",
                    Some(ns),
                    name,
                    &json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": node}}}),
                )
                .await?;
            }
        }
        let waits_for_consumer = waits_for_consumer && !immediate;
        let mut status = match phase {
            _ if waits_for_consumer => {
                Self::status("WaitForFirstConsumer", "N/A", false, (false, "Pending", ""))
            }
            _ if !bound => Self::status("Pending", "N/A", false, (false, "Pending", "")),
            "" | "Pending" | "WaitForFirstConsumer" if source.is_some() => {
                Self::status("CloneScheduled", "N/A", true, (false, "Pending", ""))
            }
            "CloneScheduled" => {
                Self::status("CloneInProgress", "0.00%", true, (true, "Pending", ""))
            }
            "CloneInProgress" => match dv["status"]["progress"].as_str() {
                Some("0.00%") => {
                    Self::status("CloneInProgress", "100.00%", true, (true, "Pending", ""))
                }
                _ => Self::status("Succeeded", "100.0%", true, (false, "Completed", "")),
            },
            "" | "Pending" | "WaitForFirstConsumer" => {
                Self::status("ImportScheduled", "N/A", true, (false, "Pending", ""))
            }
            "ImportScheduled" => {
                if let Some(url) = Self::source_url(dv) {
                    self.imports
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(url.to_string());
                }
                Self::status("ImportInProgress", "0.00%", true, (true, "Pending", ""))
            }
            "ImportInProgress" => {
                let url = Self::source_url(dv).unwrap_or("");
                if let Some(why) = self.fails(url) {
                    Self::status("Failed", "N/A", true, (false, "Error", &why))
                } else {
                    match dv["status"]["progress"].as_str() {
                        Some("0.00%") => {
                            Self::status("ImportInProgress", "50.00%", true, (true, "Pending", ""))
                        }
                        Some("50.00%") => {
                            Self::status("ImportInProgress", "100.00%", true, (true, "Pending", ""))
                        }
                        _ => Self::status("Succeeded", "100.0%", true, (false, "Completed", "")),
                    }
                }
            }
            _ => return Ok(()),
        };
        status["status"]["claimName"] = json!(name);
        Self::stamp_conditions(dv, &mut status["status"]["conditions"]);
        set(status).await?;
        Ok(())
    }
}

#[async_trait]
impl Controller for CdiController {
    fn name(&self) -> &str {
        "cdi-deployment"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("cdi.kubevirt.io", "datavolumes"),
            Watched::new("cdi.kubevirt.io", "datasources"),
            Watched::new("cdi.kubevirt.io", "dataimportcrons"),
            Watched::new("", "persistentvolumeclaims"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let ns = ev.namespace.as_deref();
        let version = |url: &str| self.version(url);
        match ev.resource.as_str() {
            "dataimportcrons" => {
                if ev.kind == EventType::Deleted {
                    return cdi_catalog::cleanup_cron(api, ns.unwrap_or_default(), &ev.name).await;
                }
                match api
                    .get_opt(cdi_catalog::CRON.0, cdi_catalog::CRON.1, ns, &ev.name)
                    .await?
                {
                    Some(cron) if cron["metadata"]["deletionTimestamp"].is_null() => {
                        cdi_catalog::reconcile_cron(api, &cron, version).await
                    }
                    _ => Ok(()),
                }
            }
            "datasources" => {
                if ev.kind != EventType::Deleted
                    && let Some(ds) = api
                        .get_opt(cdi_catalog::DS.0, cdi_catalog::DS.1, ns, &ev.name)
                        .await?
                {
                    cdi_catalog::reconcile_data_source(api, &ds).await?;
                }
                // Clones waiting for this DataSource's source.
                for dv in cdi_catalog::cloning_from(api, ns.unwrap_or_default(), &ev.name).await? {
                    self.reconcile_dv(api, &dv).await?;
                }
                Ok(())
            }
            _ => {
                if ev.kind != EventType::Deleted {
                    // A claim event concerns the DataVolume of the same name, if any.
                    if let Some(dv) = api.get_opt(DV.0, DV.1, ns, &ev.name).await? {
                        self.reconcile_dv(api, &dv).await?;
                    }
                }
                // Crons importing it and DataSources pointing at it.
                cdi_catalog::requeue_for(api, ns.unwrap_or_default(), &ev.name, version).await
            }
        }
    }
}
