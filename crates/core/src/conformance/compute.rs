//! Compute checks: VMs, their volumes and addresses, power, migration, imports.

use super::network::{delete_vpc_and_subnet, vpc_and_subnet};
use super::storage::{blank, create_ready, delete_gone};
use super::{
    Expect, Outcome, Params, Target, assert_already_exists, assert_conflict, assert_failed,
    assert_invalid, assert_not_found, host, labels, names, require, require_that, wait_fails_fast,
    wait_for, wait_gone,
};
use crate::addr::MacAddress;
use crate::attach::VmAttachments;
use crate::compute::{
    Attachment, BootDisk, CloudInit, Compute, MigrationBlocker, MigrationTarget, NetworkInterface,
    PodBinding, PowerAction, Vm, VmPhase, VmResources, VmSpec,
};
use crate::error::{ResourceKind, Result};
use crate::name::{Labels, Tenant};
use crate::network::IpReservationSpec;
use crate::size::ByteSize;
use crate::storage::{AccessMode, VolumeMode};
use crate::wait::{self, Check};

const NO_COMPUTE: &str = "the target has no compute backend";
const NO_STORAGE: &str = "needs a block-storage backend for VM volumes";
const NO_NETWORK: &str = "needs a network backend for subnets";

/// A boot disk for a VM that needs no particular one: a container disk when the compute backend
/// has them, else a new blank volume `<vm>-root` (needs storage). `Err` is why neither works.
pub(crate) async fn any_boot(
    target: &Target<'_>,
    tenant: &Tenant,
    vm: &str,
    params: &Params,
) -> Result<BootDisk, String> {
    let compute = target.compute.ok_or(NO_COMPUTE)?;
    if compute.capabilities().container_disks {
        return Ok(BootDisk::default());
    }
    let storage = target
        .storage
        .ok_or("needs container disks or a block-storage backend to boot a VM")?;
    let volume = format!("{vm}-root");
    create_ready(storage, tenant, &blank(&volume, params), params).await;
    Ok(BootDisk::Volume { volume })
}

/// Deletes the volume [`any_boot`] created, if it did.
pub(crate) async fn drop_boot(
    target: &Target<'_>,
    tenant: &Tenant,
    boot: &BootDisk,
    params: &Params,
) {
    if let (BootDisk::Volume { volume }, Some(storage)) = (boot, target.storage) {
        delete_gone(storage, tenant, volume, params).await;
    }
}

/// Where `network` fixes interface addresses only through reservations
/// (`fixed_ips_through_reservations`), reserves `ip` (and `mac`) in `subnet` for VM `vm`'s
/// interface first, so the interface takes it: reservation `<vm>-eth0`, released by
/// [`release_for_interface`].
pub(crate) async fn reserve_for_interface(
    network: &dyn crate::network::Network,
    tenant: &Tenant,
    vm: &str,
    subnet: &str,
    ip: std::net::IpAddr,
    mac: Option<MacAddress>,
) {
    if !network.capabilities().fixed_ips_through_reservations {
        return;
    }
    let mut spec = IpReservationSpec::new(format!("{vm}-eth0"), subnet).with_ip(ip);
    spec.mac = mac;
    network
        .reserve_ip(tenant, &spec)
        .await
        .or_fail(format_args!(
            "reserve {ip} for vm {vm:?} (the network fixes addresses through reservations)"
        ));
}

/// Releases what [`reserve_for_interface`] reserved for VM `vm`, once the VM is gone.
pub(crate) async fn release_for_interface(
    network: &dyn crate::network::Network,
    tenant: &Tenant,
    vm: &str,
) {
    if network.capabilities().fixed_ips_through_reservations {
        network
            .release_ip(tenant, &format!("{vm}-eth0"))
            .await
            .or_fail(format_args!("release the reservation of vm {vm:?}"));
    }
}

/// Applies `spec` through the target's compute backend, attached as the target's network and
/// storage backends answer (what the facade does).
pub(crate) async fn apply_vm(target: &Target<'_>, tenant: &Tenant, spec: &VmSpec) -> Result<Vm> {
    let compute = target
        .compute
        .expect("a check applying a vm requires a compute backend");
    let attachments = VmAttachments::resolve(tenant, spec, target.network, target.storage).await?;
    compute.apply_vm(tenant, spec, &attachments).await
}

/// Applies `spec` and waits until the VM runs.
pub(crate) async fn apply_running(
    target: &Target<'_>,
    tenant: &Tenant,
    spec: &VmSpec,
    params: &Params,
) -> Vm {
    let name = &spec.name;
    let compute = target
        .compute
        .expect("a check applying a vm requires a compute backend");
    apply_vm(target, tenant, spec)
        .await
        .or_fail(format_args!("apply vm {name:?} in {tenant}"));
    wait_for(
        compute.watch_vm(tenant, name).await,
        wait::vm_running(),
        params,
        format_args!("vm {name:?} in {tenant} running"),
    )
    .await
}

/// Deletes a VM and waits until it is gone.
pub(crate) async fn delete_vm_gone(
    compute: &dyn Compute,
    tenant: &Tenant,
    name: &str,
    params: &Params,
) {
    compute
        .delete_vm(tenant, name)
        .await
        .or_fail(format_args!("delete vm {name:?} in {tenant}"));
    wait_gone(
        compute.watch_vm(tenant, name).await,
        params,
        format_args!("vm {name:?} in {tenant} going away"),
    )
    .await;
    let err = compute
        .get_vm(tenant, name)
        .await
        .refused("get of a deleted vm");
    assert_not_found(&err, ResourceKind::Vm, name, "get of a deleted vm");
}

