//! Block-storage checks: volumes, replicas, tiers, resize, snapshots, clones, imports, pools.

use std::collections::BTreeSet;

use super::{
    Expect, Outcome, Params, Target, assert_already_exists, assert_conflict, assert_failed,
    assert_invalid, assert_not_found, labels, names, require, require_that, wait_fails_fast,
    wait_for, wait_gone,
};
use crate::compute::{BootDisk, VmSpec};
use crate::error::{Error, ResourceKind};
use crate::name::{Labels, Tenant};
use crate::storage::{
    AccessMode, BlockStorage, MAX_REPLICAS, MAX_VOLUME_SIZE, ReplicaState, Volume, VolumePhase,
    VolumeSource, VolumeSpec,
};
use crate::wait::{self, Check};
use crate::{ByteSize, Compute};

const NO_STORAGE: &str = "the target has no block storage";

/// A blank volume spec of the suite's size and mode in the suite's tier.
pub(crate) fn blank(name: &str, params: &Params) -> VolumeSpec {
    let spec = VolumeSpec::blank(name, params.volume_size).with_mode(params.volume_mode);
    match &params.tier {
        Some(tier) => spec.with_tier(tier.clone()),
        None => spec,
    }
}

/// Creates a volume and waits until it is ready.
pub(crate) async fn create_ready(
    storage: &dyn BlockStorage,
    tenant: &Tenant,
    spec: &VolumeSpec,
    params: &Params,
) -> Volume {
    let name = &spec.name;
    storage
        .create_volume(tenant, spec)
        .await
        .or_fail(format_args!("create volume {name:?} in {tenant}"));
    wait_for(
        storage.watch_volume(tenant, name).await,
        wait::volume_ready(),
        params,
        format_args!("volume {name:?} in {tenant} becoming ready"),
    )
    .await
}

/// Deletes a volume (not forced) and waits until it is gone.
pub(crate) async fn delete_gone(
    storage: &dyn BlockStorage,
    tenant: &Tenant,
    name: &str,
    params: &Params,
) {
    storage
        .delete_volume(tenant, name, false)
        .await
        .or_fail(format_args!("delete volume {name:?} in {tenant}"));
    wait_gone(
        storage.watch_volume(tenant, name).await,
        params,
        format_args!("volume {name:?} in {tenant} going away"),
    )
    .await;
    let err = storage
        .get_volume(tenant, name)
        .await
        .refused(format_args!("get volume {name:?} after deleting it"));
    assert_not_found(&err, ResourceKind::Volume, name, "get of a deleted volume");
}

async fn volume_names(
    storage: &dyn BlockStorage,
    tenant: &Tenant,
    selector: &Labels,
) -> Vec<String> {
    let list = storage
        .list_volumes(tenant, selector)
        .await
        .or_fail(format_args!(
            "list volumes of {tenant} with selector {selector:?}"
        ));
    let specs = storage
        .list_volume_specs(tenant, selector)
        .await
        .or_fail(format_args!(
            "list volume specs of {tenant} with selector {selector:?}"
        ));
    let listed: Vec<&VolumeSpec> = list.iter().map(|v| &v.spec).collect();
    assert_eq!(
        specs.iter().collect::<Vec<_>>(),
        listed,
        "list_volume_specs gives the specs list_volumes gives, in its order (selector {selector:?})"
    );
    names(&list, |v| v.name())
}

