//! Signature checks on signed X.509 objects (certificates and CRLs) by the
//! process's crypto provider, for the certificates and CRLs webpki will not
//! parse (X.509 v1 leaves, CRLs without extensions).
//!
//! It only splits the outer `SEQUENCE { tbs, algorithm, signature }` and a
//! `SubjectPublicKeyInfo`; everything inside is left to x509-parser. It
//! never treats an algorithm it does not know as a pass: an unknown or
//! mismatched algorithm, like a bad signature, is a failure.

use rustls::crypto::WebPkiSupportedAlgorithms;

use crate::crypto::provider;

/// One DER TLV off the front of an input: (tag, whole TLV, contents, rest).
type Tlv<'a> = (u8, &'a [u8], &'a [u8], &'a [u8]);

fn tlv(input: &[u8]) -> Option<Tlv<'_>> {
    let (&tag, after_tag) = input.split_first()?;
    let (&first, mut after_len) = after_tag.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        // DER lengths over 4 bytes are far beyond any certificate.
        if n == 0 || n > 4 || after_len.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &after_len[..n] {
            len = (len << 8) | usize::from(b);
        }
        after_len = &after_len[n..];
        len
    };
    if after_len.len() < len {
        return None;
    }
    let header = input.len() - after_len.len();
    let (contents, rest) = after_len.split_at(len);
    Some((tag, &input[..header + len], contents, rest))
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;

/// The parts of a signed object that a signature check needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed<'a> {
    /// The whole to-be-signed TLV: the signed message.
    pub tbs: &'a [u8],
    /// The contents of the outer signature AlgorithmIdentifier.
    pub algorithm: &'a [u8],
    pub signature: &'a [u8],
}

/// Splits a DER certificate or CRL into what was signed and the signature.
pub(crate) fn split_signed(der: &[u8]) -> Option<Signed<'_>> {
    let (tag, _, body, rest) = tlv(der)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let (tag, tbs, _, body) = tlv(body)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, _, algorithm, body) = tlv(body)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, _, bits, body) = tlv(body)?;
    // A signature is a whole number of bytes: no unused bits.
    let (&0, signature) = bits.split_first()? else {
        return None;
    };
    if tag != BIT_STRING || !body.is_empty() {
        return None;
    }
    Some(Signed {
        tbs,
        algorithm,
        signature,
    })
}

/// The version field of a DER certificate (0 = v1, 1 = v2, 2 = v3): the
/// explicit `[0]` at the start of the TBSCertificate, absent for v1.
pub(crate) fn x509_version(der: &[u8]) -> Option<u8> {
    let signed = split_signed(der)?;
    let (_, _, tbs, _) = tlv(signed.tbs)?;
    let (tag, _, version, _) = tlv(tbs)?;
    if tag != 0xa0 {
        return Some(0);
    }
    match tlv(version)? {
        (0x02, _, [v], []) => Some(*v),
        _ => None,
    }
}

/// A SubjectPublicKeyInfo's algorithm (contents) and key bits.
pub(crate) fn split_spki(spki: &[u8]) -> Option<(&[u8], &[u8])> {
    let (tag, _, body, rest) = tlv(spki)?;
    if tag != SEQUENCE || !rest.is_empty() {
        return None;
    }
    let (tag, _, algorithm, body) = tlv(body)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, _, bits, body) = tlv(body)?;
    let (&0, key) = bits.split_first()? else {
        return None;
    };
    if tag != BIT_STRING || !body.is_empty() {
        return None;
    }
    Some((algorithm, key))
}

/// The provider's algorithms for certificate and CRL signatures.
pub(crate) fn algorithms() -> WebPkiSupportedAlgorithms {
    provider().signature_verification_algorithms
}

/// Whether `signed` carries a valid signature by the key in `issuer_spki`
/// (a DER SubjectPublicKeyInfo), with an algorithm the provider supports.
pub(crate) fn verify_by(signed: &Signed<'_>, issuer_spki: &[u8]) -> bool {
    let Some((key_alg, key)) = split_spki(issuer_spki) else {
        return false;
    };
    algorithms().all.iter().any(|alg| {
        alg.public_key_alg_id().as_ref() == key_alg
            && alg.signature_alg_id().as_ref() == signed.algorithm
            && alg
                .verify_signature(key, signed.tbs, signed.signature)
                .is_ok()
    })
}

/// RFC 8446 §4.2.3: no PKCS#1 v1.5 and no SHA-1 in TLS 1.3 signatures.
fn allowed_in_tls13(scheme: rustls::SignatureScheme) -> bool {
    use rustls::SignatureScheme as S;
    !matches!(
        scheme,
        S::RSA_PKCS1_SHA1
            | S::RSA_PKCS1_SHA256
            | S::RSA_PKCS1_SHA384
            | S::RSA_PKCS1_SHA512
            | S::ECDSA_SHA1_Legacy
    )
}

/// Verifies a TLS handshake signature made with the key of `spki` under
/// `scheme`, for leaves webpki will not parse. TLS 1.3 uses only the first
/// algorithm of the scheme and only schemes TLS 1.3 allows, as rustls does.
pub(crate) fn verify_handshake(
    spki: &[u8],
    scheme: rustls::SignatureScheme,
    message: &[u8],
    signature: &[u8],
    tls13: bool,
) -> bool {
    let Some((key_alg, key)) = split_spki(spki) else {
        return false;
    };
    if tls13 && !allowed_in_tls13(scheme) {
        return false;
    }
    let algs = algorithms();
    let Some((_, candidates)) = algs.mapping.iter().find(|(s, _)| *s == scheme) else {
        return false;
    };
    let candidates = if tls13 {
        &candidates[..candidates.len().min(1)]
    } else {
        candidates
    };
    candidates.iter().any(|alg| {
        alg.public_key_alg_id().as_ref() == key_alg
            && alg.verify_signature(key, message, signature).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::PublicKeyData;

    #[test]
    fn tlv_refuses_truncated_and_overlong_input() {
        assert!(tlv(&[]).is_none());
        assert!(tlv(&[0x30]).is_none());
        assert!(tlv(&[0x30, 0x05, 1, 2]).is_none());
        assert!(tlv(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_none());
        let (tag, whole, contents, rest) = tlv(&[0x30, 0x81, 0x01, 7, 9]).unwrap_or_default();
        assert_eq!(
            (tag, whole, contents, rest),
            (0x30, &[0x30, 0x81, 1, 7][..], &[7][..], &[9][..])
        );
    }

    #[test]
    fn the_version_field_is_read_as_x509_parser_reads_it() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["a.test".into()]).unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(x509_version(&der).map(u32::from), Some(parsed.version().0));
        assert_eq!(x509_version(&der), Some(2));
        assert!(x509_version(&der[..der.len() - 1]).is_none());
        assert!(x509_version(b"not a certificate").is_none());
    }

    #[test]
    fn a_signature_verifies_only_with_its_issuer_and_intact() {
        let ca_key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let other = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let params =
            rcgen::CertificateParams::new(vec!["a.test".into()]).unwrap_or_else(|e| panic!("{e}"));
        let cert = params
            .self_signed(&ca_key)
            .unwrap_or_else(|e| panic!("{e}"));
        let der = cert.der().to_vec();
        let signed = split_signed(&der).unwrap_or_else(|| panic!("split"));
        assert!(verify_by(&signed, &ca_key.subject_public_key_info()));
        assert!(!verify_by(&signed, &other.subject_public_key_info()));
        let mut bad = der.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let signed = split_signed(&bad).unwrap_or_else(|| panic!("split"));
        assert!(!verify_by(&signed, &ca_key.subject_public_key_info()));
    }
}
