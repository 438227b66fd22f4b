//! [`TenantHandle`]: everything a tenant does, scoped to it.

use kubecloud_core::{Error, Quota, Result, Tenant, Usage, validate_name};

use crate::cloud::Cloud;
use crate::load_balancer::TenantLoadBalancer;
use crate::network::TenantNetwork;
use crate::vms::TenantVms;
use crate::volumes::TenantVolumes;

/// One tenant of a [`Cloud`]. Every call through it is scoped to this tenant: names are plain
/// DNS labels, so there is no way to name another tenant's resource.
///
/// Each call validates its input and checks the backend's capabilities before the backend is
/// called; refused calls send nothing.
///
/// ```
/// let acme = kubecloud::Cloud::in_memory().tenant("acme")?;
/// let _vms = acme.vms();
/// let _volumes = acme.volumes();
/// let _network = acme.network();
/// let _lb = acme.load_balancer();
/// # Ok::<(), kubecloud::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TenantHandle {
    cloud: Cloud,
    tenant: Tenant,
}

impl TenantHandle {
    pub(crate) fn new(cloud: Cloud, tenant: Tenant) -> Self {
        Self { cloud, tenant }
    }

    /// The cloud the tenant lives in.
    pub(crate) fn cloud(&self) -> &Cloud {
        &self.cloud
    }

    /// The tenant.
    pub fn name(&self) -> &Tenant {
        &self.tenant
    }

    /// The tenant's virtual machines.
    pub fn vms(&self) -> TenantVms<'_> {
        TenantVms::new(&self.cloud, &self.tenant)
    }

    /// The tenant's block volumes and snapshots.
    pub fn volumes(&self) -> TenantVolumes<'_> {
        TenantVolumes::new(&self.cloud, &self.tenant)
    }

    /// The tenant's VPCs, subnets, IP reservations, security groups and services.
    pub fn network(&self) -> TenantNetwork<'_> {
        TenantNetwork::new(&self.cloud, &self.tenant)
    }

    /// The tenant's address pools and exposures.
    pub fn load_balancer(&self) -> TenantLoadBalancer<'_> {
        TenantLoadBalancer::new(&self.cloud, &self.tenant)
    }

    /// Sets the tenant's quota (replacing the previous one; [`Quota::default`] removes every
    /// limit). Refused with [`Error::Unsupported`] on a cloud without a quota store. Lowering a
    /// limit below what the tenant holds removes nothing; further creates are refused.
    ///
    /// ```
    /// use kubecloud::{ByteSize, Cloud, Quota, QuotaResource, VolumeSpec};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud::Result<()> {
    /// let acme = Cloud::in_memory().tenant("acme")?;
    /// acme.set_quota(&Quota::default().with_volumes(1)).await?;
    /// acme.volumes().create(&VolumeSpec::blank("a", ByteSize::gib(1))).await?;
    /// let err = acme.volumes().create(&VolumeSpec::blank("b", ByteSize::gib(1))).await.unwrap_err();
    /// assert_eq!(err.quota_resource(), Some(&QuotaResource::Volumes));
    /// let usage = acme.usage().await?;
    /// assert_eq!(usage.line(&QuotaResource::Volumes).unwrap().to_string(), "volumes: 1 of 1");
    /// # Ok(()) }
    /// ```
    pub async fn set_quota(&self, quota: &Quota) -> Result<Quota> {
        quota.validate()?;
        let store = self
            .cloud
            .quotas
            .as_ref()
            .ok_or_else(|| crate::quota::no_store("tenant.set_quota"))?;
        store.set_quota(&self.tenant, quota).await
    }

    /// The tenant's quota (unlimited if none was set, or the cloud keeps none).
    pub async fn quota(&self) -> Result<Quota> {
        crate::quota::quota(&self.cloud, &self.tenant).await
    }

    /// What the tenant holds against its quota, one line per resource.
    pub async fn usage(&self) -> Result<Usage> {
        let (quota, used) = futures::try_join!(
            crate::quota::quota(&self.cloud, &self.tenant),
            crate::quota::consumption(&self.cloud, &self.tenant),
        )?;
        Ok(quota.usage(&used))
    }
}

/// Checks a resource name given to a get/delete-style call.
pub(crate) fn check_name(field: &str, name: &str) -> Result<()> {
    validate_name(field, name)
}

/// Refuses `operation` with [`Error::Unsupported`] unless the backend `has` the capability.
pub(crate) fn require(backend: &str, operation: &str, capability: &str, has: bool) -> Result<()> {
    if has {
        return Ok(());
    }
    tracing::debug!(
        backend,
        operation,
        capability,
        "refused before dispatch: capability missing"
    );
    Err(Error::unsupported(backend, operation, capability))
}
