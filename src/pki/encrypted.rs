//! A structurally valid `ENCRYPTED PRIVATE KEY` PEM for tests that check a
//! passphrase-protected key is refused with a clear message.
//!
//! The DER is a real PKCS#8 `EncryptedPrivateKeyInfo` shaped exactly like
//! `openssl pkcs8 -topk8 -v2 aes-256-cbc` output (PBES2, PBKDF2 with
//! HMAC-SHA256, AES-256-CBC), but the salt, IV and ciphertext are random: it
//! decrypts to nothing under any passphrase. It must never hold a real key.

use super::x509::pem_encode;
use crate::crypto::random_bytes;

/// 1.2.840.113549.1.5.13
const OID_PBES2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0d];
/// 1.2.840.113549.1.5.12
const OID_PBKDF2: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x05, 0x0c];
/// 1.2.840.113549.2.9
const OID_HMAC_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x02, 0x09];
/// 2.16.840.1.101.3.4.1.42
const OID_AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;

/// A DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - start) as u8);
        out.extend_from_slice(&bytes[start..]);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// A PEM `-----BEGIN ENCRYPTED PRIVATE KEY-----` block that parsers accept
/// as PKCS#8 `EncryptedPrivateKeyInfo` and that no passphrase opens. Each
/// call differs (random salt, IV and ciphertext); if the system random
/// generator fails, zeros are used, which is still structurally valid.
pub fn encrypted_key_pem_example() -> String {
    let salt = random_bytes::<16>().unwrap_or_default();
    let iv = random_bytes::<16>().unwrap_or_default();
    // 144 = a P-256 PKCS#8 key (138 octets) padded to the AES block size.
    let ciphertext = random_bytes::<144>().unwrap_or([0u8; 144]);

    let pbkdf2_params = seq(&[
        tlv(OCTET_STRING, &salt),
        tlv(INTEGER, &[0x08, 0x00]), // 2048 iterations, as openssl uses
        seq(&[tlv(OID, OID_HMAC_SHA256), tlv(NULL, &[])]),
    ]);
    let pbes2_params = seq(&[
        seq(&[tlv(OID, OID_PBKDF2), pbkdf2_params]),
        seq(&[tlv(OID, OID_AES256_CBC), tlv(OCTET_STRING, &iv)]),
    ]);
    let info = seq(&[
        seq(&[tlv(OID, OID_PBES2), pbes2_params]),
        tlv(OCTET_STRING, &ciphertext),
    ]);
    pem_encode("ENCRYPTED PRIVATE KEY", &info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lengths_use_long_form() {
        assert_eq!(tlv(OCTET_STRING, &[]), vec![0x04, 0x00]);
        assert_eq!(&tlv(OCTET_STRING, &[0; 0x80])[..3], &[0x04, 0x81, 0x80]);
        assert_eq!(
            &tlv(OCTET_STRING, &[0; 0x123])[..4],
            &[0x04, 0x82, 0x01, 0x23]
        );
    }

    #[test]
    fn example_is_encrypted_pkcs8_pem() {
        let pem = encrypted_key_pem_example();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        assert!(pem.ends_with("-----END ENCRYPTED PRIVATE KEY-----\n"));
        assert_ne!(pem, encrypted_key_pem_example());
    }
}
