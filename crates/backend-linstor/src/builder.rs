//! The builder and the backend handle.

use std::sync::Arc;
use std::time::Duration;

use kubecloud_core::{Error, MAX_REPLICAS, Result, validate_name};
use kubecloud_kube::claims::ClaimStore;
use kubecloud_kube::{RetryPolicy, Writer};

use crate::rest::{BACKEND, RestClient, TlsConfig};

/// A storage tier: a name users pick and the LINSTOR resource group behind it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    /// The tier's name.
    pub name: String,
    /// The LINSTOR resource group (place count, storage pools, replicas on same/different,
    /// diskless on remaining are the group's).
    pub resource_group: String,
}

/// Options for [`Linstor`]; validated by [`LinstorBuilder::build`].
#[must_use]
pub struct LinstorBuilder {
    client: kube::Client,
    url: String,
    tls: TlsConfig,
    insecure_http: bool,
    tiers: Vec<Tier>,
    default_tier: Option<String>,
    max_replicas: u8,
    timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    http: Option<reqwest::Client>,
    snapshots: bool,
    http_import: bool,
    delete_timeout: Duration,
    system_namespace: Option<String>,
}

impl LinstorBuilder {
    /// The namespace Piraeus runs in (its controller, its client TLS Secret): reported as the
    /// backend's [system namespace](kubecloud_core::BlockStorage::system_namespaces), so no
    /// tenant takes it. Connecting sets the one discovery trusted.
    ///
    /// ```no_run
    /// # fn demo(client: kube::Client) -> kubecloud_core::Result<()> {
    /// use kubecloud_core::BlockStorage;
    /// let storage = kubecloud_linstor::Linstor::builder(client, "https://linstor.example:3371")
    ///     .tier("standard", "rg-standard")
    ///     .system_namespace("storage-system")
    ///     .build()?;
    /// assert_eq!(storage.system_namespaces(), ["storage-system"]);
    /// # Ok(()) }
    /// ```
    pub fn system_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.system_namespace = Some(namespace.into());
        self
    }

    /// CA certificate (PEM) of the controller's certificate, and the client certificate and key
    /// (PEM) for mutual TLS, as Piraeus configures them.
    pub fn tls(
        mut self,
        ca_pem: impl Into<Vec<u8>>,
        client_cert_pem: impl Into<Vec<u8>>,
        client_key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls = TlsConfig {
            ca_pem: Some(ca_pem.into()),
            client_cert_pem: Some(client_cert_pem.into()),
            client_key_pem: Some(client_key_pem.into()),
        };
        self
    }

    /// Only a CA (server authentication, no client certificate).
    pub fn ca(mut self, ca_pem: impl Into<Vec<u8>>) -> Self {
        self.tls.ca_pem = Some(ca_pem.into());
        self
    }

    /// Allows a plain `http://` controller URL (without it, `http://` is refused). Volume
    /// operations then travel unauthenticated and unencrypted; [`LinstorBuilder::build`] logs a
    /// warning (`tracing`, level WARN) when it builds such a backend.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let client = kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    /// let refused = kubecloud_linstor::Linstor::builder(client.clone(), "http://127.0.0.1:3370")
    ///     .tier("fast", "rg-fast")
    ///     .build();
    /// assert!(refused.is_err());
    /// let allowed = kubecloud_linstor::Linstor::builder(client, "http://127.0.0.1:3370")
    ///     .insecure_http()
    ///     .tier("fast", "rg-fast")
    ///     .build();
    /// assert!(allowed.is_ok());
    /// # }
    /// ```
    pub fn insecure_http(mut self) -> Self {
        self.insecure_http = true;
        self
    }

    /// Adds tier `name` backed by resource group `resource_group`. The first tier is the
    /// default unless [`LinstorBuilder::default_tier`] says otherwise.
    pub fn tier(mut self, name: impl Into<String>, resource_group: impl Into<String>) -> Self {
        self.tiers.push(Tier {
            name: name.into(),
            resource_group: resource_group.into(),
        });
        self
    }

    /// The tier of volumes without one.
    pub fn default_tier(mut self, name: impl Into<String>) -> Self {
        self.default_tier = Some(name.into());
        self
    }

    /// The most replicas a volume may ask for (default 7, DRBD allows more); requests above
    /// the nodes that can hold them are refused as exhausted.
    pub fn max_replicas(mut self, n: u8) -> Self {
        self.max_replicas = n;
        self
    }

    /// Timeout of each REST request (default 30 s) and of connecting (default 5 s).
    pub fn timeouts(mut self, request: Duration, connect: Duration) -> Self {
        self.timeout = request;
        self.connect_timeout = connect;
        self
    }

    /// Retries of temporary failures (REST and Kubernetes).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Uses this HTTP client for the REST API (its TLS and timeouts are the caller's).
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Whether volume snapshots are offered (default on). Turn off on a cluster without the
    /// volume snapshot CRDs (`snapshot.storage.k8s.io`): the capability then reads `false` and
    /// snapshots are refused before anything is sent.
    pub fn snapshots(mut self, offered: bool) -> Self {
        self.snapshots = offered;
        self
    }

    /// Whether volumes imported from http(s) URLs are offered (default on). Turn off on a
    /// cluster without CDI (`cdi.kubevirt.io`).
    pub fn http_import(mut self, offered: bool) -> Self {
        self.http_import = offered;
        self
    }

    /// How long [`kubecloud_core::BlockStorage::delete_volume`] waits, all told, until the
    /// DataVolume, the claim and its PersistentVolume (deleted by the CSI driver after the
    /// LINSTOR resource) are gone (default 5 minutes): one deadline for every wait of the
    /// deletion, not one each. The deadline of an operation the deletion is part of (a tenant's
    /// `destroy`) ends it earlier if it comes first.
    pub fn delete_timeout(mut self, timeout: Duration) -> Self {
        self.delete_timeout = timeout;
        self
    }

    /// Checks the options and builds the backend (nothing is sent).
    pub fn build(self) -> Result<Linstor> {
        let url = self.url.trim_end_matches('/').to_string();
        if url.starts_with("http://") {
            if !self.insecure_http {
                return Err(Error::invalid(
                    "linstor_url",
                    "plain http:// is refused unless insecure_http() is set; use https://",
                ));
            }
            tracing::warn!(
                %url,
                "LINSTOR over plain http:// (allowed explicitly): volume operations travel \
                 unauthenticated and unencrypted; prefer https:// with the client certificate \
                 Piraeus makes (spec.apiTLS)"
            );
        } else if !url.starts_with("https://") {
            return Err(Error::invalid(
                "linstor_url",
                format!("{url:?} is not an http(s) URL"),
            ));
        }
        if self.tiers.is_empty() {
            return Err(Error::invalid("tiers", "at least one tier is needed"));
        }
        for (i, t) in self.tiers.iter().enumerate() {
            validate_name(&format!("tiers[{i}].name"), &t.name)?;
            if t.resource_group.is_empty() {
                return Err(Error::invalid(
                    format!("tiers[{i}].resource_group"),
                    "empty",
                ));
            }
            if self.tiers[..i].iter().any(|o| o.name == t.name) {
                return Err(Error::invalid(format!("tiers[{i}].name"), "duplicate tier"));
            }
        }
        let default_tier = self
            .default_tier
            .unwrap_or_else(|| self.tiers[0].name.clone());
        if !self.tiers.iter().any(|t| t.name == default_tier) {
            return Err(Error::invalid(
                "default_tier",
                format!("{default_tier:?} is not a tier"),
            ));
        }
        if !(1..=MAX_REPLICAS).contains(&self.max_replicas) {
            return Err(Error::invalid(
                "max_replicas",
                format!("outside 1..={MAX_REPLICAS}"),
            ));
        }
        let http = match self.http {
            Some(h) => h,
            None => RestClient::http_client(&self.tls, self.timeout, self.connect_timeout)?,
        };
        let writer = Writer::new(BACKEND).with_retry(self.retry);
        Ok(Linstor {
            inner: Arc::new(Inner {
                store: ClaimStore::new(self.client.clone(), writer.clone(), self.delete_timeout),
                client: self.client,
                writer,
                rest: RestClient::new(http, url, self.retry),
                tiers: self.tiers,
                default_tier,
                max_replicas: self.max_replicas,
                snapshots: self.snapshots,
                http_import: self.http_import,
                system_namespace: self.system_namespace,
            }),
        })
    }
}

