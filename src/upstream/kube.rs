//! Kubernetes service discovery: a destination `NAME.NS.svc.cluster.local`
//! that no ServiceEntry names, with a Service `NS/NAME`, goes to the ready
//! endpoints of the EndpointSlices labelled
//! `kubernetes.io/service-name: NAME` in `NS`.
//!
//! The destination's port picks the Service port with that `port` (none
//! given: the Service's only port); each slice's port is the one with
//! that Service port's name (an unnamed Service port: the slice's only
//! port). Only endpoints whose `conditions.ready` is not `false` are
//! used. It reads checked objects only and never picks an address that a
//! slice did not list; a host with neither ServiceEntry nor Service is
//! not its business (the caller keeps DNS of the host).

use std::collections::HashMap;
use std::net::SocketAddr;

use super::{Endpoints, Upstream};
use crate::config::discovery::{AddressType, CheckedEndpointSlice, CheckedService, KubePort};

/// The cluster domain of Service hosts.
const SERVICE_SUFFIX: &str = ".svc.cluster.local";

/// The Services and their slices by `(namespace, name)`, for one compile.
#[derive(Debug, Default)]
pub struct Services<'m> {
    services: HashMap<(&'m str, &'m str), &'m CheckedService>,
    slices: HashMap<(&'m str, &'m str), Vec<&'m CheckedEndpointSlice>>,
}

impl<'m> Services<'m> {
    pub fn new(services: &[&'m CheckedService], slices: &[&'m CheckedEndpointSlice]) -> Self {
        let mut by_service: HashMap<(&str, &str), Vec<&CheckedEndpointSlice>> = HashMap::new();
        for s in slices {
            if let Some(svc) = &s.service {
                by_service
                    .entry((s.namespace.as_str(), svc.as_str()))
                    .or_default()
                    .push(s);
            }
        }
        // Slices in name order, so endpoints keep their order across compiles.
        for v in by_service.values_mut() {
            v.sort_by(|a, b| a.name.cmp(&b.name));
        }
        Services {
            services: services
                .iter()
                .map(|s| ((s.namespace.as_str(), s.name.as_str()), *s))
                .collect(),
            slices: by_service,
        }
    }

    /// The Service a host names, if there is one.
    fn service(&self, host: &str) -> Option<&'m CheckedService> {
        let (name, ns) = host.strip_suffix(SERVICE_SUFFIX)?.split_once('.')?;
        if ns.contains('.') {
            return None;
        }
        self.services.get(&(ns, name)).copied()
    }

    /// The destination `host` (`port`, if given) as a Service's endpoints,
    /// when a Service has that host; `labelled` when a subset selects
    /// endpoints by labels, which slices do not carry (so none is chosen).
    pub(super) fn resolve(
        &self,
        host: &str,
        port: Option<u16>,
        labelled: bool,
    ) -> Option<Upstream> {
        let svc = self.service(host)?;
        let sp = match port {
            Some(p) => svc.ports.iter().find(|sp| sp.port == p),
            None if svc.ports.len() == 1 => svc.ports.first(),
            None => None,
        };
        let service_port = port.or(sp.map(|p| p.port)).unwrap_or(80);
        if let Some(external) = &svc.external_name {
            let names = if labelled {
                Vec::new()
            } else {
                vec![(external.clone(), service_port)]
            };
            return Some(Upstream::new(
                host.to_owned(),
                service_port,
                Endpoints::Dns(names),
            ));
        }
        let Some(sp) = sp else {
            let mut up =
                Upstream::new(host.to_owned(), service_port, Endpoints::Static(Vec::new()));
            up.unavailable = Some(match port {
                Some(p) => format!("Service {}/{} has no TCP port {p}", svc.namespace, svc.name),
                None => format!(
                    "Service {}/{} has {} TCP ports: the destination must name one",
                    svc.namespace,
                    svc.name,
                    svc.ports.len()
                ),
            });
            return Some(up);
        };
        let addrs = if labelled {
            Vec::new()
        } else {
            let slices = self
                .slices
                .get(&(svc.namespace.as_str(), svc.name.as_str()));
            ready_addresses(sp, slices.map_or(&[][..], Vec::as_slice))
        };
        let mut up = Upstream::new(host.to_owned(), sp.port, Endpoints::Static(addrs));
        up.h2c = sp.h2c;
        Some(up)
    }
}

