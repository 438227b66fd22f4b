//! Connecting to LINSTOR as Piraeus deploys it (what `Cloud::connect` does for storage): the
//! controller found through the `piraeus.io/v1` `LinstorCluster` and the objects its operator
//! owns ([`LinstorEndpoint::discover`]), tiers from the cluster's LINSTOR StorageClasses
//! ([`from_storage_classes`]), both overridable with [`LinstorConnect`] on the options, and the
//! backend built from them ([`CONNECTOR`]).
//!
//! # What discovery trusts, and why
//!
//! Whoever answers on the LINSTOR API sees and decides every volume operation, and the client
//! certificate read from the cluster authenticates kubecloud to it: a Service or Secret that
//! anyone can create must not choose either. Discovery therefore follows only the Piraeus
//! installation the `LinstorCluster` belongs to, the way Piraeus' own operator finds its
//! controller (piraeus-operator v2, commit `0ef32285b13b`):
//!
//! - The operator applies every object of a cluster into **its own namespace** (the
//!   kustomization's `Namespace: r.Namespace` in `LinstorClusterReconciler::kustomize`; the
//!   namespace is `--namespace`/`NAMESPACE`, else the operator's service account's, in
//!   `cmd/main.go`), each with a **controller owner reference to the cluster-scoped
//!   `LinstorCluster`** (`controllerutil.SetControllerReference(lcluster, u, ...)` in
//!   `reconcileAppliedResource`, `internal/controller/linstorcluster_controller.go`). The
//!   controller's Service is `linstor-controller`, labelled
//!   `app.kubernetes.io/component=linstor-controller`
//!   (`pkg/resources/cluster/controller/controller-service.yaml`).
//! - The operator reaches the controller through the Services with that label **in its own
//!   namespace**, and reads the client certificate (`spec.apiTLS.clientSecretName`, default
//!   `linstor-client-tls`) from **its own namespace**, for an external controller too
//!   (`NewClientForCluster`, `pkg/linstorhelper/client.go`). The URL is
//!   `spec.externalController.url`, else `https://linstor-controller:3371` with `spec.apiTLS`,
//!   else `http://linstor-controller:3370` (`LinstorControllerUrl`).
//!
//! kubecloud is not told the operator's namespace, so:
//!
//! 1. Exactly one `LinstorCluster` must exist. It is cluster-scoped (only a cluster administrator
//!    makes one); two or more are an error, not a guess.
//! 2. A Service labelled as the controller is trusted only when that `LinstorCluster` **controls**
//!    it: an owner reference with the cluster's kind, name and uid and `controller: true`. A
//!    labelled Service it does not control, in any namespace, is ignored (logged at debug); when
//!    none is controlled, the error lists what was found and ignored. Controlled Services in more
//!    than one namespace are an error as well: the operator writes into one namespace, so all but
//!    one are forged (an owner reference is not an authorization: anyone who may create a Service
//!    and read the `LinstorCluster`'s uid can write one).
//! 3. The namespace of that Service is Piraeus' namespace: the client TLS Secret is read there
//!    and nowhere else. An external controller has no Service: the namespace is then
//!    [`PIRAEUS_NAMESPACE`] (Piraeus' default), or the one [`LinstorConnect::piraeus_namespace`]
//!    gives — never one learned from objects others could have created.
//! 4. [`LinstorConnect::piraeus_namespace`] pins the namespace: Services are then listed there
//!    only (nothing cluster-wide), which leaves no room for a forged owner reference elsewhere.
//!    Set it when you know where Piraeus runs.
//!
//! # Plain HTTP
//!
//! Piraeus serves the LINSTOR API over plain HTTP unless `spec.apiTLS` is set, and an external
//! controller may be an `http://` URL. Plain HTTP carries every volume operation unauthenticated
//! and unencrypted, so connecting refuses an `http://` controller, discovered or given, with an
//! [`Error::InvalidInput`] naming `allow_plain_http`, unless [`LinstorConnect::allow_plain_http`]
//! is set; the backend then logs a warning when it is built (as a builder does with
//! [`LinstorBuilder::insecure_http`](crate::LinstorBuilder::insecure_http), the opt-in for direct
//! builders). Discovery itself reports the URL Piraeus gives and decides nothing about it.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
//! use kubecloud_kube::connect::ConnectOptions;
//! use kubecloud_linstor::connect::{LinstorConnect, LinstorEndpoint};
//! // What `Cloud::connect` does for storage, pinned to the namespace Piraeus runs in.
//! let endpoint = LinstorEndpoint::discover_in(&client, Some("piraeus-datastore")).await?;
//! // The same through the options, accepting a plain-http controller knowingly.
//! let options = ConnectOptions::new().piraeus_namespace("piraeus-datastore").allow_plain_http();
//! # let _ = (endpoint, options); Ok(()) }
//! ```

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kubecloud_core::{Error, Result, validate_name};
use kubecloud_kube::connect::{Built, ConnectOptions, Connector, Installed};
use kubecloud_kube::plugin::Part;
use serde::Deserialize;

