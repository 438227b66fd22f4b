//! The simulated KubeVirt (virt-controller, virt-api subresources) and CDI.

use std::time::Duration;

use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::runtime::wait::await_condition;
use kubecloud_testkit::{CdiController, KubeVirtController, TestServer, Verb};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(20);

fn api(
    server: &TestServer,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> kube::Api<DynamicObject> {
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    kube::Api::namespaced_with(server.client(), "default", &ar)
}

async fn server() -> TestServer {
    let kubevirt = KubeVirtController::new();
    TestServer::builder()
        .seed_yaml(&kubevirt.node_manifests())
        .seed_yaml("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: standard\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: test\n")
        .controller(kubevirt)
        .controller(CdiController::new())
        .start()
        .await
        .expect("server")
}

async fn until(
    api: kube::Api<DynamicObject>,
    name: &str,
    cond: impl Fn(&DynamicObject) -> bool,
) -> DynamicObject {
    tokio::time::timeout(
        TIMEOUT,
        await_condition(api, name, move |o: Option<&DynamicObject>| {
            o.is_some_and(&cond)
        }),
    )
    .await
    .expect("in time")
    .expect("watch")
    .expect("exists")
}

fn dv(name: &str, url: &str) -> serde_json::Value {
    json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"source": {"http": {"url": url}},
                 "storage": {"accessModes": ["ReadWriteMany"], "volumeMode": "Block",
                             "resources": {"requests": {"storage": "1Gi"}}}}})
}

#[tokio::test]
async fn a_data_volume_imports_and_binds_its_claim() {
    let server = server().await;
    server
        .cluster()
        .create(dv("disk", "https://images.example.com/a.qcow2"))
        .unwrap();
    let dvs = api(
        &server,
        "cdi.kubevirt.io",
        "v1beta1",
        "DataVolume",
        "datavolumes",
    );
    let done = until(dvs, "disk", |d| d.data["status"]["phase"] == "Succeeded").await;
    assert_eq!(done.data["status"]["claimName"], "disk");
    let pvc = server
        .cluster()
        .get("v1", "PersistentVolumeClaim", Some("default"), "disk")
        .unwrap();
    assert_eq!(pvc["status"]["phase"], "Bound");
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany");
}

#[tokio::test]
async fn an_import_from_an_invalid_host_fails_with_the_reason() {
    let server = server().await;
    server
        .cluster()
        .create(dv("bad", "https://images.example.invalid/a.qcow2"))
        .unwrap();
    let dvs = api(
        &server,
        "cdi.kubevirt.io",
        "v1beta1",
        "DataVolume",
        "datavolumes",
    );
    let failed = until(dvs, "bad", |d| d.data["status"]["phase"] == "Failed").await;
    let running = &failed.data["status"]["conditions"][1];
    assert!(
        running["message"]
            .as_str()
            .unwrap()
            .contains("no such host")
    );
}

fn vm(name: &str, strategy: &str) -> serde_json::Value {
    json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"runStrategy": strategy, "template": {
            "metadata": {"labels": {"app": "web"}, "annotations": {"ovn.kubernetes.io/ip_address": "10.0.0.9"}},
            "spec": {"domain": {"devices": {"interfaces": [{"name": "default", "bridge": {}}]}, "memory": {"guest": "1Gi"}},
                     "networks": [{"name": "default", "pod": {}}]}}}})
}

