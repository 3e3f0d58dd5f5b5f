//! The process's one crypto provider (aws-lc-rs) and the small helpers built
//! on it: lowercase hex, SHA-256 fingerprints, random bytes, a constant-time
//! comparison of secrets.
//!
//! Every TLS config, verifier, certificate maker and fingerprint in gatehouse
//! goes through here, so that exactly one provider is compiled in and used
//! (`deny.toml` keeps `ring` out). Nothing here ever sees a private key.

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The process-wide crypto provider: aws-lc-rs, and nothing else. One
/// instance for the process, shared by every `ServerConfig`.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            CryptoProvider::get_default()
                .cloned()
                .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        })
        .clone()
}

/// Lowercase hex without separators.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        push_hex(&mut s, *b);
    }
    s
}

/// Appends one byte as two lowercase hex digits (a table, not `fmt`: the
/// request path makes a request id this way for every request).
pub fn push_hex(s: &mut String, b: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    s.push(char::from(DIGITS[usize::from(b >> 4)]));
    s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
}

/// SHA-256 of `data` as lowercase hex: the fingerprint format of gatehouse
/// (`proxy-config secret`, `verifyCertificateHash`, XFCC `Hash=`).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// Whether two secrets are equal, in time that depends on neither's
/// content nor length: both are hashed with SHA-256 first and the digests
/// compared in constant time (the admin token check).
pub fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    use aws_lc_rs::digest::{SHA256, digest};
    aws_lc_rs::constant_time::verify_slices_are_equal(
        digest(&SHA256, a).as_ref(),
        digest(&SHA256, b).as_ref(),
    )
    .is_ok()
}

/// The operating system's CSPRNG (through aws-lc) failed.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], RandomError> {
    let mut buf = [0u8; N];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| RandomError)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_equal_only_when_equal() {
        assert!(secrets_equal(b"s3cret-token", b"s3cret-token"));
        assert!(!secrets_equal(b"s3cret-token", b"s3cret-tokeN"));
        assert!(!secrets_equal(b"s3cret-token", b"s3cret-token2"));
        assert!(!secrets_equal(b"", b"x"));
    }

    #[test]
    fn hex_and_sha256() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn random_bytes_differ() {
        let a = random_bytes::<16>().unwrap();
        let b = random_bytes::<16>().unwrap();
        assert_ne!(a, b);
    }
}
