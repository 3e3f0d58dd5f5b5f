//! Scale-out on a real etcd (Debian's etcd 3.4), in one binary: conflicts
//! between writers, outages, replicas, sealed secrets and watches. Each test
//! starts its own cluster, so this binary is the slowest and kept apart.
//!
//! Each former test file is a module under its old name, so a test keeps
//! its name behind that prefix: `cargo test --test etcd etcd_watch::`.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod etcd_conflict;
mod etcd_outage;
mod etcd_replicas;
mod etcd_secrets;
mod etcd_watch;
