//! The catalog is parsed once per process and shared by every server.
//! (Start-up time is measured by `cargo run --release -p kubecloud-testkit --example startup_time`.)

use kubecloud_testkit::TestServer;
use kubecloud_testkit::schema::Catalog;

#[tokio::test]
async fn servers_share_one_catalog_and_listen_apart() {
    let first = TestServer::start().await.unwrap();
    let catalog = Catalog::upstream().unwrap();
    let second = TestServer::start().await.unwrap();
    assert!(
        std::ptr::eq(catalog, Catalog::upstream().unwrap()),
        "parsed once per process"
    );
    assert_ne!(first.url(), second.url());
}

/// `/healthz`, `/livez` and `/readyz` answer as kube-apiserver does (k8s.io/apiserver
/// pkg/server/healthz): `ok` in text, each check listed with `?verbose`, one check by name, and
/// an unknown check is not found. Clients and test harnesses (envtest, kind waiters) poll them
/// before anything else.
#[tokio::test]
async fn health_endpoints_answer_as_kube_apiserver() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    let get = |path: &str| {
        let request = http::Request::get(path).body(Vec::new()).unwrap();
        client.request_text(request)
    };
    for endpoint in ["/healthz", "/livez", "/readyz"] {
        assert_eq!(get(endpoint).await.unwrap(), "ok", "{endpoint}");
        let verbose = get(&format!("{endpoint}?verbose")).await.unwrap();
        assert!(verbose.contains("[+]ping ok\n"), "{verbose}");
        assert!(
            verbose.ends_with(&format!("{} check passed\n", &endpoint[1..])),
            "{verbose}"
        );
        assert_eq!(get(&format!("{endpoint}/ping")).await.unwrap(), "ok");
        assert!(get(&format!("{endpoint}/no-such-check")).await.is_err());
    }
    assert!(
        get("/readyz?verbose")
            .await
            .unwrap()
            .contains("[+]informer-sync ok"),
        "readiness lists the informer sync"
    );
}
