//! TLS towards a backend (a DestinationRule's `trafficPolicy.tls`, modes
//! SIMPLE and MUTUAL): the rustls `ClientConfig` one cluster's connections
//! are made with, from material the caller resolved (`secret::upstream`).
//!
//! Verification is on unless `insecureSkipVerify` says otherwise: the
//! backend's chain must lead to the given CAs (or the system's, read once
//! from the usual bundle files), and its certificate must carry one of
//! `subjectAltNames` when they are given, else be valid for the SNI name
//! (Envoy's `auto_san_validation`). It offers ALPN `h2` and `http/1.1`.
//!
//! X.509 v1 backend certificates (no extensions, so no SAN: what
//! `openssl x509 -req` without `-extfile` makes, as istio.io's "Egress
//! Gateways with TLS Origination" task does), which webpki refuses, take
//! gatehouse's own chain check ([`super::chain::Chain`], against the
//! rule's CAs and CRLs; never the system store, whose roots are only
//! known to webpki). Their name check: without `subjectAltNames`, the SNI
//! name must match the subject CN (RFC 6125's legacy fallback for a
//! certificate without SANs); with `subjectAltNames`, they fail, as in
//! Envoy, whose SAN matchers never read the CN.
//!
//! It must never: build a config that verifies less than it was asked to
//! (a missing CA is the caller's failure, never "trust anything"), or
//! show key material in a `Debug` or an error.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

use super::chain::{Chain, is_legacy_version};
use super::verifier::handshake_signature;
use crate::crypto::provider;

/// Whom the backend's certificate must chain to.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    /// The DestinationRule's own CAs; `None`: the system trust store
    /// (`SSL_CERT_FILE`, else the distribution's bundle file).
    pub cas: Option<Vec<CertificateDer<'static>>>,
    /// CRLs the backend's own certificate is checked against.
    pub crls: Vec<CertificateRevocationListDer<'static>>,
}

