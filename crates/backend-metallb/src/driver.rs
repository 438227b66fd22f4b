//! The [`LoadBalancer`] implementation: translate, then send through `kubecloud-kube`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use k8s_openapi::api::core::v1::{Event, Namespace, Secret, Service};
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use kubecloud_core::wait::Check;
use kubecloud_core::{
    AddressBlock, AddressPool, AddressPoolSpec, AddressRequest, Advertisement, Error, Exposure,
    ExposureSpec, LoadBalancer, LoadBalancerCapabilities, ResourceKind, Result, Tenant,
    async_trait,
};
use kubecloud_kube::exposure::{self, ingress_ip, is_load_balancer};
use kubecloud_kube::{
    MANAGED_BY, MANAGER, NAME, ensure_namespace, ensure_owned, holds, is_owned, names,
    ownership_labels, tenant_namespace, tenant_selector,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::objects::{Kind, dynamic, json};
use crate::translate::{
    self, ALLOCATED_FROM_POOL, ALLOCATION_FAILED, domain_pool, pool_object, pool_usage,
};
use crate::{BACKEND, MetalLb, shared};
use kubecloud_models::metallb::{
    BgpAdvertisement as BgpAdvertisementObject, BgpPeer as BgpPeerObject, IpAddressPool,
    L2Advertisement as L2AdvertisementObject,
};

/// Whether the live Service already says all `desired` says, and nothing the backend no longer
/// says: no dropped selector label, no dropped MetalLB annotation.
fn service_unchanged(current: &Service, desired: &Service) -> bool {
    exposure::service_unchanged(
        current,
        desired,
        &[
            translate::ADDRESS_POOL,
            translate::LOAD_BALANCER_IPS,
            translate::ALLOW_SHARED_IP,
        ],
    )
}

fn revision(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// The latest `AllocationFailed` message per involved object uid.
#[derive(Default)]
struct Failures(BTreeMap<String, (u64, String)>);

impl Failures {
    fn record(&mut self, event: &Event) {
        if event.reason.as_deref() != Some(ALLOCATION_FAILED) {
            return;
        }
        let (Some(uid), Some(message)) = (&event.involved_object.uid, &event.message) else {
            return;
        };
        let rv = revision(&event.metadata);
        let entry = self.0.entry(uid.clone()).or_insert((0, String::new()));
        if rv >= entry.0 {
            *entry = (rv, message.clone());
        }
    }

    fn of(&self, svc: &Service) -> Option<&str> {
        let uid = svc.metadata.uid.as_deref()?;
        self.0.get(uid).map(|(_, m)| m.as_str())
    }
}

/// One update seen while watching an exposure.
enum Seen {
    Service(Box<Result<Option<Service>>>),
    Events(Result<Vec<Event>>),
}

impl MetalLb {
    fn pools_api(&self) -> Api<IpAddressPool> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A typed MetalLB kind's API in MetalLB's namespace.
    fn metallb_api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn services(&self, tenant: &Tenant) -> Api<Service> {
        Api::namespaced(self.client.clone(), &tenant_namespace(tenant))
    }

    fn events(&self, tenant: &Tenant) -> Api<Event> {
        Api::namespaced(self.client.clone(), &tenant_namespace(tenant))
    }

    fn secrets(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    async fn list<K>(
        &self,
        api: &Api<K>,
        params: ListParams,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Vec<K>>
    where
        K: Resource
            + Clone
            + std::fmt::Debug
            + DeserializeOwned
            + Serialize
            + Send
            + Sync
            + 'static,
    {
        // Through the Writer: identical lists within one `shared_lists` scope (a plan) are sent
        // once.
        self.writer.list(api, &params, kind, name).await
    }

    /// The tenant's pool object `object` (`NotFound` naming `pool` if absent or another's).
    async fn owned_pool(&self, tenant: &Tenant, pool: &str) -> Result<IpAddressPool> {
        let object = pool_object(tenant, pool);
        let found = self
            .writer
            .get_opt(&self.pools_api(), &object, ResourceKind::AddressPool, pool)
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, pool))?;
        ensure_owned(found.meta(), tenant, ResourceKind::AddressPool, pool)?;
        Ok(found)
    }

    /// Refuses a pool whose name is taken or whose addresses overlap any other pool (any
    /// tenant's or the administrator's); nothing is sent. When `creating`, the tenant's own pool
    /// of that name is refused too unless it is incomplete (an interrupted create or delete):
    /// returns whether such a pool is there to be completed.
    async fn check_pool(
        &self,
        tenant: &Tenant,
        spec: &AddressPoolSpec,
        creating: bool,
    ) -> Result<bool> {
        let mut resuming = false;
        let object = pool_object(tenant, &spec.name);
        let all = self
            .list(
                &self.pools_api(),
                ListParams::default(),
                ResourceKind::AddressPool,
                &spec.name,
            )
            .await?;
        let mine: Vec<_> = spec.addresses.iter().map(AddressBlock::range).collect();
        for other in &all {
            let owned = is_owned(other.meta(), tenant);
            if other.name_any() == object {
                if !owned {
                    return Err(Error::conflict(
                        ResourceKind::AddressPool,
                        &spec.name,
                        format!(
                            "the name {object:?} is taken by an address pool kubecloud does not manage for this tenant"
                        ),
                    ));
                }
                if creating {
                    let incomplete = self
                        .load_pools(tenant, Some(&spec.name))
                        .await?
                        .iter()
                        .any(|p| p.spec.name == spec.name && p.incomplete);
                    if !incomplete {
                        return Err(Error::already_exists(ResourceKind::AddressPool, &spec.name));
                    }
                    resuming = true;
                }
                continue;
            }
            let overlaps = other
                .spec
                .addresses
                .iter()
                .filter_map(|b| translate::parse_block(b))
                .any(|b| mine.iter().any(|m| m.overlaps(&b.range())));
            if overlaps {
                let reason = match other.labels().get(NAME).filter(|_| owned) {
                    Some(name) => format!("its addresses overlap address pool {name:?}"),
                    None => "its addresses overlap an address pool of another tenant or of the \
                             cluster administrator"
                        .to_string(),
                };
                return Err(Error::conflict(
                    ResourceKind::AddressPool,
                    &spec.name,
                    reason,
                ));
            }
        }
        Ok(resuming)
    }

    /// Sends the pool's objects (each only if it would change), the `IPAddressPool` first and
    /// its advertisement last, so that a pool interrupted half-way is found (and reads as
    /// incomplete) rather than leaving parts nothing lists; then removes objects of the pool that
    /// are no longer wanted (a peer dropped, L2 switched to BGP).
    async fn write_pool(
        &self,
        tenant: &Tenant,
        spec: &AddressPoolSpec,
        prune: bool,
    ) -> Result<AddressPool> {
        let objects = translate::pool_objects(tenant, &self.namespace, spec)?;
        let name = spec.name.as_str();
        let kind = ResourceKind::AddressPool;
        let secrets = self.secrets();
        // Every object is read, and checked to be this pool's, before anything is written:
        // another tenant's, another pool's (pool `a-b` with peer `c` and pool `a` with peer
        // `b-c` name their peers alike) or a foreign object at one of the names refuses the
        // whole pool, naming the holder.
        let mut current_secrets = Vec::new();
        for secret in &objects.secrets {
            let object = secret.metadata.name.clone().unwrap_or_default();
            let current = self.writer.get_opt(&secrets, &object, kind, name).await?;
            if let Some(current) = &current {
                names::ensure_name_free_for(current.meta(), tenant, kind, name, &object)?;
            }
            current_secrets.push((secret, object, current));
        }
        let mut current_objects = Vec::new();
        for value in objects.metallb_objects() {
            let k = Kind::of(value).ok_or_else(|| Error::invalid("kind", "not a MetalLB kind"))?;
            let api = k.api(&self.client, &self.namespace);
            let desired = dynamic(value)?;
            let object = desired.name_any();
            let current = self.writer.get_opt(&api, &object, kind, name).await?;
            if let Some(current) = &current {
                names::ensure_name_free_for(current.meta(), tenant, kind, name, &object)?;
            }
            current_objects.push((k, api, value, desired, object, current));
        }
        // The pool first, then the Secrets its peers name (before the first other object: every
        // pool has an advertisement), then the rest in order.
        current_objects.sort_by_key(|(k, ..)| *k != Kind::IpAddressPool);
        let mut pending_secrets = Some(current_secrets);
        let mut kept = BTreeSet::new();
        let mut written = BTreeMap::new();
        for (k, api, value, desired, object, current) in current_objects {
            if k != Kind::IpAddressPool
                && let Some(current_secrets) = pending_secrets.take()
            {
                for (secret, object, current) in current_secrets {
                    self.writer
                        .apply_if_changed(&secrets, current.as_ref(), secret, kind, name)
                        .await?;
                    kept.insert(("Secret".to_string(), object));
                }
            }
            // The backend owns the whole spec of its MetalLB objects: a field it no longer
            // sets (a dropped `bfdProfile`) is a change too, which a subset check would miss;
            // the CRD defaults the API server filled in are not.
            let unchanged = match &current {
                Some(c) => {
                    translate::same_spec(&json(c)?["spec"], &value["spec"]) && holds(c, &desired)
                }
                None => false,
            };
            let live = match current {
                Some(current) if unchanged => current,
                _ => self.writer.apply(&api, &desired, kind, name).await?,
            };
            written.insert((format!("{k:?}"), object), live);
        }
        if prune {
            self.remove_pool_objects(tenant, name, |k, object| {
                let key = (k.to_string(), object.to_string());
                written.contains_key(&key) || kept.contains(&key)
            })
            .await?;
        }
        let (assigned, available) =
            match written.into_iter().find(|((k, _), _)| k == "IpAddressPool") {
                Some((_, live)) => {
                    let pool: IpAddressPool = kubecloud_kube::convert(&live, BACKEND, kind, name)?;
                    pool_usage(&pool, translate::capacity(spec))
                }
                None => (0, translate::capacity(spec)),
            };
        tracing::debug!(%tenant, pool = name, "address pool written");
        Ok(AddressPool {
            spec: spec.clone(),
            assigned,
            available,
            shared: false,
            incomplete: false,
        })
    }

    /// Deletes the pool's objects (those with its ownership labels) that `keep` does not keep:
    /// its advertisement first, then peers, profiles and community, then the peers' Secrets,
    /// the `IPAddressPool` last (so an interrupted delete leaves a pool that reads as incomplete,
    /// never parts without their pool).
    async fn remove_pool_objects(
        &self,
        tenant: &Tenant,
        pool: &str,
        keep: impl Fn(&str, &str) -> bool,
    ) -> Result<()> {
        let selector = format!("{},{NAME}={pool}", tenant_selector(tenant));
        let params = || ListParams::default().labels(&selector);
        let kind = ResourceKind::AddressPool;
        let secrets = self.secrets();
        for k in Kind::ALL_POOL_LAST {
            if k == Kind::IpAddressPool {
                for secret in self.list(&secrets, params(), kind, pool).await? {
                    let object = secret.name_any();
                    if !keep("Secret", &object) {
                        self.writer.delete(&secrets, &object, kind, pool).await?;
                    }
                }
            }
            let api = k.api(&self.client, &self.namespace);
            for found in self.list(&api, params(), kind, pool).await? {
                let object = found.name_any();
                if !keep(&format!("{k:?}"), &object) {
                    self.writer.delete(&api, &object, kind, pool).await?;
                }
            }
        }
        Ok(())
    }

    /// The tenant's pools (all, or the one named `only`) read back from their objects.
    async fn load_pools(&self, tenant: &Tenant, only: Option<&str>) -> Result<Vec<AddressPool>> {
        let mut selector = tenant_selector(tenant);
        if let Some(name) = only {
            selector.push_str(&format!(",{NAME}={name}"));
        }
        let params = || ListParams::default().labels(&selector);
        let kind = ResourceKind::AddressPool;
        let what = only.unwrap_or("*");
        // All pools, filtered here: the same list as `load_shared`'s, so a plan reading both
        // sends it once.
        let pools: Vec<IpAddressPool> = self
            .list(&self.pools_api(), ListParams::default(), kind, what)
            .await?
            .into_iter()
            .filter(|p| is_owned(p.meta(), tenant))
            .filter(|p| only.is_none_or(|n| p.labels().get(NAME).map(String::as_str) == Some(n)))
            .collect();
        if pools.is_empty() {
            return Ok(Vec::new());
        }
        let l2s: Vec<L2AdvertisementObject> =
            self.list(&self.metallb_api(), params(), kind, what).await?;
        let bgps: Vec<BgpAdvertisementObject> =
            self.list(&self.metallb_api(), params(), kind, what).await?;
        let peers: Vec<BgpPeerObject> =
            self.list(&self.metallb_api(), params(), kind, what).await?;
        let mut passwords = BTreeMap::new();
        if peers.iter().any(|p| p.spec.password_secret.is_some()) {
            for secret in self.list(&self.secrets(), params(), kind, what).await? {
                if let Some(password) = translate::secret_password(&secret) {
                    passwords.insert(secret.name_any(), password);
                }
            }
        }
        let mut out = Vec::new();
        for pool in &pools {
            let object = pool.metadata.name.as_deref();
            let l2 = l2s.iter().find(|o| o.metadata.name.as_deref() == object);
            let bgp = bgps.iter().find(|o| o.metadata.name.as_deref() == object);
            let (spec, complete) = translate::read_pool(tenant, pool, l2, bgp, &peers, &passwords)?;
            let (assigned, available) = pool_usage(pool, translate::capacity(&spec));
            out.push(AddressPool {
                spec,
                assigned,
                available,
                shared: false,
                incomplete: !complete,
            });
        }
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    /// The administrator's pools the tenant may use (all, or the one named `only`).
    async fn load_shared(&self, tenant: &Tenant, only: Option<&str>) -> Result<Vec<AddressPool>> {
        let kind = ResourceKind::AddressPool;
        let what = only.unwrap_or("*");
        let all = self
            .list(&self.pools_api(), ListParams::default(), kind, what)
            .await?;
        let admin: Vec<IpAddressPool> = all
            .into_iter()
            .filter(|p| p.labels().get(MANAGED_BY).map(String::as_str) != Some(MANAGER))
            .filter(|p| only.is_none_or(|n| p.name_any() == n))
            .collect();
        if admin.is_empty() {
            return Ok(Vec::new());
        }
        let namespace = tenant_namespace(tenant);
        let mut namespace_labels = BTreeMap::new();
        if admin.iter().any(|p| {
            p.spec
                .service_allocation
                .as_ref()
                .is_some_and(|a| a.namespace_selectors.is_some())
        }) {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            if let Some(ns) = self
                .writer
                .get_opt(
                    &namespaces,
                    &namespace,
                    ResourceKind::Tenant,
                    tenant.as_str(),
                )
                .await?
            {
                namespace_labels = ns.metadata.labels.unwrap_or_default();
            }
        }
        let mut service_labels = ownership_labels(tenant, "");
        service_labels.remove(NAME);
        let usable: Vec<_> = admin
            .into_iter()
            .filter(|p| shared::admits(p, &namespace, &namespace_labels, &service_labels))
            .collect();
        if usable.is_empty() {
            return Ok(Vec::new());
        }
        let all = ListParams::default;
        let l2s: Vec<L2AdvertisementObject> =
            self.list(&self.metallb_api(), all(), kind, what).await?;
        let bgps: Vec<BgpAdvertisementObject> =
            self.list(&self.metallb_api(), all(), kind, what).await?;
        let peers: Vec<BgpPeerObject> = if bgps.is_empty() {
            Vec::new()
        } else {
            self.list(&self.metallb_api(), all(), kind, what).await?
        };
        let mut out: Vec<AddressPool> = usable
            .iter()
            .filter_map(|p| shared::view(p, &l2s, &bgps, &peers))
            .collect();
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    /// The tenant's Service `name` (`NotFound` if absent or not kubecloud's for this tenant).
    async fn owned_service(&self, tenant: &Tenant, name: &str) -> Result<Service> {
        let svc = self
            .writer
            .get_opt(&self.services(tenant), name, ResourceKind::Exposure, name)
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::Exposure, name))?;
        ensure_owned(&svc.metadata, tenant, ResourceKind::Exposure, name)?;
        if !is_load_balancer(&svc) {
            // An internal (ClusterIP) service of the network backend, not an exposure.
            return Err(Error::not_found(ResourceKind::Exposure, name));
        }
        Ok(svc)
    }

    /// MetalLB's `AllocationFailed` events in the tenant's namespace (about `name`, or all).
    async fn failures(&self, tenant: &Tenant, name: Option<&str>) -> Result<Failures> {
        let fields = match name {
            Some(name) => format!("involvedObject.name={name},reason={ALLOCATION_FAILED}"),
            None => format!("reason={ALLOCATION_FAILED}"),
        };
        let events = self
            .list(
                &self.events(tenant),
                ListParams::default().fields(&fields),
                ResourceKind::Exposure,
                name.unwrap_or("*"),
            )
            .await?;
        let mut failures = Failures::default();
        events.iter().for_each(|e| failures.record(e));
        Ok(failures)
    }

    /// Creates or updates a pool to match `spec`: idempotent, and re-applying an unchanged spec
    /// sends no write. Objects the spec no longer needs (a removed peer, the L2 announcement of
    /// a pool switched to BGP) are deleted.
    ///
    /// ```no_run
    /// # async fn demo(lb: kubecloud_metallb::MetalLb) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{AddressBlock, AddressPoolSpec, Tenant};
    /// let acme = Tenant::new("acme")?;
    /// let spec = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
    /// lb.apply_pool(&acme, &spec).await?;
    /// lb.apply_pool(&acme, &spec).await?; // reads only
    /// # Ok(()) }
    /// ```
    pub async fn apply_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        translate::pool_objects(tenant, &self.namespace, spec)?;
        self.check_pool(tenant, spec, false).await?;
        self.write_pool(tenant, spec, true).await
    }

    /// Creates or updates an exposure to match `spec`: idempotent, and re-applying an unchanged
    /// spec sends no write.
    pub async fn apply_exposure(&self, tenant: &Tenant, spec: &ExposureSpec) -> Result<Exposure> {
        let (svc, current) = self.prepare_exposure(tenant, spec).await?;
        if let Some(current) = &current {
            ensure_owned(
                &current.metadata,
                tenant,
                ResourceKind::Exposure,
                &spec.name,
            )
            .map_err(|_| {
                Error::conflict(
                    ResourceKind::Exposure,
                    &spec.name,
                    "a Service of that name exists and is not kubecloud's",
                )
            })?;
        }
        ensure_namespace(&self.client, &self.writer, tenant).await?;
        let unchanged = current.as_ref().is_some_and(|c| service_unchanged(c, &svc));
        let live = match current {
            Some(current) if unchanged => current,
            _ => {
                self.writer
                    .apply(
                        &self.services(tenant),
                        &svc,
                        ResourceKind::Exposure,
                        &spec.name,
                    )
                    .await?
            }
        };
        let failures = self.failures(tenant, Some(&spec.name)).await?;
        Ok(translate::exposure(tenant, &live, failures.of(&live)))
    }

    /// Translates and checks an exposure (its pool must be the tenant's); returns the Service to
    /// send and the live one, if any.
    async fn prepare_exposure(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
    ) -> Result<(Service, Option<Service>)> {
        let mut svc = translate::service(tenant, spec)?;
        if let AddressRequest::Pool(name) = &spec.address {
            let pool = match self.owned_pool(tenant, name).await {
                Err(err) if err.is_not_found() => {
                    let shared = self.load_shared(tenant, Some(name)).await?;
                    if shared.is_empty() {
                        return Err(err);
                    }
                    // The administrator's pool goes by its own object name.
                    if let Some(a) = svc.metadata.annotations.as_mut() {
                        a.insert(translate::ADDRESS_POOL.to_string(), name.clone());
                    }
                    self.writer
                        .get_opt(&self.pools_api(), name, ResourceKind::AddressPool, name)
                        .await?
                        .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, name))?
                }
                other => other?,
            };
            let blocks: Vec<AddressBlock> = pool
                .spec
                .addresses
                .iter()
                .filter_map(|b| translate::parse_block(b))
                .collect();
            if !blocks.is_empty() && blocks.iter().all(|b| b.range().first.is_ipv6()) {
                translate::single_stack_ipv6(&mut svc);
            }
        }
        // The tenant's Services as the shared watch of them knows them: exposing many
        // services reads none of them one by one.
        let current = self
            .writer
            .current(
                &self.services(tenant),
                &spec.name,
                ResourceKind::Exposure,
                &spec.name,
            )
            .await?;
        Ok((svc, current))
    }
}

