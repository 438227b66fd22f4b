//! Tenant quotas in the memory cloud: kept per tenant, and enforced under the cloud's one lock
//! by every create (VMs, volumes and imported boot volumes, subnets, external IPs, exposures)
//! and by volume growth, so two concurrent creates can never both pass a limit (the cluster's
//! `ResourceQuota` admission does the same on Kubernetes).

use kubecloud_core::{
    Consumption, Quota, Quotas, Result, Tenant, VmResources, VmSpec, async_trait,
};

use crate::MemoryCloud;
use crate::state::State;

impl State {
    /// The default tier (the first pool).
    pub(crate) fn default_tier(&self) -> Option<&str> {
        self.storage_pools.first().map(|p| p.name.as_str())
    }

    /// What `tenant` holds: its VMs' vCPUs and memory, its volumes (imported boot volumes
    /// included) by tier, subnets, external IPs and exposures.
    pub(crate) fn consumption(&self, tenant: &Tenant) -> Consumption {
        let mut c = Consumption::none();
        let Some(t) = self.tenant(tenant) else {
            return c;
        };
        for vm in t.vms.values() {
            c.add(&vm_only(&vm.spec));
        }
        for volume in t.volumes.values() {
            let mut spec = volume.spec.clone();
            spec.size = volume.status.size.max(spec.size);
            let tier = self.storage_pools.get(volume.pool).map(|p| p.name.as_str());
            c.add(&Consumption::of_volume(&spec, tier));
        }
        c.subnets = t.subnets.len() as u64;
        c.public_addresses = (t.external_ips.len() + t.exposures.len()) as u64;
        c
    }

    /// Refuses `request` on top of what `tenant` holds if it passes the tenant's quota.
    pub(crate) fn check_quota(&self, tenant: &Tenant, request: &Consumption) -> Result<()> {
        match self.quotas.get(tenant) {
            Some(quota) if quota.concerns(request) => {
                quota.check(tenant.as_str(), &self.consumption(tenant), request)
            }
            _ => Ok(()),
        }
    }

    /// What applying `spec` takes on top of what its VM (if it exists) holds.
    pub(crate) fn vm_request(&self, tenant: &Tenant, spec: &VmSpec) -> Consumption {
        let new = Consumption::of_vm(spec, self.default_tier());
        match self.tenant(tenant).and_then(|t| t.vms.get(&spec.name)) {
            Some(old) => new.beyond(&Consumption::of_vm(&old.spec, self.default_tier())),
            None => new,
        }
    }
}

/// A VM's own consumption: its vCPUs and memory (its boot volume is a volume record).
fn vm_only(spec: &VmSpec) -> Consumption {
    let mut c = Consumption {
        vms: 1,
        ..Consumption::none()
    };
    match &spec.resources {
        VmResources::Custom { cpu_cores, memory } => {
            c.vcpus = u64::from(*cpu_cores);
            c.memory = memory.as_u64();
        }
        VmResources::InstanceType { .. } => c.uncounted_instance_types = 1,
    }
    c
}

#[async_trait]
impl Quotas for MemoryCloud {
    fn backend_name(&self) -> &str {
        "memory"
    }

    async fn get_quota(&self, tenant: &Tenant) -> Result<Quota> {
        Ok(self.lock().quotas.get(tenant).cloned().unwrap_or_default())
    }

    async fn set_quota(&self, tenant: &Tenant, quota: &Quota) -> Result<Quota> {
        quota.validate()?;
        let mut state = self.lock();
        if quota.is_unlimited() {
            state.quotas.remove(tenant);
        } else {
            state.quotas.insert(tenant.clone(), quota.clone());
        }
        tracing::debug!(%tenant, "quota set");
        Ok(quota.clone())
    }
}
