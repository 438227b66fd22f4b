//! The garbage collector's foreground deletion, as kube-controller-manager's: only dependents
//! with `blockOwnerDeletion: true` hold their owner, dependents with dependents of their own are
//! deleted in the foreground too (a tree goes bottom-up), dependents with another solid owner
//! stay.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kubecloud_testkit::TestServer;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(10);
const HOLD: &str = "example.com/hold";

fn reference(owner: &ConfigMap, block: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "name": owner.metadata.name, "uid": owner.metadata.uid,
        "controller": true, "blockOwnerDeletion": block,
    })
}

async fn create(cms: &Api<ConfigMap>, name: &str, owners: Vec<Value>, held: bool) -> ConfigMap {
    let finalizers: Vec<&str> = if held { vec![HOLD] } else { Vec::new() };
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {
        "name": name, "ownerReferences": owners, "finalizers": finalizers,
    }}))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap()
}

async fn release(cms: &Api<ConfigMap>, name: &str) {
    let patch = json!({"metadata": {"finalizers": null}});
    cms.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn gone(cms: &Api<ConfigMap>, cm: &ConfigMap) {
    let (name, uid) = (
        cm.metadata.name.clone().unwrap(),
        cm.metadata.uid.clone().unwrap(),
    );
    timeout(
        GUARD,
        await_condition(cms.clone(), &name, conditions::is_deleted(&uid)),
    )
    .await
    .unwrap_or_else(|_| panic!("{name} still there"))
    .unwrap();
}

async fn deleting(cms: &Api<ConfigMap>, name: &str) -> ConfigMap {
    timeout(
        GUARD,
        await_condition(cms.clone(), name, |o: Option<&ConfigMap>| {
            o.is_some_and(|o| o.metadata.deletion_timestamp.is_some())
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .unwrap()
}

fn finalizers(cm: &ConfigMap) -> Vec<String> {
    cm.metadata.finalizers.clone().unwrap_or_default()
}

#[tokio::test]
async fn a_tree_deleted_in_the_foreground_goes_bottom_up() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let root = create(&cms, "vm", Vec::new(), false).await;
    let middle = create(&cms, "vmi", vec![reference(&root, true)], false).await;
    let leaf = create(&cms, "pod", vec![reference(&middle, true)], true).await;

    cms.delete("vm", &DeleteParams::foreground()).await.unwrap();
    // The leaf is held by its finalizer: the middle waits for it in the foreground, the root
    // for the middle.
    let leaf_now = deleting(&cms, "pod").await;
    assert_eq!(finalizers(&leaf_now), vec![HOLD.to_string()]);
    let middle_now = deleting(&cms, "vmi").await;
    assert!(finalizers(&middle_now).contains(&"foregroundDeletion".to_string()));
    let root_now = cms.get("vm").await.unwrap();
    assert!(finalizers(&root_now).contains(&"foregroundDeletion".to_string()));

    release(&cms, "pod").await;
    gone(&cms, &leaf).await;
    gone(&cms, &middle).await;
    gone(&cms, &root).await;
}

#[tokio::test]
async fn a_dependent_without_block_owner_deletion_does_not_hold_its_owner() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let owner = create(&cms, "owner", Vec::new(), false).await;
    let _loose = create(&cms, "loose", vec![reference(&owner, false)], true).await;

    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    gone(&cms, &owner).await;
    // It was deleted too, and only its own finalizer holds it.
    let loose = deleting(&cms, "loose").await;
    assert_eq!(finalizers(&loose), vec![HOLD.to_string()]);
    release(&cms, "loose").await;
}

#[tokio::test]
async fn a_blocking_dependent_held_by_a_finalizer_holds_its_owner_until_released() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let owner = create(&cms, "owner", Vec::new(), false).await;
    let held = create(&cms, "held", vec![reference(&owner, true)], true).await;

    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    deleting(&cms, "held").await;
    let still = cms.get("owner").await.unwrap();
    assert!(still.metadata.deletion_timestamp.is_some());
    release(&cms, "held").await;
    gone(&cms, &held).await;
    gone(&cms, &owner).await;
}

#[tokio::test]
async fn a_dependent_with_another_solid_owner_stays_and_loses_the_reference() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let owner = create(&cms, "owner", Vec::new(), false).await;
    let other = create(&cms, "other", Vec::new(), false).await;
    let shared = create(
        &cms,
        "shared",
        vec![reference(&owner, true), {
            let mut r = reference(&other, true);
            r["controller"] = json!(false);
            r
        }],
        false,
    )
    .await;

    cms.delete("owner", &DeleteParams::foreground())
        .await
        .unwrap();
    gone(&cms, &owner).await;
    let shared_now = cms.get("shared").await.unwrap();
    assert_eq!(shared_now.metadata.uid, shared.metadata.uid);
    assert!(shared_now.metadata.deletion_timestamp.is_none());
    let owners: Vec<String> = shared_now
        .metadata
        .owner_references
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(owners, vec!["other".to_string()]);
}
