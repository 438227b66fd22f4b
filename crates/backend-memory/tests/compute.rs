//! Compute rules of the in-memory cloud: asynchronous phases, idempotent apply, volume and
//! address checks that change nothing when they fail, placement, power, migration, deletion.

use std::time::Duration;

use kubecloud_core::{
    AccessMode, Attachment, BlockStorage, BootDisk, ByteSize, Compute, Error, IpReservationSpec,
    Labels, MigrationBlocker, MigrationTarget, Network, NetworkInterface, PodBinding, PowerAction,
    ResourceKind, RunStrategy, SecurityGroupSpec, SubnetSpec, Tenant, Vm, VmPhase, VmSpec,
    VolumePhase, VolumeSpec, VpcSpec, wait,
};
use kubecloud_memory::MemoryCloud;

const WAIT: Duration = Duration::from_secs(10);

fn acme() -> Tenant {
    Tenant::new("acme").unwrap()
}

fn vm(name: &str) -> VmSpec {
    VmSpec {
        name: name.into(),
        ..VmSpec::default()
    }
}

fn on_front(name: &str) -> VmSpec {
    VmSpec {
        interfaces: vec![NetworkInterface::on_subnet("eth0", "front")],
        ..vm(name)
    }
}

async fn with_subnet(cloud: &MemoryCloud, tenant: &Tenant) {
    cloud
        .create_vpc(tenant, &VpcSpec::named("main"))
        .await
        .unwrap();
    let subnet = SubnetSpec::new("front", "main", "10.0.0.0/24".parse().unwrap());
    cloud.create_subnet(tenant, &subnet).await.unwrap();
}

async fn until_phase(cloud: &MemoryCloud, tenant: &Tenant, name: &str, phase: VmPhase) -> Vm {
    wait::until(
        cloud.watch_vm(tenant, name).await.unwrap(),
        wait::vm_phase(phase),
        WAIT,
    )
    .await
    .unwrap()
}

async fn running(cloud: &MemoryCloud, tenant: &Tenant, name: &str) -> Vm {
    until_phase(cloud, tenant, name, VmPhase::Running).await
}

async fn used(cloud: &MemoryCloud, tenant: &Tenant, subnet: &str) -> u128 {
    cloud.get_subnet(tenant, subnet).await.unwrap().used
}

#[tokio::test(start_paused = true)]
async fn a_vm_is_not_running_the_instant_it_is_created() {
    let cloud = MemoryCloud::new();
    let created = cloud
        .apply_vm_resolved(&acme(), &vm("web-1"))
        .await
        .unwrap();
    assert_eq!(created.status.phase, VmPhase::Starting);
    let vm = running(&cloud, &acme(), "web-1").await;
    assert_eq!(vm.status.node.as_deref(), Some("node-1"));
    assert_eq!(vm.status.interfaces.len(), 1, "the implicit pod interface");
    assert_eq!(vm.status.interfaces[0].name, "default");
    assert!(vm.status.condition("Ready").unwrap().status);
}

#[tokio::test(start_paused = true)]
async fn apply_is_idempotent_and_emits_no_event_for_the_same_spec() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    let first = cloud
        .apply_vm_resolved(&tenant, &vm("web-1"))
        .await
        .unwrap();
    let running = running(&cloud, &tenant, "web-1").await;
    let mut watch = cloud.watch_vm(&tenant, "web-1").await.unwrap();
    use futures::StreamExt;
    assert_eq!(watch.next().await.unwrap().unwrap(), running);
    let again = cloud
        .apply_vm_resolved(&tenant, &vm("web-1"))
        .await
        .unwrap();
    assert_eq!(again, running);
    assert_eq!(again.status.interfaces, first.status.interfaces);
    let next = tokio::time::timeout(Duration::from_secs(1), watch.next()).await;
    assert!(next.is_err(), "no change, no event: {next:?}");
}

#[tokio::test(start_paused = true)]
async fn halted_and_manual_vms_start_stopped() {
    let cloud = MemoryCloud::new();
    for (name, strategy) in [("a", RunStrategy::Halted), ("b", RunStrategy::Manual)] {
        let spec = VmSpec {
            run_strategy: strategy,
            ..vm(name)
        };
        let vm = cloud.apply_vm_resolved(&acme(), &spec).await.unwrap();
        assert_eq!(vm.status.phase, VmPhase::Stopped, "{strategy:?}");
        assert_eq!(vm.status.node, None);
    }
}

