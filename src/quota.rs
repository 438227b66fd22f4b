//! kubecloud's own quota check: before a create is sent, what the tenant holds (read from the
//! backends) plus what the create asks for must stay within the tenant's [`Quota`]; otherwise
//! [`Error::QuotaExceeded`] and nothing is sent. On Kubernetes the tenant's `ResourceQuota`
//! enforces the namespaced part again at admission, so two creates racing past this check
//! still cannot both pass a limit; subnets and external IPs are cluster-scoped objects the
//! cluster cannot count, and rest on this check alone.

use kubecloud_core::{Consumption, Error, Quota, Result, Tenant, VmResources};

use crate::cloud::Cloud;

tokio::task_local! {
    /// Set while the steps of a plan run: the plan checked the whole change against the quota.
    static CHECKED_BY_PLAN: ();
}

/// Runs the steps of a plan without a quota check per create: the plan checked the tenant's
/// usage after the whole change against its quota when it was made (refusing it otherwise), so
/// reading the quota and listing everything the tenant holds again for each of its creates would
/// only cost requests (a 1,000-VM apply would send thousands of lists). What changed between
/// planning and applying is caught by the tenant's `ResourceQuota` on Kubernetes and by the
/// memory cloud's own check.
pub(crate) async fn checked_by_plan<F: std::future::Future>(steps: F) -> F::Output {
    CHECKED_BY_PLAN.scope((), steps).await
}

/// The quota a create is checked against: none (unlimited) inside [`checked_by_plan`], where
/// the plan checked it, else the tenant's.
pub(crate) async fn limits(cloud: &Cloud, tenant: &Tenant) -> Result<Quota> {
    if CHECKED_BY_PLAN.try_with(|()| ()).is_ok() {
        return Ok(Quota::default());
    }
    quota(cloud, tenant).await
}

/// The tenant's quota: the cloud's quota store's, or none (unlimited) without a store.
pub(crate) async fn quota(cloud: &Cloud, tenant: &Tenant) -> Result<Quota> {
    match &cloud.quotas {
        Some(store) => store.get_quota(tenant).await,
        None => Ok(Quota::default()),
    }
}

/// What the tenant holds, read from the backends: its VMs' vCPUs and memory, its volumes (by
/// tier, imported boot volumes included), subnets, external IPs and exposures.
pub(crate) async fn consumption(cloud: &Cloud, tenant: &Tenant) -> Result<Consumption> {
    let all = kubecloud_core::Labels::new();
    let network_caps = cloud.network.capabilities();
    let (vms, volumes, pools, subnets, exposures) = futures::try_join!(
        cloud.compute.list_vm_specs(tenant, &all),
        cloud.storage.list_volumes(tenant, &all),
        cloud.storage.list_pools(tenant),
        cloud.network.list_subnets(tenant),
        cloud.load_balancer.list_exposures(tenant),
    )?;
    let external_ips = if network_caps.external_access {
        cloud.network.list_external_ips(tenant).await?.len()
    } else {
        0
    };
    let default_tier = pools.iter().find(|p| p.default).map(|p| p.name.as_str());
    let mut c = Consumption::none();
    for vm in &vms {
        c.vms += 1;
        match &vm.resources {
            VmResources::Custom { cpu_cores, memory } => {
                c.vcpus += u64::from(*cpu_cores);
                c.memory = c.memory.saturating_add(memory.as_u64());
            }
            VmResources::InstanceType { .. } => c.uncounted_instance_types += 1,
        }
    }
    for volume in &volumes {
        let mut spec = volume.spec.clone();
        spec.size = spec.size.max(volume.status.size);
        c.add(&Consumption::of_volume(&spec, default_tier));
    }
    c.subnets = subnets.len() as u64;
    c.public_addresses = (external_ips + exposures.len()) as u64;
    Ok(c)
}

/// The default tier of the storage backend, if it names one.
pub(crate) async fn default_tier(cloud: &Cloud, tenant: &Tenant) -> Result<Option<String>> {
    Ok(cloud
        .storage
        .list_pools(tenant)
        .await?
        .into_iter()
        .find(|p| p.default)
        .map(|p| p.name))
}

/// Refuses `request` with [`Error::QuotaExceeded`] if it takes the tenant past its quota.
/// Reads nothing more than the quota when no limit concerns the request.
pub(crate) async fn check(cloud: &Cloud, tenant: &Tenant, request: &Consumption) -> Result<()> {
    let quota = limits(cloud, tenant).await?;
    if !quota.concerns(request) {
        return Ok(());
    }
    let used = consumption(cloud, tenant).await?;
    quota.check(tenant.as_str(), &used, request)
}

/// [`check`] of a request that depends on the storage backend's default tier (a volume or an
/// imported boot volume without a tier): the tier is read only when the tenant has a quota.
pub(crate) async fn check_tiered(
    cloud: &Cloud,
    tenant: &Tenant,
    request: impl FnOnce(Option<&str>) -> Consumption,
) -> Result<()> {
    let quota = limits(cloud, tenant).await?;
    if quota.is_unlimited() {
        return Ok(());
    }
    let tier = default_tier(cloud, tenant).await?;
    let request = request(tier.as_deref());
    if !quota.concerns(&request) {
        return Ok(());
    }
    let used = consumption(cloud, tenant).await?;
    quota.check(tenant.as_str(), &used, &request)
}

/// The error for a quota call on a cloud without a quota store.
pub(crate) fn no_store(operation: &str) -> Error {
    Error::unsupported("cloud", operation, "quotas")
}
