//! External access from inside a VPC, as Kube-OVN's `OvnEip`/`OvnFip`/`OvnSnatRule` do it: one
//! external network shared by every tenant, external IPs allocated from it, floating IPs binding
//! one to a reservation, SNAT rules putting a subnet behind one.

use std::net::IpAddr;

use kubecloud_core::{
    Error, ExternalIp, ExternalIpSpec, FloatingIp, FloatingIpSpec, ResourceKind, Result, SnatRule,
    SnatRuleSpec, Tenant,
};

use crate::state::{EXTERNAL_CIDR, State, find};

/// An external IP and the address it holds.
pub(crate) struct ExternalIpRecord {
    spec: ExternalIpSpec,
    ip: IpAddr,
}

/// The holder of an external address in the shared external network.
fn holder(tenant: &Tenant, name: &str) -> String {
    format!("external ip {name} of {tenant}")
}

fn view(record: &ExternalIpRecord) -> ExternalIp {
    ExternalIp {
        spec: record.spec.clone(),
        ip: Some(record.ip),
        ready: true,
    }
}

impl State {
    pub(crate) fn create_external_ip(
        &mut self,
        tenant: &Tenant,
        spec: &ExternalIpSpec,
    ) -> Result<ExternalIp> {
        spec.validate()?;
        let kind = ResourceKind::ExternalIp;
        if self
            .tenant(tenant)
            .is_some_and(|t| t.external_ips.contains_key(&spec.name))
        {
            return Err(Error::already_exists(kind, &spec.name));
        }
        self.check_quota(tenant, &kubecloud_core::Consumption::public_addresses(1))?;
        let owner = holder(tenant, &spec.name);
        let ip = match spec.ip {
            Some(ip) => {
                let cidr: kubecloud_core::IpNet = EXTERNAL_CIDR
                    .parse()
                    .unwrap_or_else(|_| unreachable!("constant CIDR"));
                if !cidr.contains(&ip) {
                    return Err(Error::invalid(
                        "ip",
                        format!("{ip} is outside the external network {EXTERNAL_CIDR}"),
                    ));
                }
                self.external_network.reserve(ip, &owner)?;
                ip
            }
            None => self.external_network.allocate(&owner)?,
        };
        let record = ExternalIpRecord {
            spec: spec.clone(),
            ip,
        };
        let out = view(&record);
        self.tenant_mut(tenant)
            .external_ips
            .insert(spec.name.clone(), record);
        tracing::debug!(%tenant, external_ip = %spec.name, %ip, "external ip allocated");
        Ok(out)
    }

    pub(crate) fn get_external_ip(&self, tenant: &Tenant, name: &str) -> Result<ExternalIp> {
        find(
            self.tenant(tenant),
            |t| &t.external_ips,
            ResourceKind::ExternalIp,
            name,
        )
        .map(view)
    }

    pub(crate) fn list_external_ips(&self, tenant: &Tenant) -> Vec<ExternalIp> {
        self.tenant(tenant)
            .map(|t| t.external_ips.values().map(view).collect())
            .unwrap_or_default()
    }

    pub(crate) fn delete_external_ip(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::ExternalIp;
        let ts = self.tenant(tenant);
        let record = find(ts, |t| &t.external_ips, kind, name)?;
        let ip = record.ip;
        let users: Vec<String> = ts
            .into_iter()
            .flat_map(|t| {
                let fips = t
                    .floating_ips
                    .values()
                    .filter(|f| f.external_ip == name)
                    .map(|f| format!("floating ip {}", f.name));
                let snats = t
                    .snat_rules
                    .values()
                    .filter(|s| s.external_ip == name)
                    .map(|s| format!("snat rule {}", s.name));
                fips.chain(snats).collect::<Vec<_>>()
            })
            .collect();
        if !users.is_empty() {
            return Err(Error::conflict(
                kind,
                name,
                format!("in use by {}", users.join(", ")),
            ));
        }
        self.tenant_mut(tenant).external_ips.remove(name);
        self.external_network.release(ip);
        Ok(())
    }

    pub(crate) fn create_floating_ip(
        &mut self,
        tenant: &Tenant,
        spec: &FloatingIpSpec,
    ) -> Result<FloatingIp> {
        spec.validate()?;
        let kind = ResourceKind::FloatingIp;
        let ts = self.tenant(tenant);
        if ts.is_some_and(|t| t.floating_ips.contains_key(&spec.name)) {
            return Err(Error::already_exists(kind, &spec.name));
        }
        find(
            ts,
            |t| &t.external_ips,
            ResourceKind::ExternalIp,
            &spec.external_ip,
        )?;
        find(
            ts,
            |t| &t.reservations,
            ResourceKind::IpReservation,
            &spec.reservation,
        )?;
        if let Some(other) = ts
            .into_iter()
            .flat_map(|t| t.floating_ips.values())
            .find(|f| f.external_ip == spec.external_ip || f.reservation == spec.reservation)
        {
            return Err(Error::conflict(
                kind,
                &spec.name,
                format!(
                    "floating ip {:?} already binds external ip {:?} or reservation {:?}",
                    other.name, spec.external_ip, spec.reservation
                ),
            ));
        }
        self.tenant_mut(tenant)
            .floating_ips
            .insert(spec.name.clone(), spec.clone());
        Ok(FloatingIp {
            spec: spec.clone(),
            ready: true,
        })
    }

    pub(crate) fn list_floating_ips(&self, tenant: &Tenant) -> Vec<FloatingIp> {
        self.tenant(tenant)
            .map(|t| {
                t.floating_ips
                    .values()
                    .map(|spec| FloatingIp {
                        spec: spec.clone(),
                        ready: true,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn delete_floating_ip(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        find(
            self.tenant(tenant),
            |t| &t.floating_ips,
            ResourceKind::FloatingIp,
            name,
        )?;
        self.tenant_mut(tenant).floating_ips.remove(name);
        Ok(())
    }

    pub(crate) fn create_snat_rule(
        &mut self,
        tenant: &Tenant,
        spec: &SnatRuleSpec,
    ) -> Result<SnatRule> {
        spec.validate()?;
        let kind = ResourceKind::SnatRule;
        let ts = self.tenant(tenant);
        if ts.is_some_and(|t| t.snat_rules.contains_key(&spec.name)) {
            return Err(Error::already_exists(kind, &spec.name));
        }
        find(
            ts,
            |t| &t.external_ips,
            ResourceKind::ExternalIp,
            &spec.external_ip,
        )?;
        find(ts, |t| &t.subnets, ResourceKind::Subnet, &spec.subnet)?;
        self.tenant_mut(tenant)
            .snat_rules
            .insert(spec.name.clone(), spec.clone());
        Ok(SnatRule {
            spec: spec.clone(),
            ready: true,
        })
    }

    pub(crate) fn list_snat_rules(&self, tenant: &Tenant) -> Vec<SnatRule> {
        self.tenant(tenant)
            .map(|t| {
                t.snat_rules
                    .values()
                    .map(|spec| SnatRule {
                        spec: spec.clone(),
                        ready: true,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn delete_snat_rule(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        find(
            self.tenant(tenant),
            |t| &t.snat_rules,
            ResourceKind::SnatRule,
            name,
        )?;
        self.tenant_mut(tenant).snat_rules.remove(name);
        Ok(())
    }
}
