//! The metrics of passed-on connections (TLS passthrough and TCP routes),
//! Istio's `istio_tcp_connections_closed_total` and
//! `istio_tcp_sent_bytes_total` / `istio_tcp_received_bytes_total`:
//! counted once per connection, when it ends. Labels come from the config
//! (server id, route name) or fixed lists (response flags, direction),
//! never from the client (an SNI nobody serves is `server=""`).

use std::fmt;
use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::{Registry, Unit};

use super::labels::label;

/// `{server, route, flags}` of `gatehouse_tcp_connections_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TcpLabels {
    pub server: Arc<str>,
    /// "" when no route took the connection.
    pub route: Option<Arc<str>>,
    /// Envoy's response flags of the connection (`-`, `NR`, `UF`, ...).
    pub flags: &'static str,
}

impl EncodeLabelSet for TcpLabels {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        label(enc, "server", &self.server)?;
        label(enc, "route", self.route.as_deref().unwrap_or(""))?;
        label(enc, "flags", self.flags)
    }
}

/// `{server, route, direction}` of `gatehouse_tcp_bytes_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TcpBytesLabels {
    pub server: Arc<str>,
    pub route: Option<Arc<str>>,
    /// `received` (from the client) or `sent` (to it).
    pub direction: &'static str,
}

impl EncodeLabelSet for TcpBytesLabels {
    fn encode(&self, enc: &mut LabelSetEncoder) -> Result<(), fmt::Error> {
        label(enc, "server", &self.server)?;
        label(enc, "route", self.route.as_deref().unwrap_or(""))?;
        label(enc, "direction", self.direction)
    }
}

/// Puts the two families into the registry.
pub(super) fn register(
    r: &mut Registry,
    connections: &Family<TcpLabels, Counter>,
    bytes: &Family<TcpBytesLabels, Counter>,
) {
    r.register(
        "tcp_connections",
        "Passed-on connections (TLS passthrough and TCP routes) that ended, by gateway server, route and Envoy response flags",
        connections.clone(),
    );
    r.register_with_unit(
        "tcp",
        "Bytes of passed-on connections, by gateway server, route and direction (received from or sent to the client)",
        Unit::Bytes,
        bytes.clone(),
    );
}
