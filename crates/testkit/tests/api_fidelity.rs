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
    // Without kube's retries: the test sees the first answer (504s are retried by default).
    let mut config = server.kube_config();
    config.default_retry = false;
    let client = kube::Client::try_from(config).unwrap();
    let resp = client.send(req).await.unwrap();
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

fn invalid_message(e: kube::Error) -> String {
    let s = api_error(e);
    assert_eq!(
        (s.code, s.reason.as_str()),
        (422, "Invalid"),
        "{}",
        s.message
    );
    s.message
}

// Item 4. A Secret's `stringData` is folded into `data` and `type` defaults to `Opaque`
// (pkg/apis/core/v1/conversion.go Convert_v1_Secret_To_core_Secret, defaults.go
// SetDefaults_Secret); `type` is immutable (pkg/apis/core/validation ValidateSecretUpdate).
#[tokio::test]
async fn secrets_fold_string_data_default_their_type_and_keep_it() {
    use k8s_openapi::api::core::v1::Secret;
    let server = TestServer::start().await.unwrap();
    let secrets: Api<Secret> = Api::default_namespaced(server.client());
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": "s"},
        "data": {"a": "b2xk", "b": "Yg=="},
        "stringData": {"a": "new", "c": "see"}
    }))
    .unwrap();
    let created = secrets.create(&Default::default(), &s).await.unwrap();
    let v = serde_json::to_value(&created).unwrap();
    assert_eq!(v["data"], json!({"a": "bmV3", "b": "Yg==", "c": "c2Vl"}));
    assert!(v.get("stringData").is_none());
    assert_eq!(v["type"], "Opaque");
    assert!(
        v["metadata"].get("generation").is_none(),
        "no generation on Secrets"
    );

    let msg = invalid_message(
        secrets
            .patch(
                "s",
                &PatchParams::default(),
                &Patch::Merge(json!({"type": "example.com/other"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        msg,
        r#"Secret "s" is invalid: type: Invalid value: "example.com/other": field is immutable"#
    );
}

// Item 4. Claims: access modes and a storage request are required
// (ValidatePersistentVolumeClaimSpec), the spec is immutable but for a bound claim's requests
// (growing only) (ValidatePersistentVolumeClaimUpdate), and admission adds
// `kubernetes.io/pvc-protection` (plugin/pkg/admission/storage/storageobjectinuseprotection),
// which the protection controller removes when the claim is deleted and no pod uses it.
#[tokio::test]
async fn claims_are_validated_protected_and_immutable_but_for_growth_when_bound() {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    let server = TestServer::start().await.unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::default_namespaced(server.client());
    let claim = |name: &str, spec: Value| -> PersistentVolumeClaim {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    let msg = invalid_message(
        claims
            .create(
                &Default::default(),
                &claim("bad", json!({"storageClassName": "none"})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        msg,
        "PersistentVolumeClaim \"bad\" is invalid: [spec.accessModes: Required value: at least 1 access mode is required, spec.resources[storage]: Required value]"
    );

    let spec = json!({"storageClassName": "growable", "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}});
    let created = claims
        .create(&Default::default(), &claim("c", spec))
        .await
        .unwrap();
    assert_eq!(
        created.metadata.finalizers.as_deref(),
        Some(&["kubernetes.io/pvc-protection".to_string()][..])
    );
    assert_eq!(created.metadata.generation, None);

    let grow = Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}));
    let msg = invalid_message(
        claims
            .patch("c", &PatchParams::default(), &grow)
            .await
            .unwrap_err(),
    );
    assert!(
        msg.starts_with("PersistentVolumeClaim \"c\" is invalid: spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims"),
        "a pending claim cannot grow: {msg}"
    );
    // Growing a bound claim also needs its class to allow expansion (the
    // PersistentVolumeClaimResize admission plugin, which runs after the validation above). The
    // class appears only now, so that nothing bound the claim before.
    server
        .cluster()
        .create(
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                       "metadata": {"name": "growable"}, "provisioner": "example.com/csi",
                       "allowVolumeExpansion": true}),
        )
        .unwrap();
    server
        .cluster()
        .merge_patch_status(
            "v1",
            "PersistentVolumeClaim",
            Some("default"),
            "c",
            &json!({"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}),
        )
        .unwrap();
    let grown = claims
        .patch("c", &PatchParams::default(), &grow)
        .await
        .unwrap();
    assert_eq!(
        grown.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0,
        "2Gi"
    );
    // RecoverVolumeExpansionFailure (GA in 1.34): a request may shrink again, not below the
    // capacity (pkg/apis/core/validation ValidatePersistentVolumeClaimUpdate).
    let back = Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "1536Mi"}}}}));
    claims
        .patch("c", &PatchParams::default(), &back)
        .await
        .unwrap();
    let shrink = Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": "512Mi"}}}}));
    let msg = invalid_message(
        claims
            .patch("c", &PatchParams::default(), &shrink)
            .await
            .unwrap_err(),
    );
    assert!(
        msg.ends_with(
            "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
        ),
        "{msg}"
    );
    let msg = invalid_message(
        claims
            .patch(
                "c",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"accessModes": ["ReadWriteMany"]}})),
            )
            .await
            .unwrap_err(),
    );
    assert!(msg.contains("spec is immutable after creation"), "{msg}");

    // Deletion waits for the protection controller, which lets the unused claim go.
    let uid = grown.metadata.uid.clone().unwrap();
    claims.delete("c", &Default::default()).await.unwrap();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        kube::runtime::wait::await_condition(
            claims,
            "c",
            kube::runtime::conditions::is_deleted(&uid),
        ),
    )
    .await
    .unwrap()
    .unwrap();
}

