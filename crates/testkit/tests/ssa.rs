//! Server-side apply: managed fields, conflicts between managers, force, field removal.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kubecloud_testkit::{TestServer, Verb};
use serde_json::{Value, json};

fn vms(server: &TestServer) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
        "virtualmachines",
    );
    Api::namespaced_with(server.client(), "default", &ar)
}

fn vm(run_strategy: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": "vm1", "labels": labels},
        "spec": {
            "runStrategy": run_strategy,
            "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}}
        }
    })
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn managers(o: &DynamicObject) -> Vec<(String, String)> {
    o.metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone().unwrap(), m.operation.clone().unwrap()))
        .collect()
}

fn fields_of<'a>(o: &'a DynamicObject, manager: &str) -> &'a Value {
    &o.metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some(manager))
        .unwrap()
        .fields_v1
        .as_ref()
        .unwrap()
        .0
}

#[tokio::test]
async fn apply_creates_then_conflicts_with_another_manager_until_forced() {
    let server = TestServer::start().await.unwrap();
    let api = vms(&server);
    let alice = PatchParams::apply("alice");
    let created = api
        .patch(
            "vm1",
            &alice,
            &Patch::Apply(vm("Halted", json!({"team": "a"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        managers(&created),
        [("alice".to_string(), "Apply".to_string())]
    );
    assert_eq!(
        fields_of(&created, "alice")["f:spec"]["f:runStrategy"],
        json!({})
    );
    assert_eq!(
        fields_of(&created, "alice")["f:metadata"]["f:labels"]["f:team"],
        json!({})
    );
    assert_eq!(server.requests().count(Verb::Apply, "virtualmachines"), 1);

    // Same value: shared ownership, no conflict.
    let bob = PatchParams::apply("bob");
    api.patch("vm1", &bob, &Patch::Apply(vm("Halted", json!({}))))
        .await
        .unwrap();

    // Different value: 409 naming the field and the owner.
    let err = api_error(
        api.patch("vm1", &bob, &Patch::Apply(vm("Always", json!({}))))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.runStrategy"
    );
    let causes = err.details.unwrap().causes;
    assert_eq!(
        (causes[0].reason.as_str(), causes[0].field.as_str()),
        ("FieldManagerConflict", ".spec.runStrategy")
    );

    // Forced: bob takes the field.
    let forced = api
        .patch(
            "vm1",
            &bob.clone().force(),
            &Patch::Apply(vm("Always", json!({}))),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["runStrategy"], "Always");
    assert!(
        fields_of(&forced, "alice")["f:spec"]
            .get("f:runStrategy")
            .is_none()
    );
    assert_eq!(
        fields_of(&forced, "bob")["f:spec"]["f:runStrategy"],
        json!({})
    );
}

#[tokio::test]
async fn fields_a_manager_stops_applying_are_removed() {
    let server = TestServer::start().await.unwrap();
    let api = vms(&server);
    let alice = PatchParams::apply("alice");
    api.patch(
        "vm1",
        &alice,
        &Patch::Apply(vm("Halted", json!({"a": "1", "b": "2"}))),
    )
    .await
    .unwrap();
    let after = api
        .patch(
            "vm1",
            &alice,
            &Patch::Apply(vm("Halted", json!({"a": "1"}))),
        )
        .await
        .unwrap();
    assert_eq!(
        after.metadata.labels.unwrap(),
        [("a".to_string(), "1".to_string())].into()
    );
}

#[tokio::test]
async fn an_update_takes_ownership_and_a_later_apply_conflicts_with_it() {
    let server = TestServer::start().await.unwrap();
    let api = vms(&server);
    let alice = PatchParams::apply("alice");
    let applied = api
        .patch("vm1", &alice, &Patch::Apply(vm("Halted", json!({}))))
        .await
        .unwrap();
    let edited = api
        .patch(
            "vm1",
            &PatchParams {
                field_manager: Some("editor".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"spec": {"runStrategy": "Manual"}})),
        )
        .await
        .unwrap();
    assert!(managers(&edited).contains(&("editor".to_string(), "Update".to_string())));
    assert_eq!(
        edited.metadata.generation,
        Some(applied.metadata.generation.unwrap() + 1)
    );

    let err = api_error(
        api.patch("vm1", &alice, &Patch::Apply(vm("Halted", json!({}))))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        err.message,
        "Apply failed with 1 conflict: conflict with \"editor\" using kubevirt.io/v1: .spec.runStrategy"
    );

    // Re-applying what is already there changes nothing: same resourceVersion.
    let again = api
        .patch("vm1", &alice, &Patch::Apply(vm("Manual", json!({}))))
        .await
        .unwrap();
    let again2 = api
        .patch("vm1", &alice, &Patch::Apply(vm("Manual", json!({}))))
        .await
        .unwrap();
    assert_eq!(
        again.metadata.resource_version,
        again2.metadata.resource_version
    );
}

#[tokio::test]
async fn apply_to_status_changes_only_status() {
    let server = TestServer::start().await.unwrap();
    let api = vms(&server);
    api.patch(
        "vm1",
        &PatchParams::apply("alice"),
        &Patch::Apply(vm("Halted", json!({}))),
    )
    .await
    .unwrap();
    let mut status = vm("Always", json!({}));
    status["status"] = json!({"printableStatus": "Running", "ready": true});
    let after = api
        .patch_status(
            "vm1",
            &PatchParams::apply("virt-controller"),
            &Patch::Apply(status),
        )
        .await
        .unwrap();
    assert_eq!(after.data["status"]["printableStatus"], "Running");
    assert_eq!(after.data["spec"]["runStrategy"], "Halted");
    let entry = after
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|m| m.manager.as_deref() == Some("virt-controller"))
        .unwrap();
    assert_eq!(entry.subresource.as_deref(), Some("status"));
    assert_eq!(
        entry.fields_v1.as_ref().unwrap().0,
        json!({"f:status": {"f:printableStatus": {}, "f:ready": {}}})
    );
}

/// An apply without `fieldManager` is refused as kube-apiserver refuses it: the PatchOptions
/// are validated first (apimachinery `ValidatePatchOptions`), 422 `Invalid` naming the field,
/// and nothing is stored. (kube-rs refuses this before sending; other clients do send it.)
#[tokio::test]
async fn an_apply_without_a_field_manager_is_422_naming_the_field() {
    let server = TestServer::start().await.unwrap();
    let body = serde_json::to_vec(&vm("Always", json!({}))).unwrap();
    let request =
        http::Request::patch("/apis/kubevirt.io/v1/namespaces/default/virtualmachines/vm1")
            .header("Content-Type", "application/apply-patch+yaml")
            .body(body)
            .unwrap();
    let response = server.client().send(request.map(Into::into)).await.unwrap();
    assert_eq!(response.status(), 422);
    let bytes = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    let status: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(
        status["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    assert_eq!(status["details"]["causes"][0]["field"], "fieldManager");
    assert!(
        vms(&server).get_opt("vm1").await.unwrap().is_none(),
        "nothing stored"
    );
}

/// An apply configuration that carries `metadata.managedFields` is refused with 400
/// `metadata.managedFields must be nil`, as kube-apiserver does since kubernetes PR #81453 (an
/// update may set managed fields; an apply may not). Nothing is stored.
#[tokio::test]
async fn an_apply_carrying_managed_fields_is_refused() {
    let server = TestServer::start().await.unwrap();
    let mut object = vm("Always", json!({}));
    object["metadata"]["managedFields"] = json!([{
        "manager": "someone", "operation": "Apply", "apiVersion": "kubevirt.io/v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}
    }]);
    let err = vms(&server)
        .patch("vm1", &PatchParams::apply("editor"), &Patch::Apply(&object))
        .await
        .unwrap_err();
    let status = api_error(err);
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert_eq!(status.message, "metadata.managedFields must be nil");
    assert!(vms(&server).get_opt("vm1").await.unwrap().is_none());
}
