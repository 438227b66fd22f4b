//! Registering CustomResourceDefinitions through the API, as `kubectl apply -f crd.yaml` does:
//! the double then serves the new resource (discovery, verbs, watch, status subresource,
//! validation) and stops serving it when the CRD is deleted.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::Discovery;
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{WatchStreamExt, watcher};
use kubecloud_testkit::{TestServer, Verb};
use serde_json::json;

const GUARD: Duration = Duration::from_secs(10);

fn widget_crd(name: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {"type": "object", "required": ["size"], "properties": {
                            "size": {"type": "integer", "minimum": 1},
                            "color": {"type": "string", "enum": ["red", "blue"]},
                        }},
                        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
                    },
                }},
            }],
        },
    }))
    .expect("a CRD")
}

fn widgets(client: kube::Client) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    Api::namespaced_with(
        client,
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "widgets"),
    )
}

fn widget(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})
}

async fn register(server: &TestServer) -> Api<CustomResourceDefinition> {
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    crds.patch(
        "widgets.example.com",
        &PatchParams::apply("test"),
        &Patch::Apply(widget_crd("widgets.example.com")),
    )
    .await
    .expect("CRD applied");
    tokio::time::timeout(
        GUARD,
        await_condition(
            crds.clone(),
            "widgets.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("established in time")
    .expect("watch");
    crds
}

#[tokio::test]
async fn an_applied_crd_is_established_and_its_resource_served() {
    let server = TestServer::start().await.unwrap();
    let api = widgets(server.client());
    let early: DynamicObject = serde_json::from_value(widget("w0", json!({"size": 1}))).unwrap();
    let before = api
        .create(&PostParams::default(), &early)
        .await
        .unwrap_err();
    assert!(
        before.to_string().contains("could not find"),
        "not served before the CRD: {before}"
    );

    let crds = register(&server).await;
    let crd = crds.get("widgets.example.com").await.unwrap();
    let finalizers = crd.metadata.finalizers.unwrap_or_default();
    assert_eq!(finalizers, ["customresourcecleanup.apiextensions.k8s.io"]);
    let status = crd.status.expect("status");
    assert_eq!(status.accepted_names.expect("names").plural, "widgets");

    let discovery = Discovery::new(server.client()).run().await.unwrap();
    let group = discovery.get("example.com").expect("group discovered");
    let (resource, caps) = group
        .recommended_resources()
        .into_iter()
        .find(|(r, _)| r.kind == "Widget")
        .expect("Widget discovered");
    assert_eq!(resource.plural, "widgets");
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"));

    let created: DynamicObject = serde_json::from_value(widget("w1", json!({"size": 3}))).unwrap();
    api.create(&PostParams::default(), &created).await.unwrap();
    let listed = api.list(&Default::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].data["spec"]["size"], 3);
}

#[tokio::test]
async fn custom_resources_are_validated_against_the_crd_schema() {
    let server = TestServer::start().await.unwrap();
    register(&server).await;
    let api = widgets(server.client());
    let pp = PatchParams::apply("test");

    let unknown = api
        .patch(
            "w1",
            &pp,
            &Patch::Apply(widget("w1", json!({"size": 1, "colour": "red"}))),
        )
        .await
        .unwrap_err();
    assert!(unknown.to_string().contains("colour"), "{unknown}");
    let too_small = api
        .patch("w1", &pp, &Patch::Apply(widget("w1", json!({"size": 0}))))
        .await
        .unwrap_err();
    assert!(too_small.to_string().contains("spec.size"), "{too_small}");
    let missing = api
        .patch(
            "w1",
            &pp,
            &Patch::Apply(widget("w1", json!({"color": "red"}))),
        )
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("spec.size"), "{missing}");
    assert!(api.get_opt("w1").await.unwrap().is_none(), "nothing stored");

    // Server-side apply fails on an undeclared field even with fieldValidation=Ignore, as
    // kube-apiserver does (the typed conversion of the applied configuration fails first).
    let mut ignore = PatchParams::apply("test");
    ignore.field_validation = Some(kube::api::ValidationDirective::Ignore);
    let refused = api
        .patch(
            "w1",
            &ignore,
            &Patch::Apply(widget("w1", json!({"size": 1, "colour": "red"}))),
        )
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains(".spec.colour: field not declared in schema"),
        "{refused}"
    );
    assert!(api.get_opt("w1").await.unwrap().is_none(), "nothing stored");
}

#[tokio::test]
async fn the_status_subresource_is_separate_and_watches_see_changes() {
    let server = TestServer::start().await.unwrap();
    register(&server).await;
    let api = widgets(server.client());
    let mut events = watcher(api.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();
    let mut w = widget("w1", json!({"size": 2}));
    w["status"] = json!({"ready": true});
    let stored = api
        .patch("w1", &PatchParams::apply("test"), &Patch::Apply(w))
        .await
        .unwrap();
    assert!(
        stored.data.get("status").is_none(),
        "status ignored on the main resource"
    );
    let first = tokio::time::timeout(GUARD, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.generation, Some(1));

    let status = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
                        "status": {"ready": true}});
    api.patch_status(
        "w1",
        &PatchParams::apply("status-writer"),
        &Patch::Apply(status),
    )
    .await
    .unwrap();
    let second = tokio::time::timeout(GUARD, events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.data["status"]["ready"], true);
    assert_eq!(
        second.metadata.generation,
        Some(1),
        "status does not bump generation"
    );
    assert_eq!(server.requests().count(Verb::Apply, "widgets"), 2);
}

#[tokio::test]
async fn deleting_the_crd_deletes_its_resources_and_stops_serving_it() {
    let server = TestServer::start().await.unwrap();
    let crds = register(&server).await;
    let api = widgets(server.client());
    api.patch(
        "w1",
        &PatchParams::apply("test"),
        &Patch::Apply(widget("w1", json!({"size": 1}))),
    )
    .await
    .unwrap();
    let uid = crds
        .get("widgets.example.com")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        GUARD,
        await_condition(
            crds.clone(),
            "widgets.example.com",
            conditions::is_deleted(&uid),
        ),
    )
    .await
    .expect("deleted in time")
    .expect("watch");
    assert!(
        server
            .cluster()
            .list("example.com/v1", "Widget", None)
            .is_err()
            || server
                .cluster()
                .list("example.com/v1", "Widget", None)
                .unwrap()
                .is_empty()
    );
    let again: DynamicObject = serde_json::from_value(widget("w2", json!({"size": 1}))).unwrap();
    let gone = api.create(&PostParams::default(), &again).await;
    assert!(gone.is_err(), "the type is no longer served: {gone:?}");
}

#[tokio::test]
async fn a_crd_whose_name_does_not_match_is_not_established() {
    let server = TestServer::start().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(server.client());
    crds.create(&PostParams::default(), &widget_crd("gadgets.example.com"))
        .await
        .unwrap();
    let refused = |c: Option<&CustomResourceDefinition>| {
        c.and_then(|c| c.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "False")
            })
    };
    let crd = tokio::time::timeout(GUARD, await_condition(crds, "gadgets.example.com", refused))
        .await
        .expect("in time")
        .expect("watch")
        .expect("present");
    let message = &crd.status.unwrap().conditions.unwrap()[0].message;
    assert!(
        message.as_deref().unwrap_or("").contains("metadata.name"),
        "{message:?}"
    );
    let never: DynamicObject = serde_json::from_value(widget("w1", json!({"size": 1}))).unwrap();
    let refused = widgets(server.client())
        .create(&PostParams::default(), &never)
        .await;
    assert!(refused.is_err(), "not served: {refused:?}");
}
