//! Rules for `VirtualService`: hosts, gateways, destinations, and tls and
//! tcp routes; http routes are in `http.rs`.

use super::super::checked::route::Destination as CheckedDestination;
use super::super::checked::{CheckedVirtualService, L4Match, L4Route};
use super::super::error::FieldErrors;
use super::super::host::{check_host, covers, intersects, is_dns1123_label, qualify};
use super::super::virtual_service::{RouteDestination, VirtualService};
use super::destination::{destination, gateway_ref, weight, weighted};
use super::http::http_route;
use super::ip_or_cidr;

/// Checks a VirtualService; `Some` only when it has no error. Its hosts
/// and destinations are qualified in its namespace (`host::qualify`).
pub(super) fn virtual_service(
    v: &VirtualService,
    e: &mut FieldErrors,
) -> Option<CheckedVirtualService> {
    let before = e.0.len();
    let ns = v.metadata.ns();
    hosts(v, e);
    let s = &v.spec;
    for (i, g) in s.gateways.iter().enumerate() {
        gateway_ref(g, &format!("spec.gateways[{i}]"), e);
    }
    if s.http.is_empty() && s.tls.is_empty() && s.tcp.is_empty() {
        e.push("spec", "a VirtualService needs http, tls or tcp routes");
    }
    let http: Vec<_> = s
        .http
        .iter()
        .enumerate()
        .filter_map(|(i, r)| http_route(r, ns, &format!("spec.http[{i}]"), e))
        .collect();
    let (tls, tcp) = l4(v, e);
    if e.0.len() != before {
        return None;
    }
    Some(CheckedVirtualService {
        namespace: ns.to_owned(),
        name: v.metadata.name.clone(),
        creation_timestamp: v.metadata.creation_timestamp.clone(),
        hosts: s.hosts.iter().map(|h| qualify(h, ns)).collect(),
        gateways: s
            .gateways
            .iter()
            .map(|g| match g.split_once('/') {
                Some((gns, name)) => (gns.to_owned(), name.to_owned()),
                None => (ns.to_owned(), g.clone()),
            })
            .collect(),
        http,
        tls,
        tcp,
    })
}

fn hosts(v: &VirtualService, e: &mut FieldErrors) {
    let s = &v.spec;
    if s.hosts.is_empty() {
        e.push("spec.hosts", "a VirtualService needs at least one host");
    }
    let mut hosts_valid = true;
    for (i, h) in s.hosts.iter().enumerate() {
        if let Err(why) = check_host(h) {
            e.push(format!("spec.hosts[{i}]"), why);
            hosts_valid = false;
        }
    }
    if hosts_valid {
        // Istio refuses hosts that overlap within one VirtualService.
        for (j, b) in s.hosts.iter().enumerate() {
            if let Some((i, a)) = s.hosts[..j]
                .iter()
                .enumerate()
                .find(|(_, a)| intersects(a, b))
            {
                e.push(
                    format!("spec.hosts[{j}]"),
                    format!("host {b:?} overlaps spec.hosts[{i}] {a:?}"),
                );
            }
        }
    }
}

/// tls and tcp routes, checked: `tls[]` for PASSTHROUGH servers, `tcp[]`
/// for TCP servers.
fn l4(v: &VirtualService, e: &mut FieldErrors) -> (Vec<L4Route>, Vec<L4Route>) {
    let s = &v.spec;
    let ns = v.metadata.ns();
    let mut tls = Vec::new();
    for (i, r) in s.tls.iter().enumerate() {
        let p = format!("spec.tls[{i}]");
        if r.matches.is_empty() {
            e.push(
                format!("{p}.match"),
                "a tls route needs a match with sniHosts",
            );
        }
        let mut matches = Vec::new();
        for (j, m) in r.matches.iter().enumerate() {
            let mp = format!("{p}.match[{j}]");
            if m.sni_hosts.is_empty() {
                e.push(format!("{mp}.sniHosts"), "sniHosts is required");
            }
            for (k, h) in m.sni_hosts.iter().enumerate() {
                if let Err(why) = check_host(h) {
                    e.push(format!("{mp}.sniHosts[{k}]"), why);
                } else if !s.hosts.iter().any(|vh| covers(vh, h)) {
                    e.push(
                        format!("{mp}.sniHosts[{k}]"),
                        format!(
                            "SNI host {h:?} is not covered by any of the VirtualService's hosts [{}]",
                            s.hosts.join(", ")
                        ),
                    );
                }
            }
            let source = (
                &m.gateways[..],
                m.source_namespace.as_deref(),
                &m.source_labels,
            );
            let mut checked = l4_match(&m.destination_subnets, m.port, source, ns, &mp, e);
            checked.sni_hosts = m.sni_hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
            matches.push(checked);
        }
        if let Some(route) = l4_routes(&r.route, ns, &p, e) {
            tls.push(L4Route { matches, route });
        }
    }
    let mut tcp = Vec::new();
    for (i, r) in s.tcp.iter().enumerate() {
        let p = format!("spec.tcp[{i}]");
        let mut matches = Vec::new();
        for (j, m) in r.matches.iter().enumerate() {
            let source = (
                &m.gateways[..],
                m.source_namespace.as_deref(),
                &m.source_labels,
            );
            let mp = format!("{p}.match[{j}]");
            matches.push(l4_match(&m.destination_subnets, m.port, source, ns, &mp, e));
        }
        if let Some(route) = l4_routes(&r.route, ns, &p, e) {
            tcp.push(L4Route { matches, route });
        }
    }
    (tls, tcp)
}

