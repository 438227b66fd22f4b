//! The [`LoadBalancer`] implementation: translate, then send through `kubecloud-kube`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Service};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kubecloud_core::{
    AddressPool, AddressPoolSpec, AddressRequest, Error, Exposure, ExposureSpec, ExposureState,
    LoadBalancer, LoadBalancerCapabilities, ResourceKind, Result, Tenant, async_trait,
};
use kubecloud_kube::exposure::{self, is_load_balancer};
use kubecloud_kube::{
    FIELD_MANAGER, ensure_namespace, ensure_owned, from_kube, is_owned, tenant_namespace,
    tenant_selector,
};

use crate::translate::{self, GLOBAL, PoolView};
use crate::{BACKEND, KubeVip};

const ATTEMPTS: usize = 8;

/// Whether the live Service already says all `desired` says.
fn service_unchanged(current: &Service, desired: &Service) -> bool {
    exposure::service_unchanged(
        current,
        desired,
        &[
            translate::REQUESTED_IP,
            translate::SHARED_IP,
            translate::ADDRESS_POOL,
            translate::SHARING_KEY,
        ],
    )
}

fn revision(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

/// The latest failure message per involved object uid.
#[derive(Default)]
struct Failures(BTreeMap<String, (u64, String)>);

impl Failures {
    fn record(&mut self, event: &Event) {
        if !translate::FAILURE_REASONS.contains(&event.reason.as_deref().unwrap_or_default()) {
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

enum Seen {
    Service(Box<Result<Option<Service>>>),
    Events(Result<Vec<Event>>),
}

fn ports_of(spec: &ExposureSpec) -> BTreeSet<u16> {
    spec.ports.iter().map(|p| p.port).collect()
}

impl KubeVip {
    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.settings.config_map.0)
    }

    fn services(&self, tenant: &Tenant) -> Api<Service> {
        Api::namespaced(self.client.clone(), &tenant_namespace(tenant))
    }

    fn events(&self, tenant: &Tenant) -> Api<Event> {
        Api::namespaced(self.client.clone(), &tenant_namespace(tenant))
    }

    fn failure_reason(&self) -> &'static str {
        match self.settings.load_balancer_class {
            None => translate::FAILURE_REASONS[0],
            Some(_) => translate::FAILURE_REASONS[1],
        }
    }

    async fn config_map(&self, name: &str) -> Result<Option<ConfigMap>> {
        self.writer
            .get_opt(
                &self.config_maps(),
                &self.settings.config_map.1,
                ResourceKind::AddressPool,
                name,
            )
            .await
    }

    async fn view(&self, tenant: &Tenant, name: &str) -> Result<PoolView> {
        let cm = self.config_map(name).await?;
        translate::read_pools(cm.as_ref(), &tenant_namespace(tenant), &self.settings)
    }

    async fn list_services(
        &self,
        api: &Api<Service>,
        params: &ListParams,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Vec<Service>> {
        self.writer.list(api, params, kind, name).await
    }

    /// The LoadBalancer Services of the tenant's namespace (any, not only kubecloud's: all take
    /// addresses from the namespace's pool).
    async fn namespace_services(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        name: &str,
    ) -> Result<Vec<Service>> {
        Ok(self
            .list_services(&self.services(tenant), &ListParams::default(), kind, name)
            .await?
            .into_iter()
            .filter(is_load_balancer)
            .collect())
    }

    /// The distinct addresses `services` hold inside `spec`'s blocks.
    fn assigned(services: &[Service], ranges: &[kubecloud_core::IpRange]) -> u128 {
        let held: BTreeSet<IpAddr> = services
            .iter()
            .flat_map(translate::held)
            .filter(|ip| ranges.iter().any(|r| r.contains(*ip)))
            .collect();
        held.len() as u128
    }

    async fn pools(&self, tenant: &Tenant, what: &str) -> Result<Vec<AddressPool>> {
        let view = self.view(tenant, what).await?;
        let kind = ResourceKind::AddressPool;
        let mut out = Vec::new();
        if let Some(own) = &view.own {
            let services = self.namespace_services(tenant, kind, what).await?;
            let ranges: Vec<_> = own.spec.addresses.iter().map(|b| b.range()).collect();
            let assigned = Self::assigned(&services, &ranges);
            out.push(AddressPool {
                available: translate::capacity(&own.spec).saturating_sub(assigned),
                assigned,
                spec: own.spec.clone(),
                shared: false,
                incomplete: own.incomplete,
            });
        }
        if let Some(global) = &view.global {
            let all: Api<Service> = Api::all(self.client.clone());
            let services: Vec<Service> = self
                .list_services(&all, &ListParams::default(), kind, what)
                .await?
                .into_iter()
                .filter(is_load_balancer)
                .collect();
            let assigned = Self::assigned(&services, global);
            let addresses: Vec<kubecloud_core::AddressBlock> = global
                .iter()
                .map(|r| kubecloud_core::AddressBlock::Range(*r))
                .collect();
            let spec = AddressPoolSpec {
                addresses,
                ..AddressPoolSpec::l2(GLOBAL, Vec::new())
            };
            out.push(AddressPool {
                available: spec.size().saturating_sub(assigned),
                assigned,
                spec,
                shared: true,
                incomplete: false,
            });
        }
        Ok(out)
    }

    /// Sends `patch` (built from a fresh read of the ConfigMap by `build`, which also checks)
    /// with the ConfigMap's resourceVersion; re-read and redone on a conflict. Creates the
    /// ConfigMap when it is missing.
    async fn update_config<F>(&self, name: &str, build: F) -> Result<()>
    where
        F: Fn(Option<&ConfigMap>) -> Result<Option<serde_json::Value>>,
    {
        let kind = ResourceKind::AddressPool;
        let api = self.config_maps();
        let cm_name = &self.settings.config_map.1;
        for _ in 0..ATTEMPTS {
            let current = self.config_map(name).await?;
            let Some(patch) = build(current.as_ref())? else {
                return Ok(());
            };
            match current {
                Some(_) => {
                    let params = PatchParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..PatchParams::default()
                    };
                    match api.patch(cm_name, &params, &Patch::Merge(&patch)).await {
                        Ok(_) => return Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => return Err(from_kube(BACKEND, kind, name, e)),
                    }
                }
                None => {
                    // Removals (nulls) mean nothing in a new object.
                    let mut fresh = patch.clone();
                    for part in ["/metadata/annotations", "/data"] {
                        if let Some(map) = fresh.pointer_mut(part).and_then(|v| v.as_object_mut()) {
                            map.retain(|_, v| !v.is_null());
                        }
                    }
                    let mut object: ConfigMap = serde_json::from_value(fresh)
                        .map_err(|e| Error::backend(BACKEND, "ConfigMap", false, e))?;
                    object.metadata.name = Some(cm_name.clone());
                    object.metadata.namespace = Some(self.settings.config_map.0.clone());
                    object.metadata.resource_version = None;
                    let params = PostParams {
                        field_manager: Some(FIELD_MANAGER.into()),
                        ..PostParams::default()
                    };
                    match api.create(&params, &object).await {
                        Ok(_) => return Ok(()),
                        Err(kube::Error::Api(s)) if s.code == 409 => continue,
                        Err(e) => return Err(from_kube(BACKEND, kind, name, e)),
                    }
                }
            }
        }
        Err(Error::backend(
            BACKEND,
            format!(
                "the ConfigMap {}/{} kept changing while address pool {name:?} was written",
                self.settings.config_map.0, cm_name
            ),
            true,
            std::io::Error::other("resourceVersion conflicts"),
        ))
    }

    /// Checks a pool against the ConfigMap as it is: overlaps with any other entry, the name,
    /// one pool per tenant. Returns the patch to send, or `None` when nothing changes.
    fn plan_pool(
        &self,
        tenant: &Tenant,
        spec: &AddressPoolSpec,
        cm: Option<&ConfigMap>,
        creating: bool,
    ) -> Result<Option<serde_json::Value>> {
        let ns = tenant_namespace(tenant);
        let view = translate::read_pools(cm, &ns, &self.settings)?;
        let own_keys = translate::keys(&ns);
        let mine: Vec<_> = spec.addresses.iter().map(|b| b.range()).collect();
        for (key, ranges) in &view.entries {
            let same_pool = view.own.as_ref().is_some_and(|o| o.spec.name == spec.name);
            if own_keys.contains(key) && same_pool {
                continue;
            }
            let ranges = ranges.as_ref().map_err(|why| {
                Error::conflict(
                    ResourceKind::AddressPool,
                    &spec.name,
                    format!("the kubevip ConfigMap's entry {key} cannot be read ({why}), so overlaps cannot be ruled out"),
                )
            })?;
            if ranges.iter().any(|r| mine.iter().any(|m| m.overlaps(r))) {
                let whose = if let (true, Some(own)) = (own_keys.contains(key), &view.own) {
                    format!("address pool {:?}", own.spec.name)
                } else if own_keys.contains(key) {
                    "the namespace's own entry, which is not kubecloud's".to_string()
                } else {
                    format!("{key}, another namespace's or the cluster's global pool")
                };
                return Err(Error::conflict(
                    ResourceKind::AddressPool,
                    &spec.name,
                    format!("its addresses overlap {whose}"),
                ));
            }
        }
        if let Some(entry) = &view.foreign_entry {
            return Err(Error::conflict(
                ResourceKind::AddressPool,
                &spec.name,
                format!(
                    "the namespace already has an entry in the kubevip ConfigMap ({entry}) that is not kubecloud's"
                ),
            ));
        }
        if let Some(own) = &view.own {
            if own.spec.name != spec.name {
                return Err(Error::unsupported(
                    BACKEND,
                    "load_balancer.create_pool",
                    format!(
                        "a second address pool per tenant (the tenant has {:?}; kube-vip-cloud-provider reads one cidr-<namespace> or range-<namespace> entry per namespace)",
                        own.spec.name
                    ),
                ));
            }
            if creating && !own.incomplete {
                return Err(Error::already_exists(ResourceKind::AddressPool, &spec.name));
            }
            if !own.incomplete && &own.spec == spec {
                return Ok(None);
            }
        }
        translate::pool_patch(&ns, Some(spec), view.resource_version.as_deref()).map(Some)
    }

    async fn write_pool(
        &self,
        tenant: &Tenant,
        spec: &AddressPoolSpec,
        creating: bool,
    ) -> Result<AddressPool> {
        translate::check_pool(spec, &self.settings)?;
        self.update_config(&spec.name, |cm| self.plan_pool(tenant, spec, cm, creating))
            .await?;
        tracing::debug!(%tenant, pool = %spec.name, "address pool written");
        self.pools(tenant, &spec.name)
            .await?
            .into_iter()
            .find(|p| !p.shared && p.spec.name == spec.name)
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, &spec.name))
    }

    /// Creates or updates the tenant's pool to match `spec`: idempotent, and re-applying an
    /// unchanged spec sends no write.
    ///
    /// ```no_run
    /// # async fn demo(lb: kubecloud_kubevip::KubeVip) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{AddressBlock, AddressPoolSpec, Tenant};
    /// let acme = Tenant::new("acme")?;
    /// let spec = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
    /// lb.apply_pool(&acme, &spec).await?;
    /// lb.apply_pool(&acme, &spec).await?; // reads only
    /// # Ok(()) }
    /// ```
    pub async fn apply_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        self.write_pool(tenant, spec, false).await
    }

    /// The tenant's Service `name` (`NotFound` if absent, not kubecloud's, or not an exposure).
    async fn owned_service(&self, tenant: &Tenant, name: &str) -> Result<Service> {
        let svc = self
            .writer
            .get_opt(&self.services(tenant), name, ResourceKind::Exposure, name)
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::Exposure, name))?;
        ensure_owned(&svc.metadata, tenant, ResourceKind::Exposure, name)?;
        if !is_load_balancer(&svc) {
            return Err(Error::not_found(ResourceKind::Exposure, name));
        }
        Ok(svc)
    }

    /// Who holds `ip` (other than the exposure `name` itself): every LoadBalancer Service of
    /// the cluster holding it.
    async fn holders(&self, tenant: &Tenant, name: &str, ip: IpAddr) -> Result<Vec<Service>> {
        let all: Api<Service> = Api::all(self.client.clone());
        let ns = tenant_namespace(tenant);
        Ok(self
            .list_services(&all, &ListParams::default(), ResourceKind::Exposure, name)
            .await?
            .into_iter()
            .filter(is_load_balancer)
            .filter(|s| {
                !(s.metadata.namespace.as_deref() == Some(&ns)
                    && s.metadata.name.as_deref() == Some(name))
            })
            .filter(|s| translate::held(s).contains(&ip))
            .collect())
    }

    /// Whether `spec` may share `ip` with `holders`: the reason if not.
    fn may_share(
        tenant: &Tenant,
        spec: &ExposureSpec,
        ip: IpAddr,
        holders: &[Service],
        view: &PoolView,
    ) -> std::result::Result<(), String> {
        let mine = ports_of(spec);
        for h in holders {
            let name = h.metadata.name.clone().unwrap_or_default();
            if !is_owned(&h.metadata, tenant) {
                return Err(format!("{ip} is held by another Service"));
            }
            let other = translate::exposure(h, None, view).spec;
            match (&spec.sharing_key, &other.sharing_key) {
                (Some(a), Some(b)) if a == b => {}
                (None, _) => return Err(format!("{ip} is held by exposure {name:?}")),
                _ => {
                    return Err(format!(
                        "{ip} is held by exposure {name:?}, which has another sharing key"
                    ));
                }
            }
            if let Some(p) = ports_of(&other).intersection(&mine).next() {
                return Err(format!(
                    "port {p} of {ip} is already used by exposure {name:?}"
                ));
            }
            if other.local_traffic_only != spec.local_traffic_only {
                return Err(format!(
                    "exposure {name:?} on {ip} has another traffic policy"
                ));
            }
        }
        Ok(())
    }

    /// Translates and checks an exposure against the pools and the addresses in use; returns
    /// the Service to send and the live one, if any.
    async fn prepare_exposure(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
    ) -> Result<(Service, Option<Service>)> {
        let class = self.settings.load_balancer_class.as_deref();
        translate::service(tenant, spec, class, None)?;
        let name = &spec.name;
        let current = self
            .writer
            .current(&self.services(tenant), name, ResourceKind::Exposure, name)
            .await?;
        let view = self.view(tenant, name).await?;
        let kind = ResourceKind::Exposure;
        let address = match &spec.address {
            AddressRequest::Ip(ip) => {
                let pool = view.pool_of(*ip).ok_or_else(|| {
                    Error::invalid(
                        "address.ip",
                        format!(
                            "{ip} lies in no address pool the tenant may use (kube-vip-cloud-provider would take it as it is)"
                        ),
                    )
                })?;
                let avoid = view
                    .own
                    .as_ref()
                    .is_some_and(|o| o.spec.name == pool && o.spec.avoid_buggy_ips);
                if avoid && translate::buggy(*ip) {
                    return Err(Error::invalid(
                        "address.ip",
                        format!("{ip} ends in .0 or .255, which pool {pool:?} avoids"),
                    ));
                }
                let holders = self.holders(tenant, name, *ip).await?;
                Self::may_share(tenant, spec, *ip, &holders, &view)
                    .map_err(|why| Error::conflict(kind, name, why))?;
                Some((*ip, false))
            }
            AddressRequest::Pool(pool) => {
                match (&view.own, pool.as_str()) {
                    (Some(own), p) if own.spec.name == p => {}
                    (None, GLOBAL) if view.global.is_some() => {}
                    (Some(own), GLOBAL) if view.global.is_some() => {
                        return Err(Error::invalid(
                            "address.pool",
                            format!(
                                "kube-vip-cloud-provider gives the Services of a namespace with its own pool ({:?}) addresses from that pool only",
                                own.spec.name
                            ),
                        ));
                    }
                    _ => return Err(Error::not_found(ResourceKind::AddressPool, pool)),
                }
                self.sharing(tenant, spec, current.as_ref(), &view).await?
            }
            AddressRequest::Auto => {
                if let Some(own) = &view.own
                    && !own.spec.auto_assign
                {
                    return Err(Error::invalid(
                        "address",
                        format!(
                            "the tenant's pool {:?} does not assign addresses automatically, and kube-vip-cloud-provider gives a namespace's Services addresses from its one pool: name the pool",
                            own.spec.name
                        ),
                    ));
                }
                self.sharing(tenant, spec, current.as_ref(), &view).await?
            }
        };
        let mut svc = translate::service(tenant, spec, class, address)?;
        // The Service's IP family picks the provider's pool of that family: an exposure on a
        // pool of IPv6 addresses only is single-stack IPv6 (the API server would default it to
        // the cluster's first family).
        let target: Option<Vec<kubecloud_core::IpRange>> = match &spec.address {
            AddressRequest::Ip(_) => None,
            _ => match &view.own {
                Some(own) => Some(own.spec.addresses.iter().map(|b| b.range()).collect()),
                None => view.global.clone(),
            },
        };
        if let Some(ranges) = target
            && !ranges.is_empty()
            && ranges.iter().all(|r| r.first.is_ipv6())
        {
            exposure::single_stack_ipv6(&mut svc);
        }
        Ok((svc, current))
    }

    /// The address an exposure with a sharing key joins: the one it already shares, else one
    /// of another exposure of the tenant with the same key it may share.
    async fn sharing(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        current: Option<&Service>,
        view: &PoolView,
    ) -> Result<Option<(IpAddr, bool)>> {
        let Some(key) = &spec.sharing_key else {
            return Ok(None);
        };
        let kept = current
            .and_then(|c| c.metadata.annotations.as_ref())
            .and_then(|a| a.get(translate::SHARED_IP))
            .and_then(|v| v.parse::<IpAddr>().ok());
        if let Some(ip) = kept {
            return Ok(Some((ip, true)));
        }
        let services = self
            .list_services(
                &self.services(tenant),
                &ListParams::default().labels(&tenant_selector(tenant)),
                ResourceKind::Exposure,
                &spec.name,
            )
            .await?;
        let mut candidates: BTreeSet<IpAddr> = BTreeSet::new();
        for s in services.iter().filter(|s| is_load_balancer(s)) {
            if s.metadata.name.as_deref() == Some(spec.name.as_str()) {
                continue;
            }
            let other = translate::exposure(s, None, view).spec;
            if other.sharing_key.as_ref() == Some(key) {
                candidates.extend(translate::held(s));
            }
        }
        for ip in candidates {
            if let AddressRequest::Pool(p) = &spec.address
                && view.pool_of(ip).as_deref() != Some(p.as_str())
            {
                continue;
            }
            let holders = self.holders(tenant, &spec.name, ip).await?;
            if Self::may_share(tenant, spec, ip, &holders, view).is_ok() {
                return Ok(Some((ip, true)));
            }
        }
        Ok(None)
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
        let view = self.view(tenant, &spec.name).await?;
        Ok(translate::exposure(&live, None, &view))
    }

    /// The provider's failure Events in the tenant's namespace (about `name`, or all).
    async fn failures(&self, tenant: &Tenant, name: Option<&str>) -> Result<Failures> {
        let reason = self.failure_reason();
        let fields = match name {
            Some(name) => format!("involvedObject.name={name},reason={reason}"),
            None => format!("reason={reason}"),
        };
        let events = self
            .writer
            .list(
                &self.events(tenant),
                &ListParams::default().fields(&fields),
                ResourceKind::Exposure,
                name.unwrap_or("*"),
            )
            .await?;
        let mut failures = Failures::default();
        events.iter().for_each(|e| failures.record(e));
        Ok(failures)
    }
}

