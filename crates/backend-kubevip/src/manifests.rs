//! The objects creating pools and exposures makes, rendered instead of sent (GitOps output).
//!
//! The checks against live state (overlaps with the ConfigMap's other entries, addresses in
//! use) need the cluster and are not made here; the spec's own rules are.

use kubecloud_core::{AddressPoolSpec, AddressRequest, ExposureSpec, Result, Tenant};
use kubecloud_kube::render::manifest;
use kubecloud_kube::tenant_namespace;
use serde_json::Value;

use crate::{BACKEND, KubeVip, translate};

impl KubeVip {
    /// The objects [`kubecloud_core::LoadBalancer::create_pool`] would send for `spec`, without
    /// sending anything: the provider's ConfigMap with only the tenant's keys and record. Apply
    /// it with server-side apply under a field manager of its own, so that the ConfigMap's
    /// other keys (other tenants', the administrator's) stay.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{AddressBlock, AddressPoolSpec, Tenant};
    /// let lb = kubecloud_kubevip::KubeVip::builder(client).build();
    /// let spec = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
    /// let objects = lb.pool_manifests(&Tenant::new("acme")?, &spec)?;
    /// assert_eq!(objects[0]["data"]["cidr-acme"], "203.0.113.0/28");
    /// # Ok(()) }
    /// ```
    pub fn pool_manifests(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<Vec<Value>> {
        translate::check_pool(spec, &self.settings)?;
        let ns = tenant_namespace(tenant);
        let mut patch = translate::pool_patch(&ns, Some(spec), None)?;
        if let Some(data) = patch["data"].as_object_mut() {
            data.retain(|_, v| !v.is_null());
        }
        let object = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.settings.config_map.1,
                "namespace": self.settings.config_map.0,
                "annotations": patch["metadata"]["annotations"],
            },
            "data": patch["data"],
        });
        let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(object)
            .map_err(|e| kubecloud_core::Error::backend(BACKEND, "ConfigMap", false, e))?;
        Ok(vec![manifest(BACKEND, &cm)?])
    }

    /// The `Service` [`kubecloud_core::LoadBalancer::expose`] would send for `spec`, without
    /// sending anything (a requested address as `kube-vip.io/loadbalancerIPs`; sharers are
    /// found on the live cluster only).
    pub fn exposure_manifests(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        _tenant_pools: &[AddressPoolSpec],
    ) -> Result<Vec<Value>> {
        let address = match &spec.address {
            AddressRequest::Ip(ip) => Some((*ip, false)),
            _ => None,
        };
        let svc = translate::service(
            tenant,
            spec,
            self.settings.load_balancer_class.as_deref(),
            address,
        )?;
        Ok(vec![manifest(BACKEND, &svc)?])
    }
}

impl kubecloud_kube::plugin::LoadBalancerManifests for KubeVip {
    fn pool_manifests(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<Vec<Value>> {
        KubeVip::pool_manifests(self, tenant, spec)
    }

    fn exposure_manifests(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        tenant_pools: &[AddressPoolSpec],
    ) -> Result<Vec<Value>> {
        KubeVip::exposure_manifests(self, tenant, spec, tenant_pools)
    }
}
