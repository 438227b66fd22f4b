//! The API double behaves as kube-apiserver does: each test states one upstream behaviour and
//! cites the upstream file it comes from.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kubecloud_testkit::TestServer;
use serde_json::{Value, json};

fn api(server: &TestServer, group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    let _ = server;
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn linstor_clusters(server: &TestServer) -> Api<DynamicObject> {
    let ar = api(
        server,
        "piraeus.io",
        "v1",
        "LinstorCluster",
        "linstorclusters",
    );
    Api::all_with(server.client(), &ar)
}

fn vms(server: &TestServer) -> Api<DynamicObject> {
    let ar = api(
        server,
        "kubevirt.io",
        "v1",
        "VirtualMachine",
        "virtualmachines",
    );
    Api::namespaced_with(server.client(), "default", &ar)
}

fn pools(server: &TestServer) -> Api<DynamicObject> {
    let ar = api(
        server,
        "metallb.io",
        "v1beta1",
        "IPAddressPool",
        "ipaddresspools",
    );
    Api::namespaced_with(server.client(), "default", &ar)
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn fields_of(o: &DynamicObject, manager: &str) -> Value {
    o.metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some(manager))
        .and_then(|m| m.fields_v1.as_ref())
        .map(|f| f.0.clone())
        .unwrap_or(Value::Null)
}

fn condition(ty: &str, status: &str) -> Value {
    json!({"type": ty, "status": status, "reason": "Checked", "message": "",
           "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

fn cluster_status(conditions: Vec<Value>) -> Patch<Value> {
    Patch::Apply(json!({
        "apiVersion": "piraeus.io/v1", "kind": "LinstorCluster",
        "metadata": {"name": "lc"},
        "status": {"conditions": conditions}
    }))
}

fn condition_types(o: &DynamicObject) -> Vec<String> {
    o.data["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap().to_string())
        .collect()
}

// Item 1. structured-merge-diff merges a list as its schema declares it: kube-openapi
// pkg/schemaconv/smd.go (getListElementRelationship) turns `x-kubernetes-list-type: map` with
// `x-kubernetes-list-map-keys` into an associative list; sigs.k8s.io/structured-merge-diff
// fieldpath/serialize-pe.go names its items `k:{"type":"Available"}`, fieldpath/element.go
// prints them `[type="Available"]` in conflicts (merge/conflict.go).
#[tokio::test]
async fn apply_merges_a_custom_resources_list_map_item_by_item() {
    let server = TestServer::start().await.unwrap();
    let api = linstor_clusters(&server);
    let spec = json!({"apiVersion": "piraeus.io/v1", "kind": "LinstorCluster",
                      "metadata": {"name": "lc"}, "spec": {}});
    api.patch("lc", &PatchParams::apply("operator"), &Patch::Apply(spec))
        .await
        .unwrap();

    api.patch_status(
        "lc",
        &PatchParams::apply("alice"),
        &cluster_status(vec![condition("Available", "True")]),
    )
    .await
    .unwrap();
    let both = api
        .patch_status(
            "lc",
            &PatchParams::apply("bob"),
            &cluster_status(vec![condition("Configured", "True")]),
        )
        .await
        .unwrap();
    assert_eq!(condition_types(&both), ["Available", "Configured"]);
    let alice = fields_of(&both, "alice");
    let item = &alice["f:status"]["f:conditions"][r#"k:{"type":"Available"}"#];
    assert_eq!(item["."], json!({}), "the item itself is owned: {alice}");
    assert_eq!(item["f:status"], json!({}));
    assert!(
        fields_of(&both, "bob")["f:status"]["f:conditions"][r#"k:{"type":"Configured"}"#]
            .is_object()
    );

    // Bob changing alice's condition conflicts on that one field of that one item.
    let err = api_error(
        api.patch_status(
            "lc",
            &PatchParams::apply("bob"),
            &cluster_status(vec![
                condition("Configured", "True"),
                condition("Available", "False"),
            ]),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains(
            r#"conflict with "alice" with subresource "status": .status.conditions[type="Available"].status"#
        ),
        "{}",
        err.message
    );

    // Alice no longer applying hers removes only hers.
    let left = api
        .patch_status("lc", &PatchParams::apply("alice"), &cluster_status(vec![]))
        .await
        .unwrap();
    assert_eq!(condition_types(&left), ["Configured"]);
}

// Item 1. A list the CRD does not annotate is atomic (kube-openapi pkg/schemaconv/smd.go:
// "Treat as atomic by default"): a second manager applying a different list conflicts on the
// whole list, and forcing replaces it.
#[tokio::test]
async fn apply_treats_an_unannotated_custom_resource_list_as_atomic() {
    let server = TestServer::start().await.unwrap();
    let api = vms(&server);
    let vm = |volumes: Value| {
        Patch::Apply(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "vm1"},
            "spec": {"runStrategy": "Halted", "template": {"spec": {
                "domain": {"devices": {}, "memory": {"guest": "1Gi"}},
                "volumes": volumes}}}
        }))
    };
    let created = api
        .patch(
            "vm1",
            &PatchParams::apply("alice"),
            &vm(json!([{"name": "a", "emptyDisk": {"capacity": "1Gi"}}])),
        )
        .await
        .unwrap();
    assert_eq!(
        fields_of(&created, "alice")["f:spec"]["f:template"]["f:spec"]["f:volumes"],
        json!({}),
        "an atomic list is one leaf"
    );
    let err = api_error(
        api.patch(
            "vm1",
            &PatchParams::apply("bob"),
            &vm(json!([{"name": "b", "emptyDisk": {"capacity": "1Gi"}}])),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert!(
        err.message
            .ends_with(r#"conflict with "alice": .spec.template.spec.volumes"#),
        "{}",
        err.message
    );
    let forced = api
        .patch(
            "vm1",
            &PatchParams::apply("bob").force(),
            &vm(json!([{"name": "b", "emptyDisk": {"capacity": "1Gi"}}])),
        )
        .await
        .unwrap();
    assert_eq!(
        forced.data["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "b", "emptyDisk": {"capacity": "1Gi"}}])
    );
}

fn pool(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
           "metadata": {"name": name}, "spec": spec})
}

// Item 2. CRD schema defaults are applied when a body is decoded (create, update) and after a
// patch or an apply is merged, before validation, and show in the answer
// (apiextensions-apiserver pkg/apiserver/schema/defaulting/algorithm.go `Default`, called from
// customresource_handler.go's `unstructuredDefaulter`; fieldmanager
// internal/structuredmerge.go defaults the applied result). MetalLB's IPAddressPool declares
// `autoAssign: default true` and `avoidBuggyIPs: default false`.
#[tokio::test]
async fn crd_defaults_are_applied_on_create_update_patch_and_apply() {
    let server = TestServer::start().await.unwrap();
    let api = pools(&server);
    let addresses = json!({"addresses": ["10.0.0.0/28"]});
    let created = api
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(pool("p1", addresses.clone())).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["autoAssign"], true);
    assert_eq!(created.data["spec"]["avoidBuggyIPs"], false);

    // A merge patch removing the field: the default comes back.
    let patched = api
        .patch(
            "p1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"autoAssign": null, "avoidBuggyIPs": true}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["autoAssign"], true);
    assert_eq!(patched.data["spec"]["avoidBuggyIPs"], true);

    // An update without the fields.
    let mut replaced: DynamicObject =
        serde_json::from_value(pool("p1", addresses.clone())).unwrap();
    replaced.metadata.resource_version = patched.metadata.resource_version.clone();
    let updated = api
        .replace("p1", &kube::api::PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(updated.data["spec"]["avoidBuggyIPs"], false);

    // An apply: the result is defaulted, but the applier owns only what it applied.
    let applied = api
        .patch(
            "p2",
            &PatchParams::apply("op"),
            &Patch::Apply(pool("p2", addresses)),
        )
        .await
        .unwrap();
    assert_eq!(applied.data["spec"]["autoAssign"], true);
    let owned = &fields_of(&applied, "op")["f:spec"];
    assert!(owned["f:addresses"].is_object(), "{owned}");
    assert!(owned.get("f:autoAssign").is_none(), "{owned}");
    let stored = server
        .cluster()
        .get("metallb.io/v1beta1", "IPAddressPool", Some("default"), "p2")
        .unwrap();
    assert_eq!(stored["spec"]["avoidBuggyIPs"], false);
}

// Item 2. Defaults apply inside list items and inside parents that are present, not inside
// absent parents (defaulting/algorithm.go walks the value, not the schema). KubeVirt declares
// `volumes[].configMap.name: default ""` and `volumes[].containerPath.readOnly: default true`.
#[tokio::test]
async fn crd_defaults_apply_in_list_items_and_present_parents_only() {
    let server = TestServer::start().await.unwrap();
    let api = vms(&server);
    let vm = json!({
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "vm1"},
        "spec": {"runStrategy": "Halted", "template": {"spec": {
            "domain": {"devices": {}, "memory": {"guest": "1Gi"}},
            "volumes": [
                {"name": "a", "configMap": {}},
                {"name": "b", "cloudInitNoCloud": {"userData": "#cloud-config"}}
            ]}}}
    });
    let created = api
        .create(
            &kube::api::PostParams::default(),
            &serde_json::from_value(vm).unwrap(),
        )
        .await
        .unwrap();
    let volumes = &created.data["spec"]["template"]["spec"]["volumes"];
    assert_eq!(volumes[0]["configMap"], json!({"name": ""}));
    assert_eq!(
        volumes[1]["cloudInitNoCloud"],
        json!({"userData": "#cloud-config"}),
        "no secretRef is made up for its defaulted name"
    );
}

/// A request sent as is: status, `Warning` headers, body.
async fn raw(
    server: &TestServer,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, Vec<String>, Value) {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.as_bytes().to_vec()))
        .unwrap();
    let resp = server.client().send(req).await.unwrap();
    let status = resp.status().as_u16();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        warnings,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

const POOLS: &str = "/apis/metallb.io/v1beta1/namespaces/default/ipaddresspools";

fn pool_exists(server: &TestServer, name: &str) -> bool {
    server
        .cluster()
        .get("metallb.io/v1beta1", "IPAddressPool", Some("default"), name)
        .is_ok()
}

// Item 3. Without `fieldValidation` kube-apiserver warns (apiserver
// pkg/endpoints/handlers/rest.go `fieldValidation`: "" is Warn): the unknown field is pruned
// from the custom resource and named in a `Warning: 299 - "unknown field \"spec.foo\""` header;
// `Strict` is 400 naming each field; `Ignore` prunes silently
// (test/integration/apiserver/field_validation_test.go, testFieldValidationPostCRD).
#[tokio::test]
async fn unknown_fields_per_field_validation_mode() {
    let server = TestServer::start().await.unwrap();
    let body = |name: &str| {
        pool(
            name,
            json!({"addresses": ["10.0.0.0/28"], "foo": 1, "avoidBuggyIPs": true}),
        )
        .to_string()
    };
    let (code, warnings, created) =
        raw(&server, "POST", POOLS, "application/json", &body("warn")).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(warnings, [r#"299 - "unknown field \"spec.foo\"""#]);
    assert!(created["spec"].get("foo").is_none(), "pruned: {created}");
    assert_eq!(created["spec"]["avoidBuggyIPs"], true);

    let (code, _, status) = raw(
        &server,
        "POST",
        &format!("{POOLS}?fieldValidation=Strict"),
        "application/json",
        &body("strict"),
    )
    .await;
    assert_eq!(code, 400);
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .ends_with(r#"strict decoding error: unknown field "spec.foo""#),
        "{status}"
    );
    assert!(!pool_exists(&server, "strict"));

    let (code, warnings, created) = raw(
        &server,
        "POST",
        &format!("{POOLS}?fieldValidation=Ignore"),
        "application/json",
        &body("ignore"),
    )
    .await;
    assert_eq!(code, 201);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert!(created["spec"].get("foo").is_none());
}

// Item 3. A key repeated in the body: 400 under Strict, the last value under Warn (with a
// warning) and Ignore (field_validation_test.go: `duplicate field "spec.paused"`).
#[tokio::test]
async fn duplicate_keys_per_field_validation_mode() {
    let server = TestServer::start().await.unwrap();
    let body = |name: &str| {
        format!(
            r#"{{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                "metadata": {{"name": "{name}"}},
                "spec": {{"addresses": ["10.0.0.0/28"], "autoAssign": true, "autoAssign": false}}}}"#
        )
    };
    let (code, _, status) = raw(
        &server,
        "POST",
        &format!("{POOLS}?fieldValidation=Strict"),
        "application/json",
        &body("strict"),
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .ends_with(r#"strict decoding error: duplicate field "spec.autoAssign""#),
        "{status}"
    );
    assert!(!pool_exists(&server, "strict"));

    let (code, warnings, created) =
        raw(&server, "POST", POOLS, "application/json", &body("warn")).await;
    assert_eq!(code, 201);
    assert_eq!(warnings, [r#"299 - "duplicate field \"spec.autoAssign\"""#]);
    assert_eq!(created["spec"]["autoAssign"], false, "the last value wins");

    let (code, warnings, created) = raw(
        &server,
        "POST",
        &format!("{POOLS}?fieldValidation=Ignore"),
        "application/json",
        &body("ignore"),
    )
    .await;
    assert_eq!(code, 201);
    assert!(warnings.is_empty());
    assert_eq!(created["spec"]["autoAssign"], false);
}

// Item 3. Server-side apply turns the configuration into a typed value before anything else, so
// an undeclared field fails whatever `fieldValidation` says, as a plain error (500, no reason):
// apiserver pkg/util/managedfields/internal/structuredmerge.go `Apply` ("failed to create typed
// patch object"), structured-merge-diff typed/validate.go ("field not declared in schema").
#[tokio::test]
async fn apply_with_an_unknown_field_fails_in_every_mode() {
    let server = TestServer::start().await.unwrap();
    for mode in ["", "&fieldValidation=Ignore", "&fieldValidation=Warn"] {
        let (code, _, status) = raw(
            &server,
            "PATCH",
            &format!("{POOLS}/p1?fieldManager=op{mode}"),
            "application/apply-patch+yaml",
            &pool("p1", json!({"addresses": ["10.0.0.0/28"], "foo": 1})).to_string(),
        )
        .await;
        assert_eq!(code, 500, "{mode}: {status}");
        assert_eq!(status["reason"], "");
        assert_eq!(
            status["message"],
            "failed to create typed patch object (default/p1; metallb.io/v1beta1, Kind=IPAddressPool): \
             .spec.foo: field not declared in schema"
        );
        assert!(!pool_exists(&server, "p1"));
    }
}

// Item 3. Unsupported `fieldValidation` or `dryRun` values are 422 on the options kind
// (apimachinery pkg/apis/meta/v1/validation/validation.go: ValidateCreateOptions,
// ValidateFieldValidation, ValidateDryRun), and nothing is stored.
#[tokio::test]
async fn unsupported_field_validation_or_dry_run_values_are_422() {
    let server = TestServer::start().await.unwrap();
    let body = pool("p1", json!({"addresses": ["10.0.0.0/28"]})).to_string();
    let (code, _, status) = raw(
        &server,
        "POST",
        &format!("{POOLS}?fieldValidation=Bogus"),
        "application/json",
        &body,
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        r#"CreateOptions.meta.k8s.io "" is invalid: fieldValidation: Unsupported value: "Bogus": supported values: "", "Ignore", "Strict", "Warn""#
    );
    let (code, _, status) = raw(
        &server,
        "POST",
        &format!("{POOLS}?dryRun=Bogus"),
        "application/json",
        &body,
    )
    .await;
    assert_eq!(code, 422);
    assert_eq!(
        status["message"],
        r#"CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Bogus"}: supported values: "All""#
    );
    assert!(!pool_exists(&server, "p1"));
    let (code, _, status) = raw(
        &server,
        "PATCH",
        &format!("{POOLS}/p1?fieldManager=op&fieldValidation=strict"),
        "application/apply-patch+yaml",
        &body,
    )
    .await;
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("PatchOptions.meta.k8s.io")
    );
    assert!(!pool_exists(&server, "p1"));
}
