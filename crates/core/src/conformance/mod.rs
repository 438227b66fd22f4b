//! The conformance suite: one set of `pub async fn` checks over the four backend traits, run by
//! every backend against its own test target (the in-memory cloud, or a backend wired to test
//! doubles of its real protocol).
//!
//! Each check takes the [`Target`] (the trait objects under test), a fresh [`Tenant`] and the
//! [`Params`] describing the target, and returns an [`Outcome`]: [`Outcome::Passed`], or
//! [`Outcome::Skipped`] with the reason when the target lacks a trait or a capability the check
//! needs. A check that finds a violation **panics** with a message naming the check's step, what
//! was expected and what happened, so a backend's test just calls it. Checks wait only on watches
//! ([`crate::wait::until`]) with [`Params::timeout`] as the guard, never by sleeping, and delete
//! what they created when they pass.
//!
//! [`run_all`] runs every check, each in a fresh tenant named `<prefix>-<index>` (isolation
//! checks use a second tenant `<prefix>-<index>b`); the `run_*` functions run one group.
//!
//! ```no_run
//! # async fn demo(cloud: &(impl kubecloud_core::Compute + kubecloud_core::BlockStorage
//! #     + kubecloud_core::Network + kubecloud_core::LoadBalancer)) {
//! use kubecloud_core::conformance::{self, Params, Target};
//! let report = conformance::run_all(&Target::all(cloud), "conf", &Params::default()).await;
//! report.assert_nothing_skipped();
//! # }
//! ```
//!
//! Resources that exist outside a tenant (external address pools may not overlap anywhere) are
//! kept apart by carving [`Params::pool_cidr`] and [`Params::subnet_cidr`] into one block per
//! check, so a check that failed and left things behind does not break the next one.

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;

use crate::addr::{ip_to_u128, u128_to_ip};
use crate::error::{Error, ResourceKind, Result};
use crate::name::{Labels, Tenant};
use crate::size::ByteSize;
use crate::wait::{self, Check, Observed};
use crate::{BlockStorage, Compute, IpNet, LoadBalancer, Network};

pub mod catalog;
pub mod compute;
pub mod hotplug;
pub mod isolation;
pub mod loadbalancer;
pub mod network;
pub mod ports;
pub mod quota;
pub mod storage;

pub use ports::PortProbe;

/// The backends under test. A check needing a missing trait is skipped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Target<'a> {
    /// The compute backend.
    pub compute: Option<&'a dyn Compute>,
    /// The block-storage backend.
    pub storage: Option<&'a dyn BlockStorage>,
    /// The network backend.
    pub network: Option<&'a dyn Network>,
    /// The load-balancer backend.
    pub load_balancer: Option<&'a dyn LoadBalancer>,
    /// What the network enforces on VM ports (checks of security groups in force skip
    /// without it).
    pub ports: Option<&'a dyn PortProbe>,
}