impl std::fmt::Debug for LinstorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinstorBuilder")
            .field("url", &self.url)
            .field("tls", &self.tls)
            .field("insecure_http", &self.insecure_http)
            .field("tiers", &self.tiers)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub client: kube::Client,
    pub writer: Writer,
    pub rest: RestClient,
    pub tiers: Vec<Tier>,
    pub default_tier: String,
    pub max_replicas: u8,
    pub snapshots: bool,
    pub http_import: bool,
    pub store: ClaimStore,
    pub system_namespace: Option<String>,
}

/// Block storage on LINSTOR/Piraeus. Cheap to clone. See the crate docs.
#[derive(Clone)]
pub struct Linstor {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Linstor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linstor")
            .field("tiers", &self.inner.tiers)
            .field("default_tier", &self.inner.default_tier)
            .finish()
    }
}

impl Linstor {
    /// Starts a builder for the controller at `linstor_url`, writing to Kubernetes through
    /// `client`.
    pub fn builder(client: kube::Client, linstor_url: impl Into<String>) -> LinstorBuilder {
        LinstorBuilder {
            client,
            url: linstor_url.into(),
            tls: TlsConfig::default(),
            insecure_http: false,
            tiers: Vec::new(),
            default_tier: None,
            max_replicas: MAX_REPLICAS,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            retry: RetryPolicy::default(),
            http: None,
            snapshots: true,
            http_import: true,
            delete_timeout: Duration::from_secs(300),
            system_namespace: None,
        }
    }

    /// The configured tiers.
    pub fn tiers(&self) -> &[Tier] {
        &self.inner.tiers
    }

    pub(crate) fn tier(&self, name: Option<&str>) -> Result<&Tier> {
        let name = name.unwrap_or(&self.inner.default_tier);
        self.inner
            .tiers
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self.inner.tiers.iter().map(|t| t.name.as_str()).collect();
                Error::invalid(
                    "tier",
                    format!("unknown tier {name:?}; known tiers: {}", known.join(", ")),
                )
            })
    }
}
