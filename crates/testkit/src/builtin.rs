//! kube-apiserver's registry rules for the built-in kinds the double serves, beyond their
//! schemas: the strategies' defaulting and normalisation, and the Go validation of
//! `pkg/apis/core/validation/validation.go` for the fields kubecloud writes.
//!
//! - **Secret** (`pkg/apis/core/v1/conversion.go` `Convert_v1_Secret_To_core_Secret`,
//!   `pkg/apis/core/v1/defaults.go` `SetDefaults_Secret`): `stringData` is folded into `data`
//!   (base64, over a `data` key of the same name) on every write, and `type` defaults to
//!   `Opaque`; `type` is immutable (`ValidateSecretUpdate`).
//! - **PersistentVolumeClaim** (`ValidatePersistentVolumeClaimSpec`,
//!   `ValidatePersistentVolumeClaimUpdate`): `spec.accessModes` and
//!   `spec.resources.requests.storage` are required; the spec is immutable after creation except
//!   `volumeName` while empty, and, for a bound claim, `resources.requests` (storage may only
//!   grow) and `volumeAttributesClassName`.
//! - **Service** (`ValidateService`, `ValidateServiceUpdate`, `pkg/registry/core/service`
//!   `storage/alloc.go` and `strategy.go`): `type` is one of the four; ports are required (but
//!   for `ExternalName` and headless services), between 1 and 65535, named when there are
//!   several, with unique names; node ports lie in 30000-32767 and only on `NodePort` and
//!   `LoadBalancer` services; `clusterIP` may not change once set. `LoadBalancer` services get
//!   `allocateLoadBalancerNodePorts: true` and, like `NodePort` ones, a node port per port (from
//!   30000-32767, unique in the cluster) and, with `externalTrafficPolicy: Local`, a
//!   `healthCheckNodePort`. An update that omits allocated values keeps them
//!   (`patchAllocatedValues`: `clusterIP(s)`, node ports by port name, `healthCheckNodePort`);
//!   switching to a type that needs no node ports clears them (`dropTypeDependentFields`).

use base64::Engine;
use rand::Rng;
use serde_json::{Map, Value, json};
use std::collections::HashSet;

use crate::schema::ResourceType;

/// One field error: path, `StatusCause` reason, message.
pub(crate) type Cause = (String, &'static str, String);

/// The node port range kube-apiserver allocates from (`--service-node-port-range` default).
pub(crate) const NODE_PORTS: std::ops::RangeInclusive<u64> = 30000..=32767;

fn kind_of(rt: &ResourceType) -> &str {
    if rt.group.is_empty() {
        rt.kind.as_str()
    } else {
        ""
    }
}

/// Normalisation on every write (create, update, patch, apply), before validation.
pub(crate) fn normalize(rt: &ResourceType, object: &mut Value) {
    if kind_of(rt) == "Secret" {
        secret(object);
    }
}

fn secret(object: &mut Value) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(strings)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        for (k, v) in strings {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            data[k] = Value::String(base64::engine::general_purpose::STANDARD.encode(text));
        }
    } else {
        map.remove("stringData");
    }
    match map.get("type") {
        Some(Value::String(t)) if !t.is_empty() => {}
        _ => {
            map.insert("type".into(), json!("Opaque"));
        }
    }
}