impl<'a> Target<'a> {
    /// One backend implementing all four traits (the in-memory cloud, say).
    pub fn all<T>(cloud: &'a T) -> Self
    where
        T: Compute + BlockStorage + Network + LoadBalancer,
    {
        Self {
            compute: Some(cloud),
            storage: Some(cloud),
            network: Some(cloud),
            load_balancer: Some(cloud),
            ports: None,
        }
    }

    /// The same target with a probe of what its network enforces on VM ports.
    pub fn with_ports(mut self, ports: &'a dyn PortProbe) -> Self {
        self.ports = Some(ports);
        self
    }

    /// The same target with a compute backend.
    pub fn with_compute(mut self, compute: &'a dyn Compute) -> Self {
        self.compute = Some(compute);
        self
    }

    /// The same target with a block-storage backend.
    pub fn with_storage(mut self, storage: &'a dyn BlockStorage) -> Self {
        self.storage = Some(storage);
        self
    }

    /// The same target with a network backend.
    pub fn with_network(mut self, network: &'a dyn Network) -> Self {
        self.network = Some(network);
        self
    }

    /// The same target with a load-balancer backend.
    pub fn with_load_balancer(mut self, load_balancer: &'a dyn LoadBalancer) -> Self {
        self.load_balancer = Some(load_balancer);
        self
    }
}

/// What the suite needs to know about the target.
#[derive(Clone, Debug)]
pub struct Params {
    /// The storage tier volumes are created in (`None`: the backend's default).
    pub tier: Option<String>,
    /// Another existing tier (`None`: the check using a second tier is skipped).
    pub second_tier: Option<String>,
    /// A block of tenant-subnet addresses the suite carves into one block per check: /24s (IPv6:
    /// /120s), at least 16 of them, so an IPv4 block must be a /20 or larger.
    pub subnet_cidr: IpNet,
    /// A block of external addresses, overlapping no pool the target has (or another test run
    /// creates), carved into one /28 (IPv6: /124) per check: at least 16 of them, so an IPv4 block
    /// must be a /24 or larger.
    pub pool_cidr: IpNet,
    /// An image URL the target imports successfully.
    pub import_url: String,
    /// An image URL the target fails to import.
    pub failing_import_url: String,
    /// The size of the volumes the suite creates.
    pub volume_size: ByteSize,
    /// The mode of the volumes the storage checks create (default block; filesystem for a
    /// backend serving filesystems only, such as CephFS or NFS).
    pub volume_mode: crate::VolumeMode,
    /// The guard of every wait: how long a state change may take at most.
    pub timeout: Duration,
    /// How many nodes the target has.
    pub nodes: usize,
}

impl Default for Params {
    /// The default tier, no second tier, subnets from `10.240.0.0/16`, pools from
    /// `198.51.100.0/24` (TEST-NET-2), imports from `https://images.example.com/cirros.qcow2`
    /// that fail from `https://images.example.invalid/missing.qcow2`, 1 GiB volumes, a 60 s
    /// timeout and 3 nodes.
    fn default() -> Self {
        Self {
            tier: None,
            second_tier: None,
            subnet_cidr: "10.240.0.0/16".parse().expect("valid CIDR"),
            pool_cidr: "198.51.100.0/24".parse().expect("valid CIDR"),
            import_url: "https://images.example.com/cirros.qcow2".into(),
            failing_import_url: "https://images.example.invalid/missing.qcow2".into(),
            volume_size: ByteSize::gib(1),
            volume_mode: crate::VolumeMode::Block,
            timeout: Duration::from_secs(60),
            nodes: 3,
        }
    }
}

/// How many blocks the suite carves from [`Params::subnet_cidr`] and [`Params::pool_cidr`].
const BLOCKS: usize = 16;

impl Params {
    /// The `index`-th tenant-subnet block (a /24 for IPv4, a /120 for IPv6).
    pub fn subnet_block(&self, index: usize) -> IpNet {
        carve(self.subnet_cidr, 8, index, "subnet_cidr")
    }

    /// The `index`-th external-address block (a /28 for IPv4, a /124 for IPv6).
    pub fn pool_block(&self, index: usize) -> IpNet {
        carve(self.pool_cidr, 4, index, "pool_cidr")
    }

    /// Panics naming the field if the address blocks are too small for the suite.
    pub fn assert_valid(&self) {
        self.subnet_block(BLOCKS - 1);
        self.pool_block(BLOCKS - 1);
    }
}

fn carve(net: IpNet, host_bits: u8, index: usize, field: &str) -> IpNet {
    assert!(index < BLOCKS, "block index {index} out of range");
    let prefix = net.max_prefix_len() - host_bits;
    net.subnets(prefix)
        .ok()
        .and_then(|mut blocks| blocks.nth(index))
        .unwrap_or_else(|| {
            panic!(
                "conformance params: {field} {net} is too small: the suite carves {BLOCKS} /{prefix} blocks from it"
            )
        })
}

/// The `n`-th address of `net` (0 is the network address).
pub fn host(net: IpNet, n: u128) -> IpAddr {
    u128_to_ip(ip_to_u128(net.network()) + n, net.network()).expect("address in family range")
}

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Every assertion held.
    Passed,
    /// The check did not run: the target lacks a trait or capability it needs (the reason).
    Skipped(String),
}

/// The outcome of a run: the checks that passed and those skipped, with why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Checks that ran and passed, as `group::check`.
    pub passed: Vec<&'static str>,
    /// Checks skipped, with the reason.
    pub skipped: Vec<(&'static str, String)>,
}

impl Report {
    /// Records the outcome of check `name`.
    pub fn record(&mut self, name: &'static str, outcome: Outcome) {
        match outcome {
            Outcome::Passed => self.passed.push(name),
            Outcome::Skipped(why) => self.skipped.push((name, why)),
        }
    }

    /// Adds another report's outcomes to this one.
    pub fn extend(&mut self, other: Report) {
        self.passed.extend(other.passed);
        self.skipped.extend(other.skipped);
    }

    /// Panics listing the skipped checks, if any (for targets with every capability).
    #[track_caller]
    pub fn assert_nothing_skipped(&self) {
        assert!(
            self.skipped.is_empty(),
            "conformance: {} check(s) skipped although the target should support them:\n{self}",
            self.skipped.len()
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} passed, {} skipped",
            self.passed.len(),
            self.skipped.len()
        )?;
        for name in &self.passed {
            writeln!(f, "  passed  {name}")?;
        }
        for (name, why) in &self.skipped {
            writeln!(f, "  skipped {name}: {why}")?;
        }
        Ok(())
    }
}

