//! Every rustls type lives here: one `ServerConfig` per Gateway server, the
//! client-certificate verifiers for MUTUAL and OPTIONAL_MUTUAL, and the SNI
//! table that picks a server after the ClientHello.
//!
//! It never offers TLS below 1.2, never serves a default certificate, and
//! never lets a session resume across servers, across a change of the
//! server's client policy, or with a client certificate that the current
//! policy would refuse (`session.rs`).

mod chain;
pub mod client;
pub mod origination;
mod session;
pub(crate) mod signed;
pub mod sni;
mod verifier;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite};

use crate::config::gateway::{ServerTls, TlsMode, TlsVersion};
use crate::crypto::provider;
use crate::secret::credential::{ServerCredential, TrustBundle};

pub use session::{SessionState, policy_fingerprint};
pub use verifier::ExtraChecks;

/// Why a server's TLS settings could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("client CA: {0}")]
    ClientCa(String),
    #[error("{0}")]
    Config(String),
}

/// Always the one certificate this server holds.
#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesServerCert for OneCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn tls12_suite(name: &str) -> Option<SupportedCipherSuite> {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    Some(match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-AES256-GCM-SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "ECDHE-RSA-AES128-GCM-SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES256-GCM-SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-CHACHA20-POLY1305" => cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        _ => return None,
    })
}

fn versions(tls: &ServerTls) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let min = match tls.min_protocol_version {
        Some(TlsVersion::V1_3) => TlsVersion::V1_3,
        _ => TlsVersion::V1_2,
    };
    let max = match tls.max_protocol_version {
        Some(TlsVersion::V1_2) => TlsVersion::V1_2,
        _ => TlsVersion::V1_3,
    };
    let mut v = Vec::new();
    if min <= TlsVersion::V1_2 && max >= TlsVersion::V1_2 {
        v.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::V1_3 {
        v.push(&rustls::version::TLS13);
    }
    v
}

/// The crypto provider a server uses: the process's, narrowed to the
/// configured TLS 1.2 cipher suites when `cipherSuites` is set.
fn provider_for(tls: &ServerTls) -> Arc<CryptoProvider> {
    let base = provider();
    if tls.cipher_suites.is_empty() {
        return base;
    }
    let mut p = (*base).clone();
    let wanted: Vec<SupportedCipherSuite> = tls
        .cipher_suites
        .iter()
        .filter_map(|n| tls12_suite(n))
        .collect();
    p.cipher_suites
        .retain(|s| s.version() == &rustls::version::TLS13 || wanted.contains(s));
    Arc::new(p)
}

/// The client-certificate verifier of a MUTUAL or OPTIONAL_MUTUAL server:
/// webpki against the trust bundle (and its CRLs) for ordinary
/// certificates, gatehouse's own chain check for X.509 v1 leaves, then
/// [`ExtraChecks`]. Servers with the same trust, mode and checks can share one.
pub fn client_verifier(
    tls: &ServerTls,
    trust: &TrustBundle,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for r in &trust.roots {
        roots
            .add(r.clone())
            .map_err(|e| TlsError::ClientCa(e.to_string()))?;
    }
    let roots = Arc::new(roots);
    let provider = provider_for(tls);
    // webpki refuses v1 CRLs and CRLs without the CRL number or AKI
    // extensions, which much tooling emits; with one of those in the
    // bundle, webpki gets no CRLs and gatehouse's own check (which fails
    // closed the same way) does revocation for every certificate.
    let own_revocation = !webpki_reads_crls(&roots, &provider, &trust.crls);
    let mut vb =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider);
    if !trust.crls.is_empty() && !own_revocation {
        // A CRL is checked for the client's own certificate, and its
        // issuer's CRL must be present: unknown status fails closed.
        vb = vb
            .with_crls(trust.crls.iter().cloned())
            .only_check_end_entity_revocation();
    }
    if tls.effective_mode() == TlsMode::OptionalMutual {
        vb = vb.allow_unauthenticated();
    }
    let inner = vb.build().map_err(|e| TlsError::ClientCa(e.to_string()))?;
    let own = chain::Chain::new(trust.roots.clone(), trust.crls.clone());
    Ok(Arc::new(verifier::Checked::new(
        inner,
        own,
        own_revocation,
        ExtraChecks::from_tls(tls),
    )))
}

/// Whether webpki can parse every one of these CRLs (it is strict about
/// version and extensions, and says so only when a verifier is built).
fn webpki_reads_crls(
    roots: &Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
    crls: &[rustls::pki_types::CertificateRevocationListDer<'static>],
) -> bool {
    crls.iter().all(|crl| {
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .with_crls([crl.clone()])
            .build()
            .is_ok()
    })
}

/// Whether the handshake will check these CRLs with gatehouse's own check
/// (some CRL is one webpki cannot parse) rather than webpki's. `create`
/// uses it to refuse what that check cannot honour.
pub(crate) fn own_revocation(trust_roots: &[CertificateDer<'static>], crls: &[CrlDer]) -> bool {
    let mut roots = RootCertStore::empty();
    for r in trust_roots {
        if roots.add(r.clone()).is_err() {
            return false;
        }
    }
    !webpki_reads_crls(&Arc::new(roots), &provider(), crls)
}

type CrlDer = rustls::pki_types::CertificateRevocationListDer<'static>;

/// One Gateway server as its `ServerConfig` knows it: its identity (to
/// which its sessions are bound) and its TLS settings.
#[derive(Debug, Clone, Copy)]
pub struct ServerIdentity<'a> {
    pub id: &'a str,
    pub hosts: &'a [String],
}

/// Builds the `ServerConfig` for one Gateway server. `session` is its
/// policy's session state (see [`policy_fingerprint`]); its verifier is
/// required for the mutual modes (see [`client_verifier`]).
pub fn server_config(
    server: ServerIdentity<'_>,
    tls: &ServerTls,
    credential: &ServerCredential,
    session: &SessionState,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider_for(tls))
        .with_protocol_versions(&versions(tls))
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if tls.effective_mode().is_mutual() {
        let verifier = session.verifier.clone().ok_or_else(|| {
            TlsError::ClientCa("no client CA (cacert, ca.crt or <credentialName>-cacert)".into())
        })?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder.with_cert_resolver(Arc::new(OneCert(credential.certified.clone())));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let bound = session.bound(server.id, server.hosts);
    config.session_storage = bound.clone();
    config.ticketer = bound;
    config.send_tls13_tickets = 2;
    Ok(Arc::new(config))
}
