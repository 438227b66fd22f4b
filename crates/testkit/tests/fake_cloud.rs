//! The `kubecloud-fake-cloud` binary as a user runs it: spawned as a process, with `kubectl`
//! pointed at the kubeconfig it writes.
//!
//! `kubectl` must be on `PATH` (CI has it); without it these tests fail and say so, unless
//! `KUBECLOUD_SKIP_KUBECTL=1` is set, in which case the kubectl tests print that they skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// Guard on every wait: generous, only hit when something is broken.
const TIMEOUT: Duration = Duration::from_secs(60);

/// `kubectl` on `PATH`; `None` (skip) only when `KUBECLOUD_SKIP_KUBECTL=1`, else a failure
/// asking to install it.
fn kubectl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if std::env::var("KUBECLOUD_SKIP_KUBECTL").as_deref() == Ok("1") => {
            eprintln!("skipped: kubectl is not on PATH and KUBECLOUD_SKIP_KUBECTL=1");
            None
        }
        None => panic!(
            "kubectl is not on PATH: install kubectl (https://kubernetes.io/docs/tasks/tools/) \
             to run these tests, or set KUBECLOUD_SKIP_KUBECTL=1 to skip them"
        ),
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kubecloud-fake-cloud-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The running binary (killed on drop) and what it printed.
struct Fake {
    child: Child,
    _stdout: Lines<BufReader<ChildStdout>>,
    url: String,
    linstor_url: String,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    _dir: TempDir,
}

fn binary() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubecloud-fake-cloud"));
    cmd.env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// Reads lines until one is `want`.
async fn until(lines: &mut Lines<BufReader<ChildStdout>>, want: &str) {
    while next_line(lines).await != want {}
}

async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("a line from the fake cloud in time")
        .expect("reading stdout")
        .expect("the fake cloud exited early")
}

impl Fake {
    async fn start(kubectl: PathBuf) -> Fake {
        let dir = TempDir::new();
        let kubeconfig = dir.0.join("fake.kubeconfig");
        let mut child = binary()
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .spawn()
            .expect("spawn kubecloud-fake-cloud");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = next_line(&mut stdout).await;
        let url = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {first}"))
            .to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        let export = next_line(&mut stdout).await;
        assert_eq!(
            export,
            format!("export KUBECONFIG={}", kubeconfig.display())
        );
        let linstor = next_line(&mut stdout).await;
        let linstor_url = linstor
            .strip_prefix("linstor controller at ")
            .unwrap_or_else(|| panic!("third line: {linstor}"))
            .to_string();
        Fake {
            child,
            _stdout: stdout,
            url,
            linstor_url,
            kubeconfig,
            kubectl,
            _dir: dir,
        }
    }

    fn kubectl(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs kubectl with `stdin`; returns (success, stdout, stderr).
    async fn run(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut child = self.kubectl(args).spawn().expect("spawn kubectl");
        let mut input = child.stdin.take().expect("stdin");
        input
            .write_all(stdin.as_bytes())
            .await
            .expect("write stdin");
        drop(input);
        let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish"))
            .expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubectl and expects success; returns stdout.
    async fn ok(&self, args: &[&str], stdin: &str) -> String {
        let (ok, out, err) = self.run(args, stdin).await;
        assert!(ok, "kubectl {args:?} failed: {err}\n{out}");
        out
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all, "").await).expect("kubectl -o json")
    }
}

const SUBNET_AND_VM: &str = r#"
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: web
spec:
  cidrBlock: 10.1.0.0/24
  gateway: 10.1.0.1
  protocol: IPv4
---
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: vm1
  namespace: default
spec:
  runStrategy: Always
  template:
    spec:
      domain:
        devices: {}
        memory:
          guest: 1Gi
"#;

