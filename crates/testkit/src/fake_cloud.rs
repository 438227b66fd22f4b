//! A fake cloud: the whole stack of doubles kubecloud's four Kubernetes backends run on, in one
//! value — the Kubernetes API double with every simulated controller and the LINSTOR controller
//! double, seeded like a cluster where Piraeus, KubeVirt, CDI, Kube-OVN and MetalLB are installed.
//!
//! What is in it:
//!
//! - the API double ([`TestServer`]) with the controllers [`GarbageCollector`],
//!   [`NamespaceController`], [`LinstorCsi`] (on the LINSTOR double), [`CdiController`],
//!   [`KubeVirtController`] (with the nodes [`FakeCloud::NODES`]), [`KubeVirtSnapshotController`],
//!   [`KubeOvnController`] and [`MetalLbController`] (or [`CiliumLbIpam`] and
//!   [`crate::CiliumBgpControlPlane`] with [`FakeCloudBuilder::cilium`], or [`crate::KubeVipCloudProvider`] with
//!   [`FakeCloudBuilder::kubevip`]);
//! - the LINSTOR double ([`LinstorServer`]): the three nodes, pools `lvm-thin` (LVM_THIN) and
//!   `zfs` (ZFS) on each, resource groups `rg-fast` (2 replicas on `lvm-thin`) and `rg-bulk`
//!   (1 replica on `zfs`) — see [`FakeCloud::TIERS`]. It serves HTTPS only and requires a client
//!   certificate, as LINSTOR does when Piraeus' `spec.apiTLS` is set; the certificates come from a
//!   [`TestPki`] made at start ([`FakeCloud::linstor_pki`]);
//! - seeded objects: the `Node`s, namespaces `metallb-system` and `piraeus-datastore`, the default
//!   StorageClass `linstor-default` and the class `fast` (both on `rg-fast`), and what a Piraeus
//!   installation with an external controller and API TLS has: the `piraeus.io/v1`
//!   `LinstorCluster` named `linstorcluster` whose `spec.externalController.url` is the LINSTOR
//!   double's `https://` URL and whose `spec.apiTLS.clientSecretName` is `linstor-client-tls`, and
//!   that Secret (type `kubernetes.io/tls`, keys `ca.crt`, `tls.crt`, `tls.key`, as cert-manager
//!   writes it) in Piraeus' namespace `piraeus-datastore`, where the operator reads it. A client
//!   discovers LINSTOR and its client certificate as it does on a real cluster.
//!
//! The simulated CDI is shared with the fake cloud (`FakeCloud::cdi`, to count imports), and so
//! is the cluster RBAC the simulated KubeVirt authorizes cross-namespace clones against
//! (`FakeCloud::rbac`, empty at start: the API double serves no RBAC kinds; install the Roles and
//! bindings an operator would apply, such as kubecloud's catalog RBAC).
//!
//! With [`FakeCloudBuilder::csi`], a simulated CSI driver ([`crate::csi`]) replaces LINSTOR:
//! no LINSTOR double, `LinstorCluster`, Piraeus namespace or LINSTOR classes, but the driver's
//! `CSIDriver`, classes, snapshot class and controllers ([`FakeCloud::csi`]).
//!
//! ```
//! use kubecloud_testkit::FakeCloud;
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cloud = FakeCloud::builder().seed(7).start().await?;
//! let lc = cloud.kube().cluster().get("piraeus.io/v1", "LinstorCluster", None, "linstorcluster")?;
//! assert_eq!(lc["spec"]["externalController"]["url"], cloud.linstor().url());
//! assert!(cloud.linstor().url().starts_with("https://"));
//! let secret = cloud.kube().cluster().get("v1", "Secret", Some("piraeus-datastore"), "linstor-client-tls")?;
//! assert_eq!(secret["type"], "kubernetes.io/tls");
//! assert_eq!(cloud.kube().cluster().list("v1", "Node", None)?.len(), 3);
//! # Ok(()) }
//! ```

use std::net::SocketAddr;

use base64::Engine as _;