pub use kubecloud_kube::connect::PIRAEUS;

/// What the user gives instead of discovering, and what connecting accepts (see
/// [`LinstorConnect`], which sets these on [`ConnectOptions`]).
///
/// ```
/// use kubecloud_linstor::connect::LinstorSettings;
/// let settings = LinstorSettings::default();
/// assert!(!settings.allow_plain_http, "plain http:// is refused by default");
/// assert!(settings.piraeus_namespace.is_none(), "found from the LinstorCluster's Service");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinstorSettings {
    /// The controller to use instead of finding it through Piraeus.
    pub endpoint: Option<LinstorEndpoint>,
    /// Tiers as `(tier, resource group)`; once one is given, StorageClasses are not read.
    pub tiers: Vec<(String, String)>,
    /// The tier of volumes that name none (else the cluster's default class's, else the first).
    pub default_tier: Option<String>,
    /// The namespace Piraeus' operator runs in. When set, discovery looks for the controller's
    /// Service and the client TLS Secret there only; when not, the namespace is the one of the
    /// Service the `LinstorCluster` controls ([`PIRAEUS_NAMESPACE`] for an external controller).
    pub piraeus_namespace: Option<String>,
    /// Whether a plain `http://` controller is accepted (default `false`: refused with an error
    /// naming this setting). When accepted, a warning is logged as the backend is built.
    pub allow_plain_http: bool,
}

/// LINSTOR's settings on [`ConnectOptions`].
///
/// ```
/// use kubecloud_kube::connect::ConnectOptions;
/// use kubecloud_linstor::connect::{LinstorConnect, LinstorEndpoint, LinstorSettings};
/// let options = ConnectOptions::new()
///     .linstor(LinstorEndpoint::new("https://linstor.example:3371"))
///     .tier("fast", "nvme-thin");
/// let settings = options.setting::<LinstorSettings>().unwrap();
/// assert_eq!(settings.tiers, [("fast".to_string(), "nvme-thin".to_string())]);
/// ```
pub trait LinstorConnect: Sized {
    /// The LINSTOR controller to use instead of finding it through Piraeus.
    ///
    /// ```
    /// use kubecloud_kube::connect::ConnectOptions;
    /// use kubecloud_linstor::connect::{LinstorConnect, LinstorEndpoint, LinstorSettings};
    /// let options = ConnectOptions::new().linstor(LinstorEndpoint::new("https://10.0.0.5:3371"));
    /// let given = options.setting::<LinstorSettings>().unwrap().endpoint.clone();
    /// assert_eq!(given.unwrap().url, "https://10.0.0.5:3371");
    /// ```
    fn linstor(self, endpoint: LinstorEndpoint) -> Self;
    /// Adds tier `name` on LINSTOR resource group `resource_group`. Once one tier is given,
    /// StorageClasses are not read for tiers.
    ///
    /// ```
    /// use kubecloud_kube::connect::ConnectOptions;
    /// use kubecloud_linstor::connect::{LinstorConnect, LinstorSettings};
    /// let options = ConnectOptions::new().tier("bulk", "hdd-zfs");
    /// assert_eq!(options.setting::<LinstorSettings>().unwrap().tiers.len(), 1);
    /// ```
    fn tier(self, name: impl Into<String>, resource_group: impl Into<String>) -> Self;
    /// The tier of volumes that name none.
    ///
    /// ```
    /// use kubecloud_kube::connect::ConnectOptions;
    /// use kubecloud_linstor::connect::{LinstorConnect, LinstorSettings};
    /// let options = ConnectOptions::new().default_tier("fast");
    /// let settings = options.setting::<LinstorSettings>().unwrap();
    /// assert_eq!(settings.default_tier.as_deref(), Some("fast"));
    /// ```
    fn default_tier(self, name: impl Into<String>) -> Self;
    /// The namespace Piraeus' operator runs in: discovery then lists the controller's Service
    /// and reads the client TLS Secret there only (see the [module docs](self)).
    ///
    /// ```
    /// use kubecloud_kube::connect::ConnectOptions;
    /// use kubecloud_linstor::connect::{LinstorConnect, LinstorSettings};
    /// let options = ConnectOptions::new().piraeus_namespace("storage-system");
    /// let settings = options.setting::<LinstorSettings>().unwrap();
    /// assert_eq!(settings.piraeus_namespace.as_deref(), Some("storage-system"));
    /// ```
    fn piraeus_namespace(self, namespace: impl Into<String>) -> Self;
    /// Accepts a plain `http://` LINSTOR controller, discovered or given (refused without it).
    /// Volume operations then travel unauthenticated and unencrypted; a warning is logged when
    /// the backend is built. Prefer `spec.apiTLS` on the `LinstorCluster`.
    ///
    /// ```
    /// use kubecloud_kube::connect::ConnectOptions;
    /// use kubecloud_linstor::connect::{LinstorConnect, LinstorSettings};
    /// let options = ConnectOptions::new().allow_plain_http();
    /// assert!(options.setting::<LinstorSettings>().unwrap().allow_plain_http);
    /// ```
    fn allow_plain_http(self) -> Self;
}