#[tokio::test]
async fn kubectl_applies_gets_watches_and_deletes() {
    let Some(kubectl) = kubectl() else { return };
    let fake = Fake::start(kubectl).await;

    // Client-side apply from YAML: kubectl GETs, then POSTs.
    let out = fake.ok(&["apply", "-f", "-"], SUBNET_AND_VM).await;
    assert!(out.contains("subnet.kubeovn.io/web created"), "{out}");
    assert!(
        out.contains("virtualmachine.kubevirt.io/vm1 created"),
        "{out}"
    );
    let subnet = fake.json(&["get", "subnet", "web"]).await;
    assert_eq!(subnet["spec"]["cidrBlock"], "10.1.0.0/24");
    assert_eq!(subnet["spec"]["gateway"], "10.1.0.1");
    assert!(
        subnet["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
    // Short names and plurals from discovery.
    let vms = fake.ok(&["get", "vms", "-o", "name"], "").await;
    assert_eq!(vms.trim(), "virtualmachine.kubevirt.io/vm1");
    let subnets = fake.ok(&["get", "subnets", "-o", "name"], "").await;
    assert_eq!(subnets.trim(), "subnet.kubeovn.io/web");

    // Client-side apply of an unchanged file changes nothing.
    let out = fake.ok(&["apply", "-f", "-"], SUBNET_AND_VM).await;
    assert!(out.contains("subnet.kubeovn.io/web unchanged"), "{out}");

    // A watch in the background; its first line (from the initial list) says it is running.
    let mut watch = fake
        .kubectl(&[
            "get",
            "subnets",
            "web",
            "--watch",
            "--output-watch-events",
            "-o",
            r#"jsonpath={.type} {.object.metadata.name} {.object.spec.gateway}{"\n"}"#,
        ])
        .spawn()
        .expect("kubectl get -w");
    let mut events = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    assert_eq!(next_line(&mut events).await, "ADDED web 10.1.0.1");

    // Server-side apply of a change; the client-side manager's field is taken over.
    let changed = SUBNET_AND_VM.replace("gateway: 10.1.0.1", "gateway: 10.1.0.254");
    let out = fake
        .ok(
            &["apply", "--server-side", "--force-conflicts", "-f", "-"],
            &changed,
        )
        .await;
    assert!(
        out.contains("subnet.kubeovn.io/web serverside-applied"),
        "{out}"
    );
    let subnet = fake
        .json(&["get", "subnet", "web", "--show-managed-fields"])
        .await;
    assert_eq!(subnet["spec"]["gateway"], "10.1.0.254");
    let managers = subnet["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields");
    let kubectl_apply = managers
        .iter()
        .find(|m| m["manager"] == "kubectl" && m["operation"] == "Apply")
        .unwrap_or_else(|| panic!("no Apply by kubectl in {managers:?}"));
    assert!(
        kubectl_apply["fieldsV1"]["f:spec"]["f:gateway"].is_object(),
        "{kubectl_apply}"
    );

    // The watch sees the change (maybe after controllers' status updates), then the deletion.
    until(&mut events, "MODIFIED web 10.1.0.254").await;
    let out = fake.ok(&["delete", "subnet", "web"], "").await;
    assert!(out.contains(r#"subnet.kubeovn.io "web" deleted"#), "{out}");
    until(&mut events, "DELETED web 10.1.0.254").await;
    drop(watch);

    let (ok, _, err) = fake.run(&["get", "subnet", "web"], "").await;
    assert!(!ok);
    assert!(
        err.contains(r#"subnets.kubeovn.io "web" not found"#),
        "{err}"
    );
}

#[tokio::test]
async fn a_watch_in_the_default_output_prints_table_rows() {
    let Some(kubectl) = kubectl() else { return };
    let fake = Fake::start(kubectl).await;
    fake.ok(&["apply", "-f", "-"], SUBNET_AND_VM).await;
    let mut watch = fake
        .kubectl(&["get", "subnets", "--watch", "--output-watch-events"])
        .spawn()
        .expect("kubectl get -w");
    let mut lines = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let header = next_line(&mut lines).await;
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns[..3], ["EVENT", "NAME", "PROVIDER"], "{header}");
    assert!(columns.contains(&"CIDR"), "{header}");
    let added = next_line(&mut lines).await;
    assert!(
        added.starts_with("ADDED ") && added.contains(" web "),
        "{added}"
    );
    assert!(added.contains("10.1.0.0/24"), "{added}");
    fake.ok(&["delete", "subnet", "web"], "").await;
    loop {
        let line = next_line(&mut lines).await;
        if line.starts_with("DELETED ") {
            assert!(line.contains(" web "), "{line}");
            break;
        }
    }
    drop(watch);
}

#[tokio::test]
async fn unknown_fields_are_refused_by_strict_validation() {
    let Some(kubectl) = kubectl() else { return };
    let fake = Fake::start(kubectl).await;
    let bad = r#"
apiVersion: kubeovn.io/v1
kind: Subnet
metadata:
  name: bad
spec:
  cidrBlock: 10.2.0.0/24
  bogusField: 1
"#;
    let (ok, out, err) = fake.run(&["apply", "-f", "-"], bad).await;
    assert!(!ok, "{out}");
    assert!(
        err.contains(r#"strict decoding error: unknown field "spec.bogusField""#),
        "{err}"
    );
    let (ok, _, err) = fake.run(&["apply", "--server-side", "-f", "-"], bad).await;
    assert!(!ok);
    // Server-side apply: the typed conversion fails, whatever fieldValidation says.
    assert!(
        err.contains(".spec.bogusField: field not declared in schema"),
        "{err}"
    );
    let (ok, _, _) = fake.run(&["get", "subnet", "bad"], "").await;
    assert!(!ok, "nothing was stored");
}

#[tokio::test]
async fn kubectl_create_shortcuts_send_protobuf_the_double_decodes_or_refuses() {
    let Some(kubectl) = kubectl() else { return };
    let fake = Fake::start(kubectl).await;
    // `kubectl create namespace|configmap|secret` send protobuf bodies.
    let out = fake.ok(&["create", "namespace", "t1"], "").await;
    assert!(out.contains("namespace/t1 created"), "{out}");
    let ns = fake.json(&["get", "namespace", "t1"]).await;
    assert_eq!(ns["status"]["phase"], "Active");
    fake.ok(
        &["create", "configmap", "c", "-n", "t1", "--from-literal=a=b"],
        "",
    )
    .await;
    let cm = fake.json(&["get", "configmap", "c", "-n", "t1"]).await;
    assert_eq!(cm["data"], serde_json::json!({"a": "b"}));
    fake.ok(
        &[
            "create",
            "secret",
            "generic",
            "s",
            "-n",
            "t1",
            "--from-literal=pw=hunter2",
        ],
        "",
    )
    .await;
    let secret = fake.json(&["get", "secret", "s", "-n", "t1"]).await;
    assert_eq!(secret["data"]["pw"], "aHVudGVyMg==");
    // A kind the double does not decode from protobuf is refused with 415, and nothing stored.
    let (ok, _, err) = fake
        .run(
            &["create", "service", "clusterip", "web", "--tcp=80:80"],
            "",
        )
        .await;
    assert!(!ok);
    assert!(
        err.contains("accepted media types include: application/json")
            && err.contains("this body is a v1 Service"),
        "{err}"
    );
    let (ok, _, _) = fake.run(&["get", "service", "web"], "").await;
    assert!(!ok);
    // The same as a manifest goes as JSON.
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n";
    let out = fake.ok(&["create", "-f", "-"], svc).await;
    assert!(out.contains("service/web created"), "{out}");
    let out = fake.ok(&["delete", "namespace", "t1"], "").await;
    assert!(out.contains(r#"namespace "t1" deleted"#), "{out}");
}

#[tokio::test]
async fn sigterm_stops_the_server_and_leaves_the_kubeconfig() {
    let Some(kubectl) = kubectl() else { return };
    let mut fake = Fake::start(kubectl).await;
    let pid = fake.child.id().expect("running").to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill -TERM");
    assert!(status.success());
    let exit = tokio::time::timeout(TIMEOUT, fake.child.wait())
        .await
        .expect("stops on SIGTERM")
        .expect("exit status");
    assert!(exit.success(), "{exit:?}");
    assert!(fake.kubeconfig.is_file(), "the kubeconfig stays");
    let (ok, _, err) = fake.run(&["get", "nodes"], "").await;
    assert!(!ok, "nothing listens any more");
    assert!(err.contains("refused"), "{err}");
}

#[tokio::test]
async fn simulated_controllers_act_on_what_kubectl_applies() {
    let Some(kubectl) = kubectl() else { return };
    let fake = Fake::start(kubectl).await;
    fake.ok(&["apply", "-f", "-"], SUBNET_AND_VM).await;
    // KubeVirt's double starts the VM: a VMI, and the VM Ready (kubectl waits on a watch).
    fake.ok(
        &["wait", "--for=condition=Ready", "vm/vm1", "--timeout=60s"],
        "",
    )
    .await;
    let vm = fake.json(&["get", "vm", "vm1"]).await;
    assert_eq!(vm["status"]["printableStatus"], "Running");
    // The default output is the server's Table with the CRD's printer columns.
    let table = fake.ok(&["get", "vms"], "").await;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["NAME", "AGE", "STATUS", "READY"], "{table}");
    assert_eq!(
        (rows[1][0], rows[1][2], rows[1][3]),
        ("vm1", "Running", "True"),
        "{table}"
    );
    let vmi = fake.json(&["get", "vmi", "vm1"]).await;
    assert_eq!(vmi["metadata"]["ownerReferences"][0]["name"], "vm1");
    // Categories in discovery: `all` takes in KubeVirt's kinds and the launcher pod.
    let all = fake.ok(&["get", "all", "-o", "name"], "").await;
    for want in [
        "virtualmachine.kubevirt.io/vm1",
        "virtualmachineinstance.kubevirt.io/vm1",
        "pod/virt-launcher-vm1-",
    ] {
        assert!(all.lines().any(|l| l.starts_with(want)), "{want} in {all}");
    }

    // Built-in kinds: client-side apply twice (the second is a strategic merge patch).
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c1}\ndata: {a: \"1\"}\n";
    fake.ok(&["apply", "-f", "-"], cm).await;
    fake.ok(&["apply", "-f", "-"], &cm.replace("a: \"1\"", "b: \"2\""))
        .await;
    let got = fake.json(&["get", "configmap", "c1"]).await;
    assert_eq!(got["data"], serde_json::json!({"b": "2"}));
}

#[tokio::test]
async fn the_cluster_is_seeded_like_one_with_piraeus_installed() {
    let Some(kubectl) = kubectl() else { return };
    let fake = Fake::start(kubectl).await;
    let nodes = fake.ok(&["get", "nodes", "-o", "name"], "").await;
    assert_eq!(
        nodes.lines().collect::<Vec<_>>(),
        ["node/node-1", "node/node-2", "node/node-3"]
    );
    let lc = fake
        .json(&["get", "linstorclusters.piraeus.io", "linstorcluster"])
        .await;
    assert_eq!(lc["spec"]["externalController"]["url"], fake.linstor_url);
    let sc = fake.json(&["get", "storageclass", "linstor-default"]).await;
    assert_eq!(
        sc["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    let resources = fake.ok(&["api-resources", "--no-headers"], "").await;
    let vm = resources
        .lines()
        .find(|l| l.starts_with("virtualmachines "))
        .unwrap_or_else(|| panic!("no virtualmachines in {resources}"));
    assert!(
        vm.contains("vm,vms") && vm.contains("kubevirt.io/v1"),
        "{vm}"
    );
    assert!(fake.url.starts_with("http://127.0.0.1:"));
}

#[tokio::test]
async fn a_port_in_use_or_an_unwritable_path_exits_with_a_sentence() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port().to_string();
    let dir = TempDir::new();
    let out = tokio::time::timeout(
        TIMEOUT,
        binary()
            .args(["--port", &port, "--kubeconfig"])
            .arg(dir.0.join("k"))
            .output(),
    )
    .await
    .expect("exits")
    .expect("output");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "could not start the fake cloud on 127.0.0.1:{port} (is the port in use?)"
        )),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing announced");
    assert!(!dir.0.join("k").exists(), "no kubeconfig written");

    let unwritable: &Path = &dir.0.join("missing-dir").join("k");
    let out = tokio::time::timeout(
        TIMEOUT,
        binary().arg("--kubeconfig").arg(unwritable).output(),
    )
    .await
    .expect("exits")
    .expect("output");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "could not write the kubeconfig to {}",
            unwritable.display()
        )),
        "{err}"
    );
}

#[tokio::test]
async fn fake_cloud_in_process_is_the_stack_with_piraeus_seeded() {
    use kubecloud_testkit::FakeCloud;
    use kubecloud_testkit::schema::Catalog;
    let cloud = FakeCloud::builder()
        .seed(3)
        .start()
        .await
        .expect("fake cloud");
    let cluster = cloud.kube().cluster();
    let lc = cluster
        .get("piraeus.io/v1", "LinstorCluster", None, "linstorcluster")
        .expect("LinstorCluster");
    assert_eq!(
        lc["spec"]["externalController"]["url"],
        cloud.linstor().url()
    );
    Catalog::upstream()
        .expect("catalog")
        .by_kind("piraeus.io/v1", "LinstorCluster")
        .expect("the upstream CRD")
        .validate(&lc)
        .expect("valid against the upstream CRD");
    cluster
        .get("v1", "Namespace", None, "piraeus-datastore")
        .expect("Piraeus' namespace");
    cluster
        .get("v1", "Namespace", None, "metallb-system")
        .expect("MetalLB's namespace");
    let classes: Vec<String> = cluster
        .list("storage.k8s.io/v1", "StorageClass", None)
        .expect("classes")
        .iter()
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(classes, ["fast", "linstor-default"]);
    let nodes = cluster.list("v1", "Node", None).expect("nodes");
    assert_eq!(nodes.len(), FakeCloud::NODES.len());
    // The LINSTOR double has the tiers' resource groups: a spawn on each places its replicas.
    let handle = cloud.linstor().handle();
    for (i, (_, group, replicas)) in FakeCloud::TIERS.iter().enumerate() {
        let (status, _) = handle
            .call(
                "POST",
                &format!("/v1/resource-groups/{group}/spawn"),
                &serde_json::json!({"resource_definition_name": format!("pvc-{i}"), "volume_sizes": [1048576]}),
            )
            .await
            .expect("spawn");
        assert_eq!(status, 201, "{group}");
        let diskful = cloud
            .linstor()
            .replicas(&format!("pvc-{i}"))
            .iter()
            .filter(|r| r.pool.is_some())
            .count();
        assert_eq!(diskful, *replicas as usize, "{group}");
    }
    assert!(cloud.kube().url().starts_with("http://127.0.0.1:"));
}

/// `--csi <profile>`: the fake cloud with a simulated CSI driver instead of LINSTOR; the third
/// line names the driver, and the cluster has its classes and no `LinstorCluster`.
#[tokio::test]
async fn the_binary_runs_a_csi_driver_instead_of_linstor() {
    let dir = TempDir::new();
    let kubeconfig = dir.0.join("fake.kubeconfig");
    let mut child = binary()
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--csi", "longhorn"])
        .spawn()
        .expect("spawn kubecloud-fake-cloud");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = next_line(&mut stdout).await;
    let url = first
        .strip_prefix("listening on ")
        .expect("first line")
        .to_string();
    next_line(&mut stdout).await;
    assert_eq!(
        next_line(&mut stdout).await,
        "csi driver driver.longhorn.io"
    );
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let classes: kube::Api<k8s_openapi::api::storage::v1::StorageClass> =
        kube::Api::all(client.clone());
    let names: Vec<String> = classes
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert!(names.contains(&"longhorn-r2".to_string()), "{names:?}");
    let gvk = kube::core::GroupVersionKind::gvk("piraeus.io", "v1", "LinstorCluster");
    let clusters: kube::Api<kube::api::DynamicObject> = kube::Api::all_with(
        client,
        &kube::core::ApiResource::from_gvk_with_plural(&gvk, "linstorclusters"),
    );
    assert!(
        clusters
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    let bad = binary().args(["--csi", "nfs"]).output().await.unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "clap refuses an unknown profile"
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown CSI profile \"nfs\""));
}
