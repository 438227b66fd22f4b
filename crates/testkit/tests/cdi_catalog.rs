//! The simulated CDI's golden images: DataImportCron, DataSource readiness, clones by
//! `sourceRef` (never an import), and KubeVirt's cross-namespace clone authorization.

use std::time::Duration;

use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::runtime::wait::await_condition;
use kubecloud_testkit::{CdiController, KubeVirtController, Rbac, TestServer};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(20);
const URL: &str = "docker://quay.io/containerdisks/fedora:40";

fn api(server: &TestServer, ns: &str, kind: &str, plural: &str) -> kube::Api<DynamicObject> {
    let (group, version) = match kind {
        "VirtualMachine" => ("kubevirt.io", "v1"),
        _ => ("cdi.kubevirt.io", "v1beta1"),
    };
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
    kube::Api::namespaced_with(server.client(), ns, &ar)
}

async fn server(cdi: &CdiController) -> TestServer {
    server_with(cdi, Rbac::default()).await
}

async fn server_with(cdi: &CdiController, rbac: Rbac) -> TestServer {
    let kubevirt = KubeVirtController::new().with_rbac(rbac);
    TestServer::builder()
        .seed_yaml(&kubevirt.node_manifests())
        .seed_yaml("apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: standard\n  annotations: {storageclass.kubernetes.io/is-default-class: \"true\"}\nprovisioner: test\n")
        .seed_yaml("apiVersion: v1\nkind: Namespace\nmetadata: {name: images}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: tenant}\n")
        .controller(kubevirt)
        .controller(cdi.clone())
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
    .unwrap_or_else(|_| panic!("{name} in time"))
    .expect("watch")
    .expect("exists")
}

fn condition(o: &DynamicObject, type_: &str) -> Value {
    o.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .cloned()
        .unwrap_or(Value::Null)
}

fn storage(size: &str) -> Value {
    json!({"resources": {"requests": {"storage": size}}, "storageClassName": "standard"})
}

fn cron(name: &str, url: &str) -> Value {
    json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataImportCron",
        "metadata": {"name": name, "namespace": "images"},
        "spec": {"managedDataSource": name, "schedule": "0 3 * * *", "retentionPolicy": "None",
                 "template": {"spec": {"source": {"registry": {"url": url}}, "storage": storage("1Gi")}}}})
}

fn clone(name: &str, size: &str) -> Value {
    json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
        "metadata": {"name": name, "namespace": "tenant",
                     "annotations": {"cdi.kubevirt.io/storage.bind.immediate.requested": "true"}},
        "spec": {"sourceRef": {"kind": "DataSource", "name": "fedora", "namespace": "images"},
                 "storage": storage(size)}})
}

async fn ready_source(server: &TestServer) -> DynamicObject {
    server.cluster().create(cron("fedora", URL)).unwrap();
    until(
        api(server, "images", "DataSource", "datasources"),
        "fedora",
        |d| condition(d, "Ready")["status"] == "True",
    )
    .await
}

#[tokio::test]
async fn a_cron_imports_once_and_clones_of_its_data_source_never_import() {
    let cdi = CdiController::new();
    let server = server(&cdi).await;
    let ds = ready_source(&server).await;
    assert_eq!(condition(&ds, "Ready")["reason"], "Ready");
    let crons = api(&server, "images", "DataImportCron", "dataimportcrons");
    let cron = until(crons, "fedora", |c| {
        condition(c, "UpToDate")["status"] == "True"
    })
    .await;
    let imported = cron.data["status"]["lastImportedPVC"]["name"]
        .as_str()
        .expect("lastImportedPVC")
        .to_string();
    assert!(imported.starts_with("fedora-") && imported.len() == "fedora-".len() + 12);
    assert!(cron.data["status"]["lastImportTimestamp"].is_string());
    assert_eq!(ds.data["spec"]["source"]["pvc"]["name"], imported.as_str());
    assert_eq!(
        ds.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("cdi.kubevirt.io/dataImportCron")),
        Some(&"fedora".to_string())
    );
    assert_eq!(cdi.imports(), 1);

    let dvs = api(&server, "tenant", "DataVolume", "datavolumes");
    for i in 0..5 {
        server
            .cluster()
            .create(clone(&format!("vm-{i}"), "2Gi"))
            .unwrap();
    }
    for i in 0..5 {
        let dv = until(dvs.clone(), &format!("vm-{i}"), |d| {
            d.data["status"]["phase"] == "Succeeded"
        })
        .await;
        assert_eq!(dv.data["status"]["claimName"], format!("vm-{i}"));
    }
    let claim = server
        .cluster()
        .get("v1", "PersistentVolumeClaim", Some("tenant"), "vm-0")
        .unwrap();
    assert_eq!(
        claim["metadata"]["annotations"]["cdi.kubevirt.io/cloneType"],
        "csi-clone"
    );
    assert_eq!(cdi.imports(), 1, "clones never import");

    server.cluster().create(clone("small", "512Mi")).unwrap();
    let small = until(dvs, "small", |d| d.data["status"]["phase"] == "Failed").await;
    assert_eq!(
        condition(&small, "Running")["reason"],
        "CloneValidationFailed"
    );

    // A new version published: the scheduled cron imports it once.
    cdi.publish_image(URL);
    server
        .cluster()
        .merge_patch(
            "cdi.kubevirt.io/v1beta1",
            "DataImportCron",
            Some("images"),
            "fedora",
            &json!({"metadata": {"labels": {"poke": "1"}}}),
        )
        .unwrap();
    let ds = until(
        api(&server, "images", "DataSource", "datasources"),
        "fedora",
        |d| d.data["spec"]["source"]["pvc"]["name"] != imported.as_str(),
    )
    .await;
    assert_eq!(condition(&ds, "Ready")["status"], "True");
    assert_eq!(cdi.imports(), 2);

    // Deleting the cron (retentionPolicy None) deletes its DataSource.
    server
        .cluster()
        .delete(
            "cdi.kubevirt.io/v1beta1",
            "DataImportCron",
            Some("images"),
            "fedora",
        )
        .unwrap();
    let sources = api(&server, "images", "DataSource", "datasources");
    tokio::time::timeout(
        TIMEOUT,
        await_condition(sources, "fedora", |o: Option<&DynamicObject>| o.is_none()),
    )
    .await
    .expect("in time")
    .expect("watch");
}