/// `options` with its [`LinstorSettings`] (or the default) changed by `change`.
fn edited(options: ConnectOptions, change: impl FnOnce(&mut LinstorSettings)) -> ConnectOptions {
    let mut settings = options
        .setting::<LinstorSettings>()
        .cloned()
        .unwrap_or_default();
    change(&mut settings);
    options.with(settings)
}

impl LinstorConnect for ConnectOptions {
    fn linstor(self, endpoint: LinstorEndpoint) -> Self {
        edited(self, |s| s.endpoint = Some(endpoint))
    }

    fn tier(self, name: impl Into<String>, resource_group: impl Into<String>) -> Self {
        edited(self, |s| s.tiers.push((name.into(), resource_group.into())))
    }

    fn default_tier(self, name: impl Into<String>) -> Self {
        edited(self, |s| s.default_tier = Some(name.into()))
    }

    fn piraeus_namespace(self, namespace: impl Into<String>) -> Self {
        edited(self, |s| s.piraeus_namespace = Some(namespace.into()))
    }

    fn allow_plain_http(self) -> Self {
        edited(self, |s| s.allow_plain_http = true)
    }
}

/// Builds the LINSTOR backend when connecting (see the module docs).
///
/// ```
/// use kubecloud_kube::connect::Connector;
/// assert_eq!(kubecloud_linstor::connect::CONNECTOR.part(), kubecloud_kube::plugin::Part::Storage);
/// ```
pub const CONNECTOR: LinstorConnector = LinstorConnector;

/// The [`Connector`] of the LINSTOR backend: the endpoint given or discovered, a plain `http://`
/// one refused unless [`LinstorConnect::allow_plain_http`], tiers given or from StorageClasses.
///
/// ```
/// use kubecloud_kube::connect::Connector;
/// let connector = kubecloud_linstor::connect::LinstorConnector;
/// assert_eq!(connector.part(), kubecloud_kube::plugin::Part::Storage);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LinstorConnector;

#[kubecloud_core::async_trait]
impl Connector for LinstorConnector {
    fn name(&self) -> &'static str {
        crate::rest::BACKEND
    }

    fn part(&self) -> Part {
        Part::Storage
    }

    async fn connect(
        &self,
        client: &kube::Client,
        installed: &Installed,
        options: &ConnectOptions,
    ) -> Result<std::result::Result<Built, String>> {
        let given = options
            .setting::<LinstorSettings>()
            .cloned()
            .unwrap_or_default();
        let (endpoint, source) = match (&given.endpoint, installed.missing(&PIRAEUS)) {
            (Some(endpoint), _) => (endpoint.clone(), "given with LinstorConnect::linstor"),
            (None, Some(missing)) => return Ok(Err(format!("LINSTOR was not found: {missing}"))),
            (None, None) => {
                match LinstorEndpoint::discover_in(client, given.piraeus_namespace.as_deref()).await
                {
                    Ok(found) => (found, "found through the LinstorCluster"),
                    // No LINSTOR here: another storage backend (CSI) may serve the part.
                    Err(e) if is_no_cluster(&e) => return Ok(Err(e.to_string())),
                    // A setting of the caller's that is wrong is theirs to fix, part required or not.
                    Err(e) if e.is_invalid_input() => return Err(e),
                    Err(e) if options.is_required(Part::Storage) => return Err(e),
                    Err(e) => return Ok(Err(e.to_string())),
                }
            }
        };
        let plain = refuse_plain_http(&endpoint.url, given.allow_plain_http, source)?;
        let found = if given.tiers.is_empty() {
            from_storage_classes(client).await?
        } else {
            FoundTiers {
                tiers: given.tiers.clone(),
                default: None,
            }
        };
        if found.tiers.is_empty() {
            return Ok(Err(format!(
                "LINSTOR has no tiers: no StorageClass of {PROVISIONER} names a resource group \
                 (parameter linstor.csi.linbit.com/resourceGroup) and none was given"
            )));
        }
        let mut builder = crate::Linstor::builder(client.clone(), endpoint.url.clone())
            .http_import(installed.has(&kubecloud_kube::cdi::SYSTEM))
            .snapshots(installed.has(&kubecloud_kube::connect::VOLUME_SNAPSHOTS));
        if let Some(tls) = &endpoint.tls {
            builder = builder.tls(
                tls.ca_pem.clone(),
                tls.cert_pem.clone(),
                tls.key_pem.clone(),
            );
        }
        if plain {
            // Allowed above; the builder logs the warning as it builds.
            builder = builder.insecure_http();
        }
        if let Some(namespace) = endpoint
            .namespace
            .as_ref()
            .or(given.piraeus_namespace.as_ref())
        {
            builder = builder.system_namespace(namespace.clone());
        }
        for (tier, group) in &found.tiers {
            builder = builder.tier(tier.clone(), group.clone());
        }
        if let Some(default) = given.default_tier.or(found.default) {
            builder = builder.default_tier(default);
        }
        Ok(Ok(Built::Storage(std::sync::Arc::new(builder.build()?))))
    }
}

