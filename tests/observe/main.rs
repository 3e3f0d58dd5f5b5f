//! Observability (#12), in one binary: the admin endpoint's `/config_dump`
//! and the `proxy-config` / `proxy-status` commands, each against its own
//! `gatehouse run` on port 0 (and, for a replica that falls behind, a real
//! etcd cluster).
//!
//! Each file is a module, so a test keeps its name behind that prefix:
//! `cargo test --test observe observe_config::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod observe_config;
