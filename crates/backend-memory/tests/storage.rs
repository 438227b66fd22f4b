//! Storage rules of the in-memory cloud: replica placement and per-node capacity, tiers,
//! population phases, clones, restores, resizes, snapshots that block deletion, deletion of
//! volumes in use.

use std::time::Duration;

use futures::StreamExt;
use kubecloud_core::{
    AccessMode, BlockStorage, ByteSize, Compute, Error, Labels, PowerAction, ReplicaState,
    ResourceKind, RunStrategy, Tenant, VmPhase, VmSpec, Volume, VolumeMode, VolumePhase,
    VolumeSource, VolumeSpec, wait,
};
use kubecloud_memory::MemoryCloud;

const WAIT: Duration = Duration::from_secs(10);

fn acme() -> Tenant {
    Tenant::new("acme").unwrap()
}

fn small_cloud() -> MemoryCloud {
    MemoryCloud::builder()
        .nodes(3)
        .storage_pool("standard", ByteSize::gib(10))
        .storage_pool("fast", ByteSize::gib(4))
        .build()
}

async fn ready(cloud: &MemoryCloud, tenant: &Tenant, name: &str) -> Volume {
    wait::until(
        cloud.watch_volume(tenant, name).await.unwrap(),
        wait::volume_ready(),
        WAIT,
    )
    .await
    .unwrap()
}

