//! Leaf certificates: what one should look like ([`LeafSpec`]) and what
//! issuing it gives back ([`Issued`]: certificate, key, serial, fingerprint).
//!
//! A `LeafSpec` is never checked: tests ask for invalid names, inverted
//! validity or missing usages on purpose. An `Issued` must never show its
//! key through `Debug`.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use super::error::PkiError;
use super::files::{self, KEY_MODE, PUBLIC_MODE};
use super::key::KeyType;
use super::x509::{
    expired_window, parse_chain, parse_der, pem_encode, random_serial, serial_hex, subject,
    validity,
};
use crate::crypto::sha256_hex;

/// Validity of a leaf made by [`LeafSpec::server`] or [`LeafSpec::client`].
pub const DEFAULT_LEAF_DAYS: u32 = 365;

/// What a leaf certificate looks like. Nothing here is checked: a test may
/// ask for an invalid name, an inverted validity, or no usage at all (with
/// neither `server_auth` nor `client_auth` the certificate has no extended
/// key usage extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSpec {
    /// Subject common name; empty means an empty subject.
    pub cn: String,
    /// Subject organization (O), before the CN; none by default.
    pub organization: Option<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub uris: Vec<String>,
    pub server_auth: bool,
    pub client_auth: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub key_type: KeyType,
}

impl LeafSpec {
    /// A server certificate for `host`: CN and DNS SAN `host`, EKU
    /// serverAuth, valid from an hour ago for [`DEFAULT_LEAF_DAYS`].
    pub fn server(host: impl Into<String>) -> Self {
        let host = host.into();
        let (not_before, not_after) = validity(DEFAULT_LEAF_DAYS);
        LeafSpec {
            dns: vec![host.clone()],
            cn: host,
            organization: None,
            ips: Vec::new(),
            uris: Vec::new(),
            server_auth: true,
            client_auth: false,
            not_before,
            not_after,
            key_type: KeyType::default(),
        }
    }

    /// A client certificate for `cn`: EKU clientAuth, and a DNS SAN `cn`
    /// when `cn` is a DNS name (as the walkthrough's client certificates have).
    pub fn client(cn: impl Into<String>) -> Self {
        let cn = cn.into();
        let dns = if super::layout::validate_host(&cn).is_ok() {
            vec![cn.clone()]
        } else {
            Vec::new()
        };
        LeafSpec {
            dns,
            server_auth: false,
            client_auth: true,
            ..LeafSpec::server(cn)
        }
    }

    pub fn key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    /// Sets the subject's organization (O); any text, unchecked.
    pub fn organization(mut self, o: impl Into<String>) -> Self {
        self.organization = Some(o.into());
        self
    }

    pub fn dns(mut self, name: impl Into<String>) -> Self {
        self.dns.push(name.into());
        self
    }

    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ips.push(ip);
        self
    }

    /// Adds a URI SAN, such as a SPIFFE identity.
    pub fn uri(mut self, uri: impl Into<String>) -> Self {
        self.uris.push(uri.into());
        self
    }

    pub fn server_auth(mut self, on: bool) -> Self {
        self.server_auth = on;
        self
    }

    pub fn client_auth(mut self, on: bool) -> Self {
        self.client_auth = on;
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

    /// Valid from a day from now, for a year.
    pub fn not_yet_valid(mut self) -> Self {
        let start = OffsetDateTime::now_utc() + Duration::days(1);
        (self.not_before, self.not_after) = (start, start + Duration::days(365));
        self
    }

    pub(crate) fn params(&self, serial: &[u8]) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&self.cn, self.organization.as_deref());
        params.serial_number = Some(SerialNumber::from_slice(serial));
        params.not_before = self.not_before;
        params.not_after = self.not_after;
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = match self.key_type {
            KeyType::EcdsaP256 => vec![KeyUsagePurpose::DigitalSignature],
            KeyType::Rsa2048 => vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ],
        };
        if self.server_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if self.client_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let bad_name = |name: &str, source| PkiError::Generate {
            what: format!("certificate for {:?}: SAN {name:?}", self.cn),
            source,
        };
        for name in &self.dns {
            let ia5 = name.as_str().try_into().map_err(|e| bad_name(name, e))?;
            params.subject_alt_names.push(SanType::DnsName(ia5));
        }
        for ip in &self.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        for uri in &self.uris {
            let ia5 = uri.as_str().try_into().map_err(|e| bad_name(uri, e))?;
            params.subject_alt_names.push(SanType::URI(ia5));
        }
        Ok(params)
    }
}

