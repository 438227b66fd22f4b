//! The LINSTOR controller double: placement, real ApiCallRc failures, schema checks, the
//! snapshot/restore/clone calls, and faults.

use kubecloud_testkit::linstor::{LinstorFault, LinstorServer, rc};
use serde_json::{Value, json};

async fn double() -> LinstorServer {
    LinstorServer::builder()
        .nodes(["a", "b", "c"])
        .pool_on_all_nodes("thin", "LVM_THIN", 10 << 20)
        .resource_group("rg", 2, ["thin"])
        .clone_rounds(1)
        .start()
        .await
        .unwrap()
}

fn code(answer: &Value) -> u64 {
    (answer[0]["ret_code"].as_i64().unwrap() as u64) & 0x7FFF
}

#[tokio::test]
async fn placement_fails_as_linstor_does_and_leaves_nothing() {
    let l = double().await;
    let h = l.handle();
    let (status, answer) = h
        .call(
            "POST",
            "/v1/resource-groups/rg/spawn",
            &json!({"resource_definition_name": "big", "volume_sizes": [11u64 << 20]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 500);
    assert_eq!(code(&answer), rc::FAIL_NOT_ENOUGH_NODES);
    assert!(
        answer[0]["ret_code"].as_i64().unwrap() < 0,
        "errors are negative on the wire"
    );
    let (status, _) = h
        .call("POST", "/v1/resource-groups/rg/spawn", &json!({"resource_definition_name": "four", "volume_sizes": [1024], "select_filter": {"place_count": 4}}))
        .await
        .unwrap();
    assert_eq!(status, 500);
    assert!(l.resource_definitions().is_empty());
    assert!(l.violations().is_empty(), "{:?}", l.violations());
}

#[tokio::test]
async fn unknown_fields_are_refused_and_recorded() {
    let l = double().await;
    let (status, _) = l
        .handle()
        .call(
            "POST",
            "/v1/resource-groups/rg/spawn",
            &json!({"resource_definition_name": "x", "volume_size": [1]}),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(l.violations().len(), 1);
    assert!(l.resource_definitions().is_empty());
}

#[tokio::test]
async fn snapshot_restore_and_clone_take_the_documented_calls() {
    let l = double().await;
    let h = l.handle();
    let spawn = json!({"resource_definition_name": "src", "volume_sizes": [1048576]});
    assert_eq!(
        h.call("POST", "/v1/resource-groups/rg/spawn", &spawn)
            .await
            .unwrap()
            .0,
        201
    );
    // Spawning again: FAIL_EXISTS_RSC_DFN (what a retry after a lost answer sees).
    let (status, answer) = h
        .call("POST", "/v1/resource-groups/rg/spawn", &spawn)
        .await
        .unwrap();
    assert_eq!((status, code(&answer)), (500, rc::FAIL_EXISTS_RSC_DFN));
    assert_eq!(
        h.call(
            "POST",
            "/v1/resource-definitions/src/snapshots",
            &json!({"name": "s1"})
        )
        .await
        .unwrap()
        .0,
        201
    );
    // Deleting a definition with snapshots is refused.
    let (status, answer) = h
        .call("DELETE", "/v1/resource-definitions/src", &Value::Null)
        .await
        .unwrap();
    assert_eq!((status, code(&answer)), (500, rc::FAIL_EXISTS_SNAPSHOT_DFN));
    // Restore: three calls.
    assert_eq!(
        h.call(
            "POST",
            "/v1/resource-definitions",
            &json!({"resource_definition": {"name": "dst", "resource_group_name": "rg"}})
        )
        .await
        .unwrap()
        .0,
        201
    );
    assert_eq!(
        h.call(
            "POST",
            "/v1/resource-definitions/src/snapshot-restore-volume-definition/s1",
            &json!({"to_resource": "dst"})
        )
        .await
        .unwrap()
        .0,
        200
    );
    assert_eq!(
        h.call(
            "POST",
            "/v1/resource-definitions/src/snapshot-restore-resource/s1",
            &json!({"to_resource": "dst"})
        )
        .await
        .unwrap()
        .0,
        200
    );
    assert_eq!(l.replicas("dst").len(), 2);
    // Clone: an object, then CLONING, then COMPLETE.
    let (status, started) = h
        .call(
            "POST",
            "/v1/resource-definitions/src/clone",
            &json!({"name": "copy"}),
        )
        .await
        .unwrap();
    assert_eq!(
        (status, started["clone_name"].as_str()),
        (201, Some("copy"))
    );
    let status_of = || {
        h.call(
            "GET",
            "/v1/resource-definitions/src/clone/copy",
            &Value::Null,
        )
    };
    assert_eq!(status_of().await.unwrap().1["status"], "CLONING");
    assert_eq!(status_of().await.unwrap().1["status"], "COMPLETE");
    // Shrinking is refused.
    let (status, answer) = h
        .call(
            "PUT",
            "/v1/resource-definitions/copy/volume-definitions/0",
            &json!({"size_kib": 1}),
        )
        .await
        .unwrap();
    assert_eq!((status, code(&answer)), (500, rc::FAIL_INVLD_VLM_SIZE));
    assert!(l.violations().is_empty(), "{:?}", l.violations());
}

#[tokio::test]
async fn faults_act_on_matching_requests_only() {
    let l = double().await;
    l.inject(LinstorFault::drop_after().on_path("/spawn").times(1));
    l.inject(LinstorFault::status(503).on_method("GET").times(1));
    let h = l.handle();
    let spawn = json!({"resource_definition_name": "r", "volume_sizes": [1024]});
    assert!(
        h.call("POST", "/v1/resource-groups/rg/spawn", &spawn)
            .await
            .is_err(),
        "answer lost"
    );
    assert_eq!(l.resource_definitions(), ["r"], "but the work was done");
    assert_eq!(
        h.call("GET", "/v1/nodes", &Value::Null).await.unwrap().0,
        503
    );
    assert_eq!(
        h.call("GET", "/v1/nodes", &Value::Null).await.unwrap().0,
        200
    );
    let faulted = l.requests().iter().filter(|r| r.faulted).count();
    assert_eq!(faulted, 2);
}
