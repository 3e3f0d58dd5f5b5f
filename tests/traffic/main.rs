//! Traffic depth (issue #13), in one binary: each feature of Istio's
//! traffic API that gatehouse applies, watched through a real gateway
//! (`gatehouse run` on port 0) with real clients and backends.
//!
//! Each file is a module under its own name, so a test keeps its name
//! behind that prefix: `cargo test --test traffic traffic_fault::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod traffic_balance;
mod traffic_cors;
mod traffic_discovery;
mod traffic_fault;
mod traffic_grpc;
mod traffic_mirror;
mod traffic_origination;
mod traffic_passthrough;
mod traffic_proxy_protocol;
mod traffic_retries;
mod traffic_reuse;
mod traffic_routes;
