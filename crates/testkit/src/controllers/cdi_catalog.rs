//! CDI's golden-image machinery, part of [`super::cdi::CdiController`]: `DataImportCron`,
//! `DataSource` and DataVolumes cloned from a `DataSource` (`spec.sourceRef`).
//!
//! Modelled on CDI v1.66 (`kubevirt/containerized-data-importer`):
//!
//! - **DataImportCron** (`pkg/controller/dataimportcron-controller.go`,
//!   `dataimportcron-conditions.go`): only registry sources are served (CDI's webhook,
//!   `pkg/apiserver/webhooks/dataimportcron-validate.go`, refuses a cron without a registry or PVC
//!   source; here such a cron gets `Progressing=False` with reason `NoSource` and is not imported).
//!   For a `registry.url` source CDI runs a poller Job at creation (and a CronJob on
//!   `spec.schedule`) that writes the image's digest into the annotation
//!   `cdi.kubevirt.io/storage.import.sourceDesiredDigest`; the double plays that initial Job on the
//!   first reconcile (the digest is derived from the URL and the version a test published with
//!   [`super::cdi::CdiController::publish_image`]), and again, for crons with a schedule, when a test
//!   calls [`super::cdi::CdiController::publish_image`] and the cron is reconciled. When the
//!   desired digest differs from `status.currentImports[0].digest`, the cron creates the import
//!   DataVolume `<managedDataSource>-<first 12 digest characters>` from `spec.template` (the URL
//!   pinned to the digest; CDI's `ImportStatus` fields are spelled `DataVolumeName` and
//!   `Digest`), labels `cdi.kubevirt.io/dataImportCron: <cron>` and, with
//!   `retentionPolicy: None`, `cdi.kubevirt.io/dataImportCron.cleanup: "true"`) and records it in
//!   `status.currentImports`. When that DataVolume succeeds, `status.lastImportedPVC` points at
//!   it and `status.lastImportTimestamp` is set; the conditions `Progressing`
//!   (`ImportScheduled`/`ImportProgressing`/`NoImport`, or the DataVolume's phase) and `UpToDate`
//!   (`UpToDate`, `Outdated`, `ImportProgressing`, `NoDigest`) are written as CDI writes them,
//!   `lastTransitionTime` changing only with the status, `lastHeartbeatTime` with any change.
//!   The managed `DataSource` is created (labelled with the cron) and its `spec.source.pvc` set to
//!   `lastImportedPVC`. CDI writes both objects whole (neither CRD has a status subresource).
//!   Deleting a cron with `retentionPolicy: None` deletes the labelled DataSource, DataVolumes and
//!   claims (`cleanup`).
//! - **DataSource** (`pkg/controller/datasource-controller.go`): `Ready=True` (reason `Ready`,
//!   "DataSource is ready to be consumed") when `spec.source.pvc` names a DataVolume that
//!   succeeded, or a claim without a DataVolume; `Ready=False` with the DataVolume's phase, or
//!   `NotFound` ("PVC not found"), or `NoSource` ("No source PVC set"); `status.source` mirrors
//!   the source while ready and is empty otherwise.
//! - **Clone by `sourceRef`** (`pkg/controller/datavolume/clone-controller-base.go`,
//!   `controller-base.go` `getSourceRefOp`): a DataVolume whose `spec.sourceRef` names a
//!   DataSource (in `sourceRef.namespace`, default its own) without a source is left alone until
//!   the DataSource gets one (it is requeued then); otherwise it clones the source claim:
//!   `CloneScheduled` → `CloneInProgress` → `Succeeded`, never importing. The target claim gets
//!   `cdi.kubevirt.io/cloneType`: `csi-clone` when source and target share a StorageClass (CDI's
//!   planner picks the storage's own clone then, `pkg/controller/clone/planner.go`), else `copy`
//!   (host-assisted). A target smaller than the source fails validation (`Failed`, condition
//!   reason `CloneValidationFailed`); a target without a size gets the source's. Whether the creator of the DataVolume may clone across
//!   namespaces is checked before it is created: by CDI's webhook for users, and by KubeVirt for
//!   a VM's `dataVolumeTemplates` (the simulated KubeVirt, with [`authorize_clone`]).

