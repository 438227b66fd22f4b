//! The [`LoadBalancer`] implementation: translate, then send through `kubecloud-kube`.

use std::collections::BTreeSet;
use std::net::IpAddr;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams};
use kube::{Resource, ResourceExt};
use kubecloud_core::{
    AddressBlock, AddressPool, AddressPoolSpec, AddressRequest, Advertisement, Error, Exposure,
    ExposureSpec, ExposureState, LoadBalancer, LoadBalancerCapabilities, ResourceKind, Result,
    Tenant, async_trait,
};
use kubecloud_kube::exposure::{self, is_load_balancer};
use kubecloud_kube::{
    MANAGED_BY, MANAGER, NAME, ensure_namespace, ensure_owned, is_owned, names, tenant_namespace,
    tenant_selector,
};
use kubecloud_models::cilium::{
    CiliumBgpAdvertisement, CiliumBgpClusterConfig, CiliumBgpPeerConfig,
    CiliumL2AnnouncementPolicy, CiliumLoadBalancerIpPool,
};

use crate::translate::{self, ADDRESS_AUTO, capacity, pool_label, pool_object};
use crate::{BACKEND, CAPABILITIES, Cilium};

/// Whether the live Service already says all `desired` says, and nothing the backend no longer
/// says: no dropped selector label, no dropped annotation or pool label.
fn service_unchanged(current: &Service, desired: &Service) -> bool {
    exposure::service_unchanged(
        current,
        desired,
        &[
            translate::IPS,
            translate::SHARING_KEY,
            translate::ADDRESS_AUTO,
        ],
    ) && pool_label(current) == pool_label(desired)
}

/// The distinct addresses `services` hold inside `blocks`.
fn assigned_in(services: &[Service], blocks: &[AddressBlock]) -> u128 {
    let held: BTreeSet<IpAddr> = services
        .iter()
        .filter(|s| is_load_balancer(s))
        .flat_map(translate::ingress_ips)
        .filter(|ip| blocks.iter().any(|b| b.range().contains(*ip)))
        .collect();
    held.len() as u128
}

impl Cilium {
    fn pools_api(&self) -> Api<CiliumLoadBalancerIpPool> {
        Api::all(self.client.clone())
    }

    fn l2_api(&self) -> Api<CiliumL2AnnouncementPolicy> {
        Api::all(self.client.clone())
    }

    fn bgp_api(&self) -> Api<CiliumBgpAdvertisement> {
        Api::all(self.client.clone())
    }

    fn cluster_configs_api(&self) -> Api<CiliumBgpClusterConfig> {
        Api::all(self.client.clone())
    }

    fn peer_configs_api(&self) -> Api<CiliumBgpPeerConfig> {
        Api::all(self.client.clone())
    }

    /// For a BGP pool: checks its peers against the cluster's BGP speaker (the one given to the
    /// builder, else the one in the cluster) and returns the speaker's objects kubecloud writes
    /// (none when adopted). Sends nothing.
    async fn prepare_bgp(
        &self,
        spec: &AddressPoolSpec,
        objects: &translate::PoolObjects,
    ) -> Result<Option<(CiliumBgpClusterConfig, Vec<CiliumBgpPeerConfig>)>> {
        let (Advertisement::Bgp(bgp), Some(advertisement)) = (&spec.advertisement, &objects.bgp)
        else {
            return Ok(None);
        };
        let kind = ResourceKind::AddressPool;
        let name = spec.name.as_str();
        let live_configs = self
            .writer
            .list(
                &self.cluster_configs_api(),
                &ListParams::default(),
                kind,
                name,
            )
            .await?;
        let labels = advertisement.labels().clone();
        match &self.bgp {
            Some(setting) => {
                let (config, peers) = crate::bgp::cluster_objects(setting)?;
                if let Some(other) = live_configs.iter().find(|c| {
                    c.name_any() != setting.name
                        || c.labels().get(MANAGED_BY).map(String::as_str) != Some(MANAGER)
                }) {
                    return Err(Error::conflict(
                        kind,
                        name,
                        format!(
                            "the cluster's BGP is configured by CiliumBGPClusterConfig {:?}, not                              kubecloud's {:?}: only one may select a node",
                            other.name_any(),
                            setting.name
                        ),
                    ));
                }
                crate::bgp::check_peers(spec, bgp, &labels, std::slice::from_ref(&config), &peers)?;
                Ok(Some((config, peers)))
            }
            None => {
                let peer_configs = self
                    .writer
                    .list(&self.peer_configs_api(), &ListParams::default(), kind, name)
                    .await?;
                crate::bgp::check_peers(spec, bgp, &labels, &live_configs, &peer_configs)?;
                Ok(None)
            }
        }
    }

