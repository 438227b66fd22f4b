//! A TestServer with the simulated MetalLB controller, and the backend on it.

#![allow(dead_code)]

use kubecloud_metallb::MetalLb;
use kubecloud_testkit::{MetalLbController, TestServer};

pub const NAMESPACE: &str = "metallb-system";

/// A server running the simulated MetalLB controller, MetalLB's namespace created.
pub async fn server() -> TestServer {
    TestServer::builder()
        .controller(MetalLbController::new())
        .seed_yaml(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\n"
        ))
        .start()
        .await
        .expect("test server starts")
}

/// The backend on `server`, with a short settle timeout.
pub fn backend(server: &TestServer) -> MetalLb {
    MetalLb::builder(server.client())
        .namespace(NAMESPACE)
        .release_settle(std::time::Duration::from_secs(5))
        .build()
}

pub fn tenant(name: &str) -> kubecloud_core::Tenant {
    kubecloud_core::Tenant::new(name).expect("tenant name")
}
