//! Tenant isolation: a second tenant can neither see nor touch the first tenant's resources, and
//! may use the same names.

use super::compute::{any_boot, apply_running, delete_vm_gone, drop_boot};
use super::loadbalancer::{
    create_pool, delete_pool, expose_assigned, exposure, pool_spec, release_gone,
};
use super::network::{delete_vpc_and_subnet, vpc_and_subnet};
use super::storage::{blank, create_ready, delete_gone};
use super::{
    Expect, Outcome, Params, Target, assert_conflict, assert_failed, assert_not_found, require,
};
use crate::ByteSize;
use crate::compute::{BootDisk, MigrationTarget, PowerAction, VmSpec};
use crate::error::ResourceKind;
use crate::loadbalancer::{AddressBlock, AddressRequest};
use crate::name::{Labels, Tenant};
use crate::network::{IpReservationSpec, SubnetSpec, VpcSpec};
use crate::storage::{VolumeSource, VolumeSpec};
use crate::wait;

/// Panics unless `result` is `NotFound` of `kind` `name`: what another tenant must see.
#[track_caller]
fn hidden<T: std::fmt::Debug>(result: crate::Result<T>, kind: ResourceKind, name: &str, op: &str) {
    let what = format!("another tenant's {op} of {kind} {name:?}");
    let err = result.refused(&what);
    assert_not_found(&err, kind, name, &what);
}

/// Tenant `b` gets `NotFound` for `a`'s volume (get, delete, forced delete, resize, snapshot,
/// clone) and snapshot (delete, restore), lists none of them, and can create a volume of the
/// same name without touching `a`'s.
pub async fn storage(target: &Target<'_>, a: &Tenant, b: &Tenant, params: &Params) -> Outcome {
    let storage = require!(target.storage, "the target has no block storage");
    let caps = storage.capabilities();
    create_ready(storage, a, &blank("secret", params), params).await;
    hidden(
        storage.get_volume(b, "secret").await,
        ResourceKind::Volume,
        "secret",
        "get",
    );
    hidden(
        storage.delete_volume(b, "secret", false).await,
        ResourceKind::Volume,
        "secret",
        "delete",
    );
    hidden(
        storage.delete_volume(b, "secret", true).await,
        ResourceKind::Volume,
        "secret",
        "forced delete",
    );
    let bigger = ByteSize(params.volume_size.0 * 2);
    if caps.resize {
        hidden(
            storage.resize_volume(b, "secret", bigger).await,
            ResourceKind::Volume,
            "secret",
            "resize",
        );
    }
    let listed = storage
        .list_volumes(b, &Labels::new())
        .await
        .or_fail("list volumes of the other tenant");
    assert!(
        listed.is_empty(),
        "another tenant lists none of the first tenant's volumes: {listed:?}"
    );
    if caps.snapshots {
        hidden(
            storage.create_snapshot(b, "secret", "peek").await,
            ResourceKind::Volume,
            "secret",
            "snapshot",
        );
        storage
            .create_snapshot(a, "secret", "snap")
            .await
            .or_fail("snapshot \"secret\"");
        let listed = storage
            .list_snapshots(b, None)
            .await
            .or_fail("list snapshots of the other tenant");
        assert!(
            listed.is_empty(),
            "another tenant lists none of the first tenant's snapshots: {listed:?}"
        );
        hidden(
            storage.delete_snapshot(b, "snap").await,
            ResourceKind::Snapshot,
            "snap",
            "delete",
        );
        let restore = blank("restored", params).with_source(VolumeSource::Snapshot {
            snapshot: "snap".into(),
        });
        hidden(
            storage.create_volume(b, &restore).await,
            ResourceKind::Snapshot,
            "snap",
            "restore",
        );
    }
    if caps.clones {
        let copy = blank("copy", params).with_source(VolumeSource::Clone {
            volume: "secret".into(),
        });
        hidden(
            storage.create_volume(b, &copy).await,
            ResourceKind::Volume,
            "secret",
            "clone",
        );
    }
    let theirs = VolumeSpec {
        size: bigger,
        ..blank("secret", params)
    };
    create_ready(storage, b, &theirs, params).await;
    let mine = storage
        .get_volume(a, "secret")
        .await
        .or_fail("get the first tenant's volume");
    assert_eq!(
        mine.spec.size, params.volume_size,
        "another tenant's volume of the same name is another volume"
    );
    delete_gone(storage, b, "secret", params).await;
    storage
        .get_volume(a, "secret")
        .await
        .or_fail("the first tenant's volume survives the other's delete");
    if caps.snapshots {
        storage
            .delete_snapshot(a, "snap")
            .await
            .or_fail("delete snapshot \"snap\"");
    }
    delete_gone(storage, a, "secret", params).await;
    Outcome::Passed
}

