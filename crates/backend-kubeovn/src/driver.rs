//! The `Network` trait on Kube-OVN: thin; objects come from [`crate::translate`], checks from
//! [`crate::addresses`], and everything goes through `kubecloud-kube`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;

use futures::StreamExt;
use futures::future::ready;
use futures::stream::{self, BoxStream};
use k8s_openapi::api::core::v1::{Pod, Service as ServiceObject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::{Resource, ResourceExt};
use kubecloud_core::wait::{self, Check};
use kubecloud_core::{
    Error, ExternalIp, ExternalIpSpec, FloatingIp, FloatingIpSpec, InterfaceAttachment,
    IpReservation, IpReservationSpec, Network, NetworkCapabilities, NetworkInterface, ResourceKind,
    Result, SecurityGroup, SecurityGroupSpec, Service, ServiceSpec, SnatRule, SnatRuleSpec, Subnet,
    SubnetSpec, Tenant, Vpc, VpcSpec, async_trait,
};
use kubecloud_kube::names::{cluster_scoped, ensure_name_free_for};
use kubecloud_kube::{ensure_owned, is_owned, tenant_namespace, tenant_selector};
use kubecloud_models::kubeovn::subnet::SubnetStatus;
use kubecloud_models::kubeovn::{
    Ip, OvnFip, OvnSnatRule, SecurityGroup as SecurityGroupObject, Subnet as SubnetObject, Vip,
    Vpc as VpcObject,
};
use kubecloud_models::kubevirt::VirtualMachine;
use kubecloud_models::multus::NetworkAttachmentDefinition;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::addresses::{Held, check_reservation, refuse_overlap, terminating};
use crate::attach;
use crate::kinds::{
    self, CONTROLLER_FINALIZER, RESERVED_LABEL, SUBNET_LABEL, SUBNET_NAME_LABEL, VM_POD_LABEL,
    VPC_LABEL,
};
use crate::translate::{
    self, ip_is_vm, ip_owner, label, malformed, name_taken, vip_name, vip_owner,
};
use crate::{BACKEND, KubeOvn};

mod external;

/// A typed object this backend reads (a generated Kube-OVN, Multus or KubeVirt model, or a
/// core kind).
trait Object:
    Resource<DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static
{
}

impl<K> Object for K where
    K: Resource<DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static
{
}

fn to_dynamic(object: Value, kind: ResourceKind, name: &str) -> Result<DynamicObject> {
    serde_json::from_value(object).map_err(|e| {
        Error::backend(
            BACKEND,
            format!("could not build the object of {kind} {name:?}"),
            false,
            e,
        )
    })
}

/// A condition of a Kube-OVN status: each kind has its own generated type, alike.
trait Condition {
    fn parts(&self) -> (Option<&str>, Option<&str>, Option<&str>);
}

macro_rules! condition_type {
    ($($t:ty),*) => {$(
        impl Condition for $t {
            fn parts(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
                (self.r#type.as_deref(), self.status.as_deref(), self.message.as_deref())
            }
        }
    )*};
}

condition_type!(
    kubecloud_models::kubeovn::vpc::VpcStatusConditions,
    kubecloud_models::kubeovn::subnet::SubnetStatusConditions,
    kubecloud_models::kubeovn::ovn_eip::OvnEipStatusConditions
);

/// Whether condition `type_` is `True` (with its message), or absent.
fn condition<C: Condition>(conditions: Option<&Vec<C>>, type_: &str) -> Option<(bool, String)> {
    conditions?.iter().find_map(|c| {
        let (t, status, message) = c.parts();
        (t == Some(type_)).then(|| {
            (
                status == Some("True"),
                message.unwrap_or_default().to_string(),
            )
        })
    })
}

fn vpc_ready(object: &VpcObject) -> bool {
    let status = object.status.as_ref();
    condition(status.and_then(|s| s.conditions.as_ref()), "Ready").is_some_and(|(ok, _)| ok)
        || status.and_then(|s| s.standby) == Some(true)
}

fn subnet_condition(object: &SubnetObject, type_: &str) -> Option<(bool, String)> {
    condition(
        object.status.as_ref().and_then(|s| s.conditions.as_ref()),
        type_,
    )
}

/// A count of a subnet's status (a JSON number): `None` until Kube-OVN has written it; one that
/// is not a whole non-negative number is an error naming the field.
fn count(object: &SubnetObject, value: Option<f64>, field: &str) -> Result<Option<u128>> {
    match value {
        None => Ok(None),
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < u128::MAX as f64 => Ok(Some(f as u128)),
        Some(f) => Err(malformed(object, field, &f.to_string())),
    }
}

/// A subnet's usage for its family: (available, used) addresses, each `None` until Kube-OVN has
/// counted them.
fn usage(object: &SubnetObject) -> Result<(Option<u128>, Option<u128>)> {
    let status = object.status.as_ref();
    let field = |f: fn(&SubnetStatus) -> Option<f64>| status.and_then(f);
    if object.spec.protocol.as_deref() == Some("IPv6") {
        Ok((
            count(
                object,
                field(|s| s.v6available_i_ps),
                "status.v6availableIPs",
            )?,
            count(object, field(|s| s.v6using_i_ps), "status.v6usingIPs")?,
        ))
    } else {
        Ok((
            count(
                object,
                field(|s| s.v4available_i_ps),
                "status.v4availableIPs",
            )?,
            count(object, field(|s| s.v4using_i_ps), "status.v4usingIPs")?,
        ))
    }
}

fn subnet_check(object: Option<&SubnetObject>) -> Check {
    let Some(object) = object else {
        return Check::Pending;
    };
    if let Some((false, message)) = subnet_condition(object, "Validated") {
        return Check::Failed(format!("Kube-OVN refused the subnet: {message}"));
    }
    let available = match usage(object) {
        Ok((available, _)) => available,
        Err(err) => return Check::Failed(err.to_string()),
    };
    match subnet_condition(object, "Ready") {
        Some((true, _)) if available.is_some() => Check::Met,
        _ => Check::Pending,
    }
}

fn subnet_view(object: &SubnetObject) -> Result<Subnet> {
    let (available, used) = usage(object)?;
    Ok(Subnet {
        spec: translate::subnet_spec_from(object)?,
        // Not counted yet (a subnet Kube-OVN has not made ready): none.
        available: available.unwrap_or(0),
        used: used.unwrap_or(0),
        ready: subnet_condition(object, "Ready").is_some_and(|(ok, _)| ok),
        incomplete: false,
    })
}

/// Allocated by kube-ovn-controller: address and MAC in the status, and its finalizer on
/// (`createOrUpdateVipCR` writes them in one update).
fn vip_allocated(object: Option<&Vip>) -> Check {
    match object {
        Some(o)
            if translate::vip_allocated(o)
                && o.finalizers().iter().any(|f| f == CONTROLLER_FINALIZER) =>
        {
            Check::Met
        }
        _ => Check::Pending,
    }
}

/// The domain name of a reservation's subnet (its `Vip`'s [`SUBNET_NAME_LABEL`]).
fn vip_subnet(object: &Vip) -> Result<String> {
    label(&object.metadata, SUBNET_NAME_LABEL)
        .map(str::to_string)
        .ok_or_else(|| {
            malformed(
                object,
                "metadata.labels",
                &format!("no {SUBNET_NAME_LABEL} label"),
            )
        })
}

impl KubeOvn {
    /// A cluster-scoped kind's typed API.
    fn cluster<K>(&self) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = ClusterResourceScope>,
    {
        Api::all(self.client.clone())
    }

    /// A namespaced kind's typed API in the tenant's namespace.
    fn namespaced<K>(&self, tenant: &Tenant) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), &tenant_namespace(tenant))
    }

    /// The untyped API objects are written through (built as JSON by [`crate::translate`]).
    fn cluster_dynamic(&self, resource: &ApiResource) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), resource)
    }

    /// [`KubeOvn::cluster_dynamic`] for a namespaced kind, in the tenant's namespace.
    fn namespaced_dynamic(&self, resource: &ApiResource, tenant: &Tenant) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &tenant_namespace(tenant), resource)
    }

    /// The tenant's object, or `NotFound` when absent, being deleted, or another's.
    async fn owned<K: Object>(
        &self,
        api: &Api<K>,
        object: &str,
        tenant: &Tenant,
        kind: ResourceKind,
        name: &str,
    ) -> Result<K> {
        let got = self
            .writer
            .get_opt(api, object, kind, name)
            .await?
            .ok_or_else(|| Error::not_found(kind, name))?;
        ensure_owned(got.meta(), tenant, kind, name)?;
        if terminating(got.meta()) {
            return Err(Error::not_found(kind, name));
        }
        Ok(got)
    }

    /// Refuses a create when the object's name is held: by the tenant (`AlreadyExists`), by
    /// someone else (`Conflict`, without saying whose).
    async fn ensure_free<K: Object>(
        &self,
        api: &Api<K>,
        object: &str,
        tenant: &Tenant,
        kind: ResourceKind,
        name: &str,
    ) -> Result<()> {
        match self.writer.get_opt(api, object, kind, name).await? {
            None => Ok(()),
            // Held by another tenant's resource whose `tenant-name` spells the same, or by an
            // object kubecloud does not manage: a conflict saying so.
            Some(o) if !is_owned(o.meta(), tenant) => {
                Err(ensure_name_free_for(o.meta(), tenant, kind, name, object)
                    .err()
                    .unwrap_or_else(|| name_taken(kind, name, object)))
            }
            Some(o) if terminating(o.meta()) => Err(Error::conflict(
                kind,
                name,
                "a previous one of this name is still being deleted",
            )),
            Some(_) => Err(Error::already_exists(kind, name)),
        }
    }

    /// Every object the selector picks (not being deleted).
    async fn list_any<K: Object>(
        &self,
        api: &Api<K>,
        selector: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Vec<K>> {
        let params = ListParams::default().labels(selector);
        // Through the Writer: identical lists within one `shared_lists` scope are sent once.
        let list = self.writer.list_shared(api, &params, kind, name).await?;
        Ok(list
            .iter()
            .filter(|o| !terminating(o.meta()))
            .cloned()
            .collect())
    }

    /// The metadata of the tenant's pods the selector picks (not being deleted): who holds
    /// an address, uses a group or backs a service is all in it.
    async fn pods(
        &self,
        tenant: &Tenant,
        selector: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Vec<ObjectMeta>> {
        let params = ListParams::default().labels(selector);
        let list = self
            .writer
            .list_metadata(&self.namespaced::<Pod>(tenant), &params, kind, name)
            .await?;
        Ok(list
            .iter()
            .filter(|p| !terminating(&p.metadata))
            .map(|p| p.metadata.clone())
            .collect())
    }

    /// The tenant's objects (`extra` narrows the selector), ownership checked on each.
    async fn list_owned<K: Object>(
        &self,
        api: &Api<K>,
        tenant: &Tenant,
        extra: Option<String>,
        kind: ResourceKind,
    ) -> Result<Vec<K>> {
        let mut selector = tenant_selector(tenant);
        if let Some(extra) = extra {
            selector = format!("{selector},{extra}");
        }
        let objects = self.list_any(api, &selector, kind, tenant.as_str()).await?;
        Ok(objects
            .into_iter()
            .filter(|o| is_owned(o.meta(), tenant))
            .collect())
    }

    /// Applies `object` (built as JSON) through `api` and reads the answer as the model `K`.
    async fn apply<K: Object>(
        &self,
        api: &Api<DynamicObject>,
        object: Value,
        kind: ResourceKind,
        name: &str,
    ) -> Result<K> {
        let desired = to_dynamic(object, kind, name)?;
        let applied = self.writer.apply(api, &desired, kind, name).await?;
        kubecloud_kube::convert(&applied, BACKEND, kind, name)
    }

    async fn delete<K: Object>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<()> {
        self.writer.delete(api, object, kind, name).await.map(drop)
    }

    /// Waits until the object is gone (its finalizers done); a timeout names the finalizers
    /// still there.
    async fn wait_gone<K: Object>(
        &self,
        api: Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<()> {
        self.writer
            .wait_gone(&api, object, None, kind, name, self.ready_timeout)
            .await
    }

    /// The tenant's subnets, by VPC domain name.
    async fn subnets_by_vpc(
        &self,
        tenant: &Tenant,
        vpc: Option<&str>,
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let extra = vpc.map(|v| format!("{VPC_LABEL}={v}"));
        let subnets = self
            .list_owned(
                &self.cluster::<SubnetObject>(),
                tenant,
                extra,
                ResourceKind::Subnet,
            )
            .await?;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for s in &subnets {
            let vpc = label(&s.metadata, VPC_LABEL)
                .ok_or_else(|| malformed(s, "metadata.labels", "no VPC label"))?;
            let name = translate::domain_name(s)?;
            out.entry(vpc.to_string()).or_default().push(name);
        }
        for names in out.values_mut() {
            names.sort();
        }
        Ok(out)
    }

    fn vpc_view(object: &VpcObject, subnets: &BTreeMap<String, Vec<String>>) -> Result<Vpc> {
        let spec = translate::vpc_spec_from(object)?;
        Ok(Vpc {
            subnets: subnets.get(&spec.name).cloned().unwrap_or_default(),
            ready: vpc_ready(object),
            spec,
        })
    }

    /// Whether the pod or VM an `IP` is bound to still exists in the tenant's namespace.
    async fn owner_exists(&self, tenant: &Tenant, ip: &Ip) -> Result<bool> {
        let Some(owner) = ip_owner(ip) else {
            return Ok(false);
        };
        let pods = self.namespaced::<Pod>(tenant);
        let kind = ResourceKind::IpReservation;
        if ip_is_vm(ip) {
            let vms = self.namespaced::<VirtualMachine>(tenant);
            if self
                .writer
                .get_opt(&vms, &owner, kind, &owner)
                .await?
                .is_some()
            {
                return Ok(true);
            }
            let selector = format!("{VM_POD_LABEL}={owner}");
            return Ok(!self.pods(tenant, &selector, kind, &owner).await?.is_empty());
        }
        Ok(self
            .writer
            .get_opt(&pods, &owner, kind, &owner)
            .await?
            .is_some())
    }

    /// The tenant's subnets as (object name, spec).
    async fn subnet_objects(&self, tenant: &Tenant) -> Result<Vec<(String, SubnetSpec)>> {
        let subnets = self
            .list_owned(
                &self.cluster::<SubnetObject>(),
                tenant,
                None,
                ResourceKind::Subnet,
            )
            .await?;
        subnets
            .iter()
            .map(|s| Ok((translate::object_name(s)?, translate::subnet_spec_from(s)?)))
            .collect()
    }

    /// `IP` objects Kube-OVN made for the tenant's pods and VMs that are gone (it deletes them
    /// itself when it sees the workload go; these are the ones it missed). Reservations are
    /// `Vip`s, which Kube-OVN unbinds itself when the pod that took one goes (`releaseVip`):
    /// they are never reported here. Nothing is changed.
    ///
    /// ```no_run
    /// # async fn demo(network: &kubecloud_kubeovn::KubeOvn) -> kubecloud_core::Result<()> {
    /// let acme = kubecloud_core::Tenant::new("acme")?;
    /// for leaked in network.orphaned_ips(&acme).await? {
    ///     tracing::warn!(name = %leaked.name, ip = %leaked.ip, owner = ?leaked.owner, "leaked");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn orphaned_ips(&self, tenant: &Tenant) -> Result<Vec<IpReservation>> {
        Ok(self
            .orphans(tenant)
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    /// Frees what [`KubeOvn::orphaned_ips`] finds: deletes those `IP` objects. Returns what it
    /// reclaimed, once Kube-OVN has freed them (their `IP` objects are gone).
    pub async fn reclaim_orphaned_ips(&self, tenant: &Tenant) -> Result<Vec<IpReservation>> {
        let ips = self.cluster::<Ip>();
        let kind = ResourceKind::IpReservation;
        let mut reclaimed = Vec::new();
        for (leaked, object) in self.orphans(tenant).await? {
            let object_name = translate::object_name(&object)?;
            self.delete(&ips, &object_name, kind, &leaked.name).await?;
            // Kube-OVN frees the address, then drops the IP's finalizer: reclaimed means gone
            // (waited for on the shared watch of IPs, within the deadline).
            self.writer
                .wait_gone(
                    &ips,
                    &object_name,
                    object.metadata.uid.as_deref(),
                    kind,
                    &leaked.name,
                    self.ready_timeout,
                )
                .await?;
            tracing::info!(%tenant, ip = %leaked.ip, object = %object_name, owner = ?leaked.owner, "reclaimed an orphaned IP");
            reclaimed.push(leaked);
        }
        Ok(reclaimed)
    }

    async fn orphans(&self, tenant: &Tenant) -> Result<Vec<(IpReservation, Ip)>> {
        let subnets = self.subnet_objects(tenant).await?;
        if subnets.is_empty() {
            return Ok(Vec::new());
        }
        let by_object: BTreeMap<&str, &SubnetSpec> =
            subnets.iter().map(|(o, s)| (o.as_str(), s)).collect();
        let selector = format!(
            "{SUBNET_LABEL} in ({})",
            subnets
                .iter()
                .map(|(o, _)| o.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
        let ips = self
            .list_any(
                &self.cluster::<Ip>(),
                &selector,
                ResourceKind::IpReservation,
                tenant.as_str(),
            )
            .await?;
        let namespace = tenant_namespace(tenant);
        let mut out = Vec::new();
        for ip in ips {
            // Only IPs of the tenant's namespace: a subnet is the tenant's, and so are they.
            if ip.spec.namespace.as_deref() != Some(namespace.as_str())
                || ip_owner(&ip).is_none()
                || label(&ip.metadata, RESERVED_LABEL) == Some("true")
            {
                continue;
            }
            // Picked by the label of one of the tenant's subnets: its `spec.subnet` is one.
            let subnet = ip
                .spec
                .subnet
                .as_deref()
                .and_then(|s| by_object.get(s))
                .map(|s| s.name.clone())
                .ok_or_else(|| {
                    malformed(
                        &ip,
                        "spec.subnet",
                        ip.spec.subnet.as_deref().unwrap_or_default(),
                    )
                })?;
            let Some(leaked) = translate::pod_ip_from(&ip, &subnet)? else {
                continue;
            };
            if !self.owner_exists(tenant, &ip).await? {
                out.push((leaked, ip));
            }
        }
        Ok(out)
    }

    /// Whether the VM (or pod) `workload` of the tenant exists: a VM object or a pod of it.
    async fn workload_exists(&self, tenant: &Tenant, workload: &str) -> Result<bool> {
        let kind = ResourceKind::IpReservation;
        let vms = self.namespaced::<VirtualMachine>(tenant);
        if self
            .writer
            .get_opt(&vms, workload, kind, workload)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let pods = self.namespaced::<Pod>(tenant);
        if self
            .writer
            .get_opt(&pods, workload, kind, workload)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let selector = format!("{VM_POD_LABEL}={workload}");
        Ok(!self
            .pods(tenant, &selector, kind, workload)
            .await?
            .is_empty())
    }

    /// The tenant's reservations (allocated `Vip`s) of subnet `subnet` (domain name), all of
    /// them when `None`, with their objects.
    async fn reservations(
        &self,
        tenant: &Tenant,
        subnet: Option<&str>,
    ) -> Result<Vec<(IpReservation, Vip)>> {
        let extra = subnet.map(|s| format!("{SUBNET_NAME_LABEL}={s}"));
        let objects = self
            .list_owned(
                &self.cluster::<Vip>(),
                tenant,
                extra,
                ResourceKind::IpReservation,
            )
            .await?;
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            // Not yet allocated: not a reservation yet.
            if let Some(r) = translate::reservation_from(&o, &vip_subnet(&o)?)? {
                out.push((r, o));
            }
        }
        Ok(out)
    }
}

impl KubeOvn {
    /// Sends security group `spec` as `desired` (checked and translated, its name free or the
    /// tenant's): its remote groups must be the tenant's.
    async fn apply_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
        desired: Value,
    ) -> Result<SecurityGroup> {
        let kind = ResourceKind::SecurityGroup;
        let api = self.cluster::<SecurityGroupObject>();
        for rule in spec.ingress.iter().chain(&spec.egress) {
            if let kubecloud_core::Remote::Group(group) = &rule.remote
                && group != &spec.name
            {
                self.owned(&api, &cluster_scoped(tenant, group), tenant, kind, group)
                    .await?;
            }
        }
        let created: SecurityGroupObject = self
            .apply(
                &self.cluster_dynamic(&kinds::security_group()),
                desired,
                kind,
                &spec.name,
            )
            .await?;
        Ok(SecurityGroup {
            spec: translate::security_group_spec_from(tenant, &created)?,
        })
    }
}

#[async_trait]
impl Network for KubeOvn {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> NetworkCapabilities {
        self.capabilities
    }

    fn kept_waits(&self) -> &'static [kubecloud_core::wait::KeptWait] {
        crate::KEPT_WAITS
    }

    async fn create_vpc(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vpc> {
        spec.validate()?;
        // A tenant's first write, even of a cluster-scoped object, makes sure its namespace is
        // kubecloud's for it: a foreign namespace (a system's, another team's) is refused before
        // anything of the tenant exists.
        kubecloud_kube::ensure_namespace(&self.client, &self.writer, tenant).await?;
        let kind = ResourceKind::Vpc;
        let api = self.cluster::<VpcObject>();
        let object = cluster_scoped(tenant, &spec.name);
        self.ensure_free(&api, &object, tenant, kind, &spec.name)
            .await?;
        let sent = self
            .apply::<VpcObject>(
                &self.cluster_dynamic(&kinds::vpc()),
                translate::vpc(tenant, spec),
                kind,
                &spec.name,
            )
            .await?;
        if !wait::controllers_awaited() {
            // Sent only (an apply without waiting): nothing later needs the VPC ready, Kube-OVN
            // takes a subnet of a VPC it has not set up yet and handles it once it has.
            return Self::vpc_view(&sent, &BTreeMap::new());
        }
        let ready = self
            .writer
            .wait_for(
                &api,
                &object,
                kind,
                &spec.name,
                self.ready_timeout,
                |o| match o {
                    Some(o) if vpc_ready(o) => Check::Met,
                    _ => Check::Pending,
                },
            )
            .await?;
        tracing::debug!(%tenant, vpc = %spec.name, %object, "vpc ready");
        Self::vpc_view(&ready, &BTreeMap::new())
    }

    async fn get_vpc(&self, tenant: &Tenant, name: &str) -> Result<Vpc> {
        let api = self.cluster::<VpcObject>();
        let object = self
            .owned(
                &api,
                &cluster_scoped(tenant, name),
                tenant,
                ResourceKind::Vpc,
                name,
            )
            .await?;
        let subnets = self.subnets_by_vpc(tenant, Some(name)).await?;
        Self::vpc_view(&object, &subnets)
    }

    async fn list_vpcs(&self, tenant: &Tenant) -> Result<Vec<Vpc>> {
        let vpcs = self
            .list_owned(
                &self.cluster::<VpcObject>(),
                tenant,
                None,
                ResourceKind::Vpc,
            )
            .await?;
        let subnets = self.subnets_by_vpc(tenant, None).await?;
        vpcs.iter().map(|v| Self::vpc_view(v, &subnets)).collect()
    }

    async fn delete_vpc(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::Vpc;
        let api = self.cluster::<VpcObject>();
        let object_name = cluster_scoped(tenant, name);
        let object = self.owned(&api, &object_name, tenant, kind, name).await?;
        let mut in_use: Vec<String> = self
            .subnets_by_vpc(tenant, Some(name))
            .await?
            .remove(name)
            .unwrap_or_default();
        // Subnets someone else put in the VPC count too (Kube-OVN lists them in the status,
        // which may still name a subnet just deleted: only live ones count).
        let subnets = self.cluster::<SubnetObject>();
        let listed = object.status.as_ref().and_then(|s| s.subnets.as_ref());
        for s in listed.into_iter().flatten() {
            if in_use.iter().any(|n| cluster_scoped(tenant, n) == *s) {
                continue;
            }
            if let Some(live) = self.writer.get_opt(&subnets, s, kind, name).await?
                && !terminating(live.meta())
            {
                in_use.push(s.clone());
            }
        }
        if !in_use.is_empty() {
            return Err(Error::conflict(
                kind,
                name,
                format!("the VPC still has subnets: {}", in_use.join(", ")),
            ));
        }
        self.delete(&api, &object_name, kind, name).await
    }

    async fn create_subnet(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Subnet> {
        spec.validate()?;
        if spec.secondary && !self.capabilities.secondary_subnets {
            return Err(Error::unsupported(
                BACKEND,
                "network.create_subnet (secondary)",
                "secondary_subnets",
            ));
        }
        let kind = ResourceKind::Subnet;
        kubecloud_kube::ensure_namespace(&self.client, &self.writer, tenant).await?;
        let api = self.cluster::<SubnetObject>();
        let object = cluster_scoped(tenant, &spec.name);
        // A secondary subnet whose attachment definition is missing (an interrupted create or
        // delete) is completed; any other subnet of that name is taken.
        let completing = match self
            .ensure_free(&api, &object, tenant, kind, &spec.name)
            .await
        {
            Err(e) if e.is_already_exists() => {
                let found = self.list_subnets(tenant).await?;
                if !found
                    .iter()
                    .any(|s| s.spec.name == spec.name && s.incomplete)
                {
                    return Err(e);
                }
                true
            }
            other => other.map(|()| false)?,
        };
        self.owned(
            &self.cluster::<VpcObject>(),
            &cluster_scoped(tenant, &spec.vpc),
            tenant,
            ResourceKind::Vpc,
            &spec.vpc,
        )
        .await?;
        let mut siblings = self
            .list_owned(
                &api,
                tenant,
                Some(format!("{VPC_LABEL}={}", spec.vpc)),
                kind,
            )
            .await?
            .iter()
            .map(translate::subnet_spec_from)
            .collect::<Result<Vec<_>>>()?;
        if completing {
            siblings.retain(|s| s.name != spec.name);
        }
        refuse_overlap(spec, &siblings)?;
        // The Subnet first, its attachment definition second: interrupted in between, the
        // subnet lists as incomplete (and is completed or removed), never a definition that
        // nothing lists.
        let sent = self
            .apply::<SubnetObject>(
                &self.cluster_dynamic(&kinds::subnet()),
                translate::subnet(tenant, spec),
                kind,
                &spec.name,
            )
            .await?;
        if spec.secondary {
            // Written as it is built (JSON), so the applied hash stays what it was.
            let nads = self.namespaced_dynamic(&kinds::attachment(), tenant);
            let nad_name = kubecloud_kube::names::attachment(&spec.name);
            let desired = to_dynamic(translate::attachment(tenant, &spec.name), kind, &spec.name)?;
            let current = self
                .writer
                .get_opt(&nads, &nad_name, kind, &spec.name)
                .await?;
            if let Some(current) = &current {
                ensure_owned(&current.metadata, tenant, kind, &spec.name)
                    .map_err(|_| name_taken(kind, &spec.name, &nad_name))?;
            }
            self.writer
                .apply_if_changed(&nads, current.as_ref(), &desired, kind, &spec.name)
                .await?;
        }
        if !wait::controllers_awaited() {
            // Sent only (an apply without waiting): VMs on the subnet can be sent before
            // Kube-OVN has set it up (their pods wait for it, as they would for any subnet).
            return subnet_view(&sent);
        }
        let ready = self
            .writer
            .wait_for(
                &api,
                &object,
                kind,
                &spec.name,
                self.ready_timeout,
                subnet_check,
            )
            .await?;
        tracing::debug!(%tenant, subnet = %spec.name, cidr = %spec.cidr, %object, "subnet ready");
        subnet_view(&ready)
    }

    async fn get_subnet(&self, tenant: &Tenant, name: &str) -> Result<Subnet> {
        let object = self
            .owned(
                &self.cluster::<SubnetObject>(),
                &cluster_scoped(tenant, name),
                tenant,
                ResourceKind::Subnet,
                name,
            )
            .await?;
        subnet_view(&object)
    }

    async fn watch_subnet(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Subnet>>> {
        // Through the shared watch of Subnets (one for all subnets and waits): Kube-OVN writes
        // the usage into the Subnet's status, so every address taken or given back is a change.
        let object = cluster_scoped(tenant, name);
        let mut states = self.writer.states(&self.cluster::<SubnetObject>(), &object);
        let first = match states.next().await {
            Some(Ok(Some(o))) if is_owned(&o.metadata, tenant) && !terminating(&o.metadata) => {
                subnet_view(&o)?
            }
            Some(Err(err)) => return Err(err),
            _ => return Err(Error::not_found(ResourceKind::Subnet, name)),
        };
        // Until it is gone (or being deleted): then the stream ends.
        let rest = states
            .map(|state| match state {
                Ok(Some(o)) => (!terminating(&o.metadata)).then(|| subnet_view(&o)),
                Ok(None) => None,
                Err(err) => Some(Err(err)),
            })
            .take_while(|state| ready(state.is_some()))
            .filter_map(ready);
        Ok(stream::once(ready(Ok(first))).chain(rest).boxed())
    }

    async fn list_subnets(&self, tenant: &Tenant) -> Result<Vec<Subnet>> {
        let kind = ResourceKind::Subnet;
        let mut subnets = self
            .list_owned(&self.cluster::<SubnetObject>(), tenant, None, kind)
            .await?
            .iter()
            .map(subnet_view)
            .collect::<Result<Vec<_>>>()?;
        // A secondary subnet is complete with its attachment definition (one list, only when
        // there is a secondary subnet to check).
        if subnets.iter().any(|s| s.spec.secondary) {
            let nads = self.namespaced::<NetworkAttachmentDefinition>(tenant);
            let present: BTreeSet<String> = self
                .list_owned(&nads, tenant, None, kind)
                .await?
                .iter()
                .map(ResourceExt::name_any)
                .collect();
            for s in subnets.iter_mut().filter(|s| s.spec.secondary) {
                s.incomplete = !present.contains(&kubecloud_kube::names::attachment(&s.spec.name));
            }
        }
        Ok(subnets)
    }

    async fn delete_subnet(&self, tenant: &Tenant, name: &str) -> Result<()> {
        // The reclaimed addresses and the subnet's usage are waited for within one
        // `ready_timeout` together (or the deadline of the operation this is part of).
        let deletion = self.delete_subnet_and_wait(tenant, name);
        kubecloud_core::wait::within(
            self.ready_timeout,
            ResourceKind::Subnet,
            name,
            "deleted",
            deletion,
        )
        .await
    }

    async fn reserve_ip(&self, tenant: &Tenant, spec: &IpReservationSpec) -> Result<IpReservation> {
        spec.validate()?;
        kubecloud_kube::ensure_namespace(&self.client, &self.writer, tenant).await?;
        let kind = ResourceKind::IpReservation;
        let vips = self.cluster::<Vip>();
        let object = vip_name(tenant, &spec.name);
        self.ensure_free(&vips, &object, tenant, kind, &spec.name)
            .await?;
        let subnet_object = cluster_scoped(tenant, &spec.subnet);
        let subnet = self
            .owned(
                &self.cluster::<SubnetObject>(),
                &subnet_object,
                tenant,
                ResourceKind::Subnet,
                &spec.subnet,
            )
            .await?;
        let subnet_spec = translate::subnet_spec_from(&subnet)?;
        // Everything holding an address of the subnet: pods' and VMs' `IP`s and `Vip`s (Kube-OVN
        // labels both with the subnet).
        let selector = format!("{SUBNET_LABEL}={subnet_object}");
        let mut held = self
            .list_any(&self.cluster::<Ip>(), &selector, kind, &spec.name)
            .await?
            .iter()
            .map(Held::of_ip)
            .collect::<Result<Vec<_>>>()?;
        for vip in self.list_any(&vips, &selector, kind, &spec.name).await? {
            held.push(Held::of_vip(&vip)?);
        }
        check_reservation(spec, &subnet_spec, &held)?;
        self.apply::<Vip>(
            &self.cluster_dynamic(&kinds::vip()),
            translate::vip(tenant, spec, &subnet_object),
            kind,
            &spec.name,
        )
        .await?;
        let allocated = self
            .writer
            .wait_for(
                &vips,
                &object,
                kind,
                &spec.name,
                self.ready_timeout,
                vip_allocated,
            )
            .await;
        let allocated = match allocated {
            Ok(o) => o,
            Err(err) => {
                // Never leave a half-made reservation behind.
                tracing::warn!(%tenant, reservation = %spec.name, error = %err, "reservation not allocated; deleting it");
                self.delete(&vips, &object, kind, &spec.name).await?;
                return Err(err);
            }
        };
        let reservation = translate::reservation_from(&allocated, &spec.subnet)?
            .ok_or_else(|| Error::not_found(kind, &spec.name))?;
        tracing::debug!(%tenant, reservation = %spec.name, ip = %reservation.ip, "ip reserved");
        Ok(reservation)
    }

    async fn get_ip(&self, tenant: &Tenant, name: &str) -> Result<IpReservation> {
        let kind = ResourceKind::IpReservation;
        let object = self
            .owned(
                &self.cluster::<Vip>(),
                &vip_name(tenant, name),
                tenant,
                kind,
                name,
            )
            .await?;
        translate::reservation_from(&object, &vip_subnet(&object)?)?
            .ok_or_else(|| Error::not_found(kind, name))
    }

    async fn list_ips(&self, tenant: &Tenant, subnet: Option<&str>) -> Result<Vec<IpReservation>> {
        Ok(self
            .reservations(tenant, subnet)
            .await?
            .into_iter()
            .map(|(r, _)| r)
            .collect())
    }

    async fn release_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::IpReservation;
        let api = self.cluster::<Vip>();
        let object_name = vip_name(tenant, name);
        let object = self.owned(&api, &object_name, tenant, kind, name).await?;
        if let Some(owner) = vip_owner(&object)
            && self.workload_exists(tenant, &owner).await?
        {
            return Err(Error::conflict(
                kind,
                name,
                format!("the address is in use by {owner}; delete or change that VM first"),
            ));
        }
        self.ensure_reservation_unused(tenant, name).await?;
        self.delete(&api, &object_name, kind, name).await?;
        self.wait_gone(api, &object_name, kind, name).await
    }

    async fn attach_interfaces(
        &self,
        tenant: &Tenant,
        vm: &str,
        interfaces: &[NetworkInterface],
    ) -> Result<Vec<InterfaceAttachment>> {
        let mut checked = BTreeSet::new();
        for iface in interfaces {
            let references = iface
                .subnet()
                .map(|s| (ResourceKind::Subnet, s))
                .into_iter()
                .chain(
                    iface
                        .security_groups
                        .iter()
                        .map(|g| (ResourceKind::SecurityGroup, g.as_str())),
                );
            for (kind, name) in references {
                if !checked.insert((kind, name)) {
                    continue;
                }
                if kind == ResourceKind::Subnet {
                    self.ensure_found(&self.cluster::<SubnetObject>(), tenant, kind, name)
                        .await?;
                } else {
                    self.ensure_found(&self.cluster::<SecurityGroupObject>(), tenant, kind, name)
                        .await?;
                }
            }
        }
        // Interfaces fixing an address of one of the tenant's reservations take its `Vip`.
        let mut reserved = Vec::new();
        let fixing: BTreeSet<(&str, std::net::IpAddr)> = interfaces
            .iter()
            .filter_map(|i| Some((i.subnet()?, i.fixed_ip?)))
            .collect();
        let subnets: BTreeSet<&str> = fixing.iter().map(|(s, _)| *s).collect();
        for subnet in subnets {
            for (reservation, object) in self.reservations(tenant, Some(subnet)).await? {
                if !fixing.contains(&(subnet, reservation.ip)) {
                    continue;
                }
                if let Some(owner) = vip_owner(&object)
                    && owner != vm
                    && self.workload_exists(tenant, &owner).await?
                {
                    return Err(Error::conflict(
                        ResourceKind::IpReservation,
                        &reservation.name,
                        format!(
                            "{} is reserved by {:?}, which {owner} uses",
                            reservation.ip, reservation.name
                        ),
                    ));
                }
                reserved.push(attach::Reserved::from(&reservation));
            }
        }
        attach::attachments(tenant, interfaces, self.primary_binding, &reserved)
    }

    async fn create_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        let api = self.cluster::<SecurityGroupObject>();
        let object = cluster_scoped(tenant, &spec.name);
        spec.validate()?;
        let desired = translate::security_group(tenant, spec)?;
        kubecloud_kube::ensure_namespace(&self.client, &self.writer, tenant).await?;
        self.ensure_free(
            &api,
            &object,
            tenant,
            ResourceKind::SecurityGroup,
            &spec.name,
        )
        .await?;
        self.apply_security_group(tenant, spec, desired).await
    }

    async fn update_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        let api = self.cluster::<SecurityGroupObject>();
        let object = cluster_scoped(tenant, &spec.name);
        spec.validate()?;
        let desired = translate::security_group(tenant, spec)?;
        self.owned(
            &api,
            &object,
            tenant,
            ResourceKind::SecurityGroup,
            &spec.name,
        )
        .await?;
        self.apply_security_group(tenant, spec, desired).await
    }

    async fn get_security_group(&self, tenant: &Tenant, name: &str) -> Result<SecurityGroup> {
        let object = self
            .owned(
                &self.cluster::<SecurityGroupObject>(),
                &cluster_scoped(tenant, name),
                tenant,
                ResourceKind::SecurityGroup,
                name,
            )
            .await?;
        Ok(SecurityGroup {
            spec: translate::security_group_spec_from(tenant, &object)?,
        })
    }

    async fn list_security_groups(&self, tenant: &Tenant) -> Result<Vec<SecurityGroup>> {
        self.list_owned(
            &self.cluster::<SecurityGroupObject>(),
            tenant,
            None,
            ResourceKind::SecurityGroup,
        )
        .await?
        .iter()
        .map(|o| {
            Ok(SecurityGroup {
                spec: translate::security_group_spec_from(tenant, o)?,
            })
        })
        .collect()
    }

    async fn delete_security_group(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::SecurityGroup;
        let api = self.cluster::<SecurityGroupObject>();
        let object_name = cluster_scoped(tenant, name);
        self.owned(&api, &object_name, tenant, kind, name).await?;
        let pods = self.pods(tenant, "", kind, name).await?;
        let users: Vec<&str> = pods
            .iter()
            .filter(|p| {
                p.annotations.iter().flatten().any(|(k, v)| {
                    k.ends_with("kubernetes.io/security_groups")
                        && v.split(',').any(|g| g.trim() == object_name)
                })
            })
            .filter_map(|p| p.name.as_deref())
            .collect();
        if !users.is_empty() {
            return Err(Error::conflict(
                kind,
                name,
                format!("pods use the group: {}", users.join(", ")),
            ));
        }
        self.delete(&api, &object_name, kind, name).await
    }

    async fn create_service(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Service> {
        spec.validate()?;
        let kind = ResourceKind::Service;
        kubecloud_kube::ensure_namespace(&self.client, &self.writer, tenant).await?;
        let api = self.namespaced::<ServiceObject>(tenant);
        self.ensure_free(&api, &spec.name, tenant, kind, &spec.name)
            .await?;
        let created: ServiceObject = self
            .apply(
                &self.namespaced_dynamic(&kinds::service(), tenant),
                translate::service(tenant, spec),
                kind,
                &spec.name,
            )
            .await?;
        self.service_view(tenant, &created).await
    }

    async fn get_service(&self, tenant: &Tenant, name: &str) -> Result<Service> {
        let api = self.namespaced::<ServiceObject>(tenant);
        let object = self
            .owned(&api, name, tenant, ResourceKind::Service, name)
            .await?;
        if !is_internal_service(&object) {
            return Err(Error::not_found(ResourceKind::Service, name));
        }
        self.service_view(tenant, &object).await
    }

    async fn list_services(&self, tenant: &Tenant) -> Result<Vec<Service>> {
        let api = self.namespaced::<ServiceObject>(tenant);
        let objects = self
            .list_owned(&api, tenant, None, ResourceKind::Service)
            .await?;
        let mut out = Vec::with_capacity(objects.len());
        for o in objects.iter().filter(|o| is_internal_service(o)) {
            out.push(self.service_view(tenant, o).await?);
        }
        Ok(out)
    }

    async fn delete_service(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::Service;
        let api = self.namespaced::<ServiceObject>(tenant);
        let object = self.owned(&api, name, tenant, kind, name).await?;
        if !is_internal_service(&object) {
            return Err(Error::not_found(kind, name));
        }
        self.delete(&api, name, kind, name).await
    }

    async fn create_external_ip(
        &self,
        tenant: &Tenant,
        spec: &ExternalIpSpec,
    ) -> Result<ExternalIp> {
        self.ext_create_external_ip(tenant, spec).await
    }

    async fn get_external_ip(&self, tenant: &Tenant, name: &str) -> Result<ExternalIp> {
        self.ext_get_external_ip(tenant, name).await
    }

    async fn list_external_ips(&self, tenant: &Tenant) -> Result<Vec<ExternalIp>> {
        self.ext_list_external_ips(tenant).await
    }

    async fn delete_external_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.ext_delete_external_ip(tenant, name).await
    }

    async fn create_floating_ip(
        &self,
        tenant: &Tenant,
        spec: &FloatingIpSpec,
    ) -> Result<FloatingIp> {
        self.ext_create_floating_ip(tenant, spec).await
    }

    async fn list_floating_ips(&self, tenant: &Tenant) -> Result<Vec<FloatingIp>> {
        self.ext_list_floating_ips(tenant).await
    }

    async fn delete_floating_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.ext_delete_nat::<OvnFip>(tenant, ResourceKind::FloatingIp, name)
            .await
    }

    async fn create_snat_rule(&self, tenant: &Tenant, spec: &SnatRuleSpec) -> Result<SnatRule> {
        self.ext_create_snat_rule(tenant, spec).await
    }

    async fn list_snat_rules(&self, tenant: &Tenant) -> Result<Vec<SnatRule>> {
        self.ext_list_snat_rules(tenant).await
    }

    async fn delete_snat_rule(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.ext_delete_nat::<OvnSnatRule>(tenant, ResourceKind::SnatRule, name)
            .await
    }
}

impl KubeOvn {
    /// A service as it is: its cluster IP, DNS name, and the VMs whose pods its selector picks.
    async fn service_view(&self, tenant: &Tenant, object: &ServiceObject) -> Result<Service> {
        let spec = translate::service_spec_from(object)?;
        let selector = spec
            .selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let pods = self
            .pods(tenant, &selector, ResourceKind::Service, &spec.name)
            .await?;
        let mut endpoints: Vec<String> = pods
            .iter()
            .filter_map(|p| label(p, VM_POD_LABEL))
            .map(str::to_string)
            .collect();
        endpoints.sort();
        endpoints.dedup();
        // Unset until the API server allocates it ("None" only for a headless service, which
        // this backend never makes).
        let cluster_ip = match object.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) {
            None | Some("" | "None") => None,
            Some(ip) => Some(
                ip.parse()
                    .map_err(|_| malformed(object, "spec.clusterIP", ip))?,
            ),
        };
        Ok(Service {
            cluster_ip,
            dns_name: translate::service_dns(tenant, &spec.name),
            endpoints,
            spec,
        })
    }
}

