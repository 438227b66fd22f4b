//! The objects creating pools and exposures makes, rendered instead of sent (GitOps output).
//!
//! The checks against live state that creating does (a pool overlapping any existing
//! `IPAddressPool`) need the cluster and are not made here; the spec's own rules are.

use kubecloud_core::{AddressPoolSpec, AddressRequest, ExposureSpec, Result, Tenant};
use kubecloud_kube::render::{manifest, stamped};
use serde_json::Value;

use crate::{BACKEND, MetalLb, translate};

impl MetalLb {
    /// The objects [`kubecloud_core::LoadBalancer::create_pool`] would send for `spec`, in the
    /// order it sends them, without sending anything: the BGP password `Secret`s (with the
    /// applied-hash annotation, as the driver applies them), BFD profiles, community and peers,
    /// the `IPAddressPool`, then its `L2Advertisement` or `BGPAdvertisement`.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{AddressBlock, AddressPoolSpec, Tenant};
    /// let lb = kubecloud_metallb::MetalLb::builder(client).build();
    /// let spec = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
    /// let objects = lb.pool_manifests(&Tenant::new("acme")?, &spec)?;
    /// assert_eq!(objects[0]["kind"], "IPAddressPool");
    /// assert_eq!(objects[1]["kind"], "L2Advertisement");
    /// # Ok(()) }
    /// ```
    pub fn pool_manifests(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<Vec<Value>> {
        let objects = translate::pool_objects(tenant, &self.namespace, spec)?;
        let mut out = Vec::new();
        for secret in &objects.secrets {
            out.push(manifest(BACKEND, &stamped(secret))?);
        }
        out.extend(objects.metallb_objects().into_iter().cloned());
        Ok(out)
    }

    /// The `Service` [`kubecloud_core::LoadBalancer::expose`] would send for `spec`, without
    /// sending anything. `tenant_pools` are the tenant's own pools (the rest of the rendered
    /// spec): a pool the exposure names that is not among them is taken to be one the cluster
    /// administrator shares, named by its object name; an exposure on a tenant pool whose
    /// addresses are all IPv6 is single-stack IPv6, as the driver makes it.
    pub fn exposure_manifests(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        tenant_pools: &[AddressPoolSpec],
    ) -> Result<Vec<Value>> {
        let mut svc = translate::service(tenant, spec)?;
        if let AddressRequest::Pool(name) = &spec.address {
            match tenant_pools.iter().find(|p| &p.name == name) {
                Some(pool) => {
                    if !pool.addresses.is_empty()
                        && pool.addresses.iter().all(|b| b.range().first.is_ipv6())
                    {
                        translate::single_stack_ipv6(&mut svc);
                    }
                }
                None => {
                    if let Some(a) = svc.metadata.annotations.as_mut() {
                        a.insert(translate::ADDRESS_POOL.to_string(), name.clone());
                    }
                }
            }
        }
        Ok(vec![manifest(BACKEND, &svc)?])
    }
}

impl kubecloud_kube::plugin::LoadBalancerManifests for MetalLb {
    fn pool_manifests(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<Vec<Value>> {
        MetalLb::pool_manifests(self, tenant, spec)
    }

    fn exposure_manifests(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        tenant_pools: &[AddressPoolSpec],
    ) -> Result<Vec<Value>> {
        MetalLb::exposure_manifests(self, tenant, spec, tenant_pools)
    }
}