/// The tenant of check number `index`.
fn tenant_for(prefix: &str, index: usize, suffix: &str) -> Tenant {
    Tenant::new(format!("{prefix}-{index}{suffix}")).unwrap_or_else(|e| {
        panic!("conformance: tenant prefix {prefix:?} does not make valid tenant names: {e}")
    })
}

/// Runs each listed check in a fresh tenant, numbering tenants from `$base`.
macro_rules! run_checks {
    ($target:expr, $prefix:expr, $params:expr, $base:expr; $($module:ident :: $check:ident),* $(,)?) => {{
        let mut report = Report::default();
        let mut index: usize = $base;
        $(
            let tenant = tenant_for($prefix, index, "");
            index += 1;
            let name = concat!(stringify!($module), "::", stringify!($check));
            tracing::info!(check = name, tenant = %tenant, "conformance check");
            let outcome = $module::$check($target, &tenant, $params).await;
            report.record(name, outcome);
        )*
        let _ = index;
        report
    }};
}

/// Runs the block-storage checks (tenants `<prefix>-100` on).
pub async fn run_storage(target: &Target<'_>, tenant_prefix: &str, params: &Params) -> Report {
    params.assert_valid();
    run_checks!(target, tenant_prefix, params, 100;
        storage::create_get_list_delete,
        storage::invalid_spec_refused_and_nothing_created,
        storage::pools_report_capacity,
        storage::replicas_on_distinct_nodes,
        storage::more_replicas_than_nodes_refused,
        storage::unknown_tier_refused,
        storage::second_tier_used,
        storage::resize_grows_only,
        storage::snapshots_and_restore,
        storage::clone_copies_a_volume,
        storage::import_reaches_ready,
        storage::failing_import_fails_fast,
        storage::delete_in_use_needs_force,
    )
}

/// Runs the quota checks against `quotas`, the target's quota store (tenants `<prefix>-700`
/// on). Not part of [`run_all`]: a target keeps quotas only if it has a store.
pub async fn run_quotas(
    target: &Target<'_>,
    quotas: &dyn crate::Quotas,
    tenant_prefix: &str,
    params: &Params,
) -> Report {
    params.assert_valid();
    let mut report = Report::default();
    macro_rules! check {
        ($index:expr, $check:ident) => {
            let tenant = tenant_for(tenant_prefix, $index, "");
            let name = concat!("quota::", stringify!($check));
            tracing::info!(check = name, tenant = %tenant, "conformance check");
            report.record(name, quota::$check(target, quotas, &tenant, params).await);
        };
    }
    check!(700, set_and_get_round_trip);
    check!(701, vms_past_the_quota_refused_and_nothing_created);
    check!(702, volumes_past_the_quota_refused_and_nothing_created);
    report
}

/// Runs the network checks (tenants `<prefix>-200` on).
pub async fn run_network(target: &Target<'_>, tenant_prefix: &str, params: &Params) -> Report {
    params.assert_valid();
    run_checks!(target, tenant_prefix, params, 200;
        network::vpc_crud,
        network::subnet_crud_and_overlap,
        network::ip_reserve_and_release,
        network::fixed_ip_honoured_and_taken_refused,
        network::subnet_exhaustion_and_reuse,
        network::subnet_in_use_not_deleted,
        network::security_groups_crud,
        network::services_crud,
        network::external_access,
    )
}

/// Runs the compute checks (tenants `<prefix>-300` on).
pub async fn run_compute(target: &Target<'_>, tenant_prefix: &str, params: &Params) -> Report {
    params.assert_valid();
    run_checks!(target, tenant_prefix, params, 300;
        compute::apply_get_list_delete,
        compute::invalid_spec_refused_and_nothing_created,
        compute::missing_volume_or_subnet_refused,
        compute::apply_is_idempotent,
        compute::power_stop_start_restart,
        compute::runs_with_volume_and_fixed_ip,
        compute::migration_blockers_listed_and_migrate_refused,
        compute::live_migration_keeps_addresses,
        compute::migrate_to_named_node,
        compute::delete_releases_ip_and_imported_volume,
        compute::failing_import_fails_fast,
        compute::vm_snapshots_and_restore,
        hotplug::data_volumes_and_cpu_change_live_or_wait_for_restart,
        ports::security_groups_in_force_on_ports,
        catalog::catalog_images_boot_vms,
    )
}

