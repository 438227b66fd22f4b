//! The LINSTOR controller's REST API (`/v1/...`): a small client over `reqwest` with rustls,
//! timeouts, and retries (with backoff) of temporary failures of idempotent requests.

mod errors;
pub mod model;
mod tls;

use std::time::Duration;

use kubecloud_core::{ResourceKind, Result};
use kubecloud_kube::RetryPolicy;
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use errors::{
    ApiCallRc, LinstorError, Subject, codes, first_error, from_answer, from_transport,
};
pub use tls::{TlsConfig, client_config};

/// The backend's name in errors.
pub const BACKEND: &str = "linstor";

/// A client of one LINSTOR controller. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    retry: RetryPolicy,
}

impl RestClient {
    /// A client of the controller at `base` (no trailing slash) using `http`.
    pub fn new(http: reqwest::Client, base: impl Into<String>, retry: RetryPolicy) -> Self {
        Self {
            http,
            base: base.into().trim_end_matches('/').to_string(),
            retry,
        }
    }

    /// Builds the HTTP client: TLS verification on (CA/client certificate from `tls`), the given
    /// timeouts.
    pub fn http_client(
        tls: &TlsConfig,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<reqwest::Client> {
        let config = client_config(tls)?;
        reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .timeout(timeout)
            .connect_timeout(connect_timeout)
            .build()
            .map_err(|e| {
                kubecloud_core::Error::backend(BACKEND, "building the HTTP client", false, e)
            })
    }

    async fn once<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        subject: &Subject,
    ) -> Result<(u16, bytes_body::Body)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| from_transport(e, subject))?;
        let status = resp.status().as_u16();
        let text = resp.bytes().await.map_err(|e| from_transport(e, subject))?;
        Ok((status, bytes_body::Body(text.to_vec())))
    }

    fn failure(status: u16, body: &[u8], subject: &Subject) -> kubecloud_core::Error {
        let entries: Vec<ApiCallRc> = serde_json::from_slice(body)
            .or_else(|_| serde_json::from_slice::<ApiCallRc>(body).map(|e| vec![e]))
            .unwrap_or_default();
        from_answer(status, entries, subject)
    }

    /// `GET path`, decoded; retried on temporary failures.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, subject: &Subject) -> Result<T> {
        self.retry
            .run("linstor get", || async {
                let (status, body) = self.once::<()>(Method::GET, path, None, subject).await?;
                if status >= 300 {
                    return Err(Self::failure(status, &body.0, subject));
                }
                serde_json::from_slice(&body.0).map_err(|e| {
                    kubecloud_core::Error::backend(
                        BACKEND,
                        format!("unreadable answer to GET {path}"),
                        false,
                        e,
                    )
                })
            })
            .await
    }

    /// A write (`POST`/`PUT`/`DELETE`) answered by an `ApiCallRc` list. `already_done` lists
    /// error codes meaning the effect is already there (so a retry after a lost answer
    /// succeeds); only then are temporary failures retried, as the request is idempotent.
    pub async fn write<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        subject: &Subject,
        already_done: &[u64],
    ) -> Result<Vec<ApiCallRc>> {
        let attempt = || async {
            let (status, raw) = self.once(method.clone(), path, body, subject).await?;
            let entries: Vec<ApiCallRc> = serde_json::from_slice(&raw.0).unwrap_or_default();
            match first_error(&entries) {
                None if status < 300 => Ok(entries),
                Some(e) if already_done.contains(&e.code()) => Ok(entries),
                _ => Err(Self::failure(status, &raw.0, subject)),
            }
        };
        if already_done.is_empty() {
            attempt().await
        } else {
            self.retry.run("linstor write", attempt).await
        }
    }

    /// The subject for errors about the LINSTOR cluster itself.
    pub fn cluster_subject() -> Subject {
        Subject::new(ResourceKind::StoragePool, "linstor")
    }
}

mod bytes_body {
    /// A raw answer body.
    pub struct Body(pub Vec<u8>);
}
