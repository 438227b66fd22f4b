//! A TestServer with the simulated Cilium LB-IPAM, and the backend on it.

#![allow(dead_code)]

use kubecloud_cilium::Cilium;
use kubecloud_cilium::bgp::{CiliumBgp, CiliumBgpPeer};
use kubecloud_testkit::{CiliumBgpControlPlane, CiliumLbIpam, TestServer};

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

/// The nodes of [`bgp_server`]: two speak BGP (label `bgp: "yes"`), one does not.
pub const NODES: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: node-a, labels: {bgp: 'yes'}}\n---\n\
                         apiVersion: v1\nkind: Node\nmetadata: {name: node-b, labels: {bgp: 'yes'}}\n---\n\
                         apiVersion: v1\nkind: Node\nmetadata: {name: node-c}\n";

/// A server running the simulated LB-IPAM and BGP control plane, with [`NODES`].
pub async fn bgp_server() -> TestServer {
    TestServer::builder()
        .controller(CiliumLbIpam)
        .controller(CiliumBgpControlPlane)
        .seed_yaml(NODES)
        .start()
        .await
        .expect("test server starts")
}

/// The cluster's BGP speaker the tests give the backend: ASN 64512 on the `bgp: "yes"` nodes,
/// peering with `tor` (192.0.2.1, AS 64513, the conformance suite's peer) and `spine`
/// (192.0.2.2, AS 64514).
pub fn speaker() -> CiliumBgp {
    CiliumBgp::new(64512)
        .node_selector([("bgp".to_string(), "yes".to_string())].into())
        .peer(CiliumBgpPeer::new(
            "tor",
            "192.0.2.1".parse().unwrap(),
            64513,
        ))
        .peer(CiliumBgpPeer::new(
            "spine",
            "192.0.2.2".parse().unwrap(),
            64514,
        ))
}

/// The backend on `server` with [`speaker`].
pub fn bgp_backend(server: &TestServer) -> Cilium {
    Cilium::builder(server.client()).bgp(speaker()).build()
}
