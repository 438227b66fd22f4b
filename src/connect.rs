//! Connecting to a real cluster: [`Cloud::connect`], [`Cloud::connect_with`] and
//! [`ConnectOptions`].
//!
//! What happens, in order (nothing is written):
//! 1. the Kubernetes client: the kubeconfig path and context of the options, else inferred as
//!    kubectl does (`KUBECONFIG`, `~/.kube/config`, in-cluster service account);
//! 2. one round of API discovery (`GET /apis`, aggregated discovery) tells which systems are
//!    installed ([`Installed`](crate::connect::Installed));
//! 3. for storage, the LINSTOR controller as Piraeus deploys it ([`LinstorEndpoint::discover`](crate::connect::LinstorEndpoint::discover),
//!    unless [`ConnectOptions::linstor`] names it) and the tiers from the LINSTOR StorageClasses
//!    (unless [`ConnectOptions::tier`] names them);
//! 4. each backend is built with what the installed versions offer: without CDI no http(s)
//!    imports, without the snapshot CRDs no (VM) snapshots, without Multus no secondary subnets.
//!
//! A part whose system is missing is an error naming the system, unless
//! [`ConnectOptions::allow_missing`] allows it: the part is then an [`Absent`] backend.

mod installed;
mod linstor;
mod tiers;

use std::path::PathBuf;
use std::sync::Arc;

use kubecloud_core::{Error, Result};

pub use installed::{Installed, System};
pub use linstor::{
    CONTROLLER_SELECTOR, CONTROLLER_SERVICE, DEFAULT_CLIENT_SECRET, LinstorEndpoint, LinstorTls,
    PIRAEUS_NAMESPACE,
};
pub use tiers::{FoundTiers, PROVISIONER};

use crate::{Absent, Cloud};

/// A part of the cloud: one of the four backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// Virtual machines (KubeVirt).
    Compute,
    /// Block storage (LINSTOR through Piraeus).
    Storage,
    /// Networks (Kube-OVN).
    Network,
    /// External addresses (MetalLB).
    LoadBalancer,
}

impl Part {
    /// The four parts.
    pub const ALL: [Part; 4] = [
        Part::Compute,
        Part::Storage,
        Part::Network,
        Part::LoadBalancer,
    ];

    /// The part's name (`compute`, `storage`, `network`, `load_balancer`).
    pub fn name(self) -> &'static str {
        match self {
            Part::Compute => "compute",
            Part::Storage => "storage",
            Part::Network => "network",
            Part::LoadBalancer => "load_balancer",
        }
    }
}

impl std::str::FromStr for Part {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Part::ALL
            .into_iter()
            .find(|p| p.name() == s || (s == "load-balancer" && *p == Part::LoadBalancer))
            .ok_or_else(|| {
                Error::invalid(
                    "part",
                    format!("{s:?} is not one of compute, storage, network, load_balancer"),
                )
            })
    }
}

