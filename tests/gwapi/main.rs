//! The Kubernetes Gateway API (issue #14, part 3), in one binary: the
//! Gateway API project's own examples (read at run time from
//! `/work/shared/k8s/examples/gateway-api-v1.6.1/`, with gatehouse's
//! GatewayClass and local backends behind ServiceEntries), applied to the
//! dir store and served by a real gateway, driven with curl.
//!
//! Each file is a module under its own name: `cargo test --test gwapi gwapi_http::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod common;
mod gwapi_apply;
mod gwapi_cross;
mod gwapi_http;
mod gwapi_tls;
