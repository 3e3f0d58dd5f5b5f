//! The certificate builder: certificate authorities ([`Ca`]) that issue
//! leaves described by a [`LeafSpec`], in memory. `init` uses it to make
//! the walkthrough tree; tests use it to make the certificates a TLS test
//! suite needs, including wrong ones (expired, not yet valid, wrong usage,
//! wrong name, self-signed, from another CA, a chain too long for its
//! pathlen).
//!
//! It must never refuse a strange certificate on purpose (that is what tests
//! ask it for) and never expose a private key through `Debug`.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, GeneralSubtree, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    NameConstraints, PublicKeyData, SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use x509_parser::extensions::ParsedExtension;

use super::error::PkiError;
use super::key::KeyType;
use super::leaf::{Issued, LeafSpec};
use super::x509::{
    expired_window, parse_chain, parse_der, pem_encode, random_serial, serial_hex, subject,
    validity,
};

/// Validity of a root made by [`CaSpec::root`].
pub const DEFAULT_ROOT_DAYS: u32 = 7300;
/// Validity of an intermediate made by [`CaSpec::intermediate`].
pub const DEFAULT_INTERMEDIATE_DAYS: u32 = 3650;

/// Organization written into CA subjects, so a reader of `openssl x509
/// -text` can tell where a test CA came from.
const CA_ORGANIZATION: &str = "gatehouse pki";

/// What a certificate authority's own certificate looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaSpec {
    pub cn: String,
    pub key_type: KeyType,
    /// `None`: no path length constraint; `Some(0)`: may only sign leaves.
    pub path_len: Option<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// DNS name constraints (permitted subtrees); empty means none.
    pub permitted_dns: Vec<String>,
}

impl CaSpec {
    /// A root: unconstrained path length, valid [`DEFAULT_ROOT_DAYS`].
    pub fn root(cn: impl Into<String>) -> Self {
        let (not_before, not_after) = validity(DEFAULT_ROOT_DAYS);
        CaSpec {
            cn: cn.into(),
            key_type: KeyType::default(),
            path_len: None,
            not_before,
            not_after,
            permitted_dns: Vec::new(),
        }
    }

    /// An intermediate: pathlen 0, valid [`DEFAULT_INTERMEDIATE_DAYS`].
    pub fn intermediate(cn: impl Into<String>) -> Self {
        let (not_before, not_after) = validity(DEFAULT_INTERMEDIATE_DAYS);
        CaSpec {
            path_len: Some(0),
            not_before,
            not_after,
            ..CaSpec::root(cn)
        }
    }

    pub fn key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    pub fn path_len(mut self, path_len: Option<u8>) -> Self {
        self.path_len = path_len;
        self
    }

    /// Valid from an hour ago until `days` from now.
    pub fn valid_days(mut self, days: u32) -> Self {
        (self.not_before, self.not_after) = validity(days);
        self
    }

    /// Valid for a day that ended an hour ago.
    pub fn expired(mut self) -> Self {
        (self.not_before, self.not_after) = expired_window();
        self
    }

    pub fn permit_dns(mut self, name: impl Into<String>) -> Self {
        self.permitted_dns.push(name.into());
        self
    }
}

