//! The whole cloud behind one lock: nodes, storage pools, cluster-wide address spaces, MACs in
//! use, shared address pools, the step queue, and every tenant's resources.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kubecloud_core::ipam::AddressSpace;
use kubecloud_core::{
    AddressPoolSpec, ByteSize, Error, IpReservation, MacAddress, ResourceKind, Result, SubnetSpec,
    Tenant,
};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::Notify;

use crate::driver::Queue;
use crate::external::ExternalIpRecord;
use crate::loadbalancer::{ExposureRecord, LbPool};
use crate::network::{ServiceRecord, SgRecord, SubnetRecord, VpcRecord};
use crate::placement::{Node, SpreadCounts};
use crate::storage::{PoolState, SnapshotRecord, VolumeRecord};
use crate::vm::VmRecord;
use crate::vm_snapshot::VmSnapshotRecord;

/// The default pod network every VM's pod-network interface takes its address from.
pub(crate) const POD_CIDR: &str = "10.244.0.0/16";
/// The service network cluster IPs come from (as on a kubeadm cluster).
pub(crate) const SERVICE_CIDR: &str = "10.96.0.0/12";
/// The provider's external network external IPs come from (shared by every tenant).
pub(crate) const EXTERNAL_CIDR: &str = "172.31.0.0/16";

/// What the builder hands to the state.
pub(crate) struct Config {
    pub(crate) nodes: usize,
    pub(crate) seed: u64,
    pub(crate) pools: Vec<(String, ByteSize)>,
    pub(crate) shared_pools: Vec<AddressPoolSpec>,
    pub(crate) step_delay: Duration,
}

/// Everything the cloud knows.
pub(crate) struct State {
    pub(crate) nodes: Vec<Node>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) tenants: HashMap<Tenant, TenantState>,
    pub(crate) storage_pools: Vec<PoolState>,
    /// Every MAC held by a VM interface or a reservation, cloud-wide.
    pub(crate) macs: HashSet<MacAddress>,
    pub(crate) pod_network: AddressSpace,
    pub(crate) service_network: AddressSpace,
    /// The external network external IPs come from, shared by every tenant.
    pub(crate) external_network: AddressSpace,
    /// Address pools every tenant may use, by name.
    pub(crate) shared_pools: BTreeMap<String, LbPool>,
    pub(crate) queue: Queue,
    /// Each tenant's quota (none: unlimited); see `quota.rs`.
    pub(crate) quotas: HashMap<Tenant, kubecloud_core::Quota>,
    /// The image catalog, by name (cluster-wide).
    pub(crate) catalog: BTreeMap<String, crate::catalog::CatalogRecord>,
    /// Catalog imports run so far.
    pub(crate) catalog_imports: u64,
}

/// One tenant's resources, each kind by name.
#[derive(Default)]
pub(crate) struct TenantState {
    pub(crate) vms: BTreeMap<String, VmRecord>,
    pub(crate) spread: SpreadCounts,
    pub(crate) volumes: BTreeMap<String, VolumeRecord>,
    pub(crate) snapshots: BTreeMap<String, SnapshotRecord>,
    pub(crate) vm_snapshots: BTreeMap<String, VmSnapshotRecord>,
    pub(crate) vpcs: BTreeMap<String, VpcRecord>,
    pub(crate) subnets: BTreeMap<String, SubnetRecord>,
    pub(crate) reservations: BTreeMap<String, IpReservation>,
    pub(crate) security_groups: BTreeMap<String, SgRecord>,
    pub(crate) services: BTreeMap<String, ServiceRecord>,
    pub(crate) pools: BTreeMap<String, LbPool>,
    pub(crate) exposures: BTreeMap<String, ExposureRecord>,
    pub(crate) external_ips: BTreeMap<String, ExternalIpRecord>,
    pub(crate) floating_ips: BTreeMap<String, kubecloud_core::FloatingIpSpec>,
    pub(crate) snat_rules: BTreeMap<String, kubecloud_core::SnatRuleSpec>,
}

