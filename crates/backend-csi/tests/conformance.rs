//! The shared storage conformance group against the CSI backend on the simulated CSI stack of
//! every driver profile (`kubecloud_testkit::csi`): checks are selected by the capabilities each
//! profile gives, and every skip is named with its reason.

use std::time::Duration;

use kubecloud_core::VolumeMode;
use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_csi::Csi;
use kubecloud_kube::RetryPolicy;
use kubecloud_testkit::csi::{self, CsiDriver, CsiProfile};
use kubecloud_testkit::{CdiController, TestServer};

const NODES: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-2, labels: {kubernetes.io/hostname: node-2}}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: node-3, labels: {kubernetes.io/hostname: node-3}}\n";

struct Env {
    _kube: TestServer,
    driver: CsiDriver,
    backend: Csi,
}

async fn env(profile: CsiProfile) -> Env {
    env_with(csi::CsiInstall::new(profile)).await
}

async fn env_with(install: csi::CsiInstall) -> Env {
    let kube = TestServer::builder()
        .seed_yaml(NODES)
        .controller(CdiController::new())
        .start()
        .await
        .expect("kube double");
    let driver = install.install(&kube).expect("CSI driver");
    let backend = Csi::discover(kube.client(), true)
        .await
        .expect("discover")
        .retry(RetryPolicy {
            max_attempts: 5,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        })
        .delete_timeout(Duration::from_secs(20))
        .build()
        .expect("backend");
    Env {
        _kube: kube,
        driver,
        backend,
    }
}

fn params(env: &Env, tier: Option<&str>) -> Params {
    let tier = tier.or(env.driver.default_class()).map(str::to_string);
    let second = env
        .driver
        .storage_classes()
        .iter()
        .find(|c| Some(*c) != tier.as_ref())
        .cloned();
    // A driver serving filesystems only (CephFS, NFS) is checked with filesystem volumes.
    let mode = if env.backend.tiers().iter().all(|t| !t.profile.block) {
        VolumeMode::Filesystem
    } else {
        VolumeMode::Block
    };
    Params {
        volume_mode: mode,
        tier,
        second_tier: second,
        timeout: Duration::from_secs(20),
        nodes: 3,
        ..Params::default()
    }
}

/// Runs the storage group on `profile`; the skipped checks must be exactly `skipped`, each
/// with a reason.
async fn storage_group(profile: CsiProfile, skipped: &[&str]) {
    storage_group_on(env(profile).await, profile, None, skipped).await;
}

async fn storage_group_on(env: Env, profile: CsiProfile, tier: Option<&str>, skipped: &[&str]) {
    let target = Target {
        storage: Some(&env.backend),
        ..Target::default()
    };
    let report = conformance::run_storage(&target, profile.short_name(), &params(&env, tier)).await;
    eprintln!("{profile:?}:\n{report}");
    let names: Vec<&str> = report.skipped.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, skipped, "{profile:?}: {report:?}");
    assert!(
        report.skipped.iter().all(|(_, why)| !why.is_empty()),
        "every skip has its reason: {report:?}"
    );
    assert!(
        env.driver.volumes().is_empty(),
        "{profile:?}: nothing left on the driver: {:?}",
        env.driver.volumes()
    );
}

/// Needs a VM using the volume (the whole-stack runs have one).
const NO_COMPUTE: &str = "storage::delete_in_use_needs_force";
/// Where a driver keeps its copies is not visible in Kubernetes (capability
/// `replica_placement`), or the tier gives one copy.
const PLACEMENT: &str = "storage::replicas_on_distinct_nodes";
/// The driver has one class (tier) only.
const ONE_TIER: &str = "storage::second_tier_used";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceph_rbd() {
    storage_group(CsiProfile::CephRbd, &[PLACEMENT, NO_COMPUTE]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceph_fs() {
    storage_group(CsiProfile::CephFs, &[PLACEMENT, ONE_TIER, NO_COMPUTE]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn longhorn() {
    storage_group(CsiProfile::Longhorn, &[PLACEMENT, NO_COMPUTE]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mayastor() {
    // Mayastor restores snapshots but clones no volume.
    storage_group(
        CsiProfile::Mayastor,
        &[PLACEMENT, "storage::clone_copies_a_volume", NO_COMPUTE],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_pv_lvm() {
    // LocalPV-LVM's classes bind on first use (WaitForFirstConsumer): a claim is provisioned
    // when the VM's pod is scheduled, and an import only then. The suite, which runs no VM,
    // uses a class of the driver with Immediate binding (LocalPV-LVM serves both); the
    // WaitForFirstConsumer classes are the second tier. No snapshot is restored on LVM and
    // no volume cloned; one copy.
    let install = csi::CsiInstall::new(CsiProfile::LocalPvLvm).class(serde_json::json!({
        "metadata": {"name": "openebs-lvmpv-immediate"},
        "parameters": {"storage": "lvm", "volgroup": "lvmvg"},
        "allowVolumeExpansion": true,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }));
    storage_group_on(
        env_with(install).await,
        CsiProfile::LocalPvLvm,
        Some("openebs-lvmpv-immediate"),
        &[
            PLACEMENT,
            "storage::snapshots_and_restore",
            "storage::clone_copies_a_volume",
            NO_COMPUTE,
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn democratic_iscsi() {
    storage_group(
        CsiProfile::DemocraticIscsi,
        &[PLACEMENT, ONE_TIER, NO_COMPUTE],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn democratic_nfs() {
    storage_group(
        CsiProfile::DemocraticNfs,
        &[PLACEMENT, ONE_TIER, NO_COMPUTE],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn democratic_nvmeof() {
    storage_group(
        CsiProfile::DemocraticNvmeof,
        &[PLACEMENT, ONE_TIER, NO_COMPUTE],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generic() {
    // An unknown driver: its one class allows no expansion, no VolumeSnapshotClass of it
    // exists, and clones are not visible in Kubernetes.
    storage_group(
        CsiProfile::Generic,
        &[
            PLACEMENT,
            ONE_TIER,
            "storage::resize_grows_only",
            "storage::snapshots_and_restore",
            "storage::clone_copies_a_volume",
            NO_COMPUTE,
        ],
    )
    .await;
}