/// Tenant `b` gets `NotFound` for `a`'s VPC, subnet and reservation (get, delete, release,
/// reserving in `a`'s subnet, a subnet in `a`'s VPC), lists none of them, and can create the
/// same names.
pub async fn network(target: &Target<'_>, a: &Tenant, b: &Tenant, params: &Params) -> Outcome {
    let network = require!(target.network, "the target has no network backend");
    let cidr = params.subnet_block(11);
    vpc_and_subnet(network, a, "main", "front", cidr).await;
    network
        .reserve_ip(a, &IpReservationSpec::new("held", "front"))
        .await
        .or_fail("reserve \"held\"");
    hidden(
        network.get_vpc(b, "main").await,
        ResourceKind::Vpc,
        "main",
        "get",
    );
    hidden(
        network.delete_vpc(b, "main").await,
        ResourceKind::Vpc,
        "main",
        "delete",
    );
    hidden(
        network.get_subnet(b, "front").await,
        ResourceKind::Subnet,
        "front",
        "get",
    );
    hidden(
        network.delete_subnet(b, "front").await,
        ResourceKind::Subnet,
        "front",
        "delete",
    );
    hidden(
        network.get_ip(b, "held").await,
        ResourceKind::IpReservation,
        "held",
        "get",
    );
    hidden(
        network.release_ip(b, "held").await,
        ResourceKind::IpReservation,
        "held",
        "release",
    );
    hidden(
        network
            .reserve_ip(b, &IpReservationSpec::new("mine", "front"))
            .await,
        ResourceKind::Subnet,
        "front",
        "reservation in",
    );
    hidden(
        network
            .create_subnet(b, &SubnetSpec::new("side", "main", params.subnet_block(12)))
            .await,
        ResourceKind::Vpc,
        "main",
        "subnet in",
    );
    assert!(
        network.list_vpcs(b).await.or_fail("list vpcs").is_empty(),
        "another tenant lists none of the first tenant's vpcs"
    );
    assert!(
        network
            .list_subnets(b)
            .await
            .or_fail("list subnets")
            .is_empty(),
        "another tenant lists none of the first tenant's subnets"
    );
    assert!(
        network
            .list_ips(b, None)
            .await
            .or_fail("list reservations")
            .is_empty(),
        "another tenant lists none of the first tenant's reservations"
    );
    let same_cidr = if network.capabilities().vpc_isolation {
        cidr
    } else {
        params.subnet_block(12)
    };
    network
        .create_vpc(b, &VpcSpec::named("main"))
        .await
        .or_fail("the other tenant creates vpc \"main\" too");
    network
        .create_subnet(b, &SubnetSpec::new("front", "main", same_cidr))
        .await
        .or_fail("the other tenant creates subnet \"front\" too");
    delete_vpc_and_subnet(network, b, "main", "front").await;
    network
        .get_ip(a, "held")
        .await
        .or_fail("the first tenant's reservation survives");
    network
        .release_ip(a, "held")
        .await
        .or_fail("release \"held\"");
    delete_vpc_and_subnet(network, a, "main", "front").await;
    Outcome::Passed
}

/// Tenant `b` gets `NotFound` for `a`'s VM (get, delete, power, migration blockers, migrate),
/// lists none, cannot boot a VM from `a`'s volume, and `a`'s VM keeps running.
pub async fn compute(target: &Target<'_>, a: &Tenant, b: &Tenant, params: &Params) -> Outcome {
    let compute = require!(target.compute, "the target has no compute backend");
    let boot_disk = match any_boot(target, a, "private", params).await {
        Ok(boot) => boot,
        Err(why) => return Outcome::Skipped(why),
    };
    let spec = VmSpec {
        name: "private".into(),
        boot_disk,
        ..VmSpec::default()
    };
    let running = apply_running(target, a, &spec, params).await;
    hidden(
        compute.get_vm(b, "private").await,
        ResourceKind::Vm,
        "private",
        "get",
    );
    hidden(
        compute.delete_vm(b, "private").await,
        ResourceKind::Vm,
        "private",
        "delete",
    );
    hidden(
        compute.power(b, "private", PowerAction::Stop).await,
        ResourceKind::Vm,
        "private",
        "stop",
    );
    hidden(
        compute.migration_blockers(b, "private").await,
        ResourceKind::Vm,
        "private",
        "migration blockers",
    );
    hidden(
        compute
            .migrate(b, "private", &MigrationTarget::AnyNode)
            .await,
        ResourceKind::Vm,
        "private",
        "migrate",
    );
    if compute.capabilities().vm_snapshots {
        compute
            .snapshot_vm(a, "private", "private-snap")
            .await
            .or_fail("snapshot the first tenant's vm");
        hidden(
            compute.snapshot_vm(b, "private", "stolen").await,
            ResourceKind::Vm,
            "private",
            "snapshot",
        );
        hidden(
            compute.restore_vm(b, "private", "private-snap").await,
            ResourceKind::Vm,
            "private",
            "restore",
        );
        hidden(
            compute.delete_vm_snapshot(b, "private-snap").await,
            ResourceKind::VmSnapshot,
            "private-snap",
            "delete",
        );
        let snapshots = compute
            .list_vm_snapshots(b, None)
            .await
            .or_fail("list vm snapshots of the other tenant");
        assert!(
            snapshots.is_empty(),
            "another tenant lists none of the first tenant's vm snapshots: {snapshots:?}"
        );
        compute
            .delete_vm_snapshot(a, "private-snap")
            .await
            .or_fail("delete the first tenant's vm snapshot");
    }
    let listed = compute
        .list_vms(b, &Labels::new())
        .await
        .or_fail("list vms of the other tenant");
    assert!(
        listed.is_empty(),
        "another tenant lists none of the first tenant's vms: {listed:?}"
    );
    if let BootDisk::Volume { volume } = &spec.boot_disk {
        let thief = VmSpec {
            name: "thief".into(),
            boot_disk: spec.boot_disk.clone(),
            ..VmSpec::default()
        };
        hidden(
            super::compute::apply_vm(target, b, &thief).await,
            ResourceKind::Volume,
            volume,
            "boot from",
        );
    }
    let got = compute
        .get_vm(a, "private")
        .await
        .or_fail("get the first tenant's vm");
    assert_eq!(
        (got.status.phase, got.status.node.clone()),
        (running.status.phase, running.status.node.clone()),
        "the first tenant's vm is untouched"
    );
    delete_vm_gone(compute, a, "private", params).await;
    drop_boot(target, a, &spec.boot_disk, params).await;
    Outcome::Passed
}

