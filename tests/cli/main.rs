//! The quick tests, in one binary: the command line (manifests in, errors
//! out, the walkthrough typed with `gatehouse`) and the `pki` library
//! checked with openssl and rustls. Nothing here starts a gateway.
//!
//! Each former test file is a module under its old name, so a test keeps
//! its name behind that prefix: `cargo test --test cli cli_errors::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod cli_errors;
mod cli_flags;
mod cli_inputs;
mod cli_walkthrough;
mod harness;
mod pki_lib;
