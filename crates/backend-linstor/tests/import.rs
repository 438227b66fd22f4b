//! Volumes imported from an http(s) image through a CDI DataVolume: the progress while CDI
//! imports, the volume read back exactly, a failing import ending the wait through the watch,
//! and deletion taking the DataVolume and its claim.

mod common;

use std::time::Duration;

use futures::StreamExt;
use kubecloud_core::{
    BlockStorage, ByteSize, Error, Labels, ReplicaState, Tenant, VolumePhase, VolumeSource,
    VolumeSpec, wait,
};
use kubecloud_testkit::Verb;

const CDI: &str = "cdi-deployment";
const DV: (&str, &str) = ("cdi.kubevirt.io/v1beta1", "DataVolume");

fn tenant() -> Tenant {
    Tenant::new("acme").unwrap()
}

fn import(name: &str, url: &str) -> VolumeSpec {
    let mut spec = VolumeSpec::blank(name, ByteSize::gib(2))
        .with_replicas(2)
        .with_tier("fast")
        .with_source(VolumeSource::Import { url: url.into() });
    spec.labels.insert("role".into(), "boot".into());
    spec
}

async fn all_specs(env: &common::Env, tenant: &Tenant) -> Vec<VolumeSpec> {
    env.backend
        .list_volume_specs(tenant, &Labels::new())
        .await
        .expect("list specs")
}