/// Whether `url` is plain `http://`; an error naming `allow_plain_http` when it is and that is
/// not allowed. `source` says where the URL came from.
fn refuse_plain_http(url: &str, allowed: bool, source: &str) -> Result<bool> {
    let plain = url.starts_with("http://");
    if plain && !allowed {
        return Err(Error::invalid(
            "allow_plain_http",
            format!(
                "the LINSTOR controller {url} ({source}) is plain http://, which carries every \
                 volume operation unauthenticated and unencrypted; set spec.apiTLS on the \
                 LinstorCluster or give an https:// endpoint, or accept plain http explicitly \
                 with LinstorConnect::allow_plain_http()"
            ),
        ));
    }
    Ok(plain)
}

/// The namespace Piraeus installs into by default: where the client TLS Secret of an external
/// controller is read unless [`LinstorConnect::piraeus_namespace`] names another.
///
/// ```
/// assert_eq!(kubecloud_linstor::connect::PIRAEUS_NAMESPACE, "piraeus-datastore");
/// ```
pub const PIRAEUS_NAMESPACE: &str = "piraeus-datastore";
/// The name Piraeus gives the controller's Service (preferred when the `LinstorCluster`
/// controls more than one labelled Service in its namespace).
///
/// ```
/// assert_eq!(kubecloud_linstor::connect::CONTROLLER_SERVICE, "linstor-controller");
/// ```
pub const CONTROLLER_SERVICE: &str = "linstor-controller";
/// The label Piraeus puts on the controller's Service.
///
/// ```
/// assert_eq!(kubecloud_linstor::connect::CONTROLLER_SELECTOR, "app.kubernetes.io/component=linstor-controller");
/// ```
pub const CONTROLLER_SELECTOR: &str = "app.kubernetes.io/component=linstor-controller";
/// The client TLS Secret when `spec.apiTLS.clientSecretName` is not set.
///
/// ```
/// assert_eq!(kubecloud_linstor::connect::DEFAULT_CLIENT_SECRET, "linstor-client-tls");
/// ```
pub const DEFAULT_CLIENT_SECRET: &str = "linstor-client-tls";
const NAME: &str = "linstor";

/// Client TLS material for the LINSTOR API (PEM). `Debug` shows sizes only.
///
/// ```
/// use kubecloud_linstor::connect::LinstorTls;
/// let tls = LinstorTls { ca_pem: b"ca".to_vec(), cert_pem: b"cert".to_vec(), key_pem: b"secret".to_vec() };
/// assert!(!format!("{tls:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct LinstorTls {
    /// The CA that signed the controller's certificate.
    pub ca_pem: Vec<u8>,
    /// The client certificate.
    pub cert_pem: Vec<u8>,
    /// The client certificate's private key.
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for LinstorTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinstorTls")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field("cert_pem", &format_args!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Where the LINSTOR controller answers, and how to authenticate to it.
///
/// ```
/// let endpoint = kubecloud_linstor::connect::LinstorEndpoint::new("https://linstor.example:3371");
/// assert!(endpoint.tls.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinstorEndpoint {
    /// The controller's base URL (`https://linstor-controller.<ns>.svc:3371`, ...).
    pub url: String,
    /// Client TLS material, when the API is served over TLS.
    pub tls: Option<LinstorTls>,
    /// The namespace of the Piraeus installation discovery trusted (none when given by hand).
    pub namespace: Option<String>,
}

