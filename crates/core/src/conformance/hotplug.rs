//! Hot-plug checks: a running VM's data volumes attached and detached live, its CPU grown live
//! within its limits, and changes beyond them reported as waiting for a restart (see
//! [`crate::hotplug`]).

use super::compute::{any_boot, apply_running, apply_vm, delete_vm_gone, drop_boot};
use super::storage::{blank, create_ready, delete_gone};
use super::{Expect, Outcome, Params, Target, require, require_that, wait_for};
use crate::compute::{PowerAction, Vm, VmPhase, VmResources, VmSpec};
use crate::name::Tenant;
use crate::size::ByteSize;
use crate::wait::{self, Check};

/// A running VM (one core, 1 GiB) gets a data volume and a second core live: the volume is
/// listed in `attached_volumes` once ready, the VM keeps running on its node and nothing waits
/// for a restart. Five cores (beyond its limit of four) wait for a restart
/// (`restart_required` names `resources.cpuCores`); detaching the volume meanwhile is still live.
/// A restart gives the VM its whole spec and clears `restart_required`. Needs the capabilities
/// `hotplug_volumes` and `live_resize`.
pub async fn data_volumes_and_cpu_change_live_or_wait_for_restart(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, "the target has no compute backend");
    let storage = require!(
        target.storage,
        "needs a block-storage backend for data volumes"
    );
    let caps = compute.capabilities();
    require_that!(
        caps.hotplug_volumes,
        "capability compute.hotplug_volumes is missing"
    );
    require_that!(
        caps.live_resize,
        "capability compute.live_resize is missing"
    );
    let boot_disk = match any_boot(target, tenant, "hot", params).await {
        Ok(boot) => boot,
        Err(why) => return Outcome::Skipped(why),
    };
    create_ready(storage, tenant, &blank("hot-data", params), params).await;
    let sized = |cpu_cores| VmResources::Custom {
        cpu_cores,
        memory: ByteSize::gib(1),
    };
    let mut spec = VmSpec {
        name: "hot".into(),
        resources: sized(1),
        boot_disk,
        ..VmSpec::default()
    };
    let started = apply_running(target, tenant, &spec, params).await;
    assert!(
        started.status.restart_required.is_empty() && started.status.attached_volumes.is_empty(),
        "a vm started with its spec waits for nothing and has no data volume: {:?}",
        started.status
    );

    // Attach and grow within the limits: live.
    spec.data_volumes = vec!["hot-data".into()];
    spec.resources = sized(2);
    apply_vm(target, tenant, &spec)
        .await
        .or_fail("apply a data volume and a second core to the running vm");
    let attached = wait_for(
        compute.watch_vm(tenant, "hot").await,
        wait::vm_volumes_attached(vec!["hot-data".into()], Vec::new()),
        params,
        "vm \"hot\" with volume \"hot-data\" attached live",
    )
    .await;
    assert_eq!(
        (attached.status.phase, &attached.status.node),
        (VmPhase::Running, &started.status.node),
        "a volume attached live leaves the vm running where it was"
    );
    assert!(
        attached.status.restart_required.is_empty(),
        "a data volume and a second core (of four at most) need no restart: {:?}",
        attached.status.restart_required
    );

    // Beyond the limits: waits for a restart, while a detach is still live.
    spec.resources = sized(5);
    apply_vm(target, tenant, &spec)
        .await
        .or_fail("apply five cores to a vm started with one");
    let waiting = wait_for(
        compute.watch_vm(tenant, "hot").await,
        wait::condition(
            "vm reporting resources.cpuCores waiting for a restart",
            |vm: &Vm| {
                if vm
                    .status
                    .restart_required
                    .iter()
                    .any(|f| f == "resources.cpuCores")
                {
                    Check::Met
                } else {
                    Check::Pending
                }
            },
        ),
        params,
        "vm \"hot\" reporting a restart required",
    )
    .await;
    assert_eq!(
        waiting.status.restart_required,
        vec!["resources.cpuCores".to_string()],
        "only the cores wait for a restart"
    );
    assert_eq!(
        waiting.status.phase,
        VmPhase::Running,
        "the vm keeps running"
    );
    spec.data_volumes.clear();
    apply_vm(target, tenant, &spec)
        .await
        .or_fail("apply the vm without its data volume");
    let detached = wait_for(
        compute.watch_vm(tenant, "hot").await,
        wait::vm_volumes_attached(Vec::new(), vec!["hot-data".into()]),
        params,
        "vm \"hot\" with volume \"hot-data\" detached live",
    )
    .await;
    assert!(
        detached
            .status
            .restart_required
            .iter()
            .any(|f| f == "resources.cpuCores"),
        "a detach does not clear what waits for a restart: {:?}",
        detached.status.restart_required
    );

    // A restart gives the vm its spec.
    compute
        .power(tenant, "hot", PowerAction::Restart)
        .await
        .or_fail("restart vm \"hot\"");
    wait_for(
        compute.watch_vm(tenant, "hot").await,
        wait::condition(
            "vm running with nothing waiting for a restart",
            |vm: &Vm| match vm.status.phase {
                VmPhase::Running if vm.status.restart_required.is_empty() => Check::Met,
                VmPhase::Failed => Check::Failed(format!("{:?}", vm.status.conditions)),
                _ => Check::Pending,
            },
        ),
        params,
        "vm \"hot\" restarted with its spec",
    )
    .await;
    delete_vm_gone(compute, tenant, "hot", params).await;
    delete_gone(storage, tenant, "hot-data", params).await;
    drop_boot(target, tenant, &spec.boot_disk, params).await;
    Outcome::Passed
}
