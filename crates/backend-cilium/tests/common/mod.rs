//! A TestServer with the simulated Cilium LB-IPAM, and the backend on it.

#![allow(dead_code)]

use kubecloud_cilium::Cilium;
use kubecloud_testkit::{CiliumLbIpam, TestServer};

/// A server running the simulated LB-IPAM of the Cilium operator.
pub async fn server() -> TestServer {
    TestServer::builder()
        .controller(CiliumLbIpam)
        .start()
        .await
        .expect("test server starts")
}

/// The backend on `server`.
pub fn backend(server: &TestServer) -> Cilium {
    Cilium::builder(server.client()).build()
}

pub fn tenant(name: &str) -> kubecloud_core::Tenant {
    kubecloud_core::Tenant::new(name).expect("tenant name")
}
