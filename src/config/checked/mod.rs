//! The checked form of the API objects: what `validate::check` returns and
//! the only thing the snapshot compiler reads.
//!
//! Every value here has been parsed once and holds its type: ports are
//! `u16`, hosts are qualified and lower-cased, regexes compiled, status
//! codes `StatusCode`s, bodies bytes, header operations `HeaderName`s and
//! `HeaderValue`s, durations `Duration`s. Code that reads these never
//! re-parses a string and has no fallback to substitute: a value that
//! cannot be built is a validation error with its field path. Nothing here
//! does I/O.

pub mod cors;
pub mod destination_rule;
pub mod fault;
pub mod retry;
pub mod route;

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::gateway::ServerTls;
use super::host::GatewayHost;
use super::service_entry;
pub use route::HttpRoute;

/// A checked object of any kind; a Secret's content is checked by SDS.
#[derive(Debug, Clone)]
pub enum Checked {
    Gateway(CheckedGateway),
    VirtualService(CheckedVirtualService),
    ServiceEntry(CheckedServiceEntry),
    DestinationRule(Box<destination_rule::CheckedDestinationRule>),
    Secret,
    Service(super::discovery::CheckedService),
    EndpointSlice(super::discovery::CheckedEndpointSlice),
    /// A Gateway API object: what it serves depends on the others, so it
    /// is translated as a whole (`config::gateway_api::translate`).
    GatewayApi,
}

/// Protocols a Gateway server carries, as gatehouse serves them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerProtocol {
    /// `HTTPS` and `TLS`: a TLS listener.
    Tls,
    /// `HTTPS` or `TLS` with `tls.mode: PASSTHROUGH`: routed by SNI to the
    /// VirtualServices' `tls[]` routes, never terminated.
    Passthrough,
    /// `tls.mode: AUTO_PASSTHROUGH`: routed by Istio's SNI form
    /// `outbound_.PORT_._.HOST` to the ServiceEntry host and port it names.
    AutoPassthrough,
    /// `TCP` and `MONGO`: bytes copied to the `tcp[]` routes' backend.
    Tcp,
    /// Every other protocol is served as plain HTTP.
    Plain,
}

/// One Gateway server.
#[derive(Debug, Clone)]
pub struct CheckedServer {
    /// `namespace/gateway/port-name`: stable across snapshots.
    pub id: String,
    pub port: u16,
    pub protocol: ServerProtocol,
    pub hosts: Vec<GatewayHost>,
    /// Its `tls` block (defaults when absent).
    pub tls: ServerTls,
}

/// A Gateway.
#[derive(Debug, Clone)]
pub struct CheckedGateway {
    pub namespace: String,
    pub name: String,
    pub selector: BTreeMap<String, String>,
    pub servers: Vec<CheckedServer>,
}

