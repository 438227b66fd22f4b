//! Connecting to a real cluster: [`Cloud::connect`], [`Cloud::connect_with`] and
//! [`ConnectOptions`].
//!
//! What happens, in order (nothing is written):
//! 1. the Kubernetes client: the kubeconfig path and context of the options, else inferred as
//!    kubectl does (`KUBECONFIG`, `~/.kube/config`, in-cluster service account);
//! 2. one round of API discovery (`GET /apis`, aggregated discovery) tells which systems are
//!    installed ([`Installed`](kubecloud_kube::connect::Installed));
//! 3. each part's backend is built by its [`Connector`](kubecloud_kube::connect::Connector) (from the backend's crate, listed in
//!    `src/backends.rs`) with what the installed versions offer and the backend's settings on
//!    the options (its crate's extension trait, e.g. `kubecloud::linstor::connect::LinstorConnect`
//!    for the LINSTOR controller and tiers): without CDI no http(s) imports, without the snapshot
//!    CRDs no (VM) snapshots, without Multus no secondary subnets. LINSTOR is found only through
//!    the objects Piraeus' `LinstorCluster` owns, and a plain `http://` LINSTOR controller is
//!    refused unless `LinstorConnect::allow_plain_http` accepts it (see
//!    `kubecloud::linstor::connect`).
//!
//! Storage is LINSTOR's where Piraeus is installed, else the CSI backend's over the cluster's
//! StorageClasses (its default class the default tier): a part is built by the first of this
//! build's backends of the part that finds its system, in the order of `src/backends.rs`, or by
//! the one [`ConnectOptions::backend`] chooses.
//!
//! A part whose system is missing is an error naming the system, unless
//! [`ConnectOptions::allow_missing`] allows it: the part is then an [`Absent`] backend.

use kubecloud_core::{Error, Result};

pub use kubecloud_kube::connect::{
    Built, ConnectOptions, Connector, Installed, System, VOLUME_SNAPSHOTS,
};
/// A part of the cloud: one of the four backends (defined in `kubecloud_kube::plugin`).
pub use kubecloud_kube::plugin::Part;

use crate::{Absent, Cloud};

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

/// Builds `part` with the first of this build's backends of the part whose connector finds its
/// system (or with the one the options choose); every connector's reason when none does.
async fn build_part(
    part: Part,
    client: &kube::Client,
    installed: &Installed,
    options: &ConnectOptions,
) -> Result<std::result::Result<Built, String>> {
    let chosen = options.chosen(part);
    let connectors: Vec<&&dyn Connector> = crate::backends::CONNECTORS
        .iter()
        .filter(|c| c.part() == part && chosen.is_none_or(|name| c.name() == name))
        .collect();
    if connectors.is_empty() {
        return match chosen {
            Some(name) => Err(Error::invalid(
                "backend",
                format!("this build has no {} backend named {name:?}", part.name()),
            )),
            None => Ok(Err(format!("this build has no {} backend", part.name()))),
        };
    }
    let mut reasons = Vec::new();
    for connector in connectors {
        match connector.connect(client, installed, options).await? {
            Ok(built) => {
                tracing::debug!(
                    part = part.name(),
                    backend = connector.name(),
                    "part connected"
                );
                return Ok(Ok(built));
            }
            Err(reason) => reasons.push(format!("{}: {reason}", connector.name())),
        }
    }
    Ok(Err(reasons.join("; ")))
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

    /// Connects through `client`: discovers what is installed (one discovery round), then has
    /// each part's backend built by its connector with the capabilities the cluster offers.
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
        let installed = Installed::discover(&client).await?;
        let mut cloud =
            Cloud::builder().quotas(kubecloud_kube::quota::KubeQuotas::new(client.clone()));
        for part in Part::ALL {
            let built = build_part(part, &client, &installed, &options).await?;
            cloud = match built {
                Ok(Built::Compute(b)) if part == Part::Compute => cloud.compute_arc(b),
                Ok(Built::Storage(b)) if part == Part::Storage => cloud.storage_arc(b),
                Ok(Built::Network(b)) if part == Part::Network => cloud.network_arc(b),
                Ok(Built::LoadBalancer(b)) if part == Part::LoadBalancer => {
                    cloud.load_balancer_arc(b)
                }
                Ok(other) => {
                    return Err(Error::Backend {
                        backend: "kubernetes".into(),
                        message: format!("the {} connector built {other:?}", part.name()),
                        temporary: false,
                        source: None,
                    });
                }
                Err(reason) => {
                    let absent = missing(part, reason, &options)?;
                    match part {
                        Part::Compute => cloud.compute(absent),
                        Part::Storage => cloud.storage(absent),
                        Part::Network => cloud.network(absent),
                        Part::LoadBalancer => cloud.load_balancer(absent),
                    }
                }
            };
        }
        cloud.build()
    }
}
