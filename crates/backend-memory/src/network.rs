//! Networking as Kube-OVN does it: VPCs, subnets whose CIDRs may not overlap within a VPC,
//! IPAM with exclusions and reservations, security groups, and services with cluster IPs.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use futures::stream::BoxStream;
use kubecloud_core::ipam::AddressSpace;
use kubecloud_core::{
    Error, ExternalIp, ExternalIpSpec, FloatingIp, FloatingIpSpec, InterfaceAttachment,
    IpReservation, IpReservationSpec, Network, NetworkCapabilities, NetworkInterface, ResourceKind,
    Result, SecurityGroup, SecurityGroupSpec, Service, ServiceSpec, SnatRule, SnatRuleSpec, Subnet,
    SubnetSpec, Tenant, Vpc, VpcSpec, async_trait, cidrs_overlap, labels_match,
};

use crate::state::{State, TenantState, find, find_mut};
use crate::watch::Watchers;
use crate::{BACKEND, MemoryCloud};

/// A VPC and its subnets.
pub(crate) struct VpcRecord {
    spec: VpcSpec,
    subnets: BTreeSet<String>,
}

/// A subnet with its address space.
pub(crate) struct SubnetRecord {
    pub(crate) spec: SubnetSpec,
    /// Read here; changed only through [`SubnetRecord::allocate`], [`SubnetRecord::reserve`]
    /// and [`SubnetRecord::release`], which tell the subnet's watchers.
    pub(crate) space: AddressSpace,
    /// Reservation names by the address they hold.
    pub(crate) reservations: HashMap<IpAddr, String>,
    /// Subscribers of `watch_subnet`; dropped with the record, which ends their streams.
    watchers: Watchers<Subnet>,
}

impl SubnetRecord {
    /// Takes a free address for `holder`.
    pub(crate) fn allocate(&mut self, holder: &str) -> Result<IpAddr> {
        let ip = self.space.allocate(holder)?;
        self.usage_changed();
        Ok(ip)
    }

    /// Takes address `ip` for `holder`.
    pub(crate) fn reserve(&mut self, ip: IpAddr, holder: &str) -> Result<()> {
        self.space.reserve(ip, holder)?;
        self.usage_changed();
        Ok(())
    }

    /// Gives address `ip` back.
    pub(crate) fn release(&mut self, ip: IpAddr) {
        if self.space.release(ip).is_some() {
            self.usage_changed();
        }
    }

    fn usage_changed(&mut self) {
        // Taken out for the while, so that the view can read the record; built only if
        // someone watches.
        let mut watchers = std::mem::take(&mut self.watchers);
        watchers.publish(|| subnet_view(self));
        self.watchers = watchers;
    }
}

/// A security group and how many interfaces use it.
pub(crate) struct SgRecord {
    pub(crate) spec: SecurityGroupSpec,
    pub(crate) users: usize,
}

/// A service and its cluster IP.
pub(crate) struct ServiceRecord {
    spec: ServiceSpec,
    cluster_ip: IpAddr,
}

/// The holder of a reservation's address in its subnet's address space.
fn reservation_holder(name: &str) -> String {
    format!("reservation {name}")
}

fn vpc_view(record: &VpcRecord) -> Vpc {
    Vpc {
        spec: record.spec.clone(),
        ready: true,
        subnets: record.subnets.iter().cloned().collect(),
    }
}

fn subnet_view(record: &SubnetRecord) -> Subnet {
    Subnet {
        spec: record.spec.clone(),
        available: record.space.available(),
        used: record.space.used(),
        ready: true,
        incomplete: false,
    }
}

fn service_view(tenant: &Tenant, ts: &TenantState, record: &ServiceRecord) -> Service {
    Service {
        spec: record.spec.clone(),
        cluster_ip: Some(record.cluster_ip),
        dns_name: format!("{}.{tenant}.svc.cluster.local", record.spec.name),
        endpoints: ts
            .vms
            .values()
            .filter(|vm| labels_match(&record.spec.selector, &vm.spec.labels))
            .map(|vm| vm.spec.name.clone())
            .collect(),
    }
}

