//! The whole stack with load balancing on Cilium LB-IPAM instead of MetalLB: KubeVirt + CDI,
//! LINSTOR, Kube-OVN and the Cilium backend, on the fake cloud running the simulated LB-IPAM
//! (`FakeCloud::builder().cilium()`), connected with `Cloud::connect_with` choosing the Cilium
//! backend (both systems' CRDs are served, and MetalLB comes first unless chosen otherwise);
//! every conformance group, and a tenant apply / re-plan (empty) / destroy (nothing left).
#![cfg(all(feature = "kubernetes", feature = "cilium"))]

mod common {
    pub mod ports;
    pub mod stack;
}

use std::time::Duration;

use common::ports::OvnPorts;
use common::stack::left_behind;
use kubecloud::{ApplyOptions, Cloud, ConnectOptions, Part, TenantSpec};
use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_testkit::FakeCloud;

fn params() -> Params {
    Params {
        tier: Some("fast".into()),
        second_tier: Some("bulk".into()),
        timeout: Duration::from_secs(30),
        nodes: 3,
        ..Params::default()
    }
}

const BULK: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: bulk}\n\
                    provisioner: linstor.csi.linbit.com\n\
                    parameters: {linstor.csi.linbit.com/resourceGroup: rg-bulk}\n";

async fn stack() -> (FakeCloud, Cloud) {
    let fake = FakeCloud::builder()
        .cilium()
        .start()
        .await
        .expect("fake cloud");
    common::stack::install_catalog_rbac(fake.rbac());
    fake.kube().seed_yaml(BULK).expect("bulk class");
    let options = ConnectOptions::new().backend(Part::LoadBalancer, "cilium");
    let cloud = Cloud::connect_with(fake.kube().client(), options)
        .await
        .expect("connect");
    assert_eq!(
        cloud.backend_names(),
        ["kubevirt", "linstor", "kube-ovn", "cilium"],
        "the load balancer the options chose"
    );
    (fake, cloud)
}

/// Cilium is not offered BGP by this backend (see `kubecloud_cilium::capabilities`): the checks
/// needing it skip, saying so; nothing else may.
const EXPECTED_SKIPS: &[(&str, &str)] = &[
    (
        "loadbalancer::bgp_pool",
        "capability load_balancer.bgp is missing",
    ),
    (
        "loadbalancer::pool_changes_in_place",
        "capability load_balancer.bgp is missing",
    ),
];

macro_rules! group {
    ($test:ident, $run:ident, $prefix:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let (fake, cloud) = stack().await;
            let ports = OvnPorts::new(&fake.ovn_northbound(), &cloud);
            let target = Target {
                compute: Some(cloud.compute()),
                storage: Some(cloud.storage()),
                network: Some(cloud.network()),
                load_balancer: Some(cloud.load_balancer()),
                ports: Some(&ports),
            };
            let report = conformance::$run(&target, $prefix, &params()).await;
            eprintln!("{report}");
            assert!(!report.passed.is_empty());
            let unexpected: Vec<_> = report
                .skipped
                .iter()
                .filter(|(name, why)| !EXPECTED_SKIPS.contains(&(*name, why.as_str())))
                .collect();
            assert!(unexpected.is_empty(), "skipped: {unexpected:?}");
        }
    };
}

group!(storage_conforms_with_cilium_lb, run_storage, "st");
group!(network_conforms_with_cilium_lb, run_network, "nw");
group!(compute_conforms_with_cilium_lb, run_compute, "cp");
group!(load_balancing_conforms_on_cilium, run_load_balancer, "lb");
group!(tenants_are_isolated_with_cilium_lb, run_isolation, "is");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_choice_metallb_is_taken_where_both_are_installed() {
    let fake = FakeCloud::builder()
        .cilium()
        .start()
        .await
        .expect("fake cloud");
    common::stack::install_catalog_rbac(fake.rbac());
    let cloud = Cloud::connect_with(fake.kube().client(), ConnectOptions::new())
        .await
        .expect("connect");
    assert_eq!(cloud.backend_names()[3], "metallb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_applied_re_planned_and_destroyed_with_cilium_lb() {
    let (fake, cloud) = stack().await;
    let acme = cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    // LB-IPAM cannot skip .0/.255 addresses (refused naming `avoidBuggyIps`): the pool keeps all.
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| v.with_tier("fast"))
            .collect(),
        address_pools: spec
            .address_pools
            .into_iter()
            .map(|p| kubecloud::AddressPoolSpec {
                avoid_buggy_ips: false,
                ..p
            })
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
    let exposed = cloud
        .load_balancer()
        .get_exposure(&kubecloud::Tenant::new("acme").unwrap(), "web")
        .await
        .unwrap();
    assert_eq!(exposed.pool.as_deref(), Some("public"), "{exposed:?}");
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");
    acme.destroy(options).await.unwrap();
    let left = left_behind(fake.kube(), "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(acme.plan(&TenantSpec::default()).await.unwrap().is_empty());
}
