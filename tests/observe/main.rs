//! Observability (issue #12), in one binary: the access log, the metrics,
//! the config dump and the dashboard, each watched through a real gateway
//! with real clients.
//!
//! Each file is a module under its own name, so a test keeps its name
//! behind that prefix: `cargo test --test observe observe_access_log::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod observe_ui;