async fn vm_names(compute: &dyn Compute, tenant: &Tenant, selector: &Labels) -> Vec<String> {
    let list = compute
        .list_vms(tenant, selector)
        .await
        .or_fail(format_args!(
            "list vms of {tenant} with selector {selector:?}"
        ));
    let specs = compute
        .list_vm_specs(tenant, selector)
        .await
        .or_fail(format_args!(
            "list vm specs of {tenant} with selector {selector:?}"
        ));
    let listed: Vec<&VmSpec> = list.iter().map(|v| &v.spec).collect();
    assert_eq!(
        specs.iter().collect::<Vec<_>>(),
        listed,
        "list_vm_specs gives the specs list_vms gives, in its order (selector {selector:?})"
    );
    names(&list, |v| v.name())
}

fn node_of(vm: &Vm) -> String {
    vm.status.node.clone().unwrap_or_else(|| {
        panic!(
            "conformance: running vm {:?} reports no node: {:?}",
            vm.name(),
            vm.status
        )
    })
}

/// VMs are applied (returning their spec), got, listed by label selector (by name), give
/// `NotFound` for get, delete and power when missing, and disappear when deleted.
pub async fn apply_get_list_delete(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    let mut specs = Vec::new();
    for (name, pairs) in [
        ("web-1", &[("app", "web"), ("tier", "front")][..]),
        ("web-2", &[("app", "web"), ("tier", "back")][..]),
        ("db-1", &[("app", "db")][..]),
    ] {
        let boot_disk = match any_boot(target, tenant, name, params).await {
            Ok(boot) => boot,
            Err(why) => return Outcome::Skipped(why),
        };
        let spec = VmSpec {
            name: name.into(),
            boot_disk,
            labels: labels(pairs),
            ..VmSpec::default()
        };
        let vm = apply_vm(target, tenant, &spec)
            .await
            .or_fail(format_args!("apply vm {name:?}"));
        assert_eq!(vm.spec, spec, "apply_vm returns the spec it applied");
        specs.push(spec);
    }
    let got = compute
        .get_vm(tenant, "web-1")
        .await
        .or_fail("get vm \"web-1\"");
    assert_eq!(got.spec, specs[0], "get_vm returns the spec last applied");
    assert_eq!(
        vm_names(compute, tenant, &labels(&[("app", "web")])).await,
        ["web-1", "web-2"],
        "list_vms app=web, by name"
    );
    assert_eq!(
        vm_names(
            compute,
            tenant,
            &labels(&[("app", "web"), ("tier", "back")])
        )
        .await,
        ["web-2"],
        "list_vms app=web,tier=back"
    );
    assert_eq!(
        vm_names(compute, tenant, &Labels::new()).await,
        ["db-1", "web-1", "web-2"],
        "list_vms with an empty selector lists all, by name"
    );
    assert!(
        vm_names(compute, tenant, &labels(&[("app", "none")]))
            .await
            .is_empty(),
        "list_vms with a selector nothing matches"
    );
    let err = compute
        .get_vm(tenant, "missing")
        .await
        .refused("get of a missing vm");
    assert_not_found(&err, ResourceKind::Vm, "missing", "get of a missing vm");
    let err = compute
        .delete_vm(tenant, "missing")
        .await
        .refused("delete of a missing vm");
    assert_not_found(&err, ResourceKind::Vm, "missing", "delete of a missing vm");
    let err = compute
        .power(tenant, "missing", PowerAction::Start)
        .await
        .refused("power of a missing vm");
    assert_not_found(&err, ResourceKind::Vm, "missing", "power of a missing vm");
    let err = compute
        .migration_blockers(tenant, "missing")
        .await
        .refused("migration blockers of a missing vm");
    assert_not_found(
        &err,
        ResourceKind::Vm,
        "missing",
        "migration blockers of a missing vm",
    );
    let err = compute
        .migrate(tenant, "missing", &MigrationTarget::AnyNode)
        .await
        .refused("migrate of a missing vm");
    assert_not_found(&err, ResourceKind::Vm, "missing", "migrate of a missing vm");
    for spec in &specs {
        delete_vm_gone(compute, tenant, &spec.name, params).await;
        drop_boot(target, tenant, &spec.boot_disk, params).await;
    }
    assert!(
        vm_names(compute, tenant, &Labels::new()).await.is_empty(),
        "no vm is left after deleting them all"
    );
    Outcome::Passed
}

