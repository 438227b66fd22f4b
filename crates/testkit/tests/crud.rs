//! CRUD, discovery, validation and Status bodies through a plain `kube::Client`.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use kubecloud_testkit::TestServer;
use serde_json::json;

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn vm_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubevirt.io", "v1", "VirtualMachine"),
        "virtualmachines",
    )
}

fn vm(name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "metadata": {"name": name},
        "spec": {
            "runStrategy": "Halted",
            "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}}
        }
    }))
    .unwrap()
}

#[tokio::test]
async fn config_maps_round_trip_through_a_kube_client() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings", "labels": {"app": "web"}},
        "data": {"k": "v"}
    }))
    .unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let got = cms.get("settings").await.unwrap();
    assert_eq!(got.data.as_ref().unwrap()["k"], "v");
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );

    let err = api_error(cms.create(&PostParams::default(), &cm).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "configmaps \"settings\" already exists");

    let mut changed = got.clone();
    changed.data = Some([("k".to_string(), "w".to_string())].into());
    let replaced = cms
        .replace("settings", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version,
        got.metadata.resource_version
    );

    let listed = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 1);

    cms.delete("settings", &DeleteParams::default())
        .await
        .unwrap();
    let err = api_error(cms.get("settings").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "configmaps \"settings\" not found");
    assert!(cms.get_opt("settings").await.unwrap().is_none());
}

#[tokio::test]
async fn virtual_machines_are_served_with_kubevirt_messages() {
    let server = TestServer::start().await.unwrap();
    let vms: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &vm_resource());
    let created = vms
        .create(&PostParams::default(), &vm("vm1"))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let err = api_error(vms.get("vm2").await.unwrap_err());
    assert_eq!(err.message, "virtualmachines.kubevirt.io \"vm2\" not found");
    assert_eq!(err.details.as_ref().unwrap().group, "kubevirt.io");
    assert_eq!(err.details.as_ref().unwrap().kind, "virtualmachines");

    let patched = vms
        .patch(
            "vm1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"runStrategy": "Always"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["spec"]["runStrategy"], "Always");
    assert_eq!(patched.metadata.generation, Some(2));

    let err = api_error(
        vms.patch(
            "vm1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"runStrategy": "Halted"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 415);
}

#[tokio::test]
async fn stale_updates_conflict() {
    let server = TestServer::start().await.unwrap();
    let vms: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &vm_resource());
    let first = vms
        .create(&PostParams::default(), &vm("vm1"))
        .await
        .unwrap();
    let mut a = first.clone();
    a.data["spec"]["runStrategy"] = json!("Always");
    vms.replace("vm1", &PostParams::default(), &a)
        .await
        .unwrap();
    let mut b = first.clone();
    b.data["spec"]["runStrategy"] = json!("Manual");
    let err = api_error(
        vms.replace("vm1", &PostParams::default(), &b)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on virtualmachines.kubevirt.io \"vm1\": the object has been modified; please apply your changes to the latest version and try again"
    );
}

#[tokio::test]
async fn invalid_objects_are_rejected_naming_the_field() {
    // Strict by default for this server (kube-apiserver's default is Warn: the typo would be
    // pruned with a warning).
    let server = TestServer::builder()
        .field_validation(kubecloud_testkit::FieldValidation::Strict)
        .start()
        .await
        .unwrap();
    let vms: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &vm_resource());
    let mut bad = vm("vm1");
    bad.data["spec"]["runStrategy"] = json!(12);
    let err = api_error(vms.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.unwrap().causes;
    assert_eq!(causes[0].field, "spec.runStrategy");
    assert!(
        err.message
            .starts_with("VirtualMachine.kubevirt.io \"vm1\" is invalid: spec.runStrategy"),
        "{}",
        err.message
    );

    let mut typo = vm("vm2");
    typo.data["spec"]["runStrategyy"] = json!("Always");
    let err = api_error(vms.create(&PostParams::default(), &typo).await.unwrap_err());
    assert_eq!(err.code, 400);
    assert!(
        err.message.contains("unknown field \"spec.runStrategyy\""),
        "{}",
        err.message
    );
    assert!(vms.get_opt("vm2").await.unwrap().is_none());
}

#[tokio::test]
async fn objects_in_missing_namespaces_are_not_found() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "nope");
    let err = api_error(
        cms.create(
            &PostParams::default(),
            &ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some("x".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
}

#[tokio::test]
async fn discovery_finds_core_and_custom_resources() {
    let server = TestServer::start().await.unwrap();
    for aggregated in [false, true] {
        let d = Discovery::new(server.client());
        let d = if aggregated {
            d.run_aggregated().await.unwrap()
        } else {
            d.run().await.unwrap()
        };
        let (ar, caps) = d
            .resolve_gvk(&GroupVersionKind::gvk(
                "kubevirt.io",
                "v1",
                "VirtualMachine",
            ))
            .unwrap();
        assert_eq!(ar.plural, "virtualmachines");
        assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
        let (ar, caps) = d
            .resolve_gvk(&GroupVersionKind::gvk("kubeovn.io", "v1", "Vpc"))
            .unwrap();
        assert_eq!(
            (ar.plural.as_str(), caps.scope.clone()),
            ("vpcs", kube::discovery::Scope::Cluster)
        );
        assert!(
            d.resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
                .is_some()
        );
    }
    let ns: Api<Namespace> = Api::all(server.client());
    assert!(ns.get("default").await.is_ok());
    let _: Api<Service> = Api::default_namespaced(server.client());
}

fn subnet_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kubeovn.io", "v1", "Subnet"),
        "subnets",
    )
}