    /// Writes the cluster's BGP speaker given to the builder (only what would change).
    async fn write_speaker(
        &self,
        speaker: &(CiliumBgpClusterConfig, Vec<CiliumBgpPeerConfig>),
        what: &str,
    ) -> Result<()> {
        let kind = ResourceKind::AddressPool;
        for peer in &speaker.1 {
            let current = self
                .writer
                .get_opt(&self.peer_configs_api(), &peer.name_any(), kind, what)
                .await?;
            self.writer
                .apply_if_changed(&self.peer_configs_api(), current.as_ref(), peer, kind, what)
                .await?;
        }
        let current = self
            .writer
            .get_opt(
                &self.cluster_configs_api(),
                &speaker.0.name_any(),
                kind,
                what,
            )
            .await?;
        self.writer
            .apply_if_changed(
                &self.cluster_configs_api(),
                current.as_ref(),
                &speaker.0,
                kind,
                what,
            )
            .await?;
        Ok(())
    }

    fn services(&self, tenant: &Tenant) -> Api<Service> {
        Api::namespaced(self.client.clone(), &tenant_namespace(tenant))
    }

    async fn all_pools(&self, what: &str) -> Result<Vec<CiliumLoadBalancerIpPool>> {
        self.writer
            .list(
                &self.pools_api(),
                &ListParams::default(),
                ResourceKind::AddressPool,
                what,
            )
            .await
    }

    async fn tenant_services(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        what: &str,
    ) -> Result<Vec<Service>> {
        self.writer
            .list(
                &self.services(tenant),
                &ListParams::default().labels(&tenant_selector(tenant)),
                kind,
                what,
            )
            .await
    }

