//! The whole stack on the test doubles: KubeVirt + CDI, LINSTOR, Kube-OVN and MetalLB backends
//! composed into one `Cloud`, against one Kubernetes API double (with every simulated controller)
//! and one LINSTOR controller double, running the shared conformance suite and a tenant
//! plan/apply/destroy across all four.
#![cfg(all(
    feature = "kubevirt",
    feature = "linstor",
    feature = "kubeovn",
    feature = "metallb"
))]

mod common {
    pub mod ports;
    pub mod stack;
}

use std::time::Duration;

use common::ports::OvnPorts;
use common::stack::{left_behind, stack};
use kubecloud::{ApplyOptions, TenantSpec};
use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_testkit::Latency;

fn params() -> Params {
    Params {
        tier: Some("fast".into()),
        second_tier: Some("bulk".into()),
        timeout: Duration::from_secs(30),
        nodes: 3,
        ..Params::default()
    }
}

macro_rules! group {
    ($test:ident, $run:ident, $prefix:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let s = stack(Latency::None, 0).await;
            let ports = OvnPorts::new(&s.ovn, &s.cloud);
            let target = Target {
                compute: Some(s.cloud.compute()),
                storage: Some(s.cloud.storage()),
                network: Some(s.cloud.network()),
                load_balancer: Some(s.cloud.load_balancer()),
                ports: Some(&ports),
            };
            let report = conformance::$run(&target, $prefix, &params()).await;
            eprintln!("{report}");
            assert!(!report.passed.is_empty());
            // No check may skip: every capability the suite needs is there across the stack.
            let unexpected: Vec<_> = report.skipped.iter().collect();
            assert!(unexpected.is_empty(), "skipped: {unexpected:?}");
        }
    };
}

group!(storage_conforms_across_the_stack, run_storage, "st");
group!(network_conforms_across_the_stack, run_network, "nw");
group!(compute_conforms_across_the_stack, run_compute, "cp");
group!(
    load_balancing_conforms_across_the_stack,
    run_load_balancer,
    "lb"
);
group!(tenants_are_isolated_across_the_stack, run_isolation, "is");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotas_conform_across_the_stack() {
    let s = stack(Latency::None, 0).await;
    let quotas = kubecloud_kube::quota::KubeQuotas::new(s.kube.client());
    let target = Target {
        compute: Some(s.cloud.compute()),
        storage: Some(s.cloud.storage()),
        network: Some(s.cloud.network()),
        load_balancer: Some(s.cloud.load_balancer()),
        ports: None,
    };
    let report = conformance::run_quotas(&target, &quotas, "qt", &params()).await;
    eprintln!("{report}");
    report.assert_nothing_skipped();
    assert_eq!(report.passed.len(), 3, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_applied_and_destroyed_across_all_four_backends() {
    let s = stack(Latency::None, 0).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| v.with_tier("fast"))
            .collect(),
        ..spec
    };
    let options = ApplyOptions {
        timeout: Duration::from_secs(30),
        ..ApplyOptions::default()
    };
    acme.apply(&acme.plan(&spec).await.unwrap(), options)
        .await
        .unwrap();
    let web = acme.vms().get("web").await.unwrap();
    assert_eq!(
        web.status.interfaces[0].ip,
        Some("10.1.0.10".parse().unwrap())
    );
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");
    acme.destroy(options).await.unwrap();
    // Directly after destroy returned: nothing of the tenant but its namespace and Events.
    let left = left_behind(&s.kube, "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        s.linstor.resource_definitions().is_empty(),
        "LINSTOR volumes left behind: {:?}",
        s.linstor.resource_definitions()
    );
    assert!(acme.plan(&TenantSpec::default()).await.unwrap().is_empty());
}
