//! The in-memory cloud stays correct at scale: 10,000 VMs (container disk, one dynamic address
//! on a subnet) created and deleted, every address distinct and every address given back.
//! (How fast: `cargo run --release -p kubecloud-memory --example scale`.)

use kubecloud_core::{Compute, Network, NetworkInterface, SubnetSpec, Tenant, VmSpec, VpcSpec};
use kubecloud_memory::MemoryCloud;

const VMS: usize = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_vms_get_distinct_addresses_and_give_them_all_back() {
    let cloud = MemoryCloud::new();
    let t = Tenant::new("scale").unwrap();
    cloud.create_vpc(&t, &VpcSpec::named("main")).await.unwrap();
    let subnet = SubnetSpec::new("front", "main", "10.0.0.0/16".parse().unwrap());
    cloud.create_subnet(&t, &subnet).await.unwrap();
    let specs: Vec<VmSpec> = (0..VMS)
        .map(|i| VmSpec {
            name: format!("vm-{i}"),
            interfaces: vec![NetworkInterface::on_subnet("eth0", "front")],
            ..VmSpec::default()
        })
        .collect();

    let mut ips = std::collections::HashSet::new();
    for spec in &specs {
        let vm = cloud.apply_vm_resolved(&t, spec).await.unwrap();
        assert!(ips.insert(vm.status.interfaces[0].ip.unwrap()));
    }
    assert_eq!(
        cloud.get_subnet(&t, "front").await.unwrap().used,
        VMS as u128
    );
    for spec in &specs {
        cloud.delete_vm(&t, &spec.name).await.unwrap();
    }
    assert_eq!(cloud.get_subnet(&t, "front").await.unwrap().used, 0);
}