impl LinstorEndpoint {
    /// An endpoint at `url` without TLS material (https trusted by system roots, or plain http,
    /// which connecting accepts only with [`LinstorConnect::allow_plain_http`]).
    ///
    /// ```
    /// let endpoint = kubecloud_linstor::connect::LinstorEndpoint::new("https://linstor.example:3371");
    /// assert_eq!(endpoint.url, "https://linstor.example:3371");
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls: None,
            namespace: None,
        }
    }

    /// With client TLS material.
    ///
    /// ```
    /// use kubecloud_linstor::connect::{LinstorEndpoint, LinstorTls};
    /// let tls = LinstorTls { ca_pem: vec![1], cert_pem: vec![2], key_pem: vec![3] };
    /// let endpoint = LinstorEndpoint::new("https://linstor.example:3371").with_tls(tls);
    /// assert!(endpoint.tls.is_some());
    /// ```
    pub fn with_tls(mut self, tls: LinstorTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Finds the controller as Piraeus deploys it, trusting only what the `LinstorCluster`'s
    /// operator owns; the same as [`LinstorEndpoint::discover_in`] without a pinned namespace.
    ///
    /// ```no_run
    /// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// let endpoint = kubecloud_linstor::connect::LinstorEndpoint::discover(&client).await?;
    /// println!("LINSTOR at {}", endpoint.url);
    /// # Ok(()) }
    /// ```
    pub async fn discover(client: &kube::Client) -> Result<Self> {
        Self::discover_in(client, None).await
    }

    /// Finds the controller as Piraeus deploys it (see the [module docs](self) for what is
    /// trusted and why). Reads the one `piraeus.io/v1` `LinstorCluster`; when its
    /// `spec.externalController.url` is set that is the URL; otherwise the controller is the
    /// Service labelled `app.kubernetes.io/component=linstor-controller` that the
    /// `LinstorCluster` controls (owner reference with its uid, `controller: true`), in
    /// `piraeus_namespace` when given, else wherever it is; the URL is `https://<service>.<ns>.svc:3371`
    /// when `spec.apiTLS` is set, else `http://<service>.<ns>.svc:3370`. Labelled Services the
    /// `LinstorCluster` does not control are ignored. With `spec.apiTLS` the client certificate
    /// is read from the Secret `spec.apiTLS.clientSecretName` (default `linstor-client-tls`, keys
    /// `ca.crt`, `tls.crt`, `tls.key`) in that Service's namespace only (for an external
    /// controller: `piraeus_namespace`, else `piraeus-datastore`).
    ///
    /// The URL of a Service is its cluster DNS name, which resolves inside the cluster only; from
    /// outside, give the URL yourself ([`LinstorConnect::linstor`]). Whether a plain `http://`
    /// URL may be used is decided when connecting ([`LinstorConnect::allow_plain_http`]).
    ///
    /// ```no_run
    /// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use kubecloud_linstor::connect::LinstorEndpoint;
    /// // Only Services in piraeus-datastore are listed, only its Secret is read.
    /// let endpoint = LinstorEndpoint::discover_in(&client, Some("piraeus-datastore")).await?;
    /// println!("LINSTOR at {} (client certificate: {})", endpoint.url, endpoint.tls.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn discover_in(
        client: &kube::Client,
        piraeus_namespace: Option<&str>,
    ) -> Result<Self> {
        if let Some(namespace) = piraeus_namespace {
            validate_name("piraeus_namespace", namespace)?;
        }
        let cluster = linstor_cluster(client).await?;
        let (namespace, url) = match &cluster.spec.external_controller {
            // An external controller has no Service here; its client Secret lives with Piraeus.
            Some(external) => (
                piraeus_namespace.unwrap_or(PIRAEUS_NAMESPACE).to_string(),
                external.url.clone(),
            ),
            None => {
                let (namespace, service) =
                    controller_service(client, &cluster, piraeus_namespace).await?;
                let url = match cluster.spec.api_tls {
                    Some(_) => format!("https://{service}.{namespace}.svc:3371"),
                    None => format!("http://{service}.{namespace}.svc:3370"),
                };
                (namespace, url)
            }
        };
        let tls = match &cluster.spec.api_tls {
            None => None,
            Some(api_tls) => {
                let secret = api_tls
                    .client_secret_name
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .unwrap_or(DEFAULT_CLIENT_SECRET);
                let guessed =
                    cluster.spec.external_controller.is_some() && piraeus_namespace.is_none();
                Some(client_tls(client, &namespace, secret, guessed).await?)
            }
        };
        tracing::debug!(%url, %namespace, tls = tls.is_some(), "found the LINSTOR controller");
        Ok(Self {
            url,
            tls,
            namespace: Some(namespace),
        })
    }
}

/// Why discovery finds no LINSTOR where Piraeus' API is served but no `LinstorCluster` exists:
/// connecting then declines (storage may be another backend's), rather than failing.
const NO_CLUSTER: &str =
    "Piraeus is installed but no LinstorCluster exists, so there is no LINSTOR controller";

/// Whether `e` is discovery finding no `LinstorCluster`.
fn is_no_cluster(e: &Error) -> bool {
    matches!(e, Error::Backend { message, .. } if message == NO_CLUSTER)
}

fn not_found(message: String) -> Error {
    Error::Backend {
        backend: NAME.into(),
        message,
        temporary: false,
        source: None,
    }
}

fn failed(what: &str, e: kube::Error) -> Error {
    let temporary = matches!(&e, kube::Error::Api(s) if s.code >= 500 || s.code == 429)
        || !matches!(e, kube::Error::Api(_));
    Error::backend(NAME, what.to_string(), temporary, e)
}

