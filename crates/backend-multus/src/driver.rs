//! The `Network` trait on Multus and whereabouts: thin; objects come from [`crate::translate`],
//! attachments from [`crate::attach`], and everything goes through `kubecloud-kube`.
//!
//! Reads are typed (`Api<K>` of the generated models and of k8s-openapi's core kinds; pods as
//! metadata only); writes are the JSON [`crate::translate`] builds (what GitOps renders, byte
//! for byte), sent through `Api<DynamicObject>`, and each answer is read back as the model.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::net::IpAddr;

use futures::StreamExt;
use futures::future::ready;
use futures::stream::{self, BoxStream};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service as ServiceObject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use kubecloud_core::ipam::AddressSpace;
use kubecloud_core::{
    Error, InterfaceAttachment, IpReservation, IpReservationSpec, MacAddress, Network,
    NetworkCapabilities, NetworkInterface, ResourceKind, Result, SecurityGroup, SecurityGroupSpec,
    Service, ServiceSpec, Subnet, SubnetSpec, Tenant, Vpc, VpcSpec, async_trait, cidrs_overlap,
};
use kubecloud_kube::{FIELD_MANAGER, ensure_owned, from_kube, tenant_namespace, tenant_selector};
use kubecloud_models::kubevirt::VirtualMachine;
use kubecloud_models::multi_networkpolicy::MultiNetworkPolicy;
use kubecloud_models::multus::NetworkAttachmentDefinition as Nad;
use kubecloud_models::whereabouts::IpPool;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::attach::{self, Known, Reserved};
use crate::kinds::{self, ROLE_LABEL, SUBNET_LABEL, VM_POD_LABEL, VPC_LABEL};
use crate::translate::{self, label, malformed};
use crate::{BACKEND, Link, Multus};

/// A typed object this backend reads (a generated Multus model or a core kind).
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

/// Whether an object is being deleted.
fn terminating(meta: &ObjectMeta) -> bool {
    meta.deletion_timestamp.is_some()
}

