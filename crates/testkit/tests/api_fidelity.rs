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
