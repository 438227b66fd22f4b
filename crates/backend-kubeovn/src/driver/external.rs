//! External access on Kube-OVN: `OvnEip`, `OvnFip`, `OvnSnatRule` (objects from
//! [`crate::external`]), with the same ownership checks and watch-based waits as the rest of the
//! driver.

use kube::Resource;
use kubecloud_core::wait::Check;
use kubecloud_core::{
    Error, ExternalIp, ExternalIpSpec, FloatingIp, FloatingIpSpec, IpNet, ResourceKind, Result,
    SnatRule, SnatRuleSpec, Tenant,
};
use kubecloud_kube::names::cluster_scoped;
use kubecloud_models::kubeovn::{OvnEip, OvnFip, OvnSnatRule, Subnet as SubnetObject, Vip};
use serde_json::Value;

use super::{Object, condition};
use crate::KubeOvn;
use crate::external::{self, eip_address, eip_claimed, eip_ready};
use crate::kinds::{self, EXTERNAL_IP_LABEL, RESERVATION_LABEL, SUBNET_NAME_LABEL};
use crate::translate::{malformed, vip_name};

/// Ready with its address, failed when Kube-OVN says it could not allocate it (or writes an
/// address that is not one).
fn eip_check(object: Option<&OvnEip>) -> Check {
    let Some(o) = object else {
        return Check::Pending;
    };
    match eip_address(o) {
        Ok(Some(_)) if eip_ready(o) => return Check::Met,
        Ok(_) => {}
        Err(err) => return Check::Failed(err.to_string()),
    }
    let conditions = o.status.as_ref().and_then(|s| s.conditions.as_ref());
    match condition(conditions, "Ready") {
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

/// A NAT object's status, as far as readiness goes: each kind has its own generated type.
trait NatStatus {
    fn ready(&self) -> bool;
}

impl NatStatus for OvnFip {
    fn ready(&self) -> bool {
        self.status.as_ref().and_then(|s| s.ready) == Some(true)
    }
}

impl NatStatus for OvnSnatRule {
    fn ready(&self) -> bool {
        self.status.as_ref().and_then(|s| s.ready) == Some(true)
    }
}

fn nat_ready<K: NatStatus>(object: Option<&K>) -> Check {
    match object {
        Some(o) if o.ready() => Check::Met,
        _ => Check::Pending,
    }
}

impl KubeOvn {
    /// Applies a NAT object (named `object_name`, built as JSON, written through `resource`)
    /// and waits for `check`; an object that never gets there is deleted again, so nothing
    /// half-made is left behind.
    async fn apply_and_wait<K>(
        &self,
        resource: &kube::core::ApiResource,
        (object_name, object): (&str, Value),
        kind: ResourceKind,
        name: &str,
        check: fn(Option<&K>) -> Check,
    ) -> Result<K>
    where
        K: Object + Resource<Scope = k8s_openapi::ClusterResourceScope>,
    {
        let api = self.cluster::<K>();
        self.apply::<K>(&self.cluster_dynamic(resource), object, kind, name)
            .await?;
        match self
            .writer
            .wait_for(&api, object_name, kind, name, self.ready_timeout, check)
            .await
        {
            Ok(o) => Ok(o),
            Err(err) => {
                tracing::warn!(%kind, %name, error = %err, "not ready; deleting it");
                self.delete(&api, object_name, kind, name).await?;
                Err(err)
            }
        }
    }

    /// Refuses a requested external address outside the external subnet (when Kube-OVN's
    /// `Subnet` of that name is there to say) or held by any `OvnEip`.
    async fn check_requested(&self, spec: &ExternalIpSpec) -> Result<()> {
        let Some(ip) = spec.ip else { return Ok(()) };
        let kind = ResourceKind::ExternalIp;
        let subnets = self.cluster::<SubnetObject>();
        if let Some(subnet) = self
            .writer
            .get_opt(&subnets, &self.external_subnet, kind, &spec.name)
            .await?
        {
            // Without a `cidrBlock` there is nothing to check against.
            let block = subnet.spec.cidr_block.as_deref().unwrap_or_default();
            let cidrs = block
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(|c| {
                    c.parse::<IpNet>()
                        .map_err(|_| malformed(&subnet, "spec.cidrBlock", c))
                })
                .collect::<Result<Vec<_>>>()?;
            if !cidrs.is_empty() && !cidrs.iter().any(|c| c.contains(&ip)) {
                return Err(Error::invalid(
                    "ip",
                    format!(
                        "{ip} is outside the external subnet {:?} ({block})",
                        self.external_subnet,
                    ),
                ));
            }
        }
        let eips = self
            .list_any(&self.cluster::<OvnEip>(), "", kind, &spec.name)
            .await?;
        let mut claimed = Vec::with_capacity(eips.len());
        for eip in &eips {
            claimed.push(eip_claimed(eip)?);
        }
        if claimed.contains(&Some(ip)) {
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
        let api = self.cluster::<OvnEip>();
        let object = cluster_scoped(tenant, &spec.name);
        self.ensure_free(&api, &object, tenant, kind, &spec.name)
            .await?;
        self.check_requested(spec).await?;
        let desired = external::ovn_eip(tenant, spec, &self.external_subnet);
        let ready = self
            .apply_and_wait(
                &kinds::ovn_eip(),
                (&object, desired),
                kind,
                &spec.name,
                eip_check,
            )
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
        let api = self.cluster::<OvnEip>();
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
            &self.cluster::<OvnEip>(),
            tenant,
            None,
            ResourceKind::ExternalIp,
        )
        .await?
        .iter()
        .map(external::external_ip_from)
        .collect()
    }

    /// The tenant's NAT objects of kind `K` whose `label` says they use `value`, named for an
    /// "in use by ..." message (`what` is "floating ip" or "snat rule").
    pub(super) async fn nat_users<K>(
        &self,
        tenant: &Tenant,
        (key, value): (&str, &str),
        what: &str,
        kind: ResourceKind,
    ) -> Result<Vec<String>>
    where
        K: Object + Resource<Scope = k8s_openapi::ClusterResourceScope>,
    {
        let selector = Some(format!("{key}={value}"));
        self.list_owned(&self.cluster::<K>(), tenant, selector, kind)
            .await?
            .iter()
            .map(|o| Ok(format!("{what} {}", crate::translate::domain_name(o)?)))
            .collect()
    }

    /// Refuses releasing reservation `name` while a floating IP binds it.
    pub(super) async fn ensure_reservation_unused(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<()> {
        let user = ("floating ip", ResourceKind::FloatingIp);
        self.ensure_unused_by_nat::<OvnFip>(
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
        let user = ("snat rule", ResourceKind::SnatRule);
        self.ensure_unused_by_nat::<OvnSnatRule>(
            tenant,
            ResourceKind::Subnet,
            name,
            SUBNET_NAME_LABEL,
            user,
        )
        .await
    }

    /// Refuses removing `kind` `name` while NAT objects of kind `K` (`user`: noun, kind) carry
    /// `key=name`.
    async fn ensure_unused_by_nat<K>(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        name: &str,
        key: &str,
        (what, user_kind): (&str, ResourceKind),
    ) -> Result<()>
    where
        K: Object + Resource<Scope = k8s_openapi::ClusterResourceScope>,
    {
        if !self.capabilities.external_access {
            // Without Kube-OVN's NAT kinds there is nothing that could use it.
            return Ok(());
        }
        let users = self
            .nat_users::<K>(tenant, (key, name), what, user_kind)
            .await?;
        in_use(kind, name, &users)
    }

    pub(super) async fn ext_delete_external_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::ExternalIp;
        let api = self.cluster::<OvnEip>();
        let object_name = cluster_scoped(tenant, name);
        self.owned(&api, &object_name, tenant, kind, name).await?;
        let using = (EXTERNAL_IP_LABEL, name);
        let mut users = self
            .nat_users::<OvnFip>(tenant, using, "floating ip", ResourceKind::FloatingIp)
            .await?;
        users.extend(
            self.nat_users::<OvnSnatRule>(tenant, using, "snat rule", ResourceKind::SnatRule)
                .await?,
        );
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
        let api = self.cluster::<OvnFip>();
        let object = cluster_scoped(tenant, &spec.name);
        self.ensure_free(&api, &object, tenant, kind, &spec.name)
            .await?;
        self.owned(
            &self.cluster::<OvnEip>(),
            &cluster_scoped(tenant, &spec.external_ip),
            tenant,
            ResourceKind::ExternalIp,
            &spec.external_ip,
        )
        .await?;
        self.owned(
            &self.cluster::<Vip>(),
            &vip_name(tenant, &spec.reservation),
            tenant,
            ResourceKind::IpReservation,
            &spec.reservation,
        )
        .await?;
        for (key, value) in [
            (EXTERNAL_IP_LABEL, &spec.external_ip),
            (RESERVATION_LABEL, &spec.reservation),
        ] {
            let taken = self
                .list_owned(&api, tenant, Some(format!("{key}={value}")), kind)
                .await?;
            if let Some(other) = taken.first() {
                return Err(Error::conflict(
                    kind,
                    &spec.name,
                    format!(
                        "floating ip {} already binds {value:?} (one-to-one)",
                        crate::translate::domain_name(other)?
                    ),
                ));
            }
        }
        let ready = self
            .apply_and_wait(
                &kinds::ovn_fip(),
                (&object, external::ovn_fip(tenant, spec)),
                kind,
                &spec.name,
                nat_ready::<OvnFip>,
            )
            .await?;
        external::floating_ip_from(&ready)
    }

    pub(super) async fn ext_list_floating_ips(&self, tenant: &Tenant) -> Result<Vec<FloatingIp>> {
        self.list_owned(
            &self.cluster::<OvnFip>(),
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
        let api = self.cluster::<OvnSnatRule>();
        let object = cluster_scoped(tenant, &spec.name);
        self.ensure_free(&api, &object, tenant, kind, &spec.name)
            .await?;
        self.owned(
            &self.cluster::<OvnEip>(),
            &cluster_scoped(tenant, &spec.external_ip),
            tenant,
            ResourceKind::ExternalIp,
            &spec.external_ip,
        )
        .await?;
        self.owned(
            &self.cluster::<SubnetObject>(),
            &cluster_scoped(tenant, &spec.subnet),
            tenant,
            ResourceKind::Subnet,
            &spec.subnet,
        )
        .await?;
        let ready = self
            .apply_and_wait(
                &kinds::ovn_snat_rule(),
                (&object, external::ovn_snat_rule(tenant, spec)),
                kind,
                &spec.name,
                nat_ready::<OvnSnatRule>,
            )
            .await?;
        external::snat_rule_from(&ready)
    }

    pub(super) async fn ext_list_snat_rules(&self, tenant: &Tenant) -> Result<Vec<SnatRule>> {
        self.list_owned(
            &self.cluster::<OvnSnatRule>(),
            tenant,
            None,
            ResourceKind::SnatRule,
        )
        .await?
        .iter()
        .map(external::snat_rule_from)
        .collect()
    }

    /// Deletes the tenant's `OvnFip` or `OvnSnatRule` (`K`) behind `name`.
    pub(super) async fn ext_delete_nat<K>(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        name: &str,
    ) -> Result<()>
    where
        K: Object + Resource<Scope = k8s_openapi::ClusterResourceScope>,
    {
        let api = self.cluster::<K>();
        let object_name = cluster_scoped(tenant, name);
        self.owned(&api, &object_name, tenant, kind, name).await?;
        self.delete(&api, &object_name, kind, name).await?;
        self.wait_gone(api, &object_name, kind, name).await
    }
}
