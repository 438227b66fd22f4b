//! External addresses as MetalLB assigns them: pools owned by a tenant or shared by the cluster
//! administrator, never overlapping; assignment from the first auto-assign pool with room, a
//! named pool, or a requested address; sharing of one address by exposures with the same
//! sharing key and no clashing ports.
//!
//! The address is chosen in the `expose` call (so that the outcome depends only on the sequence
//! of calls) and announced one step later: the exposure is `Pending` until then.

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::stream::BoxStream;
use kubecloud_core::ipam::AddressSpace;
use kubecloud_core::{
    AddressPool, AddressPoolSpec, AddressRequest, Error, Exposure, ExposureSpec, ExposureState,
    LoadBalancer, LoadBalancerCapabilities, ResourceKind, Result, Tenant, async_trait,
};

use crate::driver::StepKind;
use crate::state::{State, TenantState, find, find_mut};
use crate::watch::Watchers;
use crate::{BACKEND, MemoryCloud};

/// An address pool and who uses its addresses.
pub(crate) struct LbPool {
    spec: AddressPoolSpec,
    space: AddressSpace,
    uses: BTreeMap<IpAddr, IpUse>,
    shared: bool,
}

impl LbPool {
    /// A pool shared by the cluster administrator with every tenant.
    pub(crate) fn shared(spec: AddressPoolSpec) -> Self {
        Self {
            shared: true,
            ..Self::new(spec)
        }
    }

    pub(crate) fn new(spec: AddressPoolSpec) -> Self {
        let blocks: Vec<_> = spec.addresses.iter().map(|b| b.range()).collect();
        let space = AddressSpace::for_pool(&spec.name, &blocks, spec.avoid_buggy_ips);
        Self {
            spec,
            space,
            uses: BTreeMap::new(),
            shared: false,
        }
    }

    fn view(&self) -> AddressPool {
        AddressPool {
            spec: self.spec.clone(),
            assigned: self.space.used(),
            available: self.space.available(),
            shared: self.shared,
            // Created and deleted whole, under one lock.
            incomplete: false,
        }
    }

    fn overlaps(&self, spec: &AddressPoolSpec) -> bool {
        self.spec.addresses.iter().any(|a| {
            spec.addresses
                .iter()
                .any(|b| a.range().overlaps(&b.range()))
        })
    }
}

/// The exposures on one external address.
struct IpUse {
    tenant: Tenant,
    sharing_key: Option<String>,
    /// `(exposure, its spec)` in the order they arrived.
    exposures: Vec<ExposureSpec>,
}

/// Where an exposure's address comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PoolRef {
    Own(String),
    Shared(String),
}

impl PoolRef {
    fn name(&self) -> &str {
        match self {
            Self::Own(name) | Self::Shared(name) => name,
        }
    }
}

/// What the `expose` call decided; the driver makes it visible.
#[derive(Clone, Debug)]
enum Decision {
    Assigned { ip: IpAddr, pool: PoolRef },
    Failed(String),
}

/// An exposure and what the cloud keeps about it.
pub(crate) struct ExposureRecord {
    spec: ExposureSpec,
    decision: Decision,
    ip: Option<IpAddr>,
    pool: Option<String>,
    state: ExposureState,
    epoch: u64,
    watchers: Watchers<Exposure>,
}

impl ExposureRecord {
    fn view(&self) -> Exposure {
        Exposure {
            spec: self.spec.clone(),
            ip: self.ip,
            pool: self.pool.clone(),
            state: self.state.clone(),
        }
    }
}

