//! The embedded store through its public API, in one binary: its contract,
//! watches, several writers at once and writers killed mid-apply. Two
//! modules re-execute this binary as a writer process
//! ([`support::this_test`]).
//!
//! Each former test file is a module under its old name, so a test keeps
//! its name behind that prefix: `cargo test --test store store_crash::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod store_basic;
mod store_crash;
mod store_multiprocess;
mod store_watch;