/// The parts of a `piraeus.io/v1` `LinstorCluster`'s spec discovery reads (the upstream CRD's
/// field names; the rest is not read).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterSpec {
    #[serde(default)]
    external_controller: Option<ExternalController>,
    #[serde(default, rename = "apiTLS")]
    api_tls: Option<ApiTls>,
}

/// `spec.externalController`.
#[derive(Clone, Debug, Deserialize)]
struct ExternalController {
    url: String,
}

/// `spec.apiTLS` (the fields read).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiTls {
    #[serde(default)]
    client_secret_name: Option<String>,
}

/// The `LinstorCluster` discovery follows: its identity (for owner references) and spec.
#[derive(Clone, Debug)]
struct Cluster {
    name: String,
    uid: String,
    spec: ClusterSpec,
}

async fn linstor_cluster(client: &kube::Client) -> Result<Cluster> {
    let gvk = GroupVersionKind::gvk("piraeus.io", "v1", "LinstorCluster");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "linstorclusters");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("listing piraeus.io LinstorClusters failed", e))?;
    let mut items = list.items;
    if items.len() > 1 {
        let names: Vec<String> = items
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        return Err(not_found(format!(
            "{} LinstorClusters exist ({}): which Piraeus installation holds the LINSTOR \
             controller is not guessed; give the controller with LinstorConnect::linstor",
            items.len(),
            names.join(", ")
        )));
    }
    let cluster = items.pop().ok_or_else(|| not_found(NO_CLUSTER.into()))?;
    let name = cluster.metadata.name.clone().unwrap_or_default();
    let uid = cluster
        .metadata
        .uid
        .clone()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| not_found(format!("the LinstorCluster {name} has no uid")))?;
    let spec = match cluster.data.get("spec") {
        Some(spec) if !spec.is_null() => ClusterSpec::deserialize(spec).map_err(|e| {
            Error::backend(NAME, format!("the LinstorCluster {name}'s spec"), false, e)
        })?,
        _ => ClusterSpec::default(),
    };
    Ok(Cluster { name, uid, spec })
}

/// Whether `cluster` controls the object of `meta`: an owner reference with the
/// `LinstorCluster`'s group, kind, name and uid, and `controller: true` — what the operator's
/// `SetControllerReference` writes.
fn controlled_by(meta: &ObjectMeta, cluster: &Cluster) -> bool {
    meta.owner_references.iter().flatten().any(|r| {
        r.uid == cluster.uid
            && r.kind == "LinstorCluster"
            && r.name == cluster.name
            && r.api_version.split('/').next() == Some(PIRAEUS.group)
            && r.controller == Some(true)
    })
}

/// The namespace and name of the controller's Service: among `services` (labelled as the
/// controller), those `cluster` controls, which must all be in one namespace; named
/// `linstor-controller` preferred. The others are ignored (logged at debug); `scope` says where
/// the Services were listed, for the error.
fn trusted_service(
    cluster: &Cluster,
    services: &[Service],
    scope: &str,
) -> Result<(String, String)> {
    let id = |s: &Service| {
        format!(
            "{}/{}",
            s.metadata.namespace.as_deref().unwrap_or_default(),
            s.metadata.name.as_deref().unwrap_or_default()
        )
    };
    let (mut owned, ignored): (Vec<&Service>, Vec<&Service>) = services
        .iter()
        .partition(|s| controlled_by(&s.metadata, cluster));
    for service in &ignored {
        tracing::debug!(
            service = %id(service),
            cluster = %cluster.name,
            "ignoring a Service labelled as the LINSTOR controller: the LinstorCluster does not control it"
        );
    }
    let ignored: Vec<String> = ignored.iter().map(|s| id(s)).collect();
    owned.sort_by_key(|s| {
        (
            s.metadata.name.as_deref() != Some(CONTROLLER_SERVICE),
            id(s),
        )
    });
    let mut namespaces: Vec<&str> = owned
        .iter()
        .filter_map(|s| s.metadata.namespace.as_deref())
        .collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    if namespaces.len() > 1 {
        let found: Vec<String> = owned.iter().map(|s| id(s)).collect();
        return Err(not_found(format!(
            "Services labelled {CONTROLLER_SELECTOR} and controlled by the LinstorCluster {} are \
             in more than one namespace ({}); Piraeus' operator writes into its own namespace \
             only, so some are forged: name Piraeus' namespace with \
             LinstorConnect::piraeus_namespace",
            cluster.name,
            found.join(", ")
        )));
    }
    match owned.first() {
        Some(service) => Ok((
            service.metadata.namespace.clone().unwrap_or_default(),
            service.metadata.name.clone().unwrap_or_default(),
        )),
        None => {
            let seen = if ignored.is_empty() {
                "none is labelled so".to_string()
            } else {
                format!("ignored, not controlled by it: {}", ignored.join(", "))
            };
            Err(not_found(format!(
                "no LINSTOR controller Service: none labelled {CONTROLLER_SELECTOR} {scope} is \
                 controlled by the LinstorCluster {} (an owner reference with its uid and \
                 controller: true, as Piraeus' operator sets); {seen}",
                cluster.name
            )))
        }
    }
}