use crate::csi::{CsiDriver, CsiInstall, CsiProfile};
use crate::linstor::{LinstorServer, LinstorStartError, TestPki, TlsSetupError};
use crate::{
    CdiController, CiliumLbIpam, GarbageCollector, KubeOvnController, KubeVirtController,
    KubeVirtSnapshotController, Latency, LinstorCsi, MetalLbController, NamespaceController,
    PvcProtection, StartError, TestServer,
};

/// Cluster objects seeded besides the nodes; `{linstor_url}` and the `{..._b64}` are replaced.
const CLUSTER: &str = r#"
---
apiVersion: v1
kind: Namespace
metadata:
  name: metallb-system
---
apiVersion: v1
kind: Namespace
metadata:
  name: piraeus-datastore
---
# Piraeus' operator reads this; a client finds the LINSTOR controller through it.
apiVersion: piraeus.io/v1
kind: LinstorCluster
metadata:
  name: linstorcluster
spec:
  externalController:
    url: "{linstor_url}"
  apiTLS:
    clientSecretName: linstor-client-tls
---
# The client certificate for the LINSTOR API, in Piraeus' namespace, as cert-manager writes it.
apiVersion: v1
kind: Secret
metadata:
  name: linstor-client-tls
  namespace: piraeus-datastore
type: kubernetes.io/tls
data:
  ca.crt: "{ca_b64}"
  tls.crt: "{cert_b64}"
  tls.key: "{key_b64}"
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: linstor-default
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: linstor.csi.linbit.com
allowVolumeExpansion: true
volumeBindingMode: Immediate
parameters:
  linstor.csi.linbit.com/resourceGroup: rg-fast
  linstor.csi.linbit.com/placementCount: "2"
---
# KubeVirt imports boot disks into the StorageClass named after the tier.
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: linstor.csi.linbit.com
allowVolumeExpansion: true
parameters:
  linstor.csi.linbit.com/resourceGroup: rg-fast
"#;

/// Cluster objects seeded besides the nodes when a CSI driver replaces LINSTOR.
const CSI_CLUSTER: &str = r#"
---
apiVersion: v1
kind: Namespace
metadata:
  name: metallb-system
"#;

/// Capacity of each pool on each node: room for thousands of 1 GiB volumes with 2 replicas.
const POOL_KIB: u64 = 16 << 30;