/// Why `spec` may not join the exposures already on an address, if it may not.
fn sharing_conflict(
    tenant: &Tenant,
    spec: &ExposureSpec,
    ip: IpAddr,
    used: &IpUse,
) -> Option<String> {
    if used.tenant != *tenant {
        return Some(format!(
            "sharing conflict: {ip} is already in use by another tenant"
        ));
    }
    let names = || {
        used.exposures
            .iter()
            .map(|e| format!("{:?}", e.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (&spec.sharing_key, &used.sharing_key) {
        (Some(mine), Some(theirs)) if mine == theirs => {}
        (mine, theirs) => {
            return Some(format!(
                "sharing conflict: {ip} is already used by exposure(s) {} with sharing key {}, \
                 and this exposure has {}",
                names(),
                theirs
                    .as_deref()
                    .map_or("none".into(), |k| format!("{k:?}")),
                mine.as_deref().map_or("none".into(), |k| format!("{k:?}")),
            ));
        }
    }
    for other in &used.exposures {
        if let Some(port) = spec.ports.iter().find(|p| {
            other
                .ports
                .iter()
                .any(|o| o.port == p.port && o.protocol == p.protocol)
        }) {
            return Some(format!(
                "sharing conflict: port {}/{} on {ip} is already used by exposure {:?}",
                port.port, port.protocol, other.name
            ));
        }
        if (spec.local_traffic_only || other.local_traffic_only)
            && (spec.local_traffic_only != other.local_traffic_only
                || spec.selector != other.selector)
        {
            return Some(format!(
                "sharing conflict: exposures with local traffic only share {ip} only with \
                 exposures of the same VMs; {:?} differs",
                other.name
            ));
        }
    }
    None
}

impl State {
    fn pool(&self, tenant: &Tenant, pool: &PoolRef) -> Option<&LbPool> {
        match pool {
            PoolRef::Own(name) => self.tenant(tenant).and_then(|t| t.pools.get(name)),
            PoolRef::Shared(name) => self.shared_pools.get(name),
        }
    }

    fn pool_mut(&mut self, tenant: &Tenant, pool: &PoolRef) -> Option<&mut LbPool> {
        match pool {
            PoolRef::Own(name) => self
                .tenants
                .get_mut(tenant)
                .and_then(|t| t.pools.get_mut(name)),
            PoolRef::Shared(name) => self.shared_pools.get_mut(name),
        }
    }

    /// The pool of that name the tenant may use: its own, else a shared one.
    fn visible_pool(&self, tenant: &Tenant, name: &str) -> Option<PoolRef> {
        if self
            .tenant(tenant)
            .is_some_and(|t| t.pools.contains_key(name))
        {
            Some(PoolRef::Own(name.to_string()))
        } else if self.shared_pools.contains_key(name) {
            Some(PoolRef::Shared(name.to_string()))
        } else {
            None
        }
    }

    /// Every pool the tenant may use: its own by name, then the shared ones by name.
    fn visible_pools(&self, tenant: &Tenant) -> Vec<PoolRef> {
        let own = self
            .tenant(tenant)
            .into_iter()
            .flat_map(|t| t.pools.keys().cloned().map(PoolRef::Own));
        let shared = self.shared_pools.keys().cloned().map(PoolRef::Shared);
        own.chain(shared).collect()
    }

    fn create_pool(&mut self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        spec.validate()?;
        if self.visible_pool(tenant, &spec.name).is_some() {
            return Err(Error::already_exists(ResourceKind::AddressPool, &spec.name));
        }
        let visible = self
            .tenant(tenant)
            .into_iter()
            .flat_map(|t| t.pools.values())
            .chain(self.shared_pools.values());
        if let Some(other) = visible.into_iter().find(|p| p.overlaps(spec)) {
            return Err(Error::conflict(
                ResourceKind::AddressPool,
                &spec.name,
                format!("its addresses overlap address pool {:?}", other.spec.name),
            ));
        }
        let foreign = self
            .tenants
            .iter()
            .filter(|(t, _)| *t != tenant)
            .flat_map(|(_, ts)| ts.pools.values())
            .any(|p| p.overlaps(spec));
        if foreign {
            return Err(Error::conflict(
                ResourceKind::AddressPool,
                &spec.name,
                "its addresses overlap an address pool of another tenant",
            ));
        }
        let pool = LbPool::new(spec.clone());
        let view = pool.view();
        self.tenant_mut(tenant)
            .pools
            .insert(spec.name.clone(), pool);
        tracing::debug!(%tenant, pool = %spec.name, "address pool created");
        Ok(view)
    }

    fn update_pool(&mut self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        spec.validate()?;
        if self.shared_pools.contains_key(&spec.name)
            && self
                .tenant(tenant)
                .is_none_or(|t| !t.pools.contains_key(&spec.name))
        {
            return Err(Error::conflict(
                ResourceKind::AddressPool,
                &spec.name,
                "the pool is shared by the cluster administrator; tenants cannot change it",
            ));
        }
        let pool = self
            .tenant_mut(tenant)
            .pools
            .get_mut(&spec.name)
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, &spec.name))?;
        spec.check_update_of(&pool.spec)?;
        // Addresses stay, so the space and what is assigned from it stay.
        pool.spec = spec.clone();
        tracing::debug!(%tenant, pool = %spec.name, "address pool updated");
        Ok(pool.view())
    }

    fn delete_pool(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        let own = self.tenant(tenant).and_then(|t| t.pools.get(name));
        match own {
            Some(pool) if pool.space.used() > 0 => Err(Error::conflict(
                ResourceKind::AddressPool,
                name,
                format!("{} address(es) are assigned from it", pool.space.used()),
            )),
            Some(_) => {
                self.tenant_mut(tenant).pools.remove(name);
                Ok(())
            }
            None if self.shared_pools.contains_key(name) => Err(Error::conflict(
                ResourceKind::AddressPool,
                name,
                "the pool is shared by the cluster administrator; tenants cannot delete it",
            )),
            None => Err(Error::not_found(ResourceKind::AddressPool, name)),
        }
    }

    /// An address of `pool` for `spec`: one shared with compatible exposures first (when the
    /// spec has a sharing key), else a free one.
    fn take_from(
        &mut self,
        tenant: &Tenant,
        spec: &ExposureSpec,
        pool: &PoolRef,
    ) -> Option<IpAddr> {
        let holder = format!("{tenant}/{}", spec.name);
        let lb = self.pool_mut(tenant, pool)?;
        if spec.sharing_key.is_some()
            && let Some((&ip, used)) = lb
                .uses
                .iter_mut()
                .find(|(ip, used)| sharing_conflict(tenant, spec, **ip, used).is_none())
        {
            used.exposures.push(spec.clone());
            return Some(ip);
        }
        let ip = lb.space.allocate(&holder).ok()?;
        lb.uses.insert(
            ip,
            IpUse {
                tenant: tenant.clone(),
                sharing_key: spec.sharing_key.clone(),
                exposures: vec![spec.clone()],
            },
        );
        Some(ip)
    }

    /// Decides the exposure's address now, MetalLB's way.
    fn decide(&mut self, tenant: &Tenant, spec: &ExposureSpec) -> Result<Decision> {
        let candidates = match &spec.address {
            AddressRequest::Auto => self
                .visible_pools(tenant)
                .into_iter()
                .filter(|p| self.pool(tenant, p).is_some_and(|p| p.spec.auto_assign))
                .collect(),
            AddressRequest::Pool(name) => vec![
                self.visible_pool(tenant, name)
                    .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, name))?,
            ],
            AddressRequest::Ip(ip) => return Ok(self.decide_ip(tenant, spec, *ip)),
        };
        for pool in &candidates {
            if let Some(ip) = self.take_from(tenant, spec, pool) {
                return Ok(Decision::Assigned {
                    ip,
                    pool: pool.clone(),
                });
            }
        }
        Ok(Decision::Failed(if candidates.is_empty() {
            "no available IPs in pool: no auto-assign address pool is available to this tenant"
                .into()
        } else {
            let names: Vec<&str> = candidates.iter().map(PoolRef::name).collect();
            format!("no available IPs in pool {}", names.join(", "))
        }))
    }

    fn decide_ip(&mut self, tenant: &Tenant, spec: &ExposureSpec, ip: IpAddr) -> Decision {
        let Some(pool) = self.visible_pools(tenant).into_iter().find(|p| {
            self.pool(tenant, p)
                .is_some_and(|p| p.space.is_allocatable(ip))
        }) else {
            return Decision::Failed(format!("{ip} is not in any pool this tenant may use"));
        };
        let holder = format!("{tenant}/{}", spec.name);
        let Some(lb) = self.pool_mut(tenant, &pool) else {
            return Decision::Failed(format!("{ip} is not in any pool this tenant may use"));
        };
        if let Some(used) = lb.uses.get_mut(&ip) {
            if let Some(reason) = sharing_conflict(tenant, spec, ip, used) {
                return Decision::Failed(reason);
            }
            used.exposures.push(spec.clone());
        } else {
            if let Err(err) = lb.space.reserve(ip, &holder) {
                return Decision::Failed(err.to_string());
            }
            lb.uses.insert(
                ip,
                IpUse {
                    tenant: tenant.clone(),
                    sharing_key: spec.sharing_key.clone(),
                    exposures: vec![spec.clone()],
                },
            );
        }
        Decision::Assigned { ip, pool }
    }

    fn expose(&mut self, tenant: &Tenant, spec: &ExposureSpec) -> Result<Exposure> {
        spec.validate()?;
        if self
            .tenant(tenant)
            .is_some_and(|t| t.exposures.contains_key(&spec.name))
        {
            return Err(Error::already_exists(ResourceKind::Exposure, &spec.name));
        }
        self.check_quota(tenant, &kubecloud_core::Consumption::public_addresses(1))?;
        let decision = self.decide(tenant, spec)?;
        tracing::debug!(%tenant, exposure = %spec.name, ?decision, "exposure decided");
        let epoch = self.queue.schedule(StepKind::Exposure, tenant, &spec.name);
        let record = ExposureRecord {
            spec: spec.clone(),
            decision,
            ip: None,
            pool: None,
            state: ExposureState::Pending,
            epoch,
            watchers: Watchers::default(),
        };
        let view = record.view();
        self.tenant_mut(tenant)
            .exposures
            .insert(spec.name.clone(), record);
        Ok(view)
    }

    /// Announces the decided address, or the failure (a driver step).
    pub(crate) fn advance_exposure(&mut self, tenant: &Tenant, name: &str, epoch: u64) {
        let Some(record) = self
            .tenants
            .get_mut(tenant)
            .and_then(|t| t.exposures.get_mut(name))
        else {
            return;
        };
        if record.epoch != epoch || record.state != ExposureState::Pending {
            return;
        }
        match &record.decision {
            Decision::Assigned { ip, pool } => {
                record.ip = Some(*ip);
                record.pool = Some(pool.name().to_string());
                record.state = ExposureState::Assigned;
            }
            Decision::Failed(reason) => {
                record.state = ExposureState::Failed {
                    reason: reason.clone(),
                };
            }
        }
        let view = || record.view();
        let view = view();
        record.watchers.publish(|| view);
    }

    fn release(&mut self, tenant: &Tenant, name: &str) -> Result<()> {
        let record = self
            .tenants
            .get_mut(tenant)
            .and_then(|t| t.exposures.remove(name))
            .ok_or_else(|| Error::not_found(ResourceKind::Exposure, name))?;
        if let Decision::Assigned { ip, pool } = &record.decision
            && let Some(lb) = self.pool_mut(tenant, pool)
            && let Some(used) = lb.uses.get_mut(ip)
        {
            used.exposures.retain(|e| e.name != name);
            if used.exposures.is_empty() {
                lb.uses.remove(ip);
                lb.space.release(*ip);
            }
        }
        tracing::debug!(%tenant, exposure = name, "exposure released");
        Ok(())
    }
}

