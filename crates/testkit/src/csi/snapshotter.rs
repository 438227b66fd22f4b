//! Snapshots: the snapshot-controller (common controller) and the driver's csi-snapshotter
//! sidecar, for dynamically provisioned VolumeSnapshots of the driver's claims.
//!
//! Upstream read for this: kubernetes-csi/external-snapshotter
//! `pkg/common-controller/snapshot_controller.go` (`createSnapshotContent`: content
//! `snapcontent-<snapshot uid>`, the default class of the driver, finalizers
//! `snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection`,
//! `volumesnapshot-bound-protection`, `volumesnapshotcontent-bound-protection`; status
//! `boundVolumeSnapshotContentName`, `readyToUse`, `restoreSize`, `creationTime`, `error`) and
//! `pkg/sidecar-controller/snapshot_controller.go` (`CreateSnapshot`, content status
//! `snapshotHandle`, `creationTime` in nanoseconds, `restoreSize` in bytes, `readyToUse`),
//! the CRDs in `client/config/crd`.
//!
//! - A VolumeSnapshot of a bound claim of the driver gets its finalizers, then the content
//!   `snapcontent-<uid>` (the class's `deletionPolicy`, `source.volumeHandle`,
//!   `sourceVolumeMode`, `volumeSnapshotRef`), `status.boundVolumeSnapshotContentName` and
//!   `readyToUse: false`. A snapshot of a claim not yet bound waits for it.
//! - The sidecar (only for a driver that snapshots; one that does not has no sidecar, so its
//!   snapshots stay unready, as on a real cluster) takes the driver snapshot
//!   `snapshot-<uid>` and marks content and snapshot ready, with events `CreatingSnapshot`,
//!   `SnapshotCreated`, `SnapshotReady`.
//! - No class named and no default class of the driver, a class of another driver, a missing
//!   class or claim: `status.error.message` (`Failed to ...`) and a `Warning` event.
//! - Deleting a VolumeSnapshot: with `deletionPolicy: Delete` the driver snapshot and the content
//!   go; with `Retain` the content stays (unbound); then the snapshot's finalizers go.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::claims::{self, SNAP_API, meta};
use super::events::{self, NORMAL, WARNING};
use super::quantity;
use super::state::DriverState;
use crate::cluster::{Cluster, ObjectEvent};
use crate::controllers::{Controller, ControllerApi, ControllerError, Watched};
use crate::store::EventType;

const AS_SOURCE: &str = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection";
const BOUND: &str = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection";
const CONTENT_BOUND: &str = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection";
const DEFAULT_CLASS: &str = "snapshot.storage.kubernetes.io/is-default-class";

/// The snapshot controller and csi-snapshotter of one driver.
pub(crate) struct Snapshotter {
    name: String,
    driver: DriverState,
}

impl Snapshotter {
    pub(crate) fn new(driver: DriverState) -> Self {
        Snapshotter {
            name: format!("csi-snapshotter-{}", driver.profile.short_name()),
            driver,
        }
    }

    fn fail(
        &self,
        api: &Cluster,
        vs: &Value,
        reason: &str,
        message: &str,
    ) -> Result<(), ControllerError> {
        if vs["status"]["error"]["message"] == message {
            return Ok(());
        }
        api.merge_patch_status(
            SNAP_API,
            "VolumeSnapshot",
            Some(meta(vs, "namespace")),
            meta(vs, "name"),
            &json!({"status": {"readyToUse": false,
                               "error": {"message": message, "time": crate::meta::now()}}}),
        )?;
        events::record(api, vs, WARNING, reason, message, "snapshot-controller")
    }

    /// The class for a snapshot of a volume of this driver.
    fn class(&self, api: &Cluster, vs: &Value) -> Result<Result<Value, String>, ControllerError> {
        let driver = self.driver.profile.driver();
        match vs["spec"]["volumeSnapshotClassName"].as_str() {
            Some(name) => match api.get_opt(SNAP_API, "VolumeSnapshotClass", None, name)? {
                None => Ok(Err(format!(
                    "Failed to get snapshot class with error volumesnapshotclass.snapshot.storage.k8s.io \"{name}\" not found"
                ))),
                Some(c) if c["driver"] != driver => Ok(Err(format!(
                    "Failed to create snapshot content with error snapshot class {name} is for driver {}, the source volume is of driver {driver}",
                    c["driver"].as_str().unwrap_or_default()
                ))),
                Some(c) => Ok(Ok(c)),
            },
            None => {
                let defaults: Vec<Value> = api
                    .list(SNAP_API, "VolumeSnapshotClass", None)?
                    .into_iter()
                    .filter(|c| {
                        c["driver"] == driver
                            && c["metadata"]["annotations"][DEFAULT_CLASS] == "true"
                    })
                    .collect();
                match defaults.len() {
                    1 => Ok(Ok(defaults.into_iter().next().unwrap_or_default())),
                    0 => Ok(Err("Failed to set default snapshot class with error cannot find default snapshot class".into())),
                    n => Ok(Err(format!("Failed to set default snapshot class with error {n} default snapshot classes were found"))),
                }
            }
        }
    }

