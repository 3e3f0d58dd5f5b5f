//! Turning secret bytes into credentials: a certificate chain with its key,
//! or a client CA bundle with its CRLs; checked before anyone may use them.
//!
//! Key material never leaves this file in a printable form: `Debug` shows
//! certificate facts (serial, dates, fingerprint), never the key.

use std::fmt;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::config::Secret;
use crate::config::host;
use crate::crypto::{hex, provider, sha256_hex};

/// What is wrong with a credential, and under which secret key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CredentialError {
    /// The secret key (`cert`, `key`, `cacert`, ...) the problem is in.
    pub field: String,
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> CredentialError {
    CredentialError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Facts about one certificate, for logs, the admin view and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    pub subject: String,
    /// The issuer's distinguished name, as `subject` is written.
    pub issuer: String,
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
    pub sha256_hex: String,
    pub dns_names: Vec<String>,
    /// The subject's common name: the certificate's name when it has no
    /// DNS SAN (an X.509 v1 certificate, say), as OpenSSL and BoringSSL use it.
    pub common_name: Option<String>,
}

impl CertInfo {
    pub fn parse(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|_| {
            "not a valid X.509 certificate (the PEM block does not hold DER certificate data)"
                .to_owned()
        })?;
        let mut dns_names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                    dns_names.push((*d).to_owned());
                }
            }
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            serial_hex: hex(cert.raw_serial()),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            sha256_hex: sha256_hex(der),
            dns_names,
            common_name,
        })
    }

    /// The names clients check this certificate against: its DNS SANs, or,
    /// when it has none, its common name. That is what OpenSSL (nginx,
    /// HAProxy, curl) and BoringSSL (Envoy) do, and what `openssl x509 -req`
    /// without `-extfile` gives: a v1 certificate named only by its CN.
    pub fn names(&self) -> &[String] {
        match &self.common_name {
            Some(cn) if self.dns_names.is_empty() => std::slice::from_ref(cn),
            _ => &self.dns_names,
        }
    }

    /// Whether this certificate is valid for `name` (SAN DNS, wildcards
    /// honoured; the CN when there is no DNS SAN).
    pub fn covers(&self, name: &str) -> bool {
        let name = host::gateway_host_name(name);
        self.names().iter().any(|d| {
            if name == "*" || name.starts_with("*.") {
                d.eq_ignore_ascii_case(name)
            } else {
                host::matches(d, name)
            }
        })
    }
}

/// A server certificate chain and its private key, ready for rustls.
#[derive(Clone)]
pub struct ServerCredential {
    pub certified: Arc<CertifiedKey>,
    pub leaf: CertInfo,
}

impl fmt::Debug for ServerCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCredential")
            .field("leaf", &self.leaf)
            .field("chain_len", &self.certified.cert.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Client CAs (trust anchors) and CRLs for verifying client certificates.
#[derive(Debug, Clone)]
pub struct TrustBundle {
    pub roots: Vec<CertificateDer<'static>>,
    pub crls: Vec<CertificateRevocationListDer<'static>>,
    pub info: Vec<CertInfo>,
    /// SHA-256 over all CAs and CRLs: when it changes, resumed sessions
    /// from the old trust state must not be accepted.
    pub fingerprint: String,
}

fn trust_fingerprint(
    roots: &[CertificateDer<'static>],
    crls: &[CertificateRevocationListDer<'static>],
) -> String {
    let mut all = Vec::new();
    for r in roots {
        all.extend_from_slice(r.as_ref());
    }
    for c in crls {
        all.extend_from_slice(c.as_ref());
    }
    sha256_hex(&all)
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A unix time as RFC 3339 (`2026-12-02T12:00:00Z`), for logs and views.
pub fn rfc3339(ts: i64) -> String {
    date(ts)
}

fn date(ts: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ts.to_string())
}

/// Parses PEM certificates; fails if there are none or one is malformed.
pub fn parse_certs(
    field: &str,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(field, format!("not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad(field, "no PEM certificate found"));
    }
    Ok(certs)
}

/// Parses one PEM private key (PKCS#8, PKCS#1 or SEC1). Encrypted keys are
/// refused with a message saying how to decrypt them.
pub fn parse_key(field: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, CredentialError> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(bad(
            field,
            "the private key is encrypted; gatehouse needs it unencrypted (openssl pkey -in KEY -out PLAIN)",
        ));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => bad(field, "no PEM private key found"),
        other => bad(field, format!("not a valid PEM private key: {other}")),
    })
}

fn check_dates(field: &str, info: &CertInfo, now: i64) -> Result<(), CredentialError> {
    if info.not_after < now {
        return Err(bad(
            field,
            format!("certificate expired at {}", date(info.not_after)),
        ));
    }
    if info.not_before > now {
        return Err(bad(
            field,
            format!("certificate is not valid before {}", date(info.not_before)),
        ));
    }
    Ok(())
}

fn chain_leaf(certified: &CertifiedKey) -> &[u8] {
    certified.cert.first().map_or(&[], |c| c.as_ref())
}

/// For a leaf webpki refuses for its version alone: whether the key's
/// public half is the leaf's (None when that cannot be told).
fn legacy_key_matches(certified: &CertifiedKey, leaf: &[u8]) -> Option<bool> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    if cert.version() == x509_parser::x509::X509Version::V3 {
        return None;
    }
    let key = certified.key.public_key()?;
    Some(key.as_ref() == cert.public_key().raw)
}

/// Builds a server credential from PEM chain and key: parses both, checks
/// that the key matches the leaf and that the leaf is within its dates.
pub fn server_credential(
    cert_field: &str,
    cert_pem: &[u8],
    key_field: &str,
    key_pem: &[u8],
    now: i64,
) -> Result<ServerCredential, CredentialError> {
    let chain = parse_certs(cert_field, cert_pem)?;
    let leaf = CertInfo::parse(chain[0].as_ref()).map_err(|e| bad(cert_field, e))?;
    let key = parse_key(key_field, key_pem)?;
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad(key_field, format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    let mismatch = || {
        bad(
            key_field,
            format!("the private key does not match the certificate in {cert_field}"),
        )
    };
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(mismatch());
        }
        // rustls reads the leaf with webpki, which refuses X.509 v1; compare
        // the key with the leaf's SubjectPublicKeyInfo read by x509-parser.
        Err(e) => match legacy_key_matches(&certified, chain_leaf(&certified)) {
            Some(true) => {}
            Some(false) => return Err(mismatch()),
            None => return Err(bad(key_field, format!("cannot check the key: {e}"))),
        },
    }
    check_dates(cert_field, &leaf, now)?;
    Ok(ServerCredential {
        certified: Arc::new(certified),
        leaf,
    })
}

