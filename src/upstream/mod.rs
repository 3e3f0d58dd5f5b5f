//! Where a destination host goes: a `ServiceEntry`'s endpoints (STATIC
//! addresses or DNS names), else DNS of the host itself; round-robin over
//! the endpoints.
//!
//! It never picks an address the configuration did not name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::service_entry::{Resolution, ServiceEntry};

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

/// ServiceEntries by host (lower-case); the first (in the given order) wins.
pub fn index<'a>(entries: &[&'a ServiceEntry]) -> HashMap<String, &'a ServiceEntry> {
    let mut map = HashMap::new();
    for se in entries {
        for h in &se.spec.hosts {
            map.entry(h.to_ascii_lowercase()).or_insert(*se);
        }
    }
    map
}

/// Resolves a route destination against the ServiceEntries.
pub fn resolve(
    host: &str,
    port: Option<u16>,
    entries: &HashMap<String, &ServiceEntry>,
) -> Upstream {
    let host_l = host.to_ascii_lowercase();
    let entry = entries.get(&host_l);
    let Some(se) = entry else {
        let port = port.unwrap_or(80);
        return Upstream::new(host_l.clone(), port, Endpoints::Dns(vec![(host_l, port)]));
    };
    let spec = &se.spec;
    let se_port = match port {
        Some(p) => spec.ports.iter().find(|sp| sp.number == u32::from(p)),
        None if spec.ports.len() == 1 => spec.ports.first(),
        None => None,
    };
    let service_port = port
        .or_else(|| se_port.and_then(|p| u16::try_from(p.number).ok()))
        .unwrap_or(80);
    let default_target = se_port
        .and_then(|p| p.target_port.or(Some(p.number)))
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(service_port);
    let target_for = |ep: &crate::config::service_entry::WorkloadEntry| -> u16 {
        se_port
            .and_then(|sp| ep.ports.get(&sp.name))
            .and_then(|p| u16::try_from(*p).ok())
            .unwrap_or(default_target)
    };
    let endpoints = match spec.resolution {
        Resolution::Static => Endpoints::Static(
            spec.endpoints
                .iter()
                .filter_map(|ep| {
                    ep.address
                        .parse::<std::net::IpAddr>()
                        .ok()
                        .map(|ip| SocketAddr::new(ip, target_for(ep)))
                })
                .collect(),
        ),
        Resolution::Dns | Resolution::DnsRoundRobin if !spec.endpoints.is_empty() => {
            Endpoints::Dns(
                spec.endpoints
                    .iter()
                    .map(|ep| (ep.address.clone(), target_for(ep)))
                    .collect(),
            )
        }
        _ => Endpoints::Dns(vec![(host_l.clone(), default_target)]),
    };
    Upstream::new(host_l, service_port, endpoints)
}
