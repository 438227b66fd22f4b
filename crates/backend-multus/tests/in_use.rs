//! A reservation a VM rides is not released: refused with `Conflict` naming the VM, whether
//! the VM runs or is stopped; released once the VM is gone.

use std::time::Duration;

use kubecloud_core::{
    Compute, Error, IpReservationSpec, Network, NetworkInterface, ResourceKind, RunStrategy,
    SubnetSpec, Tenant, VmAttachments, VmSpec, VpcSpec, wait,
};
use kubecloud_kubevirt::KubeVirt;
use kubecloud_multus::Multus;
use kubecloud_testkit::{KubeVirtController, TestServer, WhereaboutsController};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn releasing_a_reservation_a_vm_rides_is_refused_naming_the_vm() {
    let server = TestServer::builder()
        .controller(KubeVirtController::new().with_multus())
        .controller(WhereaboutsController::default())
        .start()
        .await
        .expect("server");
    let compute = KubeVirt::builder(server.client()).build();
    let network = Multus::builder(server.client()).build();
    let t = Tenant::new("in-use").unwrap();
    network
        .create_vpc(&t, &VpcSpec::named("main"))
        .await
        .unwrap();
    network
        .create_subnet(
            &t,
            &SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap()),
        )
        .await
        .unwrap();
    let ip = "10.1.0.10".parse().unwrap();
    network
        .reserve_ip(&t, &IpReservationSpec::new("web", "front").with_ip(ip))
        .await
        .unwrap();
    let mut spec = VmSpec {
        name: "web".into(),
        interfaces: vec![NetworkInterface::on_subnet("eth0", "front").with_fixed_ip(ip)],
        ..VmSpec::default()
    };
    let attachments = VmAttachments::resolve(&t, &spec, Some(&network), None)
        .await
        .unwrap();
    compute.apply_vm(&t, &spec, &attachments).await.unwrap();
    let states = compute.watch_vm(&t, "web").await.unwrap();
    wait::until(states, wait::vm_running(), Duration::from_secs(20))
        .await
        .unwrap();

    let refused = |err: Error| match err {
        Error::Conflict { kind, name, reason } => {
            assert_eq!((kind, name.as_str()), (ResourceKind::IpReservation, "web"));
            assert!(reason.contains("web"), "{reason}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    };
    refused(network.release_ip(&t, "web").await.unwrap_err());
    // Stopped, the VM still rides it (it gets it back when started).
    spec.run_strategy = RunStrategy::Halted;
    compute.apply_vm(&t, &spec, &attachments).await.unwrap();
    refused(network.release_ip(&t, "web").await.unwrap_err());
    assert_eq!(network.get_ip(&t, "web").await.unwrap().ip, ip, "kept");

    // Deleting a VM waits until it and its pods are gone (foreground).
    compute.delete_vm(&t, "web").await.unwrap();
    network.release_ip(&t, "web").await.unwrap();
    assert!(network.get_ip(&t, "web").await.unwrap_err().is_not_found());
}
