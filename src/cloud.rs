//! [`Cloud`]: one backend per trait, composed.

use std::sync::Arc;

use kubecloud_core::{
    BlockStorage, Compute, ComputeCapabilities, Error, ImportPolicy, LoadBalancer,
    LoadBalancerCapabilities, Network, NetworkCapabilities, Quotas, Result, StorageCapabilities,
    Tenant,
};

use crate::reserved::ReservedNamespaces;
use crate::tenant::TenantHandle;

/// A cloud: one backend for each of compute, block storage, network and load balancing.
/// Cheap to clone; share it freely.
///
/// ```
/// let cloud = kubecloud::Cloud::in_memory();
/// assert!(cloud.capabilities().compute.live_migration);
/// let acme = cloud.tenant("acme")?;
/// assert_eq!(acme.name().as_str(), "acme");
/// # Ok::<(), kubecloud::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Cloud {
    pub(crate) compute: Arc<dyn Compute>,
    pub(crate) storage: Arc<dyn BlockStorage>,
    pub(crate) network: Arc<dyn Network>,
    pub(crate) load_balancer: Arc<dyn LoadBalancer>,
    /// Names no tenant may take.
    pub(crate) reserved: Arc<ReservedNamespaces>,
    pub(crate) import_policy: Arc<ImportPolicy>,
    /// Where tenant quotas are kept (none: quotas cannot be set, and nothing is limited).
    pub(crate) quotas: Option<Arc<dyn Quotas>>,
}

/// What each of a cloud's backends can do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// The compute backend's.
    pub compute: ComputeCapabilities,
    /// The block-storage backend's.
    pub storage: StorageCapabilities,
    /// The network backend's.
    pub network: NetworkCapabilities,
    /// The load-balancer backend's.
    pub load_balancer: LoadBalancerCapabilities,
}

impl Cloud {
    /// A builder that takes one backend per trait.
    pub fn builder() -> CloudBuilder {
        CloudBuilder::default()
    }

    /// The embedded in-memory cloud (three nodes, tiers `standard` and `fast`): no cluster needed.
    #[cfg(feature = "memory")]
    pub fn in_memory() -> Self {
        Self::from_memory(kubecloud_memory::MemoryCloud::new())
    }

    /// A cloud whose four backends are the given in-memory cloud.
    ///
    /// ```
    /// use kubecloud::{Cloud, MemoryCloud};
    /// let cloud = Cloud::from_memory(MemoryCloud::builder().nodes(5).seed(7).build());
    /// assert_eq!(cloud.capabilities().storage.max_replicas, 5);
    /// ```
    #[cfg(feature = "memory")]
    pub fn from_memory(memory: kubecloud_memory::MemoryCloud) -> Self {
        let shared = Arc::new(memory);
        Self {
            compute: shared.clone(),
            storage: shared.clone(),
            network: shared.clone(),
            load_balancer: shared.clone(),
            reserved: Arc::new(ReservedNamespaces::default()),
            import_policy: Arc::default(),
            quotas: Some(shared),
        }
    }

    /// The same cloud with another policy on which hosts image imports may fetch from. By
    /// default ([`ImportPolicy::default`]) loopback, link-local, unspecified and cloud metadata
    /// addresses and names are refused; plans also resolve the names of import URLs and refuse
    /// those resolving to such an address.
    ///
    /// ```
    /// use kubecloud::{Cloud, ImportPolicy};
    /// // A lab whose image server listens on the node's loopback.
    /// let cloud = Cloud::in_memory()
    ///     .with_import_policy(ImportPolicy::default().allow("127.0.0.0/8".parse().unwrap()));
    /// assert!(cloud.import_policy().check("url", "http://127.0.0.1:8080/os.img").is_ok());
    /// ```
    pub fn with_import_policy(mut self, policy: ImportPolicy) -> Self {
        self.import_policy = Arc::new(policy);
        self
    }

    /// The policy on which hosts image imports may fetch from.
    pub fn import_policy(&self) -> &ImportPolicy {
        &self.import_policy
    }

    /// A handle on one tenant; every call through it is scoped to that tenant.
    /// Refused with [`Error::InvalidInput`] (field `tenant`) if `name` is not a valid tenant
    /// name or is reserved ([`Cloud::reserved_namespaces`]: a system's namespace such as
    /// `metallb-system`).
    ///
    /// ```
    /// let cloud = kubecloud::Cloud::in_memory();
    /// assert!(cloud.tenant("acme").is_ok());
    /// let err = cloud.tenant("metallb-system").unwrap_err();
    /// assert_eq!(err.invalid_field(), Some("tenant"));
    /// ```
    pub fn tenant(&self, name: &str) -> Result<TenantHandle> {
        let tenant = Tenant::new(name)?;
        self.reserved.check(&tenant)?;
        Ok(TenantHandle::new(self.clone(), tenant))
    }

