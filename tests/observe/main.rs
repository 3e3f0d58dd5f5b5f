//! Observability (issue #12), in one binary: the Prometheus metrics of a
//! running walkthrough gateway, scraped and parsed by a real parser.
//!
//! Each former test file is a module under its old name, so a test keeps
//! its name behind that prefix: `cargo test --test observe observe_metrics::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod observe_metrics;
