//! # kubecloud-memory
//!
//! The in-memory cloud: a complete implementation of kubecloud's four traits
//! ([`Compute`](kubecloud_core::Compute), [`BlockStorage`](kubecloud_core::BlockStorage),
//! [`Network`](kubecloud_core::Network), [`LoadBalancer`](kubecloud_core::LoadBalancer)) that
//! follows the rules of the real stack (KubeVirt, LINSTOR, Kube-OVN, MetalLB): tenant isolation,
//! IPAM with exclusions and reservations, replica placement on distinct nodes with per-node
//! capacity, RWX requirements for live migration, MetalLB-style address assignment and sharing,
//! and Kube-OVN-style external access (external IPs from one external network, 172.31.0.0/16,
//! shared by every tenant; floating IPs and SNAT rules). It is the quickstart's embedded default and a test double for your own code.
//!
//! Phases advance asynchronously, as on a cluster: a VM is `Provisioning`/`Starting` before it
//! is `Running`. Wait with watches, never with sleeps:
//!
//! ```
//! use std::time::Duration;
//! use kubecloud_core::{Compute, Tenant, VmSpec, wait};
//! use kubecloud_memory::MemoryCloud;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kubecloud_core::Result<()> {
//! let cloud = MemoryCloud::new();
//! let acme = Tenant::new("acme")?;
//! let vm = cloud.apply_vm_resolved(&acme, &VmSpec { name: "web-1".into(), ..VmSpec::default() }).await?;
//! assert_ne!(vm.status.phase, kubecloud_core::VmPhase::Running);
//! let vm = wait::until(cloud.watch_vm(&acme, "web-1").await?, wait::vm_running(), Duration::from_secs(10)).await?;
//! assert_eq!(vm.status.node.as_deref(), Some("node-1"));
//! # Ok(())
//! # }
//! ```
//!
//! ## Determinism
//! Every choice (nodes, MACs, IPs, external addresses) is made in the synchronous part of the
//! API call that needs it, from state and a seeded RNG; background steps only move resources to
//! their next phase. Two clouds with the same seed given the same sequence of calls make the same
//! choices.
//!
//! ## Runtime
//! Asynchronous steps run on one background task per cloud, started on the tokio runtime of the
//! first call (and again on the next runtime if that one shuts down). Tests may use
//! `#[tokio::test(start_paused = true)]`: the step delay then passes in virtual time.
//!
//! ## Modules
//! `state` (the one lock), `driver` (the phase-step timer), `watch` (per-resource channels),
//! `placement` (nodes), `vm` (VM life cycle) and `compute`, `storage`, `network`,
//! `loadbalancer` (one trait each), `external` (external IPs, floating IPs, SNAT rules).

mod catalog;
mod compute;
mod driver;
mod external;
mod hotplug;
mod loadbalancer;
mod network;
mod nodes;
mod placement;
mod ports;
mod quota;
mod state;
mod storage;
mod vm;
mod vm_snapshot;
mod watch;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kubecloud_core::{AddressPoolSpec, ByteSize};
use tokio::sync::Notify;

pub use crate::compute::INSTANCE_TYPES;
use crate::state::{Config, State};

/// The name every trait's `backend_name()` returns.
pub(crate) const BACKEND: &str = "memory";

/// An in-memory cloud. Cheap to clone (clones share one cloud), `Send + Sync`.
///
/// ```
/// use kubecloud_core::{BlockStorage, Tenant};
/// use kubecloud_memory::MemoryCloud;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> kubecloud_core::Result<()> {
/// let cloud = MemoryCloud::new();
/// let pools = BlockStorage::list_pools(&cloud, &Tenant::new("acme")?).await?;
/// assert_eq!(pools[0].name, "standard");
/// assert!(pools[0].default);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryCloud {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    notify: Arc<Notify>,
    nodes: usize,
    seed: u64,
}

impl Inner {
    /// The state; a panic while it was held leaves it consistent enough to go on (every
    /// mutation is checked before it starts), so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wake the driver so it notices the cloud is gone and ends.
        self.notify.notify_one();
    }
}

impl MemoryCloud {
    /// A cloud with the defaults: three nodes `node-1`..`node-3`, seed 0, storage pools
    /// `standard` (the default tier, 1Ti per node) and `fast` (256Gi per node), no shared
    /// address pool, 1ms between asynchronous steps.
    ///
    /// ```
    /// let cloud = kubecloud_memory::MemoryCloud::new();
    /// # let _ = cloud;
    /// ```
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder to change the defaults of [`MemoryCloud::new`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use kubecloud_core::ByteSize;
    /// let cloud = kubecloud_memory::MemoryCloud::builder()
    ///     .nodes(5)
    ///     .seed(42)
    ///     .storage_pool("ssd", ByteSize::gib(500))
    ///     .step_delay(Duration::from_millis(5))
    ///     .build();
    /// # let _ = cloud;
    /// ```
    pub fn builder() -> MemoryCloudBuilder {
        MemoryCloudBuilder::default()
    }

    /// The state, with the driver task running on the current runtime.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        let mut state = self.inner.lock();
        driver::ensure_running(&self.inner, &mut state);
        state
    }
}

impl MemoryCloud {
    /// How many catalog image imports the cloud has run (each image once, and again when its
    /// source changes; never for a VM cloning one).
    ///
    /// ```
    /// assert_eq!(kubecloud_memory::MemoryCloud::new().catalog_imports(), 0);
    /// ```
    pub fn catalog_imports(&self) -> u64 {
        self.inner.lock().catalog_imports
    }
}