/// Why a [`FakeCloud`] could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FakeCloudError {
    /// The LINSTOR double did not start.
    #[error("starting the LINSTOR controller double: {0}")]
    Linstor(#[from] LinstorStartError),
    /// The LINSTOR double's certificates could not be made.
    #[error("making the LINSTOR double's certificates: {0}")]
    Tls(#[from] TlsSetupError),
    /// The Kubernetes API double did not start (socket in use, seed refused, ...).
    #[error("starting the Kubernetes API double: {0}")]
    Kube(#[from] StartError),
    /// The CSI driver's objects were refused.
    #[error("installing the CSI driver: {0}")]
    Csi(#[from] crate::ApiError),
}

/// Options for a [`FakeCloud`]; start with [`FakeCloud::builder`].
#[must_use]
#[derive(Debug, Clone)]
pub struct FakeCloudBuilder {
    latency: Latency,
    seed: u64,
    bind: SocketAddr,
    csi: Option<CsiProfile>,
    load_balancer: LoadBalancerSystem,
    multus: bool,
    kubemacpool: Option<crate::Kubemacpool>,
    without_groups: Vec<String>,
}

/// The empty ConfigMap of kube-vip-cloud-provider the kube-vip fake cloud starts with.
const KUBEVIP_CONFIG_MAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kubevip, namespace: kube-system}\n";

/// Which load balancer a [`FakeCloud`] runs (see [`FakeCloudBuilder::cilium`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadBalancerSystem {
    /// MetalLB's controller ([`MetalLbController`]), the default.
    #[default]
    MetalLb,
    /// Cilium's LB-IPAM ([`CiliumLbIpam`]) instead of MetalLB.
    Cilium,
    /// kube-vip-cloud-provider and kube-vip ([`crate::KubeVipCloudProvider`]) instead of MetalLB.
    KubeVip,
}

impl Default for FakeCloudBuilder {
    fn default() -> Self {
        Self {
            latency: Latency::None,
            seed: 0,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            csi: None,
            load_balancer: LoadBalancerSystem::MetalLb,
            multus: false,
            kubemacpool: None,
            without_groups: Vec::new(),
        }
    }
}

impl FakeCloudBuilder {
    /// Storage from the simulated CSI driver `profile` ([`crate::csi`]) instead of
    /// Piraeus/LINSTOR: no LINSTOR double, no `LinstorCluster`, no `piraeus-datastore`
    /// namespace and no LINSTOR classes; the driver's `CSIDriver`, classes and snapshot class
    /// instead (see [`crate::csi`] for their names), reachable through [`FakeCloud::csi`].
    ///
    /// ```
    /// use kubecloud_testkit::FakeCloud;
    /// use kubecloud_testkit::csi::CsiProfile;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cloud = FakeCloud::builder().csi(CsiProfile::CephRbd).start().await?;
    /// assert_eq!(cloud.csi().map(|d| d.driver()), Some("rbd.csi.ceph.com"));
    /// assert!(cloud.try_linstor().is_none());
    /// assert!(cloud.kube().cluster().list("piraeus.io/v1", "LinstorCluster", None)?.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn csi(mut self, profile: CsiProfile) -> Self {
        self.csi = Some(profile);
        self
    }

    /// Load balancing by Cilium's LB-IPAM ([`CiliumLbIpam`]) instead of MetalLB's controller:
    /// `CiliumLoadBalancerIPPool`s give Services their addresses, MetalLB's objects are served
    /// (every CRD is) but nothing acts on them. Both take Services without a
    /// `loadBalancerClass`, so only one of them runs. Cilium's BGP control plane
    /// ([`crate::CiliumBgpControlPlane`]) runs too: it makes the `CiliumBGPNodeConfig`s, and
    /// [`crate::cilium_bgp::advertised_routes`] says what each node announces.
    ///
    /// ```
    /// use kubecloud_testkit::FakeCloud;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cloud = FakeCloud::builder().cilium().start().await?;
    /// assert!(cloud.kube().controller("cilium-operator-lb-ipam").is_some());
    /// assert!(cloud.kube().controller("cilium-operator-bgp").is_some());
    /// assert!(cloud.kube().controller("metallb-controller").is_none());
    /// # Ok(()) }
    /// ```
    pub fn cilium(mut self) -> Self {
        self.load_balancer = LoadBalancerSystem::Cilium;
        self
    }

    /// Load balancing by kube-vip-cloud-provider and kube-vip ([`crate::KubeVipCloudProvider`],
    /// ConfigMap `kubevip` in `kube-system`, Services without a class, announced from
    /// `node-1`) instead of MetalLB's controller. Both take Services without a
    /// `loadBalancerClass`, so only one of them runs.
    ///
    /// ```
    /// use kubecloud_testkit::FakeCloud;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cloud = FakeCloud::builder().kubevip().start().await?;
    /// assert!(cloud.kube().controller("kube-vip-cloud-provider").is_some());
    /// assert!(cloud.kube().controller("metallb-controller").is_none());
    /// # Ok(()) }
    /// ```
    pub fn kubevip(mut self) -> Self {
        self.load_balancer = LoadBalancerSystem::KubeVip;
        self
    }

    /// Networks without Kube-OVN: the simulated Multus + whereabouts
    /// ([`crate::whereabouts`], pools in `kube-system`) and multi-network policy controller
    /// ([`crate::multi_networkpolicy`], reachable through [`FakeCloud::multi_policies`]) run
    /// instead of the simulated Kube-OVN. (The Kube-OVN CRDs stay served.)
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cloud = kubecloud_testkit::FakeCloud::builder().multus().start().await?;
    /// assert!(cloud.multi_policies().is_some());
    /// # Ok(()) }
    /// ```
    pub fn multus(mut self) -> Self {
        self.multus = true;
        self
    }

    /// Kubemacpool ([`crate::kubemacpool`]) with its release's default range
    /// `02:00:00:00:00:00`–`02:ff:ff:ff:ff:ff`, opt-in: its webhook gives VMs of namespaces
    /// labelled `mutatevirtualmachines.kubemacpool.io: allocate` their MACs. Reachable through
    /// [`FakeCloud::kubemacpool`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cloud = kubecloud_testkit::FakeCloud::builder().multus().kubemacpool().start().await?;
    /// assert!(cloud.kubemacpool().is_some_and(|pool| pool.in_range("02:00:00:00:00:07")));
    /// # Ok(()) }
    /// ```
    pub fn kubemacpool(self) -> Self {
        self.kubemacpool_with(crate::Kubemacpool::new(
            [0x02, 0, 0, 0, 0, 0],
            [0x02, 0xff, 0xff, 0xff, 0xff, 0xff],
        ))
    }

    /// Kubemacpool as configured (its range, opt mode, duplicate blocking).
    pub fn kubemacpool_with(mut self, pool: crate::Kubemacpool) -> Self {
        self.kubemacpool = Some(pool);
        self
    }

    /// Serves no API of `groups` (systems not installed, e.g. `kubeovn.io` for a cluster with
    /// Multus and no Kube-OVN), as [`Catalog::without_groups`](crate::schema::Catalog::without_groups).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cloud = kubecloud_testkit::FakeCloud::builder()
    ///     .multus()
    ///     .without_groups(&["kubeovn.io"])
    ///     .start()
    ///     .await?;
    /// assert!(cloud.kube().cluster().list("kubeovn.io/v1", "Vpc", None).is_err());
    /// # Ok(()) }
    /// ```
    pub fn without_groups(mut self, groups: &[&str]) -> Self {
        self.without_groups
            .extend(groups.iter().map(|g| g.to_string()));
        self
    }

    /// Latency on every Kubernetes API request (default none).
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// Seed of the API double's generators: uids, generated names, fault and latency draws
    /// (default 0).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Address of the Kubernetes API double (default `127.0.0.1:0`; port 0 = any free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// The port of the Kubernetes API double on the bind address (0 = any free port).
    pub fn port(mut self, port: u16) -> Self {
        self.bind.set_port(port);
        self
    }

    /// Starts the LINSTOR double (unless a CSI driver replaces it), then the Kubernetes API
    /// double seeded and with its controllers.
    pub async fn start(self) -> Result<FakeCloud, FakeCloudError> {
        let pki = TestPki::generate()?;
        let linstor = match self.csi {
            Some(_) => None,
            None => Some(
                linstor_double(FakeCloud::NODES)
                    .tls(pki.server_tls())
                    .start()
                    .await?,
            ),
        };
        let rbac = crate::Rbac::default();
        let cdi = CdiController::new();
        let mut virt = KubeVirtController::new()
            .with_nodes(&FakeCloud::NODES)
            .with_rbac(rbac.clone());
        if self.multus {
            virt = virt.with_multus();
        }
        let seed_objects = match &linstor {
            Some(linstor) => format!(
                "{}\n{}",
                virt.node_manifests(),
                cluster_objects(linstor.url(), &pki)
            ),
            None => format!("{}\n{}", virt.node_manifests(), CSI_CLUSTER),
        };
        // kube-vip's install makes the provider's ConfigMap (its README: `kubectl create
        // configmap --namespace kube-system kubevip ...`); here without any range yet.
        let seed_objects = if self.load_balancer == LoadBalancerSystem::KubeVip {
            format!("{seed_objects}\n---\n{KUBEVIP_CONFIG_MAP}")
        } else {
            seed_objects
        };
        let ovn = KubeOvnController::default();
        let northbound = ovn.northbound();
        let mut kube = TestServer::builder();
        if !self.without_groups.is_empty() {
            let groups: Vec<&str> = self.without_groups.iter().map(String::as_str).collect();
            let catalog = crate::schema::Catalog::upstream()
                .and_then(|c| c.without_groups(&groups))
                .map_err(StartError::from)?;
            kube = kube.owned_catalog(catalog);
        }
        let mut kube = kube
            .without_default_controllers()
            .bind(self.bind)
            .seed(self.seed)
            .latency(self.latency)
            .controller(GarbageCollector)
            .controller(NamespaceController)
            .controller(PvcProtection);
        if let Some(linstor) = &linstor {
            kube = kube.controller(LinstorCsi::new(linstor));
        }
        let mut multi_policies = None;
        kube = kube
            .controller(cdi.clone())
            .controller(virt)
            .controller(KubeVirtSnapshotController);
        kube = if self.multus {
            let policies = crate::MultiNetworkPolicyController::default();
            multi_policies = Some(policies.policies());
            kube.controller(crate::WhereaboutsController::default())
                .controller(policies)
        } else {
            kube.controller(ovn)
        };
        if let Some(pool) = &self.kubemacpool {
            kube = kube.mutating_webhook(pool.clone()).controller(pool.clone());
        }
        kube = match self.load_balancer {
            LoadBalancerSystem::MetalLb => kube.controller(MetalLbController::new()),
            LoadBalancerSystem::Cilium => kube
                .controller(CiliumLbIpam)
                .controller(crate::CiliumBgpControlPlane),
            LoadBalancerSystem::KubeVip => {
                kube.controller(crate::KubeVipCloudProvider::new().with_node(FakeCloud::NODES[0]))
            }
        };
        let kube = kube.seed_yaml(&seed_objects).start().await?;
        let csi = match self.csi {
            Some(profile) => Some(CsiInstall::new(profile).install(&kube)?),
            None => None,
        };
        tracing::info!(
            kube = kube.url(),
            linstor = linstor.as_ref().map(LinstorServer::url),
            csi = csi.as_ref().map(CsiDriver::driver),
            "fake cloud started"
        );
        Ok(FakeCloud {
            kube,
            linstor,
            pki,
            ovn: northbound,
            csi,
            multi_policies,
            kubemacpool: self.kubemacpool,
            cdi,
            rbac,
        })
    }
}

