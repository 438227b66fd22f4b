//! The objects creating pools and exposures makes, rendered instead of sent (GitOps output).
//!
//! The checks against live state that creating does (a pool overlapping any existing pool) need
//! the cluster and are not made here; the spec's own rules are.

use kubecloud_core::{AddressPoolSpec, AddressRequest, ExposureSpec, Result, Tenant};
use kubecloud_kube::render::manifest;
use serde_json::Value;

use crate::{BACKEND, Cilium, translate};

impl Cilium {
    /// The objects [`kubecloud_core::LoadBalancer::create_pool`] would send for `spec`, in the
    /// order it sends them, without sending anything: for a BGP pool with the speaker given to
    /// the builder, its `CiliumBGPPeerConfig`s and `CiliumBGPClusterConfig`; the
    /// `CiliumLoadBalancerIPPool`, then its `CiliumL2AnnouncementPolicy` or
    /// `CiliumBGPAdvertisement`. Whether a BGP pool's peers are the cluster's is not checked
    /// here (it needs the cluster).
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{AddressBlock, AddressPoolSpec, Tenant};
    /// let lb = kubecloud_cilium::Cilium::builder(client).build();
    /// let spec = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
    /// let objects = lb.pool_manifests(&Tenant::new("acme")?, &spec)?;
    /// assert_eq!(objects[0]["kind"], "CiliumLoadBalancerIPPool");
    /// assert_eq!(objects[1]["kind"], "CiliumL2AnnouncementPolicy");
    /// # Ok(()) }
    /// ```
    pub fn pool_manifests(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<Vec<Value>> {
        let objects = translate::pool_objects(tenant, spec)?;
        let mut out = vec![manifest(BACKEND, &objects.pool)?];
        if let Some(l2) = &objects.l2 {
            out.push(manifest(BACKEND, l2)?);
        }
        if let Some(bgp) = &objects.bgp {
            out.push(manifest(BACKEND, bgp)?);
        }
        if let (Some(speaker), kubecloud_core::Advertisement::Bgp(_)) =
            (&self.bgp, &spec.advertisement)
        {
            let (config, peers) = crate::bgp::cluster_objects(speaker)?;
            let mut first = Vec::new();
            for peer in &peers {
                first.push(manifest(BACKEND, peer)?);
            }
            first.push(manifest(BACKEND, &config)?);
            first.extend(out);
            out = first;
        }
        Ok(out)
    }

    /// The `Service` [`kubecloud_core::LoadBalancer::expose`] would send for `spec`, without
    /// sending anything. `tenant_pools` are the tenant's own pools: the Service is labelled with
    /// the named pool, the pool holding a requested address, or for any address the first
    /// auto-assigning pool by name (usage is not known here); single-stack IPv6 on a pool whose
    /// addresses are all IPv6, as the driver makes it.
    pub fn exposure_manifests(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        tenant_pools: &[AddressPoolSpec],
    ) -> Result<Vec<Value>> {
        let mut sorted: Vec<&AddressPoolSpec> = tenant_pools.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let pool = match &spec.address {
            AddressRequest::Pool(name) => sorted.into_iter().find(|p| &p.name == name),
            AddressRequest::Ip(ip) => sorted
                .into_iter()
                .find(|p| p.addresses.iter().any(|b| b.range().contains(*ip))),
            AddressRequest::Auto => sorted.into_iter().find(|p| p.auto_assign),
        };
        let label = match (&spec.address, pool) {
            (AddressRequest::Pool(name), None) => Some(name.as_str()),
            (_, p) => p.map(|p| p.name.as_str()),
        };
        let mut svc = translate::service(tenant, spec, label)?;
        if let Some(pool) = pool
            && !pool.addresses.is_empty()
            && pool.addresses.iter().all(|b| b.range().first.is_ipv6())
        {
            translate::single_stack_ipv6(&mut svc);
        }
        Ok(vec![manifest(BACKEND, &svc)?])
    }
}

impl kubecloud_kube::plugin::LoadBalancerManifests for Cilium {
    fn pool_manifests(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<Vec<Value>> {
        Cilium::pool_manifests(self, tenant, spec)
    }

    fn exposure_manifests(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        tenant_pools: &[AddressPoolSpec],
    ) -> Result<Vec<Value>> {
        Cilium::exposure_manifests(self, tenant, spec, tenant_pools)
    }
}