/// Creates two labelled volumes; checks get, list (with and without a selector, by name), that a
/// taken name is refused with `AlreadyExists`, that get and delete of a missing volume give
/// `NotFound`, and that deleted volumes disappear.
pub async fn create_get_list_delete(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    let mut data = blank("data", params);
    data.labels = labels(&[("role", "data"), ("suite", "conformance")]);
    let created = storage
        .create_volume(tenant, &data)
        .await
        .or_fail("create volume \"data\"");
    assert_eq!(
        created.name(),
        "data",
        "create_volume returns the volume it created"
    );
    assert_eq!(created.spec.size, data.size, "create_volume keeps the size");
    assert_eq!(
        created.spec.labels, data.labels,
        "create_volume keeps the labels"
    );
    let ready = wait_for(
        storage.watch_volume(tenant, "data").await,
        wait::volume_ready(),
        params,
        "volume \"data\" becoming ready",
    )
    .await;
    assert_eq!(
        ready.status.size, data.size,
        "a ready volume reports its size in its status"
    );
    let got = storage
        .get_volume(tenant, "data")
        .await
        .or_fail("get volume \"data\"");
    assert_eq!(got.spec.name, "data");
    assert_eq!(got.spec.size, data.size);
    assert_eq!(got.status.phase, VolumePhase::Ready, "get after ready");

    let mut other = blank("other", params);
    other.labels = labels(&[("role", "other"), ("suite", "conformance")]);
    create_ready(storage, tenant, &other, params).await;

    assert_eq!(
        volume_names(storage, tenant, &labels(&[("role", "data")])).await,
        ["data"],
        "list_volumes with selector role=data"
    );
    assert_eq!(
        volume_names(storage, tenant, &labels(&[("suite", "conformance")])).await,
        ["data", "other"],
        "list_volumes with selector suite=conformance, by name"
    );
    assert_eq!(
        volume_names(storage, tenant, &Labels::new()).await,
        ["data", "other"],
        "list_volumes with an empty selector lists all, by name"
    );
    assert!(
        volume_names(storage, tenant, &labels(&[("role", "nothing")]))
            .await
            .is_empty(),
        "list_volumes with a selector nothing matches"
    );

    let err = storage
        .create_volume(tenant, &blank("data", params))
        .await
        .refused("create volume \"data\" a second time");
    assert_already_exists(&err, ResourceKind::Volume, "data", "create of a taken name");
    let err = storage
        .get_volume(tenant, "missing")
        .await
        .refused("get of a missing volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        "missing",
        "get of a missing volume",
    );
    let err = storage
        .delete_volume(tenant, "missing", false)
        .await
        .refused("delete of a missing volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        "missing",
        "delete of a missing volume",
    );
    let err = storage
        .delete_volume(tenant, "missing", true)
        .await
        .refused("forced delete of a missing volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        "missing",
        "forced delete of a missing volume",
    );

    delete_gone(storage, tenant, "data", params).await;
    delete_gone(storage, tenant, "other", params).await;
    assert!(
        volume_names(storage, tenant, &Labels::new())
            .await
            .is_empty(),
        "no volume is left after deleting them all"
    );
    Outcome::Passed
}

/// Each invalid spec is refused with `InvalidInput` naming the same field as
/// [`VolumeSpec::validate`], and nothing is created.
pub async fn invalid_spec_refused_and_nothing_created(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    let good = blank("good", params);
    let cases: Vec<VolumeSpec> = vec![
        VolumeSpec {
            name: "Bad_Name".into(),
            ..good.clone()
        },
        VolumeSpec {
            size: ByteSize(0),
            ..good.clone()
        },
        VolumeSpec {
            size: ByteSize(MAX_VOLUME_SIZE.0 + 1),
            ..good.clone()
        },
        good.clone().with_replicas(0),
        good.clone().with_replicas(MAX_REPLICAS + 1),
        good.clone().with_tier("Not A Tier"),
        good.clone().with_source(VolumeSource::Import {
            url: "ftp://images.example.com/a.img".into(),
        }),
        good.clone().with_source(VolumeSource::Clone {
            volume: "good".into(),
        }),
        good.clone().with_source(VolumeSource::Snapshot {
            snapshot: "Bad_Snap".into(),
        }),
        VolumeSpec {
            labels: labels(&[("bad key!", "x")]),
            ..good.clone()
        },
    ];
    for spec in cases {
        let field = spec
            .validate()
            .expect_err("the case is invalid")
            .invalid_field()
            .expect("validate names a field")
            .to_string();
        let err = storage
            .create_volume(tenant, &spec)
            .await
            .refused(format_args!(
                "create of a volume with an invalid {field}: {spec:?}"
            ));
        assert_invalid(&err, &field, "create of an invalid volume spec");
    }
    assert!(
        volume_names(storage, tenant, &Labels::new())
            .await
            .is_empty(),
        "refused specs must create nothing"
    );
    Outcome::Passed
}

