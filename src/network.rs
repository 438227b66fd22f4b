//! [`TenantNetwork`]: a tenant's VPCs, subnets, IP reservations, security groups, services and
//! external access (external IPs, floating IPs, SNAT rules).

use futures::stream::BoxStream;
use kubecloud_core::{
    ExternalIp, ExternalIpSpec, FloatingIp, FloatingIpSpec, IpReservation, IpReservationSpec,
    Network, Result, SecurityGroup, SecurityGroupSpec, Service, ServiceSpec, SnatRule,
    SnatRuleSpec, Subnet, SubnetSpec, Tenant, Vpc, VpcSpec,
};

use crate::cloud::Cloud;
use crate::tenant::{check_name, require};

/// A tenant's networks (from [`crate::TenantHandle::network`]).
///
/// ```
/// use kubecloud::{Cloud, VpcSpec, SubnetSpec};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kubecloud::Result<()> {
/// let acme = Cloud::in_memory().tenant("acme")?;
/// let net = acme.network();
/// net.create_vpc(&VpcSpec::named("main")).await?;
/// net.create_subnet(&SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap())).await?;
/// // Overlapping CIDRs in one VPC are refused.
/// let clash = SubnetSpec::new("back", "main", "10.1.0.128/25".parse().unwrap());
/// assert!(net.create_subnet(&clash).await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TenantNetwork<'a> {
    backend: &'a dyn Network,
    cloud: &'a Cloud,
    tenant: &'a Tenant,
}

impl<'a> TenantNetwork<'a> {
    pub(crate) fn new(cloud: &'a Cloud, tenant: &'a Tenant) -> Self {
        Self {
            backend: &*cloud.network,
            cloud,
            tenant,
        }
    }

    fn require(&self, operation: &str, capability: &str, has: bool) -> Result<()> {
        require(self.backend.backend_name(), operation, capability, has)
    }

    /// Creates a VPC.
    pub async fn create_vpc(&self, spec: &VpcSpec) -> Result<Vpc> {
        spec.validate()?;
        let caps = self.backend.capabilities();
        if !spec.static_routes.is_empty() {
            self.require("network.create_vpc", "static_routes", caps.static_routes)?;
        }
        if !spec.peers.is_empty() {
            self.require("network.create_vpc", "vpc_peering", caps.vpc_peering)?;
        }
        self.backend.create_vpc(self.tenant, spec).await
    }

    /// The VPC named `name`.
    pub async fn get_vpc(&self, name: &str) -> Result<Vpc> {
        check_name("name", name)?;
        self.backend.get_vpc(self.tenant, name).await
    }

    /// The tenant's VPCs.
    pub async fn list_vpcs(&self) -> Result<Vec<Vpc>> {
        self.backend.list_vpcs(self.tenant).await
    }

    /// Deletes a VPC (refused while it has subnets).
    pub async fn delete_vpc(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.backend.delete_vpc(self.tenant, name).await
    }

    /// Creates a subnet (refused if it overlaps another of its VPC).
    pub async fn create_subnet(&self, spec: &SubnetSpec) -> Result<Subnet> {
        spec.validate()?;
        let caps = self.backend.capabilities();
        if spec.secondary {
            self.require(
                "network.create_subnet",
                "secondary_subnets",
                caps.secondary_subnets,
            )?;
        }
        if spec.cidr.addr().is_ipv6() {
            self.require("network.create_subnet", "ipv6", caps.ipv6)?;
        }
        crate::quota::check(
            self.cloud,
            self.tenant,
            &kubecloud_core::Consumption::subnets(1),
        )
        .await?;
        self.backend.create_subnet(self.tenant, spec).await
    }

    /// The subnet named `name`, with usage.
    pub async fn get_subnet(&self, name: &str) -> Result<Subnet> {
        check_name("name", name)?;
        self.backend.get_subnet(self.tenant, name).await
    }

