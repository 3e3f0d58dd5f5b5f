//! The rules for what discovery reads of a Service or an EndpointSlice,
//! and the checked form the resolver uses (`upstream::kube`). Every error
//! names its field; fields discovery does not read are never checked.

use std::net::IpAddr;

use super::{EndpointSlice, IntOrString, SERVICE_NAME_LABEL, Service};
use crate::config::error::FieldErrors;
use crate::config::host::is_dns1123_label;

/// One Service port (TCP only: others are kept out by `check_service`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubePort {
    /// Empty when unnamed (only allowed for a Service's only port).
    pub name: String,
    pub port: u16,
    /// Speaks HTTP/2 with prior knowledge: `appProtocol` `kubernetes.io/h2c`,
    /// `http2` or `grpc`, or without one a name `http2[-x]` or `grpc[-x]`
    /// (Istio's protocol selection).
    pub h2c: bool,
}

/// A checked Service.
#[derive(Debug, Clone)]
pub struct CheckedService {
    pub namespace: String,
    pub name: String,
    /// Its TCP ports.
    pub ports: Vec<KubePort>,
    /// `spec.externalName` of an `ExternalName` Service.
    pub external_name: Option<String>,
}

/// A slice's `addressType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressType {
    Ipv4,
    Ipv6,
    /// DNS names: not used (`apply` warns).
    Fqdn,
}

/// One endpoint of a slice, by its addresses; only ready ones are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyEndpoint {
    pub addresses: Vec<IpAddr>,
}

/// One slice port: its name (empty when unnamed) and number, if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePortRef {
    pub name: String,
    pub port: Option<u16>,
}

/// A checked EndpointSlice.
#[derive(Debug, Clone)]
pub struct CheckedEndpointSlice {
    pub namespace: String,
    pub name: String,
    /// Its `kubernetes.io/service-name` label: the Service it belongs to.
    pub service: Option<String>,
    pub address_type: AddressType,
    /// The endpoints whose `conditions.ready` is not `false`.
    pub ready: Vec<ReadyEndpoint>,
    /// How many endpoints it lists, ready or not (for the config dump).
    pub total: usize,
    /// Its TCP ports.
    pub ports: Vec<SlicePortRef>,
}

/// A port number: 1-65535.
fn port(n: i64, p: String, e: &mut FieldErrors) -> Option<u16> {
    match u16::try_from(n) {
        Ok(v) if v != 0 => Some(v),
        _ => {
            e.push(p, format!("{n} is not a port number (1-65535)"));
            None
        }
    }
}

/// `TCP` (also when absent), `UDP` or `SCTP`; whether it is TCP.
fn is_tcp(protocol: Option<&str>, p: String, e: &mut FieldErrors) -> bool {
    match protocol {
        None | Some("TCP") => true,
        Some("UDP" | "SCTP") => false,
        Some(other) => {
            e.push(p, format!("{other:?} is not a protocol (TCP, UDP, SCTP)"));
            false
        }
    }
}

/// Whether a port speaks h2c, by Istio's protocol selection.
fn speaks_h2(name: &str, app_protocol: Option<&str>) -> bool {
    let named = |p: &str| {
        let p = p.to_ascii_lowercase();
        p == "http2" || p == "grpc" || p == "kubernetes.io/h2c"
    };
    match app_protocol {
        Some(a) => named(a),
        None => named(name.split('-').next().unwrap_or("")),
    }
}

fn port_name(name: Option<&str>, p: String, e: &mut FieldErrors) -> String {
    let name = name.unwrap_or("");
    if !name.is_empty() && !is_dns1123_label(name) {
        e.push(p, format!("{name:?} is not a valid port name"));
    }
    name.to_owned()
}

/// Checks a Service; `None` when it has errors (pushed to `e`).
pub fn check_service(s: &Service, e: &mut FieldErrors) -> Option<CheckedService> {
    let spec = &s.spec;
    let external = spec.service_type.as_deref() == Some("ExternalName");
    match spec.service_type.as_deref() {
        None | Some("ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") => {}
        Some(t) => e.push(
            "spec.type",
            format!(
                "{t:?} is not a Service type (ClusterIP, NodePort, LoadBalancer, ExternalName)"
            ),
        ),
    }
    let external_name = spec.external_name.clone().filter(|_| external);
    if external && external_name.as_deref().is_none_or(str::is_empty) {
        e.push("spec.externalName", "required for type ExternalName");
    }
    let mut ports = Vec::new();
    for (i, sp) in spec.ports.iter().enumerate() {
        let p = |f: &str| format!("spec.ports[{i}].{f}");
        let name = port_name(sp.name.as_deref(), p("name"), e);
        if name.is_empty() && spec.ports.len() > 1 {
            e.push(p("name"), "required when a Service has more than one port");
        }
        if ports.iter().any(|q: &KubePort| q.name == name) && !name.is_empty() {
            e.push(p("name"), format!("{name:?} is used by another port"));
        }
        match &sp.target_port {
            Some(IntOrString::Int(n)) => {
                port(*n, p("targetPort"), e);
            }
            Some(IntOrString::String(t)) if t.is_empty() => {
                e.push(p("targetPort"), "must be a port number or a port name");
            }
            _ => {}
        }
        let number = port(sp.port, p("port"), e);
        let tcp = is_tcp(sp.protocol.as_deref(), p("protocol"), e);
        if let (Some(number), true) = (number, tcp) {
            let h2c = speaks_h2(&name, sp.app_protocol.as_deref());
            ports.push(KubePort {
                name,
                port: number,
                h2c,
            });
        }
    }
    e.is_empty().then(|| CheckedService {
        namespace: s.metadata.ns().to_owned(),
        name: s.metadata.name.clone(),
        ports,
        external_name,
    })
}