    fn sync(&self, api: &Cluster, vs: &Value) -> Result<(), ControllerError> {
        if claims::deleting(vs) {
            return self.delete(api, vs);
        }
        if vs["status"]["readyToUse"] == true {
            return Ok(());
        }
        let ns = meta(vs, "namespace");
        let name = meta(vs, "name");
        let uid = meta(vs, "uid");
        let Some(claim_name) = vs["spec"]["source"]["persistentVolumeClaimName"].as_str() else {
            return Ok(());
        };
        let Some(claim) = api.get_opt("v1", "PersistentVolumeClaim", Some(ns), claim_name)? else {
            return self.fail(api, vs, "SnapshotContentCreationFailed", &format!(
                "Failed to create snapshot content with error failed to get input parameters to create snapshot {name}: \"persistentvolumeclaims \\\"{claim_name}\\\" not found\""
            ));
        };
        if claim["status"]["phase"] != "Bound" {
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
        if pv["spec"]["csi"]["driver"] != self.driver.profile.driver() {
            return Ok(());
        }
        let class = match self.class(api, vs)? {
            Ok(c) => c,
            Err(message) => return self.fail(api, vs, "SnapshotContentCreationFailed", &message),
        };
        if vs["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|f| !f.iter().any(|x| x == BOUND))
        {
            api.merge_patch(
                SNAP_API,
                "VolumeSnapshot",
                Some(ns),
                name,
                &json!({"metadata": {"finalizers": claims::finalizers_with(vs, &[AS_SOURCE, BOUND])}}),
            )?;
        }
        let content_name = format!("snapcontent-{uid}");
        let handle = pv["spec"]["csi"]["volumeHandle"]
            .as_str()
            .unwrap_or_default();
        let content = match api.get_opt(SNAP_API, "VolumeSnapshotContent", None, &content_name)? {
            Some(c) => c,
            None => api.create(json!({
                "apiVersion": SNAP_API, "kind": "VolumeSnapshotContent",
                "metadata": {"name": content_name, "finalizers": [CONTENT_BOUND]},
                "spec": {
                    "deletionPolicy": class["deletionPolicy"].as_str().unwrap_or("Delete"),
                    "driver": self.driver.profile.driver(),
                    "source": {"volumeHandle": handle},
                    "sourceVolumeMode": pv["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
                    "volumeSnapshotClassName": meta(&class, "name"),
                    "volumeSnapshotRef": {
                        "apiVersion": SNAP_API, "kind": "VolumeSnapshot",
                        "namespace": ns, "name": name, "uid": uid,
                    },
                },
            }))?,
        };
        if vs["status"]["boundVolumeSnapshotContentName"] != content_name.as_str() {
            api.merge_patch_status(
                SNAP_API,
                "VolumeSnapshot",
                Some(ns),
                name,
                &json!({"status": {"boundVolumeSnapshotContentName": content_name, "readyToUse": false}}),
            )?;
            events::record(
                api,
                vs,
                NORMAL,
                "CreatingSnapshot",
                &format!("Waiting for a snapshot {ns}/{name} to be created by the CSI driver."),
                "snapshot-controller",
            )?;
        }
        if !self.driver.profile.snapshots() {
            // No csi-snapshotter sidecar runs for this driver.
            return Ok(());
        }
        let snapshot = match self
            .driver
            .create_snapshot(&format!("snapshot-{uid}"), handle)
        {
            Ok(s) => s,
            Err(e) => {
                let message = format!(
                    "Failed to check and update snapshot content: failed to take snapshot of the volume {handle}: \"{e}\""
                );
                api.merge_patch_status(
                    SNAP_API,
                    "VolumeSnapshotContent",
                    None,
                    &content_name,
                    &json!({"status": {"readyToUse": false, "error": {"message": message, "time": crate::meta::now()}}}),
                )?;
                return self.fail(api, vs, "SnapshotCreationFailed", &message);
            }
        };
        let created = jiff::Timestamp::now();
        if content["status"]["readyToUse"] != true {
            api.merge_patch_status(
                SNAP_API,
                "VolumeSnapshotContent",
                None,
                &content_name,
                &json!({"status": {
                    "snapshotHandle": snapshot.handle,
                    "creationTime": created.as_nanosecond() as i64,
                    "restoreSize": snapshot.size_bytes,
                    "readyToUse": true,
                }}),
            )?;
        }
        api.merge_patch_status(
            SNAP_API,
            "VolumeSnapshot",
            Some(ns),
            name,
            &json!({"status": {
                "boundVolumeSnapshotContentName": content_name,
                "creationTime": created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                "readyToUse": true,
                "restoreSize": quantity::format(snapshot.size_bytes),
                "error": null,
            }}),
        )?;
        let vs = api.get(SNAP_API, "VolumeSnapshot", Some(ns), name)?;
        api.merge_patch(
            SNAP_API,
            "VolumeSnapshot",
            Some(ns),
            name,
            &json!({"metadata": {"finalizers": claims::finalizers_without(&vs, &[AS_SOURCE])}}),
        )?;
        events::record(
            api,
            &vs,
            NORMAL,
            "SnapshotCreated",
            &format!("Snapshot {ns}/{name} was successfully created by the CSI driver."),
            "snapshot-controller",
        )?;
        events::record(
            api,
            &vs,
            NORMAL,
            "SnapshotReady",
            &format!("Snapshot {ns}/{name} is ready to use."),
            "snapshot-controller",
        )
    }

    /// A snapshot marked for deletion: its content by policy, then its finalizers.
    fn delete(&self, api: &Cluster, vs: &Value) -> Result<(), ControllerError> {
        let content_name = vs["status"]["boundVolumeSnapshotContentName"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("snapcontent-{}", meta(vs, "uid")));
        if let Some(content) =
            api.get_opt(SNAP_API, "VolumeSnapshotContent", None, &content_name)?
            && content["spec"]["volumeSnapshotRef"]["uid"] == vs["metadata"]["uid"]
        {
            if content["spec"]["deletionPolicy"] == "Delete" {
                if let Some(handle) = content["status"]["snapshotHandle"].as_str()
                    && content["spec"]["driver"] == self.driver.profile.driver()
                {
                    self.driver.delete_snapshot(handle);
                }
                api.merge_patch(
                    SNAP_API,
                    "VolumeSnapshotContent",
                    None,
                    &content_name,
                    &json!({"metadata": {"finalizers": claims::finalizers_without(&content, &[CONTENT_BOUND])}}),
                )?;
                claims::delete_quietly(
                    api,
                    SNAP_API,
                    "VolumeSnapshotContent",
                    None,
                    &content_name,
                )?;
            } else if content["metadata"]["finalizers"].is_array() {
                api.merge_patch(
                    SNAP_API,
                    "VolumeSnapshotContent",
                    None,
                    &content_name,
                    &json!({"metadata": {"finalizers": claims::finalizers_without(&content, &[CONTENT_BOUND])}}),
                )?;
            }
        }
        let kept = claims::finalizers_without(vs, &[AS_SOURCE, BOUND]);
        if kept.len() != vs["metadata"]["finalizers"].as_array().map_or(0, Vec::len) {
            api.merge_patch(
                SNAP_API,
                "VolumeSnapshot",
                Some(meta(vs, "namespace")),
                meta(vs, "name"),
                &json!({"metadata": {"finalizers": kept}}),
            )?;
        }
        Ok(())
    }
}

#[async_trait]
impl Controller for Snapshotter {
    fn name(&self) -> &str {
        &self.name
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("snapshot.storage.k8s.io", "volumesnapshots"),
            Watched::new("", "persistentvolumeclaims"),
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
            (_, EventType::Deleted) => Ok(()),
            ("volumesnapshots", _) => {
                match api.get_opt(SNAP_API, "VolumeSnapshot", Some(ns), &ev.name)? {
                    Some(vs) => self.sync(api, &vs),
                    None => Ok(()),
                }
            }
            ("persistentvolumeclaims", _) if ev.object["status"]["phase"] == "Bound" => {
                // Snapshots waiting for this claim to be bound.
                for vs in api.list(SNAP_API, "VolumeSnapshot", Some(ns))? {
                    if vs["spec"]["source"]["persistentVolumeClaimName"] == ev.name.as_str()
                        && vs["status"]["readyToUse"] != true
                    {
                        self.sync(api, &vs)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
