//! TLS material: the self-signed certificate kubeguard (and the emulator) generate when none is
//! given, and rustls server configs with ALPN h2 + http/1.1.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{what}: no PEM {expected} found")]
    NoPem {
        what: String,
        expected: &'static str,
    },
    #[error("{what}: {source}")]
    Pem {
        what: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("invalid client CA bundle: {0}")]
    ClientCa(String),
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct CertPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A self-signed serving certificate valid for `names` (DNS names or IP addresses); `localhost`,
/// `127.0.0.1` and `::1` are always included.
pub fn self_signed(names: &[String]) -> Result<CertPair, TlsError> {
    let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        if !sans.contains(n) {
            sans.push(n.clone());
        }
    }
    let mut params = rcgen::CertificateParams::new(sans)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kubeguard self-signed");
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(CertPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Parses a PEM certificate chain; `what` names the source in errors (a file path or flag).
pub fn certs_from_pem(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: what.into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoPem {
            what: what.into(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

/// Parses a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPem {
            what: what.into(),
            expected: "PRIVATE KEY",
        },
        source => TlsError::Pem {
            what: what.into(),
            source,
        },
    })
}

/// The process-wide crypto provider (ring), installed once.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server config offering h2 and http/1.1 by ALPN. With `client_ca`, clients may
/// present a certificate signed by it (verified, optional: bearer-token clients have none).
pub fn server_config(
    pair: &CertPair,
    client_ca: Option<&[u8]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let certs = certs_from_pem(pair.cert_pem.as_bytes(), "serving certificate")?;
    let key = key_from_pem(pair.key_pem.as_bytes(), "serving key")?;
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs_from_pem(pem, "client CA")? {
                roots.add(c)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_pair_makes_a_server_config() {
        let pair = self_signed(&["kubeguard.example".into()]).unwrap();
        assert!(pair.cert_pem.contains("BEGIN CERTIFICATE"));
        let cfg = server_config(&pair, None).unwrap();
        assert_eq!(cfg.alpn_protocols[0], b"h2");
    }

    #[test]
    fn garbage_pem_names_its_source() {
        let err = certs_from_pem(b"not a pem", "--tls-cert /tmp/x").unwrap_err();
        assert!(err.to_string().contains("--tls-cert /tmp/x"), "{err}");
    }
}
