//! The certificate helpers the builder's parts share: validity windows,
//! subjects, serial numbers, PEM encoding and parsing. No key material.

use base64::Engine as _;
use rcgen::{DistinguishedName, DnType};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;

use super::error::PkiError;
use crate::crypto::{hex, random_bytes};

/// Certificates start an hour in the past so that a peer whose clock is a
/// little behind still accepts them.
const BACKDATE: Duration = Duration::hours(1);

pub(crate) fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (now - BACKDATE, now + Duration::days(i64::from(days)))
}

pub(crate) fn expired_window() -> (OffsetDateTime, OffsetDateTime) {
    let end = OffsetDateTime::now_utc() - BACKDATE;
    (end - Duration::days(1), end)
}

pub(crate) fn subject(cn: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(org) = organization {
        dn.push(DnType::OrganizationName, org);
    }
    if !cn.is_empty() {
        dn.push(DnType::CommonName, cn);
    }
    dn
}

/// A positive serial of exactly 16 octets: random, top bit clear so DER
/// needs no sign byte, first octet non-zero so DER keeps all 16.
pub(crate) fn random_serial() -> Result<[u8; 16], PkiError> {
    let mut serial = random_bytes::<16>()?;
    serial[0] &= 0x7f;
    if serial[0] == 0 {
        serial[0] = 1;
    }
    Ok(serial)
}

/// A serial as this crate prints it: lowercase hex of the unsigned value,
/// without separators or leading zero octets.
pub(crate) fn serial_hex(raw: &[u8]) -> String {
    let start = raw.iter().position(|b| *b != 0).unwrap_or(raw.len());
    if start == raw.len() {
        return "00".to_string();
    }
    hex(&raw[start..])
}

pub(crate) fn parse_der<'a>(der: &'a [u8], origin: &str) -> Result<X509Certificate<'a>, PkiError> {
    x509_parser::parse_x509_certificate(der)
        .map(|(_, cert)| cert)
        .map_err(|e| PkiError::Certificate {
            origin: origin.to_string(),
            reason: e.to_string(),
        })
}

/// Every certificate in a PEM bundle, in order (an empty bundle is empty).
pub(crate) fn parse_chain(
    pem: &str,
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::Certificate {
            origin: origin.to_string(),
            reason: e.to_string(),
        })
}

/// PEM with 64-column base64 lines and a trailing newline.
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_16_octets_and_distinct() {
        let a = random_serial().ok();
        let b = random_serial().ok();
        assert!(a.is_some() && a != b);
        for s in [a, b].into_iter().flatten() {
            assert!(s[0] != 0 && s[0] < 0x80);
            assert_eq!(serial_hex(&s).len(), 32);
        }
    }

    #[test]
    fn serial_hex_strips_sign_octet() {
        assert_eq!(serial_hex(&[0x00, 0x9a, 0x01]), "9a01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(serial_hex(&[]), "00");
    }

    #[test]
    fn pem_lines_are_64_columns() {
        let pem = pem_encode("TEST", &[7u8; 100]);
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN TEST-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines.last().copied(), Some("-----END TEST-----"));
    }
}