#[tokio::test]
async fn cluster_scoped_kube_ovn_and_namespaced_metallb_objects_work() {
    let server = TestServer::start().await.unwrap();
    let subnets: Api<DynamicObject> = Api::all_with(server.client(), &subnet_resource());
    let subnet: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "kubeovn.io/v1", "kind": "Subnet",
        "metadata": {"name": "tenant-a"},
        "spec": {"cidrBlock": "10.10.0.0/24", "protocol": "IPv4", "vpc": "tenant-a"}
    }))
    .unwrap();
    let created = subnets
        .create(&PostParams::default(), &subnet)
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace, None);
    assert_eq!(
        subnets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let pools: Api<DynamicObject> = Api::namespaced_with(
        server.client(),
        "default",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("metallb.io", "v1beta1", "IPAddressPool"),
            "ipaddresspools",
        ),
    );
    let pool: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "public"},
        "spec": {"addresses": ["192.0.2.0/28"]}
    }))
    .unwrap();
    pools.create(&PostParams::default(), &pool).await.unwrap();
    let mut missing = pool.clone();
    missing.metadata.name = Some("broken".into());
    missing.data["spec"] = json!({});
    let err = api_error(
        pools
            .create(&PostParams::default(), &missing)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert_eq!(err.details.unwrap().causes[0].field, "spec.addresses");
}

#[tokio::test]
async fn lists_paginate_with_continue_tokens() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for i in 0..7 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{i}")}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut lp = ListParams::default().limit(3);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = cms.list(&lp).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        token = page.metadata.continue_.filter(|c| !c.is_empty());
        if token.is_none() {
            break;
        }
        assert!(page.metadata.remaining_item_count.unwrap() > 0);
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn label_and_field_selectors_filter_lists() {
    let server = TestServer::start().await.unwrap();
    server
        .seed_yaml(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: a, namespace: default, labels: {app: web, tier: front}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: b, namespace: default, labels: {app: web, tier: back}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c, namespace: default, labels: {app: db}}
---
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: d, namespace: other, labels: {app: web}}
"#,
        )
        .unwrap();
    let names = |list: kube::core::ObjectList<ConfigMap>| {
        let mut n: Vec<String> = list
            .items
            .into_iter()
            .map(|c| c.metadata.name.unwrap())
            .collect();
        n.sort();
        n
    };
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let all: Api<ConfigMap> = Api::all(server.client());
    for (selector, want) in [
        ("app=web", vec!["a", "b"]),
        ("app==web,tier!=back", vec!["a"]),
        ("tier in (front,back)", vec!["a", "b"]),
        ("app notin (web)", vec!["c"]),
        ("tier", vec!["a", "b"]),
        ("!tier", vec!["c"]),
    ] {
        assert_eq!(
            names(
                cms.list(&ListParams::default().labels(selector))
                    .await
                    .unwrap()
            ),
            want,
            "{selector}"
        );
    }
    assert_eq!(
        names(
            all.list(&ListParams::default().labels("app=web"))
                .await
                .unwrap()
        ),
        vec!["a", "b", "d"]
    );
    assert_eq!(
        names(
            all.list(&ListParams::default().fields("metadata.namespace=other"))
                .await
                .unwrap()
        ),
        vec!["d"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        vec!["b"]
    );
}

