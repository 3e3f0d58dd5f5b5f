//! A DestinationRule, checked: its host, its top-level and per-port
//! traffic policies, its subsets; and [`ClusterPolicy`], the one policy a
//! destination `host:port` (and subset) ends up with after Istio's merge
//! rules, which is all the data plane reads.
//!
//! Merge rules (Istio's `MergeTrafficPolicy`, as the docs of
//! `DestinationRule.subsets` and `portLevelSettings` describe them): start
//! from the top-level policy; a `portLevelSettings` entry for the port
//! replaces each part it sets (load balancer, connection pool, outlier
//! detection, TLS); then the subset's own policy replaces each part it
//! sets, and its own port-level entry for the port after that. Nothing
//! here does I/O.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

/// A checked DestinationRule.
#[derive(Debug, Clone)]
pub struct CheckedDestinationRule {
    pub namespace: String,
    pub name: String,
    /// Qualified in the rule's namespace, lower-case; may be `*.suffix`.
    pub host: String,
    pub creation_timestamp: Option<String>,
    pub policy: Policy,
    pub subsets: Vec<CheckedSubset>,
}

/// A named subset of the host's endpoints.
#[derive(Debug, Clone)]
pub struct CheckedSubset {
    pub name: String,
    /// Endpoints whose labels include all of these.
    pub labels: BTreeMap<String, String>,
    pub policy: Option<Policy>,
}

/// A `trafficPolicy`: its parts, and the per-port parts.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub parts: ClusterPolicy,
    /// `portLevelSettings`, by port number (unique).
    pub ports: Vec<(u16, ClusterPolicy)>,
}

/// The parts of a policy; as resolved for one destination, what the data
/// plane applies. Each `None` means "not set": gatehouse's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterPolicy {
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier: Option<Outlier>,
    pub tls: Option<UpstreamTls>,
    /// `trafficPolicy.proxyProtocol` (top level only): send a PROXY
    /// protocol header of this version first on each upstream connection.
    pub proxy_protocol: Option<ProxyVersion>,
}

impl ClusterPolicy {
    /// `over`'s parts replace these where `over` sets them.
    pub fn overlay(&mut self, over: &ClusterPolicy) {
        if over.load_balancer.is_some() {
            self.load_balancer.clone_from(&over.load_balancer);
        }
        if over.connection_pool.is_some() {
            self.connection_pool.clone_from(&over.connection_pool);
        }
        if over.outlier.is_some() {
            self.outlier.clone_from(&over.outlier);
        }
        if over.tls.is_some() {
            self.tls.clone_from(&over.tls);
        }
        if over.proxy_protocol.is_some() {
            self.proxy_protocol = over.proxy_protocol;
        }
    }

    /// Whether nothing is set: traffic is sent as without a rule.
    pub fn is_default(&self) -> bool {
        *self == ClusterPolicy::default()
    }
}

impl Policy {
    /// This policy's parts for `port`: the top level, then that port's entry.
    pub fn for_port(&self, port: u16) -> ClusterPolicy {
        let mut p = self.parts.clone();
        if let Some((_, over)) = self.ports.iter().find(|(n, _)| *n == port) {
            p.overlay(over);
        }
        p
    }
}

impl CheckedDestinationRule {
    /// The policy for `port` and `subset` by Istio's merge rules; `None`
    /// when the rule has no subset of that name.
    pub fn resolve(&self, port: u16, subset: Option<&str>) -> Option<ClusterPolicy> {
        let mut p = self.policy.for_port(port);
        if let Some(name) = subset {
            let s = self.subsets.iter().find(|s| s.name == name)?;
            if let Some(sp) = &s.policy {
                p.overlay(&sp.for_port(port));
            }
        }
        Some(p)
    }

    /// The subset named `name`.
    pub fn subset(&self, name: &str) -> Option<&CheckedSubset> {
        self.subsets.iter().find(|s| s.name == name)
    }
}

/// `loadBalancer`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadBalancer {
    pub algorithm: LbAlgorithm,
    /// `warmupDurationSecs`: new endpoints ramp up over this long.
    pub warmup: Option<Duration>,
}