#[tokio::test(start_paused = true)]
async fn missing_volume_subnet_or_security_group_is_refused_and_nothing_is_created() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    with_subnet(&cloud, &tenant).await;
    let cases = [
        (
            VmSpec {
                boot_disk: BootDisk::Volume {
                    volume: "nope".into(),
                },
                ..on_front("a")
            },
            ResourceKind::Volume,
        ),
        (
            VmSpec {
                data_volumes: vec!["nope".into()],
                ..on_front("a")
            },
            ResourceKind::Volume,
        ),
        (
            VmSpec {
                interfaces: vec![
                    NetworkInterface::on_subnet("eth0", "front"),
                    NetworkInterface::on_subnet("eth1", "back"),
                ],
                ..vm("a")
            },
            ResourceKind::Subnet,
        ),
        (
            VmSpec {
                interfaces: vec![NetworkInterface {
                    security_groups: vec!["web".into()],
                    ..NetworkInterface::on_subnet("eth0", "front")
                }],
                ..vm("a")
            },
            ResourceKind::SecurityGroup,
        ),
    ];
    for (spec, kind) in cases {
        let err = cloud.apply_vm_resolved(&tenant, &spec).await.unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { kind: k, .. } if *k == kind),
            "{kind}: {err}"
        );
    }
    assert!(
        cloud
            .list_vms(&tenant, &Labels::new())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(used(&cloud, &tenant, "front").await, 0, "no address kept");
}

#[tokio::test(start_paused = true)]
async fn invalid_spec_is_refused_naming_the_field() {
    let cloud = MemoryCloud::new();
    let spec = VmSpec {
        interfaces: vec![NetworkInterface::pod_network("Eth0")],
        ..vm("a")
    };
    let err = cloud.apply_vm_resolved(&acme(), &spec).await.unwrap_err();
    assert_eq!(err.invalid_field(), Some("interfaces[0].name"));
    assert!(cloud.get_vm(&acme(), "a").await.unwrap_err().is_not_found());
}

#[tokio::test(start_paused = true)]
async fn fixed_ip_is_honoured_checked_and_a_taken_one_changes_nothing() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    with_subnet(&cloud, &tenant).await;
    let fixed = |name: &str, ip: &str| VmSpec {
        interfaces: vec![
            NetworkInterface::on_subnet("eth0", "front").with_fixed_ip(ip.parse().unwrap()),
        ],
        ..vm(name)
    };
    let a = cloud
        .apply_vm_resolved(&tenant, &fixed("a", "10.0.0.50"))
        .await
        .unwrap();
    assert_eq!(
        a.status.interfaces[0].ip,
        Some("10.0.0.50".parse().unwrap())
    );

    // Outside the subnet, or its gateway: invalid input naming the field.
    for bad in ["10.9.0.5", "10.0.0.1"] {
        let err = cloud
            .apply_vm_resolved(&tenant, &fixed("b", bad))
            .await
            .unwrap_err();
        assert_eq!(err.invalid_field(), Some("interfaces[0].fixedIp"), "{bad}");
    }
    // Taken: a conflict naming the field; a first interface's dynamic address is given back.
    let before = used(&cloud, &tenant, "front").await;
    let spec = VmSpec {
        interfaces: vec![
            NetworkInterface::on_subnet("eth0", "front"),
            NetworkInterface::on_subnet("eth1", "front")
                .with_fixed_ip("10.0.0.50".parse().unwrap()),
        ],
        ..vm("b")
    };
    let err = cloud.apply_vm_resolved(&tenant, &spec).await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { reason, .. } if reason.contains("interfaces[1].fixedIp")),
        "{err}"
    );
    assert_eq!(used(&cloud, &tenant, "front").await, before);
    assert!(cloud.get_vm(&tenant, "b").await.unwrap_err().is_not_found());
}

