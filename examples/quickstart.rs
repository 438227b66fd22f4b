//! The kubecloud quickstart, on the embedded in-memory cloud (no cluster needed):
//! a tenant with a VPC and a subnet, two VMs booting from replicated RWX block volumes with
//! fixed IPs, exposed through a load balancer; one VM live-migrates; a table shows the result;
//! everything is torn down.
//!
//! ```text
//! cargo run --example quickstart
//! ```
#![allow(
    clippy::print_stdout,
    reason = "an example prints its result for a person"
)]

use std::net::IpAddr;
use std::time::{Duration, Instant};

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use kubecloud::{
    AccessMode, AddressBlock, AddressPoolSpec, BootDisk, ByteSize, Cloud, CloudInit, ExposureSpec,
    Labels, MigrationTarget, NetworkInterface, Result, ServicePort, SubnetSpec, TenantHandle,
    VmResources, VmSpec, VolumeMode, VolumeSource, VolumeSpec, VpcSpec, wait,
};

const TIMEOUT: Duration = Duration::from_secs(10);
const IMAGE: &str = "https://download.fedoraproject.org/pub/fedora/linux/releases/40/Cloud/x86_64/images/Fedora-Cloud-Base-Generic.x86_64-40-1.14.qcow2";

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let started = Instant::now();
    let cloud = Cloud::in_memory();
    let acme = cloud.tenant("acme")?;

    // A VPC and a subnet.
    acme.network().create_vpc(&VpcSpec::named("main")).await?;
    acme.network()
        .create_subnet(&SubnetSpec::new(
            "web",
            "main",
            "10.10.0.0/24".parse().unwrap(),
        ))
        .await?;

    // Two replicated, read-write-many block volumes imported from a cloud image, so the VMs
    // can live-migrate.
    let vms = [("web-1", "10.10.0.11"), ("web-2", "10.10.0.12")];
    for (vm, _) in vms {
        let root = VolumeSpec::blank(format!("{vm}-root"), ByteSize::gib(10))
            .with_replicas(2)
            .with_access(AccessMode::ReadWriteMany)
            .with_mode(VolumeMode::Block)
            .with_source(VolumeSource::Import { url: IMAGE.into() });
        acme.volumes().create(&root).await?;
    }
    for (vm, _) in vms {
        acme.volumes()
            .wait_ready(&format!("{vm}-root"), TIMEOUT)
            .await?;
    }

    // Two VMs with fixed IPs, labelled for the load balancer.
    for (vm, ip) in vms {
        let spec = VmSpec {
            name: vm.into(),
            resources: VmResources::Custom {
                cpu_cores: 2,
                memory: ByteSize::gib(4),
            },
            boot_disk: BootDisk::Volume {
                volume: format!("{vm}-root"),
            },
            interfaces: vec![
                NetworkInterface::on_subnet("eth0", "web").with_fixed_ip(ip.parse().unwrap()),
            ],
            cloud_init: Some(CloudInit {
                ssh_keys: vec![
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKubecloudQuickstartExampleKey quickstart"
                        .into(),
                ],
                ..CloudInit::default()
            }),
            labels: Labels::from([("app".into(), "web".into())]),
            ..VmSpec::default()
        };
        acme.vms().apply(&spec).await?;
    }
    for (vm, _) in vms {
        acme.vms().wait_running(vm, TIMEOUT).await?;
    }

    // One external address in front of both.
    let pool = AddressPoolSpec {
        // Skip .0 and .255, which some old clients mishandle.
        avoid_buggy_ips: true,
        ..AddressPoolSpec::l2(
            "public",
            vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())],
        )
    };
    acme.load_balancer().create_pool(&pool).await?;
    acme.load_balancer()
        .expose(&ExposureSpec::new(
            "web",
            [("app", "web")],
            vec![ServicePort::tcp(80), ServicePort::tcp(443)],
        ))
        .await?;
    let exposure = acme.load_balancer().wait_assigned("web", TIMEOUT).await?;

    // Live-migrate web-1: it lands on another node and keeps its IP.
    let before = acme.vms().get("web-1").await?;
    let migration = acme
        .vms()
        .migrate("web-1", &MigrationTarget::AnyNode)
        .await?;
    let after = acme
        .vms()
        .wait(
            "web-1",
            wait::vm_running_elsewhere(migration.source_node.clone()),
            TIMEOUT,
        )
        .await?;
    assert_eq!(
        first_ip(&before.status),
        first_ip(&after.status),
        "the IP survives migration"
    );
    println!(
        "live-migrated web-1 from {} to {}",
        migration.source_node,
        after.status.node.as_deref().unwrap_or("?")
    );

    print_table(&acme, exposure.ip).await?;
    teardown(&acme, &vms).await?;
    println!("done in {:.0?}", started.elapsed());
    Ok(())
}

fn first_ip(status: &kubecloud::VmStatus) -> Option<IpAddr> {
    status.interfaces.first().and_then(|i| i.ip)
}

async fn print_table(acme: &TenantHandle, lb_ip: Option<IpAddr>) -> Result<()> {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["VM", "PHASE", "NODE", "IP", "VOLUME", "REPLICAS", "LB IP"]);
    for vm in acme.vms().list(&Labels::new()).await? {
        let volume_name = vm.spec.volumes().first().cloned().unwrap_or_default();
        let volume = acme.volumes().get(&volume_name).await?;
        let replicas: Vec<String> = volume
            .status
            .replicas
            .iter()
            .map(|r| format!("{} ({:?})", r.node, r.state))
            .collect();
        table.add_row([
            vm.spec.name.clone(),
            vm.status.phase.to_string(),
            vm.status.node.clone().unwrap_or_default(),
            first_ip(&vm.status)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
            volume_name,
            replicas.join(", "),
            lb_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        ]);
    }
    println!("{table}");
    Ok(())
}

async fn teardown(acme: &TenantHandle, vms: &[(&str, &str)]) -> Result<()> {
    acme.load_balancer().release("web").await?;
    acme.load_balancer().delete_pool("public").await?;
    for (vm, _) in vms {
        acme.vms().delete(vm).await?;
        acme.volumes().delete(&format!("{vm}-root"), false).await?;
    }
    acme.network().delete_subnet("web").await?;
    acme.network().delete_vpc("main").await?;
    Ok(())
}