/// The Kubernetes API double and the LINSTOR double, seeded and with every simulated controller
/// (see the [module docs](self)). Both stop when dropped.
#[derive(Debug)]
pub struct FakeCloud {
    kube: TestServer,
    linstor: Option<LinstorServer>,
    pki: TestPki,
    ovn: crate::kubeovn_security::Northbound,
    csi: Option<CsiDriver>,
    multi_policies: Option<crate::MultiPolicies>,
    kubemacpool: Option<crate::Kubemacpool>,
    cdi: CdiController,
    rbac: crate::Rbac,
}

/// The LINSTOR double's setup: satellites `nodes`, pools `lvm-thin` (LVM_THIN) and `zfs` (ZFS)
/// on each, resource groups `rg-fast` (2 replicas on `lvm-thin`) and `rg-bulk` (1 on `zfs`).
pub(crate) fn linstor_double<I: IntoIterator<Item = S>, S: Into<String>>(
    nodes: I,
) -> crate::linstor::LinstorServerBuilder {
    let mut linstor = LinstorServer::builder().nodes(nodes);
    for (name, provider) in [("lvm-thin", "LVM_THIN"), ("zfs", "ZFS")] {
        linstor = linstor.pool_on_all_nodes(name, provider, POOL_KIB);
    }
    linstor
        .resource_group("rg-fast", 2, ["lvm-thin"])
        .resource_group("rg-bulk", 1, ["zfs"])
}