/// The controller's Service the `LinstorCluster` controls (see [`trusted_service`]), listed in
/// `pinned` only when given, else in every namespace.
async fn controller_service(
    client: &kube::Client,
    cluster: &Cluster,
    pinned: Option<&str>,
) -> Result<(String, String)> {
    let (api, scope): (Api<Service>, String) = match pinned {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            format!("in namespace {ns}"),
        ),
        None => (Api::all(client.clone()), "in any namespace".to_string()),
    };
    let labelled = api
        .list(&ListParams::default().labels(CONTROLLER_SELECTOR))
        .await
        .map_err(|e| failed("listing the LINSTOR controller's Service failed", e))?;
    trusted_service(cluster, &labelled.items, &scope)
}

/// The client TLS material from the Secret `namespace/name`. `guessed`: the namespace is
/// Piraeus' default rather than one found or given (said in the error when the Secret is not
/// there).
async fn client_tls(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    guessed: bool,
) -> Result<LinstorTls> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|e| failed("reading the LINSTOR client TLS Secret failed", e))?
        .ok_or_else(|| {
            let hint = if guessed {
                " (the LinstorCluster has an external controller, so Piraeus' namespace is taken \
                 to be its default; name the namespace Piraeus runs in with \
                 LinstorConnect::piraeus_namespace)"
            } else {
                ""
            };
            not_found(format!(
                "the LINSTOR API uses TLS but its client Secret {namespace}/{name} does not \
                 exist{hint}"
            ))
        })?;
    let data = secret.data.unwrap_or_default();
    let key = |k: &str| {
        data.get(k).map(|b| b.0.clone()).ok_or_else(|| {
            not_found(format!(
                "the LINSTOR client Secret {namespace}/{name} has no key {k}"
            ))
        })
    };
    Ok(LinstorTls {
        ca_pem: key("ca.crt")?,
        cert_pem: key("tls.crt")?,
        key_pem: key("tls.key")?,
    })
}

/// The LINSTOR CSI driver's provisioner name.
///
/// ```
/// assert_eq!(kubecloud_linstor::connect::PROVISIONER, "linstor.csi.linbit.com");
/// ```
pub const PROVISIONER: &str = "linstor.csi.linbit.com";
const RESOURCE_GROUP: &str = "linstor.csi.linbit.com/resourceGroup";
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

/// Tiers found in StorageClasses, as `(tier, resource group)`, and the default tier.
///
/// ```
/// let found = kubecloud_linstor::connect::FoundTiers::default();
/// assert!(found.tiers.is_empty() && found.default.is_none());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FoundTiers {
    /// `(tier, resource group)`, by tier name.
    pub tiers: Vec<(String, String)>,
    /// The tier of the cluster's default StorageClass, if it is one of them.
    pub default: Option<String>,
}

/// Every StorageClass of the LINSTOR CSI driver that names a resource group (parameter
/// `linstor.csi.linbit.com/resourceGroup`) is a tier named after the class; the classes kubecloud
/// itself makes (label `app.kubernetes.io/managed-by=kubecloud`) are skipped.
///
/// ```no_run
/// # async fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
/// let found = kubecloud_linstor::connect::from_storage_classes(&client).await?;
/// for (tier, group) in &found.tiers {
///     println!("{tier}: resource group {group}");
/// }
/// # Ok(()) }
/// ```
pub async fn from_storage_classes(client: &kube::Client) -> Result<FoundTiers> {
    let api: Api<StorageClass> = Api::all(client.clone());
    let classes = api.list(&ListParams::default()).await.map_err(|e| {
        Error::backend(
            "linstor",
            "listing StorageClasses for tiers failed",
            true,
            e,
        )
    })?;
    Ok(tiers_of(&classes.items))
}