    /// The tenant's pool object for `pool` (`NotFound` naming `pool` if absent or another's).
    async fn owned_pool(&self, tenant: &Tenant, pool: &str) -> Result<CiliumLoadBalancerIpPool> {
        let found = self
            .writer
            .get_opt(
                &self.pools_api(),
                &pool_object(tenant, pool),
                ResourceKind::AddressPool,
                pool,
            )
            .await?
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, pool))?;
        ensure_owned(found.meta(), tenant, ResourceKind::AddressPool, pool)?;
        Ok(found)
    }

    /// Refuses a pool whose name is taken or whose addresses overlap any other pool; nothing is
    /// sent. When `creating`, the tenant's own pool of that name is refused too unless it is
    /// incomplete: returns whether such a pool is there to be completed.
    async fn check_pool(
        &self,
        tenant: &Tenant,
        spec: &AddressPoolSpec,
        creating: bool,
    ) -> Result<bool> {
        let object = pool_object(tenant, &spec.name);
        let mine: Vec<_> = spec.addresses.iter().map(AddressBlock::range).collect();
        let mut resuming = false;
        for other in self.all_pools(&spec.name).await? {
            let owned = is_owned(other.meta(), tenant);
            if other.name_any() == object {
                names::ensure_name_free_for(
                    other.meta(),
                    tenant,
                    ResourceKind::AddressPool,
                    &spec.name,
                    &object,
                )?;
                if creating {
                    let incomplete = self
                        .load_pools(tenant, Some(&spec.name))
                        .await?
                        .iter()
                        .any(|p| p.incomplete);
                    if !incomplete {
                        return Err(Error::already_exists(ResourceKind::AddressPool, &spec.name));
                    }
                    resuming = true;
                }
                continue;
            }
            let overlaps = translate::blocks(&other)
                .iter()
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

    /// Sends the cluster's BGP speaker (a BGP pool, when given to the builder), the pool, then
    /// its announcement policy or BGP advertisement (each only if it would change), so that a
    /// pool interrupted half-way reads as incomplete; then deletes the announcement of the other
    /// kind, if the pool changed from L2 to BGP or back.
    async fn write_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        let objects = translate::pool_objects(tenant, spec)?;
        let name = spec.name.as_str();
        let kind = ResourceKind::AddressPool;
        let object = pool_object(tenant, name);
        let speaker = self.prepare_bgp(spec, &objects).await?;
        let current_pool = self
            .writer
            .get_opt(&self.pools_api(), &object, kind, name)
            .await?;
        let current_l2 = self
            .writer
            .get_opt(&self.l2_api(), &object, kind, name)
            .await?;
        let current_bgp = self
            .writer
            .get_opt(&self.bgp_api(), &object, kind, name)
            .await?;
        if let Some(c) = &current_l2 {
            names::ensure_name_free_for(c.meta(), tenant, kind, name, &object)?;
        }
        if let Some(c) = &current_bgp {
            names::ensure_name_free_for(c.meta(), tenant, kind, name, &object)?;
        }
        if let Some(speaker) = &speaker {
            self.write_speaker(speaker, name).await?;
        }
        self.writer
            .apply_if_changed(
                &self.pools_api(),
                current_pool.as_ref(),
                &objects.pool,
                kind,
                name,
            )
            .await?;
        if let Some(l2) = &objects.l2 {
            self.writer
                .apply_if_changed(&self.l2_api(), current_l2.as_ref(), l2, kind, name)
                .await?;
            if current_bgp.is_some() {
                self.writer
                    .delete(&self.bgp_api(), &object, kind, name)
                    .await?;
            }
        }
        if let Some(bgp) = &objects.bgp {
            self.writer
                .apply_if_changed(&self.bgp_api(), current_bgp.as_ref(), bgp, kind, name)
                .await?;
            if current_l2.is_some() {
                self.writer
                    .delete(&self.l2_api(), &object, kind, name)
                    .await?;
            }
        }
        let services = self.tenant_services(tenant, kind, name).await?;
        let assigned = assigned_in(&services, &spec.addresses);
        tracing::debug!(%tenant, pool = name, "address pool written");
        Ok(AddressPool {
            spec: spec.clone(),
            assigned,
            available: capacity(&spec.addresses).saturating_sub(assigned),
            shared: false,
            incomplete: false,
        })
    }

    /// The tenant's pools (all, or the one named `only`) read back from their objects.
    async fn load_pools(&self, tenant: &Tenant, only: Option<&str>) -> Result<Vec<AddressPool>> {
        let what = only.unwrap_or("*");
        let kind = ResourceKind::AddressPool;
        let pools: Vec<CiliumLoadBalancerIpPool> = self
            .all_pools(what)
            .await?
            .into_iter()
            .filter(|p| is_owned(p.meta(), tenant))
            .filter(|p| only.is_none_or(|n| p.labels().get(NAME).map(String::as_str) == Some(n)))
            .collect();
        if pools.is_empty() {
            return Ok(Vec::new());
        }
        let policies = self
            .writer
            .list(
                &self.l2_api(),
                &ListParams::default().labels(&tenant_selector(tenant)),
                kind,
                what,
            )
            .await?;
        let advertisements = self
            .writer
            .list(
                &self.bgp_api(),
                &ListParams::default().labels(&tenant_selector(tenant)),
                kind,
                what,
            )
            .await?;
        let services = self.tenant_services(tenant, kind, what).await?;
        let mut out = Vec::new();
        for pool in &pools {
            let Some(name) = pool.labels().get(NAME) else {
                continue;
            };
            let l2 = policies.iter().find(|p| p.name_any() == pool.name_any());
            let bgp = advertisements
                .iter()
                .find(|p| p.name_any() == pool.name_any());
            let (spec, complete) = translate::read_pool(name, pool, l2, bgp);
            let assigned = assigned_in(&services, &spec.addresses);
            out.push(AddressPool {
                available: capacity(&spec.addresses).saturating_sub(assigned),
                assigned,
                spec,
                shared: false,
                incomplete: !complete,
            });
        }
        out.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        Ok(out)
    }

    /// The tenant's Service `name` (`NotFound` if absent, not kubecloud's for this tenant, or
    /// not an exposure).
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

    /// The pool an exposure's Service is labelled with (see the crate docs), and whether all its
    /// addresses are IPv6.
    async fn choose_pool(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        current: Option<&Service>,
    ) -> Result<Option<AddressPool>> {
        match &spec.address {
            AddressRequest::Pool(name) => {
                self.owned_pool(tenant, name).await?;
                let pools = self.load_pools(tenant, Some(name)).await?;
                Ok(pools.into_iter().next())
            }
            AddressRequest::Ip(ip) => Ok(self
                .load_pools(tenant, None)
                .await?
                .into_iter()
                .find(|p| p.spec.addresses.iter().any(|b| b.range().contains(*ip)))),
            AddressRequest::Auto => {
                let auto: Vec<AddressPool> = self
                    .load_pools(tenant, None)
                    .await?
                    .into_iter()
                    .filter(|p| p.spec.auto_assign)
                    .collect();
                let kept = current
                    .filter(|c| c.annotations().contains_key(ADDRESS_AUTO))
                    .and_then(pool_label)
                    .and_then(|l| auto.iter().find(|p| p.spec.name == l));
                if let Some(kept) = kept {
                    return Ok(Some(kept.clone()));
                }
                Ok(auto
                    .iter()
                    .find(|p| p.available > 0)
                    .or_else(|| auto.first())
                    .cloned())
            }
        }
    }

    /// Translates and checks an exposure; returns the Service to send and the live one, if any.
    async fn prepare_exposure(
        &self,
        tenant: &Tenant,
        spec: &ExposureSpec,
    ) -> Result<(Service, Option<Service>)> {
        translate::service(tenant, spec, None)?;
        let current = self
            .writer
            .current(
                &self.services(tenant),
                &spec.name,
                ResourceKind::Exposure,
                &spec.name,
            )
            .await?;
        let pool = self.choose_pool(tenant, spec, current.as_ref()).await?;
        let mut svc =
            translate::service(tenant, spec, pool.as_ref().map(|p| p.spec.name.as_str()))?;
        if let Some(pool) = &pool
            && !pool.spec.addresses.is_empty()
            && pool
                .spec
                .addresses
                .iter()
                .all(|b| b.range().first.is_ipv6())
        {
            translate::single_stack_ipv6(&mut svc);
        }
        Ok((svc, current))
    }

    /// Creates or updates a pool to match `spec`: idempotent, and re-applying an unchanged spec
    /// sends no write.
    ///
    /// ```no_run
    /// # async fn demo(lb: kubecloud_cilium::Cilium) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::{AddressBlock, AddressPoolSpec, Tenant};
    /// let acme = Tenant::new("acme")?;
    /// let spec = AddressPoolSpec::l2("public", vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())]);
    /// lb.apply_pool(&acme, &spec).await?;
    /// lb.apply_pool(&acme, &spec).await?; // reads only
    /// # Ok(()) }
    /// ```
    pub async fn apply_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        translate::pool_objects(tenant, spec)?;
        self.check_pool(tenant, spec, false).await?;
        self.write_pool(tenant, spec).await
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
        Ok(translate::exposure(&live))
    }
}