/// How [`Cloud::connect_with`] builds the cloud. Every part is required unless
/// [`ConnectOptions::allow_missing`] says otherwise.
///
/// ```
/// use kubecloud::{ConnectOptions, Part};
/// let options = ConnectOptions::new()
///     .allow_missing(Part::LoadBalancer)
///     .tier("fast", "nvme-thin")
///     .kubeconfig("/etc/kubecloud/kubeconfig")
///     .context("lab");
/// assert!(options.is_required(Part::Compute));
/// assert!(!options.is_required(Part::LoadBalancer));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ConnectOptions {
    optional: Vec<Part>,
    linstor: Option<LinstorEndpoint>,
    tiers: Vec<(String, String)>,
    default_tier: Option<String>,
    metallb_namespace: Option<String>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnectOptions {
    /// Every part required, everything else discovered.
    pub fn new() -> Self {
        Self {
            optional: Vec::new(),
            linstor: None,
            tiers: Vec::new(),
            default_tier: None,
            metallb_namespace: None,
            kubeconfig: None,
            context: None,
        }
    }

    /// Allows `part`'s system to be missing: the cloud then has an [`Absent`] backend there.
    pub fn allow_missing(mut self, part: Part) -> Self {
        if !self.optional.contains(&part) {
            self.optional.push(part);
        }
        self
    }

    /// Requires `part` (the default): its system missing is an error naming it.
    pub fn require(mut self, part: Part) -> Self {
        self.optional.retain(|p| *p != part);
        self
    }

    /// Whether `part` is required.
    pub fn is_required(&self, part: Part) -> bool {
        !self.optional.contains(&part)
    }

    /// The LINSTOR controller to use instead of finding it through Piraeus.
    pub fn linstor(mut self, endpoint: LinstorEndpoint) -> Self {
        self.linstor = Some(endpoint);
        self
    }

    /// Adds tier `name` on LINSTOR resource group `resource_group`. Once one tier is given,
    /// StorageClasses are not read for tiers.
    pub fn tier(mut self, name: impl Into<String>, resource_group: impl Into<String>) -> Self {
        self.tiers.push((name.into(), resource_group.into()));
        self
    }

    /// The tier of volumes that name none (default: the given first tier, or the tier of the
    /// cluster's default StorageClass).
    pub fn default_tier(mut self, name: impl Into<String>) -> Self {
        self.default_tier = Some(name.into());
        self
    }

    /// The namespace MetalLB runs in (default `metallb-system`).
    pub fn metallb_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.metallb_namespace = Some(namespace.into());
        self
    }

    /// The kubeconfig file to read (instead of `KUBECONFIG` or `~/.kube/config`), for
    /// [`Cloud::connect_using`].
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// The kubeconfig context to use (instead of its current context), for
    /// [`Cloud::connect_using`].
    pub fn context(mut self, name: impl Into<String>) -> Self {
        self.context = Some(name.into());
        self
    }

    /// The Kubernetes client these options name: the kubeconfig file and context when given,
    /// else the configuration inferred as kubectl does.
    pub async fn client(&self) -> Result<kube::Client> {
        use kube::config::{KubeConfigOptions, Kubeconfig};
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let what = format!("cannot load the kubeconfig {}", path.display());
                let file = Kubeconfig::read_from(path).map_err(fail(what.clone()))?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(fail(what))?
            }
            (None, Some(context)) => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(fail(format!("cannot load kubeconfig context {context:?}")))?,
            (None, None) => kube::Config::infer()
                .await
                .map_err(fail("no Kubernetes configuration found".into()))?,
        };
        kube::Client::try_from(config)
            .map_err(|e| Error::backend("kubernetes", "cannot build a client", false, e))
    }
}

fn fail<E: std::error::Error + Send + Sync + 'static>(what: String) -> impl FnOnce(E) -> Error {
    move |e| Error::backend("kubernetes", what, false, e)
}

/// What [`discover`] found: the systems installed and, for storage, where LINSTOR is and which
/// tiers it offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Discovered {
    /// The systems the cluster serves.
    pub installed: Installed,
    /// The LINSTOR controller (given or found), or why there is none.
    pub linstor: std::result::Result<LinstorEndpoint, String>,
    /// The tiers (given or read from StorageClasses).
    pub tiers: FoundTiers,
}

/// Discovers what [`Cloud::connect_with`] would build on, without building it: one discovery
/// round, then the LINSTOR controller and tiers when storage is asked for.
pub async fn discover(client: &kube::Client, options: &ConnectOptions) -> Result<Discovered> {
    let installed = Installed::discover(client).await?;
    let linstor = match (&options.linstor, installed.missing(System::Piraeus)) {
        (Some(given), _) => Ok(given.clone()),
        (None, Some(missing)) => Err(format!("LINSTOR was not found: {missing}")),
        (None, None) => match LinstorEndpoint::discover(client).await {
            Ok(found) => Ok(found),
            Err(e) if options.is_required(Part::Storage) => return Err(e),
            Err(e) => Err(e.to_string()),
        },
    };
    let tiers = if !options.tiers.is_empty() {
        FoundTiers {
            tiers: options.tiers.clone(),
            default: None,
        }
    } else if linstor.is_ok() {
        tiers::from_storage_classes(client).await?
    } else {
        FoundTiers::default()
    };
    Ok(Discovered {
        installed,
        linstor,
        tiers,
    })
}

impl Cloud {
    /// Connects to the cluster the environment names, as kubectl does (`KUBECONFIG`,
    /// `~/.kube/config`, in-cluster), with every part required.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud::Result<()> {
    /// let cloud = kubecloud::Cloud::connect().await?;
    /// println!("{:?}", cloud.capabilities());
    /// # Ok(()) }
    /// ```
    pub async fn connect() -> Result<Cloud> {
        Self::connect_using(ConnectOptions::new()).await
    }

    /// Connects with the client [`ConnectOptions::client`] builds (kubeconfig path and context).
    pub async fn connect_using(options: ConnectOptions) -> Result<Cloud> {
        let client = options.client().await?;
        Self::connect_with(client, options).await
    }