impl KubeOvn {
    /// Refuses a reference to the tenant's cluster-scoped `kind` `name` that is not there (or
    /// not the tenant's) with `NotFound`; the shared watch of the kind answers for every VM.
    async fn ensure_found<K: Object>(
        &self,
        api: &Api<K>,
        tenant: &Tenant,
        kind: ResourceKind,
        name: &str,
    ) -> Result<()> {
        let object = cluster_scoped(tenant, name);
        let found = self
            .writer
            .find(api, &object, kind, name)
            .await?
            .ok_or_else(|| Error::not_found(kind, name))?;
        ensure_owned(found.meta(), tenant, kind, name)
    }
}

/// Whether a Service is an internal (ClusterIP) service of this backend: the load-balancer
/// backend's exposures are Services with the same ownership labels in the same namespace.
fn is_internal_service(object: &ServiceObject) -> bool {
    matches!(
        object.spec.as_ref().and_then(|s| s.type_.as_deref()),
        None | Some("ClusterIP")
    )
}

impl KubeOvn {
    /// Deletes the subnet once its leaked addresses are reclaimed and its usage is zero.
    async fn delete_subnet_and_wait(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::Subnet;
        let api = self.cluster::<SubnetObject>();
        let object_name = cluster_scoped(tenant, name);
        let object = self.owned(&api, &object_name, tenant, kind, name).await?;
        self.ensure_subnet_unused_by_nat(tenant, name).await?;
        let ips = self
            .list_any(
                &self.cluster::<Ip>(),
                &format!("{SUBNET_LABEL}={object_name}"),
                kind,
                name,
            )
            .await?;
        // The tenant's reservations hold addresses until released.
        let reserved = self
            .list_owned(
                &self.cluster::<Vip>(),
                tenant,
                Some(format!("{SUBNET_NAME_LABEL}={name}")),
                kind,
            )
            .await?
            .len();
        if reserved > 0 {
            return Err(Error::conflict(
                kind,
                name,
                format!("{reserved} reservation(s) hold addresses in it; release them first"),
            ));
        }
        // Not counted yet: nothing Kube-OVN knows of.
        let used = usage(&object)?.1.unwrap_or(0);
        if !ips.is_empty() || used > 0 {
            // Kube-OVN releases the address of a deleted pod or VM a moment after it goes.
            // Addresses still held by something that exists (or reserved by the tenant) refuse
            // the deletion; addresses whose owner is gone are reclaimed and waited for.
            let mut live = 0usize;
            for ip in &ips {
                if label(&ip.metadata, RESERVED_LABEL) == Some("true")
                    || ip_owner(ip).is_none()
                    || self.owner_exists(tenant, ip).await?
                {
                    live += 1;
                }
            }
            if live > 0 {
                return Err(Error::conflict(
                    kind,
                    name,
                    format!(
                        "{} address(es) are in use (VM interfaces, pods or reservations)",
                        used.max(ips.len() as u128)
                    ),
                ));
            }
            let ip_api = self.cluster::<Ip>();
            for ip in &ips {
                let ip_name = &translate::object_name(ip)?;
                tracing::debug!(%tenant, subnet = %name, ip = ip_name, "reclaiming the address of a deleted owner");
                self.writer
                    .delete(&ip_api, ip_name, ResourceKind::IpReservation, ip_name)
                    .await?;
            }
            // Kube-OVN frees the address, then drops the IP's finalizer: wait (on the shared
            // watch of IPs) until every one is gone, so nothing of the tenant is left when the
            // subnet's deletion returns.
            for ip in &ips {
                let ip_name = &translate::object_name(ip)?;
                self.writer
                    .wait_gone(
                        &ip_api,
                        ip_name,
                        ip.metadata.uid.as_deref(),
                        kind,
                        name,
                        self.ready_timeout,
                    )
                    .await?;
            }
            self.writer
                .wait_for(&api, &object_name, kind, name, self.ready_timeout, |o| {
                    let Some(o) = o else {
                        return Check::Met;
                    };
                    match usage(o) {
                        Ok((_, None | Some(0))) => Check::Met,
                        Ok(_) => Check::Pending,
                        Err(err) => Check::Failed(err.to_string()),
                    }
                })
                .await?;
        }
        let spec = translate::subnet_spec_from(&object)?;
        if spec.secondary {
            let nads = self.namespaced::<NetworkAttachmentDefinition>(tenant);
            let nad_name = kubecloud_kube::names::attachment(name);
            if let Some(nad) = self.writer.get_opt(&nads, &nad_name, kind, name).await?
                && is_owned(&nad.metadata, tenant)
            {
                self.delete(&nads, &nad_name, kind, name).await?;
            }
        }
        self.delete(&api, &object_name, kind, name).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubecloud_models::kubeovn::subnet::SubnetSpec as SubnetObjectSpec;

    fn subnet(protocol: &str, available: f64, used: f64) -> SubnetObject {
        let mut object = SubnetObject::new(
            "acme-front",
            SubnetObjectSpec {
                cidr_block: Some("10.1.0.0/24".into()),
                protocol: Some(protocol.into()),
                ..Default::default()
            },
        );
        object.status = Some(SubnetStatus {
            v4available_i_ps: Some(available),
            v4using_i_ps: Some(used),
            v6available_i_ps: Some(7.0),
            v6using_i_ps: Some(1.0),
            ..Default::default()
        });
        object
    }

    #[test]
    fn usage_is_read_for_the_subnets_family() {
        assert_eq!(
            usage(&subnet("IPv4", 250.0, 3.0)).unwrap(),
            (Some(250), Some(3))
        );
        assert_eq!(
            usage(&subnet("IPv6", 250.0, 3.0)).unwrap(),
            (Some(7), Some(1))
        );
        let mut uncounted = subnet("IPv4", 0.0, 0.0);
        uncounted.status = None;
        assert_eq!(usage(&uncounted).unwrap(), (None, None));
    }

    #[test]
    fn a_count_that_is_no_whole_number_is_an_error_naming_the_field_not_zero() {
        for (available, used, field) in [
            (-1.0, 0.0, "status.v4availableIPs"),
            (2.5, 0.0, "status.v4availableIPs"),
            (250.0, f64::NAN, "status.v4usingIPs"),
        ] {
            let object = subnet("IPv4", available, used);
            let err = usage(&object).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains("acme-front"), "{err}");
            assert!(matches!(subnet_check(Some(&object)), Check::Failed(m) if m.contains(field)));
        }
    }
}
