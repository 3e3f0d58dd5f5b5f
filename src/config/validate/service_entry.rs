//! Rules for `ServiceEntry`: hosts, addresses, ports, resolution and endpoints.

use std::collections::BTreeSet;

use super::super::checked::{CheckedServiceEntry, Endpoint, EndpointAddress, ServicePort};
use super::super::error::FieldErrors;
use super::super::host::{check_host, is_dns1123_label};
use super::super::service_entry::{Resolution, ServiceEntry};
use super::{ip_or_cidr, port, port_number};

/// Protocols a ServiceEntry port may carry (empty: detected).
const SERVICE_PROTOCOLS: &[&str] = &[
    "HTTP", "HTTPS", "HTTP2", "GRPC", "TCP", "TLS", "MONGO", "MYSQL", "REDIS", "UDP",
];

/// Checks a ServiceEntry; `Some` only when it has no error.
pub(super) fn service_entry(s: &ServiceEntry, e: &mut FieldErrors) -> Option<CheckedServiceEntry> {
    let before = e.0.len();
    rules(s, e);
    if e.0.len() != before {
        return None;
    }
    let spec = &s.spec;
    let mut ports = Vec::new();
    for (i, sp) in spec.ports.iter().enumerate() {
        let p = format!("spec.ports[{i}]");
        let number = port(sp.number, format!("{p}.number"), e);
        // `Some(None)`: no targetPort (the port itself); `None`: a bad one.
        let target = match sp.target_port {
            None => Some(None),
            Some(t) => port(t, format!("{p}.targetPort"), e).map(Some),
        };
        if let (Some(number), Some(target_port)) = (number, target) {
            ports.push(ServicePort {
                number,
                name: sp.name.clone(),
                target_port,
                protocol: sp.protocol.to_ascii_uppercase(),
            });
        }
    }
    let mut endpoints = Vec::new();
    for (i, ep) in spec.endpoints.iter().enumerate() {
        let address = if let Some(path) = ep.address.strip_prefix("unix://") {
            EndpointAddress::Unix(path.to_owned())
        } else if let Ok(ip) = ep.address.parse() {
            EndpointAddress::Ip(ip)
        } else {
            EndpointAddress::Name(ep.address.to_ascii_lowercase())
        };
        let mut targets = std::collections::BTreeMap::new();
        for (name, n) in &ep.ports {
            if let Some(n) = port(*n, format!("spec.endpoints[{i}].ports.{name}"), e) {
                targets.insert(name.clone(), n);
            }
        }
        endpoints.push(Endpoint {
            address,
            ports: targets,
            labels: ep.labels.clone(),
        });
    }
    (e.0.len() == before).then(|| CheckedServiceEntry {
        namespace: s.metadata.ns().to_owned(),
        name: s.metadata.name.clone(),
        hosts: spec.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        ports,
        resolution: spec.resolution.into(),
        endpoints,
    })
}

fn rules(s: &ServiceEntry, e: &mut FieldErrors) {
    let spec = &s.spec;
    if spec.hosts.is_empty() {
        e.push("spec.hosts", "a ServiceEntry needs at least one host");
    }
    for (i, h) in spec.hosts.iter().enumerate() {
        if h == "*" {
            e.push(
                format!("spec.hosts[{i}]"),
                "\"*\" is not allowed as a ServiceEntry host",
            );
        } else if let Err(why) = check_host(h) {
            e.push(format!("spec.hosts[{i}]"), why);
        }
    }
    for (i, a) in spec.addresses.iter().enumerate() {
        let p = format!("spec.addresses[{i}]");
        if let Err(why) = ip_or_cidr(a) {
            e.push(p, why);
        } else if a.contains('/')
            && !matches!(spec.resolution, Resolution::None | Resolution::Static)
        {
            e.push(
                p,
                "CIDR addresses are only allowed with resolution NONE or STATIC",
            );
        }
    }
    ports(s, e);
    endpoints(s, e);
}

/// The port names, for endpoint port maps.
fn port_names(s: &ServiceEntry) -> BTreeSet<&str> {
    s.spec.ports.iter().map(|p| p.name.as_str()).collect()
}

