//! The LINSTOR REST OpenAPI document (`linstor/rest_v1_openapi.yaml` of `../shared/upstream`),
//! through the schema bundle compiled into the crate (`crates/testkit/schemas/linstor.json`, see
//! [`crate::schema::bundle`]: the operations' JSON bodies and the components, with only the
//! keywords checked here), loaded once per process, and a validator for request and response
//! bodies against it.
//!
//! Checks: `$ref`s, `type`, `required`, `enum`, integer formats, `allOf` (merged), `oneOf` (at
//! least one variant must accept the value cleanly), and unknown fields: an object schema that
//! lists `properties` and has no `additionalProperties` rejects any other field. Where the real
//! controller differs from the document (`shared/upstream/linstor/NOTES.md`), the controller wins:
//! `default: null` counts as nullable, and error answers are lists of `ApiCallRc`.

use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The parsed document.
#[derive(Debug)]
pub struct OpenApi {
    doc: Value,
}

static DOC: OnceLock<Result<OpenApi, String>> = OnceLock::new();

impl OpenApi {
    /// The document, from the bundle compiled into the crate, loaded once per process.
    pub fn upstream() -> Result<&'static OpenApi, String> {
        DOC.get_or_init(|| {
            let name = crate::schema::bundle::LINSTOR_FILE;
            let mut bundle: Value = serde_json::from_str(crate::schema::bundle::LINSTOR)
                .map_err(|e| format!("parsing the schema bundle {name}: {e}"))?;
            let doc = bundle
                .get_mut("openapi")
                .map(Value::take)
                .ok_or_else(|| format!("the schema bundle {name} has no openapi document"))?;
            Ok(OpenApi { doc })
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    /// A document from its JSON value (for comparing the bundle with the upstream file).
    #[cfg(test)]
    pub(crate) fn from_value(doc: Value) -> OpenApi {
        OpenApi { doc }
    }

    /// The operation object for `method` on a concrete `path` (templates matched by segment).
    pub fn operation(&self, method: &str, path: &str) -> Option<&Value> {
        let paths = self.doc["paths"].as_object()?;
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let mut best: Option<(&Value, usize)> = None;
        for (template, item) in paths {
            let t: Vec<&str> = template.trim_matches('/').split('/').collect();
            if t.len() != segs.len() {
                continue;
            }
            let mut literal = 0;
            let ok = t.iter().zip(&segs).all(|(a, b)| {
                if a.starts_with('{') {
                    true
                } else {
                    literal += 1;
                    a == b
                }
            });
            let op = &item[method.to_ascii_lowercase()];
            if ok && op.is_object() && best.is_none_or(|(_, l)| literal > l) {
                best = Some((op, literal));
            }
        }
        best.map(|(op, _)| op)
    }

    /// The schema of the request body of `op`.
    pub fn request_schema<'a>(&'a self, op: &'a Value) -> Option<&'a Value> {
        let s = &op["requestBody"]["content"]["application/json"]["schema"];
        (!s.is_null()).then_some(s)
    }

    /// The schema of the `status` answer of `op`. Error answers are lists of `ApiCallRc`
    /// whatever the document says (NOTES.md).
    pub fn response_schema<'a>(&'a self, op: &'a Value, status: u16) -> Option<Value> {
        if status >= 400 {
            return Some(serde_json::json!({"$ref": "#/components/schemas/ApiCallRcList"}));
        }
        let mut r = &op["responses"][status.to_string()];
        if let Some(reference) = r["$ref"].as_str() {
            r = self.resolve(reference)?;
        }
        let s = &r["content"]["application/json"]["schema"];
        (!s.is_null()).then(|| s.clone())
    }

    fn resolve(&self, reference: &str) -> Option<&Value> {
        let mut v = &self.doc;
        for part in reference.strip_prefix("#/")?.split('/') {
            v = v.get(part)?;
        }
        Some(v)
    }

    /// Validates `value` against `schema`; each violation as `path: problem`.
    pub fn validate(&self, schema: &Value, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(schema, value, "$", &mut errors);
        errors
    }

    fn deref<'a>(&'a self, mut schema: &'a Value) -> &'a Value {
        while let Some(r) = schema["$ref"].as_str() {
            match self.resolve(r) {
                Some(s) => schema = s,
                None => break,
            }
        }
        schema
    }

    /// `allOf` members merged into one object schema (properties, required).
    fn merged(&self, schema: &Value) -> Value {
        let schema = self.deref(schema);
        let Some(parts) = schema["allOf"].as_array() else {
            return schema.clone();
        };
        let mut props = Map::new();
        let mut required = Vec::new();
        for part in parts {
            let part = self.merged(part);
            if let Some(p) = part["properties"].as_object() {
                props.extend(p.clone());
            }
            if let Some(r) = part["required"].as_array() {
                required.extend(r.clone());
            }
        }
        serde_json::json!({"type": "object", "properties": props, "required": required})
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let schema = self.merged(schema);
        if value.is_null() {
            let nullable = schema["nullable"] == true
                || schema.get("default").is_some_and(Value::is_null)
                || schema.as_object().is_some_and(|o| o.is_empty());
            if !nullable {
                errors.push(format!("{path}: null is not allowed"));
            }
            return;
        }
        if let Some(variants) = schema["oneOf"].as_array().or(schema["anyOf"].as_array()) {
            let fits = variants.iter().any(|v| {
                let mut e = Vec::new();
                self.check(v, value, path, &mut e);
                e.is_empty()
            });
            if !fits {
                errors.push(format!("{path}: matches none of the oneOf variants"));
            }
            return;
        }
        if let Some(allowed) = schema["enum"].as_array()
            && !allowed.contains(value)
        {
            errors.push(format!("{path}: {value} is not one of {allowed:?}"));
        }
        let object_schema = schema["type"] == "object"
            || (schema["type"].is_null() && schema["properties"].is_object());
        match schema["type"].as_str() {
            _ if object_schema => {
                let Some(obj) = value.as_object() else {
                    errors.push(format!("{path}: expected an object, got {value}"));
                    return;
                };
                let props = schema["properties"].as_object();
                for r in schema["required"].as_array().into_iter().flatten() {
                    if let Some(r) = r.as_str()
                        && !obj.contains_key(r)
                    {
                        errors.push(format!("{path}.{r}: required"));
                    }
                }
                for (k, v) in obj {
                    let sub = format!("{path}.{k}");
                    if let Some(p) = props.and_then(|p| p.get(k)) {
                        self.check(p, v, &sub, errors);
                    } else if let Some(extra) = schema.get("additionalProperties") {
                        if extra.is_object() {
                            self.check(extra, v, &sub, errors);
                        } else if extra == false {
                            errors.push(format!("{sub}: unknown field"));
                        }
                    } else if props.is_some() {
                        errors.push(format!("{sub}: unknown field"));
                    }
                }
            }
            Some("array") => match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check(&schema["items"], item, &format!("{path}[{i}]"), errors);
                    }
                }
                None => errors.push(format!("{path}: expected an array, got {value}")),
            },
            Some("string") if !value.is_string() => {
                errors.push(format!("{path}: expected a string, got {value}"));
            }
            Some("boolean") if !value.is_boolean() => {
                errors.push(format!("{path}: expected a boolean, got {value}"));
            }
            Some("integer") => {
                let ok = match schema["format"].as_str() {
                    Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                    _ => value.is_i64() || value.is_u64(),
                };
                if !ok {
                    errors.push(format!("{path}: expected an integer, got {value}"));
                }
            }
            Some("number") if !value.is_number() => {
                errors.push(format!("{path}: expected a number, got {value}"));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spawn_bodies_are_checked_with_unknown_fields_rejected() {
        let api = OpenApi::upstream().expect("document");
        let op = api
            .operation("POST", "/v1/resource-groups/rg1/spawn")
            .expect("spawn");
        let schema = api.request_schema(op).expect("body schema");
        let good = json!({"resource_definition_name": "pvc-1", "volume_sizes": [1024],
                          "select_filter": {"place_count": 2, "storage_pool_list": null}});
        assert!(api.validate(schema, &good).is_empty());
        let bad = json!({"resource_definition_name": "pvc-1", "volume_size": [1024]});
        assert_eq!(api.validate(schema, &bad), ["$.volume_size: unknown field"]);
        let bad = json!({"resource_definition_name": 7});
        assert_eq!(api.validate(schema, &bad).len(), 1);
    }

    #[test]
    fn error_answers_are_lists_whatever_the_document_says() {
        let api = OpenApi::upstream().expect("document");
        let op = api
            .operation("POST", "/v1/resource-groups/rg/spawn")
            .unwrap();
        let schema = api.response_schema(op, 500).unwrap();
        let list =
            json!([{"ret_code": -4611686018427386908i64, "message": "Not enough available nodes"}]);
        assert!(api.validate(&schema, &list).is_empty());
        assert!(!api.validate(&schema, &list[0]).is_empty());
    }

    /// Values to probe `schema` with: every JSON type, and objects with every listed property
    /// set to each type in turn, and arrays of the items' probes (`depth` levels down).
    fn probes(api: &OpenApi, schema: &Value, depth: u8) -> Vec<Value> {
        let mut out = vec![
            json!(null),
            json!(true),
            json!(0),
            json!(-1),
            json!(1u64 << 40),
            json!(1.5),
            json!("x"),
            json!([]),
            json!([null]),
            json!([1, "x", {}]),
            json!({}),
            json!({"zz_not_a_field": 1}),
        ];
        let merged = api.merged(schema);
        if let Some(props) = merged["properties"].as_object() {
            for value in [
                json!(null),
                json!("x"),
                json!(1),
                json!(true),
                json!([]),
                json!({}),
            ] {
                let object: Map<String, Value> =
                    props.keys().map(|k| (k.clone(), value.clone())).collect();
                out.push(Value::Object(object));
            }
        }
        if let Some(items) = merged.get("items").filter(|_| depth > 0) {
            let inner = probes(api, items, depth - 1);
            out.push(Value::Array(inner));
        }
        out
    }

    /// The bundle's document validates every probe of every schema, request and answer as the
    /// upstream document does (skipped without the upstream dir).
    #[test]
    fn the_bundle_validates_as_the_upstream_document() {
        let Ok(dir) = crate::schema::bundle::upstream_dir() else {
            eprintln!("skipped: no upstream schema directory to compare the bundle with");
            return;
        };
        let (mut whole, _) = crate::schema::bundle::linstor_body(&dir, false).expect("document");
        let whole = OpenApi::from_value(whole["openapi"].take());
        let bundled = OpenApi::upstream().expect("bundle");
        let same = |a: &Value, b: &Value, what: &str| {
            for p in probes(&whole, a, 2) {
                assert_eq!(
                    whole.validate(a, &p),
                    bundled.validate(b, &p),
                    "{what}: {p}"
                );
            }
        };
        let mut checked = 0;
        for (name, _) in whole.doc["components"]["schemas"].as_object().unwrap() {
            let r = json!({ "$ref": format!("#/components/schemas/{name}") });
            same(&r, &r, name);
            checked += 1;
        }
        for (template, item) in whole.doc["paths"].as_object().unwrap() {
            let path = template
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            for method in ["get", "put", "post", "delete", "patch"] {
                if !item[method].is_object() {
                    continue;
                }
                let a = whole.operation(method, &path).expect("operation upstream");
                let b = bundled
                    .operation(method, &path)
                    .expect("operation in the bundle");
                let what = format!("{method} {template}");
                match (whole.request_schema(a), bundled.request_schema(b)) {
                    (Some(x), Some(y)) => same(x, y, &what),
                    (None, None) => {}
                    other => panic!("{what}: request schema {other:?}"),
                }
                let statuses = a["responses"].as_object().unwrap().keys();
                for status in statuses.filter_map(|s| s.parse::<u16>().ok()).chain([500]) {
                    match (
                        whole.response_schema(a, status),
                        bundled.response_schema(b, status),
                    ) {
                        (Some(x), Some(y)) => same(&x, &y, &format!("{what} {status}")),
                        (None, None) => {}
                        other => panic!("{what} {status}: response schema {other:?}"),
                    }
                }
                checked += 1;
            }
        }
        assert!(checked > 200, "{checked} schemas and operations compared");
    }
}