/// Runs the load-balancer checks (tenants `<prefix>-400` on).
pub async fn run_load_balancer(
    target: &Target<'_>,
    tenant_prefix: &str,
    params: &Params,
) -> Report {
    params.assert_valid();
    run_checks!(target, tenant_prefix, params, 400;
        loadbalancer::pools_crud_and_overlap,
        loadbalancer::bgp_pool,
        loadbalancer::expose_auto_assigns,
        loadbalancer::requested_ip_honoured,
        loadbalancer::requested_ip_outside_pools_fails_fast,
        loadbalancer::tiny_pool_exhaustion_fails_fast,
        loadbalancer::ip_sharing,
        loadbalancer::usage_release_and_pool_deletion,
        loadbalancer::pool_changes_in_place,
    )
}

/// Runs the tenant-isolation checks, each with two fresh tenants (`<prefix>-500` and
/// `<prefix>-500b` on).
pub async fn run_isolation(target: &Target<'_>, tenant_prefix: &str, params: &Params) -> Report {
    params.assert_valid();
    let mut report = Report::default();
    macro_rules! pair {
        ($index:expr, $check:ident) => {{
            let a = tenant_for(tenant_prefix, $index, "");
            let b = tenant_for(tenant_prefix, $index, "b");
            let name = concat!("isolation::", stringify!($check));
            tracing::info!(check = name, tenant = %a, other = %b, "conformance check");
            report.record(name, isolation::$check(target, &a, &b, params).await);
        }};
    }
    pair!(500, storage);
    pair!(501, network);
    pair!(502, compute);
    pair!(503, load_balancer);
    report
}

/// Runs every check: storage, network, compute, load balancer, then tenant isolation. Panics on
/// the first violation.
pub async fn run_all(target: &Target<'_>, tenant_prefix: &str, params: &Params) -> Report {
    let mut report = run_storage(target, tenant_prefix, params).await;
    report.extend(run_network(target, tenant_prefix, params).await);
    report.extend(run_compute(target, tenant_prefix, params).await);
    report.extend(run_load_balancer(target, tenant_prefix, params).await);
    report.extend(run_isolation(target, tenant_prefix, params).await);
    report
}

// ---------------------------------------------------------------------------------------------
// Helpers shared by the checks.

/// Returns [`Outcome::Skipped`] from the check unless the option holds a value.
macro_rules! require {
    ($opt:expr, $why:expr) => {
        match $opt {
            Some(v) => v,
            None => return $crate::conformance::Outcome::Skipped(($why).to_string()),
        }
    };
}
pub(crate) use require;

/// Returns [`Outcome::Skipped`] from the check unless the condition holds.
macro_rules! require_that {
    ($cond:expr, $why:expr) => {
        if !$cond {
            return $crate::conformance::Outcome::Skipped(($why).to_string());
        }
    };
}
pub(crate) use require_that;

/// Unwrapping with context, for results that must succeed or fail.
pub(crate) trait Expect<T> {
    /// The value; panics naming `what` on an error.
    fn or_fail(self, what: impl fmt::Display) -> T;
    /// The error; panics naming `what` if the call succeeded.
    fn refused(self, what: impl fmt::Display) -> Error
    where
        T: fmt::Debug;
}

impl<T> Expect<T> for Result<T> {
    #[track_caller]
    fn or_fail(self, what: impl fmt::Display) -> T {
        match self {
            Ok(v) => v,
            Err(e) => panic!("conformance: {what}: unexpected error: {e} ({e:?})"),
        }
    }

    #[track_caller]
    fn refused(self, what: impl fmt::Display) -> Error
    where
        T: fmt::Debug,
    {
        match self {
            Ok(v) => panic!("conformance: {what}: expected a refusal, but it succeeded: {v:?}"),
            Err(e) => e,
        }
    }
}

/// Panics unless `err` is [`Error::NotFound`] of `kind` named `name`.
#[track_caller]
pub(crate) fn assert_not_found(err: &Error, kind: ResourceKind, name: &str, what: &str) {
    match err {
        Error::NotFound { kind: k, name: n } if *k == kind && n == name => {}
        other => panic!(
            "conformance: {what}: expected NotFound {{ {kind}, {name:?} }}, got: {other} ({other:?})"
        ),
    }
}

/// Panics unless `err` is [`Error::AlreadyExists`] of `kind` named `name`.
#[track_caller]
pub(crate) fn assert_already_exists(err: &Error, kind: ResourceKind, name: &str, what: &str) {
    match err {
        Error::AlreadyExists { kind: k, name: n } if *k == kind && n == name => {}
        other => panic!(
            "conformance: {what}: expected AlreadyExists {{ {kind}, {name:?} }}, got: {other} ({other:?})"
        ),
    }
}

