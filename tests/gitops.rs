//! GitOps output: a tenant rendered as manifests renders the same bytes every time, every object
//! validates against the upstream schemas, the kustomization lists exactly the object files, no
//! secret is written in clear, a folder is re-rendered without touching other files, and a
//! cluster applied from the folder is what kubecloud would have made (planning shows no drift).
#![cfg(feature = "kubernetes")]

mod common {
    pub mod stack;
}

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kubecloud::gitops::{INDEX_FILE, KUSTOMIZATION, Manifests, Renderer, SECRETS_FILE};
use kubecloud::kubeovn::KubeOvn;
use kubecloud::kubevirt::KubeVirt;
use kubecloud::linstor::translate::TierPlan;
use kubecloud::linstor::{Linstor, TierPlans};
use kubecloud::metallb::MetalLb;
use kubecloud::{Tenant, TenantSpec};
use kubecloud_testkit::Latency;
use kubecloud_testkit::schema::Catalog;
use serde_json::Value;

const CLOUD_INIT_SECRET: &str = "CLOUDINIT-SECRET-4711";
const SSH_KEY_SECRET: &str = "AAAAC3NzaSSHKEYSECRET0815";
const BGP_SECRET: &str = "BGP-SECRET-1337";

/// A tenant using every kind the renderer handles, with secrets in cloud-init, SSH keys and a
/// BGP password.
fn rich_spec() -> TenantSpec {
    let yaml = format!(
        r##"
quota: {{ vms: 4, volumes: 10, storage: 100Gi, publicAddresses: 2, subnets: 4 }}
vpcs: [{{ name: main }}]
subnets:
  - {{ name: web, vpc: main, cidr: 10.1.0.0/24 }}
  - {{ name: storage, vpc: main, cidr: 10.2.0.0/24, secondary: true }}
securityGroups:
  - name: web
    ingress: [{{ protocol: tcp, ports: {{ first: 443, last: 443 }} }}]
ipReservations: [{{ name: db-eth0, subnet: web, ip: 10.1.0.20 }}]
volumes:
  - {{ name: web-root, size: 10Gi, replicas: 2, access: readWriteMany, tier: fast }}
  - {{ name: data, size: 5Gi, tier: bulk }}
vms:
  - name: web
    resources: {{ custom: {{ cpuCores: 2, memory: 4Gi }} }}
    bootDisk: {{ volume: {{ volume: web-root }} }}
    dataVolumes: [data]
    interfaces:
      - {{ name: eth0, attachment: {{ subnet: {{ subnet: web }} }}, fixedIp: 10.1.0.10, securityGroups: [web] }}
      - {{ name: eth1, attachment: {{ subnet: {{ subnet: storage }} }} }}
    cloudInit:
      userData: "#cloud-config\npassword: {CLOUD_INIT_SECRET}\n"
      sshKeys: ["ssh-ed25519 {SSH_KEY_SECRET} ops@example.com"]
    labels: {{ app: web }}
  - name: db
    resources: {{ custom: {{ cpuCores: 1, memory: 2Gi }} }}
    bootDisk: {{ import: {{ url: "https://images.example.com/db.qcow2", size: 8Gi, tier: fast }} }}
    interfaces: [{{ name: eth0, attachment: {{ subnet: {{ subnet: web }} }}, fixedIp: 10.1.0.20 }}]
    labels: {{ app: db }}
services: [{{ name: db, selector: {{ app: db }}, ports: [{{ port: 5432 }}] }}]
addressPools:
  - {{ name: public, addresses: [{{ cidr: 203.0.113.0/28 }}], avoidBuggyIps: true, advertisement: {{ l2: {{}} }} }}
  - name: routed
    addresses: [{{ cidr: 198.51.100.0/28 }}]
    advertisement:
      bgp:
        peers: [{{ name: tor, myAsn: 64500, peerAsn: 64501, address: 192.0.2.1, password: {BGP_SECRET} }}]
exposures:
  - {{ name: web, selector: {{ app: web }}, ports: [{{ port: 443 }}], address: {{ pool: public }} }}
"##
    );
    TenantSpec::from_yaml(&yaml).expect("the spec parses")
}

/// The example's tenant.
fn acme_spec() -> TenantSpec {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/data/acme.yaml"
    ))
    .expect("acme.yaml");
    TenantSpec::from_yaml(&text).expect("acme.yaml parses")
}

