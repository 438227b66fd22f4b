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

mod build;
mod installed;
mod linstor;
mod options;
mod tiers;

use kubecloud_core::Result;

pub use installed::{Installed, System};
pub use linstor::{
    CONTROLLER_SELECTOR, CONTROLLER_SERVICE, DEFAULT_CLIENT_SECRET, LinstorEndpoint, LinstorTls,
    PIRAEUS_NAMESPACE,
};
pub use options::ConnectOptions;
pub use tiers::{FoundTiers, PROVISIONER};

use crate::Cloud;

/// A part of the cloud: one of the four backends (defined in `kubecloud_kube::plugin`).
pub use kubecloud_kube::plugin::Part;

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
        build::build(client, &options, &found)
    }
}
