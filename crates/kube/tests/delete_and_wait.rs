//! `Writer::delete_and_wait` against the API server double: foreground deletion, returning only
//! when the object and the dependents that block it are gone, through one shared watch.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::await_condition;
use kubecloud_core::ResourceKind;
use kubecloud_kube::Writer;
use kubecloud_testkit::{Fault, TestServer, Verb};
use serde_json::json;

const GUARD: Duration = Duration::from_secs(10);

async fn server() -> (TestServer, Api<ConfigMap>) {
    let server = TestServer::start().await.expect("server starts");
    let namespaces: Api<Namespace> = Api::all(server.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "acme"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let api = Api::namespaced(server.client(), "acme");
    (server, api)
}

async fn create(
    api: &Api<ConfigMap>,
    name: &str,
    owner: Option<&ConfigMap>,
    held: bool,
) -> ConfigMap {
    let owners: Vec<_> = owner
        .map(|o| {
            json!({
                "apiVersion": "v1", "kind": "ConfigMap", "name": o.metadata.name,
                "uid": o.metadata.uid, "controller": true, "blockOwnerDeletion": true,
            })
        })
        .into_iter()
        .collect();
    let finalizers: Vec<&str> = if held {
        vec!["example.com/hold"]
    } else {
        Vec::new()
    };
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {
        "name": name, "ownerReferences": owners, "finalizers": finalizers,
    }}))
    .unwrap();
    api.create(&PostParams::default(), &cm).await.unwrap()
}

#[tokio::test]
async fn delete_and_wait_returns_only_when_the_object_and_its_blocking_dependents_are_gone() {
    let (server, api) = server().await;
    let parent = create(&api, "vm", None, false).await;
    let child = create(&api, "vmi", Some(&parent), false).await;
    let _grandchild = create(&api, "pod", Some(&child), true).await;
    server.requests().reset();

    let writer = Writer::new("test");
    let deleting = {
        let (writer, api) = (writer.clone(), api.clone());
        tokio::spawn(async move {
            writer
                .delete_and_wait(&api, "vm", ResourceKind::Vm, "vm", GUARD)
                .await
        })
    };
    // The grandchild is marked for deletion but held by its finalizer: the whole tree waits.
    tokio::time::timeout(
        GUARD,
        await_condition(api.clone(), "pod", |o: Option<&ConfigMap>| {
            o.is_some_and(|o| o.metadata.deletion_timestamp.is_some())
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!deleting.is_finished(), "returned while its tree was there");
    // Deleted in the foreground: held by the garbage collector's finalizer.
    let cluster = server.cluster();
    let vm = cluster.get("v1", "ConfigMap", Some("acme"), "vm").unwrap();
    assert!(
        vm["metadata"]["finalizers"]
            .as_array()
            .unwrap()
            .contains(&json!("foregroundDeletion"))
    );

    let release = json!({"metadata": {"finalizers": null}});
    api.patch("pod", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    let existed = tokio::time::timeout(GUARD, deleting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(existed);
    for name in ["vm", "vmi", "pod"] {
        let found = cluster
            .get_opt("v1", "ConfigMap", Some("acme"), name)
            .unwrap();
        assert!(found.is_none(), "{name} is gone");
    }
    // One delete; waiting is the shared watch of the kind, no polling reads.
    let deletes: Vec<_> = server
        .requests()
        .all()
        .into_iter()
        .filter(|r| {
            r.verb == Verb::Delete && r.resource == "configmaps" && r.name.as_deref() == Some("vm")
        })
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        server.requests().count(Verb::Get, "configmaps"),
        0,
        "no polling reads by the writer"
    );
}

#[tokio::test]
async fn deleting_an_object_that_is_gone_is_fine_and_waits_for_nothing() {
    let (server, api) = server().await;
    server.requests().reset();
    let existed = Writer::new("test")
        .delete_and_wait(&api, "missing", ResourceKind::Vm, "missing", GUARD)
        .await
        .unwrap();
    assert!(!existed);
    assert_eq!(server.requests().total(), 1, "one delete, no watch");
}

#[tokio::test]
async fn a_delete_refused_with_a_temporary_error_is_retried() {
    let (server, api) = server().await;
    create(&api, "settings", None, false).await;
    server
        .faults()
        .inject(Fault::status(503).on_verb(Verb::Delete).times(2));
    let writer = common::quick_retries();
    assert!(
        writer
            .delete_and_wait(&api, "settings", ResourceKind::Vm, "settings", GUARD)
            .await
            .unwrap()
    );
    assert!(api.get_opt("settings").await.unwrap().is_none());
    assert_eq!(server.requests().count(Verb::Delete, "configmaps"), 3);
}

#[tokio::test]
async fn a_deletion_held_by_a_finalizer_times_out_naming_the_object_and_the_finalizer() {
    let (_server, api) = server().await;
    create(&api, "settings", None, true).await;
    let writer = Writer::new("test");
    let timeout = Duration::from_millis(500);
    let err = tokio::time::timeout(
        GUARD,
        writer.delete_and_wait(&api, "settings", ResourceKind::Service, "settings", timeout),
    )
    .await
    .expect("ends by its timeout")
    .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(
        err.to_string(),
        "timed out after 500ms waiting for service \"settings\": gone (last seen: ConfigMap \
         acme/settings: deletionTimestamp set, finalizers [example.com/hold])"
    );
}

#[tokio::test]
async fn waits_in_turn_end_by_the_deadline_of_the_operation_not_a_timeout_each() {
    let (_server, api) = server().await;
    for name in ["a", "b", "c"] {
        create(&api, name, None, true).await;
    }
    let writer = Writer::new("test");
    // Each deletion would wait 60 s; the operation as a whole has one second.
    let one_each = async {
        for name in ["a", "b", "c"] {
            let outcome = writer
                .delete_and_wait(
                    &api,
                    name,
                    ResourceKind::Service,
                    name,
                    Duration::from_secs(60),
                )
                .await;
            assert!(outcome.unwrap_err().is_timeout());
        }
    };
    let started = tokio::time::Instant::now();
    tokio::time::timeout(
        GUARD,
        kubecloud_core::wait::Deadline::after(Duration::from_secs(1)).scope(one_each),
    )
    .await
    .expect("three waits of 60 s each end by one deadline of 1 s");
    assert!(started.elapsed() < GUARD);
}
