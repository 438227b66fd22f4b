//! The shared Kubernetes layer against the API server double, over a real socket: what it sends
//! and how it reads the answers.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::Api;
use kube::api::PostParams;
use kubecloud_core::wait::Check;
use kubecloud_core::{Error, ResourceKind, Tenant};
use kubecloud_kube::{Writer, ownership_labels, wait_for};
use kubecloud_testkit::{Fault, TestServer, Verb};

fn config_map(tenant: &Tenant, name: &str, value: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.labels = Some(ownership_labels(tenant, name));
    cm.data = Some(BTreeMap::from([("key".to_string(), value.to_string())]));
    cm
}

#[tokio::test]
async fn an_unchanged_object_is_not_written_again() {
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let writer = Writer::new("test");
    let desired = config_map(&acme, "settings", "v1");
    let (live, wrote) = writer
        .apply_if_changed(&api, None, &desired, ResourceKind::Service, "settings")
        .await
        .unwrap();
    assert!(wrote);
    server.requests().reset();
    let (_, wrote) = writer
        .apply_if_changed(
            &api,
            Some(&live),
            &desired,
            ResourceKind::Service,
            "settings",
        )
        .await
        .unwrap();
    assert!(!wrote);
    assert_eq!(
        server.requests().total(),
        0,
        "nothing sent for an unchanged object"
    );
    let changed = config_map(&acme, "settings", "v2");
    let (live, wrote) = writer
        .apply_if_changed(
            &api,
            Some(&live),
            &changed,
            ResourceKind::Service,
            "settings",
        )
        .await
        .unwrap();
    assert!(wrote);
    assert_eq!(live.data.unwrap()["key"], "v2");
    assert_eq!(server.requests().count(Verb::Apply, "configmaps"), 1);
}

#[tokio::test]
async fn temporary_failures_are_retried_and_permanent_ones_are_not() {
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let writer = common::quick_retries();
    server
        .faults()
        .inject(Fault::status(500).on_verb(Verb::Apply).times(2));
    writer
        .apply(
            &api,
            &config_map(&acme, "a", "x"),
            ResourceKind::Service,
            "a",
        )
        .await
        .expect("third attempt succeeds");
    assert_eq!(server.requests().count(Verb::Apply, "configmaps"), 3);

    server.requests().reset();
    let mut bad = config_map(&acme, "b", "x");
    bad.metadata.name = Some("Not_Valid".into());
    let err = writer
        .apply(&api, &bad, ResourceKind::Service, "b")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert_eq!(
        server.requests().count(Verb::Apply, "configmaps"),
        1,
        "a 422 is not retried"
    );
}