/// A certificate authority: its certificate, its signing key and the chain
/// of CAs above it.
pub struct Ca {
    cn: String,
    key_type: KeyType,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    serial_hex: String,
    /// Subject key identifier, used as the authority key identifier of CRLs.
    key_id: Option<Vec<u8>>,
    /// PEM of the CAs above this one, nearest first.
    parents: Vec<String>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("cn", &self.cn)
            .field("key_type", &self.key_type)
            .field("serial_hex", &self.serial_hex)
            .field("parents", &self.parents.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

impl Ca {
    /// A self-signed root CA with a default [`CaSpec::root`].
    pub fn new_root(cn: &str, key_type: KeyType) -> Result<Ca, PkiError> {
        Ca::root_from_spec(&CaSpec::root(cn).key_type(key_type))
    }

    pub fn root_from_spec(spec: &CaSpec) -> Result<Ca, PkiError> {
        let key = spec.key_type.generate()?;
        let params = ca_params(spec)?;
        let cert = params
            .self_signed(&key)
            .map_err(|source| generate_error(spec, source))?;
        Ca::assemble(spec, cert, params, key, Vec::new())
    }

    /// An intermediate CA signed by this one, of the same key type, with a
    /// default [`CaSpec::intermediate`] (pathlen 0).
    pub fn intermediate(&self, cn: &str) -> Result<Ca, PkiError> {
        self.intermediate_from_spec(&CaSpec::intermediate(cn).key_type(self.key_type))
    }

    pub fn intermediate_from_spec(&self, spec: &CaSpec) -> Result<Ca, PkiError> {
        let key = spec.key_type.generate()?;
        let params = ca_params(spec)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| generate_error(spec, source))?;
        let mut parents = vec![self.cert_pem.clone()];
        parents.extend(self.parents.iter().cloned());
        Ca::assemble(spec, cert, params, key, parents)
    }

    fn assemble(
        spec: &CaSpec,
        cert: rcgen::Certificate,
        params: CertificateParams,
        key: KeyPair,
        parents: Vec<String>,
    ) -> Result<Ca, PkiError> {
        let key_id = Some(params.key_identifier(&key));
        let serial = params
            .serial_number
            .as_ref()
            .map(|s| serial_hex(s.as_ref()))
            .unwrap_or_default();
        Ok(Ca {
            cn: spec.cn.clone(),
            key_type: spec.key_type,
            cert_pem: pem_encode("CERTIFICATE", cert.der()),
            cert_der: cert.der().clone(),
            serial_hex: serial,
            key_id,
            parents,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from PEM: its certificate, its PKCS#8 key and the PEM of
    /// the CAs above it (nearest first; may be empty). The key must match
    /// the certificate. The certificate is not required to be a CA, so a
    /// test can make a leaf "sign" another certificate.
    pub fn from_pem(cert_pem: &str, key_pem: &str, parents_pem: &str) -> Result<Ca, PkiError> {
        Ca::load(
            cert_pem,
            "CA certificate",
            key_pem,
            "CA key",
            parents_pem,
            "CA parents",
        )
    }

    /// [`Ca::from_pem`] with the origin (usually the path) of each input,
    /// so errors name the file.
    pub(crate) fn load(
        cert_pem: &str,
        cert_origin: &str,
        key_pem: &str,
        key_origin: &str,
        parents_pem: &str,
        parents_origin: &str,
    ) -> Result<Ca, PkiError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| {
            PkiError::Certificate {
                origin: cert_origin.to_string(),
                reason: e.to_string(),
            }
        })?;
        let parsed = parse_der(&cert_der, cert_origin)?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| PkiError::PrivateKey {
            origin: key_origin.to_string(),
            reason: e.to_string(),
        })?;
        let key_type = KeyType::of(&key).ok_or_else(|| PkiError::PrivateKey {
            origin: key_origin.to_string(),
            reason: "not an ECDSA P-256 or RSA key".to_string(),
        })?;
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(PkiError::KeyMismatch {
                cert: cert_origin.to_string(),
                key: key_origin.to_string(),
            });
        }
        let cn = parsed
            .subject()
            .iter_common_name()
            .find_map(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string();
        let key_id = parsed
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            });
        let serial = serial_hex(parsed.raw_serial());
        let parents = parse_chain(parents_pem, parents_origin)?
            .iter()
            .map(|der| pem_encode("CERTIFICATE", der))
            .collect();
        let issuer =
            Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| PkiError::Certificate {
                origin: cert_origin.to_string(),
                reason: e.to_string(),
            })?;
        Ok(Ca {
            cn,
            key_type,
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            serial_hex: serial,
            key_id,
            parents,
            issuer,
        })
    }

    /// Issues a leaf described by `spec`, with a fresh key and a random serial.
    pub fn issue(&self, spec: &LeafSpec) -> Result<Issued, PkiError> {
        let key = spec.key_type.generate()?;
        let cert = spec
            .params(&random_serial()?)?
            .signed_by(&key, &self.issuer)
            .map_err(|source| PkiError::Generate {
                what: format!("certificate for {:?}", spec.cn),
                source,
            })?;
        Issued::new(&cert, &key, self.chain_pem())
    }

    pub fn cn(&self) -> &str {
        &self.cn
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// This CA's certificate then its parents up to the root.
    pub fn chain_pem(&self) -> String {
        let mut chain = self.cert_pem.clone();
        for parent in &self.parents {
            chain.push_str(parent);
        }
        chain
    }

    /// The root at the top of this CA's chain (itself for a root).
    pub fn root_pem(&self) -> &str {
        self.parents.last().unwrap_or(&self.cert_pem)
    }

    /// The signing key as PKCS#8 PEM, for writing to a 0600 file.
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    pub(crate) fn key_id(&self) -> Option<&[u8]> {
        self.key_id.as_deref()
    }

    /// Checks that the certificate `der` (from `origin`) was signed by this
    /// CA, and returns its serial in [`Issued::serial_hex`] form.
    pub(crate) fn issued_serial(&self, der: &[u8], origin: &str) -> Result<String, PkiError> {
        let cert = parse_der(der, origin)?;
        let me = parse_der(&self.cert_der, "CA certificate")?;
        let not_ours = || PkiError::NotIssuedBy {
            cert: origin.to_string(),
            issuer: format!("CA {:?}", self.cn),
        };
        if cert.issuer().as_raw() != me.subject().as_raw() {
            return Err(not_ours());
        }
        cert.verify_signature(Some(me.public_key()))
            .map_err(|_| not_ours())?;
        Ok(serial_hex(cert.raw_serial()))
    }
}