/// A certificate and its key, as issued.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    pub cert_pem: String,
    /// PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub key_pem: String,
    /// Lowercase hex, no separators (`openssl x509 -serial` prints it uppercase).
    pub serial_hex: String,
    /// SHA-256 of the certificate DER, lowercase hex, no separators.
    pub sha256_fingerprint_hex: String,
    /// The issuing CA's chain (issuer first, root last); empty when self-signed.
    pub issuer_chain_pem: String,
}

impl Issued {
    pub(crate) fn new(
        cert: &rcgen::Certificate,
        key: &KeyPair,
        issuer_chain_pem: String,
    ) -> Result<Self, PkiError> {
        let der = cert.der();
        let parsed = parse_der(der, "issued certificate")?;
        Ok(Issued {
            cert_pem: pem_encode("CERTIFICATE", der),
            key_pem: key.serialize_pem(),
            serial_hex: serial_hex(parsed.raw_serial()),
            sha256_fingerprint_hex: sha256_hex(der),
            issuer_chain_pem,
        })
    }

    /// The leaf then its issuer chain: what a server presents (root included).
    pub fn fullchain_pem(&self) -> String {
        format!("{}{}", self.cert_pem, self.issuer_chain_pem)
    }

    pub fn cert_der(&self) -> Result<CertificateDer<'static>, PkiError> {
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| {
            PkiError::Certificate {
                origin: "issued certificate".into(),
                reason: e.to_string(),
            }
        })
    }

    /// The leaf then its issuer chain, as DER, for a rustls config.
    pub fn chain_der(&self) -> Result<Vec<CertificateDer<'static>>, PkiError> {
        let mut chain = vec![self.cert_der()?];
        chain.extend(parse_chain(&self.issuer_chain_pem, "issuer chain")?);
        Ok(chain)
    }

    pub fn key_der(&self) -> Result<PrivateKeyDer<'static>, PkiError> {
        PrivatePkcs8KeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map(PrivateKeyDer::Pkcs8)
            .map_err(|e| PkiError::PrivateKey {
                origin: "issued key".into(),
                reason: e.to_string(),
            })
    }

    /// Writes the certificate (0644) and the key (0600, created so). With
    /// `force` off an existing file is left alone and reported.
    pub fn write_files(&self, cert: &Path, key: &Path, force: bool) -> Result<(), PkiError> {
        files::refuse_existing(cert, force)?;
        files::refuse_existing(key, force)?;
        let overwrite = files::overwrite(force);
        files::write_file(key, self.key_pem.as_bytes(), KEY_MODE, overwrite)?;
        files::write_file(cert, self.cert_pem.as_bytes(), PUBLIC_MODE, overwrite)
    }
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("serial_hex", &self.serial_hex)
            .field("sha256_fingerprint_hex", &self.sha256_fingerprint_hex)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A self-signed leaf: its own issuer, trusted by nobody.
pub fn self_signed(spec: &LeafSpec) -> Result<Issued, PkiError> {
    let key = spec.key_type.generate()?;
    let cert = spec
        .params(&random_serial()?)?
        .self_signed(&key)
        .map_err(|source| PkiError::Generate {
            what: format!("self-signed certificate for {:?}", spec.cn),
            source,
        })?;
    Issued::new(&cert, &key, String::new())
}