/// `list_pools` lists the tiers: at least one, names distinct, exactly one default, capacity at
/// least free (and not zero, when the backend knows capacities: `pool_capacity`), and the tiers
/// of [`Params`] among them.
pub async fn pools_report_capacity(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    let caps = storage.capabilities();
    let pools = storage
        .list_pools(tenant)
        .await
        .or_fail("list storage pools");
    assert!(
        !pools.is_empty(),
        "list_pools: a storage backend has at least one pool"
    );
    let distinct: BTreeSet<&str> = pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        distinct.len(),
        pools.len(),
        "pool names are distinct: {pools:?}"
    );
    assert_eq!(
        pools.iter().filter(|p| p.default).count(),
        1,
        "exactly one pool takes volumes without a tier: {pools:?}"
    );
    for pool in &pools {
        assert!(
            pool.capacity >= pool.free,
            "pool {:?}: free {} exceeds capacity {}",
            pool.name,
            pool.free,
            pool.capacity
        );
        assert!(
            !pool.capacity.is_zero() || !caps.pool_capacity,
            "pool {:?} has no capacity",
            pool.name
        );
    }
    for tier in [&params.tier, &params.second_tier].into_iter().flatten() {
        assert!(
            distinct.contains(tier.as_str()),
            "the tier {tier:?} named in Params is not listed: {pools:?}"
        );
    }
    Outcome::Passed
}

/// A volume with as many replicas as the target allows (up to the node count) gets them on
/// distinct nodes.
pub async fn replicas_on_distinct_nodes(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    let caps = storage.capabilities();
    let n = params
        .nodes
        .min(usize::from(caps.max_replicas))
        .min(usize::from(MAX_REPLICAS));
    require_that!(
        n >= 2,
        format!(
            "needs 2 nodes and max_replicas >= 2 (nodes {}, max_replicas {})",
            params.nodes, caps.max_replicas
        )
    );
    require_that!(
        caps.replica_placement,
        "capability storage.replica_placement is missing: the backend does not see where replicas are"
    );
    let replicas = u8::try_from(n).expect("at most MAX_REPLICAS");
    let spec = blank("replicated", params).with_replicas(replicas);
    let volume = create_ready(storage, tenant, &spec, params).await;
    let diskful: Vec<_> = volume
        .status
        .replicas
        .iter()
        .filter(|r| r.state != ReplicaState::Diskless)
        .collect();
    assert_eq!(
        diskful.len(),
        n,
        "a ready volume with {n} replicas reports {n} replicas with data: {:?}",
        volume.status.replicas
    );
    let nodes: BTreeSet<&str> = volume
        .status
        .replicas
        .iter()
        .map(|r| r.node.as_str())
        .collect();
    assert_eq!(
        nodes.len(),
        volume.status.replicas.len(),
        "replicas of one volume must be on distinct nodes: {:?}",
        volume.status.replicas
    );
    delete_gone(storage, tenant, "replicated", params).await;
    Outcome::Passed
}

/// A volume with more replicas than nodes is refused with `Exhausted` (or, when that is also
/// more than the backend's `max_replicas`, with `InvalidInput` naming `replicas`), and nothing
/// is created.
pub async fn more_replicas_than_nodes_refused(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    let caps = storage.capabilities();
    let n = params.nodes + 1;
    require_that!(
        n <= usize::from(MAX_REPLICAS),
        format!("{n} replicas are more than any volume may have (MAX_REPLICAS)")
    );
    let spec = blank("crowded", params).with_replicas(u8::try_from(n).expect("small"));
    let err = storage
        .create_volume(tenant, &spec)
        .await
        .refused(format_args!(
            "create of a volume with {n} replicas on {} nodes",
            params.nodes
        ));
    let beyond_capability = n > usize::from(caps.max_replicas);
    assert!(
        matches!(err, Error::Exhausted { .. })
            || (beyond_capability && err.invalid_field() == Some("replicas")),
        "more replicas than nodes: expected Exhausted{}, got: {err} ({err:?})",
        if beyond_capability {
            " or InvalidInput naming \"replicas\""
        } else {
            ""
        }
    );
    let err = storage
        .get_volume(tenant, "crowded")
        .await
        .refused("get of the refused volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        "crowded",
        "a refused volume must not exist",
    );
    Outcome::Passed
}

/// A volume in a tier that does not exist is refused (`NotFound` of a storage pool, or
/// `InvalidInput` naming `tier`), and nothing is created.
pub async fn unknown_tier_refused(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    let spec = blank("lost", params).with_tier("no-such-tier");
    let err = storage
        .create_volume(tenant, &spec)
        .await
        .refused("create of a volume in tier \"no-such-tier\"");
    let ok = matches!(&err, Error::NotFound { kind: ResourceKind::StoragePool, name } if name == "no-such-tier")
        || err.invalid_field() == Some("tier");
    assert!(
        ok,
        "unknown tier: expected NotFound {{ storage pool, \"no-such-tier\" }} or InvalidInput naming \"tier\", got: {err} ({err:?})"
    );
    let err = storage
        .get_volume(tenant, "lost")
        .await
        .refused("get of the refused volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        "lost",
        "a refused volume must not exist",
    );
    Outcome::Passed
}

