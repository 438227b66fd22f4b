//! A stand-in for the LINSTOR CSI driver (`linstor.csi.linbit.com`) with its external
//! provisioner, resizer and snapshotter, acting through the API and the LINSTOR double.
//!
//! - A Pending PVC whose StorageClass has provisioner `linstor.csi.linbit.com` gets a LINSTOR
//!   resource definition `pvc-<uid>`: spawned from the class's `linstor.csi.linbit.com/resourceGroup`
//!   with its `placementCount` (and `storagePool`), cloned (`dataSource` PVC: `POST .../clone`,
//!   then the clone status until `COMPLETE`) or restored (`dataSource` VolumeSnapshot: create the
//!   definition, restore its volume definition, restore its resources), grown to the requested size
//!   when larger than the source. Then a bound PersistentVolume `pvc-<uid>` (`csi.driver`
//!   `linstor.csi.linbit.com`, `volumeHandle` = the resource definition) and the claim bound to it.
//!   Every LINSTOR call is idempotent by name, so a retry after a dropped connection finds what the
//!   first attempt made (`FAIL_EXISTS_*`) and carries on: never two resources for one claim.
//!   A placement LINSTOR refuses leaves the claim Pending with a `ProvisioningFailed` event.
//! - A bound claim asking for more than its capacity (class with `allowVolumeExpansion`) has its
//!   volume definition grown, then the PV's and the claim's capacity follow.
//! - A VolumeSnapshot of a bound claim gets a LINSTOR snapshot `snapshot-<uid>` and a
//!   VolumeSnapshotContent `snapcontent-<uid>`, both ready to use.
//! - Deleting a claim deletes its PV and resource definition (reclaim `Delete`); a definition that
//!   still has snapshots stays until its last snapshot goes (as LINSTOR refuses to delete it).
//!   Deleting a VolumeSnapshot deletes its content and the LINSTOR snapshot.
//!
//! The built-in [`PvcBinder`](super::PvcBinder) would bind LINSTOR claims too: start the
//! [`TestServer`](crate::TestServer) `without_default_controllers()` and add the garbage collector,
//! the namespace controller and this controller.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::cluster::ObjectEvent;
use crate::linstor::rc;
use crate::linstor::{LinstorHandle, LinstorServer};
use crate::store::EventType;

/// The CSI driver name.
pub const DRIVER: &str = "linstor.csi.linbit.com";
const SNAP_API: &str = "snapshot.storage.k8s.io/v1";

/// The LINSTOR CSI driver stand-in. See the module docs.
#[derive(Debug)]
pub struct LinstorCsi {
    linstor: LinstorHandle,
}

impl LinstorCsi {
    /// A driver talking to `linstor`.
    pub fn new(linstor: &LinstorServer) -> Self {
        Self {
            linstor: linstor.handle(),
        }
    }
}

fn other(e: impl std::fmt::Display) -> ControllerError {
    ControllerError::Other(e.to_string())
}

/// The code of the first error entry, if any.
fn error_code(answer: &Value) -> Option<u64> {
    answer.as_array()?.iter().find_map(|e| {
        let code = e["ret_code"].as_i64()? as u64;
        (code & rc::MASK_ERROR == rc::MASK_ERROR).then_some(code & 0x7FFF)
    })
}