/// The whereabouts allocations of an `IPPool` as (offset, podRef, ifName); an offset that is
/// not a number is skipped, as whereabouts skips it (`toIPReservationList`).
pub(crate) fn allocations(pool: &IpPool) -> Vec<(u128, String, String)> {
    pool.spec
        .allocations
        .iter()
        .filter_map(|(offset, a)| {
            Some((
                offset.parse().ok()?,
                a.podref.clone().unwrap_or_default(),
                a.ifname.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

/// The address at `offset` of a pool of `spec` (whereabouts counts from the range's network
/// address, `toIPReservationList`).
pub(crate) fn address_at(spec: &SubnetSpec, offset: u128) -> Option<IpAddr> {
    kubecloud_core::u128_to_ip(
        kubecloud_core::ip_to_u128(spec.cidr.network()) + offset,
        spec.cidr.network(),
    )
}

fn subnet_view(nad: &Nad, pool: Option<&IpPool>) -> Result<Subnet> {
    let spec = translate::subnet_spec_from(nad)?;
    let capacity = AddressSpace::for_subnet(&spec).capacity();
    let used = translate::reserved_of(nad)?.len() as u128
        + pool.map(|p| allocations(p).len() as u128).unwrap_or(0);
    Ok(Subnet {
        spec,
        available: capacity.saturating_sub(used),
        used,
        ready: true,
        incomplete: false,
    })
}

/// A MAC for reservation `name` of `subnet`: locally administered, unicast, derived from the
/// names (FNV-1a), so a re-run picks the same; `salt` moves it off a MAC already held.
fn generated_mac(tenant: &Tenant, subnet: &str, name: &str, salt: u32) -> MacAddress {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in format!("{tenant}/{subnet}/{name}/{salt}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    let b = h.to_be_bytes();
    MacAddress([0x02, b[3], b[4], b[5], b[6], b[7]])
}

/// The domain names of `objects`; one without its `kubecloud.io/name` label is an error.
fn domain_names<K: Resource<DynamicType = ()>>(objects: &[K]) -> Result<Vec<String>> {
    objects.iter().map(translate::domain_name).collect()
}

impl Multus {
    /// The untyped API objects are written through (built as JSON by [`crate::translate`]).
    pub(crate) fn api(&self, resource: &ApiResource, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, resource)
    }

    /// [`Multus::api`] in the tenant's namespace.
    pub(crate) fn tenant_api(&self, resource: &ApiResource, tenant: &Tenant) -> Api<DynamicObject> {
        self.api(resource, &tenant_namespace(tenant))
    }

    /// A namespaced kind's typed API in `namespace`.
    fn typed_in<K>(&self, namespace: &str) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        Api::namespaced(self.client.clone(), namespace)
    }

    /// A namespaced kind's typed API in the tenant's namespace.
    fn typed<K>(&self, tenant: &Tenant) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        self.typed_in(&tenant_namespace(tenant))
    }

    fn vlan(&self) -> Option<&std::ops::RangeInclusive<u16>> {
        match &self.link {
            Link::Bridge { vlans, .. } => Some(vlans),
            Link::Macvtap { .. } => None,
        }
    }

    /// The tenant's object, or `NotFound` when absent, being deleted, another's, or of another
    /// role.
    async fn owned<K: Object>(
        &self,
        api: &Api<K>,
        object: &str,
        tenant: &Tenant,
        role: Option<&str>,
        kind: ResourceKind,
        name: &str,
    ) -> Result<K> {
        let got = self
            .writer
            .get_opt(api, object, kind, name)
            .await?
            .ok_or_else(|| Error::not_found(kind, name))?;
        ensure_owned(got.meta(), tenant, kind, name)?;
        if terminating(got.meta()) || role.is_some_and(|r| label(got.meta(), ROLE_LABEL) != Some(r))
        {
            return Err(Error::not_found(kind, name));
        }
        Ok(got)
    }

    async fn exists<K: Object>(
        &self,
        api: &Api<K>,
        object: &str,
        kind: ResourceKind,
        name: &str,
    ) -> Result<bool> {
        Ok(self
            .writer
            .get_opt(api, object, kind, name)
            .await?
            .is_some())
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
        let list = self.writer.list_shared(api, &params, kind, name).await?;
        Ok(list
            .iter()
            .filter(|o| !terminating(o.meta()))
            .cloned()
            .collect())
    }

    /// The metadata of the tenant's pods the selector picks (not being deleted): which VM a
    /// pod is (its labels and name) is all that is read of them.
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
            .list_metadata(&self.typed::<Pod>(tenant), &params, kind, name)
            .await?;
        Ok(list
            .iter()
            .filter(|p| !terminating(&p.metadata))
            .map(|p| p.metadata.clone())
            .collect())
    }

    /// The tenant's objects of `role` (`extra` narrows the selector).
    async fn list_role<K: Object>(
        &self,
        api: &Api<K>,
        tenant: &Tenant,
        role: &str,
        extra: Option<String>,
        kind: ResourceKind,
    ) -> Result<Vec<K>> {
        let mut selector = format!("{},{ROLE_LABEL}={role}", tenant_selector(tenant));
        if let Some(extra) = extra {
            selector = format!("{selector},{extra}");
        }
        self.list_any(api, &selector, kind, tenant.as_str()).await
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

    /// Creates (POST) the object: refused with `AlreadyExists` when its name is taken; the
    /// answer is read as the model `K`.
    async fn create<K: Object>(
        &self,
        api: &Api<DynamicObject>,
        object: Value,
        kind: ResourceKind,
        name: &str,
    ) -> Result<K> {
        let desired = to_dynamic(object, kind, name)?;
        let created = api
            .create(&PostParams::default(), &desired)
            .await
            .map_err(|e| from_kube(BACKEND, kind, name, e))?;
        kubecloud_kube::convert(&created, BACKEND, kind, name)
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

    /// The whereabouts `IPPool` of subnet `spec`, if whereabouts has made it.
    pub(crate) async fn pool(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Option<IpPool>> {
        let name = translate::pool_name(tenant, &spec.name, spec.cidr);
        self.writer
            .get_opt(&self.pools(), &name, ResourceKind::Subnet, &spec.name)
            .await
    }

    /// whereabouts' `IPPool`s (typed), in its namespace.
    pub(crate) fn pools(&self) -> Api<IpPool> {
        self.typed_in(&self.whereabouts_namespace)
    }

    /// The VPC's ConfigMap.
    async fn vpc_object(&self, tenant: &Tenant, name: &str) -> Result<ConfigMap> {
        self.owned(
            &self.typed(tenant),
            &kinds::vpc_object(name),
            tenant,
            Some("vpc"),
            ResourceKind::Vpc,
            name,
        )
        .await
    }

    /// The tenant's subnets' attachments.
    pub(crate) async fn subnet_objects(
        &self,
        tenant: &Tenant,
        vpc: Option<&str>,
    ) -> Result<Vec<Nad>> {
        self.list_role(
            &self.typed(tenant),
            tenant,
            "subnet",
            vpc.map(|v| format!("{VPC_LABEL}={v}")),
            ResourceKind::Subnet,
        )
        .await
    }

    async fn subnet_object(&self, tenant: &Tenant, name: &str) -> Result<Nad> {
        self.owned(
            &self.typed(tenant),
            &kubecloud_kube::names::attachment(name),
            tenant,
            Some("subnet"),
            ResourceKind::Subnet,
            name,
        )
        .await
    }

    async fn reservation_objects(&self, tenant: &Tenant, subnet: Option<&str>) -> Result<Vec<Nad>> {
        self.list_role(
            &self.typed(tenant),
            tenant,
            "reservation",
            subnet.map(|s| format!("{SUBNET_LABEL}={s}")),
            ResourceKind::IpReservation,
        )
        .await
    }

    fn reservation_view(object: &Nad) -> Result<IpReservation> {
        let (subnet, ip, mac) = translate::reservation_of(object)?;
        Ok(IpReservation {
            name: translate::domain_name(object)?,
            subnet,
            ip,
            mac,
            owner: None,
        })
    }

    /// Adds `add` to and removes `remove` from the reserved addresses of subnet `name`, with
    /// the attachment's resourceVersion as precondition (re-read and redone on a conflict), so
    /// two reservations at once never drop each other's.
    async fn update_reserved(
        &self,
        tenant: &Tenant,
        name: &str,
        add: Option<IpAddr>,
        remove: Option<IpAddr>,
    ) -> Result<()> {
        let kind = ResourceKind::Subnet;
        let api = self.tenant_api(&kinds::attachment(), tenant);
        let vlan = self.vpc_vlan_of_subnet(tenant, name).await?;
        for _ in 0..8 {
            let current = self.subnet_object(tenant, name).await?;
            let spec = translate::subnet_spec_from(&current)?;
            let mut reserved: BTreeSet<IpAddr> =
                translate::reserved_of(&current)?.into_iter().collect();
            if let Some(ip) = add
                && !reserved.insert(ip)
            {
                return Err(Error::conflict(
                    kind,
                    name,
                    format!("{ip} is already reserved"),
                ));
            }
            if let Some(ip) = remove {
                reserved.remove(&ip);
            }
            let reserved: Vec<IpAddr> = reserved.into_iter().collect();
            let object = kubecloud_kube::names::attachment(name);
            let mut desired = to_dynamic(
                translate::subnet_attachment(tenant, &spec, &self.link, vlan, &reserved),
                kind,
                name,
            )?;
            desired.metadata.resource_version = current.metadata.resource_version.clone();
            match api
                .patch(
                    &object,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&desired),
                )
                .await
            {
                Ok(applied) => {
                    self.writer.informers().observe(&api, &applied);
                    return Ok(());
                }
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(from_kube(BACKEND, kind, name, e)),
            }
        }
        Err(Error::backend(
            BACKEND,
            format!(
                "the attachment of subnet {name:?} kept changing while its reservations were updated"
            ),
            true,
            std::io::Error::other("resourceVersion conflicts"),
        ))
    }

    async fn vpc_vlan_of_subnet(&self, tenant: &Tenant, subnet: &str) -> Result<Option<u16>> {
        let object = self.subnet_object(tenant, subnet).await?;
        let vpc = label(&object.metadata, VPC_LABEL).ok_or_else(|| {
            malformed(&object, "metadata.labels", &format!("no {VPC_LABEL} label"))
        })?;
        self.vpc_vlan(tenant, vpc).await
    }

    async fn vpc_vlan(&self, tenant: &Tenant, vpc: &str) -> Result<Option<u16>> {
        if self.vlan().is_none() {
            return Ok(None);
        }
        let object = self.vpc_object(tenant, vpc).await?;
        claimed_vlan(&object).map(Some)
    }

    /// Makes sure the system namespace (VLAN claims) exists.
    async fn ensure_system_namespace(&self) -> Result<()> {
        let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(self.client.clone());
        let ns = &self.system_namespace;
        if self
            .writer
            .get_opt(&api, ns, ResourceKind::Vpc, ns)
            .await?
            .is_some()
        {
            return Ok(());
        }
        let object = k8s_openapi::api::core::v1::Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(ns.clone()),
                labels: Some(BTreeMap::from([(
                    kubecloud_kube::MANAGED_BY.to_string(),
                    kubecloud_kube::MANAGER.to_string(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(from_kube(BACKEND, ResourceKind::Vpc, ns, e)),
        }
    }

    /// Claims the lowest free VLAN for `vpc` (a create per try: two VPCs never get one VLAN).
    async fn claim_vlan(
        &self,
        tenant: &Tenant,
        vpc: &str,
        vlans: &std::ops::RangeInclusive<u16>,
    ) -> Result<u16> {
        let kind = ResourceKind::Vpc;
        self.ensure_system_namespace().await?;
        let taken: BTreeSet<u16> = self
            .list_any(
                &self.typed_in::<ConfigMap>(&self.system_namespace),
                &format!("{ROLE_LABEL}=vlan"),
                kind,
                vpc,
            )
            .await?
            .iter()
            .map(claimed_vlan)
            .collect::<Result<_>>()?;
        let api = self.api(&kinds::config_map(), &self.system_namespace);
        for id in vlans.clone().filter(|id| !taken.contains(id)) {
            let claim = translate::vlan_claim(&self.system_namespace, tenant, vpc, id);
            match self.create::<ConfigMap>(&api, claim, kind, vpc).await {
                Ok(_) => return Ok(id),
                Err(Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::exhausted(
            kind,
            vpc,
            format!(
                "every VLAN of {}..={} is taken by a VPC",
                vlans.start(),
                vlans.end()
            ),
        ))
    }

    /// Re-applies the tenant's security groups so their `policy-for` names every subnet.
    async fn refresh_groups(&self, tenant: &Tenant) -> Result<()> {
        let groups: Vec<MultiNetworkPolicy> = self
            .list_role(
                &self.typed(tenant),
                tenant,
                "security-group",
                None,
                ResourceKind::SecurityGroup,
            )
            .await?;
        if groups.is_empty() {
            return Ok(());
        }
        let api = self.tenant_api(&kinds::multi_policy(), tenant);
        let networks = self.network_names(tenant).await?;
        for g in groups {
            let spec = translate::security_group_spec_from(&g)?;
            let desired = translate::security_group(tenant, &spec, &networks)?;
            self.apply::<MultiNetworkPolicy>(
                &api,
                desired,
                ResourceKind::SecurityGroup,
                &spec.name,
            )
            .await?;
        }
        Ok(())
    }

    /// The names of the tenant's subnet and reservation attachments (what a group applies to).
    async fn network_names(&self, tenant: &Tenant) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .subnet_objects(tenant, None)
            .await?
            .into_iter()
            .chain(self.reservation_objects(tenant, None).await?)
            .map(|o| {
                o.metadata
                    .name
                    .clone()
                    .ok_or_else(|| malformed(&o, "metadata.name", "missing"))
            })
            .collect::<Result<_>>()?;
        names.sort();
        Ok(names)
    }

    async fn subnet_with_usage(&self, tenant: &Tenant, nad: &Nad) -> Result<Subnet> {
        let spec = translate::subnet_spec_from(nad)?;
        let pool = self.pool(tenant, &spec).await?;
        subnet_view(nad, pool.as_ref())
    }

    /// The tenant's VMs (by name, sorted) whose spec rides reservation `name`'s attachment, and
    /// the VMs of pods that still do (a VM being replaced): a reservation in use is not released.
    /// Where KubeVirt is not served there are no VMs.
    async fn reservation_users(&self, tenant: &Tenant, name: &str) -> Result<Vec<String>> {
        let kind = ResourceKind::IpReservation;
        let ns = tenant_namespace(tenant);
        let attachment = kinds::reservation_object(name);
        let full = format!("{ns}/{attachment}");
        let rides = |network: &str| network == full || network == attachment;
        let vms = match self
            .writer
            .list_shared(
                &self.typed::<VirtualMachine>(tenant),
                &ListParams::default(),
                kind,
                name,
            )
            .await
        {
            Ok(list) => list.to_vec(),
            Err(e) if e.is_not_found() => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut users: BTreeSet<String> = vms
            .iter()
            .filter(|vm| {
                vm.spec
                    .template
                    .spec
                    .as_ref()
                    .and_then(|s| s.networks.as_ref())
                    .into_iter()
                    .flatten()
                    .filter_map(|n| n.multus.as_ref())
                    .any(|m| rides(&m.network_name))
            })
            .filter_map(|vm| vm.metadata.name.clone())
            .collect();
        // A running pod's network selection (`k8s.v1.cni.cncf.io/networks`: a JSON list or a
        // comma-separated `ns/name` list, as Multus reads it).
        for pod in self.pods(tenant, VM_POD_LABEL, kind, name).await? {
            let selection = pod
                .annotations
                .as_ref()
                .and_then(|a| a.get(kinds::NETWORKS))
                .map(String::as_str)
                .unwrap_or_default();
            let named: Vec<String> = match serde_json::from_str::<Vec<Value>>(selection) {
                Ok(list) => list
                    .iter()
                    .filter_map(|e| {
                        let n = e["name"].as_str()?;
                        Some(match e["namespace"].as_str() {
                            Some(ns) => format!("{ns}/{n}"),
                            None => n.to_string(),
                        })
                    })
                    .collect(),
                Err(_) => selection
                    .split(',')
                    .map(|s| s.trim().split('@').next().unwrap_or_default().to_string())
                    .collect(),
            };
            if named.iter().any(|n| rides(n))
                && let Some(vm) = label(&pod, VM_POD_LABEL)
            {
                users.insert(vm.to_string());
            }
        }
        Ok(users.into_iter().collect())
    }

    fn unsupported(operation: &str, capability: &str) -> Error {
        Error::unsupported(BACKEND, operation, capability)
    }

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
        // No cluster IP yet, or a headless service's "None": none.
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

    async fn vpc_view(&self, tenant: &Tenant, object: &ConfigMap) -> Result<Vpc> {
        let name = translate::domain_name(object)?;
        let mut subnets = domain_names(&self.subnet_objects(tenant, Some(&name)).await?)?;
        subnets.sort();
        Ok(Vpc {
            spec: VpcSpec::named(name),
            ready: true,
            subnets,
        })
    }
}

/// The VLAN a VPC's ConfigMap or a VLAN claim holds (a bridge link's always do).
fn claimed_vlan(object: &ConfigMap) -> Result<u16> {
    translate::vpc_vlan(object)?
        .ok_or_else(|| malformed(object, &format!("data.{}", kinds::VLAN_KEY), "missing"))
}

/// Whether a Service is an internal (ClusterIP) service of this backend.
fn is_internal_service(object: &ServiceObject) -> bool {
    matches!(
        object.spec.as_ref().and_then(|s| s.type_.as_deref()),
        None | Some("ClusterIP")
    )
}

#[async_trait]
impl Network for Multus {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn system_namespaces(&self) -> Vec<String> {
        vec![
            self.system_namespace.clone(),
            self.whereabouts_namespace.clone(),
        ]
    }

    fn capabilities(&self) -> NetworkCapabilities {
        NetworkCapabilities {
            mac_pool: self.kubemacpool,
            ..crate::capabilities(&self.link)
        }
    }

    async fn attach_interfaces(
        &self,
        tenant: &Tenant,
        _vm: &str,
        interfaces: &[NetworkInterface],
    ) -> Result<Vec<InterfaceAttachment>> {
        // Before the VM is sent: Kubemacpool's webhook gives MACs only in namespaces that
        // opted in.
        self.opt_in_to_kubemacpool(tenant).await?;
        let subnets: BTreeMap<String, SubnetSpec> = self
            .subnet_objects(tenant, None)
            .await?
            .iter()
            .map(|o| translate::subnet_spec_from(o).map(|s| (s.name.clone(), s)))
            .collect::<Result<_>>()?;
        let reservations: Vec<Reserved> = self
            .reservation_objects(tenant, None)
            .await?
            .iter()
            .map(|o| {
                Self::reservation_view(o).map(|r| Reserved {
                    name: r.name,
                    subnet: r.subnet,
                    ip: r.ip,
                    mac: Some(r.mac),
                })
            })
            .collect::<Result<_>>()?;
        // Every group (not only those named): their labels are the live keys, so a VM that
        // left a group loses its label on the running pod.
        let groups: Vec<MultiNetworkPolicy> = self
            .list_role(
                &self.typed(tenant),
                tenant,
                "security-group",
                None,
                ResourceKind::SecurityGroup,
            )
            .await?;
        let groups: BTreeSet<String> = domain_names(&groups)?.into_iter().collect();
        attach::attachments(
            tenant,
            interfaces,
            &self.link,
            &Known {
                subnets: Some(&subnets),
                reservations: &reservations,
                groups: Some(&groups),
            },
        )
    }

    async fn create_vpc(&self, tenant: &Tenant, spec: &VpcSpec) -> Result<Vpc> {
        spec.validate()?;
        if !spec.static_routes.is_empty() {
            return Err(Self::unsupported(
                "network.create_vpc",
                "static_routes (a VPC is one VLAN without a router)",
            ));
        }
        if !spec.peers.is_empty() {
            return Err(Self::unsupported(
                "network.create_vpc",
                "vpc_peering (a VPC is one VLAN without a router)",
            ));
        }
        let kind = ResourceKind::Vpc;
        kubecloud_kube::ensure_namespace(&self.client, &self.writer, tenant).await?;
        self.opt_in_to_kubemacpool(tenant).await?;
        if self
            .exists(
                &self.typed::<ConfigMap>(tenant),
                &kinds::vpc_object(&spec.name),
                kind,
                &spec.name,
            )
            .await?
        {
            return Err(Error::already_exists(kind, &spec.name));
        }
        let vlan = match self.vlan().cloned() {
            Some(vlans) => Some(self.claim_vlan(tenant, &spec.name, &vlans).await?),
            None => None,
        };
        let created = self
            .create::<ConfigMap>(
                &self.tenant_api(&kinds::config_map(), tenant),
                translate::vpc(tenant, &spec.name, vlan),
                kind,
                &spec.name,
            )
            .await;
        if let Err(err) = created {
            if let Some(id) = vlan {
                let claims = self.typed_in::<ConfigMap>(&self.system_namespace);
                self.delete(&claims, &kinds::vlan_claim(id), kind, &spec.name)
                    .await?;
            }
            return Err(err);
        }
        Ok(Vpc {
            spec: spec.clone(),
            ready: true,
            subnets: Vec::new(),
        })
    }

    async fn get_vpc(&self, tenant: &Tenant, name: &str) -> Result<Vpc> {
        let object = self.vpc_object(tenant, name).await?;
        self.vpc_view(tenant, &object).await
    }

    async fn list_vpcs(&self, tenant: &Tenant) -> Result<Vec<Vpc>> {
        let objects: Vec<ConfigMap> = self
            .list_role(&self.typed(tenant), tenant, "vpc", None, ResourceKind::Vpc)
            .await?;
        let mut out = Vec::with_capacity(objects.len());
        for o in &objects {
            out.push(self.vpc_view(tenant, o).await?);
        }
        Ok(out)
    }

    async fn delete_vpc(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::Vpc;
        let object = self.vpc_object(tenant, name).await?;
        let subnets = self.subnet_objects(tenant, Some(name)).await?;
        if !subnets.is_empty() {
            let names = domain_names(&subnets)?;
            return Err(Error::conflict(
                kind,
                name,
                format!("it has subnets: {}", names.join(", ")),
            ));
        }
        self.delete(
            &self.typed::<ConfigMap>(tenant),
            &kinds::vpc_object(name),
            kind,
            name,
        )
        .await?;
        if let Some(id) = translate::vpc_vlan(&object)? {
            let claims = self.typed_in::<ConfigMap>(&self.system_namespace);
            // Only the claim this VPC holds.
            if let Some(claim) = self
                .writer
                .get_opt(&claims, &kinds::vlan_claim(id), kind, name)
                .await?
                && kubecloud_kube::is_owned(&claim.metadata, tenant)
                && label(&claim.metadata, kubecloud_kube::NAME) == Some(name)
            {
                self.delete(&claims, &kinds::vlan_claim(id), kind, name)
                    .await?;
            }
        }
        Ok(())
    }

    async fn create_subnet(&self, tenant: &Tenant, spec: &SubnetSpec) -> Result<Subnet> {
        spec.validate()?;
        if spec.nat_outgoing {
            return Err(Self::unsupported(
                "network.create_subnet",
                "natOutgoing (a VPC is one VLAN without a router to NAT)",
            ));
        }
        if !spec.allow.is_empty() {
            return Err(Self::unsupported(
                "network.create_subnet",
                "allow (a VPC is one VLAN without a router to filter)",
            ));
        }
        if spec.cidr.addr().is_ipv6() {
            return Err(Self::unsupported("network.create_subnet", "ipv6"));
        }
        let kind = ResourceKind::Subnet;
        let vlan = self.vpc_vlan(tenant, &spec.vpc).await?;
        if self
            .exists(
                &self.typed::<Nad>(tenant),
                &kubecloud_kube::names::attachment(&spec.name),
                kind,
                &spec.name,
            )
            .await?
        {
            return Err(Error::already_exists(kind, &spec.name));
        }
        for other in self.subnet_objects(tenant, Some(&spec.vpc)).await? {
            let other = translate::subnet_spec_from(&other)?;
            if cidrs_overlap(other.cidr, spec.cidr) {
                return Err(Error::conflict(
                    kind,
                    &spec.name,
                    format!(
                        "{} overlaps subnet {:?} ({}) of VPC {:?}",
                        spec.cidr, other.name, other.cidr, spec.vpc
                    ),
                ));
            }
        }
        let created: Nad = self
            .apply(
                &self.tenant_api(&kinds::attachment(), tenant),
                translate::subnet_attachment(tenant, spec, &self.link, vlan, &[]),
                kind,
                &spec.name,
            )
            .await?;
        self.refresh_groups(tenant).await?;
        subnet_view(&created, None)
    }

    async fn get_subnet(&self, tenant: &Tenant, name: &str) -> Result<Subnet> {
        let object = self.subnet_object(tenant, name).await?;
        self.subnet_with_usage(tenant, &object).await
    }

    async fn list_subnets(&self, tenant: &Tenant) -> Result<Vec<Subnet>> {
        let objects = self.subnet_objects(tenant, None).await?;
        let mut out = Vec::with_capacity(objects.len());
        for o in &objects {
            out.push(self.subnet_with_usage(tenant, o).await?);
        }
        Ok(out)
    }

    async fn delete_subnet(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::Subnet;
        let object = self.subnet_object(tenant, name).await?;
        let spec = translate::subnet_spec_from(&object)?;
        let reservations = self.reservation_objects(tenant, Some(name)).await?;
        if !reservations.is_empty() {
            let names = domain_names(&reservations)?;
            return Err(Error::conflict(
                kind,
                name,
                format!("addresses are reserved: {}", names.join(", ")),
            ));
        }
        // Leaked allocations (their pod is gone) do not hold the subnet.
        self.reclaim_subnet(tenant, &spec).await?;
        if let Some(pool) = self.pool(tenant, &spec).await? {
            let held = allocations(&pool);
            if !held.is_empty() {
                let pods: Vec<String> = held.into_iter().map(|(_, pod, _)| pod).collect();
                return Err(Error::conflict(
                    kind,
                    name,
                    format!("addresses are in use by pods: {}", pods.join(", ")),
                ));
            }
            let pool_name = translate::pool_name(tenant, name, spec.cidr);
            self.writer
                .delete(&self.pools(), &pool_name, kind, name)
                .await?;
        }
        self.delete(
            &self.typed::<Nad>(tenant),
            &kubecloud_kube::names::attachment(name),
            kind,
            name,
        )
        .await?;
        self.refresh_groups(tenant).await
    }

    async fn watch_subnet(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Subnet>>> {
        // The subnet's attachment (its reservations) and its whereabouts pool (the pods'
        // addresses), merged: every address taken or given back is a change of one of them.
        let object = self.subnet_object(tenant, name).await?;
        let spec = translate::subnet_spec_from(&object)?;
        let nads = self.writer.states(
            &self.typed::<Nad>(tenant),
            &kubecloud_kube::names::attachment(name),
        );
        let pools = self.writer.states(
            &self.pools(),
            &translate::pool_name(tenant, name, spec.cidr),
        );
        enum Change {
            Nad(Option<Box<Nad>>),
            Pool(Option<Box<IpPool>>),
        }
        let changes = stream::select(
            nads.map(|s| s.map(|o| Change::Nad(o.map(Box::new)))),
            pools.map(|s| s.map(|p| Change::Pool(p.map(Box::new)))),
        );
        let tenant = tenant.clone();
        let states = changes
            .scan(
                (Some(object), None::<IpPool>),
                move |(nad, pool), change| {
                    let out = match change {
                        Err(e) => Some(Some(Err(e))),
                        Ok(Change::Nad(None)) => None,
                        Ok(Change::Nad(Some(o)))
                            if terminating(&o.metadata)
                                || !kubecloud_kube::is_owned(&o.metadata, &tenant) =>
                        {
                            None
                        }
                        Ok(Change::Nad(Some(o))) => {
                            *nad = Some(*o);
                            Some(nad.as_ref().map(|n| subnet_view(n, pool.as_ref())))
                        }
                        Ok(Change::Pool(p)) => {
                            *pool = p.map(|p| *p);
                            Some(nad.as_ref().map(|n| subnet_view(n, pool.as_ref())))
                        }
                    };
                    ready(out)
                },
            )
            .filter_map(ready);
        // The first state is the attachment's as read; later ones dedup identical views.
        let mut last: Option<Subnet> = None;
        Ok(states
            .filter(move |s| {
                let keep = match s {
                    Ok(view) => last.as_ref() != Some(view),
                    Err(_) => true,
                };
                if let Ok(view) = s {
                    last = Some(view.clone());
                }
                ready(keep)
            })
            .boxed())
    }

    async fn reserve_ip(&self, tenant: &Tenant, spec: &IpReservationSpec) -> Result<IpReservation> {
        spec.validate()?;
        let kind = ResourceKind::IpReservation;
        let subnet_object = self.subnet_object(tenant, &spec.subnet).await?;
        let subnet = translate::subnet_spec_from(&subnet_object)?;
        let api = self.typed::<Nad>(tenant);
        if self
            .exists(
                &api,
                &kinds::reservation_object(&spec.name),
                kind,
                &spec.name,
            )
            .await?
        {
            return Err(Error::already_exists(kind, &spec.name));
        }
        let held = self.reservation_objects(tenant, Some(&spec.subnet)).await?;
        let held: Vec<IpReservation> = held
            .iter()
            .map(Self::reservation_view)
            .collect::<Result<_>>()?;
        let pool = self.pool(tenant, &subnet).await?;
        let mut space = AddressSpace::for_subnet(&subnet);
        for r in &held {
            let _ = space.reserve(r.ip, &r.name);
        }
        for (offset, pod, _) in pool.as_ref().map(allocations).unwrap_or_default() {
            if let Some(ip) = address_at(&subnet, offset) {
                let _ = space.reserve(ip, &pod);
            }
        }
        let ip = match spec.ip {
            Some(ip) => {
                subnet.check_host_address("ip", ip)?;
                if let Some(holder) = space.holder(ip) {
                    return Err(Error::conflict(
                        ResourceKind::Subnet,
                        &spec.subnet,
                        format!("{ip} is held by {holder}"),
                    ));
                }
                ip
            }
            None => space.allocate(&spec.name)?,
        };
        let mac = match spec.mac {
            Some(mac) => {
                if let Some(other) = held.iter().find(|r| r.mac == mac) {
                    return Err(Error::conflict(
                        ResourceKind::Subnet,
                        &spec.subnet,
                        format!("MAC {mac} is held by reservation {:?}", other.name),
                    ));
                }
                mac
            }
            None => (0..)
                .map(|salt| generated_mac(tenant, &spec.subnet, &spec.name, salt))
                .find(|m| held.iter().all(|r| r.mac != *m))
                .unwrap_or(MacAddress([0x02, 0, 0, 0, 0, 1])),
        };
        let vpc = subnet.vpc.clone();
        let vlan = self.vpc_vlan(tenant, &vpc).await?;
        let desired = translate::reservation_attachment(
            tenant, &subnet, &self.link, vlan, &spec.name, ip, mac,
        );
        self.create::<Nad>(
            &self.tenant_api(&kinds::attachment(), tenant),
            desired,
            kind,
            &spec.name,
        )
        .await?;
        // Then out of whereabouts' hands; undone when that fails.
        if let Err(err) = self
            .update_reserved(tenant, &spec.subnet, Some(ip), None)
            .await
        {
            self.delete(
                &api,
                &kinds::reservation_object(&spec.name),
                kind,
                &spec.name,
            )
            .await?;
            return Err(err);
        }
        self.refresh_groups(tenant).await?;
        Ok(IpReservation {
            name: spec.name.clone(),
            subnet: spec.subnet.clone(),
            ip,
            mac,
            owner: None,
        })
    }

    async fn get_ip(&self, tenant: &Tenant, name: &str) -> Result<IpReservation> {
        let object: Nad = self
            .owned(
                &self.typed(tenant),
                &kinds::reservation_object(name),
                tenant,
                Some("reservation"),
                ResourceKind::IpReservation,
                name,
            )
            .await?;
        Self::reservation_view(&object)
    }

    async fn list_ips(&self, tenant: &Tenant, subnet: Option<&str>) -> Result<Vec<IpReservation>> {
        self.reservation_objects(tenant, subnet)
            .await?
            .iter()
            .map(Self::reservation_view)
            .collect()
    }

    async fn release_ip(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::IpReservation;
        let reservation = self.get_ip(tenant, name).await?;
        let users = self.reservation_users(tenant, name).await?;
        if !users.is_empty() {
            return Err(Error::conflict(
                kind,
                name,
                format!(
                    "the address is in use by VM(s) {}; delete or change those VMs first",
                    users.join(", ")
                ),
            ));
        }
        self.delete(
            &self.typed::<Nad>(tenant),
            &kinds::reservation_object(name),
            kind,
            name,
        )
        .await?;
        self.update_reserved(tenant, &reservation.subnet, None, Some(reservation.ip))
            .await?;
        self.refresh_groups(tenant).await
    }

    async fn create_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        spec.validate()?;
        translate::check_group(spec)?;
        let kind = ResourceKind::SecurityGroup;
        kubecloud_kube::ensure_namespace(&self.client, &self.writer, tenant).await?;
        if self
            .exists(
                &self.typed::<MultiNetworkPolicy>(tenant),
                &kinds::group_object(&spec.name),
                kind,
                &spec.name,
            )
            .await?
        {
            return Err(Error::already_exists(kind, &spec.name));
        }
        let networks = self.network_names(tenant).await?;
        let created: MultiNetworkPolicy = self
            .apply(
                &self.tenant_api(&kinds::multi_policy(), tenant),
                translate::security_group(tenant, spec, &networks)?,
                kind,
                &spec.name,
            )
            .await?;
        Ok(SecurityGroup {
            spec: translate::security_group_spec_from(&created)?,
        })
    }

    async fn update_security_group(
        &self,
        tenant: &Tenant,
        spec: &SecurityGroupSpec,
    ) -> Result<SecurityGroup> {
        spec.validate()?;
        translate::check_group(spec)?;
        let kind = ResourceKind::SecurityGroup;
        self.owned(
            &self.typed::<MultiNetworkPolicy>(tenant),
            &kinds::group_object(&spec.name),
            tenant,
            Some("security-group"),
            kind,
            &spec.name,
        )
        .await?;
        let networks = self.network_names(tenant).await?;
        let applied: MultiNetworkPolicy = self
            .apply(
                &self.tenant_api(&kinds::multi_policy(), tenant),
                translate::security_group(tenant, spec, &networks)?,
                kind,
                &spec.name,
            )
            .await?;
        Ok(SecurityGroup {
            spec: translate::security_group_spec_from(&applied)?,
        })
    }

    async fn get_security_group(&self, tenant: &Tenant, name: &str) -> Result<SecurityGroup> {
        let object: MultiNetworkPolicy = self
            .owned(
                &self.typed(tenant),
                &kinds::group_object(name),
                tenant,
                Some("security-group"),
                ResourceKind::SecurityGroup,
                name,
            )
            .await?;
        Ok(SecurityGroup {
            spec: translate::security_group_spec_from(&object)?,
        })
    }

    async fn list_security_groups(&self, tenant: &Tenant) -> Result<Vec<SecurityGroup>> {
        let groups: Vec<MultiNetworkPolicy> = self
            .list_role(
                &self.typed(tenant),
                tenant,
                "security-group",
                None,
                ResourceKind::SecurityGroup,
            )
            .await?;
        groups
            .iter()
            .map(|o| translate::security_group_spec_from(o).map(|spec| SecurityGroup { spec }))
            .collect()
    }

    async fn delete_security_group(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::SecurityGroup;
        let api = self.typed::<MultiNetworkPolicy>(tenant);
        self.owned(
            &api,
            &kinds::group_object(name),
            tenant,
            Some("security-group"),
            kind,
            name,
        )
        .await?;
        let pods = self
            .pods(
                tenant,
                &format!("{}=true", kinds::group_label(name)),
                kind,
                name,
            )
            .await?;
        if !pods.is_empty() {
            let mut vms: Vec<String> = pods
                .iter()
                .filter_map(|p| label(p, VM_POD_LABEL).or(p.name.as_deref()))
                .map(String::from)
                .collect();
            vms.sort();
            vms.dedup();
            return Err(Error::conflict(
                kind,
                name,
                format!("running VMs are in the group: {}", vms.join(", ")),
            ));
        }
        self.delete(&api, &kinds::group_object(name), kind, name)
            .await
    }

    async fn create_service(&self, tenant: &Tenant, spec: &ServiceSpec) -> Result<Service> {
        spec.validate()?;
        let kind = ResourceKind::Service;
        kubecloud_kube::ensure_namespace(&self.client, &self.writer, tenant).await?;
        if self
            .exists(
                &self.typed::<ServiceObject>(tenant),
                &spec.name,
                kind,
                &spec.name,
            )
            .await?
        {
            return Err(Error::already_exists(kind, &spec.name));
        }
        let created: ServiceObject = self
            .apply(
                &self.tenant_api(&kinds::service(), tenant),
                translate::service(tenant, spec),
                kind,
                &spec.name,
            )
            .await?;
        self.service_view(tenant, &created).await
    }

    async fn get_service(&self, tenant: &Tenant, name: &str) -> Result<Service> {
        let object: ServiceObject = self
            .owned(
                &self.typed(tenant),
                name,
                tenant,
                None,
                ResourceKind::Service,
                name,
            )
            .await?;
        if !is_internal_service(&object) {
            return Err(Error::not_found(ResourceKind::Service, name));
        }
        self.service_view(tenant, &object).await
    }

    async fn list_services(&self, tenant: &Tenant) -> Result<Vec<Service>> {
        let objects: Vec<ServiceObject> = self
            .list_any(
                &self.typed(tenant),
                &tenant_selector(tenant),
                ResourceKind::Service,
                tenant.as_str(),
            )
            .await?;
        let mut out = Vec::new();
        for o in objects.iter().filter(|o| is_internal_service(o)) {
            out.push(self.service_view(tenant, o).await?);
        }
        Ok(out)
    }

    async fn delete_service(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let kind = ResourceKind::Service;
        let api = self.typed::<ServiceObject>(tenant);
        let object = self.owned(&api, name, tenant, None, kind, name).await?;
        if !is_internal_service(&object) {
            return Err(Error::not_found(kind, name));
        }
        self.delete(&api, name, kind, name).await
    }
}
