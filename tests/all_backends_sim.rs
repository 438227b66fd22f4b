//! The whole stack on a plain API double, with the simulated controllers running as they would
//! on kind or k3s: through `kube::Client` over HTTP (`kubecloud_testkit::sim`, the engine of the
//! `kubecloud-sim` binary), not inside the double. The double runs only what a real control plane
//! has (CRD establishment, garbage collector, namespace deletion, PVC protection); the simulation
//! installs the CRDs from the testkit's bundle, starts the LINSTOR double and applies Piraeus'
//! objects, then the KubeVirt + CDI, Kube-OVN, MetalLB and LINSTOR CSI controllers watch and
//! write over HTTP. The shared conformance groups must pass as they do on the in-process stack
//! (`tests/all_backends.rs`). The binary itself is run against the double by
//! `crates/testkit/tests/sim_binary.rs`.
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
use common::stack::cloud_on;
use kubecloud::Cloud;
use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_testkit::sim::{SimOptions, Simulation};
use kubecloud_testkit::{
    FakeCloud, GarbageCollector, KubeVirtController, NamespaceController, PvcProtection, TestServer,
};

/// The API double as a bare control plane, the simulation on it over HTTP, the backends.
struct SimStack {
    kube: TestServer,
    sim: Simulation,
    cloud: Cloud,
}

async fn sim_stack() -> SimStack {
    let nodes = KubeVirtController::new()
        .with_nodes(&FakeCloud::NODES)
        .node_manifests();
    let kube = TestServer::builder()
        .without_default_controllers()
        .controller(GarbageCollector)
        .controller(NamespaceController)
        .controller(PvcProtection)
        .seed_yaml(&nodes)
        .start()
        .await
        .expect("API double");
    let options = SimOptions {
        install_crds: true,
        ..SimOptions::default()
    };
    common::stack::install_catalog_rbac(&options.rbac);
    let sim = Simulation::start(kube.client(), options)
        .await
        .expect("simulation");
    let linstor = sim.linstor().expect("LINSTOR double");
    let cloud = cloud_on(&kube, linstor, sim.linstor_pki());
    SimStack { kube, sim, cloud }
}

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
    ($test:ident, $run:ident, $prefix:literal, $manager:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let s = sim_stack().await;
            let ovn = s.sim.ovn_northbound().expect("Kube-OVN simulated");
            let ports = OvnPorts::new(&ovn, &s.cloud);
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
            let skipped: Vec<_> = report.skipped.iter().collect();
            assert!(skipped.is_empty(), "skipped: {skipped:?}");
            // The group's controller really ran over HTTP: its writes are in the double's
            // request log (in-process writes are not), under its own field manager.
            let manager = format!("fieldManager={}", $manager);
            let writes = s
                .kube
                .requests()
                .count_where(|r| r.query.contains(&manager) && r.status.is_some_and(|c| c < 300));
            assert!(writes > 0, "no successful write by {} over HTTP", $manager);
        }
    };
}

group!(
    storage_conforms_with_remote_controllers,
    run_storage,
    "st",
    "linstor-csi"
);
group!(
    network_conforms_with_remote_controllers,
    run_network,
    "nw",
    "kube-ovn-controller"
);
group!(
    compute_conforms_with_remote_controllers,
    run_compute,
    "cp",
    "virt-controller"
);
group!(
    load_balancing_conforms_with_remote_controllers,
    run_load_balancer,
    "lb",
    "metallb-controller"
);
group!(
    tenants_are_isolated_with_remote_controllers,
    run_isolation,
    "is",
    "kube-ovn-controller"
);
