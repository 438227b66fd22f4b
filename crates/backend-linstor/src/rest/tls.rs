//! The TLS setup of the REST client: rustls with the `ring` provider, the CA that signs the
//! controller's certificate (Piraeus: the `linstor-api-tls`-style Secret's `ca.crt`) or the system
//! roots, and an optional client certificate for mutual TLS (`tls.crt`/`tls.key`).

use std::sync::Arc;

use kubecloud_core::{Error, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// PEM material for TLS. `Debug` never prints the key.
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// CA certificates (PEM) to trust instead of the system roots.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate chain (PEM).
    pub client_cert_pem: Option<Vec<u8>>,
    /// Client private key (PEM).
    pub client_key_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca", &self.ca_pem.is_some())
            .field("client_cert", &self.client_cert_pem.is_some())
            .field(
                "client_key",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn bad(field: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid(field, why.to_string())
}

/// Builds the rustls client configuration (verification always on).
pub fn client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &tls.ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad("tls.ca", format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(bad("tls.ca", "no certificate in the PEM"));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad("tls.ca", e))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("tls", e))?
        .with_root_certificates(roots);
    match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad("tls.client_cert", format!("not PEM certificates: {e}")))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| bad("tls.client_key", "not a PEM private key"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad("tls.client_key", e))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(bad(
            "tls.client_cert",
            "a client certificate and its key go together",
        )),
    }
}
