//! JSON patch (RFC 6902), JSON merge patch (RFC 7386) and strategic merge patch.
//!
//! Strategic merge patch is answered with 415 for custom resources, as kube-apiserver does. For
//! built-in kinds it is a merge patch in which the lists Kubernetes declares with a merge key
//! (containers, volumes, env, ports, conditions, ...) are merged item by item on that key, and the
//! `$patch: delete|replace` and `$retainKeys`-free directives of the common cases are honoured.

use serde_json::{Map, Value};

use crate::status::ApiError;

/// The patch flavours a `PATCH` request can carry, by `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let base = content_type.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            "application/apply-patch+yaml"
            | "application/apply-patch+json"
            | "application/apply-patch+cbor" => Some(PatchKind::Apply),
            _ => None,
        }
    }
}

/// Applies an RFC 6902 JSON patch. Malformed patches are 400; patches that do not apply are 422,
/// as on a real server.
pub(crate) fn json_patch(target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: json_patch::Patch = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let mut out = target.clone();
    for (i, op) in patch.0.into_iter().enumerate() {
        // kube-apiserver's JSON patch (evanphx/json-patch) treats a missing path as null in a
        // `test`: kube-runtime's finalizer helper tests `/metadata/finalizers` for null first.
        if let json_patch::PatchOperation::Test(t) = &op
            && t.value.is_null()
            && out.pointer(t.path.as_str()).is_none()
        {
            continue;
        }
        json_patch::patch(&mut out, &[op]).map_err(|e| {
            let message = e.to_string().replacen("'/0'", &format!("'/{i}'"), 1);
            ApiError::new(422, "Invalid", message)
        })?;
    }
    Ok(out)
}

/// Applies an RFC 7386 merge patch.
pub(crate) fn merge_patch(target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    if !patch.is_object() {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal patch into Go value of type map[string]interface {}",
        ));
    }
    let mut out = target.clone();
    json_patch::merge(&mut out, &patch);
    Ok(out)
}

/// The merge key of a built-in list field, by field name (parent field name for `ports`).
fn merge_key(parent: &str, field: &str) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "ports" if parent == "spec" => "port",
        "ports" => "containerPort",
        _ => return None,
    })
}

/// Lists of scalars that merge as sets.
fn is_scalar_set(field: &str) -> bool {
    field == "finalizers"
}

/// Applies a strategic merge patch (built-in kinds only).
pub(crate) fn strategic_merge_patch(target: &Value, body: &[u8]) -> Result<Value, ApiError> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let Value::Object(patch) = patch else {
        return Err(ApiError::bad_request(
            "strategic merge patch must be a JSON object",
        ));
    };
    let mut out = target.clone();
    if !out.is_object() {
        out = Value::Object(Map::new());
    }
    smp_map(out.as_object_mut().expect("object"), &patch, "");
    Ok(out)
}

fn smp_map(target: &mut Map<String, Value>, patch: &Map<String, Value>, parent: &str) {
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = patch.clone();
        p.remove("$patch");
        *target = p;
        return;
    }
    for (k, pv) in patch {
        if k.starts_with('$') {
            continue;
        }
        match pv {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(po) if po.get("$patch").and_then(Value::as_str) == Some("delete") => {
                target.remove(k);
            }
            Value::Object(po) => {
                let entry = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                smp_map(entry.as_object_mut().expect("object"), po, k);
            }
            Value::Array(items) => {
                if let Some(key) = merge_key(parent, k)
                    && let Some(Value::Array(current)) = target.get_mut(k)
                {
                    smp_keyed_list(current, items, key);
                } else if is_scalar_set(k)
                    && let Some(Value::Array(current)) = target.get_mut(k)
                {
                    for item in items {
                        if !current.contains(item) {
                            current.push(item.clone());
                        }
                    }
                } else {
                    let cleaned: Vec<Value> = items
                        .iter()
                        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                        .cloned()
                        .collect();
                    target.insert(k.clone(), Value::Array(cleaned));
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

fn smp_keyed_list(current: &mut Vec<Value>, items: &[Value], key: &str) {
    for item in items {
        let Some(id) = item.get(key) else {
            current.push(item.clone());
            continue;
        };
        let pos = current.iter().position(|c| c.get(key) == Some(id));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                current.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                if let (Some(c), Some(p)) = (current[i].as_object_mut(), item.as_object()) {
                    smp_map(c, p, "");
                }
            }
            (None, false) => current.push(item.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merge_merges_containers_by_name() {
        let pod = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let patch =
            br#"{"spec":{"containers":[{"name":"b","image":"z"},{"name":"c","image":"w"}]}}"#;
        let out = strategic_merge_patch(&pod, patch).unwrap();
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c", "image": "w"}])
        );
    }

    #[test]
    fn strategic_merge_deletes_with_directive() {
        let pod = json!({"spec": {"volumes": [{"name": "a"}, {"name": "b"}]}});
        let out = strategic_merge_patch(
            &pod,
            br#"{"spec":{"volumes":[{"name":"a","$patch":"delete"}]}}"#,
        )
        .unwrap();
        assert_eq!(out["spec"]["volumes"], json!([{"name": "b"}]));
    }

    #[test]
    fn merge_patch_replaces_lists_and_removes_nulls() {
        let o = json!({"a": [1, 2], "b": 1});
        assert_eq!(
            merge_patch(&o, br#"{"a":[3],"b":null}"#).unwrap(),
            json!({"a": [3]})
        );
    }

    #[test]
    fn a_test_for_null_passes_on_a_missing_path() {
        let o = json!({"metadata": {"name": "x"}});
        let patched = json_patch(
            &o,
            br#"[{"op":"test","path":"/metadata/finalizers","value":null},
                 {"op":"add","path":"/metadata/finalizers","value":["f"]}]"#,
        )
        .unwrap();
        assert_eq!(patched["metadata"]["finalizers"], json!(["f"]));
        let err = json_patch(
            &o,
            br#"[{"op":"add","path":"/a","value":1},{"op":"test","path":"/a","value":2}]"#,
        )
        .unwrap_err();
        assert!(err.message.contains("'/1'"), "{}", err.message);
    }

    #[test]
    fn failing_json_patch_is_422() {
        let o = json!({"a": 1});
        let err = json_patch(&o, br#"[{"op":"test","path":"/a","value":2}]"#).unwrap_err();
        assert_eq!(err.code, 422);
    }
}
