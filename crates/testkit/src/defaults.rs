//! The few defaults kube-apiserver fills in on create that tests and controllers rely on.
//!
//! Only these are set: a Namespace's `spec.finalizers: [kubernetes]` and `status.phase: Active`,
//! and its `kubernetes.io/metadata.name` label (on every write, see [`name_label`]);
//! `status.phase: Pending` on PersistentVolumeClaims, PersistentVolumes and Pods; a Service's
//! `type: ClusterIP`, `sessionAffinity: None`, an allocated `clusterIP`/`clusterIPs` (from an
//! IPv6 range when `ipFamilies` starts with `IPv6`), IPv4 single-stack fields when unset, and each port's `protocol: TCP` and `targetPort`. A PVC's
//! `volumeMode: Filesystem`, and (in `api.rs`, as the DefaultStorageClass admission plugin does)
//! its `storageClassName` from the default StorageClass when it names none. Everything else is
//! stored as sent.

use rand::Rng;
use serde_json::{Value, json};

use crate::schema::ResourceType;

pub(crate) fn on_create(rt: &ResourceType, object: &mut Value, rng: &mut impl Rng) {
    if !rt.group.is_empty() {
        return;
    }
    match rt.kind.as_str() {
        "Namespace" => {
            name_label(rt, object);
            if object["spec"]["finalizers"].is_null() {
                object["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            object["status"]["phase"] = json!("Active");
        }
        "PersistentVolumeClaim" => {
            if object["spec"].is_object() && object["spec"]["volumeMode"].is_null() {
                object["spec"]["volumeMode"] = json!("Filesystem");
            }
            object["status"]["phase"] = json!("Pending");
        }
        "PersistentVolume" | "Pod" => {
            object["status"]["phase"] = json!("Pending");
        }
        "Service" => service(object, rng),
        _ => {}
    }
}

/// The defaults kube-apiserver applies again on every update (`SetDefaults_Service` runs on each
/// decode): a Service's type, session affinity, traffic policies and port protocols and target
/// ports; its `clusterIP` is carried over from the stored object first ([`crate::builtin`]).
pub(crate) fn on_update(rt: &ResourceType, object: &mut Value, rng: &mut impl Rng) {
    if rt.group.is_empty() && rt.kind == "Service" {
        service(object, rng);
    }
}

fn service(object: &mut Value, rng: &mut impl Rng) {
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let ty = spec
        .entry("type")
        .or_insert(json!("ClusterIP"))
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    spec.entry("sessionAffinity").or_insert(json!("None"));
    if ty != "ExternalName" {
        let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
        if !headless
            && spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            // A dual-stack cluster: the first requested family's service range.
            let v6 = spec
                .get("ipFamilies")
                .and_then(|f| f.get(0))
                .and_then(Value::as_str)
                == Some("IPv6");
            let ip = if v6 {
                format!(
                    "fd00:10:96::{:x}:{:x}",
                    rng.random_range(0..=0xffffu16),
                    rng.random_range(1..=0xfffeu16)
                )
            } else {
                format!(
                    "10.96.{}.{}",
                    rng.random_range(0..=255u8),
                    rng.random_range(1..=254u8)
                )
            };
            spec.insert("clusterIP".into(), json!(ip));
        }
        let ip = spec["clusterIP"].clone();
        spec.entry("clusterIPs").or_insert(json!([ip]));
        spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
        spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        spec.entry("internalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    if ty == "LoadBalancer" || ty == "NodePort" {
        spec.entry("externalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert(json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                p.entry("targetPort").or_insert(port);
            }
        }
    }
}

/// The label kube-apiserver keeps on every Namespace, on create and on every update, whatever
/// the request says (pkg/registry/core/namespace/strategy.go, `PrepareForCreate` and
/// `PrepareForUpdate`): `kubernetes.io/metadata.name: <name>`. Clients select namespaces by it.
pub(crate) fn name_label(rt: &ResourceType, object: &mut Value) {
    if !rt.group.is_empty() || rt.kind != "Namespace" {
        return;
    }
    let Some(name) = object["metadata"]["name"].as_str().map(str::to_string) else {
        return;
    };
    if !object["metadata"]["labels"].is_object() {
        object["metadata"]["labels"] = json!({});
    }
    object["metadata"]["labels"]["kubernetes.io/metadata.name"] = Value::String(name);
}
