//! `kubecloud-sim`'s engine: the simulated KubeVirt + CDI, Kube-OVN, MetalLB and LINSTOR CSI
//! controllers on any Kubernetes API server, through a `kube::Client` (see [`crate::remote`]),
//! with a LINSTOR controller double for the CSI driver — the way KWOK simulates nodes and pods.
//!
//! [`Simulation::start`] does what installing those systems on a cluster would, then runs their
//! controllers until the [`Simulation`] is dropped:
//!
//! 1. with [`SimOptions::install_crds`], applies (server-side, field manager `kubecloud-sim`) the
//!    CRDs of the chosen [`Component`]s from the committed schema bundle
//!    (`crates/testkit/schemas/kubernetes.json`, the CRDs the API double serves) and waits, on a
//!    watch, for each to be `Established`;
//! 2. for [`Component::LinstorCsi`]: starts the LINSTOR double (HTTPS, client certificate
//!    required; a satellite per `Node` of the cluster, pools `lvm-thin` and `zfs`, resource groups
//!    `rg-fast` and `rg-bulk`) and applies what a Piraeus installation with an external controller
//!    and API TLS has: namespace `piraeus-datastore`, the `LinstorCluster` `linstorcluster`
//!    pointing at the double, its client Secret `linstor-client-tls`, and the StorageClasses
//!    `linstor-default` (marked default) and `fast` (provisioner `linstor.csi.linbit.com`); for
//!    [`Component::Metallb`]: namespace `metallb-system`;
//! 3. starts the controllers, each writing as its own field manager.
//!
//! What it does not run, because a real cluster has it: the garbage collector, namespace
//! deletion, PVC protection (kube-controller-manager) and CRD establishment (kube-apiserver). The
//! built-in PVC binder does not run either: the LINSTOR CSI simulation provisions and binds its
//! own claims (as the external provisioner does; kube-controller-manager's binder then finds them
//! bound), and claims of other provisioners are left to the cluster's own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::Value;

use crate::controllers::{Controller, ControllerHandle};
use crate::fake_cloud::{cluster_objects, linstor_double};
use crate::linstor::{LinstorServer, LinstorStartError, TestPki, TlsSetupError};
use crate::remote::{RemoteApi, spawn};
use crate::status::ApiError;
use crate::{
    CdiController, KubeOvnController, KubeVirtController, KubeVirtSnapshotController, LinstorCsi,
    MetalLbController,
};

/// The field manager of what the simulation installs (CRDs, namespaces, Piraeus' objects).
pub const MANAGER: &str = "kubecloud-sim";

/// A simulated system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Component {
    /// KubeVirt: virt-controller's VirtualMachine/VMI/migration handling and the snapshot
    /// controller (`kubevirt.io`, `snapshot.kubevirt.io` and the other KubeVirt groups' CRDs).
    Kubevirt,
    /// CDI: DataVolumes (`cdi.kubevirt.io`).
    Cdi,
    /// Kube-OVN: VPCs, subnets, IPAM, VIPs, EIPs/NAT, security groups (`kubeovn.io`, and
    /// Multus' `k8s.cni.cncf.io` it reads attachments from).
    Kubeovn,
    /// MetalLB's controller: LoadBalancer Services from `IPAddressPool`s (`metallb.io`).
    Metallb,
    /// The LINSTOR CSI driver with its external provisioner, resizer and snapshotter, on the
    /// LINSTOR double (`piraeus.io`, `snapshot.storage.k8s.io`).
    LinstorCsi,
}

impl Component {
    /// Every component.
    pub const ALL: [Component; 5] = [
        Component::Kubevirt,
        Component::Cdi,
        Component::Kubeovn,
        Component::Metallb,
        Component::LinstorCsi,
    ];

    /// Whether the CRDs of API group `group` belong to this component.
    pub fn owns_group(self, group: &str) -> bool {
        match self {
            Component::Kubevirt => {
                group.ends_with("kubevirt.io") && !group.ends_with("cdi.kubevirt.io")
            }
            Component::Cdi => group.ends_with("cdi.kubevirt.io"),
            Component::Kubeovn => matches!(group, "kubeovn.io" | "k8s.cni.cncf.io"),
            Component::Metallb => group == "metallb.io",
            Component::LinstorCsi => matches!(group, "piraeus.io" | "snapshot.storage.k8s.io"),
        }
    }
}

