//! `/openapi/v2`: one Swagger 2.0 document of every served kind, as kube-apiserver publishes it
//! (`staging/src/k8s.io/kube-openapi/pkg/handler`, served by apiserver
//! `pkg/server/routes/openapi.go`): the same paths and operations as the `/openapi/v3` documents
//! ([`crate::openapi_v3`]), in Swagger 2.0 form (`parameters` with a `type`, `consumes`, body
//! parameters), and one definition per kind named like the real ones
//! (`io.kubevirt.v1.VirtualMachine`, `io.k8s.api.core.v1.ConfigMap`) carrying its
//! `x-kubernetes-group-version-kind`, with only `apiVersion`, `kind` and `metadata` as
//! properties. Served as JSON only: the protobuf form kubectl may ask for
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`) gets 406, as any answer the
//! double cannot give in JSON.

use serde_json::{Map, Value, json};

use crate::schema::{Catalog, ResourceType};

/// The Swagger 2.0 document, for `GET /openapi/v2`.
pub(crate) fn document(catalog: &Catalog) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (group, versions) in catalog.groups() {
        for version in versions {
            let gv = if group.is_empty() {
                format!("/openapi/v3/api/{version}")
            } else {
                format!("/openapi/v3/apis/{group}/{version}")
            };
            let Some(v3) = crate::openapi_v3::serve(catalog, &gv) else {
                continue;
            };
            for (path, item) in v3["paths"].as_object().into_iter().flatten() {
                paths.insert(path.clone(), path_item(catalog, item));
            }
        }
    }
    for t in catalog.types() {
        definitions.insert(
            definition_name(t),
            json!({
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
                },
                "x-kubernetes-group-version-kind": [
                    {"group": t.group, "version": t.version, "kind": t.kind}
                ],
            }),
        );
    }
    definitions.insert(
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta".into(),
        json!({"type": "object", "properties": {
            "name": {"type": "string"}, "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        }}),
    );
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0-kubecloud-testkit"},
        "paths": paths,
        "definitions": definitions,
    })
}

/// The definition name kube-openapi gives a kind: the Go package path for built-in kinds
/// (`io.k8s.api.core.v1.Pod`, `io.k8s.api.storage.v1.StorageClass`), the reversed group for
/// custom resources (`io.kubevirt.v1.VirtualMachine`).
fn definition_name(t: &ResourceType) -> String {
    if t.group.is_empty() {
        return format!("io.k8s.api.core.{}.{}", t.version, t.kind);
    }
    if let Some(g) = t.group.strip_suffix(".k8s.io") {
        return format!("io.k8s.api.{g}.{}.{}", t.version, t.kind);
    }
    let reversed: Vec<&str> = t.group.split('.').rev().collect();
    format!("{}.{}.{}", reversed.join("."), t.version, t.kind)
}

/// One path item of the v3 document in Swagger 2.0 form.
fn path_item(catalog: &Catalog, item: &Value) -> Value {
    let mut out = Map::new();
    for (key, op) in item.as_object().into_iter().flatten() {
        if key == "parameters" {
            out.insert(key.clone(), parameters(op));
            continue;
        }
        let mut o = op.clone();
        o["parameters"] = parameters(&op["parameters"]);
        o["produces"] = json!(["application/json"]);
        o["schemes"] = json!(["https"]);
        if let Some(body) = o.as_object_mut().and_then(|m| m.remove("requestBody")) {
            let consumes: Vec<&String> = body["content"]
                .as_object()
                .map(|c| c.keys().collect())
                .unwrap_or_default();
            o["consumes"] = json!(consumes);
            push_body(&mut o);
        } else if matches!(key.as_str(), "post" | "put") {
            o["consumes"] = json!(["application/json"]);
            push_body(&mut o);
        }
        let gvk = &op["x-kubernetes-group-version-kind"];
        if let Some(t) = catalog.types().iter().find(|t| {
            gvk["group"] == t.group.as_str()
                && gvk["version"] == t.version.as_str()
                && gvk["kind"] == t.kind.as_str()
        }) {
            o["responses"] = json!({"200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{}", definition_name(t))}}});
        }
        out.insert(key.clone(), o);
    }
    Value::Object(out)
}

fn push_body(op: &mut Value) {
    if let Some(params) = op["parameters"].as_array_mut() {
        params.push(
            json!({"name": "body", "in": "body", "required": true, "schema": {"type": "object"}}),
        );
    }
}

/// v3 parameters (`schema: {type}`) as Swagger 2.0 ones (`type` beside `in`).
fn parameters(v3: &Value) -> Value {
    let params: Vec<Value> = v3
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let mut q =
                json!({"name": p["name"], "in": p["in"], "type": "string", "uniqueItems": true});
            if p["required"] == true {
                q["required"] = json!(true);
            }
            q
        })
        .collect();
    Value::Array(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swagger_document_of_every_served_kind() {
        let catalog = Catalog::upstream().expect("catalog");
        let doc = document(catalog);
        assert_eq!(doc["swagger"], "2.0");
        let vm = &doc["definitions"]["io.kubevirt.v1.VirtualMachine"];
        assert_eq!(
            vm["x-kubernetes-group-version-kind"][0]["kind"],
            "VirtualMachine"
        );
        assert!(doc["definitions"]["io.k8s.api.core.v1.ConfigMap"].is_object());
        let get = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["get"];
        assert_eq!(
            get["responses"]["200"]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.ConfigMap"
        );
        let patch = &doc["paths"]["/apis/kubevirt.io/v1/namespaces/{namespace}/virtualmachines/{name}"]
            ["patch"];
        assert!(
            patch["consumes"]
                .as_array()
                .unwrap()
                .contains(&json!("application/apply-patch+yaml"))
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["in"] == "body")
        );
    }
}
