//! Finding the LINSTOR controller as Piraeus deploys it.

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::GroupVersionKind;
use kubecloud_core::{Error, Result};
use serde_json::Value;

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
/// let endpoint = kubecloud::connect::LinstorEndpoint::new("http://linstor.example:3370");
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
    /// outside, give the URL yourself ([`crate::ConnectOptions::linstor`]).
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
