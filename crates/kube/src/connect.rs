//! Connecting to a cluster, for every backend: one round of API discovery ([`Installed`]), the
//! options a user gives ([`ConnectOptions`]: required parts, the kubeconfig, backend settings)
//! and what a backend implements to be built from them ([`Connector`]). The facade's
//! `Cloud::connect_with` discovers once, then asks each backend's connector of the build.

use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use kubecloud_core::{BlockStorage, Compute, Error, LoadBalancer, Network, Result};

use crate::plugin::Part;

const BACKEND: &str = "kubernetes";

/// A system a backend drives, known by the API group (and the version of it) it serves.
///
/// ```
/// use kubecloud_kube::connect::System;
/// const METALLB: System = System { name: "MetalLB", group: "metallb.io", version: "v1beta1" };
/// assert_eq!(METALLB.to_string(), "MetalLB");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct System {
    /// The system's name, for people.
    pub name: &'static str,
    /// The API group it serves.
    pub group: &'static str,
    /// The version of its group the backend sends.
    pub version: &'static str,
}

/// The CSI volume snapshot CRDs (`snapshot.storage.k8s.io/v1`): volume snapshots, whatever the
/// storage.
pub const VOLUME_SNAPSHOTS: System = System {
    name: "the volume snapshot CRDs",
    group: "snapshot.storage.k8s.io",
    version: "v1",
};

/// Piraeus (`piraeus.io/v1`): where LINSTOR is found. Its `LinstorCluster` installed means
/// storage is LINSTOR's unless the options choose another backend.
///
/// ```
/// assert_eq!(kubecloud_kube::connect::PIRAEUS.group, "piraeus.io");
/// ```
pub const PIRAEUS: System = System {
    name: "Piraeus",
    group: "piraeus.io",
    version: "v1",
};

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The API groups a cluster serves, with their versions: what discovery found.
///
/// ```
/// use kubecloud_kube::connect::{Installed, System};
/// const LB: System = System { name: "Example LB", group: "lb.example.io", version: "v1beta1" };
/// let installed = Installed::from_groups([("lb.example.io", vec!["v1beta2"])]);
/// assert!(!installed.has(&LB));
/// assert_eq!(
///     installed.missing(&LB).unwrap(),
///     "Example LB is not installed: API group lb.example.io is served without version v1beta1"
/// );
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    groups: BTreeMap<String, Vec<String>>,
}

impl Installed {
    /// From `(group, versions)` pairs.
    pub fn from_groups<G, V>(groups: impl IntoIterator<Item = (G, Vec<V>)>) -> Self
    where
        G: Into<String>,
        V: Into<String>,
    {
        Self {
            groups: groups
                .into_iter()
                .map(|(g, vs)| (g.into(), vs.into_iter().map(Into::into).collect()))
                .collect(),
        }
    }

    /// Asks the API server once: `GET /apis` asking for aggregated discovery
    /// (`apidiscovery.k8s.io/v2`, Kubernetes 1.26+) and accepting the plain group list older
    /// servers answer instead. Temporary failures (5xx, 429, connection errors) are retried by the
    /// client's retry policy, then reported as a temporary [`Error::Backend`].
    pub async fn discover(client: &kube::Client) -> Result<Self> {
        use kube::core::discovery::v2::ACCEPT_AGGREGATED_DISCOVERY_V2;
        let request = http::Request::get("/apis")
            .header(http::header::ACCEPT, ACCEPT_AGGREGATED_DISCOVERY_V2)
            .body(Vec::new())
            .map_err(|e| Error::backend(BACKEND, "building the discovery request", false, e))?;
        let text = client.request_text(request).await.map_err(|e| {
            let temporary = match &e {
                kube::Error::Api(status) => status.code >= 500 || status.code == 429,
                _ => true,
            };
            Error::backend(BACKEND, "API discovery (GET /apis) failed", temporary, e)
        })?;
        Self::from_document(&text)
    }