#[tokio::test]
async fn a_data_source_without_a_source_is_not_ready_and_its_clones_wait() {
    let cdi = CdiController::new();
    let server = server(&cdi).await;
    server
        .cluster()
        .create(
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataSource",
            "metadata": {"name": "fedora", "namespace": "images"}, "spec": {"source": {}}}),
        )
        .unwrap();
    let ds = until(
        api(&server, "images", "DataSource", "datasources"),
        "fedora",
        |d| !condition(d, "Ready").is_null(),
    )
    .await;
    assert_eq!(condition(&ds, "Ready")["status"], "False");
    assert_eq!(condition(&ds, "Ready")["reason"], "NoSource");
    server.cluster().create(clone("waits", "1Gi")).unwrap();
    // A failing import keeps the cron's DataSource not ready, naming the phase.
    server
        .cluster()
        .create(cron("broken", "docker://registry.example.invalid/os:1"))
        .unwrap();
    let crons = api(&server, "images", "DataImportCron", "dataimportcrons");
    let broken = until(crons, "broken", |c| {
        condition(c, "Progressing")["reason"] == "Failed"
    })
    .await;
    assert_eq!(condition(&broken, "UpToDate")["status"], "False");
    let waiting = server
        .cluster()
        .get(
            "cdi.kubevirt.io/v1beta1",
            "DataVolume",
            Some("tenant"),
            "waits",
        )
        .unwrap();
    assert!(
        waiting["status"]["phase"].is_null(),
        "a clone of a DataSource without a source is left alone: {waiting}"
    );
    assert!(
        server
            .cluster()
            .get_opt("v1", "PersistentVolumeClaim", Some("tenant"), "waits")
            .unwrap()
            .is_none()
    );
}

fn vm() -> Value {
    json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "web", "namespace": "tenant"},
        "spec": {"runStrategy": "Always",
            "dataVolumeTemplates": [{"metadata": {"name": "web-boot"},
                "spec": {"sourceRef": {"kind": "DataSource", "name": "fedora", "namespace": "images"},
                         "storage": storage("1Gi")}}],
            "template": {"spec": {"domain": {"devices": {}},
                "volumes": [{"name": "boot", "dataVolume": {"name": "web-boot"}}]}}}})
}

#[tokio::test]
async fn kubevirt_clones_across_namespaces_only_when_the_service_account_may() {
    let cdi = CdiController::new();
    let rbac = Rbac::default();
    let server = server_with(&cdi, rbac.clone()).await;
    ready_source(&server).await;
    server.cluster().create(vm()).unwrap();
    let vms = api(&server, "tenant", "VirtualMachine", "virtualmachines");
    let refused = until(vms.clone(), "web", |v| {
        condition(v, "Failure")["status"] == "True"
    })
    .await;
    let message = condition(&refused, "Failure")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("system:serviceaccount:tenant:default has insufficient permissions in clone source namespace images"),
        "{message}"
    );
    let events = server
        .cluster()
        .list("v1", "Event", Some("tenant"))
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "UnauthorizedDataVolumeCreate"),
        "{events:?}"
    );
    assert!(
        server
            .cluster()
            .get_opt(
                "cdi.kubevirt.io/v1beta1",
                "DataVolume",
                Some("tenant"),
                "web-boot"
            )
            .unwrap()
            .is_none()
    );

    // What the catalog's RBAC grants: the tenant's service accounts may clone from `images`.
    rbac.install(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "catalog-clone", "namespace": "images"},
            "rules": [{"apiGroups": ["cdi.kubevirt.io"], "resources": ["datavolumes/source"], "verbs": ["create"]}]}));
    rbac.install(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "catalog-clone", "namespace": "images"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "catalog-clone"},
            "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:serviceaccounts:tenant"}]}));
    server
        .cluster()
        .merge_patch(
            "kubevirt.io/v1",
            "VirtualMachine",
            Some("tenant"),
            "web",
            &json!({"metadata": {"labels": {"poke": "1"}}}),
        )
        .unwrap();
    until(
        api(&server, "tenant", "DataVolume", "datavolumes"),
        "web-boot",
        |d| d.data["status"]["phase"] == "Succeeded",
    )
    .await;
    until(vms, "web", |v| {
        v.data["status"]["printableStatus"] == "Running"
    })
    .await;
    assert_eq!(cdi.imports(), 1);
}
