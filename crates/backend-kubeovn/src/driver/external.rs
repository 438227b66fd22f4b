//! External access on Kube-OVN: `OvnEip`, `OvnFip`, `OvnSnatRule` (objects from
//! [`crate::external`]), with the same ownership checks and watch-based waits as the rest of the
//! driver.

use kube::api::{Api, DynamicObject};
use kubecloud_core::wait::Check;
use kubecloud_core::{
    Error, ExternalIp, ExternalIpSpec, FloatingIp, FloatingIpSpec, IpNet, ResourceKind, Result,
    SnatRule, SnatRuleSpec, Tenant,
};
use kubecloud_kube::names::cluster_scoped;
use serde_json::Value;

use super::{condition, to_value};
use crate::KubeOvn;
use crate::external::{self, eip_address, eip_claimed};
use crate::kinds::{self, EXTERNAL_IP_LABEL, RESERVATION_LABEL, SUBNET_NAME_LABEL};
use crate::translate::vip_name;

/// Ready with its address, failed when Kube-OVN says it could not allocate it.
fn eip_check(object: Option<&DynamicObject>) -> Check {
    let Some(o) = object.map(to_value) else {
        return Check::Pending;
    };
    if o["status"]["ready"] == true && eip_address(&o).is_some() {
        return Check::Met;
    }
    match condition(&o, "Ready") {
        Some((false, message)) if !message.is_empty() => Check::Failed(format!(
            "Kube-OVN could not allocate the address: {message}"
        )),
        _ => Check::Pending,
    }
}

/// Refuses with a conflict ("in use by ...") when `users` is not empty.
fn in_use(kind: ResourceKind, name: &str, users: &[String]) -> Result<()> {
    if users.is_empty() {
        return Ok(());
    }
    Err(Error::conflict(
        kind,
        name,
        format!("in use by {}", users.join(", ")),
    ))
}

fn nat_ready(object: Option<&DynamicObject>) -> Check {
    match object.map(to_value) {
        Some(o) if o["status"]["ready"] == true => Check::Met,
        _ => Check::Pending,
    }
}

impl KubeOvn {
    /// Applies a NAT object and waits for `check`; a object that never gets there is deleted
    /// again, so nothing half-made is left behind.
    async fn apply_and_wait(
        &self,
        api: &Api<DynamicObject>,
        object: Value,
        kind: ResourceKind,
        name: &str,
        check: fn(Option<&DynamicObject>) -> Check,
    ) -> Result<Value> {
        let object_name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.apply(api, object, kind, name).await?;
        match self
            .writer
            .wait_for(api, &object_name, kind, name, self.ready_timeout, check)
            .await
        {
            Ok(o) => Ok(to_value(&o)),
            Err(err) => {
                tracing::warn!(%kind, %name, error = %err, "not ready; deleting it");
                self.delete(api, &object_name, kind, name).await?;
                Err(err)
            }
        }
    }

    /// Refuses a requested external address outside the external subnet (when Kube-OVN's
    /// `Subnet` of that name is there to say) or held by any `OvnEip`.
    async fn check_requested(&self, spec: &ExternalIpSpec) -> Result<()> {
        let Some(ip) = spec.ip else { return Ok(()) };
        let kind = ResourceKind::ExternalIp;
        let subnets = self.cluster(&kinds::subnet());
        if let Some(subnet) = self
            .writer
            .get_opt(&subnets, &self.external_subnet, kind, &spec.name)
            .await?
        {
            let subnet = to_value(&subnet);
            let cidrs: Vec<IpNet> = subnet["spec"]["cidrBlock"]
                .as_str()
                .unwrap_or_default()
                .split(',')
                .filter_map(|c| c.trim().parse().ok())
                .collect();
            if !cidrs.is_empty() && !cidrs.iter().any(|c| c.contains(&ip)) {
                return Err(Error::invalid(
                    "ip",
                    format!(
                        "{ip} is outside the external subnet {:?} ({})",
                        self.external_subnet,
                        subnet["spec"]["cidrBlock"].as_str().unwrap_or_default()
                    ),
                ));
            }
        }
        let eips = self
            .list_any(&self.cluster(&kinds::ovn_eip()), "", kind, &spec.name)
            .await?;
        if eips.iter().any(|e| eip_claimed(e) == Some(ip)) {
            return Err(Error::conflict(
                kind,
                &spec.name,
                format!("{ip} is already taken"),
            ));
        }
        Ok(())
    }

