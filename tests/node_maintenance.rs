//! Node maintenance and guest-agent information on the whole stack (KubeVirt + CDI, LINSTOR,
//! Kube-OVN, MetalLB on the test doubles): evacuating one of three nodes moves every migratable
//! VM of every tenant to the other two with its IP and MAC, reports the blocked ones with their
//! reasons before anything moves, leaves the node cordoned (no new VM lands there) until it is
//! returned to service; a VM whose image runs the guest agent shows what the agent reports.
#![cfg(feature = "kubernetes")]

mod common {
    pub mod stack;
}

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use common::stack::stack;
use kubecloud::{
    AccessMode, ApplyOptions, BootDisk, ByteSize, EvacuateOptions, EvacuationEvent,
    MigrationBlocker, NetworkInterface, Placement, SubnetSpec, TenantSpec, VmResources, VmSpec,
    VolumeSpec, VpcSpec,
};
use kubecloud_testkit::GUEST_AGENT_LABEL;
use kubecloud_testkit::Latency;

const TIMEOUT: Duration = Duration::from_secs(60);

/// A VM preferring node-2, with a fixed IP on subnet `web`; its boot disk is the RWX volume
/// `<name>-root` (live-migratable) or, if `movable` is false, an RWO import (blocked).
fn vm(name: &str, ip: &str, movable: bool) -> VmSpec {
    VmSpec {
        name: name.into(),
        resources: VmResources::Custom {
            cpu_cores: 1,
            memory: ByteSize::gib(1),
        },
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

/// A tenant with a subnet `cidr` and these VMs (`(name, ip, movable)`).
fn tenant(cidr: &str, vms: &[(&str, &str, bool)]) -> TenantSpec {
    TenantSpec {
        vpcs: vec![VpcSpec::named("main")],
        subnets: vec![SubnetSpec::new("web", "main", cidr.parse().unwrap())],
        volumes: vms
            .iter()
            .filter(|(_, _, movable)| *movable)
            .map(|(name, _, _)| {
                VolumeSpec::blank(format!("{name}-root"), ByteSize::gib(1))
                    .with_access(AccessMode::ReadWriteMany)
                    .with_tier("fast")
            })
            .collect(),
        vms: vms
            .iter()
            .map(|(name, ip, movable)| vm(name, ip, *movable))
            .collect(),
        ..TenantSpec::default()
    }
}

fn options() -> ApplyOptions {
    ApplyOptions {
        timeout: TIMEOUT,
        ..ApplyOptions::default()
    }
}

/// The Kube-OVN double's `IP` object of VM `vm` of `ns`: (address, MAC).
fn ovn_ip(s: &common::stack::Stack, ns: &str, vm: &str) -> (String, String) {
    let ip = s
        .kube
        .cluster()
        .get("kubeovn.io/v1", "IP", None, &format!("{vm}.{ns}"))
        .unwrap_or_else(|e| panic!("IP of {ns}/{vm}: {e}"));
    (
        ip["spec"]["ipAddress"].as_str().unwrap_or_default().into(),
        ip["spec"]["macAddress"].as_str().unwrap_or_default().into(),
    )
}

fn migrations(s: &common::stack::Stack) -> usize {
    s.kube
        .cluster()
        .list("kubevirt.io/v1", "VirtualMachineInstanceMigration", None)
        .unwrap_or_default()
        .len()
}

fn node_unschedulable(s: &common::stack::Stack, node: &str) -> bool {
    s.kube.cluster().get("v1", "Node", None, node).unwrap()["spec"]["unschedulable"] == true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuating_a_node_moves_every_migratable_vm_keeping_addresses_and_reports_the_blocked_first()
 {
    let s = stack(Latency::None, 0).await;
    let tenants = [
        (
            "acme",
            tenant(
                "10.1.0.0/24",
                &[
                    ("web", "10.1.0.10", true),
                    ("api", "10.1.0.11", true),
                    ("db", "10.1.0.12", false),
                ],
            ),
        ),
        (
            "globex",
            tenant(
                "10.2.0.0/24",
                &[("app", "10.2.0.10", true), ("cache", "10.2.0.11", false)],
            ),
        ),
    ];
    let mut before = BTreeMap::new();
    for (name, spec) in &tenants {
        let t = s.cloud.tenant(name).unwrap();
        t.apply(&t.plan(spec).await.unwrap(), options())
            .await
            .unwrap();
        for vm in &spec.vms {
            let got = t.vms().wait_running(&vm.name, TIMEOUT).await.unwrap();
            assert_eq!(
                got.status.node.as_deref(),
                Some("node-2"),
                "{name}/{} should start on its preferred node",
                vm.name
            );
            before.insert(
                (name.to_string(), vm.name.clone()),
                (ovn_ip(&s, name, &vm.name), got.status.interfaces.clone()),
            );
        }
    }
    assert_eq!(
        s.cloud.nodes().vms("node-2").await.unwrap().len(),
        5,
        "every VM of both tenants is on node-2"
    );

    // Evacuate: every event with what the cluster held when it was reported.
    let seen = Mutex::new(Vec::new());
    let evacuation = EvacuateOptions {
        max_parallel: 2,
        timeout_per_vm: TIMEOUT,
        ..EvacuateOptions::default()
    };
    let report = s
        .cloud
        .nodes()
        .evacuate("node-2", &evacuation, |event| {
            seen.lock().unwrap().push((
                event.clone(),
                migrations(&s),
                node_unschedulable(&s, "node-2"),
            ));
        })
        .await
        .unwrap();
    let seen = seen.into_inner().unwrap();

    // The blocked ones come first, with their reasons, before the node is cordoned and before
    // any migration object exists.
    let blocked: Vec<_> = seen
        .iter()
        .take_while(|(e, _, _)| matches!(e, EvacuationEvent::Blocked { .. }))
        .collect();
    assert_eq!(blocked.len(), 2, "{seen:#?}");
    for (event, migrations, cordoned) in &blocked {
        let EvacuationEvent::Blocked { vm, blockers } = event else {
            unreachable!()
        };
        assert_eq!(*migrations, 0, "{vm}: a migration existed already");
        assert!(!cordoned, "{vm}: the node was cordoned already");
        assert!(
            blockers
                .iter()
                .any(|b| matches!(b, MigrationBlocker::VolumeNotShared { .. })),
            "{vm}: {blockers:?}"
        );
    }
    let blocked_names: Vec<String> = report.blocked.iter().map(|(v, _)| v.to_string()).collect();
    assert_eq!(blocked_names, ["acme/db", "globex/cache"]);
    assert!(matches!(
        seen[2].0,
        EvacuationEvent::Cordoned { ref node } if node == "node-2"
    ));

    // Every movable VM runs elsewhere, its IP and MAC unchanged (as the VM says and as
    // Kube-OVN holds them).
    assert!(report.failed.is_empty(), "{report:#?}");
    let migrated: Vec<String> = report.migrated.iter().map(|(v, _)| v.to_string()).collect();
    assert_eq!(migrated, ["acme/api", "acme/web", "globex/app"]);
    assert_eq!(migrations(&s), 3, "one migration per movable VM");
    for (vm, node) in &report.migrated {
        assert!(node == "node-1" || node == "node-3", "{vm} on {node}");
        let got = s
            .cloud
            .tenant(vm.tenant.as_str())
            .unwrap()
            .vms()
            .get(&vm.vm)
            .await
            .unwrap();
        assert_eq!(got.status.node.as_deref(), Some(node.as_str()));
        let (ovn_before, ifaces_before) = &before[&(vm.tenant.to_string(), vm.vm.clone())];
        assert_eq!(&ovn_ip(&s, vm.tenant.as_str(), &vm.vm), ovn_before, "{vm}");
        assert_eq!(&got.status.interfaces, ifaces_before, "{vm}");
    }
    // The blocked ones still run there (not stopped unless asked).
    let left: Vec<String> = s
        .cloud
        .nodes()
        .vms("node-2")
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(left, ["acme/db", "globex/cache"]);

    // The node stays cordoned: a new VM lands elsewhere.
    assert!(node_unschedulable(&s, "node-2"));
    let listed = s.cloud.nodes().list().await.unwrap();
    assert!(listed.iter().any(|n| n.name == "node-2" && !n.schedulable));
    let acme = s.cloud.tenant("acme").unwrap();
    let mut spec = tenants[0].1.clone();
    spec.volumes.push(
        VolumeSpec::blank("late-root", ByteSize::gib(1))
            .with_access(AccessMode::ReadWriteMany)
            .with_tier("fast"),
    );
    spec.vms.push(vm("late", "10.1.0.13", true));
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    let late = acme.vms().wait_running("late", TIMEOUT).await.unwrap();
    assert_ne!(late.status.node.as_deref(), Some("node-2"));

    // Returned to service: uncordoned, and it takes VMs again.
    let node = s.cloud.nodes().return_to_service("node-2").await.unwrap();
    assert!(node.schedulable);
    assert!(!node_unschedulable(&s, "node-2"));
    let moved = acme
        .vms()
        .migrate("web", &kubecloud::MigrationTarget::Node("node-2".into()))
        .await
        .unwrap();
    assert_eq!(moved.target_node.as_deref(), Some("node-2"));
    let back = acme
        .vms()
        .wait(
            "web",
            kubecloud::wait::vm_running_elsewhere(moved.source_node.clone()),
            TIMEOUT,
        )
        .await
        .unwrap();
    assert_eq!(back.status.node.as_deref(), Some("node-2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuating_with_stop_unmovable_stops_the_blocked_vms_and_empties_the_node() {
    let s = stack(Latency::None, 1).await;
    let spec = tenant(
        "10.1.0.0/24",
        &[("web", "10.1.0.10", true), ("db", "10.1.0.12", false)],
    );
    let acme = s.cloud.tenant("acme").unwrap();
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();
    for vm in ["web", "db"] {
        acme.vms().wait_running(vm, TIMEOUT).await.unwrap();
    }
    let report = s
        .cloud
        .nodes()
        .evacuate(
            "node-2",
            &EvacuateOptions {
                stop_unmovable: true,
                timeout_per_vm: TIMEOUT,
                ..EvacuateOptions::default()
            },
            |_| {},
        )
        .await
        .unwrap();
    assert!(report.is_empty_node(), "{report:#?}");
    assert_eq!(report.stopped.len(), 1);
    assert!(s.cloud.nodes().vms("node-2").await.unwrap().is_empty());
    assert_eq!(
        acme.vms().get("db").await.unwrap().status.phase,
        kubecloud::VmPhase::Stopped
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_node_name_is_refused_before_anything_is_sent() {
    let s = stack(Latency::None, 2).await;
    s.kube.requests().reset();
    let err = s
        .cloud
        .nodes()
        .evacuate("Node_2", &EvacuateOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(err.invalid_field(), Some("node"));
    assert!(s.kube.requests().all().is_empty());
    let err = s
        .cloud
        .nodes()
        .return_to_service("node-9")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_whose_image_runs_the_guest_agent_reports_its_guest_info() {
    let s = stack(Latency::None, 3).await;
    let acme = s.cloud.tenant("acme").unwrap();
    let mut with_agent = vm("web", "10.1.0.10", true);
    with_agent
        .labels
        .insert(GUEST_AGENT_LABEL.into(), "fedora".into());
    let without = vm("db", "10.1.0.12", true);
    let mut spec = tenant("10.1.0.0/24", &[]);
    spec.volumes = ["web-root", "db-root"]
        .iter()
        .map(|n| VolumeSpec::blank(*n, ByteSize::gib(1)).with_tier("fast"))
        .collect();
    spec.vms = vec![with_agent, without];
    acme.apply(&acme.plan(&spec).await.unwrap(), options())
        .await
        .unwrap();

    let web = acme
        .vms()
        .wait("web", kubecloud::wait::agent_connected(), TIMEOUT)
        .await
        .unwrap();
    assert!(web.status.condition("AgentConnected").unwrap().status);
    let web = acme.vms().get("web").await.unwrap();
    let guest = web.status.guest.expect("guest info");
    assert_eq!(guest.hostname.as_deref(), Some("web"));
    let os = guest.os.expect("the guest OS");
    assert_eq!(os.name, "Fedora Linux 40 (Cloud Edition)");
    assert_eq!(os.version, "40");
    assert!(os.kernel.contains("fc40"), "{os:?}");
    assert_eq!(guest.users[0].name, "fedora");
    assert!(guest.filesystems.iter().any(|f| f.mount_point == "/"));
    assert_eq!(guest.interfaces[0].name, "eth0");
    assert_eq!(guest.interfaces[0].ip_addresses, ["10.1.0.10"]);
    assert_eq!(guest.interfaces[0].info_source, ["domain", "guest-agent"]);

    // Without an agent: no guest info, and the subresource is never asked.
    s.kube.requests().reset();
    let db = acme.vms().wait_running("db", TIMEOUT).await.unwrap();
    assert!(db.status.guest.is_none());
    assert!(db.status.condition("AgentConnected").is_none());
    let db = acme.vms().get("db").await.unwrap();
    assert!(db.status.guest.is_none());
    assert!(
        !s.kube
            .requests()
            .all()
            .iter()
            .any(|r| r.subresource.as_deref() == Some("guestosinfo")),
        "asked a guest without an agent"
    );
}