/// What to simulate and how; see [`Simulation::start`].
#[derive(Clone, Debug)]
#[must_use]
pub struct SimOptions {
    /// The systems to simulate (default all).
    pub components: Vec<Component>,
    /// Install the components' CRDs first (default false: they are there already).
    pub install_crds: bool,
    /// Where the LINSTOR double listens (default `127.0.0.1:0`, any free port).
    pub linstor_listen: SocketAddr,
    /// How long to wait for the CRDs to be established (default 60 s).
    pub crd_timeout: Duration,
    /// The cluster RBAC the simulated KubeVirt authorizes cross-namespace clones against
    /// (none by default: such clones are refused).
    pub rbac: crate::Rbac,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            components: Component::ALL.to_vec(),
            install_crds: false,
            linstor_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            crd_timeout: Duration::from_secs(60),
            rbac: crate::Rbac::default(),
        }
    }
}

/// Why a simulation could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Api {
        /// What was being done.
        what: String,
        /// The server's answer.
        #[source]
        source: ApiError,
    },
    /// A CRD was not established in time.
    #[error("CRD {name} was not established within {timeout:?}")]
    NotEstablished {
        /// The CRD.
        name: String,
        /// How long it waited.
        timeout: Duration,
    },
    /// The cluster has no `Node` objects to place satellites, VMs and volumes on.
    #[error("the cluster has no Node objects; the simulated KubeVirt and LINSTOR need nodes")]
    NoNodes,
    /// The LINSTOR double did not start.
    #[error("starting the LINSTOR double: {0}")]
    Linstor(#[from] LinstorStartError),
    /// The LINSTOR double's certificates could not be made.
    #[error("making the LINSTOR double's certificates: {0}")]
    Tls(#[from] TlsSetupError),
}

fn api_err(what: impl Into<String>) -> impl FnOnce(ApiError) -> SimError {
    let what = what.into();
    move |source| SimError::Api { what, source }
}

/// Running simulated controllers (and the LINSTOR double). Dropping it stops them.
pub struct Simulation {
    linstor: Option<LinstorServer>,
    pki: TestPki,
    ovn: Option<crate::kubeovn_security::Northbound>,
    controllers: Vec<(ControllerHandle, tokio::task::JoinHandle<()>)>,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("linstor", &self.linstor.as_ref().map(LinstorServer::url))
            .field(
                "controllers",
                &self
                    .controllers
                    .iter()
                    .map(|(h, _)| h.name())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Drop for Simulation {
    fn drop(&mut self) {
        for (_, task) in &self.controllers {
            task.abort();
        }
    }
}

/// The CRDs of the committed bundle whose group one of `components` owns.
pub fn crds_for(components: &[Component]) -> Vec<Value> {
    let bundle: Value = match serde_json::from_str(crate::schema::bundle::CATALOG) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "the committed schema bundle does not parse");
            return Vec::new();
        }
    };
    bundle["crds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| entry["crd"].clone())
        .filter(|crd| {
            let group = crd["spec"]["group"].as_str().unwrap_or_default();
            components.iter().any(|c| c.owns_group(group))
        })
        .collect()
}

/// Applies the CRDs of `components` and waits, on a watch, until each is established.
pub async fn install_crds(
    client: &kube::Client,
    components: &[Component],
    timeout: Duration,
) -> Result<(), SimError> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(MANAGER).force();
    let mut names = Vec::new();
    for crd in crds_for(components) {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        crds.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .map_err(|e| SimError::Api {
                what: format!("applying CRD {name}"),
                source: crate::remote::api_error(e),
            })?;
        tracing::debug!(crd = %name, "CRD applied");
        names.push(name);
    }
    for name in names {
        let established = await_condition(crds.clone(), &name, conditions::is_crd_established());
        match tokio::time::timeout(timeout, established).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(SimError::Api {
                    what: format!("watching CRD {name}"),
                    source: ApiError::new(503, "ServiceUnavailable", e.to_string()),
                });
            }
            Err(_) => return Err(SimError::NotEstablished { name, timeout }),
        }
    }
    tracing::info!(?components, "CRDs installed and established");
    Ok(())
}

