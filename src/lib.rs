//! gatehouse: a secure ingress gateway configured with the Istio API.
//!
//! Modules are jobs: `config` parses and validates the API objects, `store`
//! keeps them, `secret` turns Secrets into credentials (SDS), `snapshot`
//! compiles what the data plane reads, `tls` and `proxy` serve it,
//! `upstream` finds backends, `control` runs the loop between store and
//! data plane, `runtime` is the process of `gatehouse run` (its runtimes,
//! signals and drain), `admin` shows state, `pki` makes certificates, `cli` is what
//! people type.

pub mod admin;
pub mod cli;
pub mod config;
pub mod control;
pub mod crypto;
pub mod metrics;
pub mod pki;
pub mod proxy;
pub mod runtime;
pub mod secret;
pub mod snapshot;
pub mod store;
pub mod tls;
pub mod upstream;