fn own_pools(ts: Option<&TenantState>) -> impl Iterator<Item = &LbPool> {
    ts.into_iter().flat_map(|t| t.pools.values())
}

#[async_trait]
impl LoadBalancer for MemoryCloud {
    fn backend_name(&self) -> &str {
        BACKEND
    }

    fn capabilities(&self) -> LoadBalancerCapabilities {
        LoadBalancerCapabilities {
            l2: true,
            bgp: true,
            bfd: true,
            ip_sharing: true,
            requested_ip: true,
        }
    }

    async fn create_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        self.lock().create_pool(tenant, spec)
    }

    async fn update_pool(&self, tenant: &Tenant, spec: &AddressPoolSpec) -> Result<AddressPool> {
        self.lock().update_pool(tenant, spec)
    }

    async fn get_pool(&self, tenant: &Tenant, name: &str) -> Result<AddressPool> {
        let state = self.lock();
        let pool = state
            .visible_pool(tenant, name)
            .and_then(|p| state.pool(tenant, &p))
            .ok_or_else(|| Error::not_found(ResourceKind::AddressPool, name))?;
        Ok(pool.view())
    }

    async fn list_pools(&self, tenant: &Tenant) -> Result<Vec<AddressPool>> {
        let state = self.lock();
        Ok(own_pools(state.tenant(tenant))
            .chain(state.shared_pools.values())
            .map(LbPool::view)
            .collect())
    }

    async fn delete_pool(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().delete_pool(tenant, name)
    }

    async fn expose(&self, tenant: &Tenant, spec: &ExposureSpec) -> Result<Exposure> {
        self.lock().expose(tenant, spec)
    }

    async fn get_exposure(&self, tenant: &Tenant, name: &str) -> Result<Exposure> {
        let state = self.lock();
        find(
            state.tenant(tenant),
            |t| &t.exposures,
            ResourceKind::Exposure,
            name,
        )
        .map(ExposureRecord::view)
    }

    async fn list_exposures(&self, tenant: &Tenant) -> Result<Vec<Exposure>> {
        let state = self.lock();
        Ok(state
            .tenant(tenant)
            .map(|t| t.exposures.values().map(ExposureRecord::view).collect())
            .unwrap_or_default())
    }

    async fn release(&self, tenant: &Tenant, name: &str) -> Result<()> {
        self.lock().release(tenant, name)
    }

    async fn watch_exposure(
        &self,
        tenant: &Tenant,
        name: &str,
    ) -> Result<BoxStream<'static, Result<Exposure>>> {
        let mut state = self.lock();
        let record = find_mut(
            state.tenants.get_mut(tenant),
            |t| &mut t.exposures,
            ResourceKind::Exposure,
            name,
        )?;
        let current = record.view();
        Ok(record.watchers.subscribe(current))
    }
}