    /// The names no tenant may take: the [well-known](crate::reserved::WELL_KNOWN) system
    /// namespaces, those the backends report, and those added with
    /// [`CloudBuilder::reserve_namespace`].
    ///
    /// ```
    /// let cloud = kubecloud::Cloud::in_memory();
    /// assert!(cloud.reserved_namespaces().patterns().any(|p| p == "kubevirt"));
    /// ```
    pub fn reserved_namespaces(&self) -> &ReservedNamespaces {
        &self.reserved
    }

    /// What the backends can do.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            compute: self.compute.capabilities(),
            storage: self.storage.capabilities(),
            network: self.network.capabilities(),
            load_balancer: self.load_balancer.capabilities(),
        }
    }

    /// The waits the backends keep even when an apply does not wait, each with its reason
    /// ([`KeptWait`](kubecloud_core::wait::KeptWait)); a tenant's plan reports them on its
    /// steps ([`Plan::kept_waits`](crate::Plan::kept_waits)).
    ///
    /// ```
    /// // The memory cloud acts at once: it keeps none.
    /// assert!(kubecloud::Cloud::in_memory().kept_waits().is_empty());
    /// ```
    pub fn kept_waits(&self) -> Vec<kubecloud_core::wait::KeptWait> {
        [
            self.compute.kept_waits(),
            self.storage.kept_waits(),
            self.network.kept_waits(),
            self.load_balancer.kept_waits(),
        ]
        .concat()
    }

    /// The image catalog shared by every tenant (an operator's, not a tenant's).
    pub fn catalog(&self) -> crate::ImageCatalog<'_> {
        crate::ImageCatalog::new(self)
    }

    /// Node maintenance: evacuating a node and returning it to service (an operator's, not a
    /// tenant's).
    pub fn nodes(&self) -> crate::Nodes<'_> {
        crate::Nodes::new(self)
    }

    /// The compute backend (for tools that need the trait itself, such as the conformance
    /// suite; tenant-scoped calls go through [`Cloud::tenant`]).
    pub fn compute(&self) -> &dyn Compute {
        &*self.compute
    }

    /// The block-storage backend.
    pub fn storage(&self) -> &dyn BlockStorage {
        &*self.storage
    }

    /// The network backend.
    pub fn network(&self) -> &dyn Network {
        &*self.network
    }

    /// The load-balancer backend.
    pub fn load_balancer(&self) -> &dyn LoadBalancer {
        &*self.load_balancer
    }

    /// Whether the cloud keeps tenant quotas (see [`CloudBuilder::quotas`]).
    pub fn has_quotas(&self) -> bool {
        self.quotas.is_some()
    }

    /// The backends' names, as `(compute, storage, network, load balancer)`.
    pub fn backend_names(&self) -> [&str; 4] {
        [
            self.compute.backend_name(),
            self.storage.backend_name(),
            self.network.backend_name(),
            self.load_balancer.backend_name(),
        ]
    }
}

/// Builds a [`Cloud`] from one backend per trait.
///
/// ```
/// use std::sync::Arc;
/// use kubecloud::{Cloud, MemoryCloud};
/// let memory = MemoryCloud::new();
/// let cloud = Cloud::builder()
///     .compute(memory.clone())
///     .storage(memory.clone())
///     .network(memory.clone())
///     .load_balancer(memory)
///     .build()?;
/// assert_eq!(cloud.backend_names(), ["memory"; 4]);
/// // A missing backend is refused, naming it.
/// let err = Cloud::builder().compute(MemoryCloud::new()).build().unwrap_err();
/// assert_eq!(err.invalid_field(), Some("storage"));
/// # Ok::<(), kubecloud::Error>(())
/// ```
#[derive(Default)]
pub struct CloudBuilder {
    compute: Option<Arc<dyn Compute>>,
    storage: Option<Arc<dyn BlockStorage>>,
    network: Option<Arc<dyn Network>>,
    load_balancer: Option<Arc<dyn LoadBalancer>>,
    reserved: ReservedNamespaces,
    import_policy: ImportPolicy,
    quotas: Option<Arc<dyn Quotas>>,
}

impl CloudBuilder {
    /// Which hosts image imports may fetch from (see [`Cloud::with_import_policy`]).
    ///
    /// ```
    /// use kubecloud::{Cloud, ImportPolicy, MemoryCloud};
    /// let memory = MemoryCloud::new();
    /// let cloud = Cloud::builder()
    ///     .compute(memory.clone())
    ///     .storage(memory.clone())
    ///     .network(memory.clone())
    ///     .load_balancer(memory)
    ///     .import_policy(ImportPolicy::default().allow_host("mirror.lab.internal"))
    ///     .build()?;
    /// assert!(cloud.import_policy().host_allowed("mirror.lab.internal"));
    /// # Ok::<(), kubecloud::Error>(())
    /// ```
    pub fn import_policy(mut self, policy: ImportPolicy) -> Self {
        self.import_policy = policy;
        self
    }