#[async_trait]
impl LoadBalancer for MetalLb {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    /// MetalLB's namespace: its pools, peers and the peers' password Secrets live there.
    fn system_namespaces(&self) -> Vec<String> {
        vec![self.namespace.clone()]
    }

    fn capabilities(&self) -> LoadBalancerCapabilities {
        self.capabilities
    }

    async fn create_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        translate::pool_objects(tenant, &self.namespace, spec)?;
        if matches!(spec.advertisement, Advertisement::Bgp(_)) && !self.capabilities.bgp {
            return Err(Error::unsupported(
                BACKEND,
                "load_balancer.create_pool",
                "bgp",
            ));
        }
        // Completing an incomplete pool also removes parts of it the spec does not want (the
        // peers of an interrupted BGP pool now made L2).
        let resuming = self.check_pool(tenant, spec, true).await?;
        self.write_pool(tenant, spec, resuming).await
    }

    async fn update_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        translate::pool_objects(tenant, &self.namespace, spec)?;
        if matches!(spec.advertisement, Advertisement::Bgp(_)) && !self.capabilities.bgp {
            return Err(Error::unsupported(
                BACKEND,
                "load_balancer.update_pool",
                "bgp",
            ));
        }
        let current = self
            .load_pools(tenant, Some(&spec.name))
            .await?
            .into_iter()
            .find(|p| p.spec.name == spec.name);
        let Some(current) = current else {
            if !self.load_shared(tenant, Some(&spec.name)).await?.is_empty() {
                return Err(Error::conflict(
                    ResourceKind::AddressPool,
                    &spec.name,
                    "the pool is shared by the cluster administrator; tenants cannot change it",
                ));
            }
            return Err(Error::not_found(ResourceKind::AddressPool, &spec.name));
        };
        spec.check_update_of(&current.spec)?;
        // What applying does after its translation (done above): each object is sent only if it
        // changes (a rotated password rewrites one Secret; a new hold time one BGPPeer), and
        // peers no longer wanted go.
        self.check_pool(tenant, spec, false).await?;
        self.write_pool(tenant, spec, true).await
    }

    async fn get_pool(&self, tenant: &Tenant, name: &str) -> Result<AddressPool> {
        kubecloud_core::validate_name("name", name)
            .map_err(|_| Error::not_found(ResourceKind::AddressPool, name))?;
        if let Some(own) = self
            .load_pools(tenant, Some(name))
            .await?
            .into_iter()
            .find(|p| p.spec.name == name)
        {
            return Ok(own);
        }
        self.load_shared(tenant, Some(name))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, name))
    }

    async fn list_pools(&self, tenant: &Tenant) -> Result<Vec<AddressPool>> {
        let mut pools = self.load_pools(tenant, None).await?;
        pools.extend(self.load_shared(tenant, None).await?);
        Ok(pools)
    }

    async fn delete_pool(&self, tenant: &Tenant, name: &str) -> Result<()> {
        kubecloud_core::validate_name("name", name)
            .map_err(|_| Error::not_found(ResourceKind::AddressPool, name))?;
        let pool = match self.owned_pool(tenant, name).await {
            Err(err) if err.is_not_found() => {
                if self.load_shared(tenant, Some(name)).await?.is_empty() {
                    return Err(err);
                }
                return Err(Error::conflict(
                    ResourceKind::AddressPool,
                    name,
                    "the pool is shared by the cluster administrator; tenants cannot delete it",
                ));
            }
            other => other?,
        };
        let object = pool.name_any();
        let services = self
            .list(
                &self.services(tenant),
                ListParams::default().labels(&tenant_selector(tenant)),
                ResourceKind::AddressPool,
                name,
            )
            .await?;
        let in_use: BTreeSet<IpAddr> = services
            .iter()
            .filter(|s| s.annotations().get(ALLOCATED_FROM_POOL) == Some(&object))
            .filter_map(ingress_ip)
            .collect();
        let (assigned, _) = pool_usage(&pool, 0);
        let assigned = assigned.max(in_use.len() as u128);
        if assigned > 0 {
            return Err(Error::conflict(
                ResourceKind::AddressPool,
                name,
                format!("{assigned} address(es) are assigned from it"),
            ));
        }
        self.remove_pool_objects(tenant, name, |_, _| false).await?;
        tracing::debug!(%tenant, pool = name, "address pool deleted");
        Ok(())
    }

    async fn expose(&self, tenant: &Tenant, spec: &ExposureSpec) -> Result<Exposure> {
        let (svc, current) = self.prepare_exposure(tenant, spec).await?;
        if current.is_some() {
            return Err(Error::already_exists(ResourceKind::Exposure, &spec.name));
        }
        ensure_namespace(&self.client, &self.writer, tenant).await?;
        self.writer
            .apply(
                &self.services(tenant),
                &svc,
                ResourceKind::Exposure,
                &spec.name,
            )
            .await?;
        tracing::debug!(%tenant, exposure = %spec.name, "exposure created");
        Ok(Exposure {
            spec: spec.clone(),
            ip: None,
            pool: None,
            state: kubecloud_core::ExposureState::Pending,
        })
    }

    async fn get_exposure(&self, tenant: &Tenant, name: &str) -> Result<Exposure> {
        let svc = self.owned_service(tenant, name).await?;
        let failures = if ingress_ip(&svc).is_some() {
            Failures::default()
        } else {
            self.failures(tenant, Some(name)).await?
        };
        Ok(translate::exposure(tenant, &svc, failures.of(&svc)))
    }

    async fn list_exposures(&self, tenant: &Tenant) -> Result<Vec<Exposure>> {
        let services = self
            .list(
                &self.services(tenant),
                ListParams::default().labels(&tenant_selector(tenant)),
                ResourceKind::Exposure,
                "*",
            )
            .await?;
        let failures = if services.iter().any(|s| ingress_ip(s).is_none()) {
            self.failures(tenant, None).await?
        } else {
            Failures::default()
        };
        let mut out: Vec<Exposure> = services
            .iter()
            .filter(|s| is_load_balancer(s))
            .map(|s| translate::exposure(tenant, s, failures.of(s)))
            .collect();
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    async fn release(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let svc = self.owned_service(tenant, name).await?;
        // When this is the address's last user, wait (bounded) until MetalLB has counted it free,
        // so pool usage read after `release` is current; not inside `wait::send_only` (an apply
        // that does not wait), where nothing later depends on it.
        let mut settle = None;
        if kubecloud_core::wait::controllers_awaited()
            && let (Some(ip), Some(object)) =
                (ingress_ip(&svc), svc.annotations().get(ALLOCATED_FROM_POOL))
            && domain_pool(tenant, object).is_some()
        {
            let services = self
                .list(
                    &self.services(tenant),
                    ListParams::default().labels(&tenant_selector(tenant)),
                    ResourceKind::Exposure,
                    name,
                )
                .await?;
            let shared = services
                .iter()
                .any(|s| s.name_any() != name && ingress_ip(s) == Some(ip));
            if !shared
                && let Some(pool) = self
                    .writer
                    .get_opt(&self.pools_api(), object, ResourceKind::AddressPool, object)
                    .await?
            {
                settle = Some((
                    object.clone(),
                    pool_usage(&pool, 0).0,
                    revision(&pool.metadata),
                ));
            }
        }
        self.writer
            .delete(&self.services(tenant), name, ResourceKind::Exposure, name)
            .await?;
        if let Some((object, before, read_at)) = settle
            && before > 0
        {
            let outcome = self
                .writer
                .wait_for(
                    &self.pools_api(),
                    &object,
                    ResourceKind::AddressPool,
                    &object,
                    self.release_settle,
                    // A wait starts from the shared watch's store, which may be older than the
                    // read above (a state before the last assignment was counted has a lower
                    // usage too): only a state newer than that read counts.
                    |pool| match pool {
                        None => Check::Met,
                        Some(p) if revision(&p.metadata) <= read_at => Check::Pending,
                        Some(p) if pool_usage(p, 0).0 < before => Check::Met,
                        Some(_) => Check::Pending,
                    },
                )
                .await;
            if let Err(err) = outcome
                && !err.is_not_found()
            {
                tracing::debug!(%tenant, exposure = name, error = %err, "pool usage not updated yet");
            }
        }
        tracing::debug!(%tenant, exposure = name, "exposure released");
        Ok(())
    }

    async fn watch_exposure(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Exposure>>> {
        // The first state comes from the shared watch of the tenant's Services (read from the
        // server only when it lags behind a state this backend waited for), not a read.
        let api = self.services(tenant);
        let first = match self
            .writer
            .current(&api, name, ResourceKind::Exposure, name)
            .await?
        {
            Some(svc) if is_owned(&svc.metadata, tenant) && is_load_balancer(&svc) => svc,
            _ => return Err(Error::not_found(ResourceKind::Exposure, name)),
        };
        let services = self.writer.states(&api, name);
        let services = services.map(|s| Seen::Service(Box::new(s)));
        // MetalLB's `AllocationFailed` Events of the tenant, through one shared watch for all
        // exposures being waited for (not one per exposure); each keeps those naming its
        // Service's uid.
        let events = self
            .writer
            .selected(&self.events(tenant), &format!("reason={ALLOCATION_FAILED}"))
            .map(Seen::Events);
        let merged = stream::select(services, events).boxed();
        let tenant = tenant.clone();
        let start = (merged, Some(first), Failures::default(), None::<Exposure>);
        let states = stream::unfold(
            start,
            move |(mut merged, mut svc, mut failures, mut last)| {
                let tenant = tenant.clone();
                async move {
                    loop {
                        if let Some(current) = &svc {
                            let exposure =
                                translate::exposure(&tenant, current, failures.of(current));
                            if last.as_ref() != Some(&exposure) {
                                last = Some(exposure.clone());
                                return Some((Ok(exposure), (merged, svc, failures, last)));
                            }
                        }
                        match merged.next().await? {
                            Seen::Service(seen) => match *seen {
                                Ok(Some(s)) => {
                                    if !is_owned(&s.metadata, &tenant) {
                                        return None;
                                    }
                                    svc = Some(s);
                                }
                                Ok(None) => return None,
                                Err(err) => {
                                    tracing::debug!(error = %err, "service watch error; it resumes");
                                }
                            },
                            Seen::Events(Ok(events)) => {
                                events.iter().for_each(|e| failures.record(e))
                            }
                            Seen::Events(Err(err)) => {
                                tracing::debug!(error = %err, "event watch error; it resumes");
                            }
                        }
                    }
                }
            },
        );
        Ok(states.boxed())
    }
}