fn acme() -> Tenant {
    Tenant::new("acme").expect("tenant")
}

/// A renderer whose backends point nowhere: every tier plan is given, so nothing is sent.
fn offline() -> Renderer {
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("url"));
    let client = kube::Client::try_from(config).expect("client");
    let storage = Linstor::builder(client.clone(), "http://127.0.0.1:9")
        .insecure_http()
        .tier("fast", "rg-fast")
        .tier("bulk", "rg-bulk")
        .build()
        .expect("LINSTOR backend");
    let storage = TierPlans::new(storage)
        .with(TierPlan {
            name: "fast".into(),
            resource_group: "rg-fast".into(),
            storage_pool: Some("lvm-thin".into()),
        })
        .with(TierPlan {
            name: "bulk".into(),
            resource_group: "rg-bulk".into(),
            storage_pool: Some("zfs".into()),
        });
    Renderer::new(
        KubeVirt::builder(client.clone()).build(),
        storage,
        KubeOvn::builder(client.clone()).build(),
        MetalLb::builder(client).build(),
    )
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kubecloud-gitops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn read_dir(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("file"),
            )
        })
        .collect();
    out.sort();
    out
}

fn kinds(manifests: &Manifests) -> BTreeSet<String> {
    manifests
        .objects()
        .values()
        .map(|o| o["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_vms_security_groups_are_rendered_on_its_pod_as_the_network_attaches_them() {
    let manifests = offline()
        .render(&acme(), &rich_spec())
        .await
        .expect("render");
    let vm = manifests
        .objects()
        .values()
        .find(|o| o["kind"] == "VirtualMachine" && o["metadata"]["name"] == "web")
        .expect("the VirtualMachine web");
    let pod = &vm["spec"]["template"]["metadata"]["annotations"];
    // eth0 (in group `web`) is the primary subnet interface: Kube-OVN's default provider.
    assert_eq!(
        pod["ovn.kubernetes.io/security_groups"], "acme-web",
        "{pod:#}"
    );
    assert_eq!(pod["ovn.kubernetes.io/port_security"], "true", "{pod:#}");
    assert_eq!(
        pod["ovn.kubernetes.io/logical_switch"], "acme-web",
        "{pod:#}"
    );
    // eth1 (no group) is a Multus attachment of provider storage.acme.ovn: no group, no port
    // security there.
    assert_eq!(
        pod["storage.acme.ovn.kubernetes.io/logical_switch"],
        "acme-storage"
    );
    assert!(
        pod.get("storage.acme.ovn.kubernetes.io/security_groups")
            .is_none()
    );
    assert!(
        pod.get("storage.acme.ovn.kubernetes.io/port_security")
            .is_none()
    );
}

#[tokio::test]
async fn rendering_the_same_spec_twice_gives_byte_identical_folders() {
    let spec = rich_spec();
    let first = temp_dir("twice-a");
    let second = temp_dir("twice-b");
    offline()
        .render(&acme(), &spec)
        .await
        .expect("render")
        .write_to(&first)
        .expect("write");
    // A fresh renderer, and the spec read back from its own YAML: still the same bytes.
    let again = TenantSpec::from_yaml(&spec.to_yaml().unwrap()).unwrap();
    offline()
        .render(&acme(), &again)
        .await
        .expect("render")
        .write_to(&second)
        .expect("write");
    let a = read_dir(&first);
    assert_eq!(a, read_dir(&second));
    assert!(a.len() > 20, "{} files", a.len());
    for (name, bytes) in &a {
        let text = String::from_utf8_lossy(bytes);
        for server_field in [
            "resourceVersion",
            "managedFields",
            "creationTimestamp",
            "uid:",
        ] {
            assert!(!text.contains(server_field), "{name} holds {server_field}");
        }
        assert!(!text.contains("status:"), "{name} holds a status");
    }
}

#[tokio::test]
async fn every_rendered_object_validates_against_the_upstream_schema() {
    let manifests = offline()
        .render(&acme(), &rich_spec())
        .await
        .expect("render");
    let catalog = Catalog::upstream().expect("catalog");
    for (file, object) in manifests.objects() {
        // The file holds exactly the object.
        let text = &manifests.files()[file];
        let parsed: Value = serde_saphyr::from_str(text).expect("the file is YAML");
        assert_eq!(&parsed, object, "{file} does not read back as its object");
        let api_version = object["apiVersion"].as_str().unwrap();
        let kind = object["kind"].as_str().unwrap();
        let schema = catalog
            .by_kind(api_version, kind)
            .unwrap_or_else(|| panic!("{api_version} {kind} is not an upstream kind"));
        schema
            .validate(object)
            .unwrap_or_else(|e| panic!("{file} is invalid upstream: {e:?}"));
    }
    let expected = [
        "BGPAdvertisement",
        "BGPPeer",
        "IPAddressPool",
        "L2Advertisement",
        "Namespace",
        "NetworkAttachmentDefinition",
        "PersistentVolumeClaim",
        "ResourceQuota",
        "SecurityGroup",
        "Service",
        "StorageClass",
        "Subnet",
        "Vip",
        "VirtualMachine",
        "Vpc",
    ];
    assert_eq!(
        kinds(&manifests),
        expected.iter().map(|k| k.to_string()).collect()
    );
}

#[tokio::test]
async fn the_kustomization_lists_exactly_the_object_files_sorted() {
    let manifests = offline()
        .render(&acme(), &rich_spec())
        .await
        .expect("render");
    let dir = temp_dir("kustomization");
    manifests.write_to(&dir).expect("write");
    let text = std::fs::read_to_string(dir.join(KUSTOMIZATION)).expect("kustomization");
    let k: Value = serde_saphyr::from_str(&text).expect("yaml");
    assert_eq!(k["apiVersion"], "kustomize.config.k8s.io/v1beta1");
    assert_eq!(k["kind"], "Kustomization");
    let listed: Vec<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "resources are sorted");
    let on_disk: Vec<String> = read_dir(&dir)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != KUSTOMIZATION && n != SECRETS_FILE && n != INDEX_FILE)
        .collect();
    assert_eq!(listed, on_disk);
    assert_eq!(
        listed,
        manifests.objects().keys().cloned().collect::<Vec<_>>()
    );
    // One file per object, named after kind, namespace and name.
    assert!(listed.contains(&"virtualmachine_acme_web.yaml".to_string()));
    assert!(listed.contains(&"vpc_acme-main.yaml".to_string()));
    assert!(listed.contains(&"ipaddresspool_metallb-system_acme-public.yaml".to_string()));
    // Each tier and replica count has its StorageClass.
    assert!(listed.contains(&"storageclass_linstor-bulk-r1.yaml".to_string()));
}