fn ca_params(spec: &CaSpec) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject(&spec.cn, Some(CA_ORGANIZATION));
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    params.not_before = spec.not_before;
    params.not_after = spec.not_after;
    params.is_ca = IsCa::Ca(match spec.path_len {
        None => BasicConstraints::Unconstrained,
        Some(n) => BasicConstraints::Constrained(n),
    });
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.use_authority_key_identifier_extension = true;
    if !spec.permitted_dns.is_empty() {
        let mut permitted = Vec::with_capacity(spec.permitted_dns.len());
        for name in &spec.permitted_dns {
            permitted.push(GeneralSubtree::DnsName(name.clone()));
        }
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: permitted,
            excluded_subtrees: Vec::new(),
        });
    }
    Ok(params)
}

fn generate_error(spec: &CaSpec, source: rcgen::Error) -> PkiError {
    PkiError::Generate {
        what: format!("CA certificate {:?}", spec.cn),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_between_test_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Ca>();
        send_sync::<super::super::Issued>();
        send_sync::<PkiError>();
    }

    #[test]
    fn debug_redacts_keys() {
        let Ok(ca) = Ca::new_root("debug test root", KeyType::EcdsaP256) else {
            panic!("root");
        };
        let Ok(leaf) = ca.issue(&LeafSpec::server("debug.example")) else {
            panic!("leaf");
        };
        for shown in [format!("{ca:?}"), format!("{leaf:?}")] {
            assert!(shown.contains("<redacted>"), "{shown}");
            assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        }
    }

    #[test]
    fn loaded_ca_keeps_identity_and_rejects_a_foreign_key() {
        let (Ok(root), Ok(other)) = (
            Ca::new_root("load test root", KeyType::EcdsaP256),
            Ca::new_root("other", KeyType::EcdsaP256),
        ) else {
            panic!("roots");
        };
        let Ok(again) = Ca::from_pem(root.cert_pem(), &root.key_pem(), "") else {
            panic!("reload");
        };
        assert_eq!(again.cn(), "load test root");
        assert_eq!(again.serial_hex(), root.serial_hex());
        assert_eq!(again.key_id(), root.key_id());
        let mismatch = Ca::from_pem(root.cert_pem(), &other.key_pem(), "");
        assert!(matches!(mismatch, Err(PkiError::KeyMismatch { .. })));
    }
}
