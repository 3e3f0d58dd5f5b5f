//! The config pipeline, end to end, in one binary: what `gatehouse apply`
//! refuses, warns about (fields gatehouse does not apply,
//! ConflictingGateways) and what a running gateway then serves.
//!
//! Each former test file is a module under its old name:
//! `cargo test --test config config_warnings::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod config_typed;
mod config_warnings;