/// What one cluster's TLS is made of.
#[derive(Clone)]
pub struct Material {
    pub roots: Roots,
    /// The client certificate (MUTUAL).
    pub client: Option<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Material")
            .field("roots", &self.roots)
            .field("client", &self.client.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// How the backend's certificate is checked.
#[derive(Debug, Clone, Default)]
pub struct Verify {
    /// `subjectAltNames`: the certificate must carry one of them.
    pub subject_alt_names: Vec<String>,
    /// `insecureSkipVerify`: no chain or name check at all.
    pub skip: bool,
}

/// The ALPN protocols offered to backends, most preferred first.
pub const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The client config for one cluster.
pub fn client_config(m: &Material, v: &Verify) -> Result<Arc<ClientConfig>, String> {
    let verifier: Arc<dyn ServerCertVerifier> = if v.skip {
        Arc::new(Unverified)
    } else {
        let store = match &m.roots.cas {
            None => system_roots()?,
            Some(cas) => {
                let mut store = RootCertStore::empty();
                for r in cas {
                    store
                        .add(r.clone())
                        .map_err(|e| format!("CA is not a usable trust anchor: {e}"))?;
                }
                Arc::new(store)
            }
        };
        let mut b = WebPkiServerVerifier::builder_with_provider(store, provider());
        if !m.roots.crls.is_empty() {
            b = b
                .with_crls(m.roots.crls.clone())
                .only_check_end_entity_revocation();
        }
        let inner = b.build().map_err(|e| e.to_string())?;
        let legacy = m
            .roots
            .cas
            .as_ref()
            .map(|cas| Chain::new(cas.clone(), m.roots.crls.clone()));
        Arc::new(Checked {
            inner,
            legacy,
            subject_alt_names: v.subject_alt_names.clone(),
        })
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &m.client {
        Some(key) => builder.with_client_cert_resolver(Arc::new(ClientCert(key.clone()))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The system's CA bundle, read once per process: `SSL_CERT_FILE`, else
/// the first of the usual bundle files that exists.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let env = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
            let files = env.into_iter().chain(
                [
                    "/etc/ssl/certs/ca-certificates.crt",
                    "/etc/pki/tls/certs/ca-bundle.crt",
                    "/etc/ssl/cert.pem",
                ]
                .map(std::path::PathBuf::from),
            );
            for f in files {
                let Ok(pem) = std::fs::read(&f) else {
                    continue;
                };
                let certs = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
                let mut store = RootCertStore::empty();
                let (added, _) = store.add_parsable_certificates(certs);
                if added > 0 {
                    return Ok(Arc::new(store));
                }
            }
            Err("no system CA bundle found (set caCertificates or credentialName)".to_owned())
        })
        .clone()
}

/// Whether the certificate carries one of `wanted` (DNS names compared
/// without case, a `*.` name in the certificate covering one label; URI
/// and IP SANs compared exactly).
pub fn carries_one_of(cert: &CertificateDer<'_>, wanted: &[String]) -> bool {
    use x509_parser::extensions::GeneralName;
    let Ok((_, x)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    let Ok(Some(san)) = x.subject_alternative_name() else {
        return false;
    };
    san.value.general_names.iter().any(|g| match g {
        GeneralName::DNSName(d) => wanted.iter().any(|w| dns_matches(d, w)),
        GeneralName::URI(u) => wanted.iter().any(|w| w == u),
        GeneralName::IPAddress(b) => {
            let ip: Option<std::net::IpAddr> = match b.len() {
                4 => <[u8; 4]>::try_from(*b).ok().map(Into::into),
                16 => <[u8; 16]>::try_from(*b).ok().map(Into::into),
                _ => None,
            };
            ip.is_some_and(|ip| wanted.iter().any(|w| w.parse() == Ok(ip)))
        }
        _ => false,
    })
}

fn dns_matches(cert_name: &str, wanted: &str) -> bool {
    if cert_name.eq_ignore_ascii_case(wanted) {
        return true;
    }
    match (cert_name.strip_prefix("*."), wanted.split_once('.')) {
        (Some(suffix), Some((label, rest))) => {
            !label.is_empty() && label != "*" && suffix.eq_ignore_ascii_case(rest)
        }
        _ => false,
    }
}

/// The subject CN of a certificate without a subjectAltName extension
/// (RFC 6125 §6.4.4: the CN is a host name only when there are no SANs).
fn legacy_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, x) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    if !matches!(x.subject_alternative_name(), Ok(None)) {
        return None;
    }
    let mut cns = x.subject().iter_common_name();
    let cn = cns.next()?.as_str().ok()?.to_owned();
    // More than one CN: which one names the host is ambiguous.
    cns.next().is_none().then_some(cn)
}

/// webpki's chain check (gatehouse's own for a v1 leaf), then the name
/// check: `subjectAltNames` when given (the SNI name is then not
/// required), else the SNI name.
#[derive(Debug)]
struct Checked {
    inner: Arc<WebPkiServerVerifier>,
    /// The rule's own CAs and CRLs, for v1 leaves; `None` with the system
    /// store (v1 leaves are then refused).
    legacy: Option<Chain>,
    subject_alt_names: Vec<String>,
}

impl Checked {
    /// A v1 leaf: the chain by [`Chain`], then the name (see the module).
    fn verify_legacy(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(chain) = &self.legacy else {
            return Err(Error::General(
                "the backend certificate is X.509 v1: set caCertificates or credentialName to trust it"
                    .to_owned(),
            ));
        };
        chain
            .verify(end_entity.as_ref(), intermediates, now)
            .map_err(Error::InvalidCertificate)?;
        if !self.subject_alt_names.is_empty() {
            return Err(Error::General(format!(
                "the backend certificate (X.509 v1, no SANs) carries none of subjectAltNames [{}]",
                self.subject_alt_names.join(", ")
            )));
        }
        let sni = match server_name {
            ServerName::DnsName(d) => d.as_ref(),
            _ => "",
        };
        match legacy_common_name(end_entity) {
            Some(cn) if !sni.is_empty() && dns_matches(&cn, sni) => {
                Ok(ServerCertVerified::assertion())
            }
            _ => Err(Error::InvalidCertificate(CertificateError::NotValidForName)),
        }
    }
}

impl ServerCertVerifier for Checked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if is_legacy_version(end_entity.as_ref()) {
            return self.verify_legacy(end_entity, intermediates, server_name, now);
        }
        let chain =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        if self.subject_alt_names.is_empty() {
            return chain;
        }
        // webpki checks the chain before the name: a name error means the
        // chain is trusted.
        match chain {
            Ok(_)
            | Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => {}
            Err(e) => return Err(e),
        }
        if carries_one_of(end_entity, &self.subject_alt_names) {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(Error::General(format!(
                "the backend certificate carries none of subjectAltNames [{}]",
                self.subject_alt_names.join(", ")
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        handshake_signature(cert, message, dss, false, || {
            self.inner.verify_tls12_signature(message, cert, dss)
        })
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        handshake_signature(cert, message, dss, true, || {
            self.inner.verify_tls13_signature(message, cert, dss)
        })
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecureSkipVerify`: any certificate; the handshake's signatures are
/// still checked (the peer holds the key of what it sent).
#[derive(Debug)]
struct Unverified;

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algs = &provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        let algs = &provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The one client certificate of a cluster, offered whatever the server
/// asks for (as Envoy does).
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_match_exactly_or_by_one_wildcard_label() {
        assert!(dns_matches("api.example.com", "API.example.com"));
        assert!(dns_matches("*.example.com", "api.example.com"));
        assert!(!dns_matches("*.example.com", "a.b.example.com"));
        assert!(!dns_matches("*.example.com", "example.com"));
        assert!(!dns_matches("api.example.com", "web.example.com"));
    }

    #[test]
    fn subject_alt_names_are_read_from_the_certificate() {
        use crate::pki::{LeafSpec, self_signed};
        let spec = LeafSpec::server("backend.example.com")
            .uri("spiffe://cluster.local/ns/default/sa/backend")
            .ip([10, 0, 0, 7].into());
        let cert = self_signed(&spec).unwrap().cert_der().unwrap();
        let has = |w: &str| carries_one_of(&cert, &[w.to_owned()]);
        assert!(has("backend.example.com"));
        assert!(has("spiffe://cluster.local/ns/default/sa/backend"));
        assert!(has("10.0.0.7"));
        assert!(!has("other.example.com"));
        assert!(!carries_one_of(&cert, &[]));
        // With SANs, the CN never names the host.
        assert_eq!(legacy_common_name(&cert), None);
    }
}