#[tokio::test(start_paused = true)]
async fn a_vm_takes_an_unowned_reservation_and_gives_it_back_on_delete() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    with_subnet(&cloud, &tenant).await;
    let ip = "10.0.0.77".parse().unwrap();
    let reservation = cloud
        .reserve_ip(
            &tenant,
            &IpReservationSpec::new("db-ip", "front").with_ip(ip),
        )
        .await
        .unwrap();
    let spec = VmSpec {
        interfaces: vec![NetworkInterface::on_subnet("eth0", "front").with_fixed_ip(ip)],
        ..vm("db")
    };
    let db = cloud.apply_vm_resolved(&tenant, &spec).await.unwrap();
    assert_eq!(db.status.interfaces[0].ip, Some(ip));
    assert_eq!(
        db.status.interfaces[0].mac,
        Some(reservation.mac),
        "the reservation's MAC"
    );
    let held = cloud.get_ip(&tenant, "db-ip").await.unwrap();
    assert_eq!(held.owner.as_deref(), Some("db/eth0"));
    assert_eq!(used(&cloud, &tenant, "front").await, 1, "counted once");
    // Another VM cannot take it while db holds it; the reservation cannot be released.
    let other = VmSpec {
        name: "db2".into(),
        ..spec.clone()
    };
    assert!(matches!(
        cloud.apply_vm_resolved(&tenant, &other).await.unwrap_err(),
        Error::Conflict { .. }
    ));
    assert!(matches!(
        cloud.release_ip(&tenant, "db-ip").await.unwrap_err(),
        Error::Conflict { .. }
    ));

    cloud.delete_vm(&tenant, "db").await.unwrap();
    let kept = cloud.get_ip(&tenant, "db-ip").await.unwrap();
    assert_eq!(kept.owner, None, "the reservation stays, unowned");
    assert_eq!(used(&cloud, &tenant, "front").await, 1);
    cloud.release_ip(&tenant, "db-ip").await.unwrap();
    assert_eq!(used(&cloud, &tenant, "front").await, 0);
}

