//! Quota checks: a tenant's quota is kept as set, and a create past it is refused by the
//! backend itself with [`Error::QuotaExceeded`] naming the resource, the limit, what is used
//! and what was requested, creating nothing (the memory cloud checks under its lock; on
//! Kubernetes the tenant's `ResourceQuota` refuses it at admission). These checks call the
//! backends directly, past kubecloud's own check in the facade, so they test what holds when
//! two creates race past that check.

use super::compute::{apply_vm, delete_vm_gone};
use super::storage::{blank, create_ready, delete_gone};
use super::{Expect, Outcome, Params, Target, assert_not_found, require, require_that};
use crate::compute::VmSpec;
use crate::error::{Error, ResourceKind};
use crate::name::{Labels, Tenant};
use crate::quota::{Quota, QuotaResource, Quotas, TierQuota};
use crate::size::ByteSize;

/// Panics unless `err` is [`Error::QuotaExceeded`] for `tenant` with these amounts.
#[track_caller]
fn assert_exceeded(
    err: &Error,
    tenant: &Tenant,
    expected: (QuotaResource, u64, u64, u64),
    what: &str,
) {
    match err {
        Error::QuotaExceeded {
            tenant: t,
            resource,
            limit,
            used,
            requested,
        } => {
            assert_eq!(t, tenant.as_str(), "{what}: the error names the tenant");
            assert_eq!(
                (resource.clone(), *limit, *used, *requested),
                expected,
                "{what}: (resource, limit, used, requested)"
            );
        }
        other => panic!("conformance: {what}: expected QuotaExceeded, got {other} ({other:?})"),
    }
}

/// A quota set is the quota read back, and the default quota removes every limit.
pub async fn set_and_get_round_trip(
    _target: &Target<'_>,
    quotas: &dyn Quotas,
    tenant: &Tenant,
    _params: &Params,
) -> Outcome {
    let fresh = quotas
        .get_quota(tenant)
        .await
        .or_fail("get the quota of a new tenant");
    assert_eq!(fresh, Quota::default(), "a new tenant has no limits");
    let quota = Quota::default()
        .with_vcpus(16)
        .with_memory(ByteSize::gib(64))
        .with_vms(8)
        .with_volumes(20)
        .with_storage(ByteSize::tib(1))
        .with_tier(
            "fast",
            TierQuota {
                volumes: Some(4),
                storage: Some(ByteSize::gib(200)),
            },
        )
        .with_subnets(4)
        .with_public_addresses(2);
    quotas
        .set_quota(tenant, &quota)
        .await
        .or_fail("set a quota");
    let got = quotas.get_quota(tenant).await.or_fail("get the quota set");
    assert_eq!(got, quota, "the quota read back is the quota set");
    let bad = Quota::default().with_tier("Not A Tier", TierQuota::default());
    let err = quotas
        .set_quota(tenant, &bad)
        .await
        .refused("a quota naming a bad tier");
    super::assert_invalid(&err, "tiers", "a quota naming a bad tier");
    quotas
        .set_quota(tenant, &Quota::default())
        .await
        .or_fail("remove every limit");
    let got = quotas
        .get_quota(tenant)
        .await
        .or_fail("get the quota removed");
    assert_eq!(got, Quota::default(), "the default quota limits nothing");
    Outcome::Passed
}

/// A VM past the tenant's VM quota is refused and not created; updating a VM within the
/// quota still works.
pub async fn vms_past_the_quota_refused_and_nothing_created(
    target: &Target<'_>,
    quotas: &dyn Quotas,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let compute = require!(target.compute, "the target has no compute backend");
    require_that!(
        compute.capabilities().container_disks,
        "needs container disks (a VM without volumes)"
    );
    quotas
        .set_quota(tenant, &Quota::default().with_vms(1))
        .await
        .or_fail("set a quota of one VM");
    let one = VmSpec {
        name: "one".into(),
        ..VmSpec::default()
    };
    apply_vm(target, tenant, &one)
        .await
        .or_fail("apply the first VM");
    let two = VmSpec {
        name: "two".into(),
        ..VmSpec::default()
    };
    let err = apply_vm(target, tenant, &two)
        .await
        .refused("a second VM past a quota of one");
    assert_exceeded(
        &err,
        tenant,
        (QuotaResource::Vms, 1, 1, 1),
        "a second VM past a quota of one",
    );
    let err = compute
        .get_vm(tenant, "two")
        .await
        .refused("get the refused VM");
    assert_not_found(
        &err,
        ResourceKind::Vm,
        "two",
        "the refused VM was not created",
    );
    let listed = compute
        .list_vms(tenant, &Labels::new())
        .await
        .or_fail("list VMs");
    assert_eq!(listed.len(), 1, "only the first VM exists");
    let relabelled = VmSpec {
        labels: super::labels(&[("role", "kept")]),
        ..one.clone()
    };
    apply_vm(target, tenant, &relabelled)
        .await
        .or_fail("updating a VM at the quota (it takes nothing more)");
    delete_vm_gone(compute, tenant, "one", params).await;
    quotas
        .set_quota(tenant, &Quota::default())
        .await
        .or_fail("remove the quota");
    Outcome::Passed
}

/// A volume past the storage or volume quota is refused and not created.
pub async fn volumes_past_the_quota_refused_and_nothing_created(
    target: &Target<'_>,
    quotas: &dyn Quotas,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, "the target has no block-storage backend");
    let size = params.volume_size;
    quotas
        .set_quota(
            tenant,
            &Quota::default()
                .with_storage(ByteSize(size.as_u64() * 2))
                .with_volumes(5),
        )
        .await
        .or_fail("set a storage quota of two volumes' size");
    create_ready(storage, tenant, &blank("a", params), params).await;
    let mut big = blank("b", params);
    big.size = ByteSize(size.as_u64() * 2);
    let err = storage
        .create_volume(tenant, &big)
        .await
        .refused("a volume past the storage quota");
    assert_exceeded(
        &err,
        tenant,
        (
            QuotaResource::Storage,
            size.as_u64() * 2,
            size.as_u64(),
            size.as_u64() * 2,
        ),
        "a volume past the storage quota",
    );
    let err = storage
        .get_volume(tenant, "b")
        .await
        .refused("get the refused volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        "b",
        "the refused volume was not created",
    );
    quotas
        .set_quota(
            tenant,
            &Quota::default()
                .with_storage(ByteSize(size.as_u64() * 2))
                .with_volumes(1),
        )
        .await
        .or_fail("lower the volume quota to one");
    let err = storage
        .create_volume(tenant, &blank("c", params))
        .await
        .refused("a second volume past a quota of one");
    assert_exceeded(
        &err,
        tenant,
        (QuotaResource::Volumes, 1, 1, 1),
        "a second volume past a quota of one",
    );
    delete_gone(storage, tenant, "a", params).await;
    quotas
        .set_quota(tenant, &Quota::default())
        .await
        .or_fail("remove the quota");
    Outcome::Passed
}