// Item 4. Services (pkg/apis/core/validation ValidateService/ValidateServiceUpdate,
// pkg/registry/core/service/storage/alloc.go, pkg/apis/core/v1/defaults.go SetDefaults_Service):
// LoadBalancer services get `allocateLoadBalancerNodePorts: true`, `externalTrafficPolicy:
// Cluster` and node ports from 30000-32767; ports are named when there are several and lie in
// 1-65535; the type is one of four; `clusterIP` cannot change; no `metadata.generation`.
#[tokio::test]
async fn services_are_defaulted_allocated_and_validated() {
    use k8s_openapi::api::core::v1::Service;
    let server = TestServer::start().await.unwrap();
    let services: Api<Service> = Api::default_namespaced(server.client());
    let svc = |name: &str, spec: Value| -> Service {
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
    };
    let lb = services
        .create(
            &Default::default(),
            &svc(
                "lb",
                json!({"type": "LoadBalancer", "ports": [
                {"name": "http", "port": 80}, {"name": "https", "port": 443}]}),
            ),
        )
        .await
        .unwrap();
    let v = serde_json::to_value(&lb).unwrap();
    assert_eq!(v["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(v["spec"]["externalTrafficPolicy"], "Cluster");
    let node_ports: Vec<u64> = v["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_u64().unwrap())
        .collect();
    assert_eq!(node_ports.len(), 2);
    assert!(
        node_ports.iter().all(|p| (30000..=32767).contains(p)),
        "{node_ports:?}"
    );
    assert_ne!(node_ports[0], node_ports[1]);
    assert!(v["metadata"].get("generation").is_none());

    // An update that omits the allocated values keeps them.
    let mut replaced = svc(
        "lb",
        json!({"type": "LoadBalancer", "ports": [
        {"name": "http", "port": 80}, {"name": "https", "port": 443}]}),
    );
    replaced.metadata.resource_version = lb.metadata.resource_version.clone();
    let kept = services
        .replace("lb", &Default::default(), &replaced)
        .await
        .unwrap();
    let k = serde_json::to_value(&kept).unwrap();
    assert_eq!(k["spec"]["clusterIP"], v["spec"]["clusterIP"]);
    assert_eq!(k["spec"]["ports"][0]["nodePort"], json!(node_ports[0]));

    let msg = invalid_message(
        services
            .create(
                &Default::default(),
                &svc(
                    "two",
                    json!({"ports": [{"port": 80}, {"port": 0, "name": "b"}]}),
                ),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        msg,
        "Service \"two\" is invalid: [spec.ports[0].name: Required value, spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive]"
    );
    let msg = invalid_message(
        services
            .create(
                &Default::default(),
                &svc("odd", json!({"type": "Bogus", "ports": [{"port": 80}]})),
            )
            .await
            .unwrap_err(),
    );
    assert!(
        msg.contains(r#"spec.type: Unsupported value: "Bogus": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#),
        "{msg}"
    );
    let msg = invalid_message(
        services
            .patch(
                "lb",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"clusterIP": "10.96.7.7"}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(
        msg,
        r#"Service "lb" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.7.7"}: may not change once set"#
    );
}

// Item 4. `metadata.generation` is set by the strategies of custom resources and Pods
// (pkg/registry/core/pod/strategy.go updatePodGeneration), not of ConfigMaps.
#[tokio::test]
async fn generation_only_where_kube_apiserver_keeps_one() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(server.client());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"a": "1"}})).unwrap();
    let created = cms.create(&Default::default(), &cm).await.unwrap();
    assert_eq!(created.metadata.generation, None);
    let changed = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(changed.metadata.generation, None);
    let pool = pools(&server)
        .patch(
            "p",
            &PatchParams::apply("op"),
            &Patch::Apply(pool("p", json!({"addresses": ["10.0.0.0/28"]}))),
        )
        .await
        .unwrap();
    assert_eq!(pool.metadata.generation, Some(1));
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

async fn seed_config_maps(server: &TestServer, n: usize) {
    for i in 0..n {
        server
            .cluster()
            .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": format!("cm{i}"), "namespace": "default"}}))
            .unwrap();
    }
}

// Item 5. List and watch options are validated as apimachinery's ValidateListOptions does
// (pkg/apis/meta/internalversion/validation/validation.go): 422 on `ListOptions.meta.k8s.io ""`.
#[tokio::test]
async fn list_and_watch_options_are_validated() {
    let server = TestServer::start().await.unwrap();
    let cases = [
        (
            "?resourceVersionMatch=NotOlderThan",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "?resourceVersion=0&resourceVersionMatch=Exact",
            r#"resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0""#,
        ),
        (
            "?sendInitialEvents=true",
            "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list",
        ),
        (
            "?watch=true&sendInitialEvents=true",
            "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ),
        (
            "?watch=true&resourceVersionMatch=NotOlderThan",
            "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ),
    ];
    for (query, detail) in cases {
        let (code, _, status) = raw(&server, "GET", &format!("{CMS}{query}"), "", "").await;
        assert_eq!(code, 422, "{query}: {status}");
        assert_eq!(
            status["message"],
            format!(r#"ListOptions.meta.k8s.io "" is invalid: {detail}"#),
            "{query}"
        );
    }
    // What kube's streaming lists send is fine.
    let (code, _, _) = raw(
        &server,
        "GET",
        &format!("{CMS}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"),
        "",
        "",
    )
    .await;
    assert_eq!(code, 200);
}

// Item 5. A resourceVersion the server has not reached is waited for (the watch cache's
// waitUntilFreshAndBlock, apiserver pkg/storage/cacher/watch_cache.go), then answered 504
// `Timeout` with the cause `ResourceVersionTooLarge` (pkg/storage/errors.go
// NewTooLargeResourceVersionError); one reached meanwhile is served.
#[tokio::test]
async fn a_future_resource_version_is_waited_for_then_too_large() {
    let server = TestServer::start().await.unwrap();
    let current = server.cluster().resource_version();
    let far = current + 1000;

    let (code, _, status) = raw(
        &server,
        "GET",
        &format!("{CMS}?resourceVersion={far}"),
        "",
        "",
    )
    .await;
    assert_eq!(code, 504, "{status}");
    assert_eq!(status["reason"], "Timeout");
    assert_eq!(
        status["message"],
        format!("Timeout: Too large resource version: {far}, current: {current}")
    );
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "ResourceVersionTooLarge"
    );

    // The next revision, written while the list waits: served.
    let next = server.cluster().resource_version() + 1;
    let list = {
        let server = &server;
        async move {
            raw(
                server,
                "GET",
                &format!("{CMS}?resourceVersion={next}"),
                "",
                "",
            )
            .await
        }
    };
    let write = async {
        seed_config_maps(&server, 1).await;
    };
    let ((code, _, listed), ()) = tokio::join!(list, write);
    assert_eq!(code, 200, "{listed}");
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
}

// Item 5. `resourceVersion=0` lists come from the watch cache, which ignores `limit`
// (apiserver pkg/storage/cacher/cacher.go); built-in list items carry no kind or apiVersion
// (typed lists), custom resource list items do (unstructured).
#[tokio::test]
async fn resource_version_zero_ignores_limit_and_items_carry_no_type_meta() {
    let server = TestServer::start().await.unwrap();
    seed_config_maps(&server, 3).await;
    let (_, _, any) = raw(
        &server,
        "GET",
        &format!("{CMS}?resourceVersion=0&limit=1"),
        "",
        "",
    )
    .await;
    assert_eq!(any["items"].as_array().unwrap().len(), 3);
    assert!(any["metadata"].get("continue").is_none());
    let (_, _, paged) = raw(&server, "GET", &format!("{CMS}?limit=1"), "", "").await;
    assert_eq!(paged["items"].as_array().unwrap().len(), 1);
    assert!(paged["metadata"]["continue"].is_string());
    let item = &paged["items"][0];
    assert!(
        item.get("kind").is_none() && item.get("apiVersion").is_none(),
        "{item}"
    );
    assert_eq!(paged["kind"], "ConfigMapList");

    pools(&server)
        .patch(
            "p",
            &PatchParams::apply("op"),
            &Patch::Apply(pool("p", json!({"addresses": ["10.0.0.0/28"]}))),
        )
        .await
        .unwrap();
    let (_, _, custom) = raw(&server, "GET", POOLS, "", "").await;
    assert_eq!(custom["items"][0]["kind"], "IPAddressPool");
}

// Item 5. A continue token from a revision compacted away is 410 Expired with etcd3's message
// (apiserver pkg/storage/etcd3/store.go); compaction runs on demand and on a timer.
#[tokio::test]
async fn a_continue_token_from_a_compacted_revision_expires() {
    let server = TestServer::start().await.unwrap();
    seed_config_maps(&server, 3).await;
    let (_, _, first) = raw(&server, "GET", &format!("{CMS}?limit=1"), "", "").await;
    let token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let (code, _, second) = raw(
        &server,
        "GET",
        &format!("{CMS}?limit=1&continue={token}"),
        "",
        "",
    )
    .await;
    assert_eq!(code, 200, "{second}");

    server
        .cluster()
        .create(json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "later", "namespace": "default"}}))
        .unwrap();
    server.cluster().compact();
    let (code, _, status) = raw(
        &server,
        "GET",
        &format!("{CMS}?limit=1&continue={token}"),
        "",
        "",
    )
    .await;
    assert_eq!(code, 410, "{status}");
    assert_eq!(status["reason"], "Expired");
    assert!(
        status["message"].as_str().unwrap().starts_with(
            "The provided continue parameter is too old to display a consistent list result."
        ),
        "{status}"
    );
}

// Item 6. DELETE answers (apiserver pkg/endpoints/handlers/delete.go, pkg/registry/generic/
// registry/store.go Delete/finalizeDelete): the object while finalizers defer the deletion; once
// gone, the object where the registry sets ReturnDeletedObject (Services), else a `Status` with
// `status: Success` and details naming it (ConfigMaps, custom resources).
#[tokio::test]
async fn delete_answers_the_object_or_a_success_status_as_the_registry_does() {
    let server = TestServer::start().await.unwrap();
    seed_config_maps(&server, 1).await;
    let (code, _, answer) = raw(&server, "DELETE", &format!("{CMS}/cm0"), "", "").await;
    assert_eq!(code, 200);
    assert_eq!(answer["kind"], "Status");
    assert_eq!(answer["status"], "Success");
    assert_eq!(answer["details"]["name"], "cm0");
    assert_eq!(answer["details"]["kind"], "configmaps");
    assert!(answer["details"]["uid"].is_string());

    pools(&server)
        .patch(
            "p",
            &PatchParams::apply("op"),
            &Patch::Apply(pool("p", json!({"addresses": ["10.0.0.0/28"]}))),
        )
        .await
        .unwrap();
    let (_, _, answer) = raw(
        &server,
        "DELETE",
        &format!("{POOLS}/p"),
        "application/json",
        r#"{"propagationPolicy": "Foreground"}"#,
    )
    .await;
    assert_eq!(answer["kind"], "IPAddressPool", "deferred: the object");
    assert!(answer["metadata"]["deletionTimestamp"].is_string());

    server
        .cluster()
        .create(json!({"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "s", "namespace": "default"},
                       "spec": {"ports": [{"port": 80}]}}))
        .unwrap();
    let (_, _, answer) = raw(
        &server,
        "DELETE",
        "/api/v1/namespaces/default/services/s",
        "",
        "",
    )
    .await;
    assert_eq!(answer["kind"], "Service", "ReturnDeletedObject");
}

// Item 6. `/openapi/v2` is a Swagger 2.0 document of the served kinds (JSON; the protobuf form
// is 406 here, where kube-apiserver would serve it).
#[tokio::test]
async fn openapi_v2_is_a_swagger_document_of_the_served_kinds() {
    let server = TestServer::start().await.unwrap();
    let (code, _, doc) = raw(&server, "GET", "/openapi/v2", "", "").await;
    assert_eq!(code, 200);
    assert_eq!(doc["swagger"], "2.0");
    assert_eq!(
        doc["definitions"]["io.metallb.v1beta1.IPAddressPool"]["x-kubernetes-group-version-kind"]
            [0]["kind"],
        "IPAddressPool"
    );
    assert!(doc["paths"]["/api/v1/namespaces/{namespace}/configmaps"]["post"].is_object());
}
