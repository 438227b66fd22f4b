//! The shared conformance suite against the kube-vip backend on the testkit API server with the
//! simulated kube-vip-cloud-provider and kube-vip (ARP).

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
    let report = run_load_balancer(&target, "kv", &Params::default()).await;
    eprintln!("{report}");
    // kube-vip runs ARP here (see `capabilities::ARP`): the two BGP checks skip, saying so.
    let skipped: Vec<_> = report
        .skipped
        .iter()
        .map(|(name, why)| (*name, why.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "loadbalancer::bgp_pool",
                "capability load_balancer.bgp is missing"
            ),
            (
                "loadbalancer::pool_changes_in_place",
                "capability load_balancer.bgp is missing"
            ),
        ],
        "only the BGP checks skip:\n{report}"
    );
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
