//! The client-certificate verifier of a mutual-TLS server: the chain, dates
//! and revocation (webpki for ordinary certificates, [`super::chain`] for the
//! X.509 v1 leaves and extension-less CRLs webpki refuses), then Istio's
//! `subjectAltNames`, `verifyCertificateSpki` and `verifyCertificateHash`
//! and the clientAuth rule of [`ExtraChecks::check`].
//!
//! It never accepts a certificate that neither path verified, and never
//! lets the second path loosen what the first checks.

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use super::chain::{Chain, is_legacy_version};
use super::signed::verify_handshake;
use crate::config::gateway::ServerTls;
use crate::crypto::sha256_hex;

/// Why [`ExtraChecks::check`] refuses a client certificate. Each maps to
/// its own rustls error, so the handshake metrics can tell a usage refusal
/// (`bad_eku`) from an allow-list one (`allow_list_mismatch`): see
/// `metrics::Outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("client certificate does not parse")]
    Unparsable,
    #[error("client certificate is not for clientAuth")]
    NotForClientAuth,
    #[error("client certificate's extended key usage does not parse")]
    UsageUnparsable,
    #[error("client certificate SAN is not in subjectAltNames")]
    SubjectAltName,
    #[error("client certificate key is not in verifyCertificateSpki")]
    Spki,
    #[error("client certificate is not in verifyCertificateHash")]
    Hash,
}

impl Refusal {
    /// The rustls error a handshake fails with. `ApplicationVerificationFailure`
    /// is used for the allow-lists and nothing else.
    pub fn error(self) -> CertificateError {
        match self {
            Refusal::Unparsable | Refusal::UsageUnparsable => CertificateError::BadEncoding,
            Refusal::NotForClientAuth => CertificateError::InvalidPurpose,
            Refusal::SubjectAltName | Refusal::Spki | Refusal::Hash => {
                CertificateError::ApplicationVerificationFailure
            }
        }
    }
}

/// The allow-lists of one server; a certificate must pass each non-empty one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ExtraChecks {
    pub subject_alt_names: Vec<String>,
    /// base64 SHA-256 of the SubjectPublicKeyInfo.
    pub spki_sha256: Vec<String>,
    /// lower-case hex SHA-256 of the certificate, no colons.
    pub cert_sha256: Vec<String>,
}

impl ExtraChecks {
    pub fn from_tls(tls: &ServerTls) -> ExtraChecks {
        ExtraChecks {
            subject_alt_names: tls.subject_alt_names.clone(),
            spki_sha256: tls.verify_certificate_spki.clone(),
            cert_sha256: tls
                .verify_certificate_hash
                .iter()
                .map(|h| {
                    h.chars()
                        .filter(|c| *c != ':')
                        .collect::<String>()
                        .to_ascii_lowercase()
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.subject_alt_names.is_empty()
            && self.spki_sha256.is_empty()
            && self.cert_sha256.is_empty()
    }

    /// Checks one end-entity certificate (DER) against the lists, and that it
    /// may be used by a client: an extended key usage, when there is one,
    /// must include clientAuth (or anyExtendedKeyUsage). A certificate with
    /// no EKU is for any purpose (RFC 5280 §4.2.1.12), as OpenSSL and
    /// BoringSSL (Envoy) treat it: `openssl x509 -req` without `-extfile`
    /// makes such client certificates, and Istio's own tasks use them.
    pub fn check(&self, der: &[u8]) -> Result<(), Refusal> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| Refusal::Unparsable)?;
        match cert.extended_key_usage() {
            Ok(Some(eku)) if eku.value.client_auth || eku.value.any => {}
            Ok(Some(_)) => return Err(Refusal::NotForClientAuth),
            Ok(None) => {}
            Err(_) => return Err(Refusal::UsageUnparsable),
        }
        if !self.subject_alt_names.is_empty() {
            let mut names = Vec::new();
            if let Ok(Some(san)) = cert.subject_alternative_name() {
                use x509_parser::extensions::GeneralName;
                for n in &san.value.general_names {
                    match n {
                        GeneralName::DNSName(s)
                        | GeneralName::URI(s)
                        | GeneralName::RFC822Name(s) => names.push((*s).to_owned()),
                        GeneralName::IPAddress(b) => {
                            if let Ok(a) = <[u8; 4]>::try_from(*b) {
                                names.push(std::net::IpAddr::from(a).to_string());
                            } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                                names.push(std::net::IpAddr::from(a).to_string());
                            }
                        }
                        _ => {}
                    }
                }
            }
            if !names.iter().any(|n| self.subject_alt_names.contains(n)) {
                return Err(Refusal::SubjectAltName);
            }
        }
        if !self.spki_sha256.is_empty() {
            let spki = cert.tbs_certificate.subject_pki.raw;
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki);
            let b64 = base64::engine::general_purpose::STANDARD.encode(digest.as_ref());
            if !self.spki_sha256.contains(&b64) {
                return Err(Refusal::Spki);
            }
        }
        if !self.cert_sha256.is_empty() && !self.cert_sha256.contains(&sha256_hex(der)) {
            return Err(Refusal::Hash);
        }
        Ok(())
    }
}