impl CheckedGateway {
    /// Whether this Gateway's selector picks a process with `labels`.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selector.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// A VirtualService.
#[derive(Debug, Clone)]
pub struct CheckedVirtualService {
    pub namespace: String,
    pub name: String,
    /// Merge order between VirtualServices of one host.
    pub creation_timestamp: Option<String>,
    /// Qualified (`host::qualify`) and lower-cased.
    pub hosts: Vec<String>,
    /// (namespace, name) of each bound Gateway; `mesh` is kept as a name.
    pub gateways: Vec<(String, String)>,
    pub http: Vec<HttpRoute>,
    /// `tls[]` routes (for PASSTHROUGH servers).
    pub tls: Vec<L4Route>,
    /// `tcp[]` routes (for TCP servers).
    pub tcp: Vec<L4Route>,
}

/// A `tls[]` or `tcp[]` route: where a whole connection goes.
#[derive(Debug, Clone)]
pub struct L4Route {
    /// Its `match[]` entries; none matches every connection (`tcp[]` only).
    pub matches: Vec<L4Match>,
    /// The destinations with their weights.
    pub route: Vec<route::Destination>,
}

/// One `match[]` entry of a `tls[]` or `tcp[]` route.
#[derive(Debug, Clone)]
pub struct L4Match {
    /// `sniHosts`, lower-cased (`tls[]` only; `*.` wildcards allowed).
    pub sni_hosts: Vec<String>,
    /// The Gateway port it applies to; `None` for every port.
    pub port: Option<u16>,
    pub source: MatchSource,
}

/// The parts of a `match[]` entry about where the request comes from,
/// decided once per Gateway when routes are compiled, as Istio decides
/// them per proxy: `gateways` (which Gateways the entry applies on, over
/// the VirtualService's own list), `sourceNamespace` (the gateway's
/// namespace: at an ingress, the proxy is the source) and `sourceLabels`
/// (the process's `--labels`).
#[derive(Debug, Clone, Default)]
pub struct MatchSource {
    /// `(namespace, name)`; `mesh` is `("", "mesh")` and names no Gateway.
    pub gateways: Vec<(String, String)>,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl MatchSource {
    /// Whether the entry applies on Gateway `ns/name` in a process with
    /// `labels`.
    pub fn applies(&self, ns: &str, name: &str, labels: &BTreeMap<String, String>) -> bool {
        (self.gateways.is_empty() || self.gateways.iter().any(|(n, g)| n == ns && g == name))
            && self.namespace.as_deref().is_none_or(|n| n == ns)
            && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }

    /// Whether it sets any condition.
    pub fn is_empty(&self) -> bool {
        self.gateways.is_empty() && self.namespace.is_none() && self.labels.is_empty()
    }

    /// A Gateway reference as written in `gateways`: `name` (in the
    /// VirtualService's namespace), `namespace/name` or `mesh`.
    pub fn gateway_ref(g: &str, vs_namespace: &str) -> (String, String) {
        match g.split_once('/') {
            Some((ns, name)) => (ns.to_owned(), name.to_owned()),
            None if g == "mesh" => (String::new(), g.to_owned()),
            None => (vs_namespace.to_owned(), g.to_owned()),
        }
    }
}

/// One ServiceEntry port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub number: u16,
    pub name: String,
    pub target_port: Option<u16>,
    /// `protocol`, upper-cased (Istio reads it case-insensitively);
    /// empty when not given.
    pub protocol: String,
}

impl ServicePort {
    /// Whether the port speaks HTTP/2 with prior knowledge (h2c): Istio's
    /// `HTTP2` and `GRPC`.
    pub fn speaks_h2(&self) -> bool {
        matches!(self.protocol.as_str(), "HTTP2" | "GRPC")
    }
}

/// Where an endpoint is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointAddress {
    Ip(IpAddr),
    /// A DNS name (resolution DNS).
    Name(String),
    /// A `unix://` socket path: not served by gatehouse.
    Unix(String),
}

/// One ServiceEntry endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub address: EndpointAddress,
    /// Target ports by service port name.
    pub ports: BTreeMap<String, u16>,
    /// What DestinationRule subsets select it by.
    pub labels: BTreeMap<String, String>,
}

/// How a ServiceEntry's endpoints are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Istio's NONE: addresses as the client asked for them.
    None,
    Static,
    Dns,
    DnsRoundRobin,
}

impl From<service_entry::Resolution> for Resolution {
    fn from(r: service_entry::Resolution) -> Resolution {
        match r {
            service_entry::Resolution::None => Resolution::None,
            service_entry::Resolution::Static => Resolution::Static,
            service_entry::Resolution::Dns => Resolution::Dns,
            service_entry::Resolution::DnsRoundRobin => Resolution::DnsRoundRobin,
        }
    }
}

/// A ServiceEntry.
#[derive(Debug, Clone)]
pub struct CheckedServiceEntry {
    pub namespace: String,
    pub name: String,
    /// Lower-cased, as written (Istio does not qualify ServiceEntry hosts).
    pub hosts: Vec<String>,
    pub ports: Vec<ServicePort>,
    pub resolution: Resolution,
    pub endpoints: Vec<Endpoint>,
}
