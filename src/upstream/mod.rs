//! Where a destination host goes: a `ServiceEntry`'s endpoints (STATIC
//! addresses or DNS names), else a Kubernetes Service's ready endpoints
//! (`kube.rs`), else DNS of the host itself; which endpoint
//! gets a request (`balance.rs`, over `ring.rs` for `consistentHash`,
//! skipping what `outlier.rs` ejected); the circuit breakers
//! (`limits.rs`); the state of all three kept across recompiles
//! (`registry.rs`); and the DestinationRule policy it is sent with
//! (`rule.rs`: the most specific rule for the host, its subset's
//! endpoints, the merged policy).
//!
//! It reads only checked objects (`config::checked`), never the serde
//! model, and never picks an address the configuration did not name.

mod balance;
pub mod kube;
pub mod limits;
pub mod outlier;
mod registry;
pub mod ring;
mod rule;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::checked::destination_rule::{CheckedDestinationRule, ClusterPolicy, H2Upgrade};
use crate::config::checked::{
    CheckedServiceEntry, Endpoint, EndpointAddress, Resolution, ServicePort,
};
pub use registry::{Registry, TransportSlot};
pub use rule::{RuleIndex, rule_for};

/// The endpoints of one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// Addresses given as IPs.
    Static(Vec<SocketAddr>),
    /// Names resolved with DNS at connect time.
    Dns(Vec<(String, u16)>),
}

/// One destination `host:port` (and subset: a cluster, in Envoy's
/// words) and how to reach it.
#[derive(Debug)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    /// The DestinationRule subset its endpoints were chosen by.
    pub subset: Option<String>,
    pub endpoints: Endpoints,
    /// How its endpoints are chosen, and their state (`balance`).
    balance: balance::Balance,
    /// The DestinationRule policy for this host, port and subset, merged
    /// (`CheckedDestinationRule::resolve`); the default when no rule names
    /// the host.
    pub policy: Arc<ClusterPolicy>,
    /// `namespace/name` of the DestinationRule the policy came from, for
    /// log lines and the config dump.
    pub rule: Option<Arc<str>>,
    /// Speak HTTP/2 with prior knowledge (h2c) to this destination's
    /// endpoints (a ServiceEntry port of protocol HTTP2 or GRPC, or the
    /// DestinationRule's `h2UpgradePolicy: UPGRADE`); else HTTP/1.1 (or
    /// HTTP/2 where TLS's ALPN agrees on it).
    pub h2c: bool,
    /// The slot of this cluster's own connection pool, when its
    /// `connectionPool` sets a connect timeout, TCP keepalive or idle
    /// timeout (`proxy::pool` fills it); else it shares the gateway's.
    pub transport: Option<Arc<TransportSlot>>,
    /// Why this destination has no endpoints at all by configuration
    /// (a subset no DestinationRule defines): every request gets 503.
    pub unavailable: Option<String>,
    /// TLS to this destination's endpoints (`trafficPolicy.tls` SIMPLE or
    /// MUTUAL): the client its requests go through; `None`: plaintext.
    pub origin: Option<Arc<crate::proxy::transport::Origination>>,
}

/// An [`Upstream`]'s Envoy cluster name, as `Display`.
pub struct ClusterName<'a>(&'a Upstream);

impl std::fmt::Display for ClusterName<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let u = self.0;
        let subset = u.subset.as_deref().unwrap_or("");
        write!(f, "outbound|{}|{subset}|{}", u.port, u.host)
    }
}

/// Why no backend could be chosen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    #[error("no endpoint for {0}")]
    NoEndpoint(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
}

impl Upstream {
    pub fn new(host: String, port: u16, endpoints: Endpoints) -> Upstream {
        Upstream {
            host,
            port,
            subset: None,
            balance: balance::Balance::new(&endpoints),
            endpoints,
            policy: Arc::default(),
            rule: None,
            h2c: false,
            transport: None,
            unavailable: None,
            origin: None,
        }
    }

