//! Connecting to LINSTOR as Piraeus deploys it (what `Cloud::connect` does for storage): the
//! controller found through the `piraeus.io/v1` `LinstorCluster` and its Service and client TLS
//! Secret ([`LinstorEndpoint::discover`]), tiers from the cluster's LINSTOR StorageClasses
//! ([`from_storage_classes`]), both overridable with [`LinstorConnect`] on the options, and the
//! backend built from them ([`CONNECTOR`]).

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kubecloud_core::{Error, Result, validate_name};
use kubecloud_kube::connect::{Built, ConnectOptions, Connector, Installed, System};
use kubecloud_kube::plugin::Part;
use serde_json::Value;

/// Piraeus (`piraeus.io/v1`): where LINSTOR is found.
pub const PIRAEUS: System = System {
    name: "Piraeus",
    group: "piraeus.io",
    version: "v1",
};

/// What the user gives instead of discovering (see [`LinstorConnect`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinstorSettings {
    /// The controller to use instead of finding it through Piraeus.
    pub endpoint: Option<LinstorEndpoint>,
    /// Tiers as `(tier, resource group)`; once one is given, StorageClasses are not read.
    pub tiers: Vec<(String, String)>,
    /// The tier of volumes that name none (else the cluster's default class's, else the first).
    pub default_tier: Option<String>,
}

/// LINSTOR's settings on [`ConnectOptions`].
///
/// ```
/// use kubecloud_kube::connect::ConnectOptions;
/// use kubecloud_linstor::connect::{LinstorConnect, LinstorEndpoint, LinstorSettings};
/// let options = ConnectOptions::new()
///     .linstor(LinstorEndpoint::new("http://localhost:3370"))
///     .tier("fast", "nvme-thin");
/// let settings = options.setting::<LinstorSettings>().unwrap();
/// assert_eq!(settings.tiers, [("fast".to_string(), "nvme-thin".to_string())]);
/// ```
pub trait LinstorConnect: Sized {
    /// The LINSTOR controller to use instead of finding it through Piraeus.
    fn linstor(self, endpoint: LinstorEndpoint) -> Self;
    /// Adds tier `name` on LINSTOR resource group `resource_group`. Once one tier is given,
    /// StorageClasses are not read for tiers.
    fn tier(self, name: impl Into<String>, resource_group: impl Into<String>) -> Self;
    /// The tier of volumes that name none.
    fn default_tier(self, name: impl Into<String>) -> Self;
}

impl LinstorConnect for ConnectOptions {
    fn linstor(self, endpoint: LinstorEndpoint) -> Self {
        let mut settings = self
            .setting::<LinstorSettings>()
            .cloned()
            .unwrap_or_default();
        settings.endpoint = Some(endpoint);
        self.with(settings)
    }

    fn tier(self, name: impl Into<String>, resource_group: impl Into<String>) -> Self {
        let mut settings = self
            .setting::<LinstorSettings>()
            .cloned()
            .unwrap_or_default();
        settings.tiers.push((name.into(), resource_group.into()));
        self.with(settings)
    }

    fn default_tier(self, name: impl Into<String>) -> Self {
        let mut settings = self
            .setting::<LinstorSettings>()
            .cloned()
            .unwrap_or_default();
        settings.default_tier = Some(name.into());
        self.with(settings)
    }
}

/// Builds the LINSTOR backend when connecting (see the module docs).
pub const CONNECTOR: LinstorConnector = LinstorConnector;

/// The [`Connector`] of the LINSTOR backend.
#[derive(Clone, Copy, Debug)]
pub struct LinstorConnector;

#[kubecloud_core::async_trait]
impl Connector for LinstorConnector {
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
        let endpoint = match (&given.endpoint, installed.missing(&PIRAEUS)) {
            (Some(endpoint), _) => endpoint.clone(),
            (None, Some(missing)) => return Ok(Err(format!("LINSTOR was not found: {missing}"))),
            (None, None) => match LinstorEndpoint::discover(client).await {
                Ok(found) => found,
                Err(e) if options.is_required(Part::Storage) => return Err(e),
                Err(e) => return Ok(Err(e.to_string())),
            },
        };
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
        for (tier, group) in &found.tiers {
            builder = builder.tier(tier.clone(), group.clone());
        }
        if let Some(default) = given.default_tier.or(found.default) {
            builder = builder.default_tier(default);
        }
        Ok(Ok(Built::Storage(std::sync::Arc::new(builder.build()?))))
    }
}

/// The namespace Piraeus installs into by default, where the controller's Service and the client
/// TLS Secret are looked for when no Service labelled as the controller is found.
pub const PIRAEUS_NAMESPACE: &str = "piraeus-datastore";
/// The name of the controller's Service.
pub const CONTROLLER_SERVICE: &str = "linstor-controller";
/// The label Piraeus puts on the controller's Service.
pub const CONTROLLER_SELECTOR: &str = "app.kubernetes.io/component=linstor-controller";
/// The client TLS Secret when `spec.apiTLS.clientSecretName` is not set.
pub const DEFAULT_CLIENT_SECRET: &str = "linstor-client-tls";
const NAME: &str = "linstor";