/// A match's `gateways`, `sourceNamespace` and `sourceLabels`.
type Source<'a> = (
    &'a [String],
    Option<&'a str>,
    &'a std::collections::BTreeMap<String, String>,
);

/// A `tls[]`/`tcp[]` match entry (its `sniHosts` set by the caller).
fn l4_match(
    subnets: &[String],
    port: Option<u32>,
    (gateways, source_namespace, labels): Source<'_>,
    ns: &str,
    p: &str,
    e: &mut FieldErrors,
) -> L4Match {
    for (i, s) in subnets.iter().enumerate() {
        if let Err(why) = ip_or_cidr(s) {
            e.push(format!("{p}.destinationSubnets[{i}]"), why);
        }
    }
    let port = port.and_then(|n| super::port(n, format!("{p}.port"), e));
    for (i, g) in gateways.iter().enumerate() {
        gateway_ref(g, &format!("{p}.gateways[{i}]"), e);
    }
    if let Some(ns) = source_namespace
        && !is_dns1123_label(ns)
    {
        e.push(
            format!("{p}.sourceNamespace"),
            format!("{ns:?} is not a namespace"),
        );
    }
    L4Match {
        sni_hosts: Vec::new(),
        port,
        source: super::http::match_source(gateways, source_namespace, labels, ns),
    }
}

fn l4_routes(
    routes: &[RouteDestination],
    ns: &str,
    p: &str,
    e: &mut FieldErrors,
) -> Option<Vec<CheckedDestination>> {
    if routes.is_empty() {
        e.push(format!("{p}.route"), "route needs at least one destination");
    }
    let before = e.0.len();
    let mut dests = Vec::new();
    for (j, d) in routes.iter().enumerate() {
        let dest = destination(
            &d.destination,
            ns,
            &format!("{p}.route[{j}].destination"),
            e,
        );
        let w = weight(d.weight, &format!("{p}.route[{j}].weight"), e);
        if let (Some(dest), Some(w)) = (dest, w) {
            dests.push(CheckedDestination { weight: w, ..dest });
        }
    }
    if e.0.len() != before {
        return None;
    }
    weighted(dests, &format!("{p}.route"), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::checked::route::RouteAction;

    fn vs(yaml: &str) -> VirtualService {
        serde_json::from_value(serde_saphyr::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn short_hosts_are_qualified_in_the_namespace() {
        let v = vs("apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: shop}
spec:
  hosts: [httpbin, HttpBin.example.com]
  gateways: [gw, other/gw2]
  http:
  - route:
    - destination: {host: httpbin, port: {number: 8000}}
      weight: 90
    - destination: {host: reviews.other}
      weight: 10
");
        let mut e = FieldErrors::default();
        let c = virtual_service(&v, &mut e).unwrap();
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(
            c.hosts,
            ["httpbin.shop.svc.cluster.local", "httpbin.example.com"]
        );
        assert_eq!(
            c.gateways,
            [
                ("shop".to_owned(), "gw".to_owned()),
                ("other".to_owned(), "gw2".to_owned())
            ]
        );
        let RouteAction::Forward(d) = &c.http[0].action else {
            panic!("not a forward: {:?}", c.http[0].action);
        };
        assert_eq!(d[0].host, "httpbin.shop.svc.cluster.local");
        assert_eq!((d[0].port, d[0].weight), (Some(8000), 90));
        assert_eq!(d[1].host, "reviews.other");
    }
}