#[tokio::test(start_paused = true)]
async fn macs_are_generated_unique_or_fixed_and_never_two_alike() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    with_subnet(&cloud, &tenant).await;
    let mut macs = std::collections::HashSet::new();
    for i in 0..50 {
        let vm = cloud
            .apply_vm_resolved(&tenant, &on_front(&format!("vm-{i}")))
            .await
            .unwrap();
        let mac = vm.status.interfaces[0].mac.unwrap();
        assert!(mac.is_locally_administered() && !mac.is_multicast());
        assert!(macs.insert(mac), "{mac} twice");
    }
    let fixed: kubecloud_core::MacAddress = "52:54:00:aa:bb:cc".parse().unwrap();
    let with_mac = |name: &str| VmSpec {
        interfaces: vec![NetworkInterface::on_subnet("eth0", "front").with_mac(fixed)],
        ..vm(name)
    };
    let a = cloud
        .apply_vm_resolved(&tenant, &with_mac("fixed-a"))
        .await
        .unwrap();
    assert_eq!(a.status.interfaces[0].mac, Some(fixed));
    let err = cloud
        .apply_vm_resolved(&tenant, &with_mac("fixed-b"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { reason, .. } if reason.contains("interfaces[0].mac")),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_write_once_volume_serves_one_vm_and_read_write_many_serves_several() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    cloud
        .create_volume(&tenant, &VolumeSpec::blank("rwo", ByteSize::gib(1)))
        .await
        .unwrap();
    cloud
        .create_volume(
            &tenant,
            &VolumeSpec::blank("rwx", ByteSize::gib(1)).with_access(AccessMode::ReadWriteMany),
        )
        .await
        .unwrap();
    let with = |name: &str, volume: &str| VmSpec {
        data_volumes: vec![volume.into()],
        ..vm(name)
    };
    cloud
        .apply_vm_resolved(&tenant, &with("a", "rwo"))
        .await
        .unwrap();
    let err = cloud
        .apply_vm_resolved(&tenant, &with("b", "rwo"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Conflict {
                kind: ResourceKind::Volume,
                ..
            }
        ),
        "{err}"
    );
    cloud
        .apply_vm_resolved(&tenant, &with("c", "rwx"))
        .await
        .unwrap();
    cloud
        .apply_vm_resolved(&tenant, &with("d", "rwx"))
        .await
        .unwrap();
    let rwx = cloud.get_volume(&tenant, "rwx").await.unwrap();
    assert_eq!(rwx.status.used_by, vec!["c".to_string(), "d".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_vm_provisions_while_its_volume_populates() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    let spec = VmSpec {
        boot_disk: BootDisk::Import {
            url: "https://images.example.com/fedora.qcow2".into(),
            size: ByteSize::gib(10),
            tier: None,
            replicas: 2,
            access: AccessMode::ReadWriteMany,
            mode: Default::default(),
        },
        ..vm("web")
    };
    let created = cloud.apply_vm_resolved(&tenant, &spec).await.unwrap();
    assert_eq!(created.status.phase, VmPhase::Provisioning);
    let boot = cloud.get_volume(&tenant, "web-boot").await.unwrap();
    assert_eq!(boot.status.used_by, vec!["web".to_string()]);
    assert_eq!(boot.status.replicas.len(), 2);
    running(&cloud, &tenant, "web").await;
    let boot = cloud.get_volume(&tenant, "web-boot").await.unwrap();
    assert_eq!(boot.status.phase, VolumePhase::Ready);

    cloud.delete_vm(&tenant, "web").await.unwrap();
    assert!(
        cloud
            .get_volume(&tenant, "web-boot")
            .await
            .unwrap_err()
            .is_not_found(),
        "the imported boot volume goes with its VM"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_import_fails_the_vm_fast() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    let spec = VmSpec {
        boot_disk: BootDisk::Import {
            url: "https://images.example.invalid/fedora.qcow2".into(),
            size: ByteSize::gib(10),
            tier: None,
            replicas: 1,
            access: AccessMode::ReadWriteOnce,
            mode: Default::default(),
        },
        ..vm("web")
    };
    cloud.apply_vm_resolved(&tenant, &spec).await.unwrap();
    let started = tokio::time::Instant::now();
    let err = wait::until(
        cloud.watch_vm(&tenant, "web").await.unwrap(),
        wait::vm_running(),
        Duration::from_secs(3600),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1), "fails fast");
    assert!(
        matches!(&err, Error::Failed { reason, .. } if reason.contains("ImportFailed")),
        "{err}"
    );
    let vm = cloud.get_vm(&tenant, "web").await.unwrap();
    assert_eq!(vm.status.phase, VmPhase::Failed);
    assert!(
        vm.status
            .conditions
            .iter()
            .any(|c| c.reason == "ImportFailed")
    );
    let volume = cloud.get_volume(&tenant, "web-boot").await.unwrap();
    assert_eq!(volume.status.phase, VolumePhase::Failed);
    assert!(
        volume
            .status
            .message
            .unwrap()
            .starts_with("import failed: ")
    );
}

#[tokio::test(start_paused = true)]
async fn placement_follows_selector_preference_and_spread() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    let mut pinned = vm("pinned");
    pinned
        .placement
        .node_selector
        .insert("kubernetes.io/hostname".into(), "node-3".into());
    cloud.apply_vm_resolved(&tenant, &pinned).await.unwrap();
    let mut preferring = vm("preferring");
    preferring.placement.preferred_nodes = vec!["node-3".into()];
    cloud.apply_vm_resolved(&tenant, &preferring).await.unwrap();
    assert_eq!(
        running(&cloud, &tenant, "pinned")
            .await
            .status
            .node
            .as_deref(),
        Some("node-3")
    );
    assert_eq!(
        running(&cloud, &tenant, "preferring")
            .await
            .status
            .node
            .as_deref(),
        Some("node-3")
    );

    let mut nodes = Vec::new();
    for i in 0..3 {
        let mut spec = vm(&format!("db-{i}"));
        spec.placement.spread_group = Some("db".into());
        spec.placement.preferred_nodes = vec!["node-1".into()];
        cloud.apply_vm_resolved(&tenant, &spec).await.unwrap();
        nodes.push(
            running(&cloud, &tenant, &spec.name)
                .await
                .status
                .node
                .unwrap(),
        );
    }
    nodes.sort();
    assert_eq!(nodes, vec!["node-1", "node-2", "node-3"], "one per node");

    let mut nowhere = vm("nowhere");
    nowhere
        .placement
        .node_selector
        .insert("kubernetes.io/hostname".into(), "node-9".into());
    let vm = cloud.apply_vm_resolved(&tenant, &nowhere).await.unwrap();
    assert_eq!(vm.status.phase, VmPhase::Starting);
    assert_eq!(
        vm.status.condition("PodScheduled").unwrap().reason,
        "Unschedulable"
    );
}

#[tokio::test(start_paused = true)]
async fn power_stop_start_and_restart_step_through_their_phases() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    cloud.apply_vm_resolved(&tenant, &vm("web")).await.unwrap();
    let up = running(&cloud, &tenant, "web").await;
    let same = cloud
        .power(&tenant, "web", PowerAction::Start)
        .await
        .unwrap();
    assert_eq!(same, up, "start on a running VM is a no-op");

    let stopping = cloud
        .power(&tenant, "web", PowerAction::Stop)
        .await
        .unwrap();
    assert_eq!(stopping.status.phase, VmPhase::Stopping);
    let stopped = until_phase(&cloud, &tenant, "web", VmPhase::Stopped).await;
    assert_eq!(stopped.status.node, None);
    assert_eq!(
        stopped.status.interfaces, up.status.interfaces,
        "addresses kept"
    );

    let restart = cloud
        .power(&tenant, "web", PowerAction::Restart)
        .await
        .unwrap_err();
    assert!(matches!(restart, Error::Conflict { .. }), "{restart}");

    let starting = cloud
        .power(&tenant, "web", PowerAction::Start)
        .await
        .unwrap();
    assert_eq!(starting.status.phase, VmPhase::Starting);
    running(&cloud, &tenant, "web").await;

    let mut watch = cloud.watch_vm(&tenant, "web").await.unwrap();
    cloud
        .power(&tenant, "web", PowerAction::Restart)
        .await
        .unwrap();
    use futures::StreamExt;
    let mut phases = Vec::new();
    while let Some(vm) = watch.next().await {
        let phase = vm.unwrap().status.phase;
        phases.push(phase);
        if phases.len() > 1 && phase == VmPhase::Running {
            break;
        }
    }
    assert_eq!(
        phases,
        vec![
            VmPhase::Running,
            VmPhase::Stopping,
            VmPhase::Starting,
            VmPhase::Running
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn migration_blockers_lists_every_reason() {
    let cloud = MemoryCloud::builder().nodes(1).build();
    let tenant = acme();
    cloud
        .create_volume(&tenant, &VolumeSpec::blank("data", ByteSize::gib(1)))
        .await
        .unwrap();
    let spec = VmSpec {
        boot_disk: BootDisk::Import {
            url: "https://images.example.com/f.qcow2".into(),
            size: ByteSize::gib(1),
            tier: None,
            replicas: 1,
            access: AccessMode::ReadWriteOnce,
            mode: Default::default(),
        },
        data_volumes: vec!["data".into()],
        interfaces: vec![NetworkInterface {
            attachment: Attachment::PodNetwork {
                binding: PodBinding::Bridge,
            },
            ..NetworkInterface::pod_network("eth0")
        }],
        run_strategy: RunStrategy::Halted,
        ..vm("legacy")
    };
    cloud.apply_vm_resolved(&tenant, &spec).await.unwrap();
    let blockers = cloud.migration_blockers(&tenant, "legacy").await.unwrap();
    assert!(blockers.contains(&MigrationBlocker::VolumeNotShared {
        volume: "legacy-boot".into()
    }));
    assert!(blockers.contains(&MigrationBlocker::VolumeNotShared {
        volume: "data".into()
    }));
    assert!(blockers.contains(&MigrationBlocker::BridgeOnPodNetwork {
        interface: "eth0".into()
    }));
    assert!(
        blockers
            .iter()
            .any(|b| matches!(b, MigrationBlocker::NotRunning { .. }))
    );
    assert!(
        blockers
            .iter()
            .any(|b| matches!(b, MigrationBlocker::NoTargetNode { .. }))
    );
    assert_eq!(blockers.len(), 5, "{blockers:?}");

    let err = cloud
        .migrate(&tenant, "legacy", &MigrationTarget::AnyNode)
        .await
        .unwrap_err();
    match err {
        Error::Conflict { reason, .. } => {
            for blocker in &blockers {
                assert!(reason.contains(&blocker.to_string()), "{reason}");
            }
        }
        other => panic!("{other}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_container_disk_vm_migrates_keeping_its_addresses() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    with_subnet(&cloud, &tenant).await;
    cloud
        .apply_vm_resolved(&tenant, &on_front("web"))
        .await
        .unwrap();
    let before = running(&cloud, &tenant, "web").await;
    assert!(
        cloud
            .migration_blockers(&tenant, "web")
            .await
            .unwrap()
            .is_empty()
    );
    let source = before.status.node.clone().unwrap();
    let migration = cloud
        .migrate(&tenant, "web", &MigrationTarget::AnyNode)
        .await
        .unwrap();
    assert_eq!(migration.source_node, source);
    let during = cloud.get_vm(&tenant, "web").await.unwrap();
    assert_eq!(during.status.phase, VmPhase::Migrating);
    let after = wait::until(
        cloud.watch_vm(&tenant, "web").await.unwrap(),
        wait::vm_running_elsewhere(source),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(after.status.node, migration.target_node);
    assert_eq!(after.status.interfaces, before.status.interfaces);
}

#[tokio::test(start_paused = true)]
async fn migration_to_a_named_node_and_to_an_unknown_one() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    cloud.apply_vm_resolved(&tenant, &vm("web")).await.unwrap();
    let before = running(&cloud, &tenant, "web").await;
    let err = cloud
        .migrate(&tenant, "web", &MigrationTarget::Node("node-9".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::NotFound {
                kind: ResourceKind::Node,
                ..
            }
        ),
        "{err}"
    );
    cloud
        .migrate(&tenant, "web", &MigrationTarget::Node("node-3".into()))
        .await
        .unwrap();
    let after = wait::until(
        cloud.watch_vm(&tenant, "web").await.unwrap(),
        wait::vm_running_elsewhere(before.status.node.unwrap()),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(after.status.node.as_deref(), Some("node-3"));
}

#[tokio::test(start_paused = true)]
async fn delete_releases_addresses_volumes_and_ends_the_watch() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    with_subnet(&cloud, &tenant).await;
    cloud
        .create_volume(&tenant, &VolumeSpec::blank("data", ByteSize::gib(1)))
        .await
        .unwrap();
    cloud
        .create_security_group(
            &tenant,
            &SecurityGroupSpec {
                name: "web".into(),
                ..SecurityGroupSpec::default()
            },
        )
        .await
        .unwrap();
    let spec = VmSpec {
        data_volumes: vec!["data".into()],
        interfaces: vec![NetworkInterface {
            security_groups: vec!["web".into()],
            ..NetworkInterface::on_subnet("eth0", "front")
        }],
        ..vm("web")
    };
    cloud.apply_vm_resolved(&tenant, &spec).await.unwrap();
    running(&cloud, &tenant, "web").await;
    assert_eq!(used(&cloud, &tenant, "front").await, 1);
    let watch = cloud.watch_vm(&tenant, "web").await.unwrap();
    cloud.delete_vm(&tenant, "web").await.unwrap();
    use futures::StreamExt;
    let seen: Vec<_> = watch.collect().await;
    assert_eq!(seen.len(), 1, "the current state, then the end");
    assert_eq!(used(&cloud, &tenant, "front").await, 0);
    assert!(
        cloud
            .get_volume(&tenant, "data")
            .await
            .unwrap()
            .status
            .used_by
            .is_empty()
    );
    cloud.delete_security_group(&tenant, "web").await.unwrap();
    assert!(
        cloud
            .delete_vm(&tenant, "web")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        cloud
            .watch_vm(&tenant, "web")
            .await
            .err()
            .is_some_and(|e| e.is_not_found())
    );
}

#[tokio::test(start_paused = true)]
async fn updating_interfaces_keeps_unchanged_ones_and_frees_removed_ones() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    with_subnet(&cloud, &tenant).await;
    let two = VmSpec {
        interfaces: vec![
            NetworkInterface::on_subnet("eth0", "front"),
            NetworkInterface::on_subnet("eth1", "front"),
        ],
        ..vm("web")
    };
    let before = cloud.apply_vm_resolved(&tenant, &two).await.unwrap();
    assert_eq!(used(&cloud, &tenant, "front").await, 2);
    let after = cloud
        .apply_vm_resolved(&tenant, &on_front("web"))
        .await
        .unwrap();
    assert_eq!(after.status.interfaces, before.status.interfaces[..1]);
    assert_eq!(used(&cloud, &tenant, "front").await, 1);
}

#[tokio::test(start_paused = true)]
async fn changing_the_run_strategy_stops_and_starts() {
    let cloud = MemoryCloud::new();
    let tenant = acme();
    cloud.apply_vm_resolved(&tenant, &vm("web")).await.unwrap();
    running(&cloud, &tenant, "web").await;
    let halted = VmSpec {
        run_strategy: RunStrategy::Halted,
        ..vm("web")
    };
    cloud.apply_vm_resolved(&tenant, &halted).await.unwrap();
    until_phase(&cloud, &tenant, "web", VmPhase::Stopped).await;
    cloud.apply_vm_resolved(&tenant, &vm("web")).await.unwrap();
    running(&cloud, &tenant, "web").await;
}
