//! The whole stack without Kube-OVN: KubeVirt + CDI, LINSTOR, Multus (bridge + VLAN,
//! whereabouts, MultiNetworkPolicy) and MetalLB composed into one `Cloud` on the doubles (the
//! fake cloud with the simulated Multus + whereabouts and multi-network policy controllers
//! instead of Kube-OVN), running every conformance group and a tenant apply / re-plan /
//! destroy.
#![cfg(all(feature = "kubernetes", feature = "multus"))]

mod common {
    pub mod multus_ports;
    pub mod ports;
    pub mod stack;
}

use std::time::Duration;

use common::multus_ports::PolicyPorts;
use common::stack::{left_behind, linstor_builder};
use kubecloud::{ApplyOptions, Cloud, IpReservationSpec, TenantSpec};
use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_testkit::linstor::LinstorServer;
use kubecloud_testkit::{FakeCloud, Kubemacpool, MultiPolicies, TestServer};

fn params() -> Params {
    Params {
        tier: Some("fast".into()),
        second_tier: Some("bulk".into()),
        timeout: Duration::from_secs(30),
        nodes: 3,
        ..Params::default()
    }
}

struct Stack {
    kube: TestServer,
    linstor: LinstorServer,
    cloud: Cloud,
    policies: MultiPolicies,
    kubemacpool: Option<Kubemacpool>,
}

async fn stack() -> Stack {
    stack_with(false).await
}

/// The stack, with Kubemacpool (its double, and the Multus backend's option) or without.
async fn stack_with(kubemacpool: bool) -> Stack {
    let mut fake = FakeCloud::builder().multus();
    if kubemacpool {
        fake = fake.kubemacpool();
    }
    let fake = fake.start().await.expect("fake cloud");
    common::stack::install_catalog_rbac(fake.rbac());
    let policies = fake.multi_policies().expect("multus doubles");
    let pool = fake.kubemacpool();
    let pki = fake.linstor_pki().clone();
    let (kube, linstor) = fake.into_parts();
    let client = kube.client();
    let mut network = kubecloud::multus::Multus::builder(client.clone());
    if kubemacpool {
        network = network.kubemacpool();
    }
    let mut storage = linstor_builder(client.clone(), &linstor, &pki).max_replicas(3);
    for (tier, resource_group, _) in FakeCloud::TIERS {
        storage = storage.tier(tier, resource_group);
    }
    let cloud = Cloud::builder()
        .compute(kubecloud::kubevirt::KubeVirt::builder(client.clone()).build())
        .storage(storage.build().expect("LINSTOR backend"))
        .network(network.build())
        .load_balancer(kubecloud::metallb::MetalLb::builder(client).build())
        .build()
        .expect("cloud");
    Stack {
        kube,
        linstor,
        cloud,
        policies,
        kubemacpool: pool,
    }
}

/// What the Multus network cannot do, selected by its capabilities.
const EXPECTED_SKIPS: &[&str] = &["network::external_access"];

macro_rules! group {
    ($test:ident, $run:ident, $prefix:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let s = stack().await;
            let ports = PolicyPorts::new(&s.policies, s.cloud.compute(), s.cloud.network());
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
            let unexpected: Vec<_> = report
                .skipped
                .iter()
                .filter(|(name, _)| !EXPECTED_SKIPS.contains(name))
                .collect();
            assert!(unexpected.is_empty(), "skipped: {unexpected:?}");
        }
    };
}

