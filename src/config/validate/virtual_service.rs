//! Rules for `VirtualService`: hosts, gateways, destinations, and tls and
//! tcp routes; http routes are in `http.rs`.

use super::super::error::FieldErrors;
use super::super::host::{check_host, intersects};
use super::super::meta::{is_dns1123_label, is_dns1123_subdomain};
use super::super::virtual_service::{Destination, RouteDestination, VirtualService};
use super::http::http_route;
use super::{ip_or_cidr, port_number};

pub(super) fn virtual_service(v: &VirtualService, e: &mut FieldErrors) {
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
    for (i, g) in s.gateways.iter().enumerate() {
        gateway_ref(g, &format!("spec.gateways[{i}]"), e);
    }
    if s.http.is_empty() && s.tls.is_empty() && s.tcp.is_empty() {
        e.push("spec", "a VirtualService needs http, tls or tcp routes");
    }
    for (i, r) in s.http.iter().enumerate() {
        http_route(r, &format!("spec.http[{i}]"), e);
    }
    for (i, r) in s.tls.iter().enumerate() {
        let p = format!("spec.tls[{i}]");
        if r.matches.is_empty() {
            e.push(
                format!("{p}.match"),
                "a tls route needs a match with sniHosts",
            );
        }
        for (j, m) in r.matches.iter().enumerate() {
            let mp = format!("{p}.match[{j}]");
            if m.sni_hosts.is_empty() {
                e.push(format!("{mp}.sniHosts"), "sniHosts is required");
            }
            for (k, h) in m.sni_hosts.iter().enumerate() {
                if let Err(why) = check_host(h) {
                    e.push(format!("{mp}.sniHosts[{k}]"), why);
                } else if !s.hosts.iter().any(|vh| subset_of(h, vh)) {
                    e.push(
                        format!("{mp}.sniHosts[{k}]"),
                        format!(
                            "SNI host {h:?} is not covered by any of the VirtualService's hosts [{}]",
                            s.hosts.join(", ")
                        ),
                    );
                }
            }
            l4_match(
                &m.destination_subnets,
                m.port,
                &m.gateways,
                m.source_namespace.as_deref(),
                &mp,
                e,
            );
        }
        l4_routes(&r.route, &p, e);
    }
    for (i, r) in s.tcp.iter().enumerate() {
        let p = format!("spec.tcp[{i}]");
        for (j, m) in r.matches.iter().enumerate() {
            l4_match(
                &m.destination_subnets,
                m.port,
                &m.gateways,
                m.source_namespace.as_deref(),
                &format!("{p}.match[{j}]"),
                e,
            );
        }
        l4_routes(&r.route, &p, e);
    }
}

/// Whether every name `host` covers is covered by `by` (both valid hosts).
fn subset_of(host: &str, by: &str) -> bool {
    let (host, by) = (host.to_ascii_lowercase(), by.to_ascii_lowercase());
    if by == "*" || host == by {
        return true;
    }
    match by.strip_prefix('*') {
        Some(suffix) => host != "*" && host.ends_with(suffix),
        None => false,
    }
}

pub(super) fn gateway_ref(g: &str, p: &str, e: &mut FieldErrors) {
    let name = g.split_once('/').map_or(g, |(ns, n)| {
        if !is_dns1123_label(ns) {
            e.push(p, format!("{g:?}: {ns:?} is not a namespace"));
        }
        n
    });
    if name != "mesh" && !is_dns1123_subdomain(name) {
        e.push(
            p,
            format!("{g:?} is not a Gateway name (name or namespace/name)"),
        );
    }
}

fn l4_match(
    subnets: &[String],
    port: Option<u32>,
    gateways: &[String],
    source_namespace: Option<&str>,
    p: &str,
    e: &mut FieldErrors,
) {
    for (i, s) in subnets.iter().enumerate() {
        if let Err(why) = ip_or_cidr(s) {
            e.push(format!("{p}.destinationSubnets[{i}]"), why);
        }
    }
    if let Some(port) = port {
        port_number(port, format!("{p}.port"), e);
    }
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
}

fn l4_routes(routes: &[RouteDestination], p: &str, e: &mut FieldErrors) {
    if routes.is_empty() {
        e.push(format!("{p}.route"), "route needs at least one destination");
    }
    for (j, d) in routes.iter().enumerate() {
        destination(&d.destination, &format!("{p}.route[{j}].destination"), e);
        weight(d.weight, &format!("{p}.route[{j}].weight"), e);
    }
    all_zero(routes.iter().map(|d| d.weight), &format!("{p}.route"), e);
}

pub(super) fn weight(w: Option<i64>, p: &str, e: &mut FieldErrors) {
    if let Some(w) = w
        && w < 0
    {
        e.push(p, format!("weight {w} is negative"));
    }
}

/// Several destinations whose weights add up to 0 send traffic nowhere.
pub(super) fn all_zero(
    weights: impl ExactSizeIterator<Item = Option<i64>>,
    p: &str,
    e: &mut FieldErrors,
) {
    if weights.len() > 1 && weights.map(|w| w.unwrap_or(0)).sum::<i64>() == 0 {
        e.push(p, "the destination weights add up to 0");
    }
}

pub(super) fn destination(d: &Destination, p: &str, e: &mut FieldErrors) {
    if d.host.is_empty() {
        e.push(format!("{p}.host"), "destination host is required");
    } else if d.host == "*" {
        e.push(
            format!("{p}.host"),
            "\"*\" is not a destination host: name the service",
        );
    } else if let Err(why) = check_host(&d.host) {
        e.push(format!("{p}.host"), why);
    }
    if let Some(subset) = &d.subset
        && !is_dns1123_label(subset)
    {
        e.push(
            format!("{p}.subset"),
            format!("{subset:?} is not a subset name (a DNS label)"),
        );
    }
    if let Some(port) = d.port {
        port_number(port.number, format!("{p}.port.number"), e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_subsets() {
        assert!(subset_of("a.foo.com", "*.foo.com"));
        assert!(subset_of("*.a.foo.com", "*.foo.com"));
        assert!(subset_of("A.foo.com", "a.FOO.com"));
        assert!(subset_of("x.y", "*"));
        assert!(!subset_of("foo.com", "*.foo.com"));
        assert!(!subset_of("*", "*.foo.com"));
        assert!(!subset_of("*.foo.com", "a.foo.com"));
        assert!(!subset_of("b.com", "a.com"));
    }
}
