//! TLS from PEM files: the client port's server side, and mutual TLS between peers.

use crate::settings::TlsClients;
use anyhow::Context;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use verity_net::PeerTls;

/// The TLS client port's acceptor: it presents the chain in `tls.cert_file` (PEM, leaf first)
/// with the private key in `tls.key_file` (PEM: PKCS#8, PKCS#1 or SEC1), speaks TLS 1.2 and
/// 1.3, and with `tls.ca_file` accepts only clients whose certificate chain leads to one of
/// its certificates (without it, clients present none). The error names the file that is
/// missing or wrong.
pub fn acceptor(tls: &TlsClients) -> anyhow::Result<TlsAcceptor> {
    let certificates = read_certificates(&tls.cert_file, "--tls-cert-file")?;
    let key = read_key(&tls.key_file, "--tls-key-file")?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &tls.ca_file {
        Some(ca_file) => {
            let roots = read_roots(ca_file, "--tls-ca-cert-file")?;
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .context("cannot build the client certificate verifier")?,
            )
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certificates, key)
        .with_context(|| {
            format!(
                "the key in {} does not fit the certificate in {}",
                tls.key_file.display(),
                tls.cert_file.display()
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Mutual TLS between peers: every node presents the chain in `cert_file` (issued for the IP
/// address of its peer port) with `key_file`, and accepts only peers whose chain leads to a
/// certificate in `ca_file`. The error names the file that is missing or wrong.
pub fn peer_tls(cert_file: &Path, key_file: &Path, ca_file: &Path) -> anyhow::Result<PeerTls> {
    let certificates = read_certificates(cert_file, "--peer-tls-cert-file")?;
    let key = read_key(key_file, "--peer-tls-key-file")?;
    let roots = read_roots(ca_file, "--peer-tls-ca-file")?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider())
        .build()
        .context("cannot build the peer certificate verifier")?;
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certificates.clone(), key.clone_key())
        .context("the peer TLS key does not fit its certificate")?;
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_client_auth_cert(certificates, key)
        .context("the peer TLS key does not fit its certificate")?;
    Ok(PeerTls {
        acceptor: TlsAcceptor::from(Arc::new(server)),
        connector: TlsConnector::from(Arc::new(client)),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certificates(file: &Path, flag: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
        .with_context(|| format!("cannot read {flag} {}", file.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{flag} {} is not PEM", file.display()))?;
    anyhow::ensure!(
        !certificates.is_empty(),
        "{flag} {} holds no certificate",
        file.display()
    );
    Ok(certificates)
}

/// The CA certificates in `file`, to check a chain against.
fn read_roots(file: &Path, flag: &str) -> anyhow::Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for certificate in read_certificates(file, flag)? {
        roots
            .add(certificate)
            .with_context(|| format!("{flag} {} holds an unusable certificate", file.display()))?;
    }
    Ok(Arc::new(roots))
}

fn read_key(file: &Path, flag: &str) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(file)
        .with_context(|| format!("cannot read a private key from {flag} {}", file.display()))
}