/// Each invalid spec is refused with `InvalidInput` naming the same field as
/// [`VmSpec::validate`], and nothing is created.
pub async fn invalid_spec_refused_and_nothing_created(
    target: &Target<'_>,
    tenant: &Tenant,
    _params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    let good = VmSpec {
        name: "good".into(),
        ..VmSpec::default()
    };
    let pod = |name: &str| NetworkInterface::pod_network(name);
    let cases = vec![
        VmSpec {
            name: "Web_1".into(),
            ..good.clone()
        },
        VmSpec {
            resources: VmResources::Custom {
                cpu_cores: 0,
                memory: ByteSize::gib(1),
            },
            ..good.clone()
        },
        VmSpec {
            resources: VmResources::Custom {
                cpu_cores: 1,
                memory: ByteSize::kib(1),
            },
            ..good.clone()
        },
        VmSpec {
            boot_disk: BootDisk::Import {
                url: "ftp://images.example.com/a.img".into(),
                size: ByteSize::gib(1),
                tier: None,
                replicas: 1,
                access: AccessMode::ReadWriteOnce,
                mode: VolumeMode::Block,
            },
            ..good.clone()
        },
        VmSpec {
            interfaces: vec![pod("eth0").with_fixed_ip("10.0.0.10".parse().expect("ip"))],
            ..good.clone()
        },
        VmSpec {
            interfaces: vec![
                NetworkInterface::on_subnet("eth0", "a"),
                NetworkInterface::on_subnet("eth0", "b"),
            ],
            ..good.clone()
        },
        VmSpec {
            interfaces: vec![pod("eth0"), pod("eth1")],
            ..good.clone()
        },
        VmSpec {
            data_volumes: vec!["data".into(), "data".into()],
            ..good.clone()
        },
        VmSpec {
            cloud_init: Some(CloudInit {
                ssh_keys: vec!["not a key".into()],
                ..CloudInit::default()
            }),
            ..good.clone()
        },
        VmSpec {
            labels: labels(&[("bad key!", "x")]),
            ..good.clone()
        },
    ];
    for spec in cases {
        let field = spec
            .validate()
            .expect_err("the case is invalid")
            .invalid_field()
            .expect("a field")
            .to_string();
        let err = apply_vm(target, tenant, &spec)
            .await
            .refused(format_args!("apply of a vm with an invalid {field}"));
        assert_invalid(&err, &field, "apply of an invalid vm spec");
    }
    assert!(
        vm_names(compute, tenant, &Labels::new()).await.is_empty(),
        "refused specs must create nothing"
    );
    Outcome::Passed
}

/// A VM booting from, or attaching, a missing volume, or on a missing subnet, is refused with
/// `NotFound` naming it, and nothing is created.
pub async fn missing_volume_or_subnet_refused(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    let boot = match any_boot(target, tenant, "carrier", params).await {
        Ok(boot) => boot,
        Err(why) => return Outcome::Skipped(why),
    };
    let cases = [
        (
            VmSpec {
                name: "a".into(),
                boot_disk: BootDisk::Volume {
                    volume: "no-such-volume".into(),
                },
                ..VmSpec::default()
            },
            ResourceKind::Volume,
            "no-such-volume",
        ),
        (
            VmSpec {
                name: "b".into(),
                boot_disk: boot.clone(),
                data_volumes: vec!["no-such-data".into()],
                ..VmSpec::default()
            },
            ResourceKind::Volume,
            "no-such-data",
        ),
        (
            VmSpec {
                name: "c".into(),
                boot_disk: boot.clone(),
                interfaces: vec![NetworkInterface::on_subnet("eth0", "no-such-subnet")],
                ..VmSpec::default()
            },
            ResourceKind::Subnet,
            "no-such-subnet",
        ),
    ];
    let mut checked = 0;
    for (spec, kind, missing) in cases {
        // The facade learns of a missing volume from storage and of a missing subnet from the
        // network backend: a target without that backend cannot answer.
        let answers = match kind {
            ResourceKind::Subnet => target.network.is_some(),
            _ => target.storage.is_some(),
        };
        if !answers {
            continue;
        }
        checked += 1;
        let err = apply_vm(target, tenant, &spec).await.refused(format_args!(
            "apply of vm {:?} referencing {kind} {missing:?}",
            spec.name
        ));
        assert_not_found(&err, kind, missing, "a vm referencing a missing resource");
        let err = compute
            .get_vm(tenant, &spec.name)
            .await
            .refused("get of a refused vm");
        assert_not_found(
            &err,
            ResourceKind::Vm,
            &spec.name,
            "a refused vm must not exist",
        );
    }
    assert!(
        vm_names(compute, tenant, &Labels::new()).await.is_empty(),
        "refused vms must create nothing"
    );
    drop_boot(target, tenant, &boot, params).await;
    require_that!(checked > 0, "needs a block-storage or network backend");
    Outcome::Passed
}

/// Applying the same spec twice changes nothing: the VM keeps running on its node with its
/// addresses; applying a changed spec (a label) updates it without stopping it.
pub async fn apply_is_idempotent(target: &Target<'_>, tenant: &Tenant, params: &Params) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    let boot_disk = match any_boot(target, tenant, "steady", params).await {
        Ok(boot) => boot,
        Err(why) => return Outcome::Skipped(why),
    };
    let spec = VmSpec {
        name: "steady".into(),
        boot_disk,
        labels: labels(&[("app", "steady")]),
        ..VmSpec::default()
    };
    let first = apply_running(target, tenant, &spec, params).await;
    let node = node_of(&first);
    let again = apply_vm(target, tenant, &spec)
        .await
        .or_fail("apply the same spec a second time");
    assert_eq!(
        again.spec, spec,
        "a second apply of the same spec keeps the spec"
    );
    assert_eq!(
        again.status.phase,
        VmPhase::Running,
        "a second apply of the same spec must not restart the vm"
    );
    let got = compute
        .get_vm(tenant, "steady")
        .await
        .or_fail("get vm \"steady\"");
    assert_eq!(
        got.status.phase,
        VmPhase::Running,
        "no phase regression after applying the same spec"
    );
    assert_eq!(
        got.status.node.as_deref(),
        Some(node.as_str()),
        "the vm stays on its node"
    );
    assert_eq!(
        got.status.interfaces, first.status.interfaces,
        "the vm keeps its addresses"
    );

    let mut changed = spec.clone();
    changed.labels.insert("version".into(), "2".into());
    let updated = apply_vm(target, tenant, &changed)
        .await
        .or_fail("apply a spec with a new label");
    assert_eq!(updated.spec, changed, "apply_vm updates an existing vm");
    let got = compute
        .get_vm(tenant, "steady")
        .await
        .or_fail("get vm \"steady\"");
    assert_eq!(got.spec.labels, changed.labels, "the update is kept");
    assert_eq!(
        got.status.phase,
        VmPhase::Running,
        "a label change does not stop the vm"
    );
    assert_eq!(
        vm_names(compute, tenant, &labels(&[("version", "2")])).await,
        ["steady"],
        "the new label selects the vm"
    );
    delete_vm_gone(compute, tenant, "steady", params).await;
    drop_boot(target, tenant, &spec.boot_disk, params).await;
    Outcome::Passed
}