fn reads(env: &common::Env) -> usize {
    let r = env.kube.requests();
    r.count(Verb::Get, "persistentvolumeclaims") + r.count(Verb::Get, "datavolumes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_shows_its_progress_then_is_ready_and_reads_back_exactly() {
    let env = common::env().await;
    let t = tenant();
    let cdi = env.kube.controller(CDI).expect("CDI controller");
    cdi.pause();
    let spec = import("os", "https://images.example.com/debian-12.qcow2");
    let created = env.backend.create_volume(&t, &spec).await.expect("create");
    assert_eq!(created.spec, spec);
    assert_eq!(created.status.phase, VolumePhase::Pending);
    assert_eq!(
        env.kube.requests().count(Verb::Apply, "datavolumes"),
        1,
        "one DataVolume"
    );
    assert_eq!(
        env.kube
            .requests()
            .count(Verb::Apply, "persistentvolumeclaims"),
        0,
        "the claim is CDI's to make"
    );
    // Before CDI has made the claim, the volume is there, pending, as asked.
    let pending = env.backend.get_volume(&t, "os").await.expect("get");
    assert_eq!(pending.spec, spec);
    assert_eq!(pending.status.phase, VolumePhase::Pending);
    let again = env.backend.create_volume(&t, &spec).await.unwrap_err();
    assert!(again.is_already_exists(), "{again}");
    // Its spec lists as asked too: read from the DataVolume while there is no claim.
    let specs = all_specs(&env, &t).await;
    assert_eq!(specs, vec![spec.clone()]);

    let mut states = env.backend.watch_volume(&t, "os").await.expect("watch");
    let reads_before = reads(&env);
    // The watches start with the first state; CDI goes on once they have.
    let first = states.next().await.expect("a state").expect("state");
    assert_eq!(first.status.phase, VolumePhase::Pending);
    cdi.resume();
    let mut progress = Vec::new();
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(v) = states.next().await {
            let v = v.expect("state");
            if v.status.phase == VolumePhase::Populating {
                progress.push(v.status.progress);
            }
            if v.status.phase == VolumePhase::Ready {
                return v;
            }
            assert_ne!(v.status.phase, VolumePhase::Failed, "{v:?}");
        }
        panic!("the watch ended before the volume was ready");
    })
    .await
    .expect("ready in time");
    // The watch may see CDI's steps coalesced, so which percentages show is timing; what shows
    // is a percentage that never goes back. (The mapping of CDI's "N.NN%" is unit-tested.)
    assert!(
        progress.iter().flatten().all(|p| *p <= 100),
        "percentages: {progress:?}"
    );
    let known: Vec<u8> = progress.iter().flatten().copied().collect();
    assert!(
        known.windows(2).all(|w| w[0] <= w[1]),
        "progress never goes back: {progress:?}"
    );
    assert_eq!(
        reads(&env),
        reads_before,
        "followed through watches, not by reading again"
    );
    assert_eq!(ready.spec, spec);
    assert_eq!(ready.status.size, spec.size);
    assert_eq!(ready.status.progress, None);
    let diskful: Vec<_> = ready
        .status
        .replicas
        .iter()
        .filter(|r| r.state == ReplicaState::UpToDate)
        .collect();
    assert_eq!(diskful.len(), 2, "{:?}", ready.status.replicas);

    // Read back exactly, one at a time and in lists (with the caller's labels).
    let got = env.backend.get_volume(&t, "os").await.expect("get");
    assert_eq!(got, ready);
    let selector = Labels::from([("role".to_string(), "boot".to_string())]);
    let listed = env.backend.list_volumes(&t, &selector).await.expect("list");
    assert_eq!(listed, vec![ready.clone()]);
    let all = env
        .backend
        .list_volumes(&t, &Labels::new())
        .await
        .expect("list");
    assert_eq!(all.len(), 1, "the claim CDI made is not a second volume");
    // The specs alone: the DataVolume read as metadata, the claim whole, nothing else.
    let before = env.kube.requests().all().len();
    let specs = all_specs(&env, &t).await;
    assert_eq!(specs, vec![spec.clone()]);
    let sent: Vec<(Verb, String, bool)> = env.kube.requests().all()[before..]
        .iter()
        .filter(|r| r.verb != Verb::Watch)
        .map(|r| {
            let metadata_only = r
                .accept
                .as_deref()
                .is_some_and(|a| a.contains("as=PartialObjectMetadataList"));
            (r.verb, r.resource.clone(), metadata_only)
        })
        .collect();
    assert_eq!(
        sent,
        [
            (Verb::List, "persistentvolumeclaims".to_string(), false),
            (Verb::List, "datavolumes".to_string(), true)
        ],
        "one list of claims, one of DataVolumes (metadata only), no get"
    );

    // Another tenant does not see it.
    let other = Tenant::new("other").unwrap();
    let err = env.backend.get_volume(&other, "os").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    // Deleting takes the DataVolume and its claim.
    env.backend
        .delete_volume(&t, "os", false)
        .await
        .expect("delete");
    let states = env.backend.watch_volume(&t, "os").await;
    if let Ok(states) = states {
        tokio::time::timeout(Duration::from_secs(20), states.count())
            .await
            .expect("gone in time");
    }
    let cluster = env.kube.cluster();
    assert!(
        cluster
            .get_opt(DV.0, DV.1, Some("acme"), "os")
            .unwrap()
            .is_none()
    );
    assert!(
        cluster
            .get_opt("v1", "PersistentVolumeClaim", Some("acme"), "os")
            .unwrap()
            .is_none()
    );
    let err = env.backend.get_volume(&t, "os").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(env.linstor.violations().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_import_ends_the_wait_with_cdis_reason() {
    let env = common::env().await;
    let t = tenant();
    let spec = import("broken", "https://images.example.invalid/missing.qcow2");
    env.backend.create_volume(&t, &spec).await.expect("create");
    let states = env.backend.watch_volume(&t, "broken").await.expect("watch");
    let err = wait::until(states, wait::volume_ready(), Duration::from_secs(60))
        .await
        .unwrap_err();
    match &err {
        Error::Failed { reason, .. } => assert!(reason.contains("no such host"), "{reason}"),
        other => panic!("expected Failed, got {other}"),
    }
    let got = env.backend.get_volume(&t, "broken").await.expect("get");
    assert_eq!(got.status.phase, VolumePhase::Failed);
    assert!(
        got.status
            .message
            .as_deref()
            .is_some_and(|m| m.contains("no such host"))
    );
    assert_eq!(got.spec, spec);
    env.backend
        .delete_volume(&t, "broken", false)
        .await
        .expect("delete");
    let cluster = env.kube.cluster();
    assert!(
        cluster
            .get_opt(DV.0, DV.1, Some("acme"), "broken")
            .unwrap()
            .is_none()
    );
}
