//! Reading claims, classes, pods and nodes the way the simulated controllers need them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::cluster::Cluster;
use crate::controllers::ControllerError;

pub(crate) const SNAP_API: &str = "snapshot.storage.k8s.io/v1";
pub(crate) const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
pub(crate) const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
pub(crate) const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";

pub(crate) fn meta<'a>(o: &'a Value, field: &str) -> &'a str {
    o["metadata"][field].as_str().unwrap_or_default()
}

pub(crate) fn deleting(o: &Value) -> bool {
    o["metadata"]["deletionTimestamp"].is_string()
}

/// The claim's StorageClass, when it names one that exists.
pub(crate) fn class_of(api: &Cluster, claim: &Value) -> Result<Option<Value>, ControllerError> {
    match claim["spec"]["storageClassName"].as_str() {
        Some(name) if !name.is_empty() => {
            Ok(api.get_opt("storage.k8s.io/v1", "StorageClass", None, name)?)
        }
        _ => Ok(None),
    }
}

/// Whether the claim asks for a Block volume.
pub(crate) fn is_block(claim: &Value) -> bool {
    claim["spec"]["volumeMode"] == "Block"
}

/// The claim's access modes.
pub(crate) fn access_modes(claim: &Value) -> Vec<String> {
    claim["spec"]["accessModes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(String::from))
        .collect()
}

/// The claims a pod names in its volumes.
pub(crate) fn claims_of(pod: &Value) -> Vec<String> {
    pod["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["persistentVolumeClaim"]["claimName"].as_str())
        .map(String::from)
        .collect()
}

/// Whether the pod can still use volumes (not being deleted, not terminated).
pub(crate) fn pod_active(pod: &Value) -> bool {
    !deleting(pod)
        && !matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

/// The node a pod runs on, if scheduled.
pub(crate) fn pod_node(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

/// Scheduled, active pods of `namespace` naming `claim`.
pub(crate) fn pods_using(
    api: &Cluster,
    namespace: &str,
    claim: &str,
) -> Result<Vec<Value>, ControllerError> {
    Ok(api
        .list("v1", "Pod", Some(namespace))?
        .into_iter()
        .filter(|p| {
            pod_active(p) && pod_node(p).is_some() && claims_of(p).iter().any(|c| c == claim)
        })
        .collect())
}

/// A node's name and labels.
pub(crate) type NodeInfo = (String, BTreeMap<String, String>);

/// Nodes and their labels, by name.
pub(crate) fn nodes(api: &Cluster) -> Result<Vec<NodeInfo>, ControllerError> {
    let mut out: Vec<NodeInfo> = api
        .list("v1", "Node", None)?
        .iter()
        .map(|n| {
            let labels =
                serde_json::from_value(n["metadata"]["labels"].clone()).unwrap_or_default();
            (meta(n, "name").to_string(), labels)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Whether node labels satisfy a class's `allowedTopologies` (any term; every expression of
/// a term `key In values`).
pub(crate) fn allowed_by_topology(sc: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(terms) = sc["allowedTopologies"].as_array().filter(|t| !t.is_empty()) else {
        return true;
    };
    terms.iter().any(|term| {
        term["matchLabelExpressions"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| {
                let key = e["key"].as_str().unwrap_or_default();
                labels.get(key).is_some_and(|v| {
                    e["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|x| x.as_str() == Some(v.as_str()))
                })
            })
    })
}

/// Deletes, ignoring "not found".
pub(crate) fn delete_quietly(
    api: &Cluster,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> Result<(), ControllerError> {
    match api.delete(api_version, kind, namespace, name) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The object's finalizers without `drop`.
pub(crate) fn finalizers_without(o: &Value, drop: &[&str]) -> Vec<Value> {
    o["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| !drop.iter().any(|d| f.as_str() == Some(d)))
        .cloned()
        .collect()
}

/// The object's finalizers with `add` (each once).
pub(crate) fn finalizers_with(o: &Value, add: &[&str]) -> Vec<Value> {
    let mut all: Vec<Value> = o["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for a in add {
        if !all.iter().any(|f| f.as_str() == Some(a)) {
            all.push(Value::String(a.to_string()));
        }
    }
    all
}