group!(storage_conforms_with_multus, run_storage, "st");
group!(network_conforms_with_multus, run_network, "nw");
group!(compute_conforms_with_multus, run_compute, "cp");
group!(load_balancing_conforms_with_multus, run_load_balancer, "lb");
group!(tenants_are_isolated_with_multus, run_isolation, "is");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_applied_re_planned_and_destroyed_with_multus() {
    let s = stack().await;
    let acme = s.cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    // On Multus a fixed address is a reservation's (whereabouts takes no requested address).
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| v.with_tier("fast"))
            .collect(),
        ip_reservations: vec![
            IpReservationSpec::new("web", "web").with_ip("10.1.0.10".parse().unwrap()),
        ],
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
    // A reservation's address and MAC stay over live migration (the static attachment).
    let before = web.status.interfaces[0].clone();
    let node = web.status.node.clone().expect("a running VM's node");
    let states = acme.vms().watch("web").await.unwrap();
    acme.vms()
        .migrate("web", &kubecloud::MigrationTarget::AnyNode)
        .await
        .unwrap();
    let after = kubecloud_core::wait::until(
        states,
        kubecloud_core::wait::vm_running_elsewhere(node),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(after.status.interfaces[0].ip, before.ip);
    assert_eq!(after.status.interfaces[0].mac, before.mac);
    acme.destroy(options).await.unwrap();
    let left = left_behind(&s.kube, "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        s.linstor.resource_definitions().is_empty(),
        "LINSTOR volumes left behind: {:?}",
        s.linstor.resource_definitions()
    );
    assert!(acme.plan(&TenantSpec::default()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_kubemacpool_a_vm_keeps_its_pool_mac_over_live_migration() {
    let s = stack_with(true).await;
    let pool = s.kubemacpool.clone().expect("Kubemacpool");
    assert!(s.cloud.capabilities().network.mac_pool);
    let acme = s.cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    // No fixed address: the interface's address is whereabouts', its MAC Kubemacpool's.
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| v.with_tier("fast"))
            .collect(),
        vms: spec
            .vms
            .into_iter()
            .map(|mut vm| {
                for i in &mut vm.interfaces {
                    i.fixed_ip = None;
                }
                vm
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
    let mac = web.status.interfaces[0].mac.expect("a MAC").to_string();
    assert!(pool.in_range(&mac), "{mac} is not Kubemacpool's");
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");
    let node = web.status.node.clone().expect("a running VM's node");
    let states = acme.vms().watch("web").await.unwrap();
    acme.vms()
        .migrate("web", &kubecloud::MigrationTarget::AnyNode)
        .await
        .unwrap();
    let after = kubecloud_core::wait::until(
        states,
        kubecloud_core::wait::vm_running_elsewhere(node),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(after.status.interfaces[0].mac, web.status.interfaces[0].mac);
    assert!(
        pool.allocations()
            .iter()
            .any(|a| a.vm == "web" && a.mac == mac),
        "{:?}",
        pool.allocations()
    );
    acme.destroy(options).await.unwrap();
    let left = left_behind(&s.kube, "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    // The VM's MAC went back to the pool with the VM.
    let mut changes = pool.subscribe();
    tokio::time::timeout(Duration::from_secs(30), async {
        while pool.allocations().iter().any(|a| a.namespace == "acme") {
            changes.changed().await.unwrap();
        }
    })
    .await
    .expect("the MAC released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_macvtap_a_vm_runs_and_live_migration_is_refused_naming_the_binding() {
    let fake = FakeCloud::builder()
        .multus()
        .start()
        .await
        .expect("fake cloud");
    let pki = fake.linstor_pki().clone();
    let (kube, linstor) = fake.into_parts();
    let client = kube.client();
    let mut storage = linstor_builder(client.clone(), &linstor, &pki).max_replicas(3);
    for (tier, resource_group, _) in FakeCloud::TIERS {
        storage = storage.tier(tier, resource_group);
    }
    let cloud = Cloud::builder()
        .compute(kubecloud::kubevirt::KubeVirt::builder(client.clone()).build())
        .storage(storage.build().expect("LINSTOR backend"))
        .network(
            kubecloud::multus::Multus::builder(client.clone())
                .macvtap("eth1")
                .build(),
        )
        .load_balancer(kubecloud::metallb::MetalLb::builder(client).build())
        .build()
        .expect("cloud");
    let acme = cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    // macvtap-cni runs no IPAM: the guest configures its address, so no fixed one here.
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| v.with_tier("fast"))
            .collect(),
        vms: spec
            .vms
            .into_iter()
            .map(|mut vm| {
                for i in &mut vm.interfaces {
                    i.fixed_ip = None;
                }
                vm
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
    let vm = kube
        .cluster()
        .get("kubevirt.io/v1", "VirtualMachine", Some("acme"), "web")
        .unwrap();
    assert_eq!(
        vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["binding"],
        serde_json::json!({"name": "macvtap"})
    );
    let nad = kube
        .cluster()
        .get(
            "k8s.cni.cncf.io/v1",
            "NetworkAttachmentDefinition",
            Some("acme"),
            "web",
        )
        .unwrap();
    assert_eq!(
        nad["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"],
        "macvtap.network.kubevirt.io/eth1"
    );
    let blockers = acme.vms().migration_blockers("web").await.unwrap();
    assert!(
        blockers.contains(&kubecloud::MigrationBlocker::MacvtapBinding {
            interface: "eth0".into()
        }),
        "{blockers:?}"
    );
    let err = acme
        .vms()
        .migrate("web", &kubecloud::MigrationTarget::AnyNode)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kubecloud::Error::Conflict { reason, .. } if reason.contains("macvtap")),
        "{err:?}"
    );
    assert!(
        kube.cluster()
            .list(
                "kubevirt.io/v1",
                "VirtualMachineInstanceMigration",
                Some("acme")
            )
            .unwrap()
            .is_empty(),
        "nothing sent"
    );
    assert!(acme.plan(&spec).await.unwrap().is_empty());
    acme.destroy(options).await.unwrap();
    let left = left_behind(&kube, "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
}