fn nodes_of(volume: &Volume) -> Vec<&str> {
    volume
        .status
        .replicas
        .iter()
        .map(|r| r.node.as_str())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn replicas_go_to_distinct_nodes_with_the_most_free_space() {
    let cloud = small_cloud();
    let tenant = acme();
    let a = cloud
        .create_volume(
            &tenant,
            &VolumeSpec::blank("a", ByteSize::gib(4)).with_replicas(2),
        )
        .await
        .unwrap();
    assert_eq!(
        nodes_of(&a),
        vec!["node-1", "node-2"],
        "ties go in node order"
    );
    let b = cloud
        .create_volume(&tenant, &VolumeSpec::blank("b", ByteSize::gib(1)))
        .await
        .unwrap();
    assert_eq!(nodes_of(&b), vec!["node-3"], "the emptiest node");
    let c = cloud
        .create_volume(
            &tenant,
            &VolumeSpec::blank("c", ByteSize::gib(1)).with_replicas(3),
        )
        .await
        .unwrap();
    let mut nodes = nodes_of(&c);
    nodes.sort();
    assert_eq!(nodes, vec!["node-1", "node-2", "node-3"]);
    assert!(
        c.status
            .replicas
            .iter()
            .all(|r| r.state == ReplicaState::Inconsistent)
    );
    let c = ready(&cloud, &tenant, "c").await;
    assert!(
        c.status
            .replicas
            .iter()
            .all(|r| r.state == ReplicaState::UpToDate)
    );
}

#[tokio::test(start_paused = true)]
async fn exhaustion_is_reported_before_anything_is_created() {
    let cloud = small_cloud();
    let tenant = acme();
    let pools_before = BlockStorage::list_pools(&cloud, &tenant).await.unwrap();
    let too_many = VolumeSpec::blank("v", ByteSize::gib(1)).with_replicas(4);
    let too_big = VolumeSpec::blank("v", ByteSize::gib(11));
    for spec in [too_many, too_big] {
        let err = cloud.create_volume(&tenant, &spec).await.unwrap_err();
        assert!(
            matches!(
                &err,
                Error::Exhausted {
                    kind: ResourceKind::StoragePool,
                    ..
                }
            ),
            "{err}"
        );
    }
    // 3 x 8Gi fills every node but 2Gi; 2 replicas of 3Gi no longer fit anywhere.
    for i in 0..3 {
        let spec = VolumeSpec::blank(format!("big-{i}"), ByteSize::gib(8));
        cloud.create_volume(&tenant, &spec).await.unwrap();
    }
    let err = cloud
        .create_volume(
            &tenant,
            &VolumeSpec::blank("more", ByteSize::gib(3)).with_replicas(2),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Exhausted { .. }), "{err}");
    assert!(
        cloud
            .get_volume(&tenant, "more")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let pools = BlockStorage::list_pools(&cloud, &tenant).await.unwrap();
    assert_eq!(pools[0].capacity, ByteSize::gib(30));
    assert_eq!(pools[0].free, ByteSize::gib(6));
    assert_eq!(pools[1], pools_before[1], "the other tier is untouched");
}

#[tokio::test(start_paused = true)]
async fn tiers_are_named_and_unknown_ones_are_listed() {
    let cloud = small_cloud();
    let tenant = acme();
    let err = cloud
        .create_volume(
            &tenant,
            &VolumeSpec::blank("v", ByteSize::gib(1)).with_tier("gold"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("tier"));
    assert!(err.to_string().contains("standard, fast"), "{err}");
    cloud
        .create_volume(
            &tenant,
            &VolumeSpec::blank("v", ByteSize::gib(1)).with_tier("fast"),
        )
        .await
        .unwrap();
    let pools = BlockStorage::list_pools(&cloud, &tenant).await.unwrap();
    let fast = pools.iter().find(|p| p.name == "fast").unwrap();
    assert_eq!(fast.free, ByteSize::gib(11));
    assert!(!fast.default);
    let err = cloud
        .create_volume(&tenant, &VolumeSpec::blank("v", ByteSize::gib(1)))
        .await
        .unwrap_err();
    assert!(err.is_already_exists(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn rwx_block_and_rwx_filesystem_are_both_allowed() {
    let cloud = MemoryCloud::new();
    for (name, mode) in [("blk", VolumeMode::Block), ("fs", VolumeMode::Filesystem)] {
        let spec = VolumeSpec::blank(name, ByteSize::gib(1))
            .with_mode(mode)
            .with_access(AccessMode::ReadWriteMany);
        cloud.create_volume(&acme(), &spec).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn an_import_populates_with_progress_then_is_ready() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    let spec = VolumeSpec::blank("img", ByteSize::gib(1)).with_source(VolumeSource::Import {
        url: "https://images.example.com/f.qcow2".into(),
    });
    let created = cloud.create_volume(&tenant, &spec).await.unwrap();
    assert_eq!(created.status.phase, VolumePhase::Pending);
    let states: Vec<Volume> = cloud
        .watch_volume(&tenant, "img")
        .await
        .unwrap()
        .map(|v| v.unwrap())
        .take_while(|v| {
            let done = v.status.phase == VolumePhase::Ready;
            async move { !done }
        })
        .collect()
        .await;
    let progress: Vec<Option<u8>> = states.iter().map(|v| v.status.progress).collect();
    assert_eq!(
        progress,
        vec![None, Some(0), Some(25), Some(50), Some(75), Some(100)]
    );
    assert!(
        states[1..]
            .iter()
            .all(|v| v.status.phase == VolumePhase::Populating)
    );
    let done = cloud.get_volume(&tenant, "img").await.unwrap();
    assert_eq!(done.status.phase, VolumePhase::Ready);
    assert_eq!(done.status.progress, None);
}

#[tokio::test(start_paused = true)]
async fn an_import_from_an_invalid_host_fails_fast() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    let spec = VolumeSpec::blank("img", ByteSize::gib(1)).with_source(VolumeSource::Import {
        url: "https://nowhere.invalid/f.qcow2".into(),
    });
    cloud.create_volume(&tenant, &spec).await.unwrap();
    let err = wait::until(
        cloud.watch_volume(&tenant, "img").await.unwrap(),
        wait::volume_ready(),
        Duration::from_secs(3600),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Failed { reason, .. } if reason.starts_with("import failed: ")),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn clones_and_restores_need_their_source_and_its_size() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    cloud
        .create_volume(&tenant, &VolumeSpec::blank("src", ByteSize::gib(2)))
        .await
        .unwrap();
    let clone = |name: &str, size: u64, from: &str| {
        VolumeSpec::blank(name, ByteSize::gib(size)).with_source(VolumeSource::Clone {
            volume: from.into(),
        })
    };
    let err = cloud
        .create_volume(&tenant, &clone("c", 2, "nope"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    let err = cloud
        .create_volume(&tenant, &clone("c", 1, "src"))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("size"));
    let c = cloud
        .create_volume(&tenant, &clone("c", 3, "src"))
        .await
        .unwrap();
    assert_eq!(c.status.phase, VolumePhase::Populating);
    ready(&cloud, &tenant, "c").await;

    let snap = cloud.create_snapshot(&tenant, "src", "snap").await.unwrap();
    assert!(!snap.ready);
    assert_eq!(snap.size, ByteSize::gib(2));
    let restore = |name: &str, size: u64, from: &str| {
        VolumeSpec::blank(name, ByteSize::gib(size)).with_source(VolumeSource::Snapshot {
            snapshot: from.into(),
        })
    };
    let err = cloud
        .create_volume(&tenant, &restore("r", 2, "nope"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NotFound {
                kind: ResourceKind::Snapshot,
                ..
            }
        ),
        "{err}"
    );
    let err = cloud
        .create_volume(&tenant, &restore("r", 1, "snap"))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("size"));
    cloud
        .create_volume(&tenant, &restore("r", 2, "snap"))
        .await
        .unwrap();
    ready(&cloud, &tenant, "r").await;
    let snaps = cloud.list_snapshots(&tenant, Some("src")).await.unwrap();
    assert!(snaps[0].ready, "ready after a step");
}

#[tokio::test(start_paused = true)]
async fn resize_grows_only_and_checks_every_replica_node() {
    let cloud = small_cloud();
    let tenant = acme();
    cloud
        .create_volume(
            &tenant,
            &VolumeSpec::blank("v", ByteSize::gib(2)).with_replicas(2),
        )
        .await
        .unwrap();
    ready(&cloud, &tenant, "v").await;
    let err = cloud
        .resize_volume(&tenant, "v", ByteSize::gib(1))
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("size"));
    // node-1 and node-2 hold the replicas (8Gi free each); the first filler goes to node-3
    // (10Gi free), the second to node-1 (a tie, broken by node order), leaving it 1Gi.
    cloud
        .create_volume(&tenant, &VolumeSpec::blank("filler-a", ByteSize::gib(7)))
        .await
        .unwrap();
    let filler = cloud
        .create_volume(&tenant, &VolumeSpec::blank("filler-b", ByteSize::gib(7)))
        .await
        .unwrap();
    assert_eq!(nodes_of(&filler), vec!["node-1"]);
    let err = cloud
        .resize_volume(&tenant, "v", ByteSize::gib(4))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Exhausted { .. }), "{err}");
    let grown = cloud
        .resize_volume(&tenant, "v", ByteSize::gib(3))
        .await
        .unwrap();
    assert_eq!(grown.status.phase, VolumePhase::Resizing);
    assert_eq!(grown.spec.size, ByteSize::gib(3));
    let grown = ready(&cloud, &tenant, "v").await;
    assert_eq!(grown.status.size, ByteSize::gib(3));
    let pools = BlockStorage::list_pools(&cloud, &tenant).await.unwrap();
    assert_eq!(pools[0].free, ByteSize::gib(30 - 6 - 14));
}

#[tokio::test(start_paused = true)]
async fn snapshots_block_deletion_and_are_listed_per_volume() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    for name in ["a", "b"] {
        cloud
            .create_volume(&tenant, &VolumeSpec::blank(name, ByteSize::gib(1)))
            .await
            .unwrap();
    }
    cloud.create_snapshot(&tenant, "a", "a-1").await.unwrap();
    cloud.create_snapshot(&tenant, "b", "b-1").await.unwrap();
    let err = cloud
        .create_snapshot(&tenant, "b", "a-1")
        .await
        .unwrap_err();
    assert!(err.is_already_exists(), "{err}");
    let err = cloud
        .create_snapshot(&tenant, "c", "c-1")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(cloud.list_snapshots(&tenant, None).await.unwrap().len(), 2);
    assert_eq!(
        cloud.list_snapshots(&tenant, Some("a")).await.unwrap()[0].name,
        "a-1"
    );
    let err = cloud.delete_volume(&tenant, "a", true).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "even forced: {err}");
    cloud.delete_snapshot(&tenant, "a-1").await.unwrap();
    cloud.delete_volume(&tenant, "a", false).await.unwrap();
    assert!(
        cloud
            .delete_snapshot(&tenant, "a-1")
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test(start_paused = true)]
async fn a_volume_in_use_is_deleted_only_when_its_vm_is_stopped_or_by_force() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    cloud
        .create_volume(&tenant, &VolumeSpec::blank("data", ByteSize::gib(1)))
        .await
        .unwrap();
    let spec = VmSpec {
        name: "web".into(),
        data_volumes: vec!["data".into()],
        ..VmSpec::default()
    };
    cloud.apply_vm_resolved(&tenant, &spec).await.unwrap();
    let volume = cloud.get_volume(&tenant, "data").await.unwrap();
    assert_eq!(volume.status.used_by, vec!["web".to_string()]);
    let err = cloud
        .delete_volume(&tenant, "data", false)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { reason, .. } if reason.contains("web")),
        "{err}"
    );
    cloud
        .power(&tenant, "web", PowerAction::Stop)
        .await
        .unwrap();
    wait::until(
        cloud.watch_vm(&tenant, "web").await.unwrap(),
        wait::vm_phase(VmPhase::Stopped),
        WAIT,
    )
    .await
    .unwrap();
    cloud.delete_volume(&tenant, "data", false).await.unwrap();

    // A started VM whose volume is gone fails, naming it.
    cloud
        .power(&tenant, "web", PowerAction::Start)
        .await
        .unwrap();
    let vm = cloud.get_vm(&tenant, "web").await.unwrap();
    assert_eq!(vm.status.phase, VmPhase::Failed);

    cloud
        .create_volume(&tenant, &VolumeSpec::blank("other", ByteSize::gib(1)))
        .await
        .unwrap();
    let spec = VmSpec {
        name: "db".into(),
        data_volumes: vec!["other".into()],
        run_strategy: RunStrategy::Always,
        ..VmSpec::default()
    };
    cloud.apply_vm_resolved(&tenant, &spec).await.unwrap();
    cloud.delete_volume(&tenant, "other", true).await.unwrap();
    assert!(
        cloud
            .list_volumes(&tenant, &Labels::new())
            .await
            .unwrap()
            .is_empty()
    );
}