/// [`CLUSTER`] with the LINSTOR double's URL and the client certificate of `pki`.
pub(crate) fn cluster_objects(linstor_url: &str, pki: &TestPki) -> String {
    let b64 = |pem: &str| base64::engine::general_purpose::STANDARD.encode(pem);
    CLUSTER
        .replace("{linstor_url}", linstor_url)
        .replace("{ca_b64}", &b64(&pki.ca_pem))
        .replace("{cert_b64}", &b64(&pki.client.cert_pem))
        .replace("{key_b64}", &b64(&pki.client.key_pem))
}

impl FakeCloud {
    /// The nodes: KubeVirt `Node` objects and LINSTOR satellites.
    pub const NODES: [&'static str; 3] = ["node-1", "node-2", "node-3"];

    /// Storage tiers as `(tier, LINSTOR resource group, replicas)`: `fast` on LVM thin, `bulk`
    /// on ZFS.
    pub const TIERS: [(&'static str, &'static str, u32); 2] =
        [("fast", "rg-fast", 2), ("bulk", "rg-bulk", 1)];

    /// Options: latency, seed, bind address.
    pub fn builder() -> FakeCloudBuilder {
        FakeCloudBuilder::default()
    }

    /// Starts with the default options (127.0.0.1, any port, no latency, seed 0).
    pub async fn start() -> Result<FakeCloud, FakeCloudError> {
        Self::builder().start().await
    }

    /// The simulated CDI (its import count, [`CdiController::imports`]).
    pub fn cdi(&self) -> &CdiController {
        &self.cdi
    }

    /// The cluster RBAC the simulated controllers authorize against (none at start; the API
    /// double serves no RBAC kinds): install the `Role`s and bindings an operator would apply,
    /// such as kubecloud's catalog RBAC.
    pub fn rbac(&self) -> &crate::Rbac {
        &self.rbac
    }

    /// The Kubernetes API double.
    pub fn kube(&self) -> &TestServer {
        &self.kube
    }

    /// The LINSTOR controller double (HTTPS, client certificate required).
    ///
    /// # Panics
    ///
    /// In a fake cloud started with [`FakeCloudBuilder::csi`], which has none (see
    /// [`FakeCloud::try_linstor`]).
    pub fn linstor(&self) -> &LinstorServer {
        self.linstor
            .as_ref()
            .expect("this fake cloud runs a CSI driver instead of LINSTOR")
    }

    /// The LINSTOR controller double, if this fake cloud has one (not with
    /// [`FakeCloudBuilder::csi`]).
    pub fn try_linstor(&self) -> Option<&LinstorServer> {
        self.linstor.as_ref()
    }

    /// The simulated CSI driver, when started with [`FakeCloudBuilder::csi`].
    pub fn csi(&self) -> Option<&CsiDriver> {
        self.csi.as_ref()
    }

    /// The certificates of the LINSTOR double: its CA, its server certificate, and the client
    /// certificate seeded in the Secret `piraeus-datastore/linstor-client-tls` (to reach the
    /// double directly, e.g. with a LINSTOR client built by hand).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cloud = kubecloud_testkit::FakeCloud::start().await?;
    /// assert!(cloud.linstor_pki().client.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    /// # Ok(()) }
    /// ```
    pub fn linstor_pki(&self) -> &TestPki {
        &self.pki
    }

    /// What the simulated Kube-OVN enforces on pod ports (security groups, ACLs), to ask which
    /// groups and rules apply to a port and whether a packet would pass.
    pub fn ovn_northbound(&self) -> crate::kubeovn_security::Northbound {
        self.ovn.clone()
    }

    /// What the simulated multi-network policy controller enforces, in a fake cloud started
    /// with [`FakeCloudBuilder::multus`].
    pub fn multi_policies(&self) -> Option<crate::MultiPolicies> {
        self.multi_policies.clone()
    }

    /// Kubemacpool's pool, in a fake cloud started with [`FakeCloudBuilder::kubemacpool`].
    pub fn kubemacpool(&self) -> Option<crate::Kubemacpool> {
        self.kubemacpool.clone()
    }

    /// Both doubles, to keep them apart.
    ///
    /// # Panics
    ///
    /// In a fake cloud started with [`FakeCloudBuilder::csi`], which has no LINSTOR double.
    pub fn into_parts(self) -> (TestServer, LinstorServer) {
        let linstor = self
            .linstor
            .expect("this fake cloud runs a CSI driver instead of LINSTOR");
        (self.kube, linstor)
    }
}