    pub(super) async fn ext_create_external_ip(
        &self,
        tenant: &Tenant,
        spec: &ExternalIpSpec,
    ) -> Result<ExternalIp> {
        spec.validate()?;
        let kind = ResourceKind::ExternalIp;
        let api = self.cluster(&kinds::ovn_eip());
        let object = cluster_scoped(tenant, &spec.name);
        self.ensure_free(&api, &object, tenant, kind, &spec.name)
            .await?;
        self.check_requested(spec).await?;
        let desired = external::ovn_eip(tenant, spec, &self.external_subnet);
        let ready = self
            .apply_and_wait(&api, desired, kind, &spec.name, eip_check)
            .await?;
        let eip = external::external_ip_from(&ready)?;
        tracing::debug!(%tenant, external_ip = %spec.name, ip = ?eip.ip, %object, "external ip ready");
        Ok(eip)
    }

    pub(super) async fn ext_get_external_ip(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<ExternalIp> {
        let api = self.cluster(&kinds::ovn_eip());
        let object = self
            .owned(
                &api,
                &cluster_scoped(tenant, name),
                tenant,
                ResourceKind::ExternalIp,
                name,
            )
            .await?;
        external::external_ip_from(&object)
    }

    pub(super) async fn ext_list_external_ips(&self, tenant: &Tenant) -> Result<Vec<ExternalIp>> {
        self.list_owned(
            &self.cluster(&kinds::ovn_eip()),
            tenant,
            None,
            ResourceKind::ExternalIp,
        )
        .await?
        .iter()
        .map(external::external_ip_from)
        .collect()
    }

    /// The tenant's NAT objects of `resource` whose `label` says they use `value`, named for an
    /// "in use by ..." message (`what` is "floating ip" or "snat rule").
    pub(super) async fn nat_users(
        &self,
        tenant: &Tenant,
        resource: &kube::core::ApiResource,
        (label, value): (&str, &str),
        what: &str,
        kind: ResourceKind,
    ) -> Result<Vec<String>> {
        let selector = Some(format!("{label}={value}"));
        Ok(self
            .list_owned(&self.cluster(resource), tenant, selector, kind)
            .await?
            .iter()
            .filter_map(|o| o["metadata"]["labels"][kubecloud_kube::NAME].as_str())
            .map(|n| format!("{what} {n}"))
            .collect())
    }

    /// Refuses releasing reservation `name` while a floating IP binds it.
    pub(super) async fn ensure_reservation_unused(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<()> {
        let user = (&kinds::ovn_fip(), "floating ip", ResourceKind::FloatingIp);
        self.ensure_unused_by_nat(
            tenant,
            ResourceKind::IpReservation,
            name,
            RESERVATION_LABEL,
            user,
        )
        .await
    }

    /// Refuses deleting subnet `name` while a SNAT rule translates it.
    pub(super) async fn ensure_subnet_unused_by_nat(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<()> {
        let user = (&kinds::ovn_snat_rule(), "snat rule", ResourceKind::SnatRule);
        self.ensure_unused_by_nat(tenant, ResourceKind::Subnet, name, SUBNET_NAME_LABEL, user)
            .await
    }

    /// Refuses removing `kind` `name` while NAT objects of `user` (resource, noun, kind) carry
    /// `label=name`.
    async fn ensure_unused_by_nat(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        name: &str,
        label: &str,
        (resource, what, user_kind): (&kube::core::ApiResource, &str, ResourceKind),
    ) -> Result<()> {
        if !self.capabilities.external_access {
            // Without Kube-OVN's NAT kinds there is nothing that could use it.
            return Ok(());
        }
        let users = self
            .nat_users(tenant, resource, (label, name), what, user_kind)
            .await?;
        in_use(kind, name, &users)
    }

    pub(super) async fn ext_delete_external_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::ExternalIp;
        let api = self.cluster(&kinds::ovn_eip());
        let object_name = cluster_scoped(tenant, name);
        self.owned(&api, &object_name, tenant, kind, name).await?;
        let mut users: Vec<String> = Vec::new();
        for (resource, what, user_kind) in [
            (kinds::ovn_fip(), "floating ip", ResourceKind::FloatingIp),
            (kinds::ovn_snat_rule(), "snat rule", ResourceKind::SnatRule),
        ] {
            users.extend(
                self.nat_users(
                    tenant,
                    &resource,
                    (EXTERNAL_IP_LABEL, name),
                    what,
                    user_kind,
                )
                .await?,
            );
        }
        in_use(kind, name, &users)?;
        self.delete(&api, &object_name, kind, name).await?;
        self.wait_gone(api, &object_name, kind, name).await
    }

    pub(super) async fn ext_create_floating_ip(
        &self,
        tenant: &Tenant,
        spec: &FloatingIpSpec,
    ) -> Result<FloatingIp> {
        spec.validate()?;
        let kind = ResourceKind::FloatingIp;
        let api = self.cluster(&kinds::ovn_fip());
        let object = cluster_scoped(tenant, &spec.name);
        self.ensure_free(&api, &object, tenant, kind, &spec.name)
            .await?;
        self.owned(
            &self.cluster(&kinds::ovn_eip()),
            &cluster_scoped(tenant, &spec.external_ip),
            tenant,
            ResourceKind::ExternalIp,
            &spec.external_ip,
        )
        .await?;
        self.owned(
            &self.cluster(&kinds::vip()),
            &vip_name(tenant, &spec.reservation),
            tenant,
            ResourceKind::IpReservation,
            &spec.reservation,
        )
        .await?;
        for (label, value) in [
            (EXTERNAL_IP_LABEL, &spec.external_ip),
            (RESERVATION_LABEL, &spec.reservation),
        ] {
            let taken = self
                .list_owned(&api, tenant, Some(format!("{label}={value}")), kind)
                .await?;
            if let Some(other) = taken.first() {
                return Err(Error::conflict(
                    kind,
                    &spec.name,
                    format!(
                        "floating ip {} already binds {value:?} (one-to-one)",
                        other["metadata"]["labels"][kubecloud_kube::NAME]
                            .as_str()
                            .unwrap_or_default()
                    ),
                ));
            }
        }
        let ready = self
            .apply_and_wait(
                &api,
                external::ovn_fip(tenant, spec),
                kind,
                &spec.name,
                nat_ready,
            )
            .await?;
        external::floating_ip_from(&ready)
    }

    pub(super) async fn ext_list_floating_ips(&self, tenant: &Tenant) -> Result<Vec<FloatingIp>> {
        self.list_owned(
            &self.cluster(&kinds::ovn_fip()),
            tenant,
            None,
            ResourceKind::FloatingIp,
        )
        .await?
        .iter()
        .map(external::floating_ip_from)
        .collect()
    }

    pub(super) async fn ext_create_snat_rule(
        &self,
        tenant: &Tenant,
        spec: &SnatRuleSpec,
    ) -> Result<SnatRule> {
        spec.validate()?;
        let kind = ResourceKind::SnatRule;
        let api = self.cluster(&kinds::ovn_snat_rule());
        let object = cluster_scoped(tenant, &spec.name);
        self.ensure_free(&api, &object, tenant, kind, &spec.name)
            .await?;
        self.owned(
            &self.cluster(&kinds::ovn_eip()),
            &cluster_scoped(tenant, &spec.external_ip),
            tenant,
            ResourceKind::ExternalIp,
            &spec.external_ip,
        )
        .await?;
        self.owned(
            &self.cluster(&kinds::subnet()),
            &cluster_scoped(tenant, &spec.subnet),
            tenant,
            ResourceKind::Subnet,
            &spec.subnet,
        )
        .await?;
        let ready = self
            .apply_and_wait(
                &api,
                external::ovn_snat_rule(tenant, spec),
                kind,
                &spec.name,
                nat_ready,
            )
            .await?;
        external::snat_rule_from(&ready)
    }

    pub(super) async fn ext_list_snat_rules(&self, tenant: &Tenant) -> Result<Vec<SnatRule>> {
        self.list_owned(
            &self.cluster(&kinds::ovn_snat_rule()),
            tenant,
            None,
            ResourceKind::SnatRule,
        )
        .await?
        .iter()
        .map(external::snat_rule_from)
        .collect()
    }

    /// Deletes the tenant's `OvnFip` or `OvnSnatRule` behind `name`.
    pub(super) async fn ext_delete_nat(
        &self,
        tenant: &Tenant,
        resource: &kube::core::ApiResource,
        kind: ResourceKind,
        name: &str,
    ) -> Result<()> {
        let api = self.cluster(resource);
        let object_name = cluster_scoped(tenant, name);
        self.owned(&api, &object_name, tenant, kind, name).await?;
        self.delete(&api, &object_name, kind, name).await?;
        self.wait_gone(api, &object_name, kind, name).await
    }
}