impl State {
    pub(crate) fn new(config: Config, notify: Arc<Notify>) -> Self {
        let cidr = |s: &str| s.parse().unwrap_or_else(|_| unreachable!("constant CIDR"));
        let pod = SubnetSpec::new("pod-network", "cluster", cidr(POD_CIDR));
        let mut service = SubnetSpec::new("service-network", "cluster", cidr(SERVICE_CIDR));
        // .1 (the gateway position) is the `kubernetes` service, .10 the cluster DNS.
        service.exclude = vec!["10.96.0.10".parse().unwrap_or_else(|_| unreachable!())];
        let external = SubnetSpec::new("external-network", "external", cidr(EXTERNAL_CIDR));
        let nodes: Vec<Node> = (1..=config.nodes)
            .map(|i| Node::new(format!("node-{i}")))
            .collect();
        let storage_pools = config
            .pools
            .into_iter()
            .map(|(name, per_node)| PoolState::new(name, per_node, nodes.len()))
            .collect();
        let shared_pools = config
            .shared_pools
            .into_iter()
            .map(|spec| (spec.name.clone(), LbPool::shared(spec)))
            .collect();
        Self {
            nodes,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            tenants: HashMap::new(),
            storage_pools,
            macs: HashSet::new(),
            pod_network: AddressSpace::for_subnet(&pod),
            service_network: AddressSpace::for_subnet(&service),
            external_network: AddressSpace::for_subnet(&external),
            shared_pools,
            queue: Queue::new(config.step_delay, notify),
            quotas: HashMap::new(),
            catalog: BTreeMap::new(),
            catalog_imports: 0,
        }
    }

    /// The tenant's resources, if it has any.
    pub(crate) fn tenant(&self, tenant: &Tenant) -> Option<&TenantState> {
        self.tenants.get(tenant)
    }

    /// The tenant's resources, created empty on first use.
    pub(crate) fn tenant_mut(&mut self, tenant: &Tenant) -> &mut TenantState {
        self.tenants.entry(tenant.clone()).or_default()
    }

    /// A new locally administered unicast MAC, unique in the cloud, from the seeded RNG.
    pub(crate) fn generate_mac(&mut self) -> MacAddress {
        loop {
            let bytes = self.rng.next_u64().to_le_bytes();
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&bytes[..6]);
            mac[0] = (mac[0] & 0b1111_1100) | 0b10;
            let mac = MacAddress(mac);
            if self.macs.insert(mac) {
                return mac;
            }
        }
    }
}

/// Looks `name` up in one of a tenant's maps, as [`Error::NotFound`] of `kind` when absent.
pub(crate) fn find<'a, T>(
    tenant: Option<&'a TenantState>,
    map: impl FnOnce(&'a TenantState) -> &'a BTreeMap<String, T>,
    kind: ResourceKind,
    name: &str,
) -> Result<&'a T> {
    tenant
        .and_then(|ts| map(ts).get(name))
        .ok_or_else(|| Error::not_found(kind, name))
}

/// Looks `name` up mutably in one of a tenant's maps.
pub(crate) fn find_mut<'a, T>(
    tenant: Option<&'a mut TenantState>,
    map: impl FnOnce(&'a mut TenantState) -> &'a mut BTreeMap<String, T>,
    kind: ResourceKind,
    name: &str,
) -> Result<&'a mut T> {
    tenant
        .and_then(|ts| map(ts).get_mut(name))
        .ok_or_else(|| Error::not_found(kind, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(seed: u64) -> State {
        State::new(
            Config {
                nodes: 3,
                seed,
                pools: vec![("standard".into(), ByteSize::tib(1))],
                shared_pools: Vec::new(),
                step_delay: Duration::from_millis(1),
            },
            Arc::new(Notify::new()),
        )
    }

    #[test]
    fn generated_macs_are_local_unicast_unique_and_seeded() {
        let (mut a, mut b) = (state(7), state(7));
        let macs: Vec<_> = (0..1000).map(|_| a.generate_mac()).collect();
        assert!(
            macs.iter()
                .all(|m| m.is_locally_administered() && !m.is_multicast())
        );
        assert_eq!(a.macs.len(), 1000);
        let again: Vec<_> = (0..1000).map(|_| b.generate_mac()).collect();
        assert_eq!(macs, again);
        assert_ne!(state(8).generate_mac(), macs[0]);
    }

    #[test]
    fn service_network_skips_the_api_and_dns_addresses() {
        let mut s = state(0);
        let first = s.service_network.allocate("a").unwrap();
        assert_eq!(first.to_string(), "10.96.0.2");
        assert!(
            !s.service_network
                .is_allocatable("10.96.0.10".parse().unwrap())
        );
    }
}
