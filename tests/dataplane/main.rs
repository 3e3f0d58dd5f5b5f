//! The data plane as clients meet it, in one binary: handshakes, SNI,
//! routing, headers, edge defaults and the walkthrough, each against its
//! own `gatehouse run` on port 0, and the Quickstart's `gatehouse demo`.
//!
//! Each former test file is a module under its old name, so a test keeps
//! its name behind that prefix: `cargo test --test dataplane dataplane_sni::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod dataplane_edge;
mod dataplane_handshake;
mod dataplane_headers;
mod dataplane_routing;
mod dataplane_sni;
mod dataplane_tls;
mod dataplane_walkthrough;
mod demo;
mod istio_secure_gateways;
