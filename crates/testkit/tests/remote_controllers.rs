//! Controllers through `kube::Client` (`kubecloud_testkit::remote`): the same event stream as in
//! process — an `Added` for every existing object, changes as they happen, a relist after the
//! watch history is compacted (410) with a `Deleted` for what disappeared meanwhile — and the
//! verbs as HTTP requests under the controller's field manager.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use kubecloud_testkit::remote::{self, RemoteApi};
use kubecloud_testkit::{
    Controller, ControllerApi, ControllerError, EventType, ObjectEvent, TestServer, Verb, Watched,
};
use serde_json::json;
use tokio::sync::watch;

const TIMEOUT: Duration = Duration::from_secs(20);

/// Records every event and marks each live ConfigMap `seen` with a merge patch. The first event
/// of `held` blocks its reconcile until `gate` opens (its watch goes unread meanwhile).
struct Recorder {
    events: watch::Sender<Vec<(EventType, String)>>,
    gate: Arc<tokio::sync::Semaphore>,
    held: AtomicBool,
}

#[async_trait]
impl Controller for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn watches(&self) -> Vec<Watched> {
        vec![Watched::new("", "configmaps")]
    }
    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        self.events
            .send_modify(|v| v.push((ev.kind, ev.name.clone())));
        if ev.name == "held" && !self.held.swap(true, Ordering::SeqCst) {
            let _open = self.gate.acquire().await;
        }
        if ev.kind != EventType::Deleted && ev.object["data"]["seen"].is_null() {
            api.merge_patch(
                "v1",
                "ConfigMap",
                ev.namespace.as_deref(),
                &ev.name,
                &json!({"data": {"seen": "yes"}}),
            )
            .await?;
        }
        Ok(())
    }
}

fn config_map(name: &str) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "default"}, "data": {"x": "1"}})
}

async fn wait_for(rx: &mut watch::Receiver<Vec<(EventType, String)>>, kind: EventType, name: &str) {
    tokio::time::timeout(
        TIMEOUT,
        rx.wait_for(|v| v.iter().any(|(k, n)| *k == kind && n == name)),
    )
    .await
    .unwrap_or_else(|_| panic!("no {kind:?} event for {name} in time"))
    .expect("controller alive");
}

// One thread: nothing else runs between the synchronous steps below (ending the watches and
// writing), so the ended watch carries none of those writes.
#[tokio::test(flavor = "current_thread")]
async fn a_remote_controller_lists_watches_and_relists_after_compaction() {
    let server = TestServer::start().await.unwrap();
    let cluster = server.cluster();
    cluster.create(config_map("before")).unwrap();
    let (tx, mut rx) = watch::channel(Vec::new());
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let recorder = Recorder {
        events: tx,
        gate: gate.clone(),
        held: AtomicBool::new(false),
    };
    let (_handle, _task) = remote::spawn(
        RemoteApi::new(server.client(), "unused"),
        Arc::new(recorder),
    );

    // The object there before the start comes as Added, and is written over HTTP as `recorder`.
    wait_for(&mut rx, EventType::Added, "before").await;
    wait_for(&mut rx, EventType::Modified, "before").await;
    let seen = cluster
        .get("v1", "ConfigMap", Some("default"), "before")
        .unwrap();
    assert_eq!(seen["data"]["seen"], "yes");
    assert!(
        server
            .requests()
            .count_where(|r| r.verb == Verb::Patch && r.query.contains("fieldManager=recorder"))
            > 0
    );

    // Hold the controller on an event so its watch is not read, end the watch, compact the
    // history and change things meanwhile: the watch cannot resume (410), the watcher lists again.
    cluster.create(config_map("held")).unwrap();
    wait_for(&mut rx, EventType::Added, "held").await;
    let lists_before = server.requests().count(Verb::List, "configmaps");
    server.cluster().end_watches();
    // Written while no watch is open: the history the watcher would resume from is gone.
    cluster.create(config_map("between")).unwrap();
    cluster.compact();
    cluster
        .delete("v1", "ConfigMap", Some("default"), "before")
        .unwrap();
    cluster.create(config_map("after")).unwrap();
    gate.add_permits(1);

    wait_for(&mut rx, EventType::Added, "between").await;
    wait_for(&mut rx, EventType::Added, "after").await;
    wait_for(&mut rx, EventType::Deleted, "before").await;
    assert!(server.requests().count(Verb::List, "configmaps") > lists_before);
}

#[tokio::test]
async fn remote_verbs_answer_as_the_api_server_does() {
    let server = TestServer::start().await.unwrap();
    let api = RemoteApi::new(server.client(), "tester");
    assert!(
        api.get_opt("v1", "ConfigMap", Some("default"), "none")
            .await
            .unwrap()
            .is_none()
    );
    let unknown = api
        .get("example.com/v1", "Widget", Some("default"), "w")
        .await
        .unwrap_err();
    assert_eq!(unknown.code, 404);
    assert!(
        unknown
            .message
            .starts_with("no matches for kind \"Widget\"")
    );

    // Apply creates, lists carry apiVersion and kind, a conflicting apply is a 409.
    let cm = config_map("applied");
    let made = api.apply(&cm, false).await.unwrap();
    assert_eq!(made["metadata"]["managedFields"][0]["manager"], "tester");
    let listed = api.list("v1", "ConfigMap", Some("default")).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|o| o["kind"] == "ConfigMap" && o["apiVersion"] == "v1")
    );
    let other = api.as_manager("other");
    let mut changed = cm.clone();
    changed["data"]["x"] = json!("2");
    let conflict = other.apply(&changed, false).await.unwrap_err();
    assert_eq!(conflict.code, 409);
    other.apply(&changed, true).await.unwrap();

    // Unknown fields are refused (fieldValidation=Strict), as in process.
    let mut typo = config_map("typo");
    typo["dta"] = json!({});
    assert_eq!(api.create(typo).await.unwrap_err().code, 400);

    api.delete("v1", "ConfigMap", Some("default"), "applied")
        .await
        .unwrap();
    assert!(
        server
            .cluster()
            .get_opt("v1", "ConfigMap", Some("default"), "applied")
            .unwrap()
            .is_none()
    );
}
