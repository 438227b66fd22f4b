//! Simulated controllers: PVC binding, namespace deletion, garbage collection, custom controllers.

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kubecloud_testkit::{
    Controller, ControllerApi, ControllerError, EventType, ObjectEvent, TestServer, Watched,
};
use serde_json::json;
use std::time::Duration;
use tokio::time::timeout;

const GUARD: Duration = Duration::from_secs(10);

fn pvc(name: &str, class: Option<&str>) -> PersistentVolumeClaim {
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}});
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn is_bound(p: Option<&PersistentVolumeClaim>) -> bool {
    p.and_then(|p| p.status.as_ref())
        .and_then(|s| s.phase.as_deref())
        == Some("Bound")
}

#[tokio::test]
async fn claims_with_an_existing_class_get_a_bound_volume() {
    let server = TestServer::start().await.unwrap();
    let classes: Api<StorageClass> = Api::all(server.client());
    let sc: StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "linstor", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "linstor.csi.linbit.com",
        "reclaimPolicy": "Delete",
    }))
    .unwrap();
    classes.create(&PostParams::default(), &sc).await.unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(server.client(), "default");
    claims
        .create(&PostParams::default(), &pvc("data", None))
        .await
        .unwrap();
    let bound = timeout(GUARD, await_condition(claims.clone(), "data", is_bound))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let volume = bound.spec.as_ref().unwrap().volume_name.clone().unwrap();
    assert_eq!(bound.status.unwrap().capacity.unwrap()["storage"].0, "1Gi");
    let pvs: Api<PersistentVolume> = Api::all(server.client());
    let pv = pvs.get(&volume).await.unwrap();
    assert_eq!(pv.status.unwrap().phase.as_deref(), Some("Bound"));
    let claim_ref = pv.spec.as_ref().unwrap().claim_ref.as_ref().unwrap();
    assert_eq!(
        (claim_ref.namespace.as_deref(), claim_ref.name.as_deref()),
        (Some("default"), Some("data"))
    );
    assert_eq!(
        pv.spec.unwrap().csi.unwrap().driver,
        "linstor.csi.linbit.com"
    );

    // Deleting the claim deletes the volume (reclaim policy Delete).
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    let uid = pvs
        .get(&volume)
        .await
        .map(|p| p.metadata.uid.unwrap())
        .unwrap_or_default();
    timeout(
        GUARD,
        await_condition(pvs.clone(), &volume, conditions::is_deleted(&uid)),
    )
    .await
    .unwrap()
    .unwrap();
}

#[tokio::test]
async fn claims_wait_for_their_class() {
    let server = TestServer::start().await.unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(server.client(), "default");
    let created = claims
        .create(&PostParams::default(), &pvc("data", Some("fast")))
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    server
        .seed_yaml("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: fast}\nprovisioner: example.com/fast\n")
        .unwrap();
    timeout(GUARD, await_condition(claims, "data", is_bound))
        .await
        .unwrap()
        .unwrap();
}

fn cm_owned_by(name: &str, owner: &ConfigMap) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {
            "name": name,
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap",
                "name": owner.metadata.name, "uid": owner.metadata.uid,
                "blockOwnerDeletion": true
            }]
        }
    }))
    .unwrap()
}

async fn family(cms: &Api<ConfigMap>) -> (ConfigMap, Vec<ConfigMap>) {
    let parent: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "parent"}})).unwrap();
    let parent = cms.create(&PostParams::default(), &parent).await.unwrap();
    let mut children = Vec::new();
    for name in ["child-1", "child-2"] {
        children.push(
            cms.create(&PostParams::default(), &cm_owned_by(name, &parent))
                .await
                .unwrap(),
        );
    }
    (parent, children)
}