/// Stop ends Stopped (no node; migration blocked as not running and refused with `Conflict`),
/// start and restart end Running.
pub async fn power_stop_start_restart(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    let boot_disk = match any_boot(target, tenant, "switch", params).await {
        Ok(boot) => boot,
        Err(why) => return Outcome::Skipped(why),
    };
    let spec = VmSpec {
        name: "switch".into(),
        boot_disk,
        ..VmSpec::default()
    };
    apply_running(target, tenant, &spec, params).await;
    compute
        .power(tenant, "switch", PowerAction::Stop)
        .await
        .or_fail("stop vm \"switch\"");
    let stopped = wait_for(
        compute.watch_vm(tenant, "switch").await,
        wait::vm_phase(VmPhase::Stopped),
        params,
        "vm \"switch\" stopping",
    )
    .await;
    assert_eq!(stopped.status.node, None, "a stopped vm runs on no node");
    let blockers = compute
        .migration_blockers(tenant, "switch")
        .await
        .or_fail("migration blockers of a stopped vm");
    assert!(
        blockers
            .iter()
            .any(|b| matches!(b, MigrationBlocker::NotRunning { .. })),
        "a stopped vm cannot migrate because it does not run: {blockers:?}"
    );
    let err = compute
        .migrate(tenant, "switch", &MigrationTarget::AnyNode)
        .await
        .refused("migrate of a stopped vm");
    assert_conflict(&err, Some(ResourceKind::Vm), "migrate of a stopped vm");

    compute
        .power(tenant, "switch", PowerAction::Start)
        .await
        .or_fail("start vm \"switch\"");
    let started = wait_for(
        compute.watch_vm(tenant, "switch").await,
        wait::vm_running(),
        params,
        "vm \"switch\" starting",
    )
    .await;
    node_of(&started);
    compute
        .power(tenant, "switch", PowerAction::Restart)
        .await
        .or_fail("restart vm \"switch\"");
    let restarted = wait_for(
        compute.watch_vm(tenant, "switch").await,
        wait::vm_running(),
        params,
        "vm \"switch\" restarting",
    )
    .await;
    node_of(&restarted);
    delete_vm_gone(compute, tenant, "switch", params).await;
    drop_boot(target, tenant, &spec.boot_disk, params).await;
    Outcome::Passed
}

fn boot_volume(volume: &str) -> BootDisk {
    BootDisk::Volume {
        volume: volume.into(),
    }
}

/// A VM booting from a block volume (RWX where the storage has it) with a fixed IP on a subnet
/// runs on a node with that IP, is listed among the volume's users, holds the IP in the subnet
/// (reserving it is refused with `Conflict`), and frees it when deleted.
pub async fn runs_with_volume_and_fixed_ip(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    let storage = require!(target.storage, NO_STORAGE);
    let network = require!(target.network, NO_NETWORK);
    require_that!(
        compute.capabilities().fixed_addresses,
        "capability compute.fixed_addresses is missing"
    );
    require_that!(
        network.capabilities().fixed_ips,
        "capability network.fixed_ips is missing"
    );
    let cidr = params.subnet_block(7);
    vpc_and_subnet(network, tenant, "main", "front", cidr).await;
    reserve_for_interface(network, tenant, "web", "front", host(cidr, 20), None).await;
    let access = if storage.capabilities().rwx_block {
        AccessMode::ReadWriteMany
    } else {
        AccessMode::ReadWriteOnce
    };
    create_ready(
        storage,
        tenant,
        &blank("web-root", params).with_access(access),
        params,
    )
    .await;
    let ip = host(cidr, 20);
    let spec = VmSpec {
        name: "web".into(),
        boot_disk: boot_volume("web-root"),
        interfaces: vec![NetworkInterface::on_subnet("eth0", "front").with_fixed_ip(ip)],
        labels: labels(&[("app", "web")]),
        ..VmSpec::default()
    };
    let vm = apply_running(target, tenant, &spec, params).await;
    node_of(&vm);
    let eth0 = vm
        .status
        .interfaces
        .iter()
        .find(|i| i.name == "eth0")
        .unwrap_or_else(|| {
            panic!(
                "a running vm reports its interface eth0: {:?}",
                vm.status.interfaces
            )
        });
    assert_eq!(eth0.ip, Some(ip), "a running vm has its fixed IP");
    assert!(eth0.mac.is_some(), "a running vm reports its MAC");
    let users = compute
        .volume_users(tenant)
        .await
        .or_fail("the users of the tenant's volumes");
    assert!(
        users
            .get("web-root")
            .is_some_and(|vms| vms.iter().any(|u| u == "web")),
        "compute lists the vm as a user of its boot volume: {users:?}"
    );
    // A system may count asynchronously (Kube-OVN writes the counts after the address
    // changed): wait on the subnet's states for the VM's address to be counted.
    let states = network
        .watch_subnet(tenant, "front")
        .await
        .or_fail("watch subnet \"front\"");
    wait::until(states, wait::subnet_in_use(1), params.timeout)
        .await
        .or_fail("the vm's address is used in its subnet");
    let err = network
        .reserve_ip(
            tenant,
            &IpReservationSpec::new("thief", "front").with_ip(ip),
        )
        .await
        .refused("reservation of a running vm's fixed IP");
    assert_conflict(&err, None, "reservation of an address a vm holds");
    delete_vm_gone(compute, tenant, "web", params).await;
    release_for_interface(network, tenant, "web").await;
    // Kube-OVN releases a deleted VM's address a moment after the VM is gone: wait on the
    // subnet's states for it.
    let states = network
        .watch_subnet(tenant, "front")
        .await
        .or_fail("watch subnet \"front\"");
    wait::until(states, wait::subnet_in_use(0), params.timeout)
        .await
        .or_fail("a deleted vm frees its address");
    delete_gone(storage, tenant, "web-root", params).await;
    delete_vpc_and_subnet(network, tenant, "main", "front").await;
    Outcome::Passed
}