#[async_trait]
impl LoadBalancer for KubeVip {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn system_namespaces(&self) -> Vec<String> {
        // The provider's own namespace, and "global": `cidr-global` is the global pool's key.
        vec![self.settings.config_map.0.clone(), GLOBAL.to_string()]
    }

    fn capabilities(&self) -> LoadBalancerCapabilities {
        KubeVip::capabilities(self)
    }

    async fn create_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        self.write_pool(tenant, spec, true).await
    }

    async fn update_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        let view = self.view(tenant, &spec.name).await?;
        let current = view
            .own
            .filter(|o| o.spec.name == spec.name)
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, &spec.name))?;
        spec.check_update_of(&current.spec)?;
        self.write_pool(tenant, spec, false).await
    }

    async fn get_pool(&self, tenant: &Tenant, name: &str) -> Result<AddressPool> {
        self.pools(tenant, name)
            .await?
            .into_iter()
            .find(|p| p.spec.name == name)
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, name))
    }

    async fn list_pools(&self, tenant: &Tenant) -> Result<Vec<AddressPool>> {
        self.pools(tenant, "*").await
    }

    async fn delete_pool(&self, tenant: &Tenant, name: &str) -> Result<()> {
        let pool = self
            .pools(tenant, name)
            .await?
            .into_iter()
            .find(|p| !p.shared && p.spec.name == name)
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, name))?;
        if pool.assigned > 0 {
            return Err(Error::conflict(
                ResourceKind::AddressPool,
                name,
                format!("{} address(es) are assigned from it", pool.assigned),
            ));
        }
        let ns = tenant_namespace(tenant);
        self.update_config(name, |cm| {
            let view = translate::read_pools(cm, &ns, &self.settings)?;
            match view.own {
                Some(own) if own.spec.name == name => {
                    translate::pool_patch(&ns, None, view.resource_version.as_deref()).map(Some)
                }
                _ => Err(Error::not_found(ResourceKind::AddressPool, name)),
            }
        })
        .await?;
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
            state: ExposureState::Pending,
        })
    }

    async fn get_exposure(&self, tenant: &Tenant, name: &str) -> Result<Exposure> {
        let svc = self.owned_service(tenant, name).await?;
        let failures = self.failures(tenant, Some(name)).await?;
        let view = self.view(tenant, name).await?;
        Ok(translate::exposure(&svc, failures.of(&svc), &view))
    }

    async fn list_exposures(&self, tenant: &Tenant) -> Result<Vec<Exposure>> {
        let services = self
            .list_services(
                &self.services(tenant),
                &ListParams::default().labels(&tenant_selector(tenant)),
                ResourceKind::Exposure,
                "*",
            )
            .await?;
        let failures = self.failures(tenant, None).await?;
        let view = self.view(tenant, "*").await?;
        let mut out: Vec<Exposure> = services
            .iter()
            .filter(|s| is_load_balancer(s))
            .map(|s| translate::exposure(s, failures.of(s), &view))
            .collect();
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    async fn release(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.owned_service(tenant, name).await?;
        self.writer
            .delete(&self.services(tenant), name, ResourceKind::Exposure, name)
            .await?;
        tracing::debug!(%tenant, exposure = name, "exposure released");
        Ok(())
    }

    async fn watch_exposure(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Exposure>>> {
        let api = self.services(tenant);
        let first = match self
            .writer
            .current(&api, name, ResourceKind::Exposure, name)
            .await?
        {
            Some(svc) if is_owned(&svc.metadata, tenant) && is_load_balancer(&svc) => svc,
            _ => return Err(Error::not_found(ResourceKind::Exposure, name)),
        };
        let view = self.view(tenant, name).await?;
        let services = self
            .writer
            .states(&api, name)
            .map(|s| Seen::Service(Box::new(s)));
        let events = self
            .writer
            .selected(
                &self.events(tenant),
                &format!("reason={}", self.failure_reason()),
            )
            .map(Seen::Events);
        let merged = stream::select(services, events).boxed();
        let tenant = tenant.clone();
        let start = (merged, Some(first), Failures::default(), None::<Exposure>);
        let states = stream::unfold(
            start,
            move |(mut merged, mut svc, mut failures, mut last)| {
                let tenant = tenant.clone();
                let view = view.clone();
                async move {
                    loop {
                        if let Some(current) = &svc {
                            let exposure =
                                translate::exposure(current, failures.of(current), &view);
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
