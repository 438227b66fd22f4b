//! The shared conformance suite (storage and the storage part of isolation) against the LINSTOR
//! backend on the doubles.

mod common;

use kubecloud_core::conformance::{self, Target};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_conformance() {
    let env = common::env().await;
    let target = Target {
        storage: Some(&env.backend),
        ..Target::default()
    };
    let report = conformance::run_storage(&target, "lin", &common::params()).await;
    let skipped: Vec<_> = report.skipped.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        skipped,
        ["storage::delete_in_use_needs_force"],
        "only the check needing a compute backend skips: {report:?}"
    );
    assert!(
        env.linstor.violations().is_empty(),
        "{:?}",
        env.linstor.violations()
    );
    assert!(
        env.linstor.resource_definitions().is_empty(),
        "nothing leaked: {:?}",
        env.linstor.resource_definitions()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_conformance_storage_part() {
    let env = common::env().await;
    let target = Target {
        storage: Some(&env.backend),
        ..Target::default()
    };
    let report = conformance::run_isolation(&target, "iso", &common::params()).await;
    assert!(report.passed.contains(&"isolation::storage"), "{report:?}");
    assert!(
        env.linstor.violations().is_empty(),
        "{:?}",
        env.linstor.violations()
    );
}
