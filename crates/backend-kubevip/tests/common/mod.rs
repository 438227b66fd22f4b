//! A TestServer with the simulated kube-vip-cloud-provider (and kube-vip), and the backend on it.

#![allow(dead_code)]

use kubecloud_kubevip::KubeVip;
use kubecloud_testkit::{KubeVipCloudProvider, TestServer};

/// A server running the simulated kube-vip-cloud-provider.
pub async fn server() -> TestServer {
    TestServer::builder()
        .controller(KubeVipCloudProvider::new())
        .start()
        .await
        .expect("test server starts")
}

/// The backend on `server`.
pub fn backend(server: &TestServer) -> KubeVip {
    KubeVip::builder(server.client()).build()
}

pub fn tenant(name: &str) -> kubecloud_core::Tenant {
    kubecloud_core::Tenant::new(name).expect("tenant name")
}