#[tokio::test]
async fn no_secret_is_written_in_clear_by_default_and_each_is_listed() {
    let manifests = offline()
        .render(&acme(), &rich_spec())
        .await
        .expect("render");
    let dir = temp_dir("secrets");
    manifests.write_to(&dir).expect("write");
    for (name, bytes) in read_dir(&dir) {
        let text = String::from_utf8_lossy(&bytes);
        for secret in [CLOUD_INIT_SECRET, SSH_KEY_SECRET, BGP_SECRET] {
            assert!(!text.contains(secret), "{name} holds a secret");
        }
        assert!(!text.contains("kind: Secret"), "{name} is a Secret");
    }
    // No Secret among the objects, not even base64-encoded.
    for object in manifests.objects().values() {
        assert_ne!(object["kind"], "Secret");
    }
    let listed: Vec<(String, String, Vec<String>)> = manifests
        .secrets()
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone(), s.keys.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (
                "acme".into(),
                "web-cloudinit".into(),
                vec!["userdata".into()]
            ),
            ("acme".into(), "web-ssh".into(), vec!["key0".into()]),
            (
                "metallb-system".into(),
                "acme-routed-tor".into(),
                vec!["password".into()]
            ),
        ]
    );
    let md = std::fs::read_to_string(dir.join(SECRETS_FILE)).expect("SECRETS.md");
    for (ns, name, _) in &listed {
        assert!(md.contains(&format!("| {ns} | {name} |")), "{md}");
    }
    // Debug output names files, never contents.
    let debug = format!("{manifests:?}");
    assert!(!debug.contains(BGP_SECRET) && !debug.contains(SSH_KEY_SECRET));
}

