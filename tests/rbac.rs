//! Least privilege: every request the backends make while connecting and running the whole
//! conformance suite is allowed by `kubecloud::rbac::rules`, and every rule is used.
#![cfg(feature = "kubernetes")]

mod common {
    pub mod ports;
    pub mod stack;
}

use std::collections::BTreeSet;
use std::time::Duration;

use common::stack::stack;
use kubecloud::rbac::{self, Access};
use kubecloud::{Cloud, ConnectOptions, Part};
use kubecloud_core::conformance::{self, Params, Target};
use kubecloud_testkit::{Latency, RequestRecord, Verb};

const BULK: &str = "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata: {name: bulk}\n\
                    provisioner: linstor.csi.linbit.com\n\
                    parameters: {linstor.csi.linbit.com/resourceGroup: rg-bulk}\n";

fn params() -> Params {
    Params {
        tier: Some("fast".into()),
        second_tier: Some("bulk".into()),
        timeout: Duration::from_secs(30),
        nodes: 3,
        ..Params::default()
    }
}

/// The RBAC verbs a request needs, as the API server authorizes it: GET of one object `get`, of
/// a collection `list`, with `watch=true` `watch`; PATCH (any patch type, apply included)
/// `patch`, and a server-side apply that creates the object (201) needs `create` too; PUT
/// `update`; DELETE `delete`, of a collection `deletecollection`.
fn needed(r: &RequestRecord) -> Vec<Access> {
    let resource = match &r.subresource {
        Some(sub) => format!("{}/{sub}", r.resource),
        None => r.resource.clone(),
    };
    let verbs: &[&str] = match r.verb {
        Verb::Get => &["get"],
        Verb::List => &["list"],
        Verb::Watch => &["watch"],
        Verb::Create => &["create"],
        Verb::Update => &["update"],
        Verb::Patch => &["patch"],
        Verb::Apply if r.status == Some(201) => &["patch", "create"],
        Verb::Apply => &["patch"],
        Verb::Delete => &["delete"],
        Verb::DeleteCollection => &["deletecollection"],
        // Discovery (`/api`, `/apis`, `/version`) is a non-resource URL every authenticated user
        // may read (ClusterRole `system:discovery`); the rules leave it out.
        Verb::Discovery => &[],
        Verb::Other => panic!("a request the double does not route: {r:?}"),
    };
    verbs
        .iter()
        .map(|v| Access::new(&r.group, &resource, v))
        .collect()
}

/// The stack with a LinstorCluster pointing at the LINSTOR double and a `bulk` StorageClass, and
/// a cloud connected to it.
async fn connected() -> (common::stack::Stack, Cloud) {
    let s = stack(Latency::None, 0).await;
    // The stack (FakeCloud) already has the LinstorCluster pointing at the LINSTOR double.
    s.kube.seed_yaml(BULK).unwrap();
    s.kube.requests().reset();
    // Tiers from the StorageClasses: `fast` and `linstor-default` (the stack's), `bulk`.
    let options = ConnectOptions::new();
    let cloud: Cloud = Cloud::connect_with(s.kube.client(), options)
        .await
        .expect("connect");
    (s, cloud)
}