/// A running VM with an RWO volume and a bridge-bound pod-network interface lists both
/// blockers; migrating it is refused with `Conflict` naming both, and it keeps running where it
/// was.
pub async fn migration_blockers_listed_and_migrate_refused(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    let storage = require!(target.storage, NO_STORAGE);
    create_ready(
        storage,
        tenant,
        &blank("pinned-root", params).with_access(AccessMode::ReadWriteOnce),
        params,
    )
    .await;
    let bridge = NetworkInterface {
        attachment: Attachment::PodNetwork {
            binding: PodBinding::Bridge,
        },
        ..NetworkInterface::pod_network("eth0")
    };
    let spec = VmSpec {
        name: "pinned".into(),
        boot_disk: boot_volume("pinned-root"),
        interfaces: vec![bridge],
        ..VmSpec::default()
    };
    let vm = apply_running(target, tenant, &spec, params).await;
    let node = node_of(&vm);
    let blockers = compute
        .migration_blockers(tenant, "pinned")
        .await
        .or_fail("migration blockers of vm \"pinned\"");
    for expected in [
        MigrationBlocker::VolumeNotShared {
            volume: "pinned-root".into(),
        },
        MigrationBlocker::BridgeOnPodNetwork {
            interface: "eth0".into(),
        },
    ] {
        assert!(
            blockers.contains(&expected),
            "migration_blockers must list every reason; missing {expected:?} in {blockers:?}"
        );
    }
    let err = compute
        .migrate(tenant, "pinned", &MigrationTarget::AnyNode)
        .await
        .refused("migrate of a vm with blockers");
    assert_conflict(
        &err,
        Some(ResourceKind::Vm),
        "migrate of a vm with blockers",
    );
    let text = err.to_string();
    assert!(
        text.contains("pinned-root") && text.contains("eth0"),
        "the refusal lists every blocker (the volume and the interface): {text}"
    );
    let got = compute
        .get_vm(tenant, "pinned")
        .await
        .or_fail("get vm \"pinned\"");
    assert_eq!(
        (got.status.phase, got.status.node.as_deref()),
        (VmPhase::Running, Some(node.as_str())),
        "a refused migration leaves the vm where it was"
    );
    delete_vm_gone(compute, tenant, "pinned", params).await;
    delete_gone(storage, tenant, "pinned-root", params).await;
    Outcome::Passed
}

/// The shared setup of the migration checks: an RWX-booted VM, on a subnet with a fixed IP and
/// MAC when the target can, else on the pod network.
async fn migratable_vm(
    target: &Target<'_>,
    tenant: &Tenant,
    name: &str,
    subnet_block: usize,
    params: &Params,
) -> Result<(VmSpec, bool), String> {
    let compute = target.compute.ok_or(NO_COMPUTE)?;
    let storage = target.storage.ok_or(NO_STORAGE)?;
    if !compute.capabilities().live_migration {
        return Err("capability compute.live_migration is missing".into());
    }
    if !storage.capabilities().rwx_block {
        return Err(
            "capability storage.rwx_block is missing (live migration needs RWX volumes)".into(),
        );
    }
    if params.nodes < 2 {
        return Err("live migration needs 2 nodes".into());
    }
    let fixed = target
        .network
        .filter(|n| n.capabilities().fixed_ips && compute.capabilities().fixed_addresses);
    let root = format!("{name}-root");
    create_ready(
        storage,
        tenant,
        &blank(&root, params).with_access(AccessMode::ReadWriteMany),
        params,
    )
    .await;
    let interfaces = match fixed {
        Some(network) => {
            let cidr = params.subnet_block(subnet_block);
            vpc_and_subnet(network, tenant, "main", "front", cidr).await;
            let mac = MacAddress([
                0x52,
                0x54,
                0x00,
                0x0c,
                0x0f,
                u8::try_from(subnet_block).expect("small"),
            ]);
            reserve_for_interface(network, tenant, name, "front", host(cidr, 40), Some(mac)).await;
            vec![
                NetworkInterface::on_subnet("eth0", "front")
                    .with_fixed_ip(host(cidr, 40))
                    .with_mac(mac),
            ]
        }
        None => vec![],
    };
    Ok((
        VmSpec {
            name: name.into(),
            boot_disk: boot_volume(&root),
            interfaces,
            ..VmSpec::default()
        },
        fixed.is_some(),
    ))
}

