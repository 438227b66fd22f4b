//! [`TenantLoadBalancer`]: a tenant's address pools and exposures.

use std::time::Duration;

use futures::stream::BoxStream;
use kubecloud_core::wait::{self, Condition};
use kubecloud_core::{
    AddressPool, AddressPoolSpec, AddressRequest, Advertisement, Exposure, ExposureSpec,
    LoadBalancer, Result, Tenant,
};

use crate::tenant::{check_name, require};

/// A tenant's external addresses (from [`crate::TenantHandle::load_balancer`]).
///
/// ```
/// use std::time::Duration;
/// use kubecloud::{Cloud, AddressPoolSpec, AddressBlock, ExposureSpec, ServicePort};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kubecloud::Result<()> {
/// let acme = Cloud::in_memory().tenant("acme")?;
/// let lb = acme.load_balancer();
/// lb.create_pool(&AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/29".parse().unwrap())])).await?;
/// lb.expose(&ExposureSpec::new("web", [("app", "web")], vec![ServicePort::tcp(443)])).await?;
/// let web = lb.wait_assigned("web", Duration::from_secs(10)).await?;
/// assert!(web.ip.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TenantLoadBalancer<'a> {
    cloud: &'a crate::cloud::Cloud,
    backend: &'a dyn LoadBalancer,
    tenant: &'a Tenant,
}

impl<'a> TenantLoadBalancer<'a> {
    pub(crate) fn new(cloud: &'a crate::cloud::Cloud, tenant: &'a Tenant) -> Self {
        Self {
            cloud,
            backend: &*cloud.load_balancer,
            tenant,
        }
    }

    fn require(&self, operation: &str, capability: &str, has: bool) -> Result<()> {
        require(self.backend.backend_name(), operation, capability, has)
    }

    /// Creates an address pool owned by the tenant.
    pub async fn create_pool(&self, spec: &AddressPoolSpec) -> Result<AddressPool> {
        self.check_pool("load_balancer.create_pool", spec)?;
        self.backend.create_pool(self.tenant, spec).await
    }

    /// Changes a pool the tenant owns in place: its announcement (peers, their timers and
    /// passwords, communities) and `autoAssign`. A password rotation is an ordinary update;
    /// changing its addresses is refused naming the field (see [`LoadBalancer::update_pool`]).
    ///
    /// ```
    /// use kubecloud::{AddressBlock, AddressPoolSpec, Cloud};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud::Result<()> {
    /// let acme = Cloud::in_memory().tenant("acme")?;
    /// let lb = acme.load_balancer();
    /// let mut pool = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/29".parse().unwrap())]);
    /// lb.create_pool(&pool).await?;
    /// pool.auto_assign = false;
    /// assert!(!lb.update_pool(&pool).await?.spec.auto_assign);
    /// # Ok(()) }
    /// ```
    pub async fn update_pool(&self, spec: &AddressPoolSpec) -> Result<AddressPool> {
        self.check_pool("load_balancer.update_pool", spec)?;
        self.backend.update_pool(self.tenant, spec).await
    }

    /// The spec's own rules and the capabilities it needs, before anything is sent.
    fn check_pool(&self, op: &str, spec: &AddressPoolSpec) -> Result<()> {
        spec.validate()?;
        let caps = self.backend.capabilities();
        match &spec.advertisement {
            Advertisement::L2(_) => self.require(op, "l2", caps.l2)?,
            Advertisement::Bgp(bgp) => {
                self.require(op, "bgp", caps.bgp)?;
                if bgp.peers.iter().any(|p| p.bfd) {
                    self.require(op, "bfd", caps.bfd)?;
                }
            }
        }
        Ok(())
    }

    /// The pool named `name`, with usage.
    pub async fn get_pool(&self, name: &str) -> Result<AddressPool> {
        check_name("name", name)?;
        self.backend.get_pool(self.tenant, name).await
    }

    /// The pools the tenant may use.
    pub async fn list_pools(&self) -> Result<Vec<AddressPool>> {
        self.backend.list_pools(self.tenant).await
    }

    /// Deletes a pool (refused while addresses are assigned from it).
    pub async fn delete_pool(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.backend.delete_pool(self.tenant, name).await
    }

    /// Exposes VMs on an external address (assigned asynchronously; see
    /// [`TenantLoadBalancer::wait_assigned`]).
    pub async fn expose(&self, spec: &ExposureSpec) -> Result<Exposure> {
        spec.validate()?;
        let caps = self.backend.capabilities();
        if matches!(spec.address, AddressRequest::Ip(_)) {
            self.require("load_balancer.expose", "requested_ip", caps.requested_ip)?;
        }
        if spec.sharing_key.is_some() {
            self.require("load_balancer.expose", "ip_sharing", caps.ip_sharing)?;
        }
        crate::quota::check(
            self.cloud,
            self.tenant,
            &kubecloud_core::Consumption::public_addresses(1),
        )
        .await?;
        self.backend.expose(self.tenant, spec).await
    }

    /// The exposure named `name`.
    pub async fn get_exposure(&self, name: &str) -> Result<Exposure> {
        check_name("name", name)?;
        self.backend.get_exposure(self.tenant, name).await
    }

    /// The tenant's exposures.
    pub async fn list_exposures(&self) -> Result<Vec<Exposure>> {
        self.backend.list_exposures(self.tenant).await
    }

    /// Removes an exposure and frees its address.
    pub async fn release(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.backend.release(self.tenant, name).await
    }

    /// The exposure's state now and at every change.
    pub async fn watch(&self, name: &str) -> Result<BoxStream<'static, Result<Exposure>>> {
        check_name("name", name)?;
        self.backend.watch_exposure(self.tenant, name).await
    }

    /// Waits (on a watch) until `condition` holds, failing fast with the load balancer's reason.
    /// The whole wait, opening the watch included, ends by `timeout` (or by the
    /// [`Deadline`](wait::Deadline) of the operation it is part of, if earlier) with
    /// [`Error::Timeout`](crate::Error::Timeout) naming the exposure, the condition and its last
    /// state seen.
    pub async fn wait(
        &self,
        name: &str,
        condition: impl Condition<Exposure>,
        timeout: Duration,
    ) -> Result<Exposure> {
        wait::named(name, self.watch(name), condition, timeout).await
    }

    /// Waits until the exposure has its external address.
    pub async fn wait_assigned(&self, name: &str, timeout: Duration) -> Result<Exposure> {
        self.wait(name, wait::exposure_assigned(), timeout).await
    }
}