/// Every request the double saw that `rules` does not allow, as `verb group/resource (path)`.
fn denied_on(kube: &kubecloud_testkit::TestServer, rules: &rbac::Rules) -> Vec<String> {
    let mut out = BTreeSet::new();
    for r in kube.requests().all() {
        for access in needed(&r) {
            if !rules.allows(&access) {
                out.insert(format!("{access} ({})", r.path));
            }
        }
    }
    out.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rules_allow_every_request_of_the_conformance_suite_and_nothing_more() {
    let (s, cloud) = connected().await;
    let ports = common::ports::OvnPorts::new(&s.ovn, &cloud);
    let target = Target {
        compute: Some(cloud.compute()),
        storage: Some(cloud.storage()),
        network: Some(cloud.network()),
        load_balancer: Some(cloud.load_balancer()),
        ports: Some(&ports),
    };
    let report = conformance::run_all(&target, "rb", &params()).await;
    eprintln!("{report}");
    report.assert_nothing_skipped();
    quotas_conform(&s.kube, &target, "rb", &params()).await;

    // The rules of the backends this cloud runs (storage: LINSTOR, as Piraeus is installed).
    let rules = rbac::rules_for(&cloud.backend_names());
    assert_least_privilege(&s.kube, &rules);
}

/// The quota checks, with quotas in each tenant's `ResourceQuota` (as `Cloud::connect` keeps
/// them).
async fn quotas_conform(
    kube: &kubecloud_testkit::TestServer,
    target: &Target<'_>,
    prefix: &str,
    params: &Params,
) {
    let quotas = kubecloud::KubeQuotas::new(kube.client());
    let report = conformance::run_quotas(target, &quotas, prefix, params).await;
    report.assert_nothing_skipped();
}

/// `rules` allow every request `kube` saw, and every rule was used by one (a `watch` counts as
/// used when its `list` was: a wait lists, then watches only while its condition is pending,
/// so whether a watch follows depends on timing), but for what the conformance suite cannot
/// exercise.
fn assert_least_privilege(kube: &kubecloud_testkit::TestServer, rules: &rbac::Rules) {
    let denied = denied_on(kube, rules);
    assert!(
        denied.is_empty(),
        "not allowed by the rules:\n{}",
        denied.join("\n")
    );
    let used: BTreeSet<Access> = kube.requests().all().iter().flat_map(needed).collect();
    let used_or_listed = |a: &Access| {
        used.contains(a)
            || (a.verb == "watch" && used.contains(&Access::new(&a.group, &a.resource, "list")))
    };
    let unused: Vec<String> = rules
        .accesses()
        .into_iter()
        .filter(|a| !used_or_listed(a) && rbac::not_exercised_by_conformance(a).is_none())
        .map(|a| a.to_string())
        .collect();
    assert!(
        unused.is_empty(),
        "rules no request used:\n{}",
        unused.join("\n")
    );
}

#[test]
fn the_cluster_role_parses_as_a_cluster_role() {
    let yaml = rbac::rules(&Part::ALL).to_cluster_role_yaml("kubecloud");
    let role: k8s_openapi::api::rbac::v1::ClusterRole =
        serde_saphyr::from_str(&yaml).expect("ClusterRole YAML");
    assert_eq!(role.metadata.name.as_deref(), Some("kubecloud"));
    assert!(!role.rules.unwrap_or_default().is_empty());
}

#[test]
fn fewer_parts_need_fewer_rules() {
    let all = rbac::rules(&Part::ALL).accesses();
    let lb = rbac::rules(&[Part::LoadBalancer]).accesses();
    assert!(lb.len() < all.len());
    assert!(lb.iter().all(|a| all.contains(a)));
    assert!(lb.iter().all(|a| a.group != "kubevirt.io"));
}

/// Each part's rules cover what its conformance group sends (after connecting), so a narrower
/// ClusterRole for fewer parts is enough for them. Compute needs storage and network too (a VM's
/// volumes and subnets).
macro_rules! part_rules_cover_their_group {
    ($test:ident, $run:ident, [$($part:ident),+], $compute:expr, $storage:expr, $network:expr, $lb:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let (s, cloud) = connected().await;
            s.kube.requests().reset();
            let ports = common::ports::OvnPorts::new(&s.ovn, &cloud);
            let target = Target {
                compute: $compute.then(|| cloud.compute()),
                storage: $storage.then(|| cloud.storage()),
                network: $network.then(|| cloud.network()),
                load_balancer: $lb.then(|| cloud.load_balancer()),
                ports: $compute.then_some(&ports as &dyn kubecloud_core::conformance::PortProbe),
            };
            let report = conformance::$run(&target, "pp", &params()).await;
            assert!(!report.passed.is_empty(), "{report}");
            let rules = rbac::rules(&[$(Part::$part),+]);
            let denied = denied_on(&s.kube, &rules);
            assert!(denied.is_empty(), "not allowed by the rules:\n{}", denied.join("\n"));
        }
    };
}

part_rules_cover_their_group!(
    storage_rules_cover_the_storage_group,
    run_storage,
    [Storage],
    false,
    true,
    false,
    false
);
part_rules_cover_their_group!(
    network_rules_cover_the_network_group,
    run_network,
    [Network],
    false,
    false,
    true,
    false
);
part_rules_cover_their_group!(
    load_balancer_rules_cover_the_load_balancer_group,
    run_load_balancer,
    [LoadBalancer],
    false,
    false,
    false,
    true
);
part_rules_cover_their_group!(
    compute_storage_and_network_rules_cover_the_compute_group,
    run_compute,
    [Compute, Storage, Network],
    true,
    true,
    true,
    false
);