#[tokio::test]
async fn missing_objects_read_as_none_and_deletes_are_idempotent() {
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let writer = Writer::new("test");
    assert!(
        writer
            .get_opt(&api, "nope", ResourceKind::Service, "nope")
            .await
            .unwrap()
            .is_none()
    );
    writer
        .apply(
            &api,
            &config_map(&acme, "c", "x"),
            ResourceKind::Service,
            "c",
        )
        .await
        .unwrap();
    assert!(
        writer
            .delete(&api, "c", ResourceKind::Service, "c")
            .await
            .unwrap()
    );
    assert!(
        !writer
            .delete(&api, "c", ResourceKind::Service, "c")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn waiting_sees_a_claim_bound_through_one_watch() {
    let server = common::server_with_namespace("acme").await;
    server
        .seed_yaml("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: standard\n  annotations:\n    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner: example.com/fake\n")
        .unwrap();
    let binder = server
        .controller("persistentvolume-binder")
        .expect("default controller");
    binder.pause();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(server.client(), "acme");
    let mut pvc = PersistentVolumeClaim::default();
    pvc.metadata.name = Some("data".into());
    pvc.spec = Some(PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".into()]),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([(
                "storage".to_string(),
                Quantity("1Gi".into()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    });
    let binder = server
        .controller("persistentvolume-binder")
        .expect("default controller");
    binder.pause();
    api.create(&PostParams::default(), &pvc).await.unwrap();
    server.requests().reset();
    let seen_pending = std::sync::Arc::new(tokio::sync::Notify::new());
    let signal = seen_pending.clone();
    let waiting = tokio::spawn(wait_for(
        api,
        "data",
        ResourceKind::Volume,
        "data",
        Duration::from_secs(10),
        move |pvc: Option<&PersistentVolumeClaim>| match pvc
            .and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
        {
            Some("Bound") => Check::Met,
            _ => {
                signal.notify_one();
                Check::Pending
            }
        },
    ));
    // The claim binds only once the binder runs again, after the wait has seen it pending: the
    // wait must see the change through its watch.
    seen_pending.notified().await;
    binder.resume();
    let bound = waiting.await.unwrap().unwrap();
    assert_eq!(bound.status.unwrap().phase.as_deref(), Some("Bound"));
    let requests = server.requests();
    assert_eq!(requests.count_verb(Verb::Get), 0, "no polling");
    assert!(
        requests.count_verb(Verb::List) <= 1,
        "one initial list: {:?}",
        requests.summary()
    );
    assert!(
        requests.count_verb(Verb::Watch) <= 1,
        "one watch: {:?}",
        requests.summary()
    );
}

#[tokio::test]
async fn a_terminal_state_ends_the_wait_at_once() {
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    Writer::new("test")
        .apply(
            &api,
            &config_map(&acme, "job", "failed"),
            ResourceKind::Service,
            "job",
        )
        .await
        .unwrap();
    let err = wait_for(
        api,
        "job",
        ResourceKind::Service,
        "job",
        Duration::from_secs(3600),
        |cm| match cm
            .and_then(|c| c.data.as_ref())
            .and_then(|d| d.get("key"))
            .map(String::as_str)
        {
            Some("failed") => Check::Failed("the job failed".into()),
            _ => Check::Pending,
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
}

#[tokio::test]
async fn the_tenant_namespace_is_created_once_and_labelled() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    let writer = Writer::new("test");
    let acme = Tenant::new("acme").unwrap();
    kubecloud_kube::ensure_namespace(&client, &writer, &acme)
        .await
        .unwrap();
    let ns = server
        .cluster()
        .get("v1", "Namespace", None, "acme")
        .unwrap();
    assert_eq!(ns["metadata"]["labels"]["kubecloud.io/tenant"], "acme");
    server.requests().reset();
    kubecloud_kube::ensure_namespace(&client, &writer, &acme)
        .await
        .unwrap();
    assert_eq!(
        server.requests().total(),
        0,
        "the writer remembers the namespace: nothing is sent"
    );
    // Another writer (another process) reads it and sends no write either.
    kubecloud_kube::ensure_namespace(&client, &Writer::new("other"), &acme)
        .await
        .unwrap();
    assert_eq!(server.requests().count_verb(Verb::Apply), 0);
    assert_eq!(server.requests().total(), 1, "one read");
}

#[tokio::test]
async fn a_field_the_new_spec_drops_is_a_change() {
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let writer = Writer::new("test");
    let mut two_keys = config_map(&acme, "settings", "v1");
    two_keys
        .data
        .as_mut()
        .unwrap()
        .insert("extra".into(), "x".into());
    let (live, _) = writer
        .apply_if_changed(&api, None, &two_keys, ResourceKind::Service, "settings")
        .await
        .unwrap();
    // The live object holds every field of the smaller spec, yet the spec dropped "extra".
    let one_key = config_map(&acme, "settings", "v1");
    let (live, wrote) = writer
        .apply_if_changed(
            &api,
            Some(&live),
            &one_key,
            ResourceKind::Service,
            "settings",
        )
        .await
        .unwrap();
    assert!(wrote, "dropping a field is a change");
    assert!(
        !live.data.unwrap().contains_key("extra"),
        "server-side apply removed the dropped field"
    );
}

#[tokio::test]
async fn a_change_made_by_hand_is_applied_over() {
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let writer = Writer::new("test");
    let desired = config_map(&acme, "settings", "v1");
    writer
        .apply_if_changed(&api, None, &desired, ResourceKind::Service, "settings")
        .await
        .unwrap();
    let mut by_hand = api.get("settings").await.unwrap();
    by_hand
        .data
        .as_mut()
        .unwrap()
        .insert("key".into(), "edited".into());
    let by_hand = api
        .replace("settings", &PostParams::default(), &by_hand)
        .await
        .unwrap();
    let (live, wrote) = writer
        .apply_if_changed(
            &api,
            Some(&by_hand),
            &desired,
            ResourceKind::Service,
            "settings",
        )
        .await
        .unwrap();
    assert!(wrote);
    assert_eq!(live.data.unwrap()["key"], "v1");
}

#[tokio::test]
async fn waits_on_many_objects_of_one_kind_share_one_watch() {
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let writer = Writer::new("test")
        .with_informers(kubecloud_kube::Informers::default().with_linger(Duration::ZERO));
    const N: usize = 20;
    server.requests().reset();
    let waits = (0..N).map(|i| {
        let (api, writer, acme) = (api.clone(), writer.clone(), acme.clone());
        async move {
            let name = format!("cm-{i}");
            writer
                .apply(
                    &api,
                    &config_map(&acme, &name, "v1"),
                    ResourceKind::Service,
                    &name,
                )
                .await?;
            // Met only once "a controller" (the test, below) has changed the value.
            writer
                .wait_for(
                    &api,
                    &name,
                    ResourceKind::Service,
                    &name,
                    Duration::from_secs(20),
                    |cm| match cm.and_then(|c| c.data.as_ref()).map(|d| d["key"].as_str()) {
                        Some("done") => Check::Met,
                        _ => Check::Pending,
                    },
                )
                .await
        }
    });
    let all = futures::future::join_all(waits);
    let controller = async {
        // Act on each object once every wait has started (the shared watch is up once the
        // first has been seen by it): change them in process, as a controller would.
        for i in 0..N {
            let name = format!("cm-{i}");
            let done = kubecloud_kube::wait_for(
                api.clone(),
                &name,
                ResourceKind::Service,
                &name,
                Duration::from_secs(20),
                |cm| {
                    if cm.is_some() {
                        Check::Met
                    } else {
                        Check::Pending
                    }
                },
            );
            done.await.unwrap();
            let change = serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "acme"},
                "data": {"key": "done"},
            });
            server.cluster().apply(&change, true).unwrap();
        }
    };
    let (results, ()) = tokio::join!(all, controller);
    for r in results {
        assert_eq!(r.unwrap().data.unwrap()["key"], "done");
    }
    let shared_watches = server.requests().count_where(|r| {
        r.verb == Verb::Watch && r.resource == "configmaps" && !r.query.contains("fieldSelector")
    });
    assert_eq!(shared_watches, 1, "{N} waits, one watch of the kind");
    assert_eq!(server.requests().count(Verb::Apply, "configmaps"), N);
    assert_eq!(
        writer.informers().running_watches(),
        0,
        "the watch stops with its last waiter"
    );
}