#[tokio::test]
async fn status_is_a_separate_subresource_and_generation_counts_spec_changes() {
    let server = TestServer::start().await.unwrap();
    let vms: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &vm_resource());
    let mut with_status = vm("vm1");
    with_status.data["status"] = json!({"printableStatus": "Running"});
    let created = vms
        .create(&PostParams::default(), &with_status)
        .await
        .unwrap();
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create"
    );

    let after_status = vms
        .patch_status("vm1", &PatchParams::default(), &Patch::Merge(json!({"status": {"printableStatus": "Stopped"}, "spec": {"runStrategy": "Always"}})))
        .await
        .unwrap();
    assert_eq!(after_status.data["status"]["printableStatus"], "Stopped");
    assert_eq!(
        after_status.data["spec"]["runStrategy"], "Halted",
        "status writes ignore spec"
    );
    assert_eq!(after_status.metadata.generation, Some(1));

    let after_spec = vms
        .patch(
            "vm1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"runStrategy": "Always"}, "status": {"printableStatus": "Bogus"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(
        after_spec.data["status"]["printableStatus"], "Stopped",
        "main writes ignore status"
    );
    assert_eq!(after_spec.metadata.generation, Some(2));

    let labels_only = vms
        .patch(
            "vm1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        labels_only.metadata.generation,
        Some(2),
        "metadata changes do not bump generation"
    );

    let same = vms
        .patch(
            "vm1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version, labels_only.metadata.resource_version,
        "no-op writes are not stored"
    );
}

#[tokio::test]
async fn finalizers_hold_deleted_objects_until_removed() {
    let server = TestServer::start().await.unwrap();
    let vms: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &vm_resource());
    let mut held = vm("vm1");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    vms.create(&PostParams::default(), &held).await.unwrap();
    let deleting = vms
        .delete("vm1", &DeleteParams::default())
        .await
        .unwrap()
        .left()
        .expect("object returned");
    assert!(deleting.metadata.deletion_timestamp.is_some());
    assert!(vms.get("vm1").await.is_ok());

    let err = api_error(
        vms.patch(
            "vm1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold", "new"]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(err.code, 422);

    vms.patch(
        "vm1",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert!(vms.get_opt("vm1").await.unwrap().is_none());
}

#[tokio::test]
async fn json_patch_and_generate_name_work() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"generateName": "cfg-"}, "data": {"a": "1"}}))
            .unwrap();
    let created = cms.create(&PostParams::default(), &cm).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("cfg-") && name.len() == 9, "{name}");
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "replace", "path": "/data/a", "value": "2"},
        {"op": "add", "path": "/data/b", "value": "3"}
    ]))
    .unwrap();
    let patched = cms
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .unwrap();
    assert_eq!(
        patched.data.unwrap(),
        [
            ("a".to_string(), "2".to_string()),
            ("b".to_string(), "3".to_string())
        ]
        .into()
    );
    let bad: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/data/a", "value": "nope"}]))
            .unwrap();
    let err = api_error(
        cms.patch(&name, &PatchParams::default(), &Patch::Json::<()>(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn discovery_documents_list_status_subresources_and_version() {
    let server = TestServer::start().await.unwrap();
    let client = server.client();
    let get = |path: &str| hyper::Request::get(path).body(Vec::new()).unwrap();
    let list: serde_json::Value = client.request(get("/apis/kubevirt.io/v1")).await.unwrap();
    let names: Vec<&str> = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"virtualmachines") && names.contains(&"virtualmachines/status"),
        "{names:?}"
    );
    let vm = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "virtualmachines")
        .unwrap();
    assert_eq!(vm["kind"], "VirtualMachine");
    assert_eq!(vm["namespaced"], true);
    assert!(vm["shortNames"].as_array().unwrap().contains(&json!("vm")));
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.major, "1");
    let core: serde_json::Value = client.request(get("/api/v1")).await.unwrap();
    assert!(
        core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "persistentvolumeclaims/status")
    );
}

#[tokio::test]
async fn delete_collection_honours_label_selectors() {
    let server = TestServer::start().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(server.client(), "default");
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}}}))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=web"),
    )
    .await
    .unwrap();
    let left: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|c| c.metadata.name.unwrap())
        .collect();
    assert_eq!(left, ["c"]);
}

#[tokio::test]
async fn strategic_merge_patch_merges_service_ports_by_port() {
    let server = TestServer::start().await.unwrap();
    let services: Api<Service> = Api::namespaced(server.client(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    }))
    .unwrap();
    let created = services.create(&PostParams::default(), &svc).await.unwrap();
    let spec = created.spec.unwrap();
    assert!(spec.cluster_ip.is_some());
    assert_eq!(
        spec.ports.as_ref().unwrap()[0].protocol.as_deref(),
        Some("TCP")
    );
    let patched = services
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"ports": [{"name": "https", "port": 443}]}})),
        )
        .await
        .unwrap();
    let ports: Vec<i32> = patched
        .spec
        .unwrap()
        .ports
        .unwrap()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [80, 443]);
}