    /// Envoy's cluster name: `outbound|PORT|SUBSET|HOST`.
    pub fn cluster_name(&self) -> String {
        self.cluster().to_string()
    }

    /// [`Upstream::cluster_name`], written where it goes (no allocation).
    pub fn cluster(&self) -> ClusterName<'_> {
        ClusterName(self)
    }

    /// The next address to connect to, by the cluster's load balancer
    /// without a hash key (a retry's or a mirror's pick).
    pub async fn pick(&self) -> Result<SocketAddr, UpstreamError> {
        self.pick_by(None).await
    }

    /// The address to connect to for a request whose `consistentHash` key
    /// hashes to `hash` (if the cluster hashes and the request has one).
    pub async fn pick_by(&self, hash: Option<u64>) -> Result<SocketAddr, UpstreamError> {
        let i = self
            .choose(hash)
            .ok_or_else(|| UpstreamError::NoEndpoint(self.host.clone()))?;
        match &self.endpoints {
            Endpoints::Static(addrs) => addrs
                .get(i)
                .copied()
                .ok_or_else(|| UpstreamError::NoEndpoint(self.host.clone())),
            Endpoints::Dns(names) => {
                let (name, port) = names
                    .get(i)
                    .ok_or_else(|| UpstreamError::NoEndpoint(self.host.clone()))?;
                let mut addrs = tokio::net::lookup_host((name.as_str(), *port))
                    .await
                    .map_err(|e| UpstreamError::Resolve(name.clone(), e.to_string()))?;
                let addr = addrs
                    .next()
                    .ok_or_else(|| UpstreamError::NoEndpoint(name.clone()))?;
                if let Some(e) = self.balance.endpoints.get(i)
                    && e.resolved.load().as_deref() != Some(&addr)
                {
                    e.resolved.store(Some(Arc::new(addr)));
                }
                Ok(addr)
            }
        }
    }
}

/// ServiceEntries by host (already lower-case); the first (in the given
/// order) wins.
pub fn index<'a>(entries: &[&'a CheckedServiceEntry]) -> HashMap<&'a str, &'a CheckedServiceEntry> {
    let mut map = HashMap::new();
    for se in entries {
        for h in &se.hosts {
            map.entry(h.as_str()).or_insert(*se);
        }
    }
    map
}

/// Resolves a route destination (a qualified, lower-case host, a port and
/// a subset) against the ServiceEntries and the DestinationRule that
/// applies to the host (`rule_for`).
pub fn resolve(
    host: &str,
    port: Option<u16>,
    subset: Option<&str>,
    entries: &HashMap<&str, &CheckedServiceEntry>,
    rule: Option<&CheckedDestinationRule>,
) -> Upstream {
    resolve_in(
        host,
        port,
        subset,
        (entries, &kube::Services::default()),
        rule,
    )
}

