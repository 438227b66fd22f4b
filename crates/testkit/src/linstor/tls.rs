//! HTTPS for the LINSTOR double, as Piraeus configures the controller: a server certificate
//! signed by a CA, and optionally a client certificate required, signed by the same CA.
//! Certificates are made at test time ([`TestPki::generate`], with `rcgen`); TLS is rustls on
//! the `ring` provider.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why certificates could not be made or used.
#[derive(Debug, thiserror::Error)]
#[error("test TLS setup: {0}")]
pub struct TlsSetupError(String);

fn err(e: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError(e.to_string())
}

/// A certificate and its private key, PEM.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem.len())
            .finish_non_exhaustive()
    }
}

/// A test CA with a server certificate for `127.0.0.1`/`localhost` and a client certificate,
/// both signed by it.
///
/// ```
/// let pki = kubecloud_testkit::linstor::TestPki::generate().unwrap();
/// assert!(pki.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
/// assert!(pki.client.key_pem.contains("PRIVATE KEY"));
/// ```
#[derive(Clone, Debug)]
pub struct TestPki {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The server's certificate and key.
    pub server: CertifiedKey,
    /// A client certificate and key signed by the CA.
    pub client: CertifiedKey,
}

impl TestPki {
    /// Makes a fresh CA, server and client certificate (ECDSA P-256).
    pub fn generate() -> Result<Self, TlsSetupError> {
        let ca_key = KeyPair::generate().map_err(err)?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "kubecloud test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key).map_err(err)?;
        let issuer = Issuer::new(ca, ca_key);

        let server_key = KeyPair::generate().map_err(err)?;
        let mut server = CertificateParams::new(vec!["localhost".to_string()]).map_err(err)?;
        server
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        server
            .distinguished_name
            .push(DnType::CommonName, "linstor-controller");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_cert = server.signed_by(&server_key, &issuer).map_err(err)?;

        let client_key = KeyPair::generate().map_err(err)?;
        let mut client = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        client
            .distinguished_name
            .push(DnType::CommonName, "linstor-client");
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = client.signed_by(&client_key, &issuer).map_err(err)?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            server: CertifiedKey {
                cert_pem: server_cert.pem(),
                key_pem: server_key.serialize_pem(),
            },
            client: CertifiedKey {
                cert_pem: client_cert.pem(),
                key_pem: client_key.serialize_pem(),
            },
        })
    }

    /// The double's TLS settings: this PKI's server certificate, client certificates signed by
    /// its CA required.
    pub fn server_tls(&self) -> ServerTls {
        ServerTls::new(self.server.clone()).require_client_cert(self.ca_pem.clone())
    }
}

/// How the double serves HTTPS: its certificate and, when set, the CA client certificates must
/// be signed by (a client without one is refused in the handshake).
#[derive(Clone, Debug)]
#[must_use]
pub struct ServerTls {
    server: CertifiedKey,
    client_ca_pem: Option<String>,
}

impl ServerTls {
    /// HTTPS with `server`'s certificate, no client certificate asked.
    pub fn new(server: CertifiedKey) -> Self {
        Self {
            server,
            client_ca_pem: None,
        }
    }

    /// Requires a client certificate signed by `ca_pem`.
    pub fn require_client_cert(mut self, ca_pem: impl Into<String>) -> Self {
        self.client_ca_pem = Some(ca_pem.into());
        self
    }

    /// The rustls server configuration (ring provider).
    pub(crate) fn config(&self) -> Result<rustls::ServerConfig, TlsSetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let chain = certs(&self.server.cert_pem)?;
        let key = PrivateKeyDer::from_pem_slice(self.server.key_pem.as_bytes()).map_err(err)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(err)?;
        let builder = match &self.client_ca_pem {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certs(ca)? {
                    roots.add(c).map_err(err)?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .map_err(err)?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        builder.with_single_cert(chain, key).map_err(err)
    }
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)
}