async fn drop_migratable(
    target: &Target<'_>,
    tenant: &Tenant,
    spec: &VmSpec,
    on_subnet: bool,
    params: &Params,
) {
    let compute = target.compute.expect("checked");
    delete_vm_gone(compute, tenant, &spec.name, params).await;
    if let (BootDisk::Volume { volume }, Some(storage)) = (&spec.boot_disk, target.storage) {
        delete_gone(storage, tenant, volume, params).await;
    }
    if on_subnet && let Some(network) = target.network {
        release_for_interface(network, tenant, &spec.name).await;
        delete_vpc_and_subnet(network, tenant, "main", "front").await;
    }
}

/// A running VM whose volumes are all RWX has no migration blockers; migrated to any node, it
/// ends running on another node with the same IP and MAC (when on a subnet with fixed
/// addresses).
pub async fn live_migration_keeps_addresses(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let (spec, on_subnet) = match migratable_vm(target, tenant, "mover", 8, params).await {
        Ok(v) => v,
        Err(why) => return Outcome::Skipped(why),
    };
    let compute = target.compute.expect("checked");
    let before = apply_running(target, tenant, &spec, params).await;
    let source = node_of(&before);
    let blockers = compute
        .migration_blockers(tenant, "mover")
        .await
        .or_fail("migration blockers of vm \"mover\"");
    assert!(
        blockers.is_empty(),
        "a running vm on RWX volumes with masquerade or subnet interfaces can migrate: {blockers:?}"
    );
    let migration = compute
        .migrate(tenant, "mover", &MigrationTarget::AnyNode)
        .await
        .or_fail("migrate vm \"mover\"");
    assert_eq!(migration.vm, "mover");
    assert_eq!(
        migration.source_node, source,
        "the migration leaves the node the vm ran on"
    );
    let after = wait_for(
        compute.watch_vm(tenant, "mover").await,
        wait::vm_running_elsewhere(source.clone()),
        params,
        "vm \"mover\" migrating away",
    )
    .await;
    let target_node = node_of(&after);
    assert_ne!(target_node, source);
    if let Some(chosen) = &migration.target_node {
        assert_eq!(
            &target_node, chosen,
            "the vm ends on the node the migration chose"
        );
    }
    if on_subnet {
        assert_eq!(
            after.status.interfaces, before.status.interfaces,
            "live migration keeps IPs and MACs"
        );
    }
    drop_migratable(target, tenant, &spec, on_subnet, params).await;
    Outcome::Passed
}

/// Migrating to a node that does not exist is refused with `NotFound` (node), to the node the
/// VM runs on with `Conflict`; a VM migrated to a named node ends running on exactly that node.
pub async fn migrate_to_named_node(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    require_that!(
        compute.capabilities().migrate_to_node,
        "capability compute.migrate_to_node is missing"
    );
    let (spec, on_subnet) = match migratable_vm(target, tenant, "wanderer", 10, params).await {
        Ok(v) => v,
        Err(why) => return Outcome::Skipped(why),
    };
    let first = node_of(&apply_running(target, tenant, &spec, params).await);
    let err = compute
        .migrate(
            tenant,
            "wanderer",
            &MigrationTarget::Node("no-such-node".into()),
        )
        .await
        .refused("migrate to a node that does not exist");
    assert_not_found(
        &err,
        ResourceKind::Node,
        "no-such-node",
        "migrate to a missing node",
    );
    let err = compute
        .migrate(tenant, "wanderer", &MigrationTarget::Node(first.clone()))
        .await
        .refused(format_args!(
            "migrate to the node the vm runs on ({first:?})"
        ));
    assert_conflict(
        &err,
        Some(ResourceKind::Vm),
        "migrate to the node the vm runs on",
    );
    compute
        .migrate(tenant, "wanderer", &MigrationTarget::AnyNode)
        .await
        .or_fail("migrate vm \"wanderer\" away");
    let away = wait_for(
        compute.watch_vm(tenant, "wanderer").await,
        wait::vm_running_elsewhere(first.clone()),
        params,
        "vm \"wanderer\" migrating away",
    )
    .await;
    let second = node_of(&away);
    let migration = compute
        .migrate(tenant, "wanderer", &MigrationTarget::Node(first.clone()))
        .await
        .or_fail(format_args!(
            "migrate vm \"wanderer\" back to node {first:?}"
        ));
    assert_eq!(migration.source_node, second);
    assert_eq!(
        migration.target_node.as_deref(),
        Some(first.as_str()),
        "a migration to a named node names it as its target"
    );
    let wanted = first.clone();
    let back = wait_for(
        compute.watch_vm(tenant, "wanderer").await,
        wait::condition(format!("vm running on {first}"), move |vm: &Vm| {
            match (vm.status.phase, vm.status.node.as_deref()) {
                (VmPhase::Running, Some(n)) if n == wanted => Check::Met,
                (VmPhase::Failed, _) => Check::Failed("the vm failed".into()),
                _ => match vm.status.condition("MigrationFailed").filter(|c| c.status) {
                    Some(c) => Check::Failed(format!("migration failed: {}", c.message)),
                    None => Check::Pending,
                },
            }
        }),
        params,
        format_args!("vm \"wanderer\" running on node {first:?}"),
    )
    .await;
    assert_eq!(back.status.node.as_deref(), Some(first.as_str()));
    drop_migratable(target, tenant, &spec, on_subnet, params).await;
    Outcome::Passed
}

