//! The `kubecloud-sim` binary against the API double over HTTP, as it would run against kind or
//! k3s: the double runs only what a control plane has (CRD establishment, garbage collector,
//! namespaces, PVC protection); the binary installs the CRDs, starts the LINSTOR double and
//! simulates KubeVirt + CDI, Kube-OVN, MetalLB and the LINSTOR CSI driver through the API.
//! Everything is awaited on watches or on the binary's output, never by sleeping.
//!
//! The whole-stack conformance suite with the same engine is `tests/all_backends_sim.rs` at the
//! repository root.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::runtime::wait::await_condition;
use kubecloud_testkit::{
    GarbageCollector, KubeVirtController, NamespaceController, PvcProtection, TestServer,
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const TIMEOUT: Duration = Duration::from_secs(60);

/// A bare control plane: the double with only what kube-apiserver and kube-controller-manager
/// do, and three Node objects.
async fn control_plane() -> TestServer {
    let nodes = KubeVirtController::new()
        .with_nodes(&["node-1", "node-2", "node-3"])
        .node_manifests();
    TestServer::builder()
        .without_default_controllers()
        .controller(GarbageCollector)
        .controller(NamespaceController)
        .controller(PvcProtection)
        .seed_yaml(&nodes)
        .start()
        .await
        .expect("API double")
}

/// A kubeconfig for `server` in a fresh file (JSON is YAML).
fn kubeconfig(server: &TestServer, name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "kubecloud-sim-{name}-{}.kubeconfig",
        std::process::id()
    ));
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "double", "cluster": {"server": server.url()}}],
        "users": [{"name": "double", "user": {}}],
        "contexts": [{"name": "double", "context": {"cluster": "double", "user": "double"}}],
        "current-context": "double",
    });
    std::fs::write(&path, config.to_string()).expect("kubeconfig written");
    path
}

/// The running binary; killed if a test fails before stopping it.
struct Sim {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Sim {
    fn start(kubeconfig: &PathBuf, extra: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubecloud-sim"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("kubecloud-sim starts");
        let stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Sim { child, stdout }
    }

    /// The next line on standard output.
    async fn line(&mut self) -> String {
        tokio::time::timeout(TIMEOUT, self.stdout.next_line())
            .await
            .expect("a line in time")
            .expect("stdout readable")
            .expect("a line before the end")
    }

    /// SIGTERM; the exit status.
    async fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(TIMEOUT, self.child.wait())
            .await
            .expect("exits in time")
            .expect("exit status")
    }
}

fn api(
    server: &TestServer,
    gvk: (&str, &str, &str),
    plural: &str,
    ns: &str,
) -> kube::Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(gvk.0, gvk.1, gvk.2), plural);
    kube::Api::namespaced_with(server.client(), ns, &ar)
}