#[tokio::test]
async fn dry_run_writes_are_validated_but_not_stored() {
    let server = TestServer::start().await.unwrap();
    let vms: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &vm_resource());
    let pp = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let answered = vms.create(&pp, &vm("vm1")).await.unwrap();
    assert_eq!(answered.metadata.name.as_deref(), Some("vm1"));
    assert!(vms.get_opt("vm1").await.unwrap().is_none());
    let mut bad = vm("vm1");
    bad.data["spec"]["runStrategy"] = json!(false);
    assert_eq!(
        api_error(vms.create(&pp, &bad).await.unwrap_err()).code,
        422
    );
}

/// A list of the default namespace's VMs asking for `accept`.
fn list_asking(accept: &str) -> http::Request<Vec<u8>> {
    let mut request =
        kube::core::Request::new("/apis/kubevirt.io/v1/namespaces/default/virtualmachines")
            .list(&ListParams::default())
            .unwrap();
    request
        .headers_mut()
        .insert("accept", accept.parse().unwrap());
    request
}

#[tokio::test]
async fn metadata_only_lists_gets_and_watches_carry_no_spec() {
    use futures::{StreamExt, TryStreamExt};
    use kube::api::WatchEvent;
    let server = TestServer::start().await.unwrap();
    let api: Api<DynamicObject> = Api::namespaced_with(server.client(), "default", &vm_resource());
    let mut one = vm("a");
    one.metadata.annotations = Some([("note".to_string(), "kept".to_string())].into());
    api.create(&PostParams::default(), &one).await.unwrap();
    // kube's metadata client asks for `as=PartialObjectMetadataList`: items are metadata only.
    let list = api.list_metadata(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let item = &list.items[0];
    assert_eq!(item.metadata.name.as_deref(), Some("a"));
    assert_eq!(item.metadata.annotations.as_ref().unwrap()["note"], "kept");
    assert!(list.metadata.resource_version.is_some());
    // What crossed the wire: no spec, the meta.k8s.io kinds.
    let raw = server
        .client()
        .request_text(list_asking(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        ))
        .await
        .unwrap();
    let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(raw["kind"], "PartialObjectMetadataList");
    assert_eq!(raw["items"][0]["kind"], "PartialObjectMetadata");
    assert_eq!(raw["items"][0]["apiVersion"], "meta.k8s.io/v1");
    assert!(raw["items"][0].get("spec").is_none(), "{raw}");
    // A get asks for one `PartialObjectMetadata`.
    let got = api.get_metadata("a").await.unwrap();
    assert_eq!(got.metadata.uid, item.metadata.uid);
    // A list asked for single objects is refused, as kube-apiserver refuses it.
    let err = server
        .client()
        .request_text(list_asking(
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
        ))
        .await
        .unwrap_err();
    assert_eq!(api_error(err).code, 406);
    // A metadata watch sees changes as metadata.
    let rv = list.metadata.resource_version.clone().unwrap();
    let mut events = api
        .watch_metadata(&kube::api::WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &vm("b")).await.unwrap();
    match events.try_next().await.unwrap() {
        Some(WatchEvent::Added(o)) => {
            assert_eq!(o.metadata.name.as_deref(), Some("b"));
            assert_eq!(
                o.types.as_ref().map(|t| t.kind.as_str()),
                Some("PartialObjectMetadata")
            );
        }
        other => panic!("expected the added VM, got {other:?}"),
    }
}

/// kube-apiserver keeps `kubernetes.io/metadata.name: <name>` on every Namespace, set on create
/// and put back on every update whatever the request says (pkg/registry/core/namespace/
/// strategy.go); clients select namespaces by it.
#[tokio::test]
async fn namespaces_carry_their_name_label_through_every_write() {
    let server = TestServer::start().await.unwrap();
    let api: Api<Namespace> = Api::all(server.client());
    let label = |ns: &Namespace| {
        ns.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/metadata.name"))
            .cloned()
    };
    let mut ns = Namespace::default();
    ns.metadata.name = Some("team-a".into());
    let created = api.create(&PostParams::default(), &ns).await.unwrap();
    assert_eq!(label(&created).as_deref(), Some("team-a"));

    // A replace that drops every label, and one that sets another value: the label is kept.
    let mut replaced = created.clone();
    replaced.metadata.labels = Some([("team".to_string(), "a".to_string())].into());
    let replaced = api
        .replace("team-a", &PostParams::default(), &replaced)
        .await
        .unwrap();
    assert_eq!(label(&replaced).as_deref(), Some("team-a"));
    let patch = json!({"metadata": {"labels": {"kubernetes.io/metadata.name": "other"}}});
    let patched = api
        .patch("team-a", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(label(&patched).as_deref(), Some("team-a"));
    assert_eq!(
        patched
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("a")
    );
    let selected = api
        .list(&ListParams::default().labels("kubernetes.io/metadata.name=team-a"))
        .await
        .unwrap();
    assert_eq!(selected.items.len(), 1);
}