/// A VM booting from an imported disk with a fixed IP runs with its boot volume
/// `<vm>-boot` in use; deleting the VM deletes that volume and frees the IP (reserving it again
/// succeeds).
pub async fn delete_releases_ip_and_imported_volume(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    let storage = require!(target.storage, NO_STORAGE);
    let network = require!(target.network, NO_NETWORK);
    require_that!(
        compute.capabilities().http_import,
        "capability compute.http_import is missing"
    );
    require_that!(
        compute.capabilities().fixed_addresses,
        "capability compute.fixed_addresses is missing"
    );
    require_that!(
        network.capabilities().fixed_ips,
        "capability network.fixed_ips is missing"
    );
    let cidr = params.subnet_block(9);
    vpc_and_subnet(network, tenant, "main", "front", cidr).await;
    let ip = host(cidr, 30);
    reserve_for_interface(network, tenant, "imp", "front", ip, None).await;
    let spec = VmSpec {
        name: "imp".into(),
        boot_disk: BootDisk::Import {
            url: params.import_url.clone(),
            size: params.volume_size,
            tier: params.tier.clone(),
            replicas: 1,
            access: AccessMode::ReadWriteOnce,
            mode: VolumeMode::Block,
        },
        interfaces: vec![NetworkInterface::on_subnet("eth0", "front").with_fixed_ip(ip)],
        ..VmSpec::default()
    };
    apply_running(target, tenant, &spec, params).await;
    let boot = BootDisk::import_volume_name("imp");
    storage
        .get_volume(tenant, &boot)
        .await
        .or_fail(format_args!("get the imported boot volume {boot:?}"));
    let users = compute
        .volume_users(tenant)
        .await
        .or_fail("the users of the tenant's volumes");
    assert!(
        users
            .get(&boot)
            .is_some_and(|vms| vms.iter().any(|u| u == "imp")),
        "compute lists the vm as a user of its imported boot volume: {users:?}"
    );
    let err = network
        .reserve_ip(
            tenant,
            &IpReservationSpec::new("thief", "front").with_ip(ip),
        )
        .await
        .refused("reservation of a running vm's fixed IP");
    assert_conflict(&err, None, "reservation of an address a vm holds");
    delete_vm_gone(compute, tenant, "imp", params).await;
    release_for_interface(network, tenant, "imp").await;
    wait_gone(
        storage.watch_volume(tenant, &boot).await,
        params,
        "the imported boot volume going away with its vm",
    )
    .await;
    let err = storage
        .get_volume(tenant, &boot)
        .await
        .refused("get of a deleted vm's imported boot volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        &boot,
        "a deleted vm's imported boot volume",
    );
    let again = network
        .reserve_ip(
            tenant,
            &IpReservationSpec::new("again", "front").with_ip(ip),
        )
        .await
        .or_fail(format_args!(
            "reserve {ip} after deleting the vm that held it"
        ));
    assert_eq!(again.ip, ip);
    network
        .release_ip(tenant, "again")
        .await
        .or_fail("release \"again\"");
    delete_vpc_and_subnet(network, tenant, "main", "front").await;
    Outcome::Passed
}

/// A VM booting from a disk imported from [`Params::failing_import_url`] ends the wait for
/// running with `Error::Failed` long before the timeout; deleting it removes its boot volume.
pub async fn failing_import_fails_fast(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    require_that!(
        compute.capabilities().http_import,
        "capability compute.http_import is missing"
    );
    let spec = VmSpec {
        name: "broken".into(),
        boot_disk: BootDisk::Import {
            url: params.failing_import_url.clone(),
            size: params.volume_size,
            tier: params.tier.clone(),
            replicas: 1,
            access: AccessMode::ReadWriteOnce,
            mode: VolumeMode::Block,
        },
        ..VmSpec::default()
    };
    apply_vm(target, tenant, &spec)
        .await
        .or_fail("apply a vm importing the failing URL (the failure comes later)");
    let err = wait_fails_fast(
        compute.watch_vm(tenant, "broken").await,
        wait::vm_running(),
        params,
        "vm \"broken\" importing a failing URL",
    )
    .await;
    assert_failed(err, ResourceKind::Vm, "broken", "a vm whose import failed");
    delete_vm_gone(compute, tenant, "broken", params).await;
    if let Some(storage) = target.storage {
        let boot = BootDisk::import_volume_name("broken");
        wait_gone(
            storage.watch_volume(tenant, &boot).await,
            params,
            "the failed boot volume going away with its vm",
        )
        .await;
    }
    Outcome::Passed
}

async fn vm_snapshot_names(
    compute: &dyn Compute,
    tenant: &Tenant,
    vm: Option<&str>,
) -> Vec<String> {
    let list = compute
        .list_vm_snapshots(tenant, vm)
        .await
        .or_fail(format_args!("list vm snapshots of {tenant} (vm {vm:?})"));
    let mut names = names(&list, |s| &s.name);
    names.sort();
    names
}