/// A volume in [`Params::second_tier`] becomes ready and keeps its tier.
pub async fn second_tier_used(target: &Target<'_>, tenant: &Tenant, params: &Params) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    let tier = require!(
        params.second_tier.as_deref(),
        "Params::second_tier is not set"
    );
    let spec = blank("tiered", params).with_tier(tier);
    let volume = create_ready(storage, tenant, &spec, params).await;
    assert_eq!(
        volume.spec.tier.as_deref(),
        Some(tier),
        "the volume keeps its tier"
    );
    delete_gone(storage, tenant, "tiered", params).await;
    Outcome::Passed
}

/// Resizing grows a volume (status follows); shrinking and zero are refused with `InvalidInput`
/// naming `size` and change nothing; resizing a missing volume gives `NotFound`.
pub async fn resize_grows_only(target: &Target<'_>, tenant: &Tenant, params: &Params) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    require_that!(
        storage.capabilities().resize,
        "capability storage.resize is missing"
    );
    let size = params.volume_size;
    let bigger = ByteSize(size.0 * 2);
    create_ready(storage, tenant, &blank("elastic", params), params).await;
    let resized = storage
        .resize_volume(tenant, "elastic", bigger)
        .await
        .or_fail(format_args!(
            "grow volume \"elastic\" from {size} to {bigger}"
        ));
    assert_eq!(
        resized.spec.size, bigger,
        "resize_volume returns the new size in the spec"
    );
    let grown = super::wait_for(
        storage.watch_volume(tenant, "elastic").await,
        wait::condition(
            format!("volume resized to {bigger}"),
            move |v: &Volume| match v.status.phase {
                VolumePhase::Ready if v.status.size == bigger => Check::Met,
                VolumePhase::Failed => Check::Failed(v.status.message.clone().unwrap_or_default()),
                _ => Check::Pending,
            },
        ),
        params,
        "volume \"elastic\" reaching its new size",
    )
    .await;
    assert_eq!(grown.spec.size, bigger);
    for (to, what) in [(size, "shrink"), (ByteSize(0), "resize to zero")] {
        let err = storage
            .resize_volume(tenant, "elastic", to)
            .await
            .refused(format_args!(
                "{what} of volume \"elastic\" from {bigger} to {to}"
            ));
        assert_invalid(&err, "size", what);
    }
    let got = storage
        .get_volume(tenant, "elastic")
        .await
        .or_fail("get volume \"elastic\"");
    assert_eq!(got.spec.size, bigger, "a refused shrink changes nothing");
    assert_eq!(got.status.size, bigger, "a refused shrink changes nothing");
    let err = storage
        .resize_volume(tenant, "missing", bigger)
        .await
        .refused("resize of a missing volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        "missing",
        "resize of a missing volume",
    );
    delete_gone(storage, tenant, "elastic", params).await;
    Outcome::Passed
}

