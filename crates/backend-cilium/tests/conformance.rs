//! The shared conformance suite against the Cilium LB-IPAM backend on the testkit API server with
//! the simulated LB-IPAM operator.

mod common;

use kubecloud_core::conformance::{Params, Target, run_isolation, run_load_balancer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancer_conformance() {
    let server = common::bgp_server().await;
    let lb = common::bgp_backend(&server);
    let target = Target {
        load_balancer: Some(&lb),
        ..Target::default()
    };
    let report = run_load_balancer(&target, "cil", &Params::default()).await;
    eprintln!("{report}");
    // BGP sessions are the cluster's (`kubecloud_cilium::bgp`): a pool setting a peer's password
    // is refused naming the field, so the check changing them in place skips, saying why.
    assert!(
        report.passed.contains(&"loadbalancer::bgp_pool"),
        "the BGP pool check runs and passes:\n{report}"
    );
    assert_eq!(report.skipped.len(), 1, "one skip only:\n{report}");
    let (name, why) = &report.skipped[0];
    assert_eq!(*name, "loadbalancer::pool_changes_in_place");
    assert!(
        why.starts_with("the load balancer's BGP sessions are not a pool's to set: ")
            && why.contains("advertisement.bgp.peers[0].password"),
        "{why}"
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
