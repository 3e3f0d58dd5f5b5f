//! A mutual-TLS client config, for the demo's own requests and the load
//! generator: trust a CA bundle, present a client certificate.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use crate::secret::credential::{self, CredentialError};

/// Builds a client config from PEM: CA bundle to trust, and optionally a
/// client certificate chain with its key.
pub fn mtls_config(
    ca_pem: &[u8],
    client: Option<(&[u8], &[u8])>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, CredentialError> {
    let mut roots = RootCertStore::empty();
    for c in credential::parse_certs("ca", ca_pem)? {
        roots.add(c).map_err(|e| CredentialError {
            field: "ca".into(),
            reason: e.to_string(),
        })?;
    }
    let builder = ClientConfig::builder_with_provider(crate::crypto::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| CredentialError {
            field: "tls".into(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let chain = credential::parse_certs("cert", cert)?;
            let key = credential::parse_key("key", key)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| CredentialError {
                    field: "key".into(),
                    reason: e.to_string(),
                })?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}