/// [`resolve`], with the Kubernetes Services a host without a
/// ServiceEntry resolves through (a ServiceEntry wins, as in Istio).
pub fn resolve_in(
    host: &str,
    port: Option<u16>,
    subset: Option<&str>,
    (entries, services): (&HashMap<&str, &CheckedServiceEntry>, &kube::Services<'_>),
    rule: Option<&CheckedDestinationRule>,
) -> Upstream {
    let from_service = if entries.contains_key(host) {
        None
    } else {
        services.resolve(host, port, labelled(rule.zip(subset)))
    };
    let mut up = match from_service {
        Some(up) => up,
        None => endpoints_of(host, port, entries, rule.zip(subset)),
    };
    up.subset = subset.map(str::to_owned);
    if let Some(r) = rule {
        up.rule = Some(format!("{}/{}", r.namespace, r.name).into());
        match r.resolve(up.port, subset) {
            Some(p) => {
                up.h2c |= upgrades_to_h2(&p);
                up.policy = Arc::new(p);
            }
            None => up.unavailable = subset.map(|s| missing_subset(host, s, Some(r))),
        }
    } else if let Some(s) = subset {
        up.unavailable = Some(missing_subset(host, s, None));
    }
    if up.unavailable.is_some() {
        up.endpoints = Endpoints::Static(Vec::new());
        up.balance = balance::Balance::new(&up.endpoints);
    }
    up
}

/// `connectionPool.http.h2UpgradePolicy: UPGRADE`: HTTP/2 with prior
/// knowledge to a port declared HTTP/1.1 (or not declared).
fn upgrades_to_h2(p: &ClusterPolicy) -> bool {
    p.connection_pool
        .as_ref()
        .is_some_and(|c| c.h2_upgrade == H2Upgrade::Upgrade)
}

fn missing_subset(host: &str, subset: &str, rule: Option<&CheckedDestinationRule>) -> String {
    match rule {
        Some(r) => format!(
            "DestinationRule {}/{} for {host} has no subset {subset:?}",
            r.namespace, r.name
        ),
        None => format!("no DestinationRule for {host} defines subset {subset:?}"),
    }
}

/// Whether `subset` selects endpoints by labels.
fn labelled(subset: Option<(&CheckedDestinationRule, &str)>) -> bool {
    subset
        .and_then(|(r, s)| r.subset(s))
        .is_some_and(|s| !s.labels.is_empty())
}

/// The endpoints of `host` (those of `subset`'s labels when one is given).
fn endpoints_of(
    host: &str,
    port: Option<u16>,
    entries: &HashMap<&str, &CheckedServiceEntry>,
    subset: Option<(&CheckedDestinationRule, &str)>,
) -> Upstream {
    let labels = subset.and_then(|(r, s)| r.subset(s)).map(|s| &s.labels);
    let in_subset =
        |ep: &Endpoint| labels.is_none_or(|l| l.iter().all(|(k, v)| ep.labels.get(k) == Some(v)));
    let Some(se) = entries.get(host) else {
        let port = port.unwrap_or(80);
        // A subset selects endpoints by their labels; the host's own DNS
        // name has none, so only a subset without labels keeps it.
        let names = if labels.is_some_and(|l| !l.is_empty()) {
            Vec::new()
        } else {
            vec![(host.to_owned(), port)]
        };
        return Upstream::new(host.to_owned(), port, Endpoints::Dns(names));
    };
    let se_port = match port {
        Some(p) => se.ports.iter().find(|sp| sp.number == p),
        None if se.ports.len() == 1 => se.ports.first(),
        None => None,
    };
    let service_port = port.or(se_port.map(|p| p.number)).unwrap_or(80);
    let default_target = se_port.map_or(service_port, |p| p.target_port.unwrap_or(p.number));
    let target_for = |ep: &Endpoint| -> u16 {
        se_port
            .and_then(|sp| ep.ports.get(&sp.name).copied())
            .unwrap_or(default_target)
    };
    let endpoints = match se.resolution {
        Resolution::Static => Endpoints::Static(
            se.endpoints
                .iter()
                .filter(|ep| in_subset(ep))
                .filter_map(|ep| match ep.address {
                    EndpointAddress::Ip(ip) => Some(SocketAddr::new(ip, target_for(ep))),
                    EndpointAddress::Name(_) | EndpointAddress::Unix(_) => None,
                })
                .collect(),
        ),
        Resolution::Dns | Resolution::DnsRoundRobin if !se.endpoints.is_empty() => Endpoints::Dns(
            se.endpoints
                .iter()
                .filter(|ep| in_subset(ep))
                .filter_map(|ep| match &ep.address {
                    EndpointAddress::Ip(ip) => Some((ip.to_string(), target_for(ep))),
                    EndpointAddress::Name(n) => Some((n.clone(), target_for(ep))),
                    EndpointAddress::Unix(_) => None,
                })
                .collect(),
        ),
        _ if labels.is_some_and(|l| !l.is_empty()) => Endpoints::Dns(Vec::new()),
        _ => Endpoints::Dns(vec![(host.to_owned(), default_target)]),
    };
    let mut up = Upstream::new(host.to_owned(), service_port, endpoints);
    up.h2c = se_port.is_some_and(ServicePort::speaks_h2);
    up
}
