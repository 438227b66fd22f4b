//! Fault and latency injection, and the request counters.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use kubecloud_testkit::{Fault, Latency, TestServer, Verb};
use serde_json::json;
use std::time::{Duration, Instant};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// A client without kube's default retry policy, to see raw answers.
fn no_retry_client(server: &TestServer) -> kube::Client {
    let mut config = server.kube_config();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

#[tokio::test]
async fn injected_500_and_409_reach_the_client() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    server
        .faults()
        .inject(Fault::status(500).on_verb(Verb::Get).times(1));
    server.faults().inject(
        Fault::status(409)
            .on_verb(Verb::Create)
            .on_resource("configmaps")
            .times(1),
    );
    let err = api_error(cms.get("x").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    let err = api_error(
        cms.create(&PostParams::default(), &cm("a"))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    // Both rules are used up.
    cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert_eq!(server.requests().count_where(|r| r.faulted), 2);
}

#[tokio::test]
async fn kube_retries_a_503_and_the_counters_show_both_attempts() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    server
        .faults()
        .inject(Fault::status(503).on_verb(Verb::Create).times(1));
    cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.count(Verb::Create, "configmaps"), 2);
    assert_eq!(requests.count_status(503), 1);
    assert_eq!(requests.count_status(201), 1);
    let summary = requests.summary();
    assert_eq!(
        summary[&(Verb::Create, "configmaps".to_string(), Some(503))],
        1
    );
    assert_eq!(
        summary[&(Verb::Create, "configmaps".to_string(), Some(201))],
        1
    );
}

#[tokio::test]
async fn too_many_requests_carries_retry_after_and_kube_honours_it() {
    let server = TestServer::start().await.unwrap();
    server
        .faults()
        .inject(Fault::too_many_requests(1).on_verb(Verb::List).times(1));
    let raw: Api<ConfigMap> = Api::namespaced(no_retry_client(&server), "default");
    let err = api_error(raw.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(err.details.unwrap().retry_after_seconds, 1);

    server
        .faults()
        .inject(Fault::too_many_requests(1).on_verb(Verb::List).times(1));
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let started = Instant::now();
    cms.list(&ListParams::default()).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn dropped_connections_fail_the_request() {
    let server = TestServer::start().await.unwrap();
    server
        .faults()
        .inject(Fault::drop_connection().on_resource("configmaps").times(1));
    let cms: Api<ConfigMap> = Api::namespaced(no_retry_client(&server), "default");
    let err = cms.get("a").await.unwrap_err();
    assert!(!matches!(err, kube::Error::Api(_)), "{err:?}");
    let log = server.requests().all();
    assert_eq!(log.last().unwrap().status, None);
    // The next request goes through.
    assert_eq!(api_error(cms.get("a").await.unwrap_err()).code, 404);
}

#[tokio::test]
async fn fault_rates_are_deterministic_for_a_seed() {
    async fn statuses(seed: u64) -> Vec<Option<u16>> {
        let server = TestServer::builder().seed(seed).start().await.unwrap();
        server.faults().inject(Fault::status(500).rate(0.5));
        let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
        for _ in 0..24 {
            let _ = cms.get_opt("a").await;
        }
        server
            .requests()
            .all()
            .into_iter()
            .map(|r| r.status)
            .collect()
    }
    let a = statuses(42).await;
    assert_eq!(a, statuses(42).await);
    assert!(a.contains(&Some(500)) && a.contains(&Some(404)));
}

#[tokio::test]
async fn latency_is_added_to_every_request() {
    let server = TestServer::builder()
        .latency(Latency::Fixed(Duration::from_millis(60)))
        .start()
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let started = Instant::now();
    cms.list(&ListParams::default()).await.unwrap();
    // A lower bound only: the answer cannot come before the injected delay.
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(
        server.requests().all().last().unwrap().delay,
        Duration::from_millis(60)
    );
    server.faults().set_latency(Latency::Uniform {
        min: Duration::from_millis(1),
        max: Duration::from_millis(5),
    });
    for _ in 0..8 {
        cms.list(&ListParams::default()).await.unwrap();
        let delay = server.requests().all().last().unwrap().delay;
        assert!(
            (Duration::from_millis(1)..=Duration::from_millis(5)).contains(&delay),
            "{delay:?}"
        );
    }
}

#[tokio::test]
async fn counters_record_what_was_sent_and_reset() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for name in ["a", "b", "c"] {
        cms.create(&PostParams::default(), &cm(name)).await.unwrap();
    }
    let requests = server.requests();
    assert_eq!(requests.count(Verb::Create, "configmaps"), 3);
    assert_eq!(requests.writes().len(), 3);
    let r = &requests.all()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/api/v1/namespaces/default/configmaps")
    );
    assert_eq!(r.namespace.as_deref(), Some("default"));
    assert_eq!(r.content_type.as_deref(), Some("application/json"));
    assert!(r.body_size > 0);
    requests.reset();
    assert_eq!(requests.total(), 0);
    // Seeding and controllers act in process: nothing is recorded.
    server.cluster().create(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d", "namespace": "default"}})).unwrap();
    assert_eq!(requests.total(), 0);
}