/// Panics unless `err` is [`Error::Conflict`] (of `kind`, if given).
#[track_caller]
pub(crate) fn assert_conflict(err: &Error, kind: Option<ResourceKind>, what: &str) {
    match err {
        Error::Conflict { kind: k, .. } if kind.is_none_or(|kind| kind == *k) => {}
        other => panic!(
            "conformance: {what}: expected Conflict{}, got: {other} ({other:?})",
            kind.map(|k| format!(" about a {k}")).unwrap_or_default()
        ),
    }
}

/// Panics unless `err` is [`Error::InvalidInput`] naming `field`.
#[track_caller]
pub(crate) fn assert_invalid(err: &Error, field: &str, what: &str) {
    match err {
        Error::InvalidInput { field: f, .. } if f == field => {}
        other => panic!(
            "conformance: {what}: expected InvalidInput naming field {field:?}, got: {other} ({other:?})"
        ),
    }
}

/// Panics unless `err` is [`Error::Exhausted`] (of `kind`, if given).
#[track_caller]
pub(crate) fn assert_exhausted(err: &Error, kind: Option<ResourceKind>, what: &str) {
    match err {
        Error::Exhausted { kind: k, .. } if kind.is_none_or(|kind| kind == *k) => {}
        other => panic!(
            "conformance: {what}: expected Exhausted{}, got: {other} ({other:?})",
            kind.map(|k| format!(" of a {k}")).unwrap_or_default()
        ),
    }
}

/// Panics unless `err` is [`Error::Failed`] of `kind` named `name`; returns the reason.
#[track_caller]
pub(crate) fn assert_failed(err: Error, kind: ResourceKind, name: &str, what: &str) -> String {
    match err {
        Error::Failed {
            kind: k,
            name: n,
            reason,
        } if k == kind && n == name => reason,
        other => panic!(
            "conformance: {what}: expected Failed {{ {kind}, {name:?} }}, got: {other} ({other:?})"
        ),
    }
}

/// Labels from pairs.
pub(crate) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The names of `items`, in their order, for comparing lists.
pub(crate) fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| name(i).to_string()).collect()
}

/// Waits on `states` until `condition`, panicking with `what` on failure or timeout.
pub(crate) async fn wait_for<T, C>(
    states: Result<BoxStream<'static, Result<T>>>,
    condition: C,
    params: &Params,
    what: impl fmt::Display,
) -> T
where
    T: Observed + fmt::Debug,
    C: wait::Condition<T>,
{
    let states = states.or_fail(format_args!("{what}: opening the watch"));
    wait::until(states, condition, params.timeout)
        .await
        .or_fail(format_args!("{what}: waiting"))
}

/// Waits on `states` until a terminal failure, which must come in well under the timeout; returns
/// the error (the caller checks it is [`Error::Failed`]).
pub(crate) async fn wait_fails_fast<T, C>(
    states: Result<BoxStream<'static, Result<T>>>,
    condition: C,
    params: &Params,
    what: impl fmt::Display,
) -> Error
where
    T: Observed + fmt::Debug,
    C: wait::Condition<T>,
{
    let started = Instant::now();
    let states = states.or_fail(format_args!("{what}: opening the watch"));
    let err = wait::until(states, condition, params.timeout)
        .await
        .refused(format_args!("{what}: waiting for a terminal failure"));
    let took = started.elapsed();
    assert!(
        !matches!(err, Error::Timeout { .. }) && took < params.timeout / 2,
        "conformance: {what}: the failure should end the wait long before the {:?} timeout, but it took {took:?} and ended with: {err}",
        params.timeout
    );
    err
}

/// Waits until the watched resource is gone (its watch ends, or cannot be opened because it is
/// not found).
pub(crate) async fn wait_gone<T>(
    states: Result<BoxStream<'static, Result<T>>>,
    params: &Params,
    what: impl fmt::Display,
) where
    T: Observed + fmt::Debug,
{
    let states = match states {
        Err(e) if e.is_not_found() => return,
        other => other.or_fail(format_args!("{what}: opening the watch")),
    };
    let never = wait::condition("deletion", |_: &T| Check::Pending);
    match wait::until(states, never, params.timeout).await {
        Err(e) if e.is_not_found() => {}
        Err(e) => panic!("conformance: {what}: waiting for deletion: {e} ({e:?})"),
        Ok(v) => unreachable!("a condition that is never met was met: {v:?}"),
    }
}
