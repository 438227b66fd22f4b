//! The shared conformance suite (compute group) against this backend on the TestServer with the
//! simulated KubeVirt and CDI. Checks that need the storage or network backends (built
//! separately) skip; the cross-trait paths are covered by `lifecycle.rs` and `behaviour.rs`.

mod common;

use kubecloud_core::conformance::{self, Params, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compute_conformance() {
    let env = common::env().await;
    let target = Target {
        compute: Some(&env.compute),
        ..Target::default()
    };
    let params = Params {
        timeout: common::TIMEOUT,
        ..Params::default()
    };
    let report = conformance::run_compute(&target, "kv", &params).await;
    eprintln!("{report}");
    for (check, why) in &report.skipped {
        assert!(
            why.contains("storage") || why.contains("network"),
            "{check} skipped for another reason than a missing backend: {why}"
        );
    }
    assert!(report.passed.len() >= 6, "{report}");
}
