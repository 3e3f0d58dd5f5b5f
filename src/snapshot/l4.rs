//! Connection routes: where a PASSTHROUGH server's TLS connection goes by
//! its SNI (`tls[]` routes), and where a TCP server's connection goes
//! (`tcp[]` routes), compiled for one server and selected by a pure
//! function.
//!
//! It never terminates TLS and never looks at the bytes: a route is chosen
//! by the SNI of the ClientHello and the port alone.

use std::sync::Arc;

use super::routes::WeightedUpstream;
use crate::config::host;

/// How a server that does not speak HTTP passes its connections on.
#[derive(Debug, Clone)]
pub enum L4 {
    /// `tls.mode: PASSTHROUGH`: by the ClientHello's SNI, not terminated.
    Passthrough(Arc<Vec<L4Route>>),
    /// `protocol: TCP`: every connection to the first route.
    Tcp(Arc<Vec<L4Route>>),
}

impl L4 {
    pub fn routes(&self) -> &[L4Route] {
        match self {
            L4::Passthrough(r) | L4::Tcp(r) => r,
        }
    }
}

/// One `tls[]` or `tcp[]` route as one server serves it.
#[derive(Debug)]
pub struct L4Route {
    /// `namespace/virtual-service tls[i]` (or `tcp[i]`), for the log.
    pub name: Arc<str>,
    /// The SNI patterns it takes (`tls[]`); empty takes every connection
    /// (`tcp[]`).
    pub sni_hosts: Vec<String>,
    pub upstreams: Vec<WeightedUpstream>,
}

/// The first route, in VirtualService creation order, that takes `sni`.
pub fn select<'a>(routes: &'a [L4Route], sni: Option<&str>) -> Option<&'a L4Route> {
    routes.iter().find(|r| {
        r.sni_hosts.is_empty()
            || sni.is_some_and(|s| r.sni_hosts.iter().any(|h| host::matches(h, s)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, hosts: &[&str]) -> L4Route {
        L4Route {
            name: name.into(),
            sni_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            upstreams: Vec::new(),
        }
    }

    #[test]
    fn first_matching_route_wins() {
        let routes = [
            route("a", &["nginx.example.com"]),
            route("b", &["*.example.com"]),
            route("c", &["other.org"]),
        ];
        let name = |sni: Option<&str>| select(&routes, sni).map(|r| r.name.to_string());
        assert_eq!(name(Some("nginx.example.com")).as_deref(), Some("a"));
        assert_eq!(name(Some("shop.example.com")).as_deref(), Some("b"));
        assert_eq!(name(Some("other.org")).as_deref(), Some("c"));
        assert_eq!(name(Some("example.com")), None);
        assert_eq!(name(None), None);
        let tcp = [route("t", &[])];
        assert_eq!(select(&tcp, None).map(|r| &*r.name), Some("t"));
    }
}