    /// Connects through `client`: discovers what is installed (one discovery round), finds
    /// LINSTOR and builds each backend with the capabilities the cluster offers.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> kubecloud::Result<()> {
    /// use kubecloud::{Cloud, ConnectOptions, Part};
    /// let client = kube::Client::try_default().await.expect("a cluster");
    /// let cloud = Cloud::connect_with(client, ConnectOptions::new().allow_missing(Part::LoadBalancer)).await?;
    /// # let _ = cloud; Ok(()) }
    /// ```
    pub async fn connect_with(client: kube::Client, options: ConnectOptions) -> Result<Cloud> {
        let found = discover(&client, &options).await?;
        build(client, &options, &found)
    }
}

/// The error for a required part whose system is missing, or the [`Absent`] stand-in.
fn missing(part: Part, reason: String, options: &ConnectOptions) -> Result<Absent> {
    if options.is_required(part) {
        let hint = format!(
            "{reason} (the {} part needs it; allow_missing({:?}) connects without it)",
            part.name(),
            part
        );
        return Err(Error::Backend {
            backend: "kubernetes".into(),
            message: hint,
            temporary: false,
            source: None,
        });
    }
    tracing::info!(part = part.name(), %reason, "connecting without this part");
    Ok(Absent::new(part.name(), &reason))
}

fn build(client: kube::Client, options: &ConnectOptions, found: &Discovered) -> Result<Cloud> {
    let has = |s| found.installed.has(s);
    let mut cloud = Cloud::builder();

    cloud = match found.installed.missing(System::KubeVirt) {
        None => cloud.compute(
            crate::kubevirt::KubeVirt::builder(client.clone())
                .http_import(has(System::Cdi))
                .vm_snapshots(has(System::KubeVirtSnapshots) && has(System::VolumeSnapshots))
                .build(),
        ),
        Some(reason) => cloud.compute(missing(Part::Compute, reason, options)?),
    };

    cloud = match &found.linstor {
        Ok(endpoint) => cloud.storage_arc(storage(client.clone(), options, found, endpoint)?),
        Err(reason) => cloud.storage(missing(Part::Storage, reason.clone(), options)?),
    };

    cloud = match found.installed.missing(System::KubeOvn) {
        None => cloud.network(
            crate::kubeovn::KubeOvn::builder(client.clone())
                .secondary_subnets(has(System::Multus))
                .build(),
        ),
        Some(reason) => cloud.network(missing(Part::Network, reason, options)?),
    };

    cloud = match found.installed.missing(System::MetalLb) {
        None => {
            // BGPPeer is sent as v1beta2 (MetalLB 0.14+).
            let bgp = found
                .installed
                .versions("metallb.io")
                .iter()
                .any(|v| v == "v1beta2");
            let mut lb = crate::metallb::MetalLb::builder(client).bgp(bgp);
            if let Some(ns) = &options.metallb_namespace {
                lb = lb.namespace(ns.clone());
            }
            cloud.load_balancer(lb.build())
        }
        Some(reason) => cloud.load_balancer(missing(Part::LoadBalancer, reason, options)?),
    };
    cloud.build()
}

fn storage(
    client: kube::Client,
    options: &ConnectOptions,
    found: &Discovered,
    endpoint: &LinstorEndpoint,
) -> Result<Arc<dyn kubecloud_core::BlockStorage>> {
    if found.tiers.tiers.is_empty() {
        let reason = format!(
            "LINSTOR has no tiers: no StorageClass of {PROVISIONER} names a resource group \
             (parameter linstor.csi.linbit.com/resourceGroup) and none was given"
        );
        return Ok(Arc::new(missing(Part::Storage, reason, options)?));
    }
    let mut builder = crate::linstor::Linstor::builder(client, endpoint.url.clone())
        .http_import(found.installed.has(System::Cdi))
        .snapshots(found.installed.has(System::VolumeSnapshots));
    builder = match &endpoint.tls {
        Some(tls) => builder.tls(
            tls.ca_pem.clone(),
            tls.cert_pem.clone(),
            tls.key_pem.clone(),
        ),
        // Piraeus serves the API over plain http when `apiTLS` is not set: the cluster decides.
        None if endpoint.url.starts_with("http://") => builder.insecure_http(),
        None => builder,
    };
    for (tier, group) in &found.tiers.tiers {
        builder = builder.tier(tier.clone(), group.clone());
    }
    if let Some(default) = options.default_tier.clone().or(found.tiers.default.clone()) {
        builder = builder.default_tier(default);
    }
    Ok(Arc::new(builder.build()?))
}