/// The same on the stack with storage on a CSI driver (Ceph RBD profile), connected without a
/// LinstorCluster: the CSI backend's rules allow every request and are all used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_csi_stack_s_rules_allow_every_request_of_the_conformance_suite_and_nothing_more() {
    let fake = kubecloud_testkit::FakeCloud::builder()
        .csi(kubecloud_testkit::csi::CsiProfile::CephRbd)
        .start()
        .await
        .expect("fake cloud");
    common::stack::install_catalog_rbac(fake.rbac());
    fake.kube().requests().reset();
    let cloud = Cloud::connect_with(fake.kube().client(), ConnectOptions::new())
        .await
        .expect("connect");
    assert_eq!(cloud.backend_names()[1], "csi");
    let ports = common::ports::OvnPorts::new(&fake.ovn_northbound(), &cloud);
    let target = Target {
        compute: Some(cloud.compute()),
        storage: Some(cloud.storage()),
        network: Some(cloud.network()),
        load_balancer: Some(cloud.load_balancer()),
        ports: Some(&ports),
    };
    let params = Params {
        tier: Some("ceph-block".into()),
        second_tier: Some("ceph-block-2x".into()),
        ..params()
    };
    let report = conformance::run_all(&target, "rc", &params).await;
    eprintln!("{report}");
    quotas_conform(fake.kube(), &target, "rc", &params).await;
    let rules = rbac::rules_for(&cloud.backend_names());
    assert_least_privilege(fake.kube(), &rules);
}

/// The same on the stack with load balancing on Cilium LB-IPAM (chosen when connecting, with the
/// cluster's BGP speaker): the Cilium backend's rules allow every request and are all used but
/// those it lists as not exercised (adopting an administrator's speaker, changing the speaker).
#[cfg(feature = "cilium")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cilium_stack_s_rules_allow_every_request_of_the_conformance_suite_and_nothing_more() {
    let fake = kubecloud_testkit::FakeCloud::builder()
        .cilium()
        .start()
        .await
        .expect("fake cloud");
    fake.kube().seed_yaml(BULK).unwrap();
    common::stack::install_catalog_rbac(fake.rbac());
    fake.kube().requests().reset();
    // The cluster's BGP speaker given when connecting (the conformance suite's router `tor`), so
    // the BGP checks run and the BGP kinds' rules are used.
    use kubecloud::cilium::bgp::{CiliumBgp, CiliumBgpPeer};
    let speaker = CiliumBgp::new(64512).peer(CiliumBgpPeer::new(
        "tor",
        "192.0.2.1".parse().unwrap(),
        64513,
    ));
    let options = ConnectOptions::new()
        .backend(Part::LoadBalancer, "cilium")
        .with(speaker);
    let cloud = Cloud::connect_with(fake.kube().client(), options)
        .await
        .expect("connect");
    assert_eq!(cloud.backend_names()[3], "cilium");
    let ports = common::ports::OvnPorts::new(&fake.ovn_northbound(), &cloud);
    let target = Target {
        compute: Some(cloud.compute()),
        storage: Some(cloud.storage()),
        network: Some(cloud.network()),
        load_balancer: Some(cloud.load_balancer()),
        ports: Some(&ports),
    };
    let report = conformance::run_all(&target, "rl", &params()).await;
    eprintln!("{report}");
    quotas_conform(fake.kube(), &target, "rl", &params()).await;
    let rules = rbac::rules_for(&cloud.backend_names());
    assert_least_privilege(fake.kube(), &rules);
}

/// The same on the stack with load balancing on kube-vip (chosen when connecting): the kube-vip
/// backend's rules allow every request (detection, the ConfigMap, Services, Events) and are all
/// used but the ConfigMap's creation (the fake cloud, like kube-vip's install, has it).
#[cfg(feature = "kubevip")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubevip_stack_s_rules_allow_every_request_of_the_conformance_suite_and_nothing_more() {
    let fake = kubecloud_testkit::FakeCloud::builder()
        .kubevip()
        .start()
        .await
        .expect("fake cloud");
    fake.kube().seed_yaml(BULK).unwrap();
    common::stack::install_catalog_rbac(fake.rbac());
    fake.kube().requests().reset();
    let options = ConnectOptions::new().backend(Part::LoadBalancer, "kubevip");
    let cloud = Cloud::connect_with(fake.kube().client(), options)
        .await
        .expect("connect");
    assert_eq!(cloud.backend_names()[3], "kubevip");
    let ports = common::ports::OvnPorts::new(&fake.ovn_northbound(), &cloud);
    let target = Target {
        compute: Some(cloud.compute()),
        storage: Some(cloud.storage()),
        network: Some(cloud.network()),
        load_balancer: Some(cloud.load_balancer()),
        ports: Some(&ports),
    };
    let report = conformance::run_all(&target, "rk", &params()).await;
    eprintln!("{report}");
    quotas_conform(fake.kube(), &target, "rk", &params()).await;
    let rules = rbac::rules_for(&cloud.backend_names());
    assert_least_privilege(fake.kube(), &rules);
}

