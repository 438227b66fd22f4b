//! The whole stack with storage on a CSI driver instead of LINSTOR: KubeVirt + CDI, the CSI
//! backend (Ceph RBD profile of the simulated CSI stack), Kube-OVN and MetalLB, connected with
//! `Cloud::connect_with` (no LinstorCluster: storage is the CSI backend's), running every
//! conformance group and a tenant plan/apply/destroy; live migration on RWX block, and refused
//! with the reason on a driver without RWX block (Mayastor).
#![cfg(feature = "kubernetes")]

mod common {
    pub mod ports;
    pub mod stack;
}

use std::time::Duration;

use common::ports::OvnPorts;
use common::stack::left_behind;
use kubecloud::{
    AccessMode, ApplyOptions, ByteSize, Cloud, ConnectOptions, Error, TenantSpec, VolumeSpec,
};
use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_testkit::FakeCloud;
use kubecloud_testkit::csi::CsiProfile;

fn params() -> Params {
    Params {
        tier: Some("ceph-block".into()),
        second_tier: Some("ceph-block-2x".into()),
        timeout: Duration::from_secs(30),
        nodes: 3,
        ..Params::default()
    }
}

async fn stack(profile: CsiProfile) -> (FakeCloud, Cloud) {
    let fake = FakeCloud::builder()
        .csi(profile)
        .start()
        .await
        .expect("fake cloud");
    common::stack::install_catalog_rbac(fake.rbac());
    let cloud = Cloud::connect_with(fake.kube().client(), ConnectOptions::new())
        .await
        .expect("connect");
    assert_eq!(
        cloud.backend_names()[1],
        "csi",
        "no LinstorCluster: CSI storage"
    );
    (fake, cloud)
}

/// Checks no group may skip but for what Kubernetes does not show of a CSI driver (where its
/// replicas are).
const EXPECTED_SKIPS: &[&str] = &["storage::replicas_on_distinct_nodes"];

macro_rules! group {
    ($test:ident, $run:ident, $prefix:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let (fake, cloud) = stack(CsiProfile::CephRbd).await;
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
                .filter(|(name, _)| !EXPECTED_SKIPS.contains(name))
                .collect();
            assert!(unexpected.is_empty(), "skipped: {unexpected:?}");
        }
    };
}

group!(storage_conforms_on_ceph_rbd, run_storage, "st");
group!(network_conforms_with_csi_storage, run_network, "nw");
group!(compute_conforms_on_ceph_rbd, run_compute, "cp");
group!(
    load_balancing_conforms_with_csi_storage,
    run_load_balancer,
    "lb"
);
group!(tenants_are_isolated_with_csi_storage, run_isolation, "is");

fn options() -> ApplyOptions {
    ApplyOptions {
        timeout: Duration::from_secs(30),
        ..ApplyOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_applied_re_planned_and_destroyed_on_ceph_rbd() {
    let (fake, cloud) = stack(CsiProfile::CephRbd).await;
    let acme = cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    // The Ceph classes state no replica count (a pool property): one copy is what they promise.
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| v.with_tier("ceph-block").with_replicas(1))
            .collect(),
        ..spec
    };
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    let web = acme.vms().get("web").await.unwrap();
    assert_eq!(
        web.status.interfaces[0].ip,
        Some("10.1.0.10".parse().unwrap())
    );
    let driver = fake.csi().expect("CSI driver");
    assert_eq!(
        driver.volumes().len(),
        1,
        "the web-root volume on the driver"
    );
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");
    // RWX block on Ceph RBD: the VM live-migrates.
    let blockers = acme.vms().migration_blockers("web").await.unwrap();
    assert!(blockers.is_empty(), "{blockers:?}");
    acme.destroy(options()).await.unwrap();
    let left = left_behind(fake.kube(), "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(
        driver.volumes().is_empty(),
        "volumes left on the driver: {:?}",
        driver.volumes()
    );
    assert!(acme.plan(&TenantSpec::default()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_driver_without_rwx_block_live_migration_is_refused_with_the_reason() {
    let (_fake, cloud) = stack(CsiProfile::Mayastor).await;
    assert!(!cloud.capabilities().storage.rwx_block);
    let acme = cloud.tenant("acme").unwrap();
    let rwx = VolumeSpec::blank("disk", ByteSize::gib(1)).with_access(AccessMode::ReadWriteMany);
    let err = acme.volumes().create(&rwx).await.unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { capability, .. } if capability == "rwx_block"),
        "{err:?}"
    );
    // A VM on its RWO disk runs, and is told why it cannot migrate.
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| v.with_access(AccessMode::ReadWriteOnce).with_replicas(1))
            .collect(),
        ..spec
    };
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    let blockers = acme.vms().migration_blockers("web").await.unwrap();
    let text = format!("{blockers:?}");
    assert!(!blockers.is_empty() && text.contains("web-root"), "{text}");
    let err = acme
        .vms()
        .migrate("web", &kubecloud::MigrationTarget::AnyNode)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("web-root"), "{err}");
    acme.destroy(options()).await.unwrap();
}

/// A tenant on `profile`'s `tier` with its volume as asked: applied (the VM runs on it),
/// re-planned empty, destroyed with nothing left in Kubernetes or on the driver; the VM
/// migrates exactly when its volume is RWX block.
async fn tenant_round_trip(profile: CsiProfile, tier: &str, replicas: u8, access: AccessMode) {
    let (fake, cloud) = stack(profile).await;
    let acme = cloud.tenant("acme").unwrap();
    let spec = TenantSpec::from_yaml(include_str!("../examples/data/acme.yaml")).unwrap();
    let spec = TenantSpec {
        volumes: spec
            .volumes
            .into_iter()
            .map(|v| {
                v.with_tier(tier)
                    .with_replicas(replicas)
                    .with_access(access)
            })
            .collect(),
        ..spec
    };
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    let driver = fake.csi().expect("CSI driver");
    let on_driver = driver.volumes();
    assert_eq!(on_driver.len(), 1, "{on_driver:?}");
    assert_eq!(on_driver[0].replicas, u32::from(replicas), "{on_driver:?}");
    let again = acme.plan(&spec).await.unwrap();
    assert!(again.is_empty(), "re-applying is a no-op:\n{again}");
    let blockers = acme.vms().migration_blockers("web").await.unwrap();
    assert_eq!(
        blockers.is_empty(),
        access == AccessMode::ReadWriteMany,
        "{blockers:?}"
    );
    acme.destroy(options()).await.unwrap();
    let left = left_behind(fake.kube(), "acme");
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(driver.volumes().is_empty(), "{:?}", driver.volumes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longhorn_gives_a_migratable_two_replica_disk_through_a_derived_class() {
    // Tier `longhorn` has 3 replicas and is not migratable: a class with numberOfReplicas 2 and
    // migratable "true" is derived for the VM's RWX block disk.
    tenant_round_trip(
        CsiProfile::Longhorn,
        "longhorn",
        2,
        AccessMode::ReadWriteMany,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_runs_on_a_local_lvm_disk_bound_on_first_use() {
    tenant_round_trip(
        CsiProfile::LocalPvLvm,
        "openebs-lvmpv",
        1,
        AccessMode::ReadWriteOnce,
    )
    .await;
}