/// Tenant `b` gets `NotFound` for `a`'s pool (get, delete) and exposure (get, release), lists
/// neither, cannot take addresses from `a`'s pool, cannot create a pool overlapping it
/// (`Conflict`), and may name its own pool the same.
pub async fn load_balancer(
    target: &Target<'_>,
    a: &Tenant,
    b: &Tenant,
    params: &Params,
) -> Outcome {
    let lb = require!(target.load_balancer, "the target has no load balancer");
    let mine = params.pool_block(7);
    let spec = require!(
        pool_spec(lb, "own", vec![AddressBlock::Cidr(mine)]),
        "the load balancer announces neither over L2 nor over BGP"
    );
    create_pool(lb, a, &spec).await;
    let (_, ip) = expose_assigned(
        lb,
        a,
        &exposure("site", 443, AddressRequest::Pool("own".into())),
        params,
    )
    .await;
    hidden(
        lb.get_pool(b, "own").await,
        ResourceKind::AddressPool,
        "own",
        "get",
    );
    hidden(
        lb.delete_pool(b, "own").await,
        ResourceKind::AddressPool,
        "own",
        "delete",
    );
    hidden(
        lb.get_exposure(b, "site").await,
        ResourceKind::Exposure,
        "site",
        "get",
    );
    hidden(
        lb.release(b, "site").await,
        ResourceKind::Exposure,
        "site",
        "release",
    );
    let pools = lb
        .list_pools(b)
        .await
        .or_fail("list pools of the other tenant");
    assert!(
        !pools.iter().any(|p| p.spec.addresses == spec.addresses),
        "another tenant lists none of the first tenant's pools: {pools:?}"
    );
    let exposures = lb
        .list_exposures(b)
        .await
        .or_fail("list exposures of the other tenant");
    assert!(
        exposures.is_empty(),
        "another tenant lists none of the first tenant's exposures: {exposures:?}"
    );

    let poach = exposure("poach", 80, AddressRequest::Pool("own".into()));
    match lb.expose(b, &poach).await {
        Err(err) => hidden::<()>(Err(err), ResourceKind::AddressPool, "own", "exposure on"),
        Ok(_) => {
            let states = lb
                .watch_exposure(b, "poach")
                .await
                .or_fail("watch exposure \"poach\"");
            let err = wait::until(states, wait::exposure_assigned(), params.timeout)
                .await
                .refused("an exposure on another tenant's pool");
            assert_failed(
                err,
                ResourceKind::Exposure,
                "poach",
                "an exposure on another tenant's pool",
            );
            release_gone(lb, b, "poach", params).await;
        }
    }
    let mut overlapping = spec.clone();
    overlapping.name = "grab".into();
    let err = lb
        .create_pool(b, &overlapping)
        .await
        .refused("another tenant's pool overlapping the first's");
    assert_conflict(
        &err,
        Some(ResourceKind::AddressPool),
        "a pool overlapping another tenant's",
    );
    let mut same_name = spec.clone();
    same_name.addresses = vec![AddressBlock::Cidr(params.pool_block(8))];
    create_pool(lb, b, &same_name).await;
    delete_pool(lb, b, "own").await;
    let got = lb
        .get_exposure(a, "site")
        .await
        .or_fail("get the first tenant's exposure");
    assert_eq!(
        got.ip,
        Some(ip),
        "the first tenant's exposure keeps its address"
    );
    release_gone(lb, a, "site", params).await;
    delete_pool(lb, a, "own").await;
    Outcome::Passed
}