fn message(answer: &Value) -> String {
    answer
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|e| e["ret_code"].as_i64().is_some_and(|c| c < 0))
        })
        .map(|e| {
            format!(
                "{} {}",
                e["message"].as_str().unwrap_or(""),
                e["details"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default()
}

fn parse_quantity(q: &Value) -> u64 {
    let s = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return 0,
    };
    let units = [
        ("Ki", 1u64 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("Pi", 1 << 50),
        ("k", 1000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    for (u, f) in units {
        if let Some(n) = s.strip_suffix(u) {
            return n.parse::<u64>().unwrap_or(0) * f;
        }
    }
    s.parse().unwrap_or(0)
}

/// Why provisioning cannot go on now.
enum Stop {
    /// LINSTOR refused for good: tell the user, do not retry.
    Refused(String),
    /// Try again later.
    Retry(ControllerError),
}

impl From<ControllerError> for Stop {
    fn from(e: ControllerError) -> Self {
        Stop::Retry(e)
    }
}

impl From<crate::status::ApiError> for Stop {
    fn from(e: crate::status::ApiError) -> Self {
        Stop::Retry(e.into())
    }
}

impl LinstorCsi {
    /// One LINSTOR call; `ok_codes` are error codes that mean "already done".
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Value,
        ok_codes: &[u64],
    ) -> Result<Value, Stop> {
        let (status, answer) = self
            .linstor
            .call(method, path, &body)
            .await
            .map_err(|e| Stop::Retry(other(e)))?;
        if status < 300 {
            return Ok(answer);
        }
        match error_code(&answer) {
            Some(c) if ok_codes.contains(&c) => Ok(answer),
            Some(rc::FAIL_UNKNOWN_ERROR) | None => Err(Stop::Retry(other(format!(
                "LINSTOR answered {status}: {}",
                message(&answer)
            )))),
            Some(_) => Err(Stop::Refused(message(&answer))),
        }
    }

    async fn resize_rd(&self, rd: &str, bytes: u64) -> Result<(), Stop> {
        self.call(
            "PUT",
            &format!("/v1/resource-definitions/{rd}/volume-definitions/0"),
            json!({"size_kib": bytes.div_ceil(1024)}),
            &[],
        )
        .await
        .map(|_| ())
    }

    async fn size_kib(&self, rd: &str) -> Result<u64, Stop> {
        let list = self
            .call("GET", &format!("/v1/resource-definitions?resource_definitions={rd}&with_volume_definitions=true"), Value::Null, &[])
            .await?;
        Ok(list[0]["volume_definitions"][0]["size_kib"]
            .as_u64()
            .unwrap_or(0))
    }

    /// Makes the LINSTOR side of a claim; returns its size in bytes.
    async fn provision(
        &self,
        api: &ControllerApi,
        claim: &Value,
        sc: &Value,
        rd: &str,
    ) -> Result<u64, Stop> {
        let params = &sc["parameters"];
        let rg = params["linstor.csi.linbit.com/resourceGroup"]
            .as_str()
            .unwrap_or("DfltRscGrp");
        let want = parse_quantity(&claim["spec"]["resources"]["requests"]["storage"]);
        let ns = claim["metadata"]["namespace"].as_str().unwrap_or_default();
        let source = &claim["spec"]["dataSource"];
        match source["kind"].as_str() {
            None => {
                let mut filter = json!({});
                if let Some(n) = params["linstor.csi.linbit.com/placementCount"]
                    .as_str()
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    filter["place_count"] = json!(n);
                }
                if let Some(p) = params["linstor.csi.linbit.com/storagePool"].as_str() {
                    filter["storage_pool_list"] = json!([p]);
                }
                self.call(
                    "POST",
                    &format!("/v1/resource-groups/{rg}/spawn"),
                    json!({"resource_definition_name": rd, "volume_sizes": [want.div_ceil(1024)], "select_filter": filter}),
                    &[rc::FAIL_EXISTS_RSC_DFN],
                )
                .await?;
            }
            Some("PersistentVolumeClaim") => {
                let name = source["name"].as_str().unwrap_or_default();
                let src = api
                    .get_opt("v1", "PersistentVolumeClaim", Some(ns), name)
                    .await?
                    .ok_or_else(|| Stop::Refused(format!("source claim {name:?} not found")))?;
                let Some(pv) = src["spec"]["volumeName"].as_str().filter(|v| !v.is_empty()) else {
                    return Err(Stop::Retry(other("source claim not bound yet")));
                };
                let pv = api.get("v1", "PersistentVolume", None, pv).await?;
                let src_rd = pv["spec"]["csi"]["volumeHandle"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.call(
                    "POST",
                    &format!("/v1/resource-definitions/{src_rd}/clone"),
                    json!({"name": rd, "resource_group": rg}),
                    &[rc::FAIL_EXISTS_RSC_DFN],
                )
                .await?;
                let status = self
                    .call(
                        "GET",
                        &format!("/v1/resource-definitions/{src_rd}/clone/{rd}"),
                        Value::Null,
                        &[],
                    )
                    .await?;
                match status["status"].as_str() {
                    Some("COMPLETE") => {}
                    Some("FAILED") => return Err(Stop::Refused("clone failed".into())),
                    _ => return Err(Stop::Retry(other("clone in progress"))),
                }
            }
            Some("VolumeSnapshot") => {
                let name = source["name"].as_str().unwrap_or_default();
                let vs = api
                    .get_opt(SNAP_API, "VolumeSnapshot", Some(ns), name)
                    .await?
                    .ok_or_else(|| Stop::Refused(format!("source snapshot {name:?} not found")))?;
                let Some(content) = vs["status"]["boundVolumeSnapshotContentName"].as_str() else {
                    return Err(Stop::Retry(other("snapshot not bound yet")));
                };
                let vsc = api
                    .get(SNAP_API, "VolumeSnapshotContent", None, content)
                    .await?;
                let src_rd = vsc["spec"]["source"]["volumeHandle"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let snap = vsc["status"]["snapshotHandle"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                self.call(
                    "POST",
                    "/v1/resource-definitions",
                    json!({"resource_definition": {"name": rd, "resource_group_name": rg}}),
                    &[rc::FAIL_EXISTS_RSC_DFN],
                )
                .await?;
                self.call(
                    "POST",
                    &format!("/v1/resource-definitions/{src_rd}/snapshot-restore-volume-definition/{snap}"),
                    json!({"to_resource": rd}),
                    &[rc::FAIL_EXISTS_VLM_DFN],
                )
                .await?;
                self.call(
                    "POST",
                    &format!("/v1/resource-definitions/{src_rd}/snapshot-restore-resource/{snap}"),
                    json!({"to_resource": rd}),
                    &[rc::FAIL_EXISTS_RSC],
                )
                .await?;
            }
            Some(kind) => {
                return Err(Stop::Refused(format!(
                    "unsupported data source kind {kind}"
                )));
            }
        }
        let have = self.size_kib(rd).await? * 1024;
        if have < want {
            self.resize_rd(rd, want).await?;
            return Ok(want.div_ceil(1024) * 1024);
        }
        Ok(have)
    }

    async fn event(
        api: &ControllerApi,
        claim: &Value,
        reason: &str,
        message: &str,
    ) -> Result<(), ControllerError> {
        let ns = claim["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = claim["metadata"]["name"].as_str().unwrap_or_default();
        let uid = claim["metadata"]["uid"].as_str().unwrap_or_default();
        let event_name = format!("{name}.{}", reason.to_ascii_lowercase());
        let event = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": event_name, "namespace": ns},
            "involvedObject": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name, "uid": uid},
            "reason": reason, "message": message, "type": "Warning",
            "source": {"component": DRIVER},
        });
        match api.get_opt("v1", "Event", Some(ns), &event_name).await? {
            Some(_) => Ok(()),
            None => api.create(event).await.map(|_| ()).map_err(Into::into),
        }
    }

    async fn claim_changed(
        &self,
        api: &ControllerApi,
        claim: &Value,
    ) -> Result<(), ControllerError> {
        if claim["metadata"]["deletionTimestamp"].is_string() {
            return Ok(());
        }
        let Some(sc_name) = claim["spec"]["storageClassName"].as_str() else {
            return Ok(());
        };
        let Some(sc) = api
            .get_opt("storage.k8s.io/v1", "StorageClass", None, sc_name)
            .await?
        else {
            return Ok(());
        };
        if sc["provisioner"] != DRIVER {
            return Ok(());
        }
        if claim["status"]["phase"] == "Bound" {
            return self.maybe_expand(api, claim, &sc).await;
        }
        let uid = claim["metadata"]["uid"].as_str().unwrap_or_default();
        let rd = format!("pvc-{uid}");
        let size = match self.provision(api, claim, &sc, &rd).await {
            Ok(size) => size,
            Err(Stop::Retry(e)) => return Err(e),
            Err(Stop::Refused(why)) => {
                return Self::event(api, claim, "ProvisioningFailed", &why).await;
            }
        };
        self.bind(api, claim, &sc, &rd, size).await
    }

    async fn bind(
        &self,
        api: &ControllerApi,
        claim: &Value,
        sc: &Value,
        rd: &str,
        size: u64,
    ) -> Result<(), ControllerError> {
        let ns = claim["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = claim["metadata"]["name"].as_str().unwrap_or_default();
        let uid = claim["metadata"]["uid"].as_str().unwrap_or_default();
        let access_modes = claim["spec"]["accessModes"].clone();
        let capacity = size.to_string();
        let pv = match api.get_opt("v1", "PersistentVolume", None, rd).await? {
            Some(pv) => pv,
            None => api.create(json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {
                    "name": rd,
                    "annotations": {"pv.kubernetes.io/provisioned-by": DRIVER},
                    "finalizers": ["kubernetes.io/pv-protection"],
                },
                "spec": {
                    "capacity": {"storage": capacity},
                    "accessModes": access_modes,
                    "volumeMode": claim["spec"]["volumeMode"].as_str().unwrap_or("Filesystem"),
                    "persistentVolumeReclaimPolicy": sc["reclaimPolicy"].as_str().unwrap_or("Delete"),
                    "storageClassName": sc["metadata"]["name"],
                    "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": ns, "name": name, "uid": uid},
                    "csi": {"driver": DRIVER, "volumeHandle": rd,
                            "volumeAttributes": {"linstor.csi.linbit.com/uses-volume-context": "true"}},
                },
            })).await?,
        };
        if pv["status"]["phase"] != "Bound" {
            let mut bound = pv.clone();
            bound["status"]["phase"] = json!("Bound");
            api.replace_status(bound).await?;
        }
        let mut c = api
            .get("v1", "PersistentVolumeClaim", Some(ns), name)
            .await?;
        if c["spec"]["volumeName"].as_str() != Some(rd) {
            c["spec"]["volumeName"] = json!(rd);
            let a = &mut c["metadata"]["annotations"];
            a["pv.kubernetes.io/bind-completed"] = json!("yes");
            a["pv.kubernetes.io/bound-by-controller"] = json!("yes");
            a["volume.kubernetes.io/storage-provisioner"] = json!(DRIVER);
            c = api.replace(c).await?;
        }
        c["status"] = json!({"phase": "Bound", "accessModes": access_modes, "capacity": {"storage": capacity}});
        api.replace_status(c).await?;
        Ok(())
    }

    async fn maybe_expand(
        &self,
        api: &ControllerApi,
        claim: &Value,
        sc: &Value,
    ) -> Result<(), ControllerError> {
        let want = parse_quantity(&claim["spec"]["resources"]["requests"]["storage"]);
        let have = parse_quantity(&claim["status"]["capacity"]["storage"]);
        if want <= have || sc["allowVolumeExpansion"] != true {
            return Ok(());
        }
        let Some(pv_name) = claim["spec"]["volumeName"].as_str() else {
            return Ok(());
        };
        let mut pv = api.get("v1", "PersistentVolume", None, pv_name).await?;
        let rd = pv["spec"]["csi"]["volumeHandle"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match self.resize_rd(&rd, want).await {
            Ok(()) => {}
            Err(Stop::Retry(e)) => return Err(e),
            Err(Stop::Refused(why)) => {
                return Self::event(api, claim, "VolumeResizeFailed", &why).await;
            }
        }
        let size = (want.div_ceil(1024) * 1024).to_string();
        pv["spec"]["capacity"]["storage"] = json!(size);
        api.replace(pv).await?;
        let mut c = claim.clone();
        c["status"]["capacity"]["storage"] = json!(size);
        api.replace_status(c).await?;
        Ok(())
    }

    async fn claim_deleted(
        &self,
        api: &ControllerApi,
        claim: &Value,
    ) -> Result<(), ControllerError> {
        let uid = claim["metadata"]["uid"].as_str().unwrap_or_default();
        let provisioned_for_claim = |pv: &Value| {
            pv["spec"]["claimRef"]["uid"] == uid && pv["spec"]["csi"]["driver"] == DRIVER
        };
        for pv in api
            .list_where("v1", "PersistentVolume", None, provisioned_for_claim)
            .await?
        {
            let name = pv["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if pv["spec"]["persistentVolumeReclaimPolicy"] != "Delete" {
                let mut released = pv.clone();
                released["status"]["phase"] = json!("Released");
                api.replace_status(released).await?;
                continue;
            }
            let rd = pv["spec"]["csi"]["volumeHandle"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match self
                .call(
                    "DELETE",
                    &format!("/v1/resource-definitions/{rd}"),
                    Value::Null,
                    &[rc::FAIL_EXISTS_SNAPSHOT_DFN],
                )
                .await
            {
                Ok(_) | Err(Stop::Refused(_)) => {}
                Err(Stop::Retry(e)) => return Err(e),
            }
            let mut unprotected = pv.clone();
            if let Some(f) = unprotected["metadata"]["finalizers"].as_array_mut() {
                f.retain(|x| x != "kubernetes.io/pv-protection");
            }
            api.replace(unprotected).await?;
            match api.delete("v1", "PersistentVolume", None, &name).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn snapshot_changed(
        &self,
        api: &ControllerApi,
        vs: &Value,
    ) -> Result<(), ControllerError> {
        if vs["status"]["readyToUse"] == true || vs["metadata"]["deletionTimestamp"].is_string() {
            return Ok(());
        }
        let ns = vs["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = vs["metadata"]["name"].as_str().unwrap_or_default();
        let uid = vs["metadata"]["uid"].as_str().unwrap_or_default();
        let Some(claim_name) = vs["spec"]["source"]["persistentVolumeClaimName"].as_str() else {
            return Ok(());
        };
        let Some(claim) = api
            .get_opt("v1", "PersistentVolumeClaim", Some(ns), claim_name)
            .await?
        else {
            return Ok(());
        };
        let Some(pv_name) = claim["spec"]["volumeName"]
            .as_str()
            .filter(|_| claim["status"]["phase"] == "Bound")
        else {
            return Err(other("source claim not bound yet"));
        };
        let pv = api.get("v1", "PersistentVolume", None, pv_name).await?;
        if pv["spec"]["csi"]["driver"] != DRIVER {
            return Ok(());
        }
        let rd = pv["spec"]["csi"]["volumeHandle"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let snap = format!("snapshot-{uid}");
        match self
            .call(
                "POST",
                &format!("/v1/resource-definitions/{rd}/snapshots"),
                json!({"name": snap}),
                &[rc::FAIL_EXISTS_SNAPSHOT_DFN],
            )
            .await
        {
            Ok(_) => {}
            Err(Stop::Retry(e)) => return Err(e),
            Err(Stop::Refused(why)) => return Err(other(why)),
        }
        let size = match self.size_kib(&rd).await {
            Ok(k) => k * 1024,
            Err(Stop::Retry(e)) => return Err(e),
            Err(Stop::Refused(why)) => return Err(other(why)),
        };
        let class = vs["spec"]["volumeSnapshotClassName"]
            .as_str()
            .unwrap_or_default();
        let policy = api
            .get_opt(SNAP_API, "VolumeSnapshotClass", None, class)
            .await?
            .and_then(|c| c["deletionPolicy"].as_str().map(String::from))
            .unwrap_or_else(|| "Delete".into());
        let content = format!("snapcontent-{uid}");
        let vsc = match api.get_opt(SNAP_API, "VolumeSnapshotContent", None, &content).await? {
            Some(v) => v,
            None => api.create(json!({
                "apiVersion": SNAP_API, "kind": "VolumeSnapshotContent",
                "metadata": {"name": content},
                "spec": {
                    "deletionPolicy": policy, "driver": DRIVER,
                    "source": {"volumeHandle": rd},
                    "volumeSnapshotClassName": class,
                    "volumeSnapshotRef": {"apiVersion": SNAP_API, "kind": "VolumeSnapshot", "namespace": ns, "name": name, "uid": uid},
                },
            })).await?,
        };
        let now = "2026-01-01T00:00:00Z";
        if vsc["status"]["readyToUse"] != true {
            let mut v = vsc.clone();
            v["status"] = json!({"snapshotHandle": snap, "readyToUse": true, "restoreSize": size, "creationTime": 1_767_225_600_000_000_000i64});
            api.replace_status(v).await?;
        }
        let mut s = api.get(SNAP_API, "VolumeSnapshot", Some(ns), name).await?;
        s["status"] = json!({"boundVolumeSnapshotContentName": content, "readyToUse": true,
                             "restoreSize": size.to_string(), "creationTime": now});
        api.replace_status(s).await?;
        Ok(())
    }

    async fn snapshot_deleted(
        &self,
        api: &ControllerApi,
        vs: &Value,
    ) -> Result<(), ControllerError> {
        let uid = vs["metadata"]["uid"].as_str().unwrap_or_default();
        let content = format!("snapcontent-{uid}");
        let Some(vsc) = api
            .get_opt(SNAP_API, "VolumeSnapshotContent", None, &content)
            .await?
        else {
            return Ok(());
        };
        let rd = vsc["spec"]["source"]["volumeHandle"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if vsc["spec"]["deletionPolicy"] == "Delete" {
            let snap = vsc["status"]["snapshotHandle"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match self
                .call(
                    "DELETE",
                    &format!("/v1/resource-definitions/{rd}/snapshots/{snap}"),
                    Value::Null,
                    &[rc::FAIL_NOT_FOUND_SNAPSHOT_DFN],
                )
                .await
            {
                Ok(_) | Err(Stop::Refused(_)) => {}
                Err(Stop::Retry(e)) => return Err(e),
            }
        }
        match api
            .delete(SNAP_API, "VolumeSnapshotContent", None, &content)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        // A definition whose claim went while it had snapshots goes with its last snapshot.
        let has_pv = api
            .list("v1", "PersistentVolume", None)
            .await?
            .iter()
            .any(|pv| pv["spec"]["csi"]["volumeHandle"] == rd.as_str());
        if !has_pv {
            match self
                .call(
                    "DELETE",
                    &format!("/v1/resource-definitions/{rd}"),
                    Value::Null,
                    &[rc::FAIL_EXISTS_SNAPSHOT_DFN],
                )
                .await
            {
                Ok(_) | Err(Stop::Refused(_)) => {}
                Err(Stop::Retry(e)) => return Err(e),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Controller for LinstorCsi {
    fn name(&self) -> &str {
        "linstor-csi"
    }

    fn watches(&self) -> Vec<Watched> {
        vec![
            Watched::new("", "persistentvolumeclaims"),
            Watched::new("snapshot.storage.k8s.io", "volumesnapshots"),
        ]
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let ns = ev.namespace.as_deref();
        match (ev.resource.as_str(), ev.kind) {
            ("persistentvolumeclaims", EventType::Deleted) => {
                self.claim_deleted(api, &ev.object).await
            }
            ("persistentvolumeclaims", _) => {
                match api
                    .get_opt("v1", "PersistentVolumeClaim", ns, &ev.name)
                    .await?
                {
                    Some(claim) => self.claim_changed(api, &claim).await,
                    None => Ok(()),
                }
            }
            ("volumesnapshots", EventType::Deleted) => self.snapshot_deleted(api, &ev.object).await,
            ("volumesnapshots", _) => {
                match api
                    .get_opt(SNAP_API, "VolumeSnapshot", ns, &ev.name)
                    .await?
                {
                    Some(vs) => self.snapshot_changed(api, &vs).await,
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }
}
