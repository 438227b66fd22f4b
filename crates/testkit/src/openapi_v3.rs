//! `/openapi/v3`: the index and one document per group-version, built from the catalog, with the
//! paths and operations kube-apiserver publishes (no component schemas).
//!
//! kubectl reads them to decide how to validate: a `PATCH` operation tagged with the object's
//! `x-kubernetes-group-version-kind` that takes the `fieldValidation` query parameter means the
//! server validates (kubectl then sends `fieldValidation=Strict` and does no client-side schema
//! check). `PATCH` request bodies list `application/strategic-merge-patch+json` only for built-in
//! kinds, as on a real server; because no schemas are published, kubectl computes strategic merge
//! patches for built-in kinds from its compiled-in types, and merge patches for custom resources.
//! `/openapi/v2` is built from these documents ([`crate::openapi_v2`]).

use serde_json::{Map, Value, json};

use crate::api::is_builtin;
use crate::schema::{Catalog, ResourceType};

/// The document for a `GET` of `path`, if it is an OpenAPI v3 path the double serves.
pub(crate) fn serve(catalog: &Catalog, path: &str) -> Option<Value> {
    let rest = path.trim_end_matches('/').strip_prefix("/openapi/v3")?;
    if rest.is_empty() {
        return Some(index(catalog));
    }
    let (group, version) = match rest.trim_start_matches('/').split('/').collect::<Vec<_>>()[..] {
        ["api", v] => ("", v),
        ["apis", g, v] => (g, v),
        _ => return None,
    };
    group_version(catalog, group, version)
}

/// `api/v1` or `apis/{group}/{version}`.
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per group-version, pointing at its document.
fn index(catalog: &Catalog) -> Value {
    let mut paths = Map::new();
    for (group, versions) in catalog.groups() {
        for v in versions {
            let p = gv_path(&group, &v);
            // The real server appends a content hash so that clients can cache forever; the
            // catalog never changes while the server runs, so a constant does.
            let url = format!("/openapi/v3/{p}?hash=0");
            paths.insert(p, json!({ "serverRelativeURL": url }));
        }
    }
    json!({ "paths": paths })
}

/// The document of one group-version, or `None` when the catalog has no type in it.
fn group_version(catalog: &Catalog, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> = catalog
        .types()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for t in types {
        let gvk = json!({"group": t.group, "version": t.version, "kind": t.kind});
        let base = if t.namespaced {
            format!(
                "/{}/namespaces/{{namespace}}/{}",
                gv_path(group, version),
                t.plural
            )
        } else {
            format!("/{}/{}", gv_path(group, version), t.plural)
        };
        let op = |action: &str, params: &[&str]| operation(t, &gvk, action, params);
        paths.insert(
            base.clone(),
            json!({
                "get": op("list", &["labelSelector", "fieldSelector", "limit", "continue", "resourceVersion", "watch"]),
                "post": op("post", &["dryRun", "fieldManager", "fieldValidation"]),
                "delete": op("deletecollection", &["dryRun", "labelSelector", "fieldSelector"]),
            }),
        );
        let mut item = json!({
            "get": op("get", &[]),
            "put": op("put", &["dryRun", "fieldManager", "fieldValidation"]),
            "patch": patch(t, &gvk),
            "delete": op("delete", &["dryRun", "propagationPolicy"]),
        });
        item["parameters"] = json!([path_param("name")]);
        paths.insert(format!("{base}/{{name}}"), item);
        if t.status_subresource {
            paths.insert(
                format!("{base}/{{name}}/status"),
                json!({
                    "get": op("get", &[]),
                    "put": op("put", &["dryRun", "fieldManager", "fieldValidation"]),
                    "patch": patch(t, &gvk),
                    "parameters": [path_param("name")],
                }),
            );
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0-kubecloud-testkit"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn query_param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(t: &ResourceType, gvk: &Value, action: &str, params: &[&str]) -> Value {
    let params: Vec<Value> = params.iter().map(|p| query_param(p)).collect();
    json!({
        "operationId": format!("{action}{}", t.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    })
}

fn patch(t: &ResourceType, gvk: &Value) -> Value {
    let mut op = operation(
        t,
        gvk,
        "patch",
        &["dryRun", "fieldManager", "fieldValidation", "force"],
    );
    let mut content = Map::new();
    let mut types = vec![
        "application/json-patch+json",
        "application/merge-patch+json",
        "application/apply-patch+yaml",
    ];
    if is_builtin(t) {
        types.push("application/strategic-merge-patch+json");
    }
    for ct in types {
        content.insert(ct.to_string(), json!({"schema": {"type": "object"}}));
    }
    op["requestBody"] = json!({"content": content, "required": true});
    op
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_points_at_every_group_version() {
        let catalog = Catalog::upstream().expect("catalog");
        let index = serve(catalog, "/openapi/v3").expect("index");
        assert_eq!(
            index["paths"]["api/v1"]["serverRelativeURL"],
            "/openapi/v3/api/v1?hash=0"
        );
        assert!(index["paths"]["apis/kubevirt.io/v1"].is_object());
    }

    #[test]
    fn patch_operations_take_field_validation() {
        let catalog = Catalog::upstream().expect("catalog");
        let doc = serve(catalog, "/openapi/v3/apis/kubeovn.io/v1").expect("kubeovn.io/v1");
        let op = &doc["paths"]["/apis/kubeovn.io/v1/subnets/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Subnet");
        assert!(
            op["parameters"]
                .as_array()
                .expect("parameters")
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["in"] == "query")
        );
        assert!(
            op["requestBody"]["content"]
                .get("application/strategic-merge-patch+json")
                .is_none(),
            "custom resources take no strategic merge patch"
        );
        assert!(serve(catalog, "/openapi/v3/apis/nope.io/v1").is_none());
    }
}