/// The serial console and VNC display on the whole stack: the console answers Enter with the
/// guest's login prompt and echoes a typed name, VNC delivers the RFB 3.8 handshake up to
/// `ServerInit`; another tenant's VM is not found, a stopped one a conflict; every request was
/// allowed by the compute rules, which the console and VNC rules were used by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_vnc_are_streams_allowed_by_the_rules() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Reads until what was read ends with `tail`.
    async fn read_until(stream: &mut kubecloud::ConsoleStream, tail: &[u8]) -> Vec<u8> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 256];
        while !seen.ends_with(tail) {
            let n = stream.read(&mut buf).await.expect("console read");
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
        }
        seen
    }

    let (s, cloud) = connected().await;
    let spec = kubecloud::TenantSpec::from_yaml(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/data/acme.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    let acme = cloud.tenant("acme").unwrap();
    let report = acme
        .apply(&acme.plan(&spec).await.unwrap(), Default::default())
        .await;
    let report = report.expect("applied");
    assert!(report.failed.is_empty(), "{report:?}");
    s.kube.requests().reset();

    let mut console = acme.vms().console("web").await.expect("console");
    console.write_all(b"\r").await.unwrap();
    assert_eq!(
        read_until(&mut console, b"web login: ").await,
        b"\r\nweb login: "
    );
    console.write_all(b"root\r").await.unwrap();
    assert_eq!(
        read_until(&mut console, b"Password: ").await,
        b"root\r\nPassword: "
    );
    console.shutdown().await.unwrap();

    let mut vnc = acme.vms().vnc("web").await.expect("vnc");
    let mut version = [0u8; 12];
    vnc.read_exact(&mut version).await.unwrap();
    assert_eq!(&version, b"RFB 003.008\n");
    vnc.write_all(b"RFB 003.008\n").await.unwrap();
    let mut types = [0u8; 2];
    vnc.read_exact(&mut types).await.unwrap();
    assert_eq!(types, [1, 1], "one security type: None");
    vnc.write_all(&[1]).await.unwrap();
    let mut result = [0u8; 4];
    vnc.read_exact(&mut result).await.unwrap();
    assert_eq!(result, [0, 0, 0, 0], "SecurityResult OK");
    vnc.write_all(&[1]).await.unwrap();
    let mut init = [0u8; 24];
    vnc.read_exact(&mut init).await.unwrap();
    assert_eq!(u16::from_be_bytes([init[0], init[1]]), 720);
    let mut name = vec![0u8; u32::from_be_bytes([init[20], init[21], init[22], init[23]]) as usize];
    vnc.read_exact(&mut name).await.unwrap();
    assert_eq!(name, b"acme_web");
    drop(vnc);

    let other = cloud.tenant("other").unwrap();
    let err = other.vms().console("web").await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    acme.vms().stop("web").await.unwrap();
    acme.vms()
        .wait(
            "web",
            kubecloud::wait::vm_phase(kubecloud::VmPhase::Stopped),
            Duration::from_secs(30),
        )
        .await
        .expect("stopped");
    let err = acme.vms().vnc("web").await.unwrap_err();
    assert!(
        matches!(err, kubecloud::Error::Conflict { .. }),
        "a stopped VM: {err}"
    );

    let rules = rbac::rules(&[Part::Compute, Part::Storage, Part::Network]);
    let denied = denied_on(&s.kube, &rules);
    assert!(
        denied.is_empty(),
        "not allowed by the rules:\n{}",
        denied.join("\n")
    );
    let used: BTreeSet<Access> = s.kube.requests().all().iter().flat_map(needed).collect();
    for sub in ["console", "vnc"] {
        let access = Access::new(
            "subresources.kubevirt.io",
            &format!("virtualmachineinstances/{sub}"),
            "get",
        );
        assert!(used.contains(&access), "{access} unused");
        assert!(rules.allows(&access));
    }
}