    /// From the body of `GET /apis`: an aggregated `APIGroupDiscoveryList` or a plain
    /// `APIGroupList`.
    ///
    /// ```
    /// let doc = r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[
    ///   {"name":"kubeovn.io","versions":[{"groupVersion":"kubeovn.io/v1","version":"v1"}]}]}"#;
    /// let installed = kubecloud_kube::connect::Installed::from_document(doc).unwrap();
    /// assert_eq!(installed.versions("kubeovn.io"), ["v1"]);
    /// ```
    pub fn from_document(text: &str) -> Result<Self> {
        let bad = |e: serde_json::Error| {
            Error::backend(BACKEND, "the API server's discovery document", false, e)
        };
        let doc: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
        let versions = |list: &serde_json::Value| -> Vec<String> {
            list.as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v["version"].as_str().map(str::to_string))
                .collect()
        };
        let entries = |key: &str| doc[key].as_array().cloned().unwrap_or_default();
        match doc["kind"].as_str() {
            Some("APIGroupDiscoveryList") => {
                Ok(Self::from_groups(entries("items").iter().map(|g| {
                    let name = g["metadata"]["name"].as_str().unwrap_or_default();
                    (name.to_string(), versions(&g["versions"]))
                })))
            }
            Some("APIGroupList") => Ok(Self::from_groups(entries("groups").iter().map(|g| {
                let name = g["name"].as_str().unwrap_or_default();
                (name.to_string(), versions(&g["versions"]))
            }))),
            other => Err(Error::Backend {
                backend: BACKEND.into(),
                message: format!(
                    "GET /apis answered {}, not a discovery document",
                    other.unwrap_or("an object without kind")
                ),
                temporary: false,
                source: None,
            }),
        }
    }

    /// Whether the cluster serves the version of `system`'s group the backends send.
    pub fn has(&self, system: &System) -> bool {
        self.missing(system).is_none()
    }

    /// Why `system` counts as missing (a sentence naming it), or `None` when it is served.
    pub fn missing(&self, system: &System) -> Option<String> {
        match self.groups.get(system.group) {
            None => Some(format!(
                "{} is not installed: API group {} not served",
                capitalised(system.name),
                system.group
            )),
            Some(versions) if !versions.iter().any(|v| v == system.version) => Some(format!(
                "{} is not installed: API group {} is served without version {}",
                capitalised(system.name),
                system.group,
                system.version
            )),
            Some(_) => None,
        }
    }

    /// The versions served of `group` (empty when not served).
    pub fn versions(&self, group: &str) -> &[String] {
        self.groups.get(group).map(Vec::as_slice).unwrap_or(&[])
    }
}