/// Checks an EndpointSlice; `None` when it has errors (pushed to `e`).
pub fn check_endpoint_slice(
    s: &EndpointSlice,
    e: &mut FieldErrors,
) -> Option<CheckedEndpointSlice> {
    let address_type = match s.address_type.as_deref() {
        Some("IPv4") => Some(AddressType::Ipv4),
        Some("IPv6") => Some(AddressType::Ipv6),
        Some("FQDN") => Some(AddressType::Fqdn),
        Some(t) => {
            e.push(
                "addressType",
                format!("{t:?} is not an address type (IPv4, IPv6, FQDN)"),
            );
            None
        }
        None => {
            e.push(
                "addressType",
                "required field is missing (IPv4, IPv6, FQDN)",
            );
            None
        }
    };
    let mut ready = Vec::new();
    for (i, ep) in s.endpoints.iter().enumerate() {
        if ep.addresses.is_empty() {
            e.push(
                format!("endpoints[{i}].addresses"),
                "at least one address is required",
            );
        }
        let mut addresses = Vec::new();
        for (j, a) in ep.addresses.iter().enumerate() {
            let p = format!("endpoints[{i}].addresses[{j}]");
            let parsed = a.parse::<IpAddr>();
            match (address_type, parsed) {
                (Some(AddressType::Ipv4), Ok(ip @ IpAddr::V4(_)))
                | (Some(AddressType::Ipv6), Ok(ip @ IpAddr::V6(_))) => addresses.push(ip),
                (Some(AddressType::Ipv4), _) => {
                    e.push(p, format!("{a:?} is not an IPv4 address"));
                }
                (Some(AddressType::Ipv6), _) => {
                    e.push(p, format!("{a:?} is not an IPv6 address"));
                }
                _ => {}
            }
        }
        if ep.conditions.ready != Some(false) {
            ready.push(ReadyEndpoint { addresses });
        }
    }
    let mut ports = Vec::new();
    for (i, sp) in s.ports.iter().enumerate() {
        let p = |f: &str| format!("ports[{i}].{f}");
        let name = port_name(sp.name.as_deref(), p("name"), e);
        let number = sp.port.and_then(|n| port(n, p("port"), e));
        if is_tcp(sp.protocol.as_deref(), p("protocol"), e) {
            ports.push(SlicePortRef { name, port: number });
        }
    }
    let service = s.metadata.labels.get(SERVICE_NAME_LABEL).cloned();
    match address_type {
        Some(address_type) if e.is_empty() => Some(CheckedEndpointSlice {
            namespace: s.metadata.ns().to_owned(),
            name: s.metadata.name.clone(),
            service,
            address_type,
            ready,
            total: s.endpoints.len(),
            ports,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(json: &str) -> EndpointSlice {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_slice_tolerates_fields_it_does_not_read_and_keeps_ready_endpoints() {
        let s = slice(
            r#"{"apiVersion":"discovery.k8s.io/v1beta1","kind":"EndpointSlice",
            "metadata":{"name":"a","namespace":"ux","labels":{"kubernetes.io/service-name":"frontend"},
              "ownerReferences":[{"kind":"Service"}],"managedFields":null},
            "addressType":"IPv4",
            "endpoints":[{"addresses":["10.0.0.1"],"topology":{"kubernetes.io/hostname":"n"}},
                         {"addresses":["10.0.0.2"],"conditions":{"ready":false,"serving":true}},
                         {"addresses":["10.0.0.3"],"conditions":{"ready":true},"zone":"z","nodeName":"n"}],
            "ports":[{"name":"http","port":8080,"protocol":"TCP"}]}"#,
        );
        let mut e = FieldErrors::default();
        let c = check_endpoint_slice(&s, &mut e).unwrap();
        assert_eq!(c.service.as_deref(), Some("frontend"));
        let ready: Vec<String> = c.ready.iter().map(|r| r.addresses[0].to_string()).collect();
        assert_eq!(ready, ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(
            c.ports,
            [SlicePortRef {
                name: "http".into(),
                port: Some(8080)
            }]
        );
    }

    #[test]
    fn a_bad_slice_names_each_field() {
        let s = slice(
            r#"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"a"},
            "addressType":"IPv6","endpoints":[{"addresses":["10.0.0.1"]}],"ports":[{"port":0}]}"#,
        );
        let mut e = FieldErrors::default();
        assert!(check_endpoint_slice(&s, &mut e).is_none());
        let paths: Vec<&str> = e.0.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["endpoints[0].addresses[0]", "ports[0].port"]);
    }

    #[test]
    fn service_ports_need_names_when_there_are_several() {
        let s: Service = serde_json::from_str(
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},
            "spec":{"clusterIP":"10.96.0.1","selector":{"app":"x"},
              "ports":[{"port":80,"targetPort":8080},{"name":"grpc-x","port":81,"appProtocol":"grpc"}]}}"#,
        )
        .unwrap();
        let mut e = FieldErrors::default();
        assert!(check_service(&s, &mut e).is_none());
        assert_eq!(e.0[0].0, "spec.ports[0].name");
        assert!(speaks_h2("grpc-x", None) && speaks_h2("x", Some("kubernetes.io/h2c")));
        assert!(!speaks_h2("http", None));
    }
}