#[tokio::test]
async fn reads_before_writes_come_from_the_shared_watch_once_it_is_up() {
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let writer = Writer::new("test");
    server.requests().reset();
    // The first read starts the shared watch of the kind and answers from its list.
    let first = writer
        .current(&api, "cm-0", ResourceKind::Service, "cm-0")
        .await
        .unwrap();
    assert!(first.is_none());
    for i in 0..10 {
        let name = format!("cm-{i}");
        let current = writer
            .current(&api, &name, ResourceKind::Service, &name)
            .await
            .unwrap();
        writer
            .apply_if_changed(
                &api,
                current.as_ref(),
                &config_map(&acme, &name, "v1"),
                ResourceKind::Service,
                &name,
            )
            .await
            .unwrap();
        let again = writer
            .current(&api, &name, ResourceKind::Service, &name)
            .await
            .unwrap()
            .expect("its own write is seen");
        assert_eq!(again.data.unwrap()["key"], "v1");
    }
    assert_eq!(
        server.requests().count(Verb::Get, "configmaps"),
        0,
        "no read per object"
    );
    assert_eq!(
        server.requests().count(Verb::List, "configmaps"),
        1,
        "one list of the kind"
    );
    assert_eq!(server.requests().count(Verb::Apply, "configmaps"), 10);
}

#[tokio::test]
async fn lists_read_the_servers_status_on_failure_and_retry_what_is_temporary() {
    use kube::api::ListParams;
    let server = common::server_with_namespace("acme").await;
    let acme = Tenant::new("acme").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let writer = common::quick_retries();
    writer
        .apply(
            &api,
            &config_map(&acme, "a", "x"),
            ResourceKind::Service,
            "a",
        )
        .await
        .unwrap();
    // A 503 is temporary: listed again, whole objects and metadata alike.
    server
        .faults()
        .inject(Fault::status(503).on_verb(Verb::List).times(2));
    let items = writer
        .list(&api, &ListParams::default(), ResourceKind::Service, "*")
        .await
        .expect("the third list succeeds");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].data.as_ref().unwrap()["key"], "x");
    let metadata = writer
        .list_metadata(&api, &ListParams::default(), ResourceKind::Service, "*")
        .await
        .expect("listed");
    assert_eq!(metadata[0].metadata.name.as_deref(), Some("a"));
    // A resource the server does not serve is its 404 `Status`, read as NotFound.
    let missing: Api<ConfigMap> = Api::namespaced(server.client(), "acme");
    let missing = Api::<kube::api::DynamicObject>::namespaced_with(
        missing.into_client(),
        "acme",
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("example.com", "v1", "Widget"),
            "widgets",
        ),
    );
    let err = writer
        .list(&missing, &ListParams::default(), ResourceKind::Service, "*")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    // A 422 (a bad selector) is permanent and names what the server said.
    server.requests().reset();
    let err = writer
        .list(
            &api,
            &ListParams::default().labels("a in (b"),
            ResourceKind::Service,
            "*",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(
        err.to_string().contains("invalid label selector"),
        "the server's message: {err}"
    );
    assert_eq!(
        server.requests().count(Verb::List, "configmaps"),
        1,
        "not retried: {err}"
    );
}