fn capitalised(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// How `Cloud::connect_with` builds the cloud: which parts may be missing (every part is
/// required unless [`ConnectOptions::allow_missing`] says otherwise), backend settings given
/// instead of discovered ([`ConnectOptions::with`]), and the kubeconfig to read.
///
/// ```
/// use kubecloud_kube::connect::ConnectOptions;
/// use kubecloud_kube::plugin::Part;
/// let options = ConnectOptions::new()
///     .allow_missing(Part::LoadBalancer)
///     .kubeconfig("/etc/kubecloud/kubeconfig")
///     .context("lab");
/// assert!(options.is_required(Part::Compute));
/// assert!(!options.is_required(Part::LoadBalancer));
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ConnectOptions {
    optional: Vec<Part>,
    chosen: Vec<(Part, String)>,
    settings: Settings,
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
            chosen: Vec::new(),
            settings: Settings::default(),
            kubeconfig: None,
            context: None,
        }
    }

    /// Allows `part`'s system to be missing: the cloud then has an `Absent` stand-in backend there.
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

    /// Builds `part` with the backend named `backend` only (its connector's
    /// [`Connector::name`], e.g. `"csi"` or `"linstor"` for storage), instead of the first of
    /// this build's backends of the part that finds its system.
    ///
    /// ```
    /// use kubecloud_kube::connect::ConnectOptions;
    /// use kubecloud_kube::plugin::Part;
    /// let options = ConnectOptions::new().backend(Part::Storage, "csi");
    /// assert_eq!(options.chosen(Part::Storage), Some("csi"));
    /// assert_eq!(options.chosen(Part::Compute), None);
    /// ```
    pub fn backend(mut self, part: Part, backend: impl Into<String>) -> Self {
        self.chosen.retain(|(p, _)| *p != part);
        self.chosen.push((part, backend.into()));
        self
    }

    /// The backend chosen for `part`, if any.
    pub fn chosen(&self, part: Part) -> Option<&str> {
        self.chosen
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, b)| b.as_str())
    }

    /// Whether `part` is required.
    pub fn is_required(&self, part: Part) -> bool {
        !self.optional.contains(&part)
    }

    /// A backend's setting (its own type, read by its [`Connector`]); one of each type, the
    /// last given wins. Backend crates offer methods for theirs (e.g. an extension trait).
    ///
    /// ```
    /// #[derive(Clone, Debug, Default, PartialEq)]
    /// struct Namespace(String);
    /// let options = kubecloud_kube::connect::ConnectOptions::new().with(Namespace("lb".into()));
    /// assert_eq!(options.setting::<Namespace>(), Some(&Namespace("lb".into())));
    /// ```
    pub fn with<T: Send + Sync + 'static>(mut self, setting: T) -> Self {
        self.settings.insert(setting);
        self
    }

    /// The backend setting of type `T`, if given.
    pub fn setting<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.settings.get::<T>()
    }

    /// The kubeconfig file to read (instead of `KUBECONFIG` or `~/.kube/config`), for
    /// `Cloud::connect_using`.
    pub fn kubeconfig(mut self, path: impl Into<PathBuf>) -> Self {
        self.kubeconfig = Some(path.into());
        self
    }

    /// The kubeconfig context to use (instead of its current context), for
    /// `Cloud::connect_using`.
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

/// Backend settings by type (see [`ConnectOptions::with`]).
#[derive(Clone, Default)]
struct Settings {
    by_type: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl Settings {
    fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.by_type.insert(TypeId::of::<T>(), Arc::new(value));
    }

    fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.by_type.get(&TypeId::of::<T>())?.downcast_ref::<T>()
    }
}

impl std::fmt::Debug for Settings {
    /// How many settings there are, not what they hold (a setting may carry credentials).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} backend setting(s)", self.by_type.len())
    }
}

/// A backend built by its [`Connector`].
#[derive(Clone, Debug)]
pub enum Built {
    /// A compute backend.
    Compute(Arc<dyn Compute>),
    /// A block-storage backend.
    Storage(Arc<dyn BlockStorage>),
    /// A network backend.
    Network(Arc<dyn Network>),
    /// A load-balancer backend.
    LoadBalancer(Arc<dyn LoadBalancer>),
}

/// What a backend crate implements so `Cloud::connect` can build it from what a cluster serves.
#[kubecloud_core::async_trait]
pub trait Connector: Send + Sync + std::fmt::Debug {
    /// The backend's name (its `backend_name()`), which [`ConnectOptions::backend`] chooses by.
    fn name(&self) -> &'static str;
    /// The part it builds.
    fn part(&self) -> Part;
    /// Builds the backend for the cluster behind `client`, which serves `installed`, with the
    /// user's `options` (its own settings among them). `Ok(Err(reason))` when its system is not
    /// installed (a sentence naming it); `Err` when finding it failed in a way the user must see
    /// (the facade reports a required part's reason as an error too).
    async fn connect(
        &self,
        client: &kube::Client,
        installed: &Installed,
        options: &ConnectOptions,
    ) -> Result<std::result::Result<Built, String>>;
}