#[async_trait]
impl LoadBalancer for Cilium {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> LoadBalancerCapabilities {
        CAPABILITIES
    }

    async fn create_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        translate::pool_objects(tenant, spec)?;
        self.check_pool(tenant, spec, true).await?;
        self.write_pool(tenant, spec).await
    }

    async fn update_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        translate::pool_objects(tenant, spec)?;
        let current = self
            .load_pools(tenant, Some(&spec.name))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, &spec.name))?;
        spec.check_update_of(&current.spec)?;
        self.check_pool(tenant, spec, false).await?;
        self.write_pool(tenant, spec).await
    }

    async fn get_pool(&self, tenant: &Tenant, name: &str) -> Result<AddressPool> {
        kubecloud_core::validate_name("name", name)
            .map_err(|_| Error::not_found(ResourceKind::AddressPool, name))?;
        self.load_pools(tenant, Some(name))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, name))
    }

    async fn list_pools(&self, tenant: &Tenant) -> Result<Vec<AddressPool>> {
        self.load_pools(tenant, None).await
    }

    async fn delete_pool(&self, tenant: &Tenant, name: &str) -> Result<()> {
        kubecloud_core::validate_name("name", name)
            .map_err(|_| Error::not_found(ResourceKind::AddressPool, name))?;
        let pool = self.owned_pool(tenant, name).await?;
        let kind = ResourceKind::AddressPool;
        let services = self.tenant_services(tenant, kind, name).await?;
        let assigned = assigned_in(&services, &translate::blocks(&pool));
        if assigned > 0 {
            return Err(Error::conflict(
                kind,
                name,
                format!("{assigned} address(es) are assigned from it"),
            ));
        }
        let object = pool.name_any();
        if let Some(l2) = self
            .writer
            .get_opt(&self.l2_api(), &object, kind, name)
            .await?
            && is_owned(l2.meta(), tenant)
        {
            self.writer
                .delete(&self.l2_api(), &object, kind, name)
                .await?;
        }
        if let Some(bgp) = self
            .writer
            .get_opt(&self.bgp_api(), &object, kind, name)
            .await?
            && is_owned(bgp.meta(), tenant)
        {
            self.writer
                .delete(&self.bgp_api(), &object, kind, name)
                .await?;
        }
        self.writer
            .delete(&self.pools_api(), &object, kind, name)
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
        Ok(translate::exposure(&svc))
    }

    async fn list_exposures(&self, tenant: &Tenant) -> Result<Vec<Exposure>> {
        let services = self
            .tenant_services(tenant, ResourceKind::Exposure, "*")
            .await?;
        let mut out: Vec<Exposure> = services
            .iter()
            .filter(|s| is_load_balancer(s))
            .map(translate::exposure)
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
        let seen = self.writer.states(&api, name);
        let tenant = tenant.clone();
        let start = (seen, Some(first), None::<Exposure>);
        let states = stream::unfold(start, move |(mut seen, mut svc, mut last)| {
            let tenant = tenant.clone();
            async move {
                loop {
                    if let Some(current) = svc.take() {
                        let exposure = translate::exposure(&current);
                        if last.as_ref() != Some(&exposure) {
                            last = Some(exposure.clone());
                            return Some((Ok(exposure), (seen, None, last)));
                        }
                    }
                    match seen.next().await? {
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
                    }
                }
            }
        });
        Ok(states.boxed())
    }
}
