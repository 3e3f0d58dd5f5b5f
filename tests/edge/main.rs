//! The edge as an attacker meets it: HTTP/1.1 framing that a smuggler
//! would try (raw bytes over TLS), and the headers a client may not set.
//! Each case asserts the status, that the connection closed, and what the
//! backend received (nothing, for a refused request).
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod edge_framing;
mod edge_h2;
mod edge_hygiene;
mod edge_overload;
mod raw;