/// What an update keeps from the stored object when the request omits it, and clears when the
/// type no longer needs it (Service: `patchAllocatedValues`, `dropTypeDependentFields`).
pub(crate) fn carry_over(rt: &ResourceType, old: &Value, new: &mut Value) {
    if kind_of(rt) != "Service" {
        return;
    }
    let (Some(o), Some(n)) = (old["spec"].as_object(), new["spec"].as_object_mut()) else {
        return;
    };
    let old_type = o.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let new_type = n
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let needs_ip = |t: &str| t != "ExternalName";
    if let Some(ip) = n
        .get("clusterIP")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        && !n.contains_key("clusterIPs")
    {
        let ip = ip.clone();
        n.insert("clusterIPs".into(), json!([ip]));
    }
    // A changed `clusterIP` with unchanged `clusterIPs` changes the first of them
    // (`normalizeClusterIPs`), which validation then refuses.
    if let (Some(new_ip), Some(old_ip)) = (
        n.get("clusterIP").and_then(Value::as_str),
        o.get("clusterIP").and_then(Value::as_str),
    ) && !new_ip.is_empty()
        && new_ip != old_ip
        && n.get("clusterIPs") == o.get("clusterIPs")
    {
        let new_ip = new_ip.to_string();
        if let Some(first) = n
            .get_mut("clusterIPs")
            .and_then(Value::as_array_mut)
            .and_then(|l| l.first_mut())
        {
            *first = Value::String(new_ip);
        }
    }
    if needs_ip(old_type) && needs_ip(&new_type) {
        for f in ["ipFamilies", "ipFamilyPolicy"] {
            if !n.contains_key(f)
                && let Some(v) = o.get(f)
            {
                n.insert(f.into(), v.clone());
            }
        }
        let unset = n
            .get("clusterIP")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty);
        if unset {
            for f in ["clusterIP", "clusterIPs"] {
                if let Some(v) = o.get(f) {
                    n.insert(f.into(), v.clone());
                }
            }
        }
    }
    let needs_node_ports = |t: &str| t == "NodePort" || t == "LoadBalancer";
    if needs_node_ports(old_type) && needs_node_ports(&new_type) {
        let by_name: Vec<(String, Value)> = ports(o)
            .filter_map(|p| {
                Some((
                    p["name"].as_str().unwrap_or("").to_string(),
                    p.get("nodePort")?.clone(),
                ))
            })
            .collect();
        let used: HashSet<Value> = n
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("nodePort").cloned())
            .collect();
        if let Some(list) = n.get_mut("ports").and_then(Value::as_array_mut) {
            for p in list.iter_mut().filter_map(Value::as_object_mut) {
                if p.contains_key("nodePort") {
                    continue;
                }
                let name = p.get("name").and_then(Value::as_str).unwrap_or("");
                if let Some((_, np)) = by_name.iter().find(|(n, _)| n == name)
                    && !used.contains(np)
                {
                    p.insert("nodePort".into(), np.clone());
                }
            }
        }
        if !n.contains_key("healthCheckNodePort")
            && let Some(h) = o.get("healthCheckNodePort")
        {
            n.insert("healthCheckNodePort".into(), h.clone());
        }
    } else if needs_node_ports(old_type) && !needs_node_ports(&new_type) {
        if let Some(list) = n.get_mut("ports").and_then(Value::as_array_mut) {
            for p in list.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
        n.remove("healthCheckNodePort");
        if old_type == "LoadBalancer"
            && o.get("allocateLoadBalancerNodePorts") == n.get("allocateLoadBalancerNodePorts")
        {
            n.remove("allocateLoadBalancerNodePorts");
        }
        if o.get("externalTrafficPolicy") == n.get("externalTrafficPolicy") {
            n.remove("externalTrafficPolicy");
        }
    }
}

fn ports(spec: &Map<String, Value>) -> impl Iterator<Item = &Value> {
    spec.get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The node ports the Services in `services` hold.
pub(crate) fn node_ports_in_use<'a>(services: impl Iterator<Item = &'a Value>) -> HashSet<u64> {
    let mut used = HashSet::new();
    for s in services {
        for p in s["spec"]["ports"].as_array().into_iter().flatten() {
            if let Some(n) = p["nodePort"].as_u64() {
                used.insert(n);
            }
        }
        if let Some(n) = s["spec"]["healthCheckNodePort"].as_u64() {
            used.insert(n);
        }
    }
    used
}

/// Service defaults that depend on the type, and node port allocation (create and update).
pub(crate) fn allocate(
    rt: &ResourceType,
    object: &mut Value,
    used: &mut HashSet<u64>,
    rng: &mut impl Rng,
) {
    if kind_of(rt) != "Service" {
        return;
    }
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if ty == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts")
            .or_insert(json!(true));
    }
    let wants = ty == "NodePort"
        || (ty == "LoadBalancer"
            && spec.get("allocateLoadBalancerNodePorts") != Some(&json!(false)));
    let mut next = |used: &mut HashSet<u64>| -> Option<u64> {
        let free = (NODE_PORTS.end() - NODE_PORTS.start() + 1) as usize - used.len().min(2768);
        if free == 0 {
            return None;
        }
        loop {
            let p = rng.random_range(NODE_PORTS);
            if used.insert(p) {
                return Some(p);
            }
        }
    };
    if wants && let Some(list) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in list.iter_mut().filter_map(Value::as_object_mut) {
            if !p.contains_key("nodePort")
                && let Some(n) = next(used)
            {
                p.insert("nodePort".into(), json!(n));
            }
        }
    }
    if ty == "LoadBalancer"
        && spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
        && !spec.contains_key("healthCheckNodePort")
        && let Some(n) = next(used)
    {
        spec.insert("healthCheckNodePort".into(), json!(n));
    }
}

/// The Go validation of a create (`old` is `None`) or an update.
pub(crate) fn validate(rt: &ResourceType, object: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut out = Vec::new();
    match kind_of(rt) {
        "PersistentVolumeClaim" => claim(object, old, &mut out),
        "Service" => service(object, old, &mut out),
        "Secret" => {
            if let Some(old) = old
                && old["type"] != object["type"]
            {
                out.push((
                    "type".into(),
                    "FieldValueInvalid",
                    format!("Invalid value: {}: field is immutable", object["type"]),
                ));
            }
        }
        _ => {}
    }
    out
}

