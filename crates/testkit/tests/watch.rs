//! Watches through kube-runtime's `watcher` and `await_condition`, and raw watch semantics.

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::{WatchStreamExt, wait::await_condition, watcher};
use kubecloud_testkit::TestServer;
use serde_json::json;
use std::time::Duration;
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(10);

fn cm(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"v": "1"}}),
    )
    .unwrap()
}

#[tokio::test]
async fn watcher_sees_create_update_delete_in_order() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    // Initial list: Init, InitDone.
    loop {
        match timeout(GUARD, events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::InitDone => break,
            _ => continue,
        }
    }
    cms.create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        match timeout(GUARD, events.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            watcher::Event::Apply(o) => seen.push(format!("apply {}", o.data.unwrap()["v"])),
            watcher::Event::Delete(o) => seen.push(format!("delete {}", o.metadata.name.unwrap())),
            _ => {}
        }
    }
    assert_eq!(seen, ["apply 1", "apply 2", "delete a"]);
}

#[tokio::test]
async fn streaming_list_watchers_get_the_initial_state_then_changes() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    cms.create(&PostParams::default(), &cm("before", json!({})))
        .await
        .unwrap();
    let mut objects = watcher(cms.clone(), watcher::Config::default().streaming_lists())
        .applied_objects()
        .boxed();
    let first = timeout(GUARD, objects.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("before"));
    cms.create(&PostParams::default(), &cm("after", json!({})))
        .await
        .unwrap();
    let second = timeout(GUARD, objects.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(second.metadata.name.as_deref(), Some("after"));
}

#[tokio::test]
async fn await_condition_completes_when_the_object_gets_there() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let wait = tokio::spawn(await_condition(
        cms.clone(),
        "ready",
        |o: Option<&ConfigMap>| {
            o.and_then(|c| c.data.as_ref())
                .is_some_and(|d| d.get("v").map(String::as_str) == Some("done"))
        },
    ));
    cms.create(&PostParams::default(), &cm("ready", json!({})))
        .await
        .unwrap();
    cms.patch(
        "ready",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "done"}})),
    )
    .await
    .unwrap();
    let done = timeout(GUARD, wait)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.data.unwrap()["v"], "done");
}

#[tokio::test]
async fn watching_from_a_compacted_revision_gets_410() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let created = cms
        .create(&PostParams::default(), &cm("a", json!({})))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await
    .unwrap();

    // Before compaction: the change after `rv` is replayed.
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match timeout(GUARD, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Modified(o) => assert_eq!(o.data.unwrap()["v"], "2"),
        other => panic!("{other:?}"),
    }

    server.cluster().compact();
    let mut stream = cms
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    match timeout(GUARD, stream.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
    {
        WatchEvent::Error(status) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn selector_watches_see_objects_leave_and_enter_the_selection() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let mut stream = cms
        .watch(&WatchParams::default().labels("app=web"), "0")
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &cm("a", json!({"app": "web"})))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("b", json!({"app": "db"})))
        .await
        .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
    )
    .await
    .unwrap();
    cms.patch(
        "b",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = match timeout(GUARD, stream.try_next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            WatchEvent::Added(o) => format!("ADDED {}", o.metadata.name.unwrap()),
            WatchEvent::Modified(o) => format!("MODIFIED {}", o.metadata.name.unwrap()),
            WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap()),
            other => format!("{other:?}"),
        };
        seen.push(line);
    }
    assert_eq!(seen, ["ADDED a", "DELETED a", "ADDED b"]);
}