    /// Where tenant quotas are kept (the memory cloud, or `kubecloud_kube::KubeQuotas` on
    /// Kubernetes). Without one, quotas cannot be set and nothing is limited.
    ///
    /// ```
    /// use kubecloud::{Cloud, MemoryCloud};
    /// let memory = MemoryCloud::new();
    /// let cloud = Cloud::builder()
    ///     .compute(memory.clone()).storage(memory.clone()).network(memory.clone())
    ///     .load_balancer(memory.clone()).quotas(memory)
    ///     .build()?;
    /// assert!(cloud.has_quotas());
    /// # Ok::<(), kubecloud::Error>(())
    /// ```
    pub fn quotas(self, store: impl Quotas + 'static) -> Self {
        self.quotas_arc(Arc::new(store))
    }
    /// Where tenant quotas are kept, shared.
    pub fn quotas_arc(mut self, store: Arc<dyn Quotas>) -> Self {
        self.quotas = Some(store);
        self
    }

    /// The compute backend.
    pub fn compute(self, backend: impl Compute + 'static) -> Self {
        self.compute_arc(Arc::new(backend))
    }
    /// The compute backend, shared.
    pub fn compute_arc(mut self, backend: Arc<dyn Compute>) -> Self {
        self.compute = Some(backend);
        self
    }
    /// The block-storage backend.
    pub fn storage(self, backend: impl BlockStorage + 'static) -> Self {
        self.storage_arc(Arc::new(backend))
    }
    /// The block-storage backend, shared.
    pub fn storage_arc(mut self, backend: Arc<dyn BlockStorage>) -> Self {
        self.storage = Some(backend);
        self
    }
    /// The network backend.
    pub fn network(self, backend: impl Network + 'static) -> Self {
        self.network_arc(Arc::new(backend))
    }
    /// The network backend, shared.
    pub fn network_arc(mut self, backend: Arc<dyn Network>) -> Self {
        self.network = Some(backend);
        self
    }
    /// The load-balancer backend.
    pub fn load_balancer(self, backend: impl LoadBalancer + 'static) -> Self {
        self.load_balancer_arc(Arc::new(backend))
    }
    /// The load-balancer backend, shared.
    pub fn load_balancer_arc(mut self, backend: Arc<dyn LoadBalancer>) -> Self {
        self.load_balancer = Some(backend);
        self
    }

    /// The cloud; refused with [`Error::InvalidInput`] naming the first missing backend.
    pub fn build(self) -> Result<Cloud> {
        let missing = |what: &str| Error::invalid(what, "no backend given");
        let compute = self.compute.ok_or_else(|| missing("compute"))?;
        let storage = self.storage.ok_or_else(|| missing("storage"))?;
        let network = self.network.ok_or_else(|| missing("network"))?;
        let load_balancer = self.load_balancer.ok_or_else(|| missing("load_balancer"))?;
        let mut reserved = self.reserved;
        let systems = [
            (compute.backend_name(), compute.system_namespaces()),
            (storage.backend_name(), storage.system_namespaces()),
            (network.backend_name(), network.system_namespaces()),
            (
                load_balancer.backend_name(),
                load_balancer.system_namespaces(),
            ),
        ];
        for (backend, namespaces) in systems {
            for namespace in namespaces {
                reserved.add(namespace, format!("the {backend} backend's system"));
            }
        }
        Ok(Cloud {
            compute,
            storage,
            network,
            load_balancer,
            reserved: Arc::new(reserved),
            import_policy: Arc::new(self.import_policy),
            quotas: self.quotas,
        })
    }

    /// Reserves a namespace (or a prefix, written `prefix-*`) for `holder`: no tenant may take
    /// it. Added to the [well-known](crate::reserved::WELL_KNOWN) ones and those the backends
    /// report.
    ///
    /// ```
    /// use kubecloud::{Cloud, MemoryCloud};
    /// let memory = MemoryCloud::new();
    /// let cloud = Cloud::builder()
    ///     .compute(memory.clone()).storage(memory.clone()).network(memory.clone()).load_balancer(memory)
    ///     .reserve_namespace("monitoring", "the monitoring stack")
    ///     .build()?;
    /// assert!(cloud.tenant("monitoring").is_err());
    /// # Ok::<(), kubecloud::Error>(())
    /// ```
    pub fn reserve_namespace(
        mut self,
        pattern: impl Into<String>,
        holder: impl Into<String>,
    ) -> Self {
        self.reserved.add(pattern, holder);
        self
    }
}

impl std::fmt::Debug for CloudBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudBuilder")
            .field("compute", &self.compute.as_ref().map(|b| b.backend_name()))
            .field("storage", &self.storage.as_ref().map(|b| b.backend_name()))
            .field("network", &self.network.as_ref().map(|b| b.backend_name()))
            .field(
                "load_balancer",
                &self.load_balancer.as_ref().map(|b| b.backend_name()),
            )
            .finish()
    }
}
