//! `gatehouse run` as a server process, in one binary: its flags and
//! readiness, its runtimes, and the SIGTERM/SIGINT drain.
//!
//! Each former test file is a module under its old name:
//! `cargo test --test runtime runtime_drain::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod runtime_drain;
mod runtime_flags;