/// Whole-VM snapshots (capability `vm_snapshots`): taken of a running and of a stopped VM
/// (recording the VM's volumes), listed per VM and in all, refused for taken names
/// (`AlreadyExists`) and missing VMs (`NotFound`); a restore of a running VM is refused with
/// `Conflict`, of a missing VM or snapshot with `NotFound`; a restore into the stopped VM puts
/// the snapshot's spec back and leaves it stopped (and it starts again); deleted snapshots are
/// gone (`NotFound` on a second delete).
pub async fn vm_snapshots_and_restore(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, NO_COMPUTE);
    require_that!(
        compute.capabilities().vm_snapshots,
        "capability compute.vm_snapshots is missing"
    );
    let vm = "keeper";
    let boot_disk = match any_boot(target, tenant, vm, params).await {
        Ok(boot) => boot,
        Err(why) => return Outcome::Skipped(why),
    };
    let first = VmSpec {
        name: vm.into(),
        boot_disk,
        labels: labels(&[("app", "keeper"), ("version", "1")]),
        ..VmSpec::default()
    };
    apply_running(target, tenant, &first, params).await;

    let online = compute
        .snapshot_vm(tenant, vm, "online")
        .await
        .or_fail("snapshot of a running vm");
    assert_eq!(
        (online.name.as_str(), online.vm.as_str()),
        ("online", vm),
        "the snapshot names itself and its vm"
    );
    assert_eq!(
        online.volumes,
        first.volumes(),
        "a vm snapshot records the vm's volumes"
    );
    let err = compute
        .snapshot_vm(tenant, vm, "online")
        .await
        .refused("a second vm snapshot named \"online\"");
    assert_already_exists(
        &err,
        ResourceKind::VmSnapshot,
        "online",
        "vm snapshot of a taken name",
    );
    let err = compute
        .snapshot_vm(tenant, "missing", "orphan")
        .await
        .refused("snapshot of a missing vm");
    assert_not_found(
        &err,
        ResourceKind::Vm,
        "missing",
        "snapshot of a missing vm",
    );
    let err = compute
        .restore_vm(tenant, vm, "online")
        .await
        .refused("restore of a running vm");
    assert_conflict(&err, Some(ResourceKind::Vm), "restore of a running vm");

    let mut second = first.clone();
    second.labels.insert("version".into(), "2".into());
    apply_vm(target, tenant, &second)
        .await
        .or_fail("apply a changed spec");
    compute
        .power(tenant, vm, PowerAction::Stop)
        .await
        .or_fail("stop the vm");
    wait_for(
        compute.watch_vm(tenant, vm).await,
        wait::vm_phase(VmPhase::Stopped),
        params,
        format_args!("vm {vm:?} stopping"),
    )
    .await;
    let offline = compute
        .snapshot_vm(tenant, vm, "offline")
        .await
        .or_fail("snapshot of a stopped vm");
    assert_eq!(offline.vm, vm, "the snapshot of a stopped vm names it");

    assert_eq!(
        vm_snapshot_names(compute, tenant, Some(vm)).await,
        ["offline", "online"],
        "the vm's snapshots"
    );
    assert_eq!(
        vm_snapshot_names(compute, tenant, None).await,
        ["offline", "online"],
        "all vm snapshots of the tenant"
    );

    let err = compute
        .restore_vm(tenant, vm, "missing")
        .await
        .refused("restore from a missing vm snapshot");
    assert_not_found(
        &err,
        ResourceKind::VmSnapshot,
        "missing",
        "restore from a missing vm snapshot",
    );
    let err = compute
        .restore_vm(tenant, "missing", "online")
        .await
        .refused("restore of a missing vm");
    assert_not_found(&err, ResourceKind::Vm, "missing", "restore of a missing vm");

    compute
        .restore_vm(tenant, vm, "online")
        .await
        .or_fail("restore the stopped vm from \"online\"");
    let restored = wait_for(
        compute.watch_vm(tenant, vm).await,
        wait::vm_phase(VmPhase::Stopped),
        params,
        format_args!("vm {vm:?} restored and stopped"),
    )
    .await;
    assert_eq!(
        restored.spec, first,
        "a restore puts back the spec the vm had when the snapshot was taken"
    );
    assert_eq!(
        vm_names(compute, tenant, &labels(&[("version", "1")])).await,
        [vm],
        "the restored labels select the vm"
    );
    let listed = compute
        .list_vm_snapshots(tenant, Some(vm))
        .await
        .or_fail("list vm snapshots after a restore");
    let used = listed
        .iter()
        .find(|s| s.name == "online")
        .unwrap_or_else(|| panic!("conformance: a restore keeps its snapshot: {listed:?}"));
    assert!(used.ready, "a snapshot restored from is ready: {used:?}");
    compute
        .power(tenant, vm, PowerAction::Start)
        .await
        .or_fail("start the restored vm");
    wait_for(
        compute.watch_vm(tenant, vm).await,
        wait::vm_running(),
        params,
        format_args!("restored vm {vm:?} starting"),
    )
    .await;

    for snapshot in ["online", "offline"] {
        compute
            .delete_vm_snapshot(tenant, snapshot)
            .await
            .or_fail(format_args!("delete vm snapshot {snapshot:?}"));
    }
    let err = compute
        .delete_vm_snapshot(tenant, "online")
        .await
        .refused("delete of a deleted vm snapshot");
    assert_not_found(
        &err,
        ResourceKind::VmSnapshot,
        "online",
        "delete of a missing vm snapshot",
    );
    assert!(
        vm_snapshot_names(compute, tenant, None).await.is_empty(),
        "deleted vm snapshots are not listed"
    );
    delete_vm_gone(compute, tenant, vm, params).await;
    drop_boot(target, tenant, &first.boot_disk, params).await;
    Outcome::Passed
}
