//! Observability (issue #12), in one binary: the access log, the metrics,
//! the config dump with `proxy-config` / `proxy-status`, and the
//! dashboard in headless Chromium, each watched through a real gateway
//! (`gatehouse run` on port 0, and a real etcd cluster for a replica that
//! falls behind) with real clients.
//!
//! Each file is a module under its own name, so a test keeps its name
//! behind that prefix: `cargo test --test observe observe_access_log::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod observe_access_log;
mod observe_config;
mod observe_metrics;
mod observe_ui;
