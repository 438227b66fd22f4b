//! Prints how long planning, applying and destroying a 10,000-object tenant takes on the
//! in-memory cloud, and the process's peak memory. Targets (issue 8): plan of a 10,000-object
//! tenant within 50 ms of CPU and 100 MB of memory.
//!
//! ```text
//! cargo run --release --example plan_bench
//! ```
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::{Duration, Instant};

use kubecloud::{
    ApplyOptions, Cloud, NetworkInterface, Result, SubnetSpec, TenantSpec, VmSpec, VpcSpec,
};

const VMS: usize = 9_998;

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

// One thread: wall time is CPU time.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let spec = TenantSpec {
        vpcs: vec![VpcSpec::named("main")],
        subnets: vec![SubnetSpec::new(
            "web",
            "main",
            "10.0.0.0/16".parse().unwrap(),
        )],
        vms: (0..VMS)
            .map(|i| VmSpec {
                name: format!("vm-{i}"),
                interfaces: vec![NetworkInterface::on_subnet("eth0", "web")],
                ..VmSpec::default()
            })
            .collect(),
        ..TenantSpec::default()
    };
    let acme = Cloud::in_memory().tenant("acme")?;
    let options = ApplyOptions {
        concurrency: 256,
        timeout: Duration::from_secs(60),
        ..ApplyOptions::default()
    };

    let started = Instant::now();
    let plan = acme.plan(&spec).await?;
    let plan_fresh = started.elapsed();

    let started = Instant::now();
    acme.apply(&plan, options).await?;
    let apply = started.elapsed();

    let started = Instant::now();
    let again = acme.plan(&spec).await?;
    let plan_noop = started.elapsed();
    assert!(again.is_empty());

    let started = Instant::now();
    acme.destroy(options).await?;
    let destroy = started.elapsed();

    println!(
        "tenant of {} objects on the in-memory cloud (one thread):",
        spec.len()
    );
    println!("  plan, nothing exists yet:      {plan_fresh:?} (target: 50ms)");
    println!("  apply (waiting for every VM):  {apply:?}");
    println!("  plan again, everything exists: {plan_noop:?} (target: 50ms)");
    println!("  destroy:                       {destroy:?}");
    if let Some(mib) = peak_rss_mib() {
        println!("  peak memory of the process:    {mib:.0} MiB (target for plan: 100 MB)");
    }
    Ok(())
}