/// Snapshots are created, listed (per volume and all), refused for taken names and missing
/// volumes, restored into a new volume (not smaller than the snapshot), and deleted.
pub async fn snapshots_and_restore(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    require_that!(
        storage.capabilities().snapshots,
        "capability storage.snapshots is missing"
    );
    let size = params.volume_size;
    create_ready(storage, tenant, &blank("origin", params), params).await;
    create_ready(storage, tenant, &blank("bystander", params), params).await;

    let snap = storage
        .create_snapshot(tenant, "origin", "snap-1")
        .await
        .or_fail("snapshot volume \"origin\" as \"snap-1\"");
    assert_eq!(snap.name, "snap-1");
    assert_eq!(snap.volume, "origin");
    assert_eq!(snap.size, size, "a snapshot records the volume's size");
    storage
        .create_snapshot(tenant, "bystander", "snap-2")
        .await
        .or_fail("snapshot volume \"bystander\" as \"snap-2\"");
    let err = storage
        .create_snapshot(tenant, "origin", "snap-1")
        .await
        .refused("a second snapshot named \"snap-1\"");
    assert_already_exists(
        &err,
        ResourceKind::Snapshot,
        "snap-1",
        "snapshot of a taken name",
    );
    let err = storage
        .create_snapshot(tenant, "missing", "snap-3")
        .await
        .refused("snapshot of a missing volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        "missing",
        "snapshot of a missing volume",
    );

    let of_origin = storage
        .list_snapshots(tenant, Some("origin"))
        .await
        .or_fail("list snapshots of \"origin\"");
    assert_eq!(
        names(&of_origin, |s| &s.name),
        ["snap-1"],
        "snapshots of one volume"
    );
    let all = storage
        .list_snapshots(tenant, None)
        .await
        .or_fail("list all snapshots");
    let mut all = names(&all, |s| &s.name);
    all.sort();
    assert_eq!(all, ["snap-1", "snap-2"], "all snapshots of the tenant");

    let restore = blank("restored", params).with_source(VolumeSource::Snapshot {
        snapshot: "snap-1".into(),
    });
    let restored = create_ready(storage, tenant, &restore, params).await;
    assert_eq!(
        restored.status.size, size,
        "a restored volume has the requested size"
    );
    if size.0 > 1 {
        let small = VolumeSpec {
            name: "shrunk".into(),
            size: ByteSize(size.0 / 2),
            ..restore.clone()
        };
        let err = storage
            .create_volume(tenant, &small)
            .await
            .refused("restore into a volume smaller than the snapshot");
        assert_invalid(&err, "size", "restore into a smaller volume");
    }
    let from_missing = blank("orphan", params).with_source(VolumeSource::Snapshot {
        snapshot: "missing".into(),
    });
    let err = storage
        .create_volume(tenant, &from_missing)
        .await
        .refused("restore from a missing snapshot");
    assert_not_found(
        &err,
        ResourceKind::Snapshot,
        "missing",
        "restore from a missing snapshot",
    );
    for name in ["shrunk", "orphan"] {
        let err = storage
            .get_volume(tenant, name)
            .await
            .refused("get of a refused volume");
        assert_not_found(
            &err,
            ResourceKind::Volume,
            name,
            "a refused restore must create nothing",
        );
    }

    for snapshot in ["snap-1", "snap-2"] {
        storage
            .delete_snapshot(tenant, snapshot)
            .await
            .or_fail(format_args!("delete snapshot {snapshot:?}"));
    }
    let err = storage
        .delete_snapshot(tenant, "snap-1")
        .await
        .refused("delete of a deleted snapshot");
    assert_not_found(
        &err,
        ResourceKind::Snapshot,
        "snap-1",
        "delete of a missing snapshot",
    );
    let left = storage
        .list_snapshots(tenant, None)
        .await
        .or_fail("list snapshots");
    assert!(
        left.is_empty(),
        "deleted snapshots are not listed: {left:?}"
    );
    for volume in ["restored", "origin", "bystander"] {
        delete_gone(storage, tenant, volume, params).await;
    }
    Outcome::Passed
}

/// A clone of a volume becomes ready (at the source's size or larger); a smaller clone is
/// refused with `InvalidInput` naming `size`, a clone of a missing volume with `NotFound`, and
/// neither creates anything.
pub async fn clone_copies_a_volume(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    require_that!(
        storage.capabilities().clones,
        "capability storage.clones is missing"
    );
    let size = params.volume_size;
    create_ready(storage, tenant, &blank("golden", params), params).await;
    let copy = blank("copy", params).with_source(VolumeSource::Clone {
        volume: "golden".into(),
    });
    let cloned = create_ready(storage, tenant, &copy, params).await;
    assert_eq!(cloned.status.size, size);
    let big = VolumeSpec {
        name: "big-copy".into(),
        size: ByteSize(size.0 * 2),
        ..copy.clone()
    };
    let big = create_ready(storage, tenant, &big, params).await;
    assert_eq!(
        big.status.size,
        ByteSize(size.0 * 2),
        "a clone may be larger than its source"
    );
    if size.0 > 1 {
        let small = VolumeSpec {
            name: "small-copy".into(),
            size: ByteSize(size.0 / 2),
            ..copy.clone()
        };
        let err = storage
            .create_volume(tenant, &small)
            .await
            .refused("clone into a volume smaller than the source");
        assert_invalid(&err, "size", "clone into a smaller volume");
    }
    let orphan = blank("orphan", params).with_source(VolumeSource::Clone {
        volume: "missing".into(),
    });
    let err = storage
        .create_volume(tenant, &orphan)
        .await
        .refused("clone of a missing volume");
    assert_not_found(
        &err,
        ResourceKind::Volume,
        "missing",
        "clone of a missing volume",
    );
    for name in ["small-copy", "orphan"] {
        let err = storage
            .get_volume(tenant, name)
            .await
            .refused("get of a refused volume");
        assert_not_found(
            &err,
            ResourceKind::Volume,
            name,
            "a refused clone must create nothing",
        );
    }
    for volume in ["copy", "big-copy", "golden"] {
        delete_gone(storage, tenant, volume, params).await;
    }
    Outcome::Passed
}