#[tokio::test]
async fn secrets_are_written_only_when_asked() {
    let manifests = offline()
        .include_secrets(true)
        .render(&acme(), &rich_spec())
        .await
        .expect("render");
    let secrets: Vec<&String> = manifests
        .objects()
        .iter()
        .filter(|(_, o)| o["kind"] == "Secret")
        .map(|(f, _)| f)
        .collect();
    assert_eq!(
        secrets,
        vec![
            "secret_acme_web-cloudinit.yaml",
            "secret_acme_web-ssh.yaml",
            "secret_metallb-system_acme-routed-tor.yaml"
        ]
    );
    let catalog = Catalog::upstream().expect("catalog");
    for file in secrets {
        let object = &manifests.objects()[file];
        catalog
            .by_kind("v1", "Secret")
            .expect("Secret")
            .validate(object)
            .unwrap_or_else(|e| panic!("{file}: {e:?}"));
    }
    assert!(manifests.files()[KUSTOMIZATION].contains("secret_acme_web-ssh.yaml"));
    assert!(manifests.files()[SECRETS_FILE].contains("Encrypt them"));
}

#[tokio::test]
async fn rendering_again_replaces_the_earlier_files_and_leaves_others_alone() {
    let dir = temp_dir("again");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("README.md"), "mine").unwrap();
    std::fs::write(dir.join("vpc_acme-old.yaml"), "not rendered by kubecloud").unwrap();
    let renderer = offline();
    let first = renderer.render(&acme(), &rich_spec()).await.unwrap();
    let report = first.write_to(&dir).unwrap();
    assert!(report.removed.is_empty());
    // Again: nothing changes on disk.
    let report = first.write_to(&dir).unwrap();
    assert!(report.written.is_empty() && report.removed.is_empty());

    let mut smaller = rich_spec();
    smaller.vms.retain(|v| v.name != "db");
    smaller.services.clear();
    let second = renderer.render(&acme(), &smaller).await.unwrap();
    let report = second.write_to(&dir).unwrap();
    assert_eq!(
        report.removed,
        vec!["service_acme_db.yaml", "virtualmachine_acme_db.yaml"]
    );
    let names: BTreeSet<String> = read_dir(&dir).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains("README.md") && names.contains("vpc_acme-old.yaml"));
    let expected: BTreeSet<String> = second
        .files()
        .keys()
        .cloned()
        .chain(["README.md", "vpc_acme-old.yaml", INDEX_FILE].map(String::from))
        .collect();
    assert_eq!(names, expected);
}

#[tokio::test]
async fn invalid_specs_are_refused_naming_the_field_and_nothing_is_written() {
    let renderer = offline();
    let mut spec = rich_spec();
    spec.vms[0].interfaces[0].fixed_ip = Some("10.9.9.9".parse().unwrap());
    let err = renderer.render(&acme(), &spec).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("vms[0].interfaces[0].fixedIp"));

    // A reference must be to a resource of the spec: the folder is the whole tenant.
    let mut spec = rich_spec();
    spec.volumes.retain(|v| v.name != "data");
    let err = renderer.render(&acme(), &spec).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("vms[0].dataVolumes[0]"));

    // A backend's own refusal names the resource.
    let mut spec = rich_spec();
    spec.volumes[1].tier = Some("gold".into());
    let err = renderer.render(&acme(), &spec).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("volumes[1].tier"), "{err}");
}

/// The strong check: the folder applied to the whole stack on the doubles (server-side apply of
/// each object with field manager `kubecloud`, as Flux does with its own manager) is what
/// kubecloud would have made: planning the same spec shows no changes.
#[tokio::test]
async fn a_cluster_applied_from_the_folder_shows_no_drift() {
    for spec in [rich_spec(), acme_spec()] {
        applied_from_the_folder_then_planned(spec).await;
    }
}

