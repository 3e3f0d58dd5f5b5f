//! Traffic depth (issue #13), in one binary: each feature of the Istio
//! traffic API watched through a real gateway (`gatehouse run` on port 0)
//! with real clients (curl, the in-process mTLS client) and the harness's
//! backends.
//!
//! Each file is a module under its own name, so a test keeps its name
//! behind that prefix: `cargo test --test traffic traffic_retries::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod traffic_mirror;
mod traffic_retries;