async fn until(api: kube::Api<DynamicObject>, name: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let found = tokio::time::timeout(
        TIMEOUT,
        await_condition(api, name, move |o: Option<&DynamicObject>| {
            o.is_some_and(|o| cond(&o.data))
        }),
    )
    .await
    .expect("in time")
    .expect("watch")
    .expect("exists");
    found.data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_simulates_cdi_linstor_csi_kubevirt_and_metallb_over_http() {
    let server = control_plane().await;
    let config = kubeconfig(&server, "all");
    let mut sim = Sim::start(&config, &["--install-crds"]);
    let linstor = sim.line().await;
    assert!(
        linstor.starts_with("linstor controller at https://127.0.0.1:"),
        "{linstor}"
    );
    assert_eq!(sim.line().await, "ready");
    let cluster = server.cluster();

    // The CRDs were installed and are established; Piraeus' objects point at the LINSTOR double.
    let crd = cluster
        .get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "virtualmachines.kubevirt.io",
        )
        .unwrap();
    assert!(
        crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    );
    let lc = cluster
        .get("piraeus.io/v1", "LinstorCluster", None, "linstorcluster")
        .unwrap();
    assert_eq!(
        Some(lc["spec"]["externalController"]["url"].as_str().unwrap()),
        linstor.strip_prefix("linstor controller at ")
    );

    // CDI imports into a claim of class `fast`, which the LINSTOR CSI driver provisions.
    cluster
        .create(
            json!({"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
            "metadata": {"name": "disk", "namespace": "default"},
            "spec": {"source": {"http": {"url": "https://images.example.com/a.qcow2"}},
                     "storage": {"storageClassName": "fast", "accessModes": ["ReadWriteMany"],
                                 "volumeMode": "Block",
                                 "resources": {"requests": {"storage": "1Gi"}}}}}),
        )
        .unwrap();
    let dvs = api(
        &server,
        ("cdi.kubevirt.io", "v1beta1", "DataVolume"),
        "datavolumes",
        "default",
    );
    until(dvs, "disk", |d| d["status"]["phase"] == "Succeeded").await;
    let claim = cluster
        .get("v1", "PersistentVolumeClaim", Some("default"), "disk")
        .unwrap();
    let pv_name = claim["spec"]["volumeName"].as_str().expect("bound");
    let pv = cluster
        .get("v1", "PersistentVolume", None, pv_name)
        .unwrap();
    assert_eq!(pv["spec"]["csi"]["driver"], "linstor.csi.linbit.com");

    // KubeVirt runs a VM.
    cluster
        .create(json!({"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
            "metadata": {"name": "vm", "namespace": "default"},
            "spec": {"runStrategy": "Always",
                     "template": {"spec": {"domain": {"devices": {}, "memory": {"guest": "1Gi"}}}}}}))
        .unwrap();
    let vms = api(
        &server,
        ("kubevirt.io", "v1", "VirtualMachine"),
        "virtualmachines",
        "default",
    );
    until(vms, "vm", |v| v["status"]["printableStatus"] == "Running").await;

    // MetalLB gives a LoadBalancer Service an address of the pool.
    cluster
        .create(
            json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
            "metadata": {"name": "public", "namespace": "metallb-system"},
            "spec": {"addresses": ["192.0.2.0/28"]}}),
        )
        .unwrap();
    cluster
        .create(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": "web"}}}))
        .unwrap();
    let services = kube::Api::<DynamicObject>::namespaced_with(
        server.client(),
        "default",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Service"), "services"),
    );
    let svc = until(services, "web", |s| {
        s["status"]["loadBalancer"]["ingress"][0]["ip"].is_string()
    })
    .await;
    let ip: std::net::Ipv4Addr = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        "192.0.2.0/28"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(&ip)
    );

    // The writes came over HTTP under each controller's own field manager.
    for manager in [
        "cdi-deployment",
        "linstor-csi",
        "virt-controller",
        "metallb-controller",
    ] {
        let needle = format!("fieldManager={manager}");
        assert!(
            server.requests().count_where(|r| r.query.contains(&needle)) > 0,
            "no request by {manager}"
        );
    }
    assert!(sim.stop().await.success());
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn only_the_chosen_systems_are_installed_and_simulated() {
    let server = control_plane().await;
    let config = kubeconfig(&server, "only");
    let mut sim = Sim::start(&config, &["--install-crds", "--only", "metallb"]);
    // No LINSTOR double without the CSI driver: the first line is `ready`.
    assert_eq!(sim.line().await, "ready");
    let crds = server
        .cluster()
        .list("apiextensions.k8s.io/v1", "CustomResourceDefinition", None)
        .unwrap();
    assert!(!crds.is_empty());
    for crd in &crds {
        assert_eq!(
            crd["spec"]["group"], "metallb.io",
            "{}",
            crd["metadata"]["name"]
        );
    }
    assert!(
        server
            .cluster()
            .list("piraeus.io/v1", "LinstorCluster", None)
            .unwrap()
            .is_empty()
    );
    assert!(sim.stop().await.success());
    let _ = std::fs::remove_file(config);
}

#[tokio::test]
async fn an_unreadable_kubeconfig_is_one_sentence_and_status_1() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kubecloud-sim"))
        .args(["--kubeconfig", "/nonexistent/kubeconfig"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("kubecloud-sim: could not read the kubeconfig /nonexistent/kubeconfig"),
        "{stderr}"
    );
}
