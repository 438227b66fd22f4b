//! The objects creating network resources makes, rendered instead of sent (GitOps output).
//!
//! Each method returns exactly what the matching [`kubecloud_core::Network`] call sends (the same
//! translation and labels; the attachment with the applied-hash annotation, as the driver
//! applies it), without sending anything. The checks against live state that creating does —
//! overlapping CIDRs of subnets outside the rendered set, addresses already held — are not made
//! here: they need the cluster. The spec's own rules are checked, naming the field.

use kube::api::DynamicObject;
use kubecloud_core::{
    Error, IpReservationSpec, Result, SecurityGroupSpec, ServiceSpec, SubnetSpec, Tenant, VpcSpec,
};
use kubecloud_kube::names;
use kubecloud_kube::render::{manifest, stamped};
use serde_json::Value;

use crate::{BACKEND, KubeOvn, translate};

impl KubeOvn {
    /// The `Vpc` of `spec`.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{Tenant, VpcSpec};
    /// let network = kubecloud_kubeovn::KubeOvn::builder(client).build();
    /// let objects = network.vpc_manifests(&Tenant::new("acme")?, &VpcSpec::named("main"))?;
    /// assert_eq!(objects[0]["metadata"]["name"], "acme-main");
    /// # Ok(()) }
    /// ```
    pub fn vpc_manifests(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vec<Value>> {
        spec.validate()?;
        Ok(vec![translate::vpc(tenant, spec)])
    }

    /// The `Subnet` of `spec`; a secondary subnet's Multus `NetworkAttachmentDefinition` first.
    pub fn subnet_manifests(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Vec<Value>> {
        spec.validate()?;
        let mut out = Vec::new();
        if spec.secondary {
            let nad: DynamicObject =
                serde_json::from_value(translate::attachment(tenant, &spec.name))
                    .map_err(|e| Error::backend(BACKEND, "building the attachment", false, e))?;
            out.push(manifest(BACKEND, &stamped(&nad))?);
        }
        out.push(translate::subnet(tenant, spec));
        Ok(out)
    }

    /// The `Vip` of reservation `spec` (kube-ovn-controller fills in what is not fixed).
    pub fn ip_reservation_manifests(
        &self,
        tenant: &Tenant,
        spec: &IpReservationSpec,
    ) -> Result<Vec<Value>> {
        spec.validate()?;
        let subnet_object = names::cluster_scoped(tenant, &spec.subnet);
        Ok(vec![translate::vip(tenant, spec, &subnet_object)])
    }

    /// The `SecurityGroup` of `spec` (SCTP rules refused, naming the rule).
    pub fn security_group_manifests(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<Vec<Value>> {
        spec.validate()?;
        Ok(vec![translate::security_group(tenant, spec)?])
    }

    /// The ClusterIP `Service` of `spec`.
    pub fn service_manifests(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Vec<Value>> {
        spec.validate()?;
        Ok(vec![translate::service(tenant, spec)])
    }

    /// How `interfaces` of a VM attach (what `attach_interfaces` answers), given the tenant's
    /// declared `reservations` (an interface fixing one's address takes its `Vip`), without
    /// checking the subnets and groups they name: for rendering a spec whose references are
    /// checked against the spec itself.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{NetworkInterface, Tenant};
    /// let network = kubecloud_kubeovn::KubeOvn::builder(client).build();
    /// let eth0 = NetworkInterface::on_subnet("eth0", "web");
    /// let attached = network.interface_attachments(&Tenant::new("acme")?, &[eth0], &[])?;
    /// assert_eq!(attached[0].interface, "eth0");
    /// # Ok(()) }
    /// ```
    pub fn interface_attachments(
        &self,
        tenant: &Tenant,
        interfaces: &[kubecloud_core::NetworkInterface],
        reservations: &[IpReservationSpec],
    ) -> Result<Vec<kubecloud_core::InterfaceAttachment>> {
        let reserved: Vec<_> = reservations
            .iter()
            .filter_map(crate::attach::Reserved::of_spec)
            .collect();
        crate::attach::attachments(tenant, interfaces, self.primary_binding, &reserved)
    }
}

impl kubecloud_kube::plugin::NetworkManifests for KubeOvn {
    fn vpc_manifests(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vec<Value>> {
        KubeOvn::vpc_manifests(self, tenant, spec)
    }

    fn subnet_manifests(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Vec<Value>> {
        KubeOvn::subnet_manifests(self, tenant, spec)
    }

    fn security_group_manifests(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<Vec<Value>> {
        KubeOvn::security_group_manifests(self, tenant, spec)
    }

    fn ip_reservation_manifests(
        &self,
        tenant: &Tenant,
        spec: &IpReservationSpec,
    ) -> Result<Vec<Value>> {
        KubeOvn::ip_reservation_manifests(self, tenant, spec)
    }

    fn service_manifests(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Vec<Value>> {
        KubeOvn::service_manifests(self, tenant, spec)
    }

    fn interface_attachments(
        &self,
        tenant: &Tenant,
        interfaces: &[kubecloud_core::NetworkInterface],
        reservations: &[IpReservationSpec],
    ) -> Result<Vec<kubecloud_core::InterfaceAttachment>> {
        KubeOvn::interface_attachments(self, tenant, interfaces, reservations)
    }
}
