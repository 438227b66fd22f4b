//! The `kubecloud` example binary, run as a user runs it: output and exit codes.

use std::path::PathBuf;
use std::process::{Command, Output};

/// `cargo test` builds the examples next to the test binaries: target/<profile>/examples.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    profile_dir
        .join("examples")
        .join(format!("kubecloud{}", std::env::consts::EXE_SUFFIX))
}

fn run(args: &[&str]) -> Output {
    run_env(args, &[])
}

/// Runs the tool with `env` set (e.g. `RUST_LOG`).
fn run_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/acme.yaml");
    let args: Vec<&str> = args
        .iter()
        .map(|a| if *a == "SPEC" { spec } else { a })
        .collect();
    Command::new(binary())
        .args(&args)
        .envs(env.iter().copied())
        .output()
        .expect("the example runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn plan_prints_every_step_in_dependency_order() {
    let out = run(&["plan", "-f", "SPEC", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("6 to create"), "{text}");
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing in {text}"))
    };
    assert!(at("+ vpc main") < at("+ subnet web"));
    assert!(at("+ volume web-root") < at("+ vm web"));
    assert!(at("+ vm web") < at("+ exposure web"));
}

#[test]
fn apply_shows_the_running_tenant() {
    let out = run(&["apply", "-f", "SPEC", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("Running") && text.contains("10.1.0.10"),
        "{text}"
    );
    assert!(text.contains("203.0.113.1"), "{text}");
}

#[test]
fn json_output_is_machine_readable() {
    let out = run(&[
        "apply", "-f", "SPEC", "--tenant", "acme", "--output", "json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let vm = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "vm")
        .expect("a vm row");
    assert_eq!(vm["state"], "Running");
    let out = run(&["plan", "-f", "SPEC", "--tenant", "acme", "-o", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(plan["steps"].as_array().unwrap().len(), 6);
}

#[test]
fn dry_run_and_destroy() {
    let out = run(&["apply", "-f", "SPEC", "--tenant", "acme", "--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("+ vm web") && !stdout(&out).contains("Running"));
    let out = run(&["destroy", "-f", "SPEC", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        stdout(&out).contains("6 resources removed"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_input_exits_2_with_a_sentence() {
    let out = run(&["plan", "-f", "SPEC", "--tenant", "Not_Valid"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error: Invalid tenant:"), "{err}");
    let out = run(&["plan", "-f", "/nonexistent/tenant.yaml", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cannot read /nonexistent/tenant.yaml"));
}

#[cfg(feature = "kubernetes")]
mod common {
    pub mod stack;
}

/// The tool against a cluster: the doubles of the whole stack in this process, reached through
/// a kubeconfig file as a user's cluster is.
#[cfg(feature = "kubernetes")]
mod on_a_cluster {
    use super::{run, stdout};
    use crate::common::stack::{objects_of, stack};
    use kubecloud_testkit::Latency;

    fn kubeconfig(server_url: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let yaml = format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: double, cluster: {{server: \"{server_url}\"}}}}]\n\
             users: [{{name: me, user: {{}}}}]\n\
             contexts: [{{name: lab, context: {{cluster: double, user: me, namespace: default}}}}]\n\
             current-context: lab\n"
        );
        std::fs::write(file.path(), yaml).expect("kubeconfig written");
        file
    }

    /// Runs the tool off the runtime's threads, so the doubles keep serving.
    async fn run_async(args: Vec<String>) -> std::process::Output {
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args)
        })
        .await
        .expect("the tool ran")
    }

    fn args(kubeconfig: &tempfile::NamedTempFile, rest: &[&str]) -> Vec<String> {
        let mut out = vec![
            "--kubeconfig".to_string(),
            kubeconfig.path().display().to_string(),
            "--context".to_string(),
            "lab".to_string(),
        ];
        out.extend(rest.iter().map(|s| s.to_string()));
        out
    }

    /// A cluster whose Piraeus serves LINSTOR over plain http (no `spec.apiTLS`): refused unless
    /// the flag accepts it, and then a warning on standard error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_plain_http_linstor_is_refused_unless_the_flag_accepts_it() {
        let linstor = kubecloud_testkit::linstor::LinstorServer::builder()
            .nodes(["node-1", "node-2"])
            .pool_on_all_nodes("lvm-thin", "LVM_THIN", 1 << 30)
            .resource_group("rg-fast", 2, ["lvm-thin"])
            .start()
            .await
            .expect("LINSTOR double over plain http");
        let kube = kubecloud_testkit::TestServer::builder()
            .seed_yaml(&format!(
                "apiVersion: piraeus.io/v1\nkind: LinstorCluster\nmetadata: {{name: linstorcluster}}\n\
                 spec: {{externalController: {{url: \"{}\"}}}}\n---\n\
                 apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {{name: fast}}\n\
                 provisioner: linstor.csi.linbit.com\n\
                 parameters: {{linstor.csi.linbit.com/resourceGroup: rg-fast}}\n",
                linstor.url()
            ))
            .start()
            .await
            .expect("Kubernetes double");
        let config = kubeconfig(kube.url());
        let plan = ["plan", "-f", "SPEC", "--tenant", "acme"];

        let out = run_async(args(&config, &plan)).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error: Invalid allow_plain_http: the LINSTOR controller http://"),
            "{err}"
        );
        assert!(err.contains("Pass --allow-plain-http-storage"), "{err}");
        assert!(linstor.requests().is_empty(), "nothing sent to LINSTOR");

        let out = run_async(args(
            &config,
            &[&plan[..], &["--allow-plain-http-storage"]].concat(),
        ))
        .await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(stdout(&out).contains("6 to create"), "{}", stdout(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.matches("LINSTOR over plain http://").count(),
            1,
            "one warning: {err}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plan_apply_status_and_destroy_against_a_cluster() {
        let s = stack(Latency::None, 0).await;
        // The stack (FakeCloud) already has the LinstorCluster pointing at the LINSTOR double.
        let config = kubeconfig(s.kube.url());
        let target = ["-f", "SPEC", "--tenant", "acme"];

        let out = run_async(args(&config, &[&["plan"][..], &target].concat())).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(stdout(&out).contains("6 to create"), "{}", stdout(&out));
        assert_eq!(s.kube.requests().writes(), [], "planning writes nothing");

        let out = run_async(args(&config, &[&["apply"][..], &target].concat())).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let text = stdout(&out);
        assert!(
            text.contains("Running") && text.contains("10.1.0.10"),
            "{text}"
        );
        let vms = s
            .kube
            .cluster()
            .list("kubevirt.io/v1", "VirtualMachine", Some("acme"))
            .unwrap();
        assert_eq!(vms.len(), 1, "the VM is in the cluster");

        // A second process sees the same tenant: the state is the cluster's.
        let out = run_async(args(
            &config,
            &[&["status"][..], &target, &["-o", "json"]].concat(),
        ))
        .await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let kinds: Vec<&str> = rows
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["kind"].as_str())
            .collect();
        assert_eq!(kinds, ["vm", "volume", "subnet", "exposure"]);

        let out = run_async(args(&config, &[&["destroy"][..], &target].concat())).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(
            stdout(&out).contains("tenant acme destroyed: 6 resources removed"),
            "{}",
            stdout(&out)
        );
        assert!(
            s.kube
                .cluster()
                .list("kubevirt.io/v1", "VirtualMachine", Some("acme"))
                .unwrap()
                .is_empty()
        );
        let left: Vec<_> = objects_of(&s.kube, "acme")
            .into_iter()
            .filter(|(kind, _)| {
                ["VirtualMachine", "PersistentVolumeClaim", "Vpc", "Service"]
                    .contains(&kind.as_str())
            })
            .collect();
        assert_eq!(left, [], "the tenant's domain objects are gone");
    }

    /// A terminal's view of a child process: what it printed so far, read on a thread (a
    /// pseudo-terminal's reads block).
    struct Screen {
        text: String,
        chunks: std::sync::mpsc::Receiver<Vec<u8>>,
    }

    impl Screen {
        fn new(mut reader: Box<dyn std::io::Read + Send>) -> Self {
            let (tx, chunks) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            });
            Self {
                text: String::new(),
                chunks,
            }
        }

        /// Reads until the output holds `needle` (after what earlier calls consumed), then
        /// consumes up to its end. Fails (never hangs) if the child goes quiet for a minute.
        fn expect(&mut self, needle: &str) {
            loop {
                if let Some(at) = self.text.find(needle) {
                    self.text.drain(..at + needle.len());
                    return;
                }
                match self.chunks.recv_timeout(std::time::Duration::from_secs(60)) {
                    Ok(chunk) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                    Err(e) => panic!("{needle:?} never came ({e}); the screen: {:?}", self.text),
                }
            }
        }
    }

    /// `console` in a pseudo-terminal against the whole stack: the guest's login prompt after
    /// Enter, a typed line echoed back, Ctrl+] detaches with exit 0.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn console_attaches_a_terminal_to_the_vm_s_serial_console() {
        use portable_pty::{CommandBuilder, PtySize, native_pty_system};
        use std::io::Write;

        let s = stack(Latency::None, 0).await;
        let config = kubeconfig(s.kube.url());
        let target = ["-f", "SPEC", "--tenant", "acme"];
        let out = run_async(args(&config, &[&["apply"][..], &target].concat())).await;
        assert_eq!(out.status.code(), Some(0), "{out:?}");

        let config_path = config.path().to_path_buf();
        let status = tokio::task::spawn_blocking(move || {
            let pty = native_pty_system()
                .openpty(PtySize {
                    rows: 24,
                    cols: 80,
                    pixel_width: 0,
                    pixel_height: 0,
                })
                .expect("a pseudo-terminal");
            let mut cmd = CommandBuilder::new(super::binary());
            cmd.args([
                "--kubeconfig",
                &config_path.display().to_string(),
                "--context",
                "lab",
                "console",
                "web",
                "--tenant",
                "acme",
            ]);
            let mut child = pty.slave.spawn_command(cmd).expect("the tool starts");
            drop(pty.slave);
            let mut screen = Screen::new(pty.master.try_clone_reader().expect("reader"));
            let mut keys = pty.master.take_writer().expect("writer");
            screen.expect("Successfully connected to web console. The escape sequence is ^]");
            // Nothing the guest printed before is replayed: Enter brings the prompt back.
            keys.write_all(b"\r").unwrap();
            screen.expect("\r\nweb login: ");
            keys.write_all(b"root\r").unwrap();
            screen.expect("root\r\nPassword: ");
            keys.write_all(&[0x1d]).unwrap();
            child.wait().expect("the tool exits")
        })
        .await
        .expect("the terminal session ran");
        assert!(status.success(), "{status:?}");
        let consoles: Vec<_> = s
            .kube
            .requests()
            .all()
            .into_iter()
            .filter(|r| r.subresource.as_deref() == Some("console"))
            .collect();
        assert_eq!(consoles.len(), 1, "{consoles:?}");
        assert_eq!(consoles[0].status, Some(101));
        assert_eq!(
            consoles[0].path,
            "/apis/subresources.kubevirt.io/v1/namespaces/acme/virtualmachineinstances/web/console"
        );
    }

    /// The fake cloud server (`kubecloud-fake-cloud`, the testkit's binary), started as a user
    /// starts it; killed when dropped.
    struct FakeCloudProcess {
        child: std::process::Child,
        kubeconfig: std::path::PathBuf,
        /// Kept open: the server prints more lines after the first, and a closed pipe ends it.
        _stdout: std::io::BufReader<std::process::ChildStdout>,
        _dir: tempfile::TempDir,
    }

    impl FakeCloudProcess {
        fn start() -> Self {
            use std::io::BufRead;
            // `cargo test --workspace` builds the testkit's binary next to the examples' folder.
            let exe = super::binary()
                .parent()
                .and_then(|examples| examples.parent())
                .expect("target/<profile>")
                .join(format!(
                    "kubecloud-fake-cloud{}",
                    std::env::consts::EXE_SUFFIX
                ));
            assert!(
                exe.exists(),
                "{} is missing: build it with `cargo build -p kubecloud-testkit --bin kubecloud-fake-cloud` \
                 (the README's test command does)",
                exe.display()
            );
            let dir = tempfile::tempdir().expect("temp dir");
            let kubeconfig = dir.path().join("fake.kubeconfig");
            let mut child = std::process::Command::new(exe)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("the fake cloud starts");
            // Its first line says it listens; the kubeconfig is written before that.
            let mut first = String::new();
            let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
            out.read_line(&mut first).expect("a first line");
            assert!(
                first.starts_with("listening on http://127.0.0.1:"),
                "{first}"
            );
            Self {
                child,
                kubeconfig,
                _stdout: out,
                _dir: dir,
            }
        }
    }

    impl Drop for FakeCloudProcess {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn plan_apply_status_and_destroy_against_the_fake_cloud_server() {
        let fake = FakeCloudProcess::start();
        let config = fake.kubeconfig.display().to_string();
        // No --context: the kubeconfig's current context, as kubectl would use it.
        let with = |rest: &[&str]| -> Vec<String> {
            let mut out = vec!["--kubeconfig".to_string(), config.clone()];
            out.extend(rest.iter().map(|s| s.to_string()));
            out
        };
        let run_with = |rest: &[&str]| {
            let args = with(rest);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&args)
        };
        let target = ["-f", "SPEC", "--tenant", "acme"];

        let out = run_with(&[&["plan"][..], &target].concat());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(stdout(&out).contains("6 to create"), "{}", stdout(&out));

        let out = run_with(&[&["apply"][..], &target].concat());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(stdout(&out).contains("Running"), "{}", stdout(&out));

        // Another process, the same state: it lives in the server, not in the tool.
        let out = run_with(&[&["plan"][..], &target].concat());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(
            stdout(&out).contains("no changes"),
            "an applied spec plans to nothing: {}",
            stdout(&out)
        );
        let out = run_with(&[&["status"][..], &target, &["-o", "json"]].concat());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        let vm = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "vm")
            .expect("the VM row");
        assert_eq!(vm["name"], "web", "{rows}");

        let out = run_with(&[&["destroy"][..], &target].concat());
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(
            stdout(&out).contains("tenant acme destroyed: 6 resources removed"),
            "{}",
            stdout(&out)
        );
        let out = run_with(&[&["plan"][..], &target].concat());
        assert!(stdout(&out).contains("6 to create"), "{}", stdout(&out));
    }

    /// The tool logs at `trace` with RUST_LOG, and neither its logs nor its output carry the
    /// secrets of the spec, created and then rotated; an empty spec file applied to the tenant is
    /// refused (exit 2, nothing deleted) unless `--allow-delete-all` is given.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn secrets_stay_out_of_trace_logs_and_an_empty_file_deletes_nothing() {
        let s = stack(Latency::None, 0).await;
        let config = kubeconfig(s.kube.url());
        let dir = tempfile::tempdir().unwrap();
        let spec = |password: &str, hold: u32| {
            format!(
                "vpcs: [{{ name: main }}]\n\
                 subnets: [{{ name: web, vpc: main, cidr: 10.1.0.0/24 }}]\n\
                 vms:\n  - name: web\n    resources: {{ custom: {{ cpuCores: 1, memory: 1Gi }} }}\n    \
                 bootDisk: {{ containerImage: {{ image: quay.io/containerdisks/fedora:40 }} }}\n    \
                 interfaces: [{{ name: eth0, attachment: {{ subnet: {{ subnet: web }} }} }}]\n    \
                 cloudInit: {{ userData: \"password: CLI-CLOUDINIT-SECRET\", sshKeys: [\"ssh-ed25519 CLISSHSECRET\"] }}\n\
                 addressPools:\n  - name: routed\n    addresses: [{{ cidr: 198.51.100.0/28 }}]\n    \
                 advertisement: {{ bgp: {{ peers: [{{ name: tor, myAsn: 64500, peerAsn: 64501, address: 192.0.2.1, holdTimeSecs: {hold}, password: {password} }}] }} }}\n"
            )
        };
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let first = file("first.yaml", &spec("CLI-BGP-FIRST", 90));
        let second = file("second.yaml", &spec("CLI-BGP-SECOND", 30));
        let empty = file("empty.yaml", "# nothing yet\n");
        let secrets = [
            "CLI-CLOUDINIT-SECRET",
            "CLISSHSECRET",
            "CLI-BGP-FIRST",
            "CLI-BGP-SECOND",
        ];
        let run_logged = |args: Vec<String>| {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                super::run_env(
                    &args,
                    &[("RUST_LOG", "trace,hyper=info,h2=info,rustls=info")],
                )
            })
        };
        let mut outputs = Vec::new();
        for (command, path) in [
            ("apply", &first),
            ("plan", &second),
            ("apply", &second),
            ("status", &second),
        ] {
            let out = run_logged(args(&config, &[command, "-f", path, "--tenant", "acme"]))
                .await
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{command}: {out:?}");
            outputs.push(out);
        }
        let stderr = String::from_utf8_lossy(&outputs[0].stderr).into_owned();
        assert!(
            stderr.contains("TRACE") || stderr.contains("DEBUG"),
            "RUST_LOG is honoured: {stderr}"
        );
        assert!(
            stdout(&outputs[1]).contains("~ address pool routed"),
            "{}",
            stdout(&outputs[1])
        );
        for out in &outputs {
            let text = format!("{}{}", stdout(out), String::from_utf8_lossy(&out.stderr));
            for secret in secrets {
                assert!(
                    !text.contains(secret),
                    "{secret} in the tool's output:\n{text}"
                );
            }
        }

        let vms = || {
            s.kube
                .cluster()
                .list("kubevirt.io/v1", "VirtualMachine", Some("acme"))
                .unwrap()
                .len()
        };
        let out = run_logged(args(&config, &["apply", "-f", &empty, "--tenant", "acme"]))
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--allow-delete-all"),
            "{out:?}"
        );
        assert_eq!(vms(), 1, "nothing was deleted");
        let out = run_logged(args(
            &config,
            &[
                "apply",
                "-f",
                &empty,
                "--tenant",
                "acme",
                "--allow-delete-all",
            ],
        ))
        .await
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(vms(), 0, "asked for, everything goes");
    }

    #[test]
    fn a_missing_kubeconfig_is_a_sentence_naming_it() {
        let out = run(&[
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "status",
            "-f",
            "SPEC",
            "--tenant",
            "acme",
        ]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with(
                "error: Kubernetes: cannot load the kubeconfig /nonexistent/kubeconfig"
            ),
            "{err}"
        );
        assert!(err.trim_end().ends_with('.'), "{err}");
    }

    #[test]
    fn rbac_prints_a_cluster_role() {
        let out = run(&["rbac"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let role: k8s_openapi::api::rbac::v1::ClusterRole =
            serde_saphyr::from_str(&stdout(&out)).expect("a ClusterRole");
        assert_eq!(role.metadata.name.as_deref(), Some("kubecloud"));
        let rules = role.rules.unwrap_or_default();
        assert!(
            rules
                .iter()
                .any(|r| r.api_groups.as_deref() == Some(&["kubevirt.io".to_string()][..]))
        );

        let out = run(&["rbac", "--part", "load_balancer", "--name", "lb-only"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let role: k8s_openapi::api::rbac::v1::ClusterRole =
            serde_saphyr::from_str(&stdout(&out)).expect("a ClusterRole");
        assert_eq!(role.metadata.name.as_deref(), Some("lb-only"));
        assert!(!stdout(&out).contains("kubevirt.io"));

        let out = run(&["rbac", "--node-maintenance"]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let role: k8s_openapi::api::rbac::v1::ClusterRole =
            serde_saphyr::from_str(&stdout(&out)).expect("a ClusterRole");
        assert_eq!(
            role.metadata.name.as_deref(),
            Some("kubecloud-node-maintenance")
        );
        assert!(role.rules.unwrap_or_default().iter().any(|r| {
            r.resources
                .as_deref()
                .is_some_and(|res| res.contains(&"nodes".to_string()))
                && r.verbs.contains(&"patch".to_string())
        }));

        let out = run(&["rbac", "--part", "storagee"]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Invalid part"));
    }
}

#[test]
fn nodes_evacuate_moves_the_tenant_s_vm_reports_and_status_shows_the_guest_agent() {
    // In memory, `-f` applies the tenant first: its VM `web` boots from an RWX volume on node-1.
    let out = run(&[
        "nodes", "evacuate", "node-1", "-f", "SPEC", "--tenant", "acme",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    let at = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing in {text}"))
    };
    assert!(at("cordoned  node-1") < at("migrated  acme/web -> node-"));
    assert!(text.contains("1 migrated, 0 blocked"), "{text}");

    let out = run(&["nodes", "evacuate", "node-1", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["node"], "node-1");

    let out = run(&["nodes", "evacuate", "Node_1"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    let out = run(&["nodes", "return", "node-1"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("node node-1 returned to service"));

    let out = run(&["status", "-f", "SPEC", "--tenant", "acme"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("agent: web"), "{}", stdout(&out));
}