/// A VM preferring node-2 with a fixed IP on subnet `web`, booting from its RWX volume
/// `<name>-root` (migratable) or an RWO import (blocked).
fn node_2_vm(name: &str, ip: &str, movable: bool) -> kubecloud::VmSpec {
    use kubecloud::{AccessMode, BootDisk, ByteSize, NetworkInterface, Placement, VmSpec};
    VmSpec {
        name: name.into(),
        boot_disk: if movable {
            BootDisk::Volume {
                volume: format!("{name}-root"),
            }
        } else {
            BootDisk::Import {
                url: "https://images.example.com/fedora.qcow2".into(),
                size: ByteSize::gib(1),
                tier: Some("fast".into()),
                replicas: 1,
                access: AccessMode::ReadWriteOnce,
                mode: Default::default(),
            }
        },
        interfaces: vec![NetworkInterface {
            fixed_ip: Some(ip.parse().unwrap()),
            ..NetworkInterface::on_subnet("eth0", "web")
        }],
        placement: Placement {
            preferred_nodes: vec!["node-2".into()],
            ..Placement::default()
        },
        ..VmSpec::default()
    }
}

/// Reading what a guest agent reports needs only the tenants' rules (its subresource
/// included); evacuating a node and returning it to service need exactly the node-maintenance
/// rules, every one of them, and the tenants' rules never allow patching a Node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_info_is_covered_by_the_tenant_rules_and_node_maintenance_by_its_own_exactly() {
    use kubecloud::{AccessMode, ByteSize, SubnetSpec, TenantSpec, VolumeSpec, VpcSpec};
    let (s, cloud) = connected().await;
    let acme = cloud.tenant("acme").unwrap();
    let mut web = node_2_vm("web", "10.1.0.10", true);
    web.labels
        .insert(kubecloud_testkit::GUEST_AGENT_LABEL.into(), "fedora".into());
    let spec = TenantSpec {
        vpcs: vec![VpcSpec::named("main")],
        subnets: vec![SubnetSpec::new(
            "web",
            "main",
            "10.1.0.0/24".parse().unwrap(),
        )],
        volumes: vec![
            VolumeSpec::blank("web-root", ByteSize::gib(1))
                .with_access(AccessMode::ReadWriteMany)
                .with_tier("fast"),
        ],
        vms: vec![web, node_2_vm("db", "10.1.0.11", false)],
        ..TenantSpec::default()
    };
    let options = kubecloud::ApplyOptions {
        timeout: Duration::from_secs(60),
        ..kubecloud::ApplyOptions::default()
    };
    acme.apply(&acme.plan(&spec).await.unwrap(), options)
        .await
        .unwrap();
    for vm in ["web", "db"] {
        let got = acme
            .vms()
            .wait_running(vm, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(got.status.node.as_deref(), Some("node-2"));
    }

    // Guest info: the tenants' rules.
    s.kube.requests().reset();
    acme.vms()
        .wait(
            "web",
            kubecloud::wait::agent_connected(),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let web = acme.vms().get("web").await.unwrap();
    assert!(web.status.guest.and_then(|g| g.hostname).is_some());
    let tenant_rules = rbac::rules_for(&cloud.backend_names());
    let denied = denied_on(&s.kube, &tenant_rules);
    assert!(denied.is_empty(), "not allowed:\n{}", denied.join("\n"));
    let guestosinfo = Access::new(
        "subresources.kubevirt.io",
        "virtualmachineinstances/guestosinfo",
        "get",
    );
    assert!(
        s.kube
            .requests()
            .all()
            .iter()
            .flat_map(needed)
            .any(|a| a == guestosinfo)
    );

    // Node maintenance: its own rules, exactly, from an operator's process of its own (a cloud
    // of the four backends, nothing cached).
    let operator = common::stack::cloud_on(&s.kube, &s.linstor, &s.pki);
    s.kube.requests().reset();
    let report = operator
        .nodes()
        .evacuate(
            "node-2",
            &kubecloud::EvacuateOptions {
                stop_unmovable: true,
                timeout_per_vm: Duration::from_secs(60),
                ..kubecloud::EvacuateOptions::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    assert!(report.is_empty_node(), "{report:#?}");
    operator.nodes().return_to_service("node-2").await.unwrap();
    assert_least_privilege(&s.kube, &rbac::node_maintenance_rules());
    let patch_node = Access::new("", "nodes", "patch");
    assert!(rbac::node_maintenance_rules().allows(&patch_node));
    assert!(!tenant_rules.allows(&patch_node));
    assert!(!rbac::rules(&Part::ALL).allows(&patch_node));
}
