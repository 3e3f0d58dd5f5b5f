//! The connection routes of PASSTHROUGH, AUTO_PASSTHROUGH and TCP
//! servers, compiled (`snapshot::l4` holds and selects them).

use std::sync::Arc;

use super::super::l4::{L4, L4Route};
use super::super::routes::WeightedUpstream;
use super::{Context, Lookup, Upstreams, VsIndex, weighted_upstream};
use crate::config::checked::{self, CheckedGateway, CheckedServer, ServerProtocol};
use crate::config::host;
use crate::upstream;

impl Context<'_> {
    /// An AUTO_PASSTHROUGH server's routes: one per ServiceEntry host the
    /// server's hosts cover, per port of it and per subset its
    /// DestinationRule defines, taken by Istio's SNI form
    /// `outbound_.PORT_.SUBSET_.HOST` (`outbound_.PORT_._.HOST` for none).
    pub(super) fn auto_passthrough(&mut self, s: &CheckedServer) -> L4 {
        let mut out = Vec::new();
        for se in &self.model.service_entries {
            for h in &se.hosts {
                if h.starts_with('*') || !s.hosts.iter().any(|sh| host::matches(&sh.host, h)) {
                    continue;
                }
                let subsets: Vec<Option<String>> = std::iter::once(None)
                    .chain(
                        upstream::rule_for(&self.look.rules, h)
                            .into_iter()
                            .flat_map(|r| r.subsets.iter().map(|s| Some(s.name.clone()))),
                    )
                    .collect();
                for p in &se.ports {
                    for subset in &subsets {
                        out.push(self.auto_route(h, p.number, subset.as_deref()));
                    }
                }
            }
        }
        L4::Passthrough(Arc::new(out))
    }

    /// The AUTO_PASSTHROUGH route of `host:port` (and subset).
    fn auto_route(&mut self, host: &str, port: u16, subset: Option<&str>) -> L4Route {
        let d = checked::route::Destination {
            host: host.to_owned(),
            port: Some(port),
            subset: subset.map(str::to_owned),
            weight: 1,
            headers: None,
        };
        let label = subset.unwrap_or("");
        L4Route {
            name: match subset {
                Some(sub) => format!("auto {host}:{port} {sub}").into(),
                None => format!("auto {host}:{port}").into(),
            },
            sni_hosts: vec![format!("outbound_.{port}_.{label}_.{host}")],
            upstreams: vec![l4_upstream(&d, &self.look, &mut self.upstreams)],
        }
    }

    /// A PASSTHROUGH or TCP server's connection routes: the `tls[]` (or
    /// `tcp[]`) routes of the VirtualServices bound to its Gateway whose
    /// hosts it admits, in creation order, each keeping the matches for
    /// this port (and, for `tls[]`, the SNI hosts this server serves).
    pub(super) fn l4(
        &mut self,
        gw: &CheckedGateway,
        s: &CheckedServer,
        index: &VsIndex,
    ) -> Option<L4> {
        let passthrough = match s.protocol {
            ServerProtocol::Passthrough => true,
            ServerProtocol::AutoPassthrough => return Some(self.auto_passthrough(s)),
            ServerProtocol::Tcp => false,
            ServerProtocol::Tls | ServerProtocol::Plain => return None,
        };
        let mut candidates = Vec::new();
        for h in &s.hosts {
            index.candidates(&h.host, &mut candidates);
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut out = Vec::new();
        for vi in candidates {
            let vs = self.model.virtual_services[vi];
            let admitted = vs.hosts.iter().any(|vh| {
                s.hosts.iter().any(|sh| {
                    sh.admits(&gw.namespace, &vs.namespace) && host::intersects(vh, &sh.host)
                })
            });
            if !admitted {
                continue;
            }
            let (kind, routes) = if passthrough {
                ("tls", &vs.tls)
            } else {
                ("tcp", &vs.tcp)
            };
            for (i, r) in routes.iter().enumerate() {
                let here: Vec<_> = r
                    .matches
                    .iter()
                    .filter(|m| {
                        m.port.is_none_or(|p| p == s.port)
                            && m.source
                                .applies(&gw.namespace, &gw.name, &self.model.labels)
                    })
                    .collect();
                if !r.matches.is_empty() && here.is_empty() {
                    continue;
                }
                let sni_hosts: Vec<String> = here
                    .iter()
                    .flat_map(|m| &m.sni_hosts)
                    .filter(|h| s.hosts.iter().any(|sh| host::intersects(h, &sh.host)))
                    .cloned()
                    .collect();
                if passthrough && sni_hosts.is_empty() {
                    continue;
                }
                out.push(L4Route {
                    name: format!("{}/{} {kind}[{i}]", vs.namespace, vs.name).into(),
                    sni_hosts,
                    upstreams: r
                        .route
                        .iter()
                        .map(|d| l4_upstream(d, &self.look, &mut self.upstreams))
                        .collect(),
                });
            }
        }
        let routes = Arc::new(out);
        Some(if passthrough {
            L4::Passthrough(routes)
        } else {
            L4::Tcp(routes)
        })
    }
}

/// A `tls[]`/`tcp[]` route's destination. Its bytes go on as they came:
/// a DestinationRule's TLS origination is not applied there, and a WARN
/// says so rather than leave it unsaid.
fn l4_upstream(
    d: &checked::route::Destination,
    look: &Lookup<'_>,
    upstreams: &mut Upstreams,
) -> WeightedUpstream {
    let w = weighted_upstream(d, look, upstreams);
    if w.upstream.origin.is_some() {
        tracing::warn!(
            destination_rule = w.upstream.rule.as_deref().unwrap_or(""),
            cluster = %w.upstream.cluster(),
            "trafficPolicy.tls is not applied to tls[] and tcp[] routes: their connections go on unchanged"
        );
    }
    w
}