fn ports(s: &ServiceEntry, e: &mut FieldErrors) {
    let spec = &s.spec;
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    let mut plain_tcp = false;
    for (i, port) in spec.ports.iter().enumerate() {
        let p = format!("spec.ports[{i}]");
        port_number(port.number, format!("{p}.number"), e);
        if port.number != 0 && !numbers.insert(port.number) {
            e.push(
                format!("{p}.number"),
                format!("port {} is used twice", port.number),
            );
        }
        if port.name.is_empty() {
            e.push(format!("{p}.name"), "port name is required");
        } else if !is_dns1123_label(&port.name) {
            e.push(
                format!("{p}.name"),
                format!("{:?} is not a port name (a DNS label)", port.name),
            );
        } else if !names.insert(port.name.as_str()) {
            e.push(
                format!("{p}.name"),
                format!("port name {:?} is used twice", port.name),
            );
        }
        if let Some(t) = port.target_port {
            port_number(t, format!("{p}.targetPort"), e);
        }
        let proto = port.protocol.to_ascii_uppercase();
        if !proto.is_empty() && !SERVICE_PROTOCOLS.contains(&proto.as_str()) {
            e.push(
                format!("{p}.protocol"),
                format!(
                    "unknown protocol {:?}; one of {}",
                    port.protocol,
                    SERVICE_PROTOCOLS.join(", ")
                ),
            );
        }
        if !matches!(proto.as_str(), "HTTP" | "HTTPS" | "HTTP2" | "GRPC" | "TLS") {
            plain_tcp = true;
        }
    }
    // Plain TCP carries no name to tell several hosts apart.
    if spec.resolution != Resolution::None && spec.hosts.len() > 1 && plain_tcp {
        e.push(
            "spec.hosts",
            "several hosts need HTTP or TLS ports (plain TCP cannot tell them apart), or resolution NONE",
        );
    }
    resolution(s, e);
}

/// What each resolution needs from the hosts and endpoints.
fn resolution(s: &ServiceEntry, e: &mut FieldErrors) {
    let spec = &s.spec;
    match spec.resolution {
        Resolution::None if !spec.endpoints.is_empty() => e.push(
            "spec.endpoints",
            "endpoints are not allowed with resolution NONE",
        ),
        Resolution::Static if spec.endpoints.is_empty() => e.push(
            "spec.endpoints",
            "resolution STATIC needs at least one endpoint",
        ),
        Resolution::Dns | Resolution::DnsRoundRobin if spec.endpoints.is_empty() => {
            for (i, h) in spec.hosts.iter().enumerate() {
                if h.contains('*') {
                    e.push(
                        format!("spec.hosts[{i}]"),
                        "resolution DNS without endpoints needs hosts without wildcards",
                    );
                }
            }
        }
        _ => {}
    }
    if spec.resolution == Resolution::DnsRoundRobin && spec.endpoints.len() > 1 {
        e.push(
            "spec.endpoints",
            "resolution DNS_ROUND_ROBIN takes at most one endpoint",
        );
    }
}

fn endpoints(s: &ServiceEntry, e: &mut FieldErrors) {
    let spec = &s.spec;
    let names = port_names(s);
    for (i, ep) in spec.endpoints.iter().enumerate() {
        let p = format!("spec.endpoints[{i}]");
        if ep.address.is_empty() {
            e.push(format!("{p}.address"), "address is required");
        } else if let Some(path) = ep.address.strip_prefix("unix://") {
            if spec.resolution != Resolution::Static {
                e.push(
                    format!("{p}.address"),
                    "unix:// endpoints need resolution STATIC",
                );
            } else if !path.starts_with('/') && !path.starts_with('@') {
                e.push(
                    format!("{p}.address"),
                    format!("{path:?} is not an absolute socket path"),
                );
            }
            if !ep.ports.is_empty() {
                e.push(format!("{p}.ports"), "a unix:// endpoint takes no ports");
            }
        } else if ep.address.parse::<std::net::IpAddr>().is_ok() {
            // An IP address suits every resolution.
        } else if spec.resolution == Resolution::Static {
            e.push(
                format!("{p}.address"),
                format!("{:?} is not an IP address (resolution STATIC)", ep.address),
            );
        } else if ep.address.contains('*') {
            e.push(
                format!("{p}.address"),
                format!("{:?}: an endpoint address cannot be a wildcard", ep.address),
            );
        } else if let Err(why) = check_host(&ep.address) {
            e.push(format!("{p}.address"), why);
        }
        for (name, num) in &ep.ports {
            if !names.contains(name.as_str()) {
                e.push(
                    format!("{p}.ports.{name}"),
                    format!("{name:?} is not one of the ServiceEntry's port names"),
                );
            }
            port_number(*num, format!("{p}.ports.{name}"), e);
        }
    }
}
