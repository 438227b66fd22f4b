//! Security groups in force on VM interfaces: the shared conformance check
//! `security_groups_in_force_on_ports` with KubeVirt compute and the Multus network, asked of
//! the simulated multi-network policy controller ("would this packet be let through").

use std::time::Duration;

use kubecloud_core::Tenant;
use kubecloud_core::conformance::{self, Outcome, Params, Target};
use kubecloud_multus::Multus;
use kubecloud_testkit::{
    KubeVirtController, MultiNetworkPolicyController, TestServer, WhereaboutsController,
};

/// The probe the whole-stack Multus tests use too.
#[path = "../../../tests/common/multus_ports.rs"]
mod multus_ports;
use multus_ports::PolicyPorts;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_are_in_force_on_vm_interfaces() {
    let policies = MultiNetworkPolicyController::default();
    let view = policies.policies();
    let server = TestServer::builder()
        .controller(KubeVirtController::new().with_multus())
        .controller(WhereaboutsController::default())
        .controller(policies)
        .start()
        .await
        .expect("server");
    let compute = kubecloud_kubevirt::KubeVirt::builder(server.client()).build();
    let network = Multus::builder(server.client()).build();
    let probe = PolicyPorts::new(&view, &compute, &network);
    let target = Target {
        compute: Some(&compute),
        network: Some(&network),
        ports: Some(&probe),
        ..Target::default()
    };
    let params = Params {
        timeout: Duration::from_secs(20),
        ..Params::default()
    };
    let tenant = Tenant::new("sg-multus").unwrap();
    let outcome =
        conformance::ports::security_groups_in_force_on_ports(&target, &tenant, &params).await;
    assert_eq!(outcome, Outcome::Passed);
}
