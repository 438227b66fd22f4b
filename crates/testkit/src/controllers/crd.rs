//! The CRD controller: what kube-apiserver's apiextensions part does when a
//! `CustomResourceDefinition` is created, changed or deleted.
//!
//! - Created or changed: the name must be `<spec.names.plural>.<spec.group>` and the schemas
//!   must compile; then the double serves every served version (discovery, every verb, watch,
//!   `/status` when `subresources.status` is declared, validation against the schema with unknown
//!   fields rejected or pruned per `fieldValidation`), and the CRD's status gets `NamesAccepted`
//!   and `Established` = `True` and `acceptedNames`. A refused CRD gets `Established` = `False`
//!   with the reason in the message (kube-apiserver refuses such a CRD at admission instead).
//! - The CRD carries the finalizer `customresourcecleanup.apiextensions.k8s.io`; when it is
//!   deleted every custom resource of its type is deleted (their own finalizers are honoured),
//!   then the type stops being served and the finalizer is removed.
//!
//! Always running (also with [`TestServerBuilder::without_default_controllers`]), since it is part
//! of the API server.
//!
//! [`TestServerBuilder::without_default_controllers`]: crate::TestServerBuilder::without_default_controllers

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Controller, ControllerApi, ControllerError, Watched};
use crate::apiextensions::{GROUP, PLURAL};
use crate::cluster::{Cluster, ObjectEvent};
use crate::store::{EventType, ObjKey};

const API_VERSION: &str = "apiextensions.k8s.io/v1";
const KIND: &str = "CustomResourceDefinition";
/// The finalizer kube-apiserver puts on every CRD.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Establishes CustomResourceDefinitions and cleans up after deleted ones.
#[derive(Debug, Default)]
pub struct CrdController;

#[async_trait]
impl Controller for CrdController {
    fn name(&self) -> &str {
        "apiextensions-controller"
    }

    fn watches(&self) -> Vec<Watched> {
        // Every resource: the deletion of the last custom resource of a deleted CRD ends it.
        Vec::new()
    }

    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        let api = api.in_process()?;
        if ev.group == GROUP && ev.resource == PLURAL {
            if ev.kind == EventType::Deleted {
                return Ok(());
            }
            let Some(crd) = api.get_opt(API_VERSION, KIND, None, &ev.name)? else {
                return Ok(());
            };
            return if crd["metadata"]["deletionTimestamp"].is_string() {
                cleanup(api, &crd)
            } else {
                establish(api, &crd)
            };
        }
        // A custom resource changed: if its CRD is being deleted, carry on with the cleanup.
        if ev.kind == EventType::Deleted && !ev.group.is_empty() {
            let name = format!("{}.{}", ev.resource, ev.group);
            if let Some(crd) = api.get_opt(API_VERSION, KIND, None, &name)?
                && crd["metadata"]["deletionTimestamp"].is_string()
            {
                return cleanup(api, &crd);
            }
        }
        Ok(())
    }
}

fn establish(api: &Cluster, crd: &Value) -> Result<(), ControllerError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let finalizers = crd["metadata"]["finalizers"].as_array();
    if !finalizers.is_some_and(|f| f.iter().any(|x| x == CLEANUP_FINALIZER)) {
        let mut list: Vec<Value> = finalizers.cloned().unwrap_or_default();
        list.push(json!(CLEANUP_FINALIZER));
        api.merge_patch(
            API_VERSION,
            KIND,
            None,
            name,
            &json!({"metadata": {"finalizers": list}}),
        )?;
    }
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let expected = format!("{plural}.{group}");
    let outcome = if name != expected {
        Err(format!(
            "metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group ({expected:?})"
        ))
    } else {
        api.core()
            .catalog
            .register(crd)
            .map_err(|e| format!("spec.versions: {e}"))
    };
    let conditions = match &outcome {
        Ok(()) => {
            tracing::debug!(crd = name, "established");
            vec![
                condition(
                    crd,
                    "NamesAccepted",
                    true,
                    "NoConflicts",
                    "no conflicts found",
                ),
                condition(
                    crd,
                    "Established",
                    true,
                    "InitialNamesAccepted",
                    "the initial names have been accepted",
                ),
            ]
        }
        Err(message) => {
            tracing::warn!(crd = name, %message, "CRD refused");
            vec![condition(crd, "Established", false, "Invalid", message)]
        }
    };
    let status = json!({"conditions": conditions, "acceptedNames": crd["spec"]["names"]});
    if crd["status"] != status {
        api.merge_patch_status(API_VERSION, KIND, None, name, &json!({"status": status}))?;
    }
    Ok(())
}

/// A condition, keeping its `lastTransitionTime` while its status stays the same.
fn condition(crd: &Value, kind: &str, ok: bool, reason: &str, message: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let previous = crd["status"]["conditions"]
        .as_array()
        .and_then(|cs| {
            cs.iter()
                .find(|c| c["type"] == kind && c["status"] == status)
        })
        .and_then(|c| c["lastTransitionTime"].as_str().map(str::to_owned));
    json!({
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": previous.unwrap_or_else(crate::meta::now),
    })
}

fn cleanup(api: &Cluster, crd: &Value) -> Result<(), ControllerError> {
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    let group = crd["spec"]["group"].as_str().unwrap_or_default();
    let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
    let left: Vec<(ObjKey, Value)> = api
        .snapshot()
        .into_iter()
        .filter(|(k, _)| k.group == group && k.resource == plural)
        .collect();
    for (key, object) in &left {
        if object["metadata"]["deletionTimestamp"].is_string() {
            continue;
        }
        match api.delete_key(key) {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    if api
        .snapshot()
        .iter()
        .any(|(k, _)| k.group == group && k.resource == plural)
    {
        // Held by their finalizers: go on when they are deleted.
        return Ok(());
    }
    api.core().catalog.unregister(group, plural);
    let finalizers: Vec<Value> = crd["metadata"]["finalizers"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter(|x| *x != CLEANUP_FINALIZER)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    match api.merge_patch(
        API_VERSION,
        KIND,
        None,
        name,
        &json!({"metadata": {"finalizers": finalizers}}),
    ) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}
