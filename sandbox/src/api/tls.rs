//! The serving certificate. kubectl sends a kubeconfig's credentials only
//! over HTTPS, so the socket speaks TLS (and, for clients that connect
//! without it, plain HTTP on the same port). The CA and the certificate
//! for `127.0.0.1`, `::1`, `localhost` and `kubernetes.default.svc` are
//! fixed test material shipped with the sandbox, not secrets: anyone can
//! read the key, as anyone can reach a loopback port.

use std::sync::Arc;

use base64::Engine;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};

const CA_PEM: &str = include_str!("tls/ca.crt");
const CERT_PEM: &str = include_str!("tls/server.crt");
const KEY_PEM: &str = include_str!("tls/server.key");

/// The CA a client verifies the server with, as PEM.
pub fn ca_pem() -> &'static str {
    CA_PEM
}

/// The DER inside one PEM block.
fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("the shipped PEM is valid base64")
}

/// A TLS acceptor with the serving certificate, offering HTTP/2 and 1.1.
pub fn acceptor() -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der(KEY_PEM)));
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the default protocol versions are supported")
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(der(CERT_PEM))], key)
        .expect("the shipped certificate and key match");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_shipped_certificate_and_key_load() {
        let _ = super::acceptor();
        assert!(super::ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