#[tokio::test]
async fn a_running_vm_gets_an_instance_a_launcher_pod_and_its_address() {
    let server = server().await;
    server.cluster().create(vm("web", "Always")).unwrap();
    let vmis = api(
        &server,
        "kubevirt.io",
        "v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
    );
    let vmi = until(vmis, "web", |v| v.data["status"]["phase"] == "Running").await;
    assert_eq!(vmi.data["status"]["interfaces"][0]["ipAddress"], "10.0.0.9");
    let node = vmi.data["status"]["nodeName"].as_str().unwrap();
    let pods = server
        .cluster()
        .list_selected("v1", "Pod", Some("default"), "vm.kubevirt.io/name=web")
        .unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["spec"]["nodeName"], node);
    assert_eq!(pods[0]["metadata"]["labels"]["app"], "web");
    assert_eq!(
        pods[0]["metadata"]["annotations"]["ovn.kubernetes.io/ip_address"],
        "10.0.0.9"
    );
    let vms = api(
        &server,
        "kubevirt.io",
        "v1",
        "VirtualMachine",
        "virtualmachines",
    );
    until(vms, "web", |v| {
        v.data["status"]["printableStatus"] == "Running" && v.data["status"]["ready"] == true
    })
    .await;
}

async fn put(server: &TestServer, vm: &str, action: &str) -> Result<(), kube::Error> {
    let path = format!(
        "/apis/subresources.kubevirt.io/v1/namespaces/default/virtualmachines/{vm}/{action}"
    );
    let request = hyper::Request::put(path).body(b"{}".to_vec()).unwrap();
    server.client().request_text(request).await.map(|_| ())
}

#[tokio::test]
async fn the_subresources_start_and_stop_as_virt_api_does() {
    let server = server().await;
    server.cluster().create(vm("web", "Halted")).unwrap();
    let vms = api(
        &server,
        "kubevirt.io",
        "v1",
        "VirtualMachine",
        "virtualmachines",
    );
    until(vms.clone(), "web", |v| {
        v.data["status"]["printableStatus"] == "Stopped"
    })
    .await;
    match put(&server, "web", "stop").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
        other => panic!("stop of a stopped VM: {other:?}"),
    }
    put(&server, "web", "start").await.unwrap();
    let started = until(vms.clone(), "web", |v| {
        v.data["status"]["printableStatus"] == "Running"
    })
    .await;
    assert_eq!(started.data["spec"]["runStrategy"], "Always");
    put(&server, "web", "stop").await.unwrap();
    until(vms, "web", |v| {
        v.data["status"]["printableStatus"] == "Stopped"
    })
    .await;
    match put(&server, "missing", "start").await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("start of a missing VM: {other:?}"),
    }
    assert_eq!(
        server
            .requests()
            .count_where(|r| r.group == "subresources.kubevirt.io" && r.verb == Verb::Update),
        4
    );
}

#[tokio::test]
async fn a_migration_moves_the_instance_and_keeps_the_address() {
    let server = server().await;
    server.cluster().create(vm("web", "Always")).unwrap();
    let vmis = api(
        &server,
        "kubevirt.io",
        "v1",
        "VirtualMachineInstance",
        "virtualmachineinstances",
    );
    let before = until(vmis.clone(), "web", |v| {
        v.data["status"]["phase"] == "Running"
    })
    .await;
    let source = before.data["status"]["nodeName"]
        .as_str()
        .unwrap()
        .to_string();
    let target = if source == "node-3" {
        "node-1"
    } else {
        "node-3"
    };
    server
        .cluster()
        .create(
            json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "m", "namespace": "default"},
        "spec": {"vmiName": "web", "addedNodeSelector": {"kubernetes.io/hostname": target}}}),
        )
        .unwrap();
    let migs = api(
        &server,
        "kubevirt.io",
        "v1",
        "VirtualMachineInstanceMigration",
        "virtualmachineinstancemigrations",
    );
    until(migs, "m", |m| m.data["status"]["phase"] == "Succeeded").await;
    let after = until(vmis, "web", |v| {
        v.data["status"]["migrationState"]["completed"] == true
    })
    .await;
    assert_eq!(after.data["status"]["nodeName"], target);
    assert_eq!(
        after.data["status"]["interfaces"],
        before.data["status"]["interfaces"]
    );
    let pods = server
        .cluster()
        .list_selected("v1", "Pod", Some("default"), "vm.kubevirt.io/name=web")
        .unwrap();
    assert_eq!(pods.len(), 1, "the source launcher pod is gone");
}