use serde_json::{Value, json};

use super::authz::{self, Access};
use super::{ControllerApi, ControllerError};

pub(super) const DV: (&str, &str) = ("cdi.kubevirt.io/v1beta1", "DataVolume");
pub(super) const DS: (&str, &str) = ("cdi.kubevirt.io/v1beta1", "DataSource");
pub(super) const CRON: (&str, &str) = ("cdi.kubevirt.io/v1beta1", "DataImportCron");
const PVC: (&str, &str) = ("v1", "PersistentVolumeClaim");

/// The label naming the DataImportCron that made an object.
pub const CRON_LABEL: &str = "cdi.kubevirt.io/dataImportCron";
/// The label asking for an object's deletion with its cron.
pub const CLEANUP_LABEL: &str = "cdi.kubevirt.io/dataImportCron.cleanup";
/// The annotation holding the digest the cron should import.
pub const DESIRED_DIGEST: &str = "cdi.kubevirt.io/storage.import.sourceDesiredDigest";

fn meta<'a>(o: &'a Value, field: &str) -> &'a str {
    o["metadata"][field].as_str().unwrap_or_default()
}

/// A sha256-looking digest of `url` at `version` (FNV-1a, repeated to 64 hex characters).
pub(super) fn digest(url: &str, version: u64) -> String {
    let mut out = String::from("sha256:");
    for round in 0u64..4 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ round;
        for b in url.bytes().chain(version.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

/// Sets condition `type_` in `conditions` as CDI's `updateConditionState` does: the heartbeat
/// moves on any change, the transition time only when the status changes.
fn set_condition(
    conditions: &mut Vec<Value>,
    type_: &str,
    status: bool,
    message: &str,
    reason: &str,
) {
    let now = crate::meta::now();
    let status = if status { "True" } else { "False" };
    match conditions.iter_mut().find(|c| c["type"] == type_) {
        Some(c) => {
            let changed = c["status"] != status || c["message"] != message || c["reason"] != reason;
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            if changed {
                c["status"] = json!(status);
                c["message"] = json!(message);
                c["reason"] = json!(reason);
                c["lastHeartbeatTime"] = json!(now);
            }
        }
        None => conditions.push(json!({
            "type": type_, "status": status, "message": message, "reason": reason,
            "lastTransitionTime": now, "lastHeartbeatTime": now,
        })),
    }
}

fn conditions_of(o: &Value) -> Vec<Value> {
    o["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Replaces `object` when `changed` differs from it (CDI's `client.Update` of the whole object).
async fn update_if_changed(
    api: &ControllerApi,
    object: &Value,
    changed: Value,
) -> Result<(), ControllerError> {
    if changed != *object {
        api.replace(changed).await?;
    }
    Ok(())
}

/// Reconciles one DataImportCron; `version` is the version published for a URL.
pub(super) async fn reconcile_cron(
    api: &ControllerApi,
    cron: &Value,
    version: impl Fn(&str) -> u64,
) -> Result<(), ControllerError> {
    let ns = meta(cron, "namespace");
    let mut next = cron.clone();
    let mut conditions = conditions_of(cron);
    let url = cron["spec"]["template"]["spec"]["source"]["registry"]["url"]
        .as_str()
        .map(str::to_string);
    let managed = cron["spec"]["managedDataSource"]
        .as_str()
        .unwrap_or_default();
    let Some(url) = url else {
        set_condition(
            &mut conditions,
            "Progressing",
            false,
            "Missing registry source",
            "NoSource",
        );
        next["status"]["conditions"] = json!(conditions);
        return update_if_changed(api, cron, next).await;
    };
    // The poller Job: at creation, and on the schedule (here: when the published version moved).
    let polled = digest(&url, version(&url));
    let scheduled = cron["spec"]["schedule"]
        .as_str()
        .is_some_and(|s| !s.is_empty());
    if cron["metadata"]["annotations"][DESIRED_DIGEST].is_null() || scheduled {
        if !next["metadata"]["annotations"].is_object() {
            next["metadata"]["annotations"] = json!({});
        }
        next["metadata"]["annotations"][DESIRED_DIGEST] = json!(polled);
    }
    let desired = next["metadata"]["annotations"][DESIRED_DIGEST]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut imports = next["status"]["currentImports"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let current = imports.first().cloned();
    let dv = match &current {
        Some(i) => {
            api.get_opt(
                DV.0,
                DV.1,
                Some(ns),
                i["DataVolumeName"].as_str().unwrap_or_default(),
            )
            .await?
        }
        None => None,
    };
    let mut succeeded = false;
    match &dv {
        Some(dv) => match dv["status"]["phase"].as_str().unwrap_or("") {
            "Succeeded" => succeeded = true,
            "ImportScheduled" => set_condition(
                &mut conditions,
                "Progressing",
                false,
                "Import is scheduled",
                "ImportScheduled",
            ),
            "ImportInProgress" => set_condition(
                &mut conditions,
                "Progressing",
                true,
                "Import is progressing",
                "ImportProgressing",
            ),
            phase => set_condition(
                &mut conditions,
                "Progressing",
                false,
                &format!("Import DataVolume phase {phase}"),
                phase,
            ),
        },
        None => {
            if current.is_some() {
                imports.remove(0);
            }
            set_condition(
                &mut conditions,
                "Progressing",
                false,
                "No current import",
                "NoImport",
            );
        }
    }
    if succeeded && let Some(i) = &current {
        let last = json!({"namespace": ns, "name": i["DataVolumeName"]});
        if next["status"]["lastImportedPVC"] != last {
            next["status"]["lastImportedPVC"] = last;
            next["status"]["lastImportTimestamp"] = json!(crate::meta::now());
        }
        set_condition(
            &mut conditions,
            "Progressing",
            false,
            "No current import",
            "NoImport",
        );
    }
    let updated = !desired.is_empty()
        && imports
            .first()
            .is_none_or(|i| i["Digest"] != desired.as_str());
    if updated {
        set_condition(
            &mut conditions,
            "UpToDate",
            false,
            "Source digest updated since last import",
            "Outdated",
        );
        if succeeded || imports.is_empty() {
            let dv_name = format!("{managed}-{}", &desired[7..19]);
            create_import(api, cron, &dv_name, &url, &desired).await?;
            imports = vec![json!({"DataVolumeName": dv_name, "Digest": desired})];
        }
    } else if succeeded {
        set_condition(
            &mut conditions,
            "UpToDate",
            true,
            "Latest import is up to date",
            "UpToDate",
        );
    } else if !imports.is_empty() {
        set_condition(
            &mut conditions,
            "UpToDate",
            false,
            "Import is progressing",
            "ImportProgressing",
        );
    } else {
        set_condition(
            &mut conditions,
            "UpToDate",
            false,
            "No source digest",
            "NoDigest",
        );
    }
    next["status"]["currentImports"] = json!(imports);
    next["status"]["conditions"] = json!(conditions);
    update_data_source(api, &next, managed).await?;
    update_if_changed(api, cron, next).await
}

fn cron_labels(cron: &Value) -> Value {
    let mut labels = json!({CRON_LABEL: meta(cron, "name")});
    if cron["spec"]["retentionPolicy"] == "None" {
        labels[CLEANUP_LABEL] = json!("true");
    }
    labels
}

async fn create_import(
    api: &ControllerApi,
    cron: &Value,
    dv_name: &str,
    url: &str,
    digest: &str,
) -> Result<(), ControllerError> {
    let ns = meta(cron, "namespace");
    if api.get_opt(DV.0, DV.1, Some(ns), dv_name).await?.is_some() {
        return Ok(());
    }
    let mut spec = cron["spec"]["template"]["spec"].clone();
    // newSourceDataVolume: the registry URL pinned to the digest (the tag dropped).
    let repo = match url.rsplit_once(':') {
        Some((repo, tag))
            if !tag.contains('/') && repo.contains("://") && repo.len() > "docker://".len() =>
        {
            repo
        }
        _ => url,
    };
    spec["source"]["registry"]["url"] = json!(format!("{repo}@{digest}"));
    let dv = json!({
        "apiVersion": DV.0, "kind": DV.1,
        "metadata": {
            "name": dv_name, "namespace": ns, "labels": cron_labels(cron),
            "annotations": {"cdi.kubevirt.io/storage.bind.immediate.requested": "true"},
        },
        "spec": spec,
    });
    match api.create(dv).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn update_data_source(
    api: &ControllerApi,
    cron: &Value,
    managed: &str,
) -> Result<(), ControllerError> {
    let ns = meta(cron, "namespace");
    let ds = match api.get_opt(DS.0, DS.1, Some(ns), managed).await? {
        // Another cron's DataSource is not this one's to touch.
        Some(ds) if ds["metadata"]["labels"][CRON_LABEL] != meta(cron, "name") => return Ok(()),
        Some(ds) => ds,
        None => {
            api.create(json!({
                "apiVersion": DS.0, "kind": DS.1,
                "metadata": {"name": managed, "namespace": ns, "labels": cron_labels(cron)},
                "spec": {"source": {}},
            }))
            .await?
        }
    };
    let mut next = ds.clone();
    if cron["status"]["lastImportedPVC"].is_object() {
        next["spec"]["source"] = json!({"pvc": cron["status"]["lastImportedPVC"]});
    }
    update_if_changed(api, &ds, next).await
}

/// Deletes what a deleted cron made, if it asked for that (`retentionPolicy: None`).
pub(super) async fn cleanup_cron(
    api: &ControllerApi,
    ns: &str,
    name: &str,
) -> Result<(), ControllerError> {
    let selector = format!("{CRON_LABEL}={name},{CLEANUP_LABEL}=true");
    for kind in [DS, DV, PVC] {
        for o in api
            .list_selected(kind.0, kind.1, Some(ns), &selector)
            .await?
        {
            match api.delete(kind.0, kind.1, Some(ns), meta(&o, "name")).await {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Reconciles one DataSource (its `Ready` condition and `status.source`).
pub(super) async fn reconcile_data_source(
    api: &ControllerApi,
    ds: &Value,
) -> Result<(), ControllerError> {
    let ns = meta(ds, "namespace");
    let mut conditions = conditions_of(ds);
    let pvc = &ds["spec"]["source"]["pvc"];
    let mut ready = false;
    if let Some(name) = pvc["name"].as_str() {
        let src_ns = pvc["namespace"].as_str().unwrap_or(ns);
        match api.get_opt(DV.0, DV.1, Some(src_ns), name).await? {
            Some(dv) if dv["status"]["phase"] == "Succeeded" => ready = true,
            Some(dv) => {
                let phase = dv["status"]["phase"].as_str().unwrap_or("");
                set_condition(
                    &mut conditions,
                    "Ready",
                    false,
                    &format!("Import DataVolume phase {phase}"),
                    phase,
                );
            }
            None => match api.get_opt(PVC.0, PVC.1, Some(src_ns), name).await? {
                Some(_) => ready = true,
                None => set_condition(&mut conditions, "Ready", false, "PVC not found", "NotFound"),
            },
        }
    } else {
        set_condition(
            &mut conditions,
            "Ready",
            false,
            "No source PVC set",
            "NoSource",
        );
    }
    if ready {
        set_condition(
            &mut conditions,
            "Ready",
            true,
            "DataSource is ready to be consumed",
            "Ready",
        );
    }
    let mut next = ds.clone();
    next["status"]["conditions"] = json!(conditions);
    next["status"]["source"] = if ready {
        ds["spec"]["source"].clone()
    } else {
        json!({})
    };
    update_if_changed(api, ds, next).await
}

/// The objects to reconcile again after DataVolume or claim `name` in `ns` changed: the crons
/// importing it and the DataSources pointing at it.
pub(super) async fn requeue_for(
    api: &ControllerApi,
    ns: &str,
    name: &str,
    version: impl Fn(&str) -> u64 + Copy,
) -> Result<(), ControllerError> {
    for cron in api.list(CRON.0, CRON.1, Some(ns)).await? {
        let importing = cron["status"]["currentImports"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|i| i["DataVolumeName"] == name);
        if importing && cron["metadata"]["deletionTimestamp"].is_null() {
            reconcile_cron(api, &cron, version).await?;
        }
    }
    for ds in api.list(DS.0, DS.1, Some(ns)).await? {
        if ds["spec"]["source"]["pvc"]["name"] == name {
            reconcile_data_source(api, &ds).await?;
        }
    }
    Ok(())
}

/// The source claim `(namespace, name)` of a DataVolume cloning through `spec.sourceRef`, or
/// `None` while its DataSource is missing or has no source (CDI leaves such a DataVolume alone).
pub(super) async fn source_of(
    api: &ControllerApi,
    dv: &Value,
) -> Result<Option<(String, String)>, ControllerError> {
    let r = &dv["spec"]["sourceRef"];
    if r["kind"] != "DataSource" {
        return Ok(None);
    }
    let ns = r["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(meta(dv, "namespace"));
    let Some(ds) = api
        .get_opt(DS.0, DS.1, Some(ns), r["name"].as_str().unwrap_or_default())
        .await?
    else {
        return Ok(None);
    };
    let pvc = &ds["spec"]["source"]["pvc"];
    Ok(pvc["name"].as_str().map(|name| {
        (
            pvc["namespace"].as_str().unwrap_or(ns).to_string(),
            name.to_string(),
        )
    }))
}

/// The DataVolumes cloning from DataSource `name` in `ns` (to requeue when it changes).
pub(super) async fn cloning_from(
    api: &ControllerApi,
    ns: &str,
    name: &str,
) -> Result<Vec<Value>, ControllerError> {
    Ok(api
        .list_where(DV.0, DV.1, None, |dv| {
            let r = &dv["spec"]["sourceRef"];
            r["kind"] == "DataSource"
                && r["name"] == name
                && r["namespace"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(meta(dv, "namespace"))
                    == ns
        })
        .await?)
}

/// CDI's `AuthorizeSA` for a DataVolume spec `spec` to be created in `namespace` by service
/// account `sa` of that namespace (`authorize.go`, `authorize_utils.go`): a clone from another
/// namespace needs `create` on `datavolumes/source` (or on `pods`) there. `Err` is CDI's reason,
/// `"User <sa> has insufficient permissions in clone source namespace <ns>"`.
pub async fn authorize_clone(
    api: &ControllerApi,
    rbac: &authz::Rbac,
    namespace: &str,
    sa: &str,
    spec: &Value,
) -> Result<Result<(), String>, ControllerError> {
    let (source_ns, source_name) = if spec["sourceRef"]["kind"] == "DataSource" {
        let ns = spec["sourceRef"]["namespace"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(namespace);
        let name = spec["sourceRef"]["name"].as_str().unwrap_or_default();
        let Some(ds) = api.get_opt(DS.0, DS.1, Some(ns), name).await? else {
            return Ok(Err(format!(
                "datasources.cdi.kubevirt.io \"{name}\" not found"
            )));
        };
        let pvc = &ds["spec"]["source"]["pvc"];
        (
            pvc["namespace"].as_str().unwrap_or(ns).to_string(),
            pvc["name"].as_str().unwrap_or_default().to_string(),
        )
    } else if spec["source"]["pvc"].is_object() {
        let pvc = &spec["source"]["pvc"];
        (
            pvc["namespace"].as_str().unwrap_or(namespace).to_string(),
            pvc["name"].as_str().unwrap_or_default().to_string(),
        )
    } else {
        return Ok(Ok(()));
    };
    if source_ns == namespace || source_name.is_empty() {
        return Ok(Ok(()));
    }
    let (user, groups) = authz::service_account(namespace, sa);
    for (group, resource) in [("cdi.kubevirt.io", "datavolumes/source"), ("", "pods")] {
        let access = Access {
            verb: "create",
            group,
            resource,
            namespace: &source_ns,
            name: &source_name,
        };
        if rbac.allowed(&user, &groups, &access) {
            return Ok(Ok(()));
        }
    }
    Ok(Err(format!(
        "User {user} has insufficient permissions in clone source namespace {source_ns}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_change_with_the_version_and_look_like_sha256() {
        let a = digest("docker://quay.io/containerdisks/fedora:40", 0);
        let b = digest("docker://quay.io/containerdisks/fedora:40", 1);
        assert_ne!(a, b);
        assert_eq!(a.len(), "sha256:".len() + 64);
        assert!(a[7..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
