//! Prints how long the in-memory cloud takes to create and delete 10,000 VMs (container disk,
//! one dynamic address on a subnet). The target is 100 ms in release.
//!
//! ```text
//! cargo run --release -p kubecloud-memory --example scale
//! ```
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::Instant;

use kubecloud_core::{Compute, Network, NetworkInterface, SubnetSpec, Tenant, VmSpec, VpcSpec};
use kubecloud_memory::MemoryCloud;

const VMS: usize = 10_000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> kubecloud_core::Result<()> {
    let cloud = MemoryCloud::new();
    let t = Tenant::new("scale")?;
    cloud.create_vpc(&t, &VpcSpec::named("main")).await?;
    cloud
        .create_subnet(
            &t,
            &SubnetSpec::new("front", "main", "10.0.0.0/16".parse().unwrap()),
        )
        .await?;
    let specs: Vec<VmSpec> = (0..VMS)
        .map(|i| VmSpec {
            name: format!("vm-{i}"),
            interfaces: vec![NetworkInterface::on_subnet("eth0", "front")],
            ..VmSpec::default()
        })
        .collect();
    let started = Instant::now();
    for spec in &specs {
        cloud.apply_vm_resolved(&t, spec).await?;
    }
    let created = started.elapsed();
    for spec in &specs {
        cloud.delete_vm(&t, &spec.name).await?;
    }
    let total = started.elapsed();
    println!(
        "{VMS} VMs: created in {created:?}, created and deleted in {total:?} (target: 100ms in release)"
    );
    Ok(())
}
