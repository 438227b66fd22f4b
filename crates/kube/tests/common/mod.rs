//! Setup shared by the test binaries of this crate.
#![allow(dead_code, reason = "each test binary uses part of it")]

use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::PostParams;
use kubecloud_kube::{RetryPolicy, Writer};
use kubecloud_testkit::TestServer;

/// The API server double with namespace `ns` created.
pub async fn server_with_namespace(ns: &str) -> TestServer {
    let server = TestServer::start().await.expect("server starts");
    let namespaces: Api<Namespace> = Api::all(server.client());
    let mut namespace = Namespace::default();
    namespace.metadata.name = Some(ns.into());
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    server
}

/// A writer whose retries wait milliseconds, not the default's seconds.
pub fn quick_retries() -> Writer {
    Writer::new("test").with_retry(RetryPolicy {
        min_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        ..RetryPolicy::default()
    })
}