/// The pure part of [`from_storage_classes`].
///
/// ```
/// use k8s_openapi::api::storage::v1::StorageClass;
/// let class: StorageClass = serde_json::from_value(serde_json::json!({
///     "metadata": {"name": "fast"},
///     "provisioner": "linstor.csi.linbit.com",
///     "parameters": {"linstor.csi.linbit.com/resourceGroup": "rg-fast"},
/// })).unwrap();
/// let found = kubecloud_linstor::connect::tiers_of(&[class]);
/// assert_eq!(found.tiers, [("fast".to_string(), "rg-fast".to_string())]);
/// ```
pub fn tiers_of(classes: &[StorageClass]) -> FoundTiers {
    let mut found = FoundTiers::default();
    for class in classes {
        let Some(name) = class.metadata.name.as_deref() else {
            continue;
        };
        let ours = class
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(kubecloud_kube::MANAGED_BY))
            .is_some_and(|v| v == kubecloud_kube::MANAGER);
        let group = class
            .parameters
            .as_ref()
            .and_then(|p| p.get(RESOURCE_GROUP).or_else(|| p.get("resourceGroup")));
        let Some(group) = group else { continue };
        if ours || class.provisioner != PROVISIONER || validate_name("tier", name).is_err() {
            continue;
        }
        found.tiers.push((name.to_string(), group.clone()));
        let is_default = class
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_CLASS))
            .is_some_and(|v| v == "true");
        if is_default {
            found.default = Some(name.to_string());
        }
    }
    found.tiers.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn cluster() -> Cluster {
        Cluster {
            name: "linstorcluster".into(),
            uid: "uid-1".into(),
            spec: ClusterSpec::default(),
        }
    }

    fn owner(uid: &str, controller: bool) -> OwnerReference {
        OwnerReference {
            api_version: "piraeus.io/v1".into(),
            kind: "LinstorCluster".into(),
            name: "linstorcluster".into(),
            uid: uid.into(),
            controller: Some(controller),
            block_owner_deletion: Some(true),
        }
    }

    fn service(namespace: &str, name: &str, owners: Vec<OwnerReference>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                owner_references: Some(owners),
                ..ObjectMeta::default()
            },
            ..Service::default()
        }
    }

    #[test]
    fn the_service_the_linstor_cluster_controls_is_chosen_wherever_others_are() {
        let services = [
            service("evil", "linstor-controller", vec![]),
            service("storage", "linstor-controller", vec![owner("uid-1", true)]),
            service("aaa", "linstor-controller", vec![owner("other-uid", true)]),
        ];
        let found = trusted_service(&cluster(), &services, "in any namespace").unwrap();
        assert_eq!(found, ("storage".into(), "linstor-controller".into()));
    }

    #[test]
    fn an_owner_reference_that_is_not_the_controller_or_of_another_kind_is_not_trusted() {
        let mut other_kind = owner("uid-1", true);
        other_kind.kind = "LinstorSatellite".into();
        let mut other_group = owner("uid-1", true);
        other_group.api_version = "evil.io/v1".into();
        let services = [
            service("a", "linstor-controller", vec![owner("uid-1", false)]),
            service("b", "linstor-controller", vec![other_kind]),
            service("c", "linstor-controller", vec![other_group]),
        ];
        let err = trusted_service(&cluster(), &services, "in any namespace").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ignored, not controlled by it: a/linstor-controller, b/linstor-controller, c/linstor-controller"),
            "{text}"
        );
        assert!(!err.is_temporary());
    }

    #[test]
    fn controlled_services_in_two_namespaces_are_refused_not_chosen() {
        let services = [
            service("piraeus", "linstor-controller", vec![owner("uid-1", true)]),
            service("evil", "linstor-controller", vec![owner("uid-1", true)]),
        ];
        let err = trusted_service(&cluster(), &services, "in any namespace").unwrap_err();
        assert!(err.to_string().contains("more than one namespace"), "{err}");
        assert!(err.to_string().contains("piraeus_namespace"), "{err}");
    }

    #[test]
    fn linstor_controller_is_preferred_among_the_controlled_services_of_one_namespace() {
        let services = [
            service("p", "aaa-metrics", vec![owner("uid-1", true)]),
            service("p", "linstor-controller", vec![owner("uid-1", true)]),
        ];
        let found = trusted_service(&cluster(), &services, "in namespace p").unwrap();
        assert_eq!(found.1, "linstor-controller");
    }

    #[test]
    fn plain_http_is_refused_naming_the_setting_unless_allowed() {
        let err = refuse_plain_http("http://x:3370", false, "given").unwrap_err();
        assert_eq!(err.invalid_field(), Some("allow_plain_http"));
        assert!(
            err.to_string()
                .contains("LinstorConnect::allow_plain_http()"),
            "{err}"
        );
        assert!(refuse_plain_http("http://x:3370", true, "given").unwrap());
        assert!(!refuse_plain_http("https://x:3371", false, "given").unwrap());
    }

    #[test]
    fn the_spec_is_read_with_the_upstream_field_names() {
        let spec: ClusterSpec = serde_json::from_value(serde_json::json!({
            "externalController": {"url": "https://l:3371"},
            "apiTLS": {"clientSecretName": "c", "certManager": {"name": "ca"}},
            "nodeSelector": {"a": "b"},
        }))
        .unwrap();
        assert_eq!(spec.external_controller.unwrap().url, "https://l:3371");
        assert_eq!(
            spec.api_tls.unwrap().client_secret_name.as_deref(),
            Some("c")
        );
    }
}
