//! Where a destination host goes: a `ServiceEntry`'s endpoints (STATIC
//! addresses or DNS names), else DNS of the host itself; round-robin over
//! the endpoints.
//!
//! It reads only checked ServiceEntries (`config::checked`), never the
//! serde model, and never picks an address the configuration did not name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::checked::{CheckedServiceEntry, Endpoint, EndpointAddress, Resolution};

/// The endpoints of one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// Addresses given as IPs.
    Static(Vec<SocketAddr>),
    /// Names resolved with DNS at connect time.
    Dns(Vec<(String, u16)>),
}

/// One destination `host:port` and how to reach it.
#[derive(Debug)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
    pub endpoints: Endpoints,
    next: AtomicUsize,
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
            endpoints,
            next: AtomicUsize::new(0),
        }
    }

    /// The next address to connect to.
    pub async fn pick(&self) -> Result<SocketAddr, UpstreamError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        match &self.endpoints {
            Endpoints::Static(addrs) => {
                if addrs.is_empty() {
                    return Err(UpstreamError::NoEndpoint(self.host.clone()));
                }
                Ok(addrs[n % addrs.len()])
            }
            Endpoints::Dns(names) => {
                if names.is_empty() {
                    return Err(UpstreamError::NoEndpoint(self.host.clone()));
                }
                let (name, port) = &names[n % names.len()];
                let mut addrs = tokio::net::lookup_host((name.as_str(), *port))
                    .await
                    .map_err(|e| UpstreamError::Resolve(name.clone(), e.to_string()))?;
                addrs
                    .next()
                    .ok_or_else(|| UpstreamError::NoEndpoint(name.clone()))
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

/// Resolves a route destination (a qualified, lower-case host) against the
/// ServiceEntries.
pub fn resolve(
    host: &str,
    port: Option<u16>,
    entries: &HashMap<&str, &CheckedServiceEntry>,
) -> Upstream {
    let Some(se) = entries.get(host) else {
        let port = port.unwrap_or(80);
        return Upstream::new(
            host.to_owned(),
            port,
            Endpoints::Dns(vec![(host.to_owned(), port)]),
        );
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
                .filter_map(|ep| match ep.address {
                    EndpointAddress::Ip(ip) => Some(SocketAddr::new(ip, target_for(ep))),
                    EndpointAddress::Name(_) | EndpointAddress::Unix(_) => None,
                })
                .collect(),
        ),
        Resolution::Dns | Resolution::DnsRoundRobin if !se.endpoints.is_empty() => Endpoints::Dns(
            se.endpoints
                .iter()
                .filter_map(|ep| match &ep.address {
                    EndpointAddress::Ip(ip) => Some((ip.to_string(), target_for(ep))),
                    EndpointAddress::Name(n) => Some((n.clone(), target_for(ep))),
                    EndpointAddress::Unix(_) => None,
                })
                .collect(),
        ),
        _ => Endpoints::Dns(vec![(host.to_owned(), default_target)]),
    };
    Upstream::new(host.to_owned(), service_port, endpoints)
}
