//! `ResourceQuota` at admission, as kube-apiserver enforces it and the resource quota
//! controller maintains its status (see the testkit's `quota` module for the upstream files).

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, ResourceQuota, Service};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kubecloud_testkit::{TestServer, Verb};
use serde_json::json;

async fn server() -> TestServer {
    let server = TestServer::start().await.expect("server");
    server
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: acme}\n")
        .expect("namespace");
    server
}

fn claim(name: &str, size: &str, class: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": class,
                 "resources": {"requests": {"storage": size}}}
    }))
    .expect("claim")
}

async fn quota(server: &TestServer, hard: serde_json::Value) -> ResourceQuota {
    let quotas: Api<ResourceQuota> = Api::namespaced(server.client(), "acme");
    let q = json!({"apiVersion": "v1", "kind": "ResourceQuota",
                   "metadata": {"name": "kubecloud"}, "spec": {"hard": hard}});
    quotas
        .patch("kubecloud", &PatchParams::apply("test"), &Patch::Apply(q))
        .await
        .expect("quota applied")
}

fn status(q: &ResourceQuota) -> (serde_json::Value, serde_json::Value) {
    let s = serde_json::to_value(q.status.clone().unwrap_or_default()).unwrap();
    (s["hard"].clone(), s["used"].clone())
}

#[tokio::test]
async fn a_claim_past_the_storage_quota_is_forbidden_with_kube_apiservers_message() {
    let server = server().await;
    let q = quota(
        &server,
        json!({"requests.storage": "3Gi", "persistentvolumeclaims": "5",
               "fast.storageclass.storage.k8s.io/requests.storage": "2Gi"}),
    )
    .await;
    let (hard, used) = status(&q);
    assert_eq!(hard["requests.storage"], "3Gi");
    assert_eq!(used["requests.storage"], "0");
    assert_eq!(used["persistentvolumeclaims"], "0");

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(server.client(), "acme");
    let pp = PostParams::default();
    claims
        .create(&pp, &claim("a", "1Gi", "fast"))
        .await
        .expect("within quota");
    let err = claims
        .create(&pp, &claim("b", "2Gi", "fast"))
        .await
        .unwrap_err();
    let kube::Error::Api(answer) = err else {
        panic!("{err:?}")
    };
    assert_eq!(answer.code, 403);
    assert_eq!(answer.reason, "Forbidden");
    assert_eq!(
        answer.message,
        "persistentvolumeclaims \"b\" is forbidden: exceeded quota: kubecloud, requested: \
         fast.storageclass.storage.k8s.io/requests.storage=2Gi, used: \
         fast.storageclass.storage.k8s.io/requests.storage=1Gi, limited: \
         fast.storageclass.storage.k8s.io/requests.storage=2Gi"
    );
    // Another class is held only by the total.
    let err = claims
        .create(&pp, &claim("c", "3Gi", "bulk"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "exceeded quota: kubecloud, requested: requests.storage=3Gi, used: requests.storage=1Gi, limited: requests.storage=3Gi"
        ),
        "{err}"
    );
    assert!(claims.get_opt("b").await.unwrap().is_none());

    let quotas: Api<ResourceQuota> = Api::namespaced(server.client(), "acme");
    let (_, used) = status(&quotas.get("kubecloud").await.unwrap());
    assert_eq!(used["requests.storage"], "1Gi");
    assert_eq!(used["persistentvolumeclaims"], "1");
    assert_eq!(
        used["fast.storageclass.storage.k8s.io/requests.storage"],
        "1Gi"
    );

    // The controller releases what a deleted claim held (its protection finalizer removed).
    claims
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    claims.delete("a", &DeleteParams::default()).await.unwrap();
    let (_, used) = status(&quotas.get("kubecloud").await.unwrap());
    assert_eq!(used["requests.storage"], "0");
    assert_eq!(used["persistentvolumeclaims"], "0");
}

#[tokio::test]
async fn a_dry_run_is_checked_against_the_quota_but_charges_nothing() {
    let server = server().await;
    quota(&server, json!({"requests.storage": "2Gi"})).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(server.client(), "acme");
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    claims
        .create(&dry, &claim("a", "2Gi", "fast"))
        .await
        .unwrap();
    claims
        .create(&PostParams::default(), &claim("a", "1Gi", "fast"))
        .await
        .expect("the dry run charged nothing");
    let err = claims
        .create(&dry, &claim("b", "2Gi", "fast"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "exceeded quota: kubecloud, requested: requests.storage=2Gi, used: requests.storage=1Gi, limited: requests.storage=2Gi"
        ),
        "a dry run is checked: {err}"
    );
}

#[tokio::test]
async fn object_counts_of_custom_resources_and_load_balancers_are_limited() {
    let server = server().await;
    quota(
        &server,
        json!({"count/virtualmachines.kubevirt.io": "1", "services.loadbalancers": "0"}),
    )
    .await;
    let gvk = GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine");
    let vms: Api<DynamicObject> = Api::namespaced_with(
        server.client(),
        "acme",
        &ApiResource::from_gvk_with_plural(&gvk, "virtualmachines"),
    );
    let vm = |name: &str| {
        serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name},
            "spec": {"template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}}}
        }))
        .unwrap()
    };
    vms.create(&PostParams::default(), &vm("one"))
        .await
        .unwrap();
    let before = server.requests().count(Verb::Create, "virtualmachines");
    let err = vms
        .patch(
            "two",
            &PatchParams::apply("test"),
            &Patch::Apply(serde_json::to_value(vm("two")).unwrap()),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "virtualmachines.kubevirt.io \"two\" is forbidden: exceeded quota: kubecloud, requested: \
             count/virtualmachines.kubevirt.io=1, used: count/virtualmachines.kubevirt.io=1, \
             limited: count/virtualmachines.kubevirt.io=1"
        ),
        "{err}"
    );
    assert_eq!(
        server.requests().count(Verb::Create, "virtualmachines"),
        before
    );

    let services: Api<Service> = Api::namespaced(server.client(), "acme");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    }))
    .unwrap();
    let err = services
        .create(&PostParams::default(), &svc)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("requested: services.loadbalancers=1, used: services.loadbalancers=0, limited: services.loadbalancers=0"),
        "{err}"
    );
}

#[tokio::test]
async fn a_pod_without_the_constrained_request_fails_quota() {
    let server = server().await;
    quota(
        &server,
        json!({"requests.cpu": "1", "requests.memory": "1Gi"}),
    )
    .await;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(server.client(), "acme");
    let pod = |name: &str, resources: serde_json::Value| {
        serde_json::from_value::<k8s_openapi::api::core::v1::Pod>(json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": resources}]}
        }))
        .unwrap()
    };
    let err = pods
        .create(&PostParams::default(), &pod("bare", json!({})))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "pods \"bare\" is forbidden: failed quota: kubecloud: must specify requests.cpu,requests.memory"
        ),
        "{err}"
    );
    pods.create(
        &PostParams::default(),
        &pod("a", json!({"requests": {"cpu": "600m", "memory": "512Mi"}})),
    )
    .await
    .unwrap();
    let err = pods
        .create(
            &PostParams::default(),
            &pod("b", json!({"requests": {"cpu": "500m", "memory": "512Mi"}})),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1"
        ),
        "{err}"
    );
}
