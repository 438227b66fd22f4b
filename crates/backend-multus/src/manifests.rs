//! The objects creating network resources makes, rendered instead of sent (GitOps output).
//!
//! Each method returns what the matching [`kubecloud_core::Network`] call sends, without
//! sending anything. What needs the cluster is not known here and is rendered as it would be on
//! a fresh one: a VPC's VLAN (the first of the range; claims are made by `create_vpc` only), a
//! subnet's reserved addresses (the declared reservations of the subnet), the networks a
//! security group applies to (none).

use kubecloud_core::{
    Error, InterfaceAttachment, IpReservationSpec, MacAddress, NetworkInterface, Result,
    SecurityGroupSpec, ServiceSpec, SubnetSpec, Tenant, VpcSpec,
};
use serde_json::Value;

use crate::attach::{self, Known, Reserved};
use crate::{BACKEND, Link, Multus, translate};

impl Multus {
    fn first_vlan(&self) -> Option<u16> {
        match &self.link {
            Link::Bridge { vlans, .. } => Some(*vlans.start()),
            Link::Macvtap { .. } => None,
        }
    }

    /// The VPC's ConfigMap (on the first VLAN of the range: the VLAN a fresh cluster gives).
    pub fn vpc_manifests(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vec<Value>> {
        spec.validate()?;
        if !spec.static_routes.is_empty() || !spec.peers.is_empty() {
            return Err(Error::unsupported(
                BACKEND,
                "network.create_vpc",
                "static_routes / vpc_peering",
            ));
        }
        Ok(vec![translate::vpc(tenant, &spec.name, self.first_vlan())])
    }

    /// The subnet's `NetworkAttachmentDefinition`.
    pub fn subnet_manifests(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Vec<Value>> {
        spec.validate()?;
        Ok(vec![translate::subnet_attachment(
            tenant,
            spec,
            &self.link,
            self.first_vlan(),
            &[],
        )])
    }

    /// A reservation needs its subnet's spec to render (its static attachment repeats the
    /// subnet's plugin and prefix): refused naming `subnet` when not given one.
    pub fn ip_reservation_manifests(
        &self,
        tenant: &Tenant,
        spec: &IpReservationSpec,
    ) -> Result<Vec<Value>> {
        spec.validate()?;
        let _ = tenant;
        Err(Error::unsupported(
            BACKEND,
            "gitops.ip_reservation",
            "rendering a reservation (its address and attachment come from the live subnet)",
        ))
    }

    /// The group's `MultiNetworkPolicy`.
    pub fn security_group_manifests(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<Vec<Value>> {
        spec.validate()?;
        Ok(vec![translate::security_group(tenant, spec, &[])?])
    }

    /// The ClusterIP `Service`.
    pub fn service_manifests(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Vec<Value>> {
        spec.validate()?;
        Ok(vec![translate::service(tenant, spec)])
    }

    /// How `interfaces` attach, given the declared `reservations` (an interface fixing one's
    /// address takes its attachment), references not checked.
    pub fn interface_attachments(
        &self,
        tenant: &Tenant,
        interfaces: &[NetworkInterface],
        reservations: &[IpReservationSpec],
    ) -> Result<Vec<InterfaceAttachment>> {
        let reserved: Vec<Reserved> = reservations
            .iter()
            .filter_map(|r| {
                Some(Reserved {
                    name: r.name.clone(),
                    subnet: r.subnet.clone(),
                    ip: r.ip?,
                    mac: r.mac.map(|m: MacAddress| m),
                })
            })
            .collect();
        attach::attachments(
            tenant,
            interfaces,
            &self.link,
            &Known {
                subnets: None,
                reservations: &reserved,
                groups: None,
            },
        )
    }
}

impl kubecloud_kube::plugin::NetworkManifests for Multus {
    fn vpc_manifests(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vec<Value>> {
        Multus::vpc_manifests(self, tenant, spec)
    }

    fn subnet_manifests(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Vec<Value>> {
        Multus::subnet_manifests(self, tenant, spec)
    }

    fn security_group_manifests(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<Vec<Value>> {
        Multus::security_group_manifests(self, tenant, spec)
    }

    fn ip_reservation_manifests(
        &self,
        tenant: &Tenant,
        spec: &IpReservationSpec,
    ) -> Result<Vec<Value>> {
        Multus::ip_reservation_manifests(self, tenant, spec)
    }

    fn service_manifests(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Vec<Value>> {
        Multus::service_manifests(self, tenant, spec)
    }

    fn interface_attachments(
        &self,
        tenant: &Tenant,
        interfaces: &[NetworkInterface],
        reservations: &[IpReservationSpec],
    ) -> Result<Vec<InterfaceAttachment>> {
        Multus::interface_attachments(self, tenant, interfaces, reservations)
    }
}
