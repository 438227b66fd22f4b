//! The whole stack with load balancing on kube-vip instead of MetalLB: KubeVirt + CDI, LINSTOR,
//! Kube-OVN and the kube-vip backend, on the fake cloud running the simulated
//! kube-vip-cloud-provider and kube-vip (`FakeCloud::builder().kubevip()`), connected with
//! `Cloud::connect_with` choosing the kube-vip backend (MetalLB's CRDs are served too, and
//! MetalLB comes first unless chosen otherwise); every conformance group, and a tenant apply /
//! re-plan (empty) / destroy (nothing left, the tenant's keys gone from the kubevip ConfigMap).
#![cfg(all(feature = "kubernetes", feature = "kubevip"))]

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
        .kubevip()
        .start()
        .await
        .expect("fake cloud");
    fake.kube().seed_yaml(BULK).expect("bulk class");
    common::stack::install_catalog_rbac(fake.rbac());
    let options = ConnectOptions::new().backend(Part::LoadBalancer, "kubevip");
    let cloud = Cloud::connect_with(fake.kube().client(), options)
        .await
        .expect("connect");
    assert_eq!(
        cloud.backend_names(),
        ["kubevirt", "linstor", "kube-ovn", "kubevip"],
        "the load balancer the options chose"
    );
    (fake, cloud)
}

/// The fake cloud's kube-vip announces over ARP (see `kubecloud_kubevip::capabilities`): the
/// checks needing BGP skip, saying so; nothing else may.
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

group!(storage_conforms_with_kubevip_lb, run_storage, "st");
group!(network_conforms_with_kubevip_lb, run_network, "nw");
group!(compute_conforms_with_kubevip_lb, run_compute, "cp");
group!(load_balancing_conforms_on_kubevip, run_load_balancer, "lb");
group!(tenants_are_isolated_with_kubevip_lb, run_isolation, "is");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_choice_metallb_is_taken_where_both_are_installed_with_kubevip() {
    let fake = FakeCloud::builder()
        .kubevip()
        .start()
        .await
        .expect("fake cloud");
    let cloud = Cloud::connect_with(fake.kube().client(), ConnectOptions::new())
        .await
        .expect("connect");
    assert_eq!(cloud.backend_names()[3], "metallb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_applied_re_planned_and_destroyed_with_kubevip_lb() {
    let (fake, cloud) = stack().await;
    let acme = cloud.tenant("acme").unwrap();
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
    let exposed = cloud
        .load_balancer()
        .get_exposure(&kubecloud::Tenant::new("acme").unwrap(), "web")
        .await
        .unwrap();
    assert_eq!(exposed.pool.as_deref(), Some("public"), "{exposed:?}");
    let cm = fake
        .kube()
        .cluster()
        .get("v1", "ConfigMap", Some("kube-system"), "kubevip")
        .unwrap();
    assert_eq!(
        cm["data"]["cidr-acme"], "203.0.113.0/28",
        "the tenant's pool entry"
    );
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");
    acme.destroy(options).await.unwrap();
    let left = left_behind(fake.kube(), "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    let cm = fake
        .kube()
        .cluster()
        .get("v1", "ConfigMap", Some("kube-system"), "kubevip")
        .unwrap();
    let keys: Vec<&String> = cm["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
        .collect();
    assert!(
        keys.iter().all(|k| !k.ends_with("-acme")),
        "the tenant's keys are gone: {cm}"
    );
    assert!(acme.plan(&TenantSpec::default()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubevip_settings_given_when_connecting_are_the_backend_s() {
    let fake = FakeCloud::builder()
        .kubevip()
        .start()
        .await
        .expect("fake cloud");
    let peer = kubecloud::BgpPeer {
        name: "tor".into(),
        my_asn: 64512,
        peer_asn: 64513,
        address: "192.0.2.1".parse().unwrap(),
        port: None,
        hold_time_secs: None,
        keepalive_time_secs: None,
        ebgp_multihop: false,
        bfd: false,
        password: None,
    };
    let settings = kubecloud::kubevip::Settings {
        announcement: kubecloud::kubevip::Announcement::Bgp(vec![peer]),
        ..kubecloud::kubevip::Settings::default()
    };
    let options = ConnectOptions::new()
        .backend(Part::LoadBalancer, "kubevip")
        .with(settings);
    let cloud = Cloud::connect_with(fake.kube().client(), options)
        .await
        .expect("connect");
    let caps = cloud.load_balancer().capabilities();
    assert!(caps.bgp && !caps.l2, "{caps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubevip_chosen_where_its_config_map_is_missing_is_refused_with_the_reason() {
    let fake = FakeCloud::builder().start().await.expect("fake cloud");
    let options = ConnectOptions::new().backend(Part::LoadBalancer, "kubevip");
    let err = Cloud::connect_with(fake.kube().client(), options)
        .await
        .expect_err("no kube-vip here");
    assert!(
        err.to_string().contains("kube-system/kubevip"),
        "the reason names the ConfigMap: {err}"
    );
}