    /// The subnet's state, with its usage, now and at every change, until it is deleted (see
    /// [`Network::watch_subnet`](kubecloud_core::Network::watch_subnet)).
    pub async fn watch_subnet(&self, name: &str) -> Result<BoxStream<'static, Result<Subnet>>> {
        check_name("name", name)?;
        self.backend.watch_subnet(self.tenant, name).await
    }

    /// The tenant's subnets.
    pub async fn list_subnets(&self) -> Result<Vec<Subnet>> {
        self.backend.list_subnets(self.tenant).await
    }

    /// Deletes a subnet (refused while addresses are in use).
    pub async fn delete_subnet(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.backend.delete_subnet(self.tenant, name).await
    }

    /// Reserves an address (and MAC) in a subnet.
    pub async fn reserve_ip(&self, spec: &IpReservationSpec) -> Result<IpReservation> {
        spec.validate()?;
        let caps = self.backend.capabilities();
        self.require("network.reserve_ip", "fixed_ips", caps.fixed_ips)?;
        if spec.mac.is_some() {
            self.require("network.reserve_ip", "fixed_macs", caps.fixed_macs)?;
        }
        self.backend.reserve_ip(self.tenant, spec).await
    }

    /// The reservation named `name`.
    pub async fn get_ip(&self, name: &str) -> Result<IpReservation> {
        check_name("name", name)?;
        self.backend.get_ip(self.tenant, name).await
    }

    /// The tenant's reservations, of one subnet or all.
    pub async fn list_ips(&self, subnet: Option<&str>) -> Result<Vec<IpReservation>> {
        if let Some(subnet) = subnet {
            check_name("subnet", subnet)?;
        }
        self.backend.list_ips(self.tenant, subnet).await
    }

    /// Releases a reservation.
    pub async fn release_ip(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.backend.release_ip(self.tenant, name).await
    }

    /// Creates a security group.
    pub async fn create_security_group(&self, spec: &SecurityGroupSpec) -> Result<SecurityGroup> {
        spec.validate()?;
        self.require(
            "network.create_security_group",
            "security_groups",
            self.backend.capabilities().security_groups,
        )?;
        self.backend.create_security_group(self.tenant, spec).await
    }

    /// The security group named `name`.
    pub async fn get_security_group(&self, name: &str) -> Result<SecurityGroup> {
        check_name("name", name)?;
        self.backend.get_security_group(self.tenant, name).await
    }

    /// The tenant's security groups.
    pub async fn list_security_groups(&self) -> Result<Vec<SecurityGroup>> {
        self.backend.list_security_groups(self.tenant).await
    }

    /// Replaces the rules of security group `spec.name` in place; the VM interfaces in it stay
    /// in it and get the new rules.
    pub async fn update_security_group(&self, spec: &SecurityGroupSpec) -> Result<SecurityGroup> {
        spec.validate()?;
        self.require(
            "network.update_security_group",
            "security_groups",
            self.backend.capabilities().security_groups,
        )?;
        self.backend.update_security_group(self.tenant, spec).await
    }

    /// Deletes a security group. Refused with [`kubecloud_core::Error::Conflict`] while a VM's
    /// interface names it, running or not (asked of the compute backend first; the network
    /// backend may refuse too).
    pub async fn delete_security_group(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        let users: Vec<String> = self
            .cloud
            .compute
            .list_vm_specs(self.tenant, &Default::default())
            .await?
            .into_iter()
            .filter(|vm| {
                vm.interfaces
                    .iter()
                    .any(|i| i.security_groups.iter().any(|g| g == name))
            })
            .map(|vm| vm.name)
            .collect();
        if !users.is_empty() {
            return Err(kubecloud_core::Error::conflict(
                kubecloud_core::ResourceKind::SecurityGroup,
                name,
                format!("VMs use the group: {}", users.join(", ")),
            ));
        }
        self.backend.delete_security_group(self.tenant, name).await
    }

    /// Creates an internal service.
    pub async fn create_service(&self, spec: &ServiceSpec) -> Result<Service> {
        spec.validate()?;
        self.require(
            "network.create_service",
            "services",
            self.backend.capabilities().services,
        )?;
        self.backend.create_service(self.tenant, spec).await
    }

    /// The service named `name`.
    pub async fn get_service(&self, name: &str) -> Result<Service> {
        check_name("name", name)?;
        self.backend.get_service(self.tenant, name).await
    }

    /// The tenant's services.
    pub async fn list_services(&self) -> Result<Vec<Service>> {
        self.backend.list_services(self.tenant).await
    }

    /// Deletes a service.
    pub async fn delete_service(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.backend.delete_service(self.tenant, name).await
    }

    fn require_external(&self, operation: &str) -> Result<()> {
        self.require(
            operation,
            "external_access",
            self.backend.capabilities().external_access,
        )
    }

    /// Allocates an address of the provider's external network (the next free one, or
    /// `spec.ip`). Needs the `external_access` capability.
    ///
    /// ```
    /// use kubecloud::{Cloud, ExternalIpSpec, FloatingIpSpec, IpReservationSpec, SubnetSpec, VpcSpec};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud::Result<()> {
    /// let acme = Cloud::in_memory().tenant("acme")?;
    /// let net = acme.network();
    /// net.create_vpc(&VpcSpec::named("main")).await?;
    /// net.create_subnet(&SubnetSpec::new("front", "main", "10.1.0.0/24".parse().unwrap())).await?;
    /// net.reserve_ip(&IpReservationSpec::new("web-eth0", "front")).await?;
    /// let eip = net.create_external_ip(&ExternalIpSpec::new("web")).await?;
    /// assert!(eip.ip.is_some());
    /// net.create_floating_ip(&FloatingIpSpec::new("web", "web", "web-eth0")).await?;
    /// // An external IP in use is not released.
    /// assert!(net.delete_external_ip("web").await.is_err());
    /// # Ok(()) }
    /// ```
    pub async fn create_external_ip(&self, spec: &ExternalIpSpec) -> Result<ExternalIp> {
        spec.validate()?;
        self.require_external("network.create_external_ip")?;
        crate::quota::check(
            self.cloud,
            self.tenant,
            &kubecloud_core::Consumption::public_addresses(1),
        )
        .await?;
        self.backend.create_external_ip(self.tenant, spec).await
    }

    /// The external IP named `name`.
    pub async fn get_external_ip(&self, name: &str) -> Result<ExternalIp> {
        check_name("name", name)?;
        self.require_external("network.get_external_ip")?;
        self.backend.get_external_ip(self.tenant, name).await
    }

    /// The tenant's external IPs.
    pub async fn list_external_ips(&self) -> Result<Vec<ExternalIp>> {
        self.require_external("network.list_external_ips")?;
        self.backend.list_external_ips(self.tenant).await
    }

    /// Releases an external IP (refused while a floating IP or SNAT rule uses it).
    pub async fn delete_external_ip(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.require_external("network.delete_external_ip")?;
        self.backend.delete_external_ip(self.tenant, name).await
    }

    /// Binds an external IP one-to-one to a reservation.
    pub async fn create_floating_ip(&self, spec: &FloatingIpSpec) -> Result<FloatingIp> {
        spec.validate()?;
        self.require_external("network.create_floating_ip")?;
        self.backend.create_floating_ip(self.tenant, spec).await
    }

    /// The tenant's floating IPs.
    pub async fn list_floating_ips(&self) -> Result<Vec<FloatingIp>> {
        self.require_external("network.list_floating_ips")?;
        self.backend.list_floating_ips(self.tenant).await
    }

    /// Deletes a floating IP (the external IP and the reservation stay).
    pub async fn delete_floating_ip(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.require_external("network.delete_floating_ip")?;
        self.backend.delete_floating_ip(self.tenant, name).await
    }

    /// Puts a subnet's outbound traffic behind an external IP.
    pub async fn create_snat_rule(&self, spec: &SnatRuleSpec) -> Result<SnatRule> {
        spec.validate()?;
        self.require_external("network.create_snat_rule")?;
        self.backend.create_snat_rule(self.tenant, spec).await
    }

    /// The tenant's SNAT rules.
    pub async fn list_snat_rules(&self) -> Result<Vec<SnatRule>> {
        self.require_external("network.list_snat_rules")?;
        self.backend.list_snat_rules(self.tenant).await
    }

    /// Deletes a SNAT rule (the external IP stays).
    pub async fn delete_snat_rule(&self, name: &str) -> Result<()> {
        check_name("name", name)?;
        self.require_external("network.delete_snat_rule")?;
        self.backend.delete_snat_rule(self.tenant, name).await
    }
}