async fn applied_from_the_folder_then_planned(spec: TenantSpec) {
    let stack = common::stack::stack(Latency::None, 7).await;
    let client = stack.kube.client();
    let storage = common::stack::linstor_builder(client.clone(), &stack.linstor, &stack.pki)
        .tier("fast", "rg-fast")
        .tier("bulk", "rg-bulk")
        .max_replicas(3)
        .build()
        .expect("LINSTOR backend");
    // The tier plans come from LINSTOR, as they do when kubecloud applies.
    let renderer = Renderer::new(
        KubeVirt::builder(client.clone()).build(),
        storage,
        KubeOvn::builder(client.clone()).build(),
        MetalLb::builder(client.clone()).build(),
    )
    .include_secrets(true);
    let before = stack.kube.requests().total();
    let manifests = renderer.render(&acme(), &spec).await.expect("render");
    assert_eq!(
        stack.kube.requests().total(),
        before,
        "rendering sent a request to Kubernetes"
    );

    // The order kustomize applies in: namespaces and classes first.
    let mut objects: Vec<&Value> = manifests.objects().values().collect();
    objects.sort_by_key(|o| match o["kind"].as_str() {
        Some("Namespace") => 0,
        Some("StorageClass") => 1,
        _ => 2,
    });
    let catalog = Catalog::upstream().expect("catalog");
    let params = PatchParams::apply("kubecloud").force();
    for object in objects {
        let (api_version, kind) = (
            object["apiVersion"].as_str().unwrap(),
            object["kind"].as_str().unwrap(),
        );
        let t = catalog.by_kind(api_version, kind).expect("known kind");
        let gvk = GroupVersionKind::gvk(&t.group, &t.version, &t.kind);
        let ar = ApiResource::from_gvk_with_plural(&gvk, &t.plural);
        let api: Api<DynamicObject> = match object["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let name = object["metadata"]["name"].as_str().unwrap();
        let dynamic: DynamicObject = serde_json::from_value(object.clone()).unwrap();
        tokio::time::timeout(
            Duration::from_secs(30),
            api.patch(name, &params, &Patch::Apply(&dynamic)),
        )
        .await
        .expect("in time")
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
    }

    let tenant = stack.cloud.tenant("acme").expect("tenant");
    let plan = tokio::time::timeout(Duration::from_secs(30), tenant.plan(&spec))
        .await
        .expect("in time")
        .expect("plan");
    assert!(plan.is_empty(), "drift after a GitOps apply:\n{plan}");

    // And kubecloud's own apply of the spec then changes nothing either.
    let writes = stack.kube.requests().writes().len();
    let plan_again = tenant.plan(&spec).await.expect("plan");
    assert!(plan_again.is_empty());
    assert_eq!(stack.kube.requests().writes().len(), writes);
}

/// A renderer on the stack's doubles, configured like the stack's cloud.
fn on_stack(stack: &common::stack::Stack) -> Renderer {
    let client = stack.kube.client();
    let storage = common::stack::linstor_builder(client.clone(), &stack.linstor, &stack.pki)
        .tier("fast", "rg-fast")
        .tier("bulk", "rg-bulk")
        .max_replicas(3)
        .build()
        .expect("LINSTOR backend");
    Renderer::new(
        KubeVirt::builder(client.clone()).build(),
        storage,
        KubeOvn::builder(client.clone()).build(),
        MetalLb::builder(client).build(),
    )
}

/// The rendered objects are the ones kubecloud's own apply makes: after an apply through the
/// cloud, every live object holds every field of its rendered twin (the Secrets differ only in
/// the owner reference kubecloud adds once the VM exists, and so in their applied hash).
#[tokio::test]
async fn the_rendered_objects_are_the_ones_kubecloud_applies() {
    let stack = common::stack::stack(Latency::None, 11).await;
    let spec = rich_spec();
    let tenant = stack.cloud.tenant("acme").expect("tenant");
    let plan = tenant.plan(&spec).await.expect("plan");
    let options = kubecloud::ApplyOptions {
        timeout: Duration::from_secs(60),
        ..kubecloud::ApplyOptions::default()
    };
    tokio::time::timeout(Duration::from_secs(120), tenant.apply(&plan, options))
        .await
        .expect("in time")
        .expect("apply");
    let manifests = on_stack(&stack)
        .include_secrets(true)
        .render(&acme(), &spec)
        .await
        .expect("render");
    let cluster = stack.kube.cluster();
    for (file, rendered) in manifests.objects() {
        let api_version = rendered["apiVersion"].as_str().unwrap();
        let kind = rendered["kind"].as_str().unwrap();
        let namespace = rendered["metadata"]["namespace"].as_str();
        let name = rendered["metadata"]["name"].as_str().unwrap();
        let live = cluster
            .list(api_version, kind, namespace)
            .expect("list")
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("{file}: kubecloud made no {kind} {name}"));
        let mut rendered = rendered.clone();
        if kind == "Secret" {
            rendered["metadata"]["annotations"]
                .as_object_mut()
                .expect("annotations")
                .remove(kubecloud_kube::APPLIED_HASH);
        }
        assert!(
            kubecloud_kube::is_subset(&rendered, &live),
            "{file} differs from what kubecloud applied:\nrendered {rendered:#}\nlive {live:#}"
        );
    }
}