fn claim(object: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
    let spec = &object["spec"];
    if spec["accessModes"].as_array().is_none_or(Vec::is_empty) {
        out.push((
            "spec.accessModes".into(),
            "FieldValueRequired",
            "Required value: at least 1 access mode is required".into(),
        ));
    }
    if spec["resources"]["requests"]["storage"].is_null() {
        out.push((
            "spec.resources[storage]".into(),
            "FieldValueRequired",
            "Required value".into(),
        ));
    }
    let Some(old) = old else { return };
    let bound = object["status"]["phase"] == "Bound";
    let mut o = old["spec"].clone();
    let mut n = spec.clone();
    if o["volumeName"].as_str().is_none_or(str::is_empty) {
        o["volumeName"] = n["volumeName"].clone();
    }
    if bound {
        o["resources"]["requests"] = n["resources"]["requests"].clone();
        o["volumeAttributesClassName"] = n["volumeAttributesClassName"].clone();
    }
    strip_nulls(&mut o);
    strip_nulls(&mut n);
    if o != n {
        out.push((
            "spec".into(),
            "FieldValueForbidden",
            "Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into(),
        ));
    }
    // `ValidatePersistentVolumeClaimUpdate` with `RecoverVolumeExpansionFailure` (GA in 1.34):
    // a request may shrink again after a failed expansion, but never below `status.capacity`.
    let (before, after, capacity) = (
        quantity(&old["spec"]["resources"]["requests"]["storage"]),
        quantity(&spec["resources"]["requests"]["storage"]),
        quantity(&old["status"]["capacity"]["storage"]),
    );
    if let (Some(b), Some(a)) = (before, after)
        && a < b
        && capacity.is_some_and(|c| a < c)
    {
        out.push((
            "spec.resources.requests.storage".into(),
            "FieldValueForbidden",
            "Forbidden: field can not be less than status.capacity".into(),
        ));
    }
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        for x in m.values_mut() {
            strip_nulls(x);
        }
    }
}

/// A resource quantity in bytes (`10Gi`, `500M`, `1e3`, `1073741824`), for comparison.
pub(crate) fn quantity(q: &Value) -> Option<f64> {
    let s = match q {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    const UNITS: [(&str, f64); 12] = [
        ("Ki", 1024.0),
        ("Mi", 1048576.0),
        ("Gi", 1073741824.0),
        ("Ti", 1099511627776.0),
        ("Pi", 1125899906842624.0),
        ("Ei", 1152921504606846976.0),
        ("m", 0.001),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
    ];
    for (u, f) in UNITS {
        if let Some(num) = s.strip_suffix(u) {
            return num.parse::<f64>().ok().map(|n| n * f);
        }
    }
    if let Some(num) = s.strip_suffix('E') {
        return num.parse::<f64>().ok().map(|n| n * 1e18);
    }
    s.parse::<f64>().ok()
}

fn service(object: &Value, old: Option<&Value>, out: &mut Vec<Cause>) {
    let spec = &object["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    const TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];
    if !TYPES.contains(&ty) {
        out.push((
            "spec.type".into(),
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
            ),
        ));
    }
    let ports: Vec<&Value> = spec["ports"].as_array().into_iter().flatten().collect();
    let headless = spec["clusterIP"] == "None";
    if ports.is_empty() && ty != "ExternalName" && !headless {
        out.push((
            "spec.ports".into(),
            "FieldValueRequired",
            "Required value".into(),
        ));
    }
    let mut names = HashSet::new();
    for (i, p) in ports.iter().enumerate() {
        let at = |f: &str| format!("spec.ports[{i}].{f}");
        let name = p["name"].as_str().unwrap_or("");
        if ports.len() > 1 && name.is_empty() {
            out.push((at("name"), "FieldValueRequired", "Required value".into()));
        } else if !name.is_empty() && !names.insert(name.to_string()) {
            out.push((
                at("name"),
                "FieldValueDuplicate",
                format!("Duplicate value: {name:?}"),
            ));
        }
        match p["port"].as_i64() {
            Some(n) if (1..=65535).contains(&n) => {}
            Some(n) => out.push((
                at("port"),
                "FieldValueInvalid",
                format!("Invalid value: {n}: must be between 1 and 65535, inclusive"),
            )),
            None => out.push((at("port"), "FieldValueRequired", "Required value".into())),
        }
        if let Some(np) = p["nodePort"].as_i64() {
            if ty == "ClusterIP" || ty == "ExternalName" {
                out.push((
                    at("nodePort"),
                    "FieldValueForbidden",
                    format!("Forbidden: may not be used when `type` is '{ty}'"),
                ));
            } else if !NODE_PORTS.contains(&(np as u64)) || np < 0 {
                out.push((
                    at("nodePort"),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {np}: provided port is not in the valid range. The range of valid ports is 30000-32767"
                    ),
                ));
            }
        }
    }
    let Some(old) = old else { return };
    let old_ips: Vec<&str> = old["spec"]["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let new_ips: Vec<&str> = spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let external = |v: &Value| v["spec"]["type"] == "ExternalName";
    if !external(old) && !external(object) {
        for (i, ip) in old_ips.iter().enumerate() {
            if new_ips.get(i).is_some_and(|n| n != ip) {
                let list: Vec<String> = new_ips.iter().map(|s| format!("{s:?}")).collect();
                out.push((
                    format!("spec.clusterIPs[{i}]"),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: []string{{{}}}: may not change once set",
                        list.join(", ")
                    ),
                ));
            }
        }
    }
}
