//! The edge as an attacker meets it: HTTP/1.1 framing that a smuggler
//! would try (raw bytes over TLS), the headers a client may not set, paths
//! that try to reach another route, and client certificates whose fields
//! try to forge or drop `x-forwarded-client-cert`, the limits, the TLS
//! alerts of a refused handshake, and sessions that must not resume once
//! the server's client policy would refuse them.
//! Each case asserts the status, that the connection closed, and what the
//! backend received (nothing, for a refused request).
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod support;

mod edge_alerts;
mod edge_framing;
mod edge_h2;
mod edge_hygiene;
mod edge_limits;
mod edge_overload;
mod edge_paths;
mod edge_resumption;
mod edge_xfcc;
mod h2py;
mod raw;
