//! Credentials pushed into a running gateway, in one binary: rotation,
//! rejected pushes, trust changes, hosts added live and file-mounted
//! certificates, under in-process mTLS load. These tests measure how soon a
//! change is served, so they are kept apart from the quick ones.
//!
//! Each former test file is a module under its old name, so a test keeps
//! its name behind that prefix: `cargo test --test sds sds_rotation::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod sds_add_host;
mod sds_bad_push;
mod sds_ca_removal;
mod sds_expiry;
mod sds_file_mount;
mod sds_rotation;
