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
mod error;
mod files;
mod key;
mod layout;
mod leaf;
mod x509;

pub use ca::{Ca, CaSpec, DEFAULT_INTERMEDIATE_DAYS, DEFAULT_ROOT_DAYS};
pub use crl::{CrlSpec, Revoked, read_index};
pub use encrypted::encrypted_key_pem_example;
pub use error::PkiError;
pub use key::KeyType;
pub use layout::{HostLayout, InitOptions, init, issue_client, revoke, validate_host, write_crl};
pub use leaf::{DEFAULT_LEAF_DAYS, Issued, LeafSpec, self_signed};
