//! Observability (issue #12), in one binary: the access log, the metrics,
//! the config dump and the dashboard, each watched through a real gateway
//! with real clients (the metrics parsed by a real Prometheus parser, the
//! dump read back by a YAML parser, the dashboard in a real browser).
//!
//! Each file is a module under its own name, so a test keeps its name
//! behind that prefix: `cargo test --test observe observe_metrics::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod observe_config;
mod observe_metrics;
mod observe_ui;