#[tokio::test]
async fn deleting_an_owner_deletes_its_dependents_in_the_background() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let (_, children) = family(&cms).await;
    cms.delete("parent", &DeleteParams::default())
        .await
        .unwrap();
    for c in children {
        let (name, uid) = (c.metadata.name.unwrap(), c.metadata.uid.unwrap());
        timeout(
            GUARD,
            await_condition(cms.clone(), &name, conditions::is_deleted(&uid)),
        )
        .await
        .unwrap()
        .unwrap();
    }
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents_and_orphan_keeps_them() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let (parent, _) = family(&cms).await;
    let marked = cms
        .delete("parent", &DeleteParams::foreground())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert!(
        marked
            .metadata
            .finalizers
            .unwrap()
            .contains(&"foregroundDeletion".to_string())
    );
    let uid = parent.metadata.uid.unwrap();
    timeout(
        GUARD,
        await_condition(cms.clone(), "parent", conditions::is_deleted(&uid)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(cms.get_opt("child-1").await.unwrap().is_none());
    assert!(cms.get_opt("child-2").await.unwrap().is_none());

    let (parent, _) = family(&cms).await;
    cms.delete("parent", &DeleteParams::orphan()).await.unwrap();
    let uid = parent.metadata.uid.unwrap();
    timeout(
        GUARD,
        await_condition(cms.clone(), "parent", conditions::is_deleted(&uid)),
    )
    .await
    .unwrap()
    .unwrap();
    let child = cms.get("child-1").await.unwrap();
    assert!(
        child
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty()
    );
}

#[tokio::test]
async fn deleting_a_namespace_terminates_it_and_removes_its_contents() {
    let server = TestServer::start().await.unwrap();
    let namespaces: Api<Namespace> = Api::all(server.client());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "tenant-a"}})).unwrap();
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "tenant-a");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "a"}})).unwrap(),
    )
    .await
    .unwrap();

    // With the controller paused the namespace stays Terminating and refuses new content.
    let controller = server.controller("namespace-controller").unwrap();
    controller.pause();
    let terminating = namespaces
        .delete("tenant-a", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let err = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "b"}})).unwrap(),
        )
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("{err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));

    controller.resume();
    let uid = created.metadata.uid.unwrap();
    timeout(
        GUARD,
        await_condition(namespaces, "tenant-a", conditions::is_deleted(&uid)),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        server
            .cluster()
            .list("v1", "ConfigMap", Some("tenant-a"))
            .unwrap()
            .is_empty()
    );
}

/// Copies `data.want` into `data.got` on every ConfigMap (a toy controller).
struct Echo;

#[async_trait]
impl Controller for Echo {
    fn name(&self) -> &str {
        "echo"
    }
    fn watches(&self) -> Vec<Watched> {
        vec![Watched::new("", "configmaps")]
    }
    async fn reconcile(
        &self,
        api: &ControllerApi,
        ev: &ObjectEvent,
    ) -> Result<(), ControllerError> {
        if ev.kind == EventType::Deleted {
            return Ok(());
        }
        let want = &ev.object["data"]["want"];
        if !want.is_null() && ev.object["data"]["got"] != *want {
            api.merge_patch(
                "v1",
                "ConfigMap",
                ev.namespace.as_deref(),
                &ev.name,
                &json!({"data": {"got": want}}),
            )
            .await?;
        }
        Ok(())
    }
}

fn echoed(c: Option<&ConfigMap>) -> bool {
    c.and_then(|c| c.data.as_ref())
        .is_some_and(|d| d.get("got").is_some() && d.get("got") == d.get("want"))
}

#[tokio::test]
async fn custom_controllers_can_be_paused_delayed_and_failed() {
    let server = TestServer::builder()
        .without_default_controllers()
        .controller(Echo)
        .start()
        .await
        .unwrap();
    let echo = server.controller("echo").unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let cm = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}, "data": {"want": "x"}})).unwrap()
    };

    cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let a = timeout(GUARD, await_condition(cms.clone(), "a", echoed))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let managers: Vec<String> = a
        .metadata
        .managed_fields
        .unwrap()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    assert!(managers.contains(&"echo".to_string()), "{managers:?}");

    // Failing twice, then working: retried until it succeeds.
    echo.fail_next(2);
    cms.create(&PostParams::default(), &cm("b")).await.unwrap();
    timeout(GUARD, await_condition(cms.clone(), "b", echoed))
        .await
        .unwrap()
        .unwrap();
    assert!(echo.failed() >= 2);

    // Paused: events are held until resumed.
    echo.pause();
    let before = echo.reconciled();
    cms.create(&PostParams::default(), &cm("c")).await.unwrap();
    assert!(!echoed(cms.get_opt("c").await.unwrap().as_ref()));
    assert_eq!(echo.reconciled(), before);
    echo.set_delay(kubecloud_testkit::Latency::Fixed(Duration::from_millis(20)));
    echo.resume();
    timeout(GUARD, await_condition(cms.clone(), "c", echoed))
        .await
        .unwrap()
        .unwrap();
}
