//! The shared conformance suite against the Multus backend on the testkit server, with the
//! simulated Multus + whereabouts and multi-network policy controllers.

use std::time::Duration;

use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_multus::Multus;
use kubecloud_testkit::{MultiNetworkPolicyController, TestServer, WhereaboutsController};

fn params() -> Params {
    Params {
        timeout: Duration::from_secs(20),
        ..Params::default()
    }
}

async fn server() -> TestServer {
    TestServer::builder()
        .controller(WhereaboutsController::default())
        .controller(MultiNetworkPolicyController::default())
        .start()
        .await
        .expect("server")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_conformance_passes() {
    let server = server().await;
    let backend = Multus::builder(server.client())
        .bridge("br1", 100..=199)
        .build();
    let target = Target {
        network: Some(&backend),
        ..Target::default()
    };
    let report = conformance::run_network(&target, "mts", &params()).await;
    // Selected by the capabilities: external access (EIP/FIP/SNAT) needs a router.
    let skipped: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|(check, why)| (*check, why.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [(
            "network::external_access",
            "capability network.external_access is missing"
        )],
        "{report}"
    );
    assert_eq!(report.passed.len(), 8, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_isolation_passes() {
    let server = server().await;
    let backend = Multus::builder(server.client()).build();
    let target = Target {
        network: Some(&backend),
        ..Target::default()
    };
    let params = params();
    let a = kubecloud_core::Tenant::new("iso-a").unwrap();
    let b = kubecloud_core::Tenant::new("iso-b").unwrap();
    let outcome = conformance::isolation::network(&target, &a, &b, &params).await;
    assert_eq!(outcome, conformance::Outcome::Passed);
}