impl State {
    fn create_vpc(&mut self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vpc> {
        spec.validate()?;
        let ts = self.tenant_mut(tenant);
        if ts.vpcs.contains_key(&spec.name) {
            return Err(Error::already_exists(ResourceKind::Vpc, &spec.name));
        }
        let record = VpcRecord {
            spec: spec.clone(),
            subnets: BTreeSet::new(),
        };
        let vpc = vpc_view(&record);
        ts.vpcs.insert(spec.name.clone(), record);
        tracing::debug!(%tenant, vpc = %spec.name, "vpc created");
        Ok(vpc)
    }

    fn delete_vpc(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        let vpc = find(self.tenant(tenant), |t| &t.vpcs, ResourceKind::Vpc, name)?;
        if !vpc.subnets.is_empty() {
            let names: Vec<&str> = vpc.subnets.iter().map(String::as_str).collect();
            return Err(Error::conflict(
                ResourceKind::Vpc,
                name,
                format!("the VPC still has subnets: {}", names.join(", ")),
            ));
        }
        self.tenant_mut(tenant).vpcs.remove(name);
        Ok(())
    }

    fn create_subnet(&mut self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Subnet> {
        spec.validate()?;
        let ts = self.tenant(tenant);
        if ts.is_some_and(|t| t.subnets.contains_key(&spec.name)) {
            return Err(Error::already_exists(ResourceKind::Subnet, &spec.name));
        }
        let vpc = find(ts, |t| &t.vpcs, ResourceKind::Vpc, &spec.vpc)?;
        self.check_quota(tenant, &kubecloud_core::Consumption::subnets(1))?;
        for other in &vpc.subnets {
            if let Some(other) = ts.and_then(|t| t.subnets.get(other))
                && cidrs_overlap(other.spec.cidr, spec.cidr)
            {
                return Err(Error::conflict(
                    ResourceKind::Subnet,
                    &spec.name,
                    format!(
                        "{} overlaps subnet {:?} ({}) of VPC {:?}",
                        spec.cidr, other.spec.name, other.spec.cidr, spec.vpc
                    ),
                ));
            }
        }
        let record = SubnetRecord {
            spec: spec.clone(),
            space: AddressSpace::for_subnet(spec),
            reservations: HashMap::new(),
            watchers: Watchers::default(),
        };
        let subnet = subnet_view(&record);
        let ts = self.tenant_mut(tenant);
        if let Some(vpc) = ts.vpcs.get_mut(&spec.vpc) {
            vpc.subnets.insert(spec.name.clone());
        }
        ts.subnets.insert(spec.name.clone(), record);
        tracing::debug!(%tenant, subnet = %spec.name, cidr = %spec.cidr, "subnet created");
        Ok(subnet)
    }

    fn delete_subnet(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        let subnet = find(
            self.tenant(tenant),
            |t| &t.subnets,
            ResourceKind::Subnet,
            name,
        )?;
        if subnet.space.used() > 0 {
            return Err(Error::conflict(
                ResourceKind::Subnet,
                name,
                format!(
                    "{} address(es) are in use (VM interfaces or reservations)",
                    subnet.space.used()
                ),
            ));
        }
        let snats: Vec<String> = self
            .tenant(tenant)
            .into_iter()
            .flat_map(|t| t.snat_rules.values())
            .filter(|s| s.subnet == name)
            .map(|s| format!("snat rule {}", s.name))
            .collect();
        if !snats.is_empty() {
            return Err(Error::conflict(
                ResourceKind::Subnet,
                name,
                format!("in use by {}", snats.join(", ")),
            ));
        }
        let ts = self.tenant_mut(tenant);
        if let Some(record) = ts.subnets.remove(name)
            && let Some(vpc) = ts.vpcs.get_mut(&record.spec.vpc)
        {
            vpc.subnets.remove(name);
        }
        Ok(())
    }

    fn reserve_ip(&mut self, tenant: &Tenant, spec: &IpReservationSpec) -> Result<IpReservation> {
        spec.validate()?;
        let ts = self.tenant(tenant);
        if ts.is_some_and(|t| t.reservations.contains_key(&spec.name)) {
            return Err(Error::already_exists(
                ResourceKind::IpReservation,
                &spec.name,
            ));
        }
        let subnet = find(ts, |t| &t.subnets, ResourceKind::Subnet, &spec.subnet)?;
        if let Some(ip) = spec.ip {
            if !subnet.space.is_allocatable(ip) {
                return Err(Error::invalid(
                    "ip",
                    format!(
                        "{ip} is not an allocatable address of subnet {:?} ({}): outside it, \
                         excluded, or its network, gateway or broadcast",
                        spec.subnet, subnet.spec.cidr
                    ),
                ));
            }
            if let Some(holder) = subnet.space.holder(ip) {
                return Err(Error::conflict(
                    ResourceKind::IpReservation,
                    &spec.name,
                    format!("{ip} is already taken by {holder}"),
                ));
            }
        } else if subnet.space.available() == 0 {
            return Err(Error::exhausted(
                ResourceKind::Subnet,
                &spec.subnet,
                format!("all {} addresses are in use", subnet.space.capacity()),
            ));
        }
        if let Some(mac) = spec.mac
            && self.macs.contains(&mac)
        {
            return Err(Error::conflict(
                ResourceKind::IpReservation,
                &spec.name,
                format!("MAC {mac} is already in use"),
            ));
        }
        // Checked: taking the address and the MAC cannot fail now.
        let holder = reservation_holder(&spec.name);
        let sub = self
            .tenant_mut(tenant)
            .subnets
            .get_mut(&spec.subnet)
            .ok_or_else(|| Error::not_found(ResourceKind::Subnet, &spec.subnet))?;
        let ip = match spec.ip {
            Some(ip) => {
                sub.reserve(ip, &holder)?;
                ip
            }
            None => sub.allocate(&holder)?,
        };
        sub.reservations.insert(ip, spec.name.clone());
        let mac = match spec.mac {
            Some(mac) => {
                self.macs.insert(mac);
                mac
            }
            None => self.generate_mac(),
        };
        let reservation = IpReservation {
            name: spec.name.clone(),
            subnet: spec.subnet.clone(),
            ip,
            mac,
            owner: None,
        };
        self.tenant_mut(tenant)
            .reservations
            .insert(spec.name.clone(), reservation.clone());
        tracing::debug!(%tenant, reservation = %spec.name, %ip, "ip reserved");
        Ok(reservation)
    }

    fn release_ip(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        let reservation = find(
            self.tenant(tenant),
            |t| &t.reservations,
            ResourceKind::IpReservation,
            name,
        )?;
        if let Some(owner) = &reservation.owner {
            return Err(Error::conflict(
                ResourceKind::IpReservation,
                name,
                format!("the address is in use by {owner}; delete or change that VM first"),
            ));
        }
        if let Some(fip) = self
            .tenant(tenant)
            .into_iter()
            .flat_map(|t| t.floating_ips.values())
            .find(|f| f.reservation == name)
        {
            return Err(Error::conflict(
                ResourceKind::IpReservation,
                name,
                format!(
                    "in use by floating ip {}; delete that floating ip first",
                    fip.name
                ),
            ));
        }
        let ts = self.tenant_mut(tenant);
        let Some(reservation) = ts.reservations.remove(name) else {
            return Err(Error::not_found(ResourceKind::IpReservation, name));
        };
        if let Some(subnet) = ts.subnets.get_mut(&reservation.subnet) {
            subnet.release(reservation.ip);
            subnet.reservations.remove(&reservation.ip);
        }
        self.macs.remove(&reservation.mac);
        Ok(())
    }

    fn create_security_group(
        &mut self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        spec.validate()?;
        let ts = self.tenant_mut(tenant);
        if ts.security_groups.contains_key(&spec.name) {
            return Err(Error::already_exists(
                ResourceKind::SecurityGroup,
                &spec.name,
            ));
        }
        ts.security_groups.insert(
            spec.name.clone(),
            SgRecord {
                spec: spec.clone(),
                users: 0,
            },
        );
        Ok(SecurityGroup { spec: spec.clone() })
    }

    fn delete_security_group(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        let group = find(
            self.tenant(tenant),
            |t| &t.security_groups,
            ResourceKind::SecurityGroup,
            name,
        )?;
        if group.users > 0 {
            return Err(Error::conflict(
                ResourceKind::SecurityGroup,
                name,
                format!("{} VM interface(s) use the group", group.users),
            ));
        }
        self.tenant_mut(tenant).security_groups.remove(name);
        Ok(())
    }

    fn create_service(&mut self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Service> {
        spec.validate()?;
        if self
            .tenant(tenant)
            .is_some_and(|t| t.services.contains_key(&spec.name))
        {
            return Err(Error::already_exists(ResourceKind::Service, &spec.name));
        }
        let cluster_ip = self
            .service_network
            .allocate(&format!("{tenant}/{}", spec.name))?;
        let record = ServiceRecord {
            spec: spec.clone(),
            cluster_ip,
        };
        let ts = self.tenant_mut(tenant);
        let service = service_view(tenant, ts, &record);
        ts.services.insert(spec.name.clone(), record);
        tracing::debug!(%tenant, service = %spec.name, %cluster_ip, "service created");
        Ok(service)
    }

    fn delete_service(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        let record = self
            .tenants
            .get_mut(tenant)
            .and_then(|t| t.services.remove(name))
            .ok_or_else(|| Error::not_found(ResourceKind::Service, name))?;
        self.service_network.release(record.cluster_ip);
        Ok(())
    }
}

#[async_trait]
impl Network for MemoryCloud {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> NetworkCapabilities {
        NetworkCapabilities {
            vpc_isolation: true,
            static_routes: true,
            vpc_peering: true,
            fixed_ips: true,
            fixed_macs: true,
            secondary_subnets: true,
            security_groups: true,
            services: true,
            ipv6: true,
            external_access: true,
            fixed_ips_through_reservations: false,
            mac_pool: false,
        }
    }

    async fn create_vpc(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vpc> {
        self.lock().create_vpc(tenant, spec)
    }

    async fn get_vpc(&self, tenant: &Tenant, name: &str) -> Result<Vpc> {
        let state = self.lock();
        find(state.tenant(tenant), |t| &t.vpcs, ResourceKind::Vpc, name).map(vpc_view)
    }

    async fn list_vpcs(&self, tenant: &Tenant) -> Result<Vec<Vpc>> {
        let state = self.lock();
        Ok(state
            .tenant(tenant)
            .map(|t| t.vpcs.values().map(vpc_view).collect())
            .unwrap_or_default())
    }

    async fn delete_vpc(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().delete_vpc(tenant, name)
    }

    async fn create_subnet(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Subnet> {
        self.lock().create_subnet(tenant, spec)
    }

    async fn get_subnet(&self, tenant: &Tenant, name: &str) -> Result<Subnet> {
        let state = self.lock();
        find(
            state.tenant(tenant),
            |t| &t.subnets,
            ResourceKind::Subnet,
            name,
        )
        .map(subnet_view)
    }

    async fn watch_subnet(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Subnet>>> {
        let mut state = self.lock();
        let subnet = find_mut(
            state.tenants.get_mut(tenant),
            |t| &mut t.subnets,
            ResourceKind::Subnet,
            name,
        )?;
        let current = subnet_view(subnet);
        Ok(subnet.watchers.subscribe(current))
    }

    async fn list_subnets(&self, tenant: &Tenant) -> Result<Vec<Subnet>> {
        let state = self.lock();
        Ok(state
            .tenant(tenant)
            .map(|t| t.subnets.values().map(subnet_view).collect())
            .unwrap_or_default())
    }

    async fn delete_subnet(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().delete_subnet(tenant, name)
    }

    async fn reserve_ip(&self, tenant: &Tenant, spec: &IpReservationSpec) -> Result<IpReservation> {
        self.lock().reserve_ip(tenant, spec)
    }

    async fn get_ip(&self, tenant: &Tenant, name: &str) -> Result<IpReservation> {
        let state = self.lock();
        find(
            state.tenant(tenant),
            |t| &t.reservations,
            ResourceKind::IpReservation,
            name,
        )
        .cloned()
    }

    async fn list_ips(&self, tenant: &Tenant, subnet: Option<&str>) -> Result<Vec<IpReservation>> {
        let state = self.lock();
        Ok(state
            .tenant(tenant)
            .map(|t| {
                t.reservations
                    .values()
                    .filter(|r| subnet.is_none_or(|s| r.subnet == s))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn release_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().release_ip(tenant, name)
    }

    async fn attach_interfaces(
        &self,
        tenant: &Tenant,
        _vm: &str,
        interfaces: &[NetworkInterface],
    ) -> Result<Vec<InterfaceAttachment>> {
        self.lock().attach_interfaces(tenant, interfaces)
    }

    async fn create_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        self.lock().create_security_group(tenant, spec)
    }

    async fn update_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        spec.validate()?;
        let mut state = self.lock();
        let group = crate::state::find_mut(
            state.tenants.get_mut(tenant),
            |t| &mut t.security_groups,
            ResourceKind::SecurityGroup,
            &spec.name,
        )?;
        group.spec = spec.clone();
        Ok(SecurityGroup { spec: spec.clone() })
    }

    async fn get_security_group(&self, tenant: &Tenant, name: &str) -> Result<SecurityGroup> {
        let state = self.lock();
        find(
            state.tenant(tenant),
            |t| &t.security_groups,
            ResourceKind::SecurityGroup,
            name,
        )
        .map(|g| SecurityGroup {
            spec: g.spec.clone(),
        })
    }

    async fn list_security_groups(&self, tenant: &Tenant) -> Result<Vec<SecurityGroup>> {
        let state = self.lock();
        Ok(state
            .tenant(tenant)
            .map(|t| {
                t.security_groups
                    .values()
                    .map(|g| SecurityGroup {
                        spec: g.spec.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn delete_security_group(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().delete_security_group(tenant, name)
    }

    async fn create_service(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Service> {
        self.lock().create_service(tenant, spec)
    }

    async fn get_service(&self, tenant: &Tenant, name: &str) -> Result<Service> {
        let state = self.lock();
        let not_found = || Error::not_found(ResourceKind::Service, name);
        let ts = state.tenant(tenant).ok_or_else(not_found)?;
        let record = ts.services.get(name).ok_or_else(not_found)?;
        Ok(service_view(tenant, ts, record))
    }

    async fn list_services(&self, tenant: &Tenant) -> Result<Vec<Service>> {
        let state = self.lock();
        Ok(state
            .tenant(tenant)
            .map(|ts| {
                ts.services
                    .values()
                    .map(|r| service_view(tenant, ts, r))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn delete_service(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().delete_service(tenant, name)
    }

    async fn create_external_ip(
        &self,
        tenant: &Tenant,
        spec: &ExternalIpSpec,
    ) -> Result<ExternalIp> {
        self.lock().create_external_ip(tenant, spec)
    }

    async fn get_external_ip(&self, tenant: &Tenant, name: &str) -> Result<ExternalIp> {
        self.lock().get_external_ip(tenant, name)
    }

    async fn list_external_ips(&self, tenant: &Tenant) -> Result<Vec<ExternalIp>> {
        Ok(self.lock().list_external_ips(tenant))
    }

    async fn delete_external_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().delete_external_ip(tenant, name)
    }

    async fn create_floating_ip(
        &self,
        tenant: &Tenant,
        spec: &FloatingIpSpec,
    ) -> Result<FloatingIp> {
        self.lock().create_floating_ip(tenant, spec)
    }

    async fn list_floating_ips(&self, tenant: &Tenant) -> Result<Vec<FloatingIp>> {
        Ok(self.lock().list_floating_ips(tenant))
    }

    async fn delete_floating_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().delete_floating_ip(tenant, name)
    }

    async fn create_snat_rule(&self, tenant: &Tenant, spec: &SnatRuleSpec) -> Result<SnatRule> {
        self.lock().create_snat_rule(tenant, spec)
    }

    async fn list_snat_rules(&self, tenant: &Tenant) -> Result<Vec<SnatRule>> {
        Ok(self.lock().list_snat_rules(tenant))
    }

    async fn delete_snat_rule(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().delete_snat_rule(tenant, name)
    }
}