/// Client TLS material for the LINSTOR API (PEM). `Debug` shows sizes only.
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
/// let endpoint = kubecloud_linstor::connect::LinstorEndpoint::new("http://linstor.example:3370");
/// assert!(endpoint.tls.is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinstorEndpoint {
    /// The controller's base URL (`https://linstor-controller.<ns>.svc:3371`, ...).
    pub url: String,
    /// Client TLS material, when the API is served over TLS.
    pub tls: Option<LinstorTls>,
}

impl LinstorEndpoint {
    /// An endpoint at `url` without TLS material (plain http, or https trusted by system roots).
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            tls: None,
        }
    }

    /// With client TLS material.
    pub fn with_tls(mut self, tls: LinstorTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Finds the controller as Piraeus deploys it. Reads the `piraeus.io/v1` `LinstorCluster`;
    /// when its `spec.externalController.url` is set that is the URL; otherwise the controller is
    /// the Service `linstor-controller` (labelled `app.kubernetes.io/component=linstor-controller`,
    /// else in namespace `piraeus-datastore`), on `https://...:3371` when `spec.apiTLS` is set,
    /// else `http://...:3370`. With `spec.apiTLS` the client certificate is read from the Secret
    /// `spec.apiTLS.clientSecretName` (default `linstor-client-tls`, keys `ca.crt`, `tls.crt`,
    /// `tls.key`) in the controller's namespace (`piraeus-datastore` for an external controller).
    ///
    /// The URL of a Service is its cluster DNS name, which resolves inside the cluster only; from
    /// outside, give the URL yourself ([`LinstorConnect::linstor`]).
    pub async fn discover(client: &kube::Client) -> Result<Self> {
        let cluster = linstor_cluster(client).await?;
        let spec = &cluster["spec"];
        let api_tls = spec.get("apiTLS").filter(|v| !v.is_null());
        let external = spec["externalController"]["url"].as_str();
        let namespace = match external {
            // An external controller has no Service here; its client Secret lives with Piraeus.
            Some(_) => PIRAEUS_NAMESPACE.to_string(),
            None => controller_namespace(client).await?,
        };
        let url = match external {
            Some(url) => url.to_string(),
            None if api_tls.is_some() => {
                format!("https://{CONTROLLER_SERVICE}.{namespace}.svc:3371")
            }
            None => format!("http://{CONTROLLER_SERVICE}.{namespace}.svc:3370"),
        };
        let tls = match api_tls {
            None => None,
            Some(api_tls) => {
                let secret = api_tls["clientSecretName"]
                    .as_str()
                    .unwrap_or(DEFAULT_CLIENT_SECRET);
                Some(client_tls(client, &namespace, secret).await?)
            }
        };
        tracing::debug!(%url, tls = tls.is_some(), "found the LINSTOR controller");
        Ok(Self { url, tls })
    }
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

async fn linstor_cluster(client: &kube::Client) -> Result<Value> {
    let gvk = GroupVersionKind::gvk("piraeus.io", "v1", "LinstorCluster");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "linstorclusters");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| failed("listing piraeus.io LinstorClusters failed", e))?;
    let cluster = list.items.into_iter().next().ok_or_else(|| {
        not_found(
            "Piraeus is installed but no LinstorCluster exists, so there is no LINSTOR controller"
                .into(),
        )
    })?;
    serde_json::to_value(&cluster).map_err(|e| Error::backend(NAME, "a LinstorCluster", false, e))
}

/// The namespace of the controller's Service: the one labelled as the controller (named
/// `linstor-controller` preferred), else `piraeus-datastore` if the Service is there.
async fn controller_namespace(client: &kube::Client) -> Result<String> {
    let all: Api<Service> = Api::all(client.clone());
    let labelled = all
        .list(&ListParams::default().labels(CONTROLLER_SELECTOR))
        .await
        .map_err(|e| failed("listing the LINSTOR controller's Service failed", e))?;
    let found = labelled
        .items
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(CONTROLLER_SERVICE))
        .or_else(|| labelled.items.first())
        .and_then(|s| s.metadata.namespace.clone());
    if let Some(ns) = found {
        return Ok(ns);
    }
    let in_default: Api<Service> = Api::namespaced(client.clone(), PIRAEUS_NAMESPACE);
    match in_default.get_opt(CONTROLLER_SERVICE).await {
        Ok(Some(_)) => Ok(PIRAEUS_NAMESPACE.to_string()),
        Ok(None) => Err(not_found(format!(
            "no LINSTOR controller Service: none labelled {CONTROLLER_SELECTOR} and no \
             {CONTROLLER_SERVICE} in namespace {PIRAEUS_NAMESPACE}"
        ))),
        Err(e) => Err(failed("reading the LINSTOR controller's Service failed", e)),
    }
}

async fn client_tls(client: &kube::Client, namespace: &str, name: &str) -> Result<LinstorTls> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|e| failed("reading the LINSTOR client TLS Secret failed", e))?
        .ok_or_else(|| {
            not_found(format!(
                "the LINSTOR API uses TLS but its client Secret {namespace}/{name} does not exist"
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
pub const PROVISIONER: &str = "linstor.csi.linbit.com";
const RESOURCE_GROUP: &str = "linstor.csi.linbit.com/resourceGroup";
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

/// Tiers found in StorageClasses, as `(tier, resource group)`, and the default tier.
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
