//! Prints how many imports booting N VMs (default 100) from one catalog image causes on the
//! whole stack of doubles (KubeVirt + CDI, LINSTOR, Kube-OVN, MetalLB), counted at the simulated
//! CDI: the image is imported once into the catalog namespace and every boot disk is a clone.
//!
//! ```text
//! cargo run --release --all-features --example catalog_bench
//! cargo run --release --all-features --example catalog_bench -- --vms 300 --concurrency 16
//! ```
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

#[path = "../tests/common/stack.rs"]
mod stack;

#[path = "../tests/common/catalog.rs"]
mod catalog;

use std::time::Duration;

use kubecloud_testkit::Latency;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> kubecloud::Result<()> {
    let vms = arg("--vms", 100);
    let concurrency = arg("--concurrency", 8);
    let s = stack::stack(Latency::None, 0).await;
    let figures = catalog::boot_from_catalog(
        &s.cloud,
        &s.cdi,
        "bench",
        vms,
        concurrency,
        Duration::from_secs(600),
    )
    .await?;
    println!(
        "{vms} VMs booted from catalog image {:?}: {} import(s) at the CDI double (one expected), {:.1}s",
        catalog::IMAGE,
        figures.imports,
        figures.elapsed.as_secs_f64()
    );
    Ok(())
}