/// The rendered folder of the example's tenant, checked in under `tests/golden/gitops/acme` for
/// review. `UPDATE_GOLDEN=1` rewrites it.
#[tokio::test]
async fn the_example_tenant_renders_as_the_golden_folder() {
    let golden = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/gitops/acme"
    ));
    // `offline()` already gives the plan of tier `fast` (lvm-thin), the example's tier.
    let manifests = offline()
        .render(&acme(), &acme_spec())
        .await
        .expect("render");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&golden);
        manifests.write_to(&golden).expect("write");
        std::fs::remove_file(golden.join(INDEX_FILE)).expect("index");
    }
    let on_disk: Vec<(String, Vec<u8>)> = read_dir(&golden);
    let rendered: Vec<(String, Vec<u8>)> = manifests
        .files()
        .iter()
        .map(|(n, c)| (n.clone(), c.clone().into_bytes()))
        .collect();
    assert_eq!(
        on_disk.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        rendered.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        "run with UPDATE_GOLDEN=1 to accept"
    );
    for ((name, want), (_, got)) in on_disk.iter().zip(&rendered) {
        assert!(
            want == got,
            "{name} differs from the golden file; run with UPDATE_GOLDEN=1 to accept:\n{}",
            String::from_utf8_lossy(got)
        );
    }
}

/// `cargo test` (without `--test`) builds the examples next to the test binaries:
/// target/<profile>/examples.
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .join("examples")
        .join(format!("gitops{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test --features kubernetes` builds it, or \
         `cargo build --example gitops --features kubernetes`",
        path.display()
    );
    path
}

#[test]
fn the_example_renders_a_folder_as_a_user_runs_it() {
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/data/acme.yaml");
    let dir = temp_dir("example");
    let run = |args: &[&str]| {
        std::process::Command::new(example())
            .args(args)
            .output()
            .expect("the example runs")
    };
    let out_dir = dir.to_str().unwrap();
    let args = [
        "-f",
        spec,
        "--tenant",
        "acme",
        "--out",
        out_dir,
        "--tier",
        "fast=rg-fast:lvm-thin",
    ];
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("9 objects (11 written"), "{text}");
    assert!(text.contains("+ virtualmachine_acme_web.yaml"), "{text}");
    let first = read_dir(&dir);

    // Again: the same bytes, nothing written.
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("0 written, 11 unchanged, 0 removed"),
        "{text}"
    );
    assert_eq!(read_dir(&dir), first);

    // Bad input: exit code 2, a sentence naming the problem, nothing written.
    let other = temp_dir("example-bad");
    let out = run(&[
        "-f",
        spec,
        "--tenant",
        "Not A Tenant",
        "--out",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    assert!(!other.exists());
    let out = run(&[
        "-f",
        spec,
        "--tenant",
        "acme",
        "--out",
        other.to_str().unwrap(),
        "--tier",
        "fast",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!other.exists());
}

/// An exposure names a pool of the spec by its object name, as the backend does; a pool that is
/// not in the spec is one the cluster administrator shares, named as it is; an exposure on an
/// IPv6-only pool of the spec is single-stack IPv6.
#[tokio::test]
async fn exposures_name_tenant_pools_by_object_and_shared_pools_as_they_are() {
    let spec = TenantSpec::from_yaml(
        r#"
addressPools:
  - { name: public, addresses: [{ cidr: 203.0.113.0/28 }], advertisement: { l2: {} } }
  - { name: v6, addresses: [{ cidr: "2001:db8::/120" }], advertisement: { l2: {} } }
exposures:
  - { name: own, selector: { app: web }, ports: [{ port: 443 }], address: { pool: public } }
  - { name: shared, selector: { app: web }, ports: [{ port: 80 }], address: { pool: lab-pool } }
  - { name: six, selector: { app: web }, ports: [{ port: 22 }], address: { pool: v6 } }
"#,
    )
    .expect("spec");
    let manifests = offline().render(&acme(), &spec).await.expect("render");
    let service = |name: &str| &manifests.objects()[&format!("service_acme_{name}.yaml")];
    let pool =
        |name: &str| service(name)["metadata"]["annotations"]["metallb.io/address-pool"].clone();
    assert_eq!(pool("own"), "acme-public");
    assert_eq!(pool("shared"), "lab-pool");
    assert_eq!(
        service("six")["spec"]["ipFamilies"],
        serde_json::json!(["IPv6"])
    );
    assert!(service("own")["spec"]["ipFamilies"].is_null());
}
