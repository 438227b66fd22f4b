//! What crosses the wire: nothing for bad input, replicas and DRBD states in the status, in-use
//! refusals, and faults on both planes ending in exactly the asked-for volume.

mod common;

use std::time::Duration;

use futures::StreamExt;
use kubecloud_core::{
    BlockStorage, ByteSize, Error, ReplicaState, Tenant, Volume, VolumeSpec, wait,
};
use kubecloud_testkit::linstor::{LinstorFault, Origin};
use kubecloud_testkit::{Fault, Verb};

async fn ready(env: &common::Env, t: &Tenant, name: &str) -> Volume {
    let states = env.backend.watch_volume(t, name).await.expect("watch");
    wait::until(states, wait::volume_ready(), Duration::from_secs(20))
        .await
        .expect("ready")
}

fn tenant() -> Tenant {
    Tenant::new("acme").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_is_written_on_either_plane() {
    let env = common::env().await;
    let t = tenant();
    let cases = [
        (VolumeSpec::blank("v", ByteSize(0)), "size"),
        (
            VolumeSpec::blank("v", ByteSize::gib(1)).with_tier("gold"),
            "tier",
        ),
        (
            VolumeSpec::blank("v", ByteSize::gib(1)).with_replicas(4),
            "replicas",
        ),
    ];
    for (spec, field) in cases {
        let err = env.backend.create_volume(&t, &spec).await.unwrap_err();
        assert_eq!(err.invalid_field(), Some(field), "{err:?}");
    }
    assert_eq!(env.kube.requests().total(), 0, "nothing sent to Kubernetes");
    assert!(env.linstor.requests().is_empty(), "nothing sent to LINSTOR");

    // Over the free space of the pool: LINSTOR is asked (reads only), nothing is written.
    let big = VolumeSpec::blank("big", ByteSize::gib(150)).with_tier("fast");
    let err = env.backend.create_volume(&t, &big).await.unwrap_err();
    assert!(matches!(err, Error::Exhausted { .. }), "{err:?}");
    let three = VolumeSpec::blank("three", ByteSize::gib(60))
        .with_tier("fast")
        .with_replicas(3);
    assert!(
        env.backend.create_volume(&t, &three).await.is_ok(),
        "3 replicas of 60 GiB fit on 3 nodes"
    );
    assert!(
        env.kube
            .requests()
            .writes()
            .iter()
            .all(|w| w.resource != "persistentvolumeclaims" || w.name.as_deref() == Some("three"))
    );
    assert!(
        env.linstor
            .requests()
            .iter()
            .filter(|r| r.origin == Origin::Client)
            .all(|r| !r.is_write()),
        "the backend only reads LINSTOR"
    );
    assert!(
        env.linstor.violations().is_empty(),
        "{:?}",
        env.linstor.violations()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_and_drbd_states_are_in_the_status() {
    let env = common::env().await;
    let t = tenant();
    let spec = VolumeSpec::blank("db", ByteSize::gib(2))
        .with_tier("fast")
        .with_replicas(2);
    env.backend.create_volume(&t, &spec).await.unwrap();
    let v = ready(&env, &t, "db").await;
    let diskful: Vec<_> = v
        .status
        .replicas
        .iter()
        .filter(|r| r.state == ReplicaState::UpToDate)
        .collect();
    assert_eq!(diskful.len(), 2, "{:?}", v.status.replicas);
    assert_eq!(
        v.status.replicas.len(),
        3,
        "a diskless tie-breaker on the third node: {:?}",
        v.status.replicas
    );
    let rds = env.linstor.resource_definitions();
    assert_eq!(rds.len(), 1);
    let node = diskful[0].node.clone();
    env.linstor.set_disk_state(&rds[0], &node, "Inconsistent");
    let v = env.backend.get_volume(&t, "db").await.unwrap();
    let r = v.status.replicas.iter().find(|r| r.node == node).unwrap();
    assert_eq!(r.state, ReplicaState::Inconsistent);

    // In use (DRBD primary): delete refused unless forced.
    env.linstor.set_in_use(&rds[0], &node, true);
    let err = env
        .backend
        .delete_volume(&t, "db", false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    env.linstor.set_in_use(&rds[0], &node, false);
    env.backend.delete_volume(&t, "db", true).await.unwrap();
    let mut states = env
        .backend
        .watch_volume(&t, "db")
        .await
        .map(|s| s.boxed())
        .ok();
    if let Some(s) = states.as_mut() {
        tokio::time::timeout(Duration::from_secs(20), async {
            while s.next().await.is_some() {}
        })
        .await
        .expect("gone");
    }
    tokio::time::timeout(Duration::from_secs(20), async {
        while !env.linstor.resource_definitions().is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the CSI stand-in deletes the resource definition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_class_is_applied_once_and_a_taken_name_writes_nothing() {
    let env = common::env().await;
    let t = tenant();
    for name in ["a", "b"] {
        env.backend
            .create_volume(
                &t,
                &VolumeSpec::blank(name, ByteSize::gib(1)).with_tier("fast"),
            )
            .await
            .unwrap();
    }
    assert_eq!(
        env.kube.requests().count(Verb::Apply, "storageclasses"),
        1,
        "an unchanged class is not re-applied"
    );
    assert_eq!(
        env.kube
            .requests()
            .count(Verb::Apply, "persistentvolumeclaims"),
        2
    );
    let before = env.kube.requests().writes().len();
    let err = env
        .backend
        .create_volume(
            &t,
            &VolumeSpec::blank("a", ByteSize::gib(1)).with_tier("fast"),
        )
        .await
        .unwrap_err();
    assert!(err.is_already_exists());
    assert_eq!(env.kube.requests().writes().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_on_both_planes_end_in_exactly_one_volume() {
    let env = common::env().await;
    let t = tenant();
    // LINSTOR: 500s and a timeout on the backend's reads are retried.
    env.linstor.inject(
        LinstorFault::status(500)
            .on_method("GET")
            .from(Origin::Client)
            .times(2),
    );
    env.linstor.inject(
        LinstorFault::delay(Duration::from_secs(2))
            .on_path("storage-pools")
            .from(Origin::Client)
            .times(1),
    );
    // The CSI driver's spawn is carried out but its answer lost: the retry finds it made.
    env.linstor
        .inject(LinstorFault::drop_after().on_path("/spawn").times(1));
    // Kubernetes: the first PVC apply's connection drops; the apply is retried.
    env.kube.faults().inject(
        Fault::drop_connection()
            .on_verb(Verb::Apply)
            .on_resource("persistentvolumeclaims")
            .times(1),
    );

    let spec = VolumeSpec::blank("data", ByteSize::gib(1))
        .with_tier("fast")
        .with_replicas(2);
    env.backend
        .create_volume(&t, &spec)
        .await
        .expect("create survives the faults");
    let v = ready(&env, &t, "data").await;
    assert_eq!(v.status.size, ByteSize::gib(1));
    assert_eq!(
        env.linstor.resource_definitions().len(),
        1,
        "never two resource definitions"
    );
    assert_eq!(
        env.kube
            .cluster()
            .list("v1", "PersistentVolumeClaim", Some("acme"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        env.kube
            .cluster()
            .list("v1", "PersistentVolume", None)
            .unwrap()
            .len(),
        1
    );
    assert!(
        env.linstor.requests().iter().filter(|r| r.faulted).count() >= 3,
        "two 500s and the lost spawn answer (a timed-out request is cancelled before it is logged)"
    );
    assert!(
        env.linstor.violations().is_empty(),
        "{:?}",
        env.linstor.violations()
    );

    // A placement LINSTOR refuses with FAIL_NOT_ENOUGH_NODES leaves nothing behind.
    env.backend.delete_volume(&t, "data", false).await.unwrap();
}
