//! Making certificates: the per-host tree the secure-ingress walkthrough
//! uses (root CA, intermediate CA, server and client leaves, a CRL), and a
//! builder ([`Ca`], [`LeafSpec`]) that tests use to make ordinary and unusual
//! certificates in memory.
//!
//! This module only makes and writes credentials; it never serves or trusts
//! them, never prints or logs key material (every type holding a key has a
//! `Debug` that prints `"<redacted>"`), and never writes a private key into a
//! file or directory that others can read.

mod ca;
mod crl;
mod encrypted;
mod files;
mod layout;
mod leaf;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use base64::Engine as _;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize};

pub use ca::{Ca, CaSpec, DEFAULT_INTERMEDIATE_DAYS, DEFAULT_LEAF_DAYS, DEFAULT_ROOT_DAYS};
pub use crl::{CrlSpec, Revoked, read_index};
pub use encrypted::encrypted_key_pem_example;
pub use layout::{HostLayout, InitOptions, init, issue_client, revoke, validate_host, write_crl};
pub use leaf::{Issued, LeafSpec, self_signed};

/// The kind of key pair generated for every certificate of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    /// ECDSA on P-256, signing with SHA-256.
    #[default]
    EcdsaP256,
    /// 2048-bit RSA, signing with PKCS#1 v1.5 and SHA-256.
    Rsa2048,
}

impl KeyType {
    /// Every key type, in the order `--help` should list them.
    pub const ALL: [KeyType; 2] = [KeyType::EcdsaP256, KeyType::Rsa2048];

    /// The name accepted by [`FromStr`] and printed by [`Display`](fmt::Display).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Rsa2048 => "rsa-2048",
        }
    }

    pub(crate) fn generate(self) -> Result<KeyPair, PkiError> {
        let generated = match self {
            KeyType::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            KeyType::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        };
        generated.map_err(|source| PkiError::Generate {
            what: format!("{self} key"),
            source,
        })
    }

    /// The key type of a loaded key, if it is one this module makes.
    pub(crate) fn of(key: &KeyPair) -> Option<KeyType> {
        let alg = key.algorithm();
        if alg == &PKCS_ECDSA_P256_SHA256 {
            Some(KeyType::EcdsaP256)
        } else if alg == &PKCS_RSA_SHA256 {
            Some(KeyType::Rsa2048)
        } else {
            None
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| PkiError::UnknownKeyType {
                given: s.to_string(),
            })
    }
}

/// Everything that can go wrong making or writing certificates. Each message
/// is one line and names the file involved (or, for in-memory input, what
/// the input was).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    #[error("{} already exists; use --force to replace it", path.display())]
    Exists { path: PathBuf },

    #[error("{} does not exist; run `gatehouse pki init --host {host}` first", path.display())]
    NotInitialized { path: PathBuf, host: String },

    #[error("invalid host {host:?}: {reason}")]
    InvalidHost { host: String, reason: String },

    #[error("invalid client name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },

    #[error("unknown key type {given:?}; expected ecdsa-p256 or rsa-2048")]
    UnknownKeyType { given: String },

    #[error("invalid validity of {days} days; must be at least 1")]
    InvalidDays { days: u32 },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot generate {what}: {source}")]
    Generate { what: String, source: rcgen::Error },

    /// `origin` is the file path, or what the in-memory input was.
    #[error("{origin}: not a usable certificate: {reason}")]
    Certificate { origin: String, reason: String },

    /// `origin` is the file path, or what the in-memory input was.
    #[error("{origin}: not a usable private key: {reason}")]
    PrivateKey { origin: String, reason: String },

    #[error("{key} does not hold the private key of certificate {cert}")]
    KeyMismatch { cert: String, key: String },

    #[error("{cert} was not issued by {issuer}")]
    NotIssuedBy { cert: String, issuer: String },

    #[error("{}:{line}: {reason}", path.display())]
    Index {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("invalid serial number {given:?}: {reason}")]
    InvalidSerial { given: String, reason: String },

    #[error("the system random number generator failed")]
    Random,

    #[error("crypto provider has no {0}")]
    Crypto(&'static str),
}

/// Lowercase hex without separators.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `N` bytes from the operating system's CSPRNG (through aws-lc).
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], PkiError> {
    let mut buf = [0u8; N];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut buf)
        .map_err(|_| PkiError::Random)?;
    Ok(buf)
}

/// SHA-256 of `data` as lowercase hex, the fingerprint format of this crate.
pub fn sha256_hex(data: &[u8]) -> Result<String, PkiError> {
    let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .ok_or(PkiError::Crypto("SHA-256"))?;
    Ok(hex(suite.common.hash_provider.hash(data).as_ref()))
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
    fn key_type_names_round_trip() {
        for k in KeyType::ALL {
            assert_eq!(k.as_str().parse::<KeyType>().ok(), Some(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        assert_eq!("RSA-2048".parse::<KeyType>().ok(), Some(KeyType::Rsa2048));
        assert_eq!(KeyType::default(), KeyType::EcdsaP256);
    }

    #[test]
    fn unknown_key_type_names_the_choices() {
        let err = "ed25519".parse::<KeyType>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown key type \"ed25519\"; expected ecdsa-p256 or rsa-2048")
        );
    }

    #[test]
    fn hex_and_sha256() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
        assert_eq!(
            sha256_hex(b"abc").ok().as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
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
