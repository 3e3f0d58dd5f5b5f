//! gatehouse: a secure ingress gateway configured with the Istio API.
//!
//! Modules are jobs: `config` parses and validates the API objects, `store`
//! keeps them, `pki` makes certificates, `cli` is what people type.

pub mod cli;
pub mod config;
pub mod pki;
pub mod secret;
pub mod store;