/// A volume imported from [`Params::import_url`] becomes ready.
pub async fn import_reaches_ready(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    require_that!(
        storage.capabilities().http_import,
        "capability storage.http_import is missing"
    );
    let spec = blank("imported", params).with_source(VolumeSource::Import {
        url: params.import_url.clone(),
    });
    let volume = create_ready(storage, tenant, &spec, params).await;
    assert_eq!(volume.status.size, params.volume_size);
    delete_gone(storage, tenant, "imported", params).await;
    Outcome::Passed
}

/// An import from [`Params::failing_import_url`] ends the wait for readiness with
/// `Error::Failed` long before the timeout.
pub async fn failing_import_fails_fast(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    require_that!(
        storage.capabilities().http_import,
        "capability storage.http_import is missing"
    );
    let spec = blank("broken", params).with_source(VolumeSource::Import {
        url: params.failing_import_url.clone(),
    });
    storage
        .create_volume(tenant, &spec)
        .await
        .or_fail("create a volume importing the failing URL (the failure comes later)");
    let err = wait_fails_fast(
        storage.watch_volume(tenant, "broken").await,
        wait::volume_ready(),
        params,
        "volume \"broken\" importing a failing URL",
    )
    .await;
    let reason = assert_failed(err, ResourceKind::Volume, "broken", "a failed import");
    assert!(!reason.is_empty(), "a failed import says why");
    let got = storage
        .get_volume(tenant, "broken")
        .await
        .or_fail("get the failed volume");
    assert_eq!(
        got.status.phase,
        VolumePhase::Failed,
        "a failed import leaves the volume Failed"
    );
    delete_gone(storage, tenant, "broken", params).await;
    Outcome::Passed
}

/// A volume a running VM uses is listed as used by it and refused deletion with `Conflict`,
/// unless forced.
pub async fn delete_in_use_needs_force(
    target: &Target<'_>,
    tenant: &Tenant,
    params: &Params,
) -> Outcome {
    let storage = require!(target.storage, NO_STORAGE);
    let compute: &dyn Compute = require!(target.compute, "needs a compute backend to use a volume");
    create_ready(
        storage,
        tenant,
        &blank("disk", params).with_access(AccessMode::ReadWriteOnce),
        params,
    )
    .await;
    let spec = VmSpec {
        name: "user".into(),
        boot_disk: BootDisk::Volume {
            volume: "disk".into(),
        },
        ..VmSpec::default()
    };
    super::compute::apply_vm(target, tenant, &spec)
        .await
        .or_fail("apply vm \"user\" booting from \"disk\"");
    wait_for(
        compute.watch_vm(tenant, "user").await,
        wait::vm_running(),
        params,
        "vm \"user\" running",
    )
    .await;
    let users = compute
        .volume_users(tenant)
        .await
        .or_fail("the users of the tenant's volumes");
    assert!(
        users
            .get("disk")
            .is_some_and(|vms| vms.iter().any(|vm| vm == "user")),
        "compute lists a running VM as a user of the volume it boots from: {users:?}"
    );
    // What deleting without force does (the facade's `TenantVolumes::delete`): compute is
    // asked who uses the volume, then storage refuses what its own system sees in use.
    let err = match crate::attach::ensure_volume_unused(compute, tenant, "disk").await {
        Err(e) => Err(e),
        Ok(()) => storage.delete_volume(tenant, "disk", false).await,
    }
    .refused("delete of a volume a running VM uses, not forced");
    assert_conflict(
        &err,
        Some(ResourceKind::Volume),
        "delete of a volume in use",
    );
    storage
        .get_volume(tenant, "disk")
        .await
        .or_fail("a volume whose deletion was refused still exists");
    storage
        .delete_volume(tenant, "disk", true)
        .await
        .or_fail("forced delete of a volume in use");
    // On Kubernetes the claim keeps its `kubernetes.io/pvc-protection` finalizer until the VM's
    // pod is gone: the volume goes with the VM (at once on systems without that protection).
    compute
        .delete_vm(tenant, "user")
        .await
        .or_fail("delete vm \"user\"");
    wait_gone(
        storage.watch_volume(tenant, "disk").await,
        params,
        "volume \"disk\" going away after a forced delete",
    )
    .await;
    wait_gone(
        compute.watch_vm(tenant, "user").await,
        params,
        "vm \"user\" going away",
    )
    .await;
    Outcome::Passed
}
