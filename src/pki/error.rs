//! What can go wrong making or writing certificates.

use std::path::PathBuf;

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

    #[error(transparent)]
    Random(#[from] crate::crypto::RandomError),
}