/// How an endpoint is picked.
#[derive(Debug, Clone, PartialEq)]
pub enum LbAlgorithm {
    /// `ROUND_ROBIN`.
    RoundRobin,
    /// `LEAST_REQUEST` (and its old name `LEAST_CONN`, and `UNSPECIFIED`,
    /// which Istio serves as `LEAST_REQUEST`).
    LeastRequest,
    /// `RANDOM`.
    Random,
    /// `consistentHash`: the same key goes to the same endpoint.
    Hash(HashKey),
}

/// What `consistentHash` hashes.
#[derive(Debug, Clone, PartialEq)]
pub enum HashKey {
    Header(HeaderName),
    /// `httpCookie`: hashed when present; when absent and a `ttl` is set,
    /// the gateway makes one and sets it on the answer (Envoy's behaviour).
    Cookie {
        name: String,
        path: Option<String>,
        ttl: Option<Duration>,
    },
    SourceIp,
    QueryParameter(String),
}

/// `connectionPool` (tcp and http).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionPool {
    /// `tcp.maxConnections`.
    pub max_connections: Option<u32>,
    /// `tcp.connectTimeout`.
    pub connect_timeout: Option<Duration>,
    /// `tcp.tcpKeepalive`.
    pub keepalive: Option<Keepalive>,
    /// `tcp.maxConnectionDuration`.
    pub max_connection_duration: Option<Duration>,
    /// `tcp.idleTimeout`.
    pub tcp_idle_timeout: Option<Duration>,
    /// `http.http1MaxPendingRequests`.
    pub http1_max_pending_requests: Option<u32>,
    /// `http.http2MaxRequests`.
    pub http2_max_requests: Option<u32>,
    /// `http.maxRequestsPerConnection` (0: no limit).
    pub max_requests_per_connection: Option<u32>,
    /// `http.maxRetries`.
    pub max_retries: Option<u32>,
    /// `http.idleTimeout`.
    pub idle_timeout: Option<Duration>,
    /// `http.h2UpgradePolicy`.
    pub h2_upgrade: H2Upgrade,
    /// `http.useClientProtocol`.
    pub use_client_protocol: bool,
    /// `http.maxConcurrentStreams`.
    pub max_concurrent_streams: Option<u32>,
}

/// `tcp.tcpKeepalive`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keepalive {
    pub probes: Option<u32>,
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
}

/// `http.h2UpgradePolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum H2Upgrade {
    #[default]
    Default,
    DoNotUpgrade,
    Upgrade,
}

/// `outlierDetection`, with Istio's defaults filled in where the field
/// was absent (`interval` 10s, `baseEjectionTime` 30s,
/// `maxEjectionPercent` 10, `minHealthPercent` 0). The error counts stay
/// as written: `consecutive5xxErrors` unset means Envoy's default of 5,
/// `consecutiveGatewayErrors` unset means off, and 0 turns either off.
#[derive(Debug, Clone, PartialEq)]
pub struct Outlier {
    pub consecutive_5xx: Option<u32>,
    pub consecutive_gateway: Option<u32>,
    pub consecutive_local_origin: Option<u32>,
    pub split_local_origin: bool,
    pub interval: Duration,
    pub base_ejection: Duration,
    pub max_ejection_percent: u32,
    pub min_health_percent: u32,
}

/// `tls` towards the backend (ISTIO_MUTUAL is refused by validation).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTls {
    pub mode: UpstreamTlsMode,
    /// A Secret resolved through SDS (live rotation, last good kept).
    pub credential_name: Option<String>,
    pub client_certificate: Option<PathBuf>,
    pub private_key: Option<PathBuf>,
    pub ca_certificates: Option<PathBuf>,
    pub ca_crl: Option<PathBuf>,
    pub subject_alt_names: Vec<String>,
    pub sni: Option<String>,
    pub insecure_skip_verify: bool,
}

/// `tls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTlsMode {
    /// `DISABLE`: plaintext (a port-level or subset entry may turn off
    /// what the top level set).
    Disable,
    Simple,
    Mutual,
}

/// `proxyProtocol.version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    V1,
    V2,
}
