//! The shared conformance suite against Kube-OVN on the testkit server, with the simulated
//! kube-ovn-controller.

use std::time::Duration;

use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_kubeovn::KubeOvn;
use kubecloud_testkit::{KubeOvnController, TestServer};

fn params() -> Params {
    Params {
        timeout: Duration::from_secs(20),
        ..Params::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_conformance_passes() {
    let server = TestServer::builder()
        .controller(KubeOvnController::default())
        .start()
        .await
        .expect("server");
    let backend = KubeOvn::builder(server.client())
        .ready_timeout(Duration::from_secs(20))
        .build();
    let target = Target {
        network: Some(&backend),
        ..Target::default()
    };
    let report = conformance::run_network(&target, "kovn", &params()).await;
    assert_eq!(report.passed.len(), 9, "{report}");
    report.assert_nothing_skipped();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_isolation_passes() {
    let server = TestServer::builder()
        .controller(KubeOvnController::default())
        .start()
        .await
        .expect("server");
    let backend = KubeOvn::builder(server.client())
        .ready_timeout(Duration::from_secs(20))
        .build();
    let target = Target {
        network: Some(&backend),
        ..Target::default()
    };
    let params = params();
    let a = kubecloud_core::Tenant::new("iso-a").unwrap();
    let b = kubecloud_core::Tenant::new("iso-b").unwrap();
    let outcome = conformance::isolation::network(&target, &a, &b, &params).await;
    assert_eq!(outcome, conformance::Outcome::Passed);
    // The suite's own entry point too (the other groups skip: no such backends here).
    let report = conformance::run_isolation(&target, "kovn", &params).await;
    assert!(report.passed.contains(&"isolation::network"), "{report}");
}