/// webpki's verifier or gatehouse's own [`Chain`], then [`ExtraChecks`].
#[derive(Debug)]
pub struct Checked {
    inner: Arc<dyn ClientCertVerifier>,
    own: Chain,
    /// Set when the bundle holds a CRL webpki cannot parse: `inner` then
    /// has no CRLs, and `own` checks every certificate's revocation.
    own_revocation: bool,
    checks: ExtraChecks,
}

impl Checked {
    pub fn new(
        inner: Arc<dyn ClientCertVerifier>,
        own: Chain,
        own_revocation: bool,
        checks: ExtraChecks,
    ) -> Checked {
        Checked {
            inner,
            own,
            own_revocation,
            checks,
        }
    }

    /// The chain, dates and revocation, by whichever path fits the leaf.
    fn verify_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), Error> {
        if is_legacy_version(end_entity.as_ref()) {
            return self
                .own
                .verify(end_entity.as_ref(), intermediates, now)
                .map_err(Error::InvalidCertificate);
        }
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.own_revocation {
            self.own
                .verify(end_entity.as_ref(), intermediates, now)
                .map_err(Error::InvalidCertificate)?;
        }
        Ok(())
    }
}

impl ClientCertVerifier for Checked {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.verify_chain(end_entity, intermediates, now)?;
        self.checks.check(end_entity.as_ref()).map_err(|why| {
            tracing::debug!(reason = %why, "client certificate refused");
            Error::InvalidCertificate(why.error())
        })?;
        Ok(ClientCertVerified::assertion())
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

/// A handshake signature by `cert`: a v1 leaf's through gatehouse's own
/// check (webpki will not parse it), any other's through `webpki`. Used
/// for client certificates here and for backend ones by `origination`.
pub(crate) fn handshake_signature(
    cert: &CertificateDer<'_>,
    message: &[u8],
    dss: &DigitallySignedStruct,
    tls13: bool,
    webpki: impl FnOnce() -> Result<HandshakeSignatureValid, Error>,
) -> Result<HandshakeSignatureValid, Error> {
    if is_legacy_version(cert.as_ref()) {
        legacy_signature(cert, message, dss, tls13)
    } else {
        webpki()
    }
}

/// A handshake signature by a v1 leaf, which webpki will not parse.
fn legacy_signature(
    cert: &CertificateDer<'_>,
    message: &[u8],
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, Error> {
    let (_, c) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if verify_handshake(
        c.public_key().raw,
        dss.scheme,
        message,
        dss.signature(),
        tls13,
    ) {
        Ok(HandshakeSignatureValid::assertion())
    } else {
        Err(Error::InvalidCertificate(CertificateError::BadSignature))
    }
}
