//! The shared watches against the API server double: a store that follows the server through
//! re-lists, and reads that reflect what the caller has waited for.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kubecloud_core::ResourceKind;
use kubecloud_core::wait::Check;
use kubecloud_kube::{Informers, Writer};
use kubecloud_testkit::{Fault, Verb};
use serde_json::json;

const PATIENCE: Duration = Duration::from_secs(20);

fn config_map(name: &str, value: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.data = Some(BTreeMap::from([("key".to_string(), value.to_string())]));
    cm
}

fn value(cm: &ConfigMap) -> &str {
    cm.data.as_ref().map_or("", |d| d["key"].as_str())
}

/// Waits (through the stream) until the object exists.
async fn until_present<K>(
    states: &mut futures::stream::BoxStream<'static, kubecloud_core::Result<Option<K>>>,
) -> K {
    let found = async {
        loop {
            if let Some(Ok(Some(object))) = states.next().await {
                return object;
            }
        }
    };
    tokio::time::timeout(PATIENCE, found)
        .await
        .expect("the object shows up")
}

#[tokio::test]
async fn a_stale_answer_does_not_bring_back_an_object_deleted_before_a_relist() {
    let server = common::server_with_namespace("acme").await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let informers = Informers::default();
    let mut x = informers.states(&api, "x");
    assert!(x.next().await.unwrap().unwrap().is_none(), "listed, no x");

    // Written and deleted by another client: from now on the answer to the create is stale.
    let created = api
        .create(&PostParams::default(), &config_map("x", "v1"))
        .await
        .unwrap();
    api.delete("x", &DeleteParams::default()).await.unwrap();
    // A write the ConfigMap watch does not see, then a compaction past it: the watch, ended,
    // cannot resume from the revision it had (410) and lists again.
    let secrets: Api<Secret> = Api::namespaced(server.client(), "acme");
    let mut secret = Secret::default();
    secret.metadata.name = Some("elsewhere".into());
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    server.cluster().compact();
    server.cluster().end_watches();
    // An object created now is seen only once that list is done.
    api.create(&PostParams::default(), &config_map("y", "v1"))
        .await
        .unwrap();
    let mut y = informers.states(&api, "y");
    until_present(&mut y).await;
    assert_eq!(
        server.requests().count(Verb::List, "configmaps"),
        2,
        "the watch listed again after 410"
    );

    // The stale answer arrives late (a write whose answer is fed to the shared watch).
    informers.observe(&api, &created);
    let now = informers
        .cached(&api, "x", PATIENCE)
        .await
        .expect("listed")
        .unwrap();
    assert!(now.is_none(), "a deleted object came back: {now:?}");
}

#[tokio::test]
async fn an_answer_older_than_what_the_watch_delivered_is_ignored() {
    let server = common::server_with_namespace("acme").await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let informers = Informers::default();
    let first = api
        .create(&PostParams::default(), &config_map("x", "v1"))
        .await
        .unwrap();
    let mut x = informers.states(&api, "x");
    until_present(&mut x).await;
    server
        .cluster()
        .apply(
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "x", "namespace": "acme"}, "data": {"key": "v2"}}),
            true,
        )
        .unwrap();
    let second = until_present(&mut x).await;
    assert_eq!(value(&second), "v2");

    informers.observe(&api, &first);
    let now = informers
        .cached(&api, "x", PATIENCE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.as_ref().map(value), Some("v2"));
}

#[tokio::test]
async fn a_read_after_a_wait_reflects_what_the_cluster_did_before_the_state_waited_for() {
    let server = common::server_with_namespace("acme").await;
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let secrets: Api<Secret> = Api::namespaced(server.client(), "acme");
    let writer = Writer::new("test");
    let kind = ResourceKind::Service;
    let settings = writer
        .apply(&cms, &config_map("settings", "v1"), kind, "settings")
        .await
        .unwrap();
    assert_eq!(value(&settings), "v1");
    // The shared watch of ConfigMaps is up: it lists, then delivers an object made by someone
    // else.
    let mut probe = writer.states(&cms, "probe");
    assert!(probe.next().await.unwrap().unwrap().is_none());
    server
        .cluster()
        .apply(
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "probe", "namespace": "acme"}}),
            true,
        )
        .unwrap();
    until_present(&mut probe).await;
    let read = writer
        .current(&cms, "settings", kind, "settings")
        .await
        .unwrap();
    assert_eq!(read.as_ref().map(value), Some("v1"));

    // From now on that watch is cut and cannot resume: its store stays as it is.
    server.faults().inject(
        Fault::drop_connection()
            .on_verb(Verb::Watch)
            .on_resource("configmaps"),
    );
    server.cluster().end_watches();
    // "A controller" changes the settings, then records that it is done; the caller waits for
    // the record.
    server
        .cluster()
        .apply(
            &json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "settings", "namespace": "acme"}, "data": {"key": "v2"}}),
            true,
        )
        .unwrap();
    server
        .cluster()
        .apply(
            &json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "done", "namespace": "acme"}}),
            true,
        )
        .unwrap();
    writer
        .wait_for(&secrets, "done", kind, "done", PATIENCE, |s| {
            if s.is_some() {
                Check::Met
            } else {
                Check::Pending
            }
        })
        .await
        .unwrap();

    server.requests().reset();
    let read = writer
        .current(&cms, "settings", kind, "settings")
        .await
        .unwrap();
    assert_eq!(
        read.as_ref().map(value),
        Some("v2"),
        "the read reflects the controller's work"
    );
    assert_eq!(server.requests().count(Verb::Get, "configmaps"), 1);
    // The answer was fed to the shared watch: a wait starting now starts from it.
    let mut states = writer.states(&cms, "settings");
    let first = states.next().await.unwrap().unwrap();
    assert_eq!(first.as_ref().map(value), Some("v2"));
    drop(probe);
}

/// Counts how often a task was woken.
#[derive(Default)]
struct Wakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Wakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_change_of_one_object_wakes_only_the_waiters_on_it() {
    let server = common::server_with_namespace("acme").await;
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    for name in ["a", "b"] {
        api.create(&PostParams::default(), &config_map(name, "v1"))
            .await
            .unwrap();
    }
    let informers = Informers::default();
    let mut a = informers.states(&api, "a");
    let mut b = informers.states(&api, "b");
    until_present(&mut a).await;
    until_present(&mut b).await;

    // b waits for its next state, with a waker that counts.
    let wakes = std::sync::Arc::new(Wakes::default());
    let waker = std::task::Waker::from(wakes.clone());
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(b.poll_next_unpin(&mut cx).is_pending(), "b has not changed");

    // Another client changes a; the shared watch delivers it to a's waiter.
    let v2 = Patch::Merge(json!({"data": {"key": "v2"}}));
    api.patch("a", &PatchParams::default(), &v2).await.unwrap();
    let a_changed = async {
        while let Some(Ok(state)) = a.next().await {
            if state.as_ref().map(value) == Some("v2") {
                return;
            }
        }
        panic!("a's states ended");
    };
    tokio::time::timeout(PATIENCE, a_changed)
        .await
        .expect("a's change arrives");
    assert_eq!(
        wakes.0.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a change of a woke the waiter on b"
    );

    // b's own change wakes it.
    api.patch("b", &PatchParams::default(), &v2).await.unwrap();
    let b_changed = async {
        while let Some(Ok(state)) = b.next().await {
            if state.as_ref().map(value) == Some("v2") {
                return;
            }
        }
        panic!("b's states ended");
    };
    tokio::time::timeout(PATIENCE, b_changed)
        .await
        .expect("b's change arrives");
}
