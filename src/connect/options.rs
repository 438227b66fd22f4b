//! [`ConnectOptions`]: what is required, what is given instead of discovered, and the
//! kubeconfig to read.

use std::path::PathBuf;

use kubecloud_core::{Error, Result};

use super::{LinstorEndpoint, Part};

/// How [`Cloud::connect_with`](crate::Cloud::connect_with) builds the cloud. Every part is required unless
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
    pub(super) linstor: Option<LinstorEndpoint>,
    pub(super) tiers: Vec<(String, String)>,
    pub(super) default_tier: Option<String>,
    pub(super) metallb_namespace: Option<String>,
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

    /// Allows `part`'s system to be missing: the cloud then has an [`Absent`](crate::Absent) backend there.
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
    /// [`Cloud::connect_using`](crate::Cloud::connect_using).
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// The kubeconfig context to use (instead of its current context), for
    /// [`Cloud::connect_using`](crate::Cloud::connect_using).
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