impl Simulation {
    /// Installs what `options` asks for on the API server `client` talks to and starts the
    /// controllers (see the [module docs](self)).
    ///
    /// ```no_run
    /// use kubecloud_testkit::sim::{SimOptions, Simulation};
    /// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = kube::Client::try_default().await?;
    /// let sim = Simulation::start(client, SimOptions { install_crds: true, ..SimOptions::default() }).await?;
    /// println!("LINSTOR double at {:?}", sim.linstor().map(|l| l.url()));
    /// tokio::signal::ctrl_c().await?;
    /// # Ok(()) }
    /// ```
    pub async fn start(client: kube::Client, options: SimOptions) -> Result<Simulation, SimError> {
        let has = |c: Component| options.components.contains(&c);
        if options.install_crds {
            install_crds(&client, &options.components, options.crd_timeout).await?;
        }
        let api = RemoteApi::new(client, MANAGER);
        let pki = TestPki::generate()?;
        let mut installed = String::new();
        let mut linstor = None;
        if has(Component::LinstorCsi) {
            let nodes: Vec<String> = api
                .list("v1", "Node", None)
                .await
                .map_err(api_err("listing nodes"))?
                .iter()
                .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
                .collect();
            if nodes.is_empty() {
                return Err(SimError::NoNodes);
            }
            let server = linstor_double(nodes)
                .tls(pki.server_tls())
                .bind(options.linstor_listen)
                .start()
                .await?;
            installed.push_str(&cluster_objects(server.url(), &pki));
            linstor = Some(server);
        } else if has(Component::Metallb) {
            installed
                .push_str("apiVersion: v1\nkind: Namespace\nmetadata: {name: metallb-system}\n");
        }
        install_objects(&api, &installed).await?;

        let mut controllers: Vec<Arc<dyn Controller>> = Vec::new();
        let mut ovn = None;
        if let Some(linstor) = &linstor {
            controllers.push(Arc::new(LinstorCsi::new(linstor)));
        }
        if has(Component::Cdi) {
            controllers.push(Arc::new(CdiController::new()));
        }
        if has(Component::Kubevirt) {
            controllers.push(Arc::new(
                KubeVirtController::new().with_rbac(options.rbac.clone()),
            ));
            controllers.push(Arc::new(KubeVirtSnapshotController));
        }
        if has(Component::Kubeovn) {
            let controller = KubeOvnController::default();
            ovn = Some(controller.northbound());
            controllers.push(Arc::new(controller));
        }
        if has(Component::Metallb) {
            controllers.push(Arc::new(MetalLbController::new()));
        }
        let controllers: Vec<_> = controllers
            .into_iter()
            .map(|c| spawn(api.clone(), c))
            .collect();
        tracing::info!(
            controllers = ?controllers.iter().map(|(h, _)| h.name()).collect::<Vec<_>>(),
            linstor = linstor.as_ref().map(LinstorServer::url),
            "simulated controllers running"
        );
        Ok(Simulation {
            linstor,
            pki,
            ovn,
            controllers,
        })
    }

    /// The LINSTOR double, when [`Component::LinstorCsi`] runs.
    pub fn linstor(&self) -> Option<&LinstorServer> {
        self.linstor.as_ref()
    }

    /// The LINSTOR double's certificates (its client certificate is also in the Secret
    /// `piraeus-datastore/linstor-client-tls`).
    pub fn linstor_pki(&self) -> &TestPki {
        &self.pki
    }

    /// What the simulated Kube-OVN enforces on pod ports, when [`Component::Kubeovn`] runs.
    pub fn ovn_northbound(&self) -> Option<crate::kubeovn_security::Northbound> {
        self.ovn.clone()
    }

    /// The handle of the running controller `name` (pause, delay, fail, counters).
    pub fn controller(&self, name: &str) -> Option<ControllerHandle> {
        self.controllers
            .iter()
            .find(|(h, _)| h.name() == name)
            .map(|(h, _)| h.clone())
    }

    /// Returns when every controller task has ended (they run until the simulation is dropped,
    /// so in practice: never; for a binary to await alongside a signal).
    pub async fn wait(&mut self) {
        for (_, task) in &mut self.controllers {
            let _ = task.await;
        }
    }
}

/// Applies every document of `yaml` as [`MANAGER`] (idempotent: a restarted simulation applies
/// the same objects again).
async fn install_objects(api: &RemoteApi, yaml: &str) -> Result<(), SimError> {
    if yaml.trim().is_empty() {
        return Ok(());
    }
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).map_err(|e| SimError::Api {
        what: "parsing the installed objects".into(),
        source: ApiError::new(400, "BadRequest", e.to_string()),
    })?;
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let what = format!(
            "applying {} {}",
            doc["kind"].as_str().unwrap_or_default(),
            doc["metadata"]["name"].as_str().unwrap_or_default()
        );
        api.apply(&doc, true).await.map_err(api_err(what))?;
    }
    Ok(())
}
