//! HTTPRoutes onto listeners: which parents accept a route (allowedRoutes,
//! sectionName, port, hostnames), its conditions per parent, and the
//! VirtualServices each listener gets (one per effective hostname, its
//! entries in precedence order).

use std::collections::BTreeMap;

use super::http::{self, Entry};
use super::listeners::ListenerRef;
use super::{Translated, World};
use crate::config::checked::CheckedVirtualService;
use crate::config::gateway_api::GROUP;
use crate::config::gateway_api::route_types::{HttpRoute, ParentRef};
use crate::config::gateway_api::status::{Condition, ParentStatus, generation, observe};
use crate::config::host;

/// Entries by listener (its Gateway's namespace and served name) and hostname.
type Buckets = BTreeMap<(String, String), BTreeMap<String, Vec<Entry>>>;

pub(super) fn attach(world: &World<'_>, listeners: &[ListenerRef<'_>], out: &mut Translated) {
    let mut buckets = Buckets::new();
    for r in &world.routes {
        let built = http::build(world, r);
        let mut parents = Vec::new();
        for p in &r.spec.parent_refs {
            if let Some(conditions) = parent(world, r, p, listeners, &built, &mut buckets, out) {
                parents.push(ParentStatus {
                    parent_ref: p.clone(),
                    conditions,
                });
            }
        }
        let g = generation(&r.metadata);
        for p in &mut parents {
            observe(&mut p.conditions, g);
        }
        if !parents.is_empty() {
            out.status.routes.insert(
                (r.metadata.ns().to_owned(), r.metadata.name.clone()),
                parents,
            );
        }
    }
    for ((ns, gw_name), by_host) in buckets {
        for (i, (hostname, mut entries)) in by_host.into_iter().enumerate() {
            entries.sort_by(|a, b| a.key.cmp(&b.key));
            out.virtual_services.push(CheckedVirtualService {
                namespace: ns.clone(),
                name: format!("{gw_name}/{i}"),
                creation_timestamp: None,
                hosts: vec![hostname],
                gateways: vec![(ns.clone(), gw_name.clone())],
                http: entries.into_iter().map(|e| e.route).collect(),
                tls: Vec::new(),
                tcp: Vec::new(),
            });
        }
    }
}

/// One parentRef of a route: `None` when it is not a Gateway of ours, else
/// its conditions (and the route's entries put on each accepting listener).
fn parent(
    world: &World<'_>,
    r: &HttpRoute,
    p: &ParentRef,
    listeners: &[ListenerRef<'_>],
    built: &Result<http::Built, String>,
    buckets: &mut Buckets,
    out: &mut Translated,
) -> Option<Vec<Condition>> {
    if p.group.as_deref().unwrap_or(GROUP) != GROUP
        || p.kind.as_deref().unwrap_or("Gateway") != "Gateway"
    {
        return None;
    }
    let route_ns = r.metadata.ns();
    let gw_ns = p.namespace.as_deref().unwrap_or(route_ns);
    let of_gateway: Vec<&ListenerRef<'_>> = listeners
        .iter()
        .filter(|l| l.gw.metadata.ns() == gw_ns && l.gw.metadata.name == p.name)
        .collect();
    if of_gateway.is_empty() {
        return None;
    }
    let refused = |reason: &'static str, why: String| {
        Some(vec![
            Condition::new("Accepted", false, reason, why),
            resolved(&built.as_ref().map_err(Clone::clone)),
        ])
    };
    let named: Vec<_> = of_gateway
        .into_iter()
        .filter(|l| {
            p.section_name
                .as_deref()
                .is_none_or(|s| s == l.listener.name)
        })
        .filter(|l| p.port.is_none_or(|port| port == l.listener.port))
        .collect();
    if named.is_empty() {
        return refused(
            "NoMatchingParent",
            "no listener has this sectionName or port".into(),
        );
    }
    let allowed: Vec<_> = named
        .into_iter()
        .filter(|l| l.served.is_some() && allows(world, l, route_ns))
        .collect();
    if allowed.is_empty() {
        return refused(
            "NotAllowedByListeners",
            "no listener allows this route".into(),
        );
    }
    let with_hosts: Vec<_> = allowed
        .into_iter()
        .map(|l| {
            (
                l,
                hostnames(l.listener.hostname.as_deref(), &r.spec.hostnames),
            )
        })
        .filter(|(_, h)| !h.is_empty())
        .collect();
    if with_hosts.is_empty() {
        return refused(
            "NoMatchingListenerHostname",
            "no listener hostname intersects the route's hostnames".into(),
        );
    }
    let built = match built {
        Ok(b) => b,
        Err(why) => return refused("UnsupportedValue", why.clone()),
    };
    for (l, hosts) in with_hosts {
        put(l, hosts, built, buckets, out);
    }
    Some(vec![
        Condition::new("Accepted", true, "Accepted", "accepted"),
        resolved(&Ok(built)),
    ])
}

