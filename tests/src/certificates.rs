//! Test certificates made with `rcgen`, written as PEM files: a CA, and certificates it
//! issues for `127.0.0.1` (a TLS server's or a peer's address, or a client's name).

use std::path::Path;

/// A certificate authority that issues certificates into a directory.
pub struct Ca {
    certificate: rcgen::Certificate,
    key: rcgen::KeyPair,
    /// Its certificate's PEM file.
    pub cert_file: String,
}

/// A certificate and its private key, as PEM files.
pub struct Issued {
    /// The certificate chain's file (the leaf alone).
    pub cert_file: String,
    /// The private key's file.
    pub key_file: String,
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write a PEM file");
    path.display().to_string()
}

/// A distinguished name of one common name. OpenSSL takes a certificate whose subject is its
/// issuer's for self-signed, so a CA and what it issues must not share rcgen's default name.
fn common_name(name: &str) -> rcgen::DistinguishedName {
    let mut distinguished = rcgen::DistinguishedName::new();
    distinguished.push(rcgen::DnType::CommonName, name);
    distinguished
}

impl Ca {
    /// A new CA whose certificate is written to `DIR/NAME.pem`.
    #[must_use]
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name = common_name(&format!("verity test CA {name}"));
        let key = rcgen::KeyPair::generate().expect("CA key");
        let certificate = params.self_signed(&key).expect("CA certificate");
        let cert_file = write(dir, &format!("{name}.pem"), &certificate.pem());
        Ca {
            certificate,
            key,
            cert_file,
        }
    }

    /// A certificate for `127.0.0.1` issued by this CA, written to `DIR/NAME.pem` with its
    /// key in `DIR/NAME.key`.
    #[must_use]
    pub fn issue(&self, dir: &Path, name: &str) -> Issued {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("leaf params");
        params.distinguished_name = common_name(name);
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("leaf certificate");
        Issued {
            cert_file: write(dir, &format!("{name}.pem"), &certificate.pem()),
            key_file: write(dir, &format!("{name}.key"), &key.serialize_pem()),
        }
    }
}