/// Checks one CRL as the handshake will use it: it parses (v1 and v2, with
/// or without the CRL number and AKI extensions), and when its issuer is a
/// CA of this bundle, that CA may sign CRLs and its key verifies the CRL's
/// signature. A CRL of an issuer outside the bundle (an intermediate the
/// client sends) is verified at the handshake against that issuer.
fn check_crl(der: &[u8], roots: &[CertificateDer<'static>]) -> Result<(), String> {
    let crl = match x509_parser::parse_x509_crl(der) {
        Ok(([], crl)) => crl,
        Ok(_) => return Err("not a valid CRL: data after the CRL".into()),
        Err(e) => return Err(format!("not a valid CRL: {e}")),
    };
    let issuer = crl.issuer().to_string();
    let Some(signed) = crate::tls::signed::split_signed(der) else {
        return Err(format!(
            "the CRL issued by {issuer} is not a valid signed CRL"
        ));
    };
    let cas: Vec<_> = roots
        .iter()
        .filter_map(|r| x509_parser::parse_x509_certificate(r.as_ref()).ok())
        .filter(|(_, c)| c.subject().as_raw() == crl.issuer().as_raw())
        .collect();
    if cas.is_empty() {
        return Ok(());
    }
    let verified = cas
        .iter()
        .find(|(_, ca)| crate::tls::signed::verify_by(&signed, ca.public_key().raw));
    let Some((_, ca)) = verified else {
        return Err(format!(
            "the CRL issued by {issuer}: its signature does not verify with that CA's key"
        ));
    };
    if let Ok(Some(ku)) = ca.key_usage()
        && !ku.value.crl_sign()
    {
        return Err(format!(
            "the CRL issued by {issuer}: that CA's key usage does not allow CRL signing"
        ));
    }
    Ok(())
}

/// With a CRL webpki cannot parse in the bundle, gatehouse checks
/// revocation itself, and it cannot honour a CRL's critical extension (an
/// issuing distribution point, say): such a CRL would leave its issuer's
/// clients with an unknown status, refused at every handshake. Say so now.
fn refuse_critical_extensions(
    crls: &[CertificateRevocationListDer<'static>],
) -> Result<(), String> {
    for c in crls {
        if let Ok((_, crl)) = x509_parser::parse_x509_crl(c.as_ref())
            && let Some(ext) = crl.extensions().iter().find(|e| e.critical)
        {
            return Err(format!(
                "the CRL issued by {}: its critical extension {} cannot be honoured next to a CRL without extensions; issue both CRLs the same way",
                crl.issuer(),
                ext.oid
            ));
        }
    }
    Ok(())
}

/// Builds a client trust bundle from PEM CAs and optional PEM CRLs.
pub fn trust_bundle(
    ca_field: &str,
    ca_pem: &[u8],
    crl: Option<(&str, &[u8])>,
) -> Result<TrustBundle, CredentialError> {
    let roots = parse_certs(ca_field, ca_pem)?;
    let info = roots
        .iter()
        .map(|c| CertInfo::parse(c.as_ref()).map_err(|e| bad(ca_field, e)))
        .collect::<Result<Vec<_>, _>>()?;
    // The handshake's verifier takes each CA as a webpki trust anchor: one
    // it cannot take would refuse every client of the host at run.
    for (r, i) in roots.iter().zip(&info) {
        rustls::RootCertStore::empty().add(r.clone()).map_err(|e| {
            bad(
                ca_field,
                format!("CA {} is not a usable trust anchor: {e}", i.subject),
            )
        })?;
    }
    let crls = match crl {
        None => Vec::new(),
        Some((field, pem)) => {
            let crls: Vec<_> = CertificateRevocationListDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(field, format!("not valid PEM: {e}")))?;
            if crls.is_empty() {
                return Err(bad(field, "no PEM X509 CRL found"));
            }
            for c in &crls {
                check_crl(c.as_ref(), &roots).map_err(|e| bad(field, e))?;
            }
            if crate::tls::own_revocation(&roots, &crls) {
                refuse_critical_extensions(&crls).map_err(|e| bad(field, e))?;
            }
            crls
        }
    };
    let fingerprint = trust_fingerprint(&roots, &crls);
    Ok(TrustBundle {
        roots,
        crls,
        info,
        fingerprint,
    })
}

/// Secret keys that carry each part, in the order Istio tries them.
pub const CERT_KEYS: [(&str, &str); 2] = [("cert", "key"), ("tls.crt", "tls.key")];
pub const CA_KEYS: [&str; 2] = ["cacert", "ca.crt"];
pub const CRL_KEYS: [&str; 2] = ["crl", "ca.crl"];

/// The server credential in a Secret, if it has a certificate/key pair.
pub fn secret_server_credential(
    s: &Secret,
    now: i64,
) -> Option<Result<ServerCredential, CredentialError>> {
    for (ck, kk) in CERT_KEYS {
        match (s.value(ck), s.value(kk)) {
            (Some(c), Some(k)) => return Some(server_credential(ck, c, kk, k, now)),
            (Some(_), None) => {
                return Some(Err(bad(kk, format!("{ck} is present but {kk} is missing"))));
            }
            (None, Some(_)) => {
                return Some(Err(bad(ck, format!("{kk} is present but {ck} is missing"))));
            }
            (None, None) => {}
        }
    }
    None
}

/// The client trust bundle in a Secret, if it has a CA.
pub fn secret_trust_bundle(s: &Secret) -> Option<Result<TrustBundle, CredentialError>> {
    let (ca_field, ca) = CA_KEYS.iter().find_map(|k| s.value(k).map(|v| (*k, v)))?;
    let crl = CRL_KEYS.iter().find_map(|k| s.value(k).map(|v| (*k, v)));
    Some(trust_bundle(ca_field, ca, crl))
}

/// The content check `apply` runs on a credential Secret (kubectl's
/// `--validate`): PEM parses, key matches the leaf, leaf within its dates,
/// CA and CRL parse.
pub fn check_secret(s: &Secret) -> Result<(), CredentialError> {
    let now = now_unix();
    if let Some(r) = secret_server_credential(s, now) {
        r?;
    }
    if let Some(r) = secret_trust_bundle(s) {
        r?;
    } else if let Some(k) = CRL_KEYS.iter().find(|k| s.value(k).is_some()) {
        return Err(bad(
            k,
            "a CRL needs a CA (cacert or ca.crt) in the same secret",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(sans: &[&str], cn: &str) -> CertInfo {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        CertInfo::parse(cert.der()).unwrap()
    }

    #[test]
    fn the_cn_names_a_certificate_only_without_dns_sans() {
        let cn_only = info(&[], "httpbin.example.com");
        assert!(cn_only.covers("httpbin.example.com"));
        assert!(cn_only.covers("HTTPBIN.example.com"));
        assert!(!cn_only.covers("other.example.com"));
        assert_eq!(cn_only.names(), ["httpbin.example.com".to_owned()]);
        // With a DNS SAN, the CN is not a name (as OpenSSL and BoringSSL).
        let with_san = info(&["a.example.com"], "httpbin.example.com");
        assert!(with_san.covers("a.example.com"));
        assert!(!with_san.covers("httpbin.example.com"));
        let wildcard = info(&[], "*.example.com");
        assert!(wildcard.covers("x.example.com"));
    }
}
