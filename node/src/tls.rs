//! TLS for the client port: the server's certificate chain and key, read from PEM files.

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor presenting the certificate chain in `cert_file` (PEM, leaf first) with the
/// private key in `key_file` (PEM: PKCS#8, PKCS#1 or SEC1). TLS 1.2 and 1.3, no client
/// certificates. The error names the file that is missing or wrong.
pub fn acceptor(cert_file: &Path, key_file: &Path) -> anyhow::Result<TlsAcceptor> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .with_context(|| format!("cannot read --tls-cert-file {}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("--tls-cert-file {} is not PEM", cert_file.display()))?;
    anyhow::ensure!(
        !certificates.is_empty(),
        "--tls-cert-file {} holds no certificate",
        cert_file.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| {
        format!(
            "cannot read a private key from --tls-key-file {}",
            key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .with_context(|| {
            format!(
                "the key in {} does not fit the certificate in {}",
                key_file.display(),
                cert_file.display()
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