/// A route's entries onto one accepting listener, counted in its status.
fn put(
    l: &ListenerRef<'_>,
    hosts: Vec<String>,
    built: &http::Built,
    buckets: &mut Buckets,
    out: &mut Translated,
) {
    let gw_key = (l.gw.metadata.ns().to_owned(), l.gw.metadata.name.clone());
    if let Some(ls) = out
        .status
        .gateways
        .get_mut(&gw_key)
        .and_then(|g| g.listeners.get_mut(l.index))
    {
        ls.attached_routes += 1;
    }
    let Some(served) = &l.served else { return };
    let bucket = buckets.entry((gw_key.0, served.clone())).or_default();
    for h in hosts {
        bucket
            .entry(h)
            .or_default()
            .extend(built.entries.iter().map(|e| Entry {
                key: e.key.clone(),
                route: e.route.clone(),
            }));
    }
}

fn resolved(built: &Result<&http::Built, String>) -> Condition {
    match built.as_ref().ok().and_then(|b| b.refs.as_ref()) {
        Some(p) => Condition::new("ResolvedRefs", false, p.reason, p.message.clone()),
        None => Condition::new(
            "ResolvedRefs",
            true,
            "ResolvedRefs",
            "all references resolved",
        ),
    }
}

/// Whether a listener's `allowedRoutes` admit an HTTPRoute from `ns`.
fn allows(world: &World<'_>, l: &ListenerRef<'_>, ns: &str) -> bool {
    let allowed = l.listener.allowed_routes.as_ref();
    let kinds_ok = allowed.and_then(|a| a.kinds.as_ref()).is_none_or(|kinds| {
        kinds
            .iter()
            .any(|k| k.kind == "HTTPRoute" && k.group.as_deref().unwrap_or(GROUP) == GROUP)
    });
    let namespaces = allowed.and_then(|a| a.namespaces.as_ref());
    let ns_ok = match namespaces.and_then(|n| n.from.as_deref()).unwrap_or("Same") {
        "All" => true,
        "Selector" => namespaces
            .and_then(|n| n.selector.as_ref())
            .is_some_and(|s| s.matches(&world.namespace_labels(ns))),
        _ => l.gw.metadata.ns() == ns,
    };
    kinds_ok && ns_ok
}

/// The hostnames a route gets on a listener: the intersection of the
/// listener's hostname (none: any) and the route's (none: any), the more
/// specific name of each overlapping pair.
pub(crate) fn hostnames(listener: Option<&str>, route: &[String]) -> Vec<String> {
    let mut out: Vec<String> = match (listener, route.is_empty()) {
        (None, true) => vec!["*".into()],
        (Some(l), true) => vec![l.to_ascii_lowercase()],
        (None, false) => route.iter().map(|h| h.to_ascii_lowercase()).collect(),
        (Some(l), false) => route
            .iter()
            .filter_map(|h| {
                if host::covers(l, h) {
                    Some(h.to_ascii_lowercase())
                } else if host::covers(h, l) {
                    Some(l.to_ascii_lowercase())
                } else {
                    None
                }
            })
            .collect(),
    };
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::hostnames;

    #[test]
    fn listener_and_route_hostnames_intersect() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(hostnames(None, &[]), s(&["*"]));
        assert_eq!(hostnames(Some("foo.com"), &[]), s(&["foo.com"]));
        assert_eq!(
            hostnames(Some("*.example.com"), &s(&["a.example.com", "b.other.com"])),
            s(&["a.example.com"])
        );
        assert_eq!(
            hostnames(Some("a.example.com"), &s(&["*.example.com"])),
            s(&["a.example.com"])
        );
        assert!(hostnames(Some("foo.com"), &s(&["bar.com"])).is_empty());
        assert_eq!(hostnames(None, &s(&["Foo.com"])), s(&["foo.com"]));
    }
}