impl Default for MemoryCloud {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryCloud {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCloud")
            .field("nodes", &self.inner.nodes)
            .field("seed", &self.inner.seed)
            .finish_non_exhaustive()
    }
}

/// Builds a [`MemoryCloud`]; see [`MemoryCloud::builder`].
#[derive(Clone, Debug)]
pub struct MemoryCloudBuilder {
    nodes: usize,
    seed: u64,
    pools: Option<Vec<(String, ByteSize)>>,
    shared_pools: Vec<AddressPoolSpec>,
    step_delay: Duration,
}

impl Default for MemoryCloudBuilder {
    fn default() -> Self {
        Self {
            nodes: 3,
            seed: 0,
            pools: None,
            shared_pools: Vec::new(),
            step_delay: Duration::from_millis(1),
        }
    }
}

impl MemoryCloudBuilder {
    /// `n` nodes, named `node-1`..`node-n`, each labelled `kubernetes.io/hostname=<name>`.
    pub fn nodes(mut self, n: usize) -> Self {
        self.nodes = n;
        self
    }

    /// The seed of the RNG that generates MACs.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// A storage pool (tier) with `per_node` capacity on every node. The first pool given is
    /// the default tier; giving any replaces the default pools. Giving a name again replaces
    /// its capacity.
    ///
    /// ```
    /// use kubecloud_core::{BlockStorage, ByteSize, Tenant};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud_core::Result<()> {
    /// let cloud = kubecloud_memory::MemoryCloud::builder()
    ///     .nodes(2)
    ///     .storage_pool("nvme", ByteSize::gib(100))
    ///     .build();
    /// let pools = BlockStorage::list_pools(&cloud, &Tenant::new("acme")?).await?;
    /// assert_eq!(pools.len(), 1);
    /// assert_eq!(pools[0].capacity, ByteSize::gib(200));
    /// # Ok(())
    /// # }
    /// ```
    pub fn storage_pool(mut self, name: &str, per_node: ByteSize) -> Self {
        let pools = self.pools.get_or_insert_with(Vec::new);
        match pools.iter_mut().find(|(n, _)| n == name) {
            Some(pool) => pool.1 = per_node,
            None => pools.push((name.to_string(), per_node)),
        }
        self
    }

    /// An address pool every tenant may use but none may delete, like a cluster
    /// administrator's MetalLB pool.
    ///
    /// ```
    /// use kubecloud_core::{AddressBlock, AddressPoolSpec};
    /// let cloud = kubecloud_memory::MemoryCloud::builder()
    ///     .shared_address_pool(AddressPoolSpec::l2(
    ///         "public",
    ///         vec![AddressBlock::Cidr("203.0.113.0/28".parse().unwrap())],
    ///     ))
    ///     .build();
    /// # let _ = cloud;
    /// ```
    pub fn shared_address_pool(mut self, spec: AddressPoolSpec) -> Self {
        self.shared_pools.push(spec);
        self
    }

    /// The time between asynchronous phase steps (1ms by default).
    pub fn step_delay(mut self, delay: Duration) -> Self {
        self.step_delay = delay;
        self
    }

    /// The cloud.
    ///
    /// # Panics
    /// If a shared address pool is invalid, or overlaps or shares its name with another one: a
    /// mistake in test setup, reported where it is made.
    pub fn build(self) -> MemoryCloud {
        for (i, pool) in self.shared_pools.iter().enumerate() {
            if let Err(err) = pool.validate() {
                panic!("shared address pool {:?}: {err}", pool.name);
            }
            for other in &self.shared_pools[..i] {
                assert!(
                    other.name != pool.name,
                    "shared address pool {:?} is given twice",
                    pool.name
                );
                let overlap = pool.addresses.iter().any(|a| {
                    other
                        .addresses
                        .iter()
                        .any(|b| a.range().overlaps(&b.range()))
                });
                assert!(
                    !overlap,
                    "shared address pools {:?} and {:?} overlap",
                    other.name, pool.name
                );
            }
        }
        let pools = self.pools.unwrap_or_else(|| {
            vec![
                ("standard".to_string(), ByteSize::tib(1)),
                ("fast".to_string(), ByteSize::gib(256)),
            ]
        });
        let notify = Arc::new(Notify::new());
        let config = Config {
            nodes: self.nodes,
            seed: self.seed,
            pools,
            shared_pools: self.shared_pools,
            step_delay: self.step_delay,
        };
        MemoryCloud {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(config, notify.clone())),
                notify,
                nodes: self.nodes,
                seed: self.seed,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cloud_is_send_sync_and_debug_without_state() {
        fn send_sync<T: Send + Sync + Clone + fmt::Debug>() {}
        send_sync::<MemoryCloud>();
        assert_eq!(
            format!("{:?}", MemoryCloud::new()),
            "MemoryCloud { nodes: 3, seed: 0, .. }"
        );
    }

    #[test]
    #[should_panic(expected = "overlap")]
    fn overlapping_shared_pools_are_refused_at_build() {
        let block = |s: &str| kubecloud_core::AddressBlock::Cidr(s.parse().unwrap());
        MemoryCloud::builder()
            .shared_address_pool(AddressPoolSpec::l2("a", vec![block("192.0.2.0/28")]))
            .shared_address_pool(AddressPoolSpec::l2("b", vec![block("192.0.2.8/29")]))
            .build();
    }
}
