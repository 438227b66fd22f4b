//! The shared conformance suite against the MetalLB backend on the testkit API server with the
//! simulated MetalLB controller.

mod common;

use kubecloud_core::conformance::{Params, Target, run_isolation, run_load_balancer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_conformance() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let target = Target {
        load_balancer: Some(&lb),
        ..Target::default()
    };
    let report = run_load_balancer(&target, "mlb", &Params::default()).await;
    eprintln!("{report}");
    report.assert_nothing_skipped();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_isolation() {
    let server = common::server().await;
    let lb = common::backend(&server);
    let target = Target {
        load_balancer: Some(&lb),
        ..Target::default()
    };
    let report = run_isolation(&target, "iso", &Params::default()).await;
    eprintln!("{report}");
    assert!(
        report.passed.contains(&"isolation::load_balancer"),
        "the load-balancer isolation check ran and passed:\n{report}"
    );
}
