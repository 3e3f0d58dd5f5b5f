//! Traffic depth (issue #13), in one binary: each feature watched through
//! a real gateway (`gatehouse run` on port 0) with real clients (curl,
//! openssl) and real backends.
//!
//! Each file is a module under its own name, so a test keeps its name
//! behind that prefix: `cargo test --test traffic traffic_passthrough::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod traffic_passthrough;