/// The slice port for Service port `sp`: the one of the same name, or,
/// for an unnamed Service port, the slice's only port.
fn slice_port(sp: &KubePort, slice: &CheckedEndpointSlice) -> Option<u16> {
    let by_name = slice.ports.iter().find(|p| p.name == sp.name);
    let only = || match slice.ports.as_slice() {
        [one] if sp.name.is_empty() => Some(one),
        _ => None,
    };
    by_name.or_else(only).and_then(|p| p.port)
}

/// Every ready address of `slices` on Service port `sp`'s slice port,
/// each once, in slice-name then listed order. FQDN slices are skipped
/// (`apply` warns about them).
fn ready_addresses(sp: &KubePort, slices: &[&CheckedEndpointSlice]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for s in slices {
        if s.address_type == AddressType::Fqdn {
            continue;
        }
        let Some(port) = slice_port(sp, s) else {
            continue;
        };
        for ep in &s.ready {
            for ip in &ep.addresses {
                let a = SocketAddr::new(*ip, port);
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::discovery::{ReadyEndpoint, SlicePortRef};

    fn svc(ports: &[(&str, u16)]) -> CheckedService {
        CheckedService {
            namespace: "ux".into(),
            name: "frontend".into(),
            ports: ports
                .iter()
                .map(|(n, p)| KubePort {
                    name: (*n).into(),
                    port: *p,
                    h2c: false,
                })
                .collect(),
            external_name: None,
        }
    }

    fn slice(name: &str, ports: &[(&str, u16)], ips: &[&str]) -> CheckedEndpointSlice {
        CheckedEndpointSlice {
            namespace: "ux".into(),
            name: name.into(),
            service: Some("frontend".into()),
            address_type: AddressType::Ipv4,
            ready: ips
                .iter()
                .map(|ip| ReadyEndpoint {
                    addresses: vec![ip.parse().unwrap()],
                })
                .collect(),
            total: ips.len(),
            ports: ports
                .iter()
                .map(|(n, p)| SlicePortRef {
                    name: (*n).into(),
                    port: Some(*p),
                })
                .collect(),
        }
    }

    fn addrs(up: &Upstream) -> Vec<String> {
        match &up.endpoints {
            Endpoints::Static(a) => a.iter().map(ToString::to_string).collect(),
            Endpoints::Dns(_) => panic!("dns"),
        }
    }

    const HOST: &str = "frontend.ux.svc.cluster.local";

    #[test]
    fn the_port_is_found_by_name_in_each_slice() {
        let s = svc(&[("http", 80), ("admin", 81)]);
        let a = slice("a", &[("admin", 9001), ("http", 8080)], &["10.0.0.1"]);
        let b = slice("b", &[("http", 8081)], &["10.0.0.2", "10.0.0.1"]);
        let other = slice("c", &[("http", 1)], &["10.9.9.9"]);
        let mut other = other;
        other.service = Some("other".into());
        let services = Services::new(&[&s], &[&b, &a, &other]);
        let up = services.resolve(HOST, Some(80), false).unwrap();
        assert_eq!(
            addrs(&up),
            ["10.0.0.1:8080", "10.0.0.2:8081", "10.0.0.1:8081"]
        );
        assert_eq!(up.port, 80);
        let admin = services.resolve(HOST, Some(81), false).unwrap();
        assert_eq!(addrs(&admin), ["10.0.0.1:9001"]);
        let none = services.resolve(HOST, Some(82), false).unwrap();
        assert!(none.unavailable.is_some());
        assert!(
            services
                .resolve(HOST, None, false)
                .unwrap()
                .unavailable
                .is_some()
        );
        assert!(
            services
                .resolve("frontend.ux.svc.cluster.local.x", Some(80), false)
                .is_none()
        );
        assert!(
            services
                .resolve("frontend.other.svc.cluster.local", Some(80), false)
                .is_none()
        );
    }

    #[test]
    fn an_unnamed_port_takes_the_slice_s_only_port() {
        let s = svc(&[("", 80)]);
        let a = slice("a", &[("", 8080)], &["10.0.0.1"]);
        let services = Services::new(&[&s], &[&a]);
        let up = services.resolve(HOST, None, false).unwrap();
        assert_eq!(
            (addrs(&up), up.port),
            (vec!["10.0.0.1:8080".to_owned()], 80)
        );
        assert!(addrs(&services.resolve(HOST, None, true).unwrap()).is_empty());
    }
}
