//! Which Gateway server serves a host on a port when several claim it:
//! Istio's analyzer calls the losing claims `ConflictingGateways`.
//!
//! [`plan`] is the rule the snapshot compiler applies today (in
//! `snapshot::compile` and `tls::sni::SniTable::insert`), written once as a
//! pure function over the Gateways one process serves:
//! 1. Gateways are taken in `(namespace, name)` order, and each Gateway's
//!    servers in the order they are written.
//! 2. A port carries either TLS (`HTTPS`, `TLS`) or plain servers: if any
//!    server on a port is TLS, the plain ones on that port are dropped.
//! 3. On each port, the first server to claim a host pattern (the host part
//!    of `namespace/host`, lower case; `*.x` and `*` are patterns of their
//!    own) serves it; later claims of the same pattern are not served.
//!
//! The compiler should build its listeners from [`plan`] so that what
//! `apply` warns about and what is served can never disagree. This module
//! only reads Gateways; it never decides which Gateways a process selects
//! beyond the plain selector rule in [`across_workloads`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::gateway::Gateway;
use super::host::gateway_host_name;

/// One Gateway server, as users name it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerRef {
    pub namespace: String,
    pub gateway: String,
    /// Index into `spec.servers`.
    pub index: usize,
}

impl ServerRef {
    /// `Gateway namespace/name`.
    pub fn gateway_name(&self) -> String {
        format!("Gateway {}/{}", self.namespace, self.gateway)
    }
}

/// `Gateway namespace/name spec.servers[i]`.
impl fmt::Display for ServerRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} spec.servers[{}]", self.gateway_name(), self.index)
    }
}

/// Who serves one host pattern on one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub serving: ServerRef,
    /// Later servers that claim the same pattern; they are not served for it.
    pub losers: Vec<ServerRef>,
}

/// One port as it is served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortPlan {
    /// Whether the port carries TLS.
    pub tls: bool,
    /// The servers on this port, in precedence order.
    pub servers: Vec<ServerRef>,
    /// Plain servers left out because TLS servers share the port.
    pub dropped: Vec<ServerRef>,
    /// Host pattern (lower case, without its namespace part) -> its claim.
    pub hosts: BTreeMap<String, Claim>,
}

/// The servers of `gateways` by port, as they are served (see the module
/// doc for the rule). The order of `gateways` does not matter.
///
/// For the compiler (`snapshot::compile`, owned elsewhere): call this with
/// the Gateways the process selects; a port's [`PortPlan::servers`] are its
/// listener's servers in order, and each [`PortPlan::hosts`] entry is one
/// SNI table entry pointing at `serving`. Building listeners this way keeps
/// the served result and the `ConflictingGateways` warnings the same rule.
pub fn plan(gateways: &[&Gateway]) -> BTreeMap<u16, PortPlan> {
    let mut sorted: Vec<&Gateway> = gateways.to_vec();
    sorted.sort_by(|a, b| {
        (a.metadata.ns(), &a.metadata.name).cmp(&(b.metadata.ns(), &b.metadata.name))
    });
    // (server, is TLS, its host patterns) per port, in precedence order.
    type Entry<'a> = (ServerRef, bool, Vec<String>);
    let mut by_port: BTreeMap<u16, Vec<Entry<'_>>> = BTreeMap::new();
    for g in sorted {
        for (index, s) in g.spec.servers.iter().enumerate() {
            let Some(port) = &s.port else { continue };
            let Ok(number) = u16::try_from(port.number) else {
                continue;
            };
            let tls = matches!(port.protocol.to_ascii_uppercase().as_str(), "HTTPS" | "TLS");
            let server = ServerRef {
                namespace: g.metadata.ns().to_owned(),
                gateway: g.metadata.name.clone(),
                index,
            };
            let hosts = s
                .hosts
                .iter()
                .map(|h| gateway_host_name(h).to_ascii_lowercase())
                .collect();
            by_port
                .entry(number)
                .or_default()
                .push((server, tls, hosts));
        }
    }
    by_port
        .into_iter()
        .map(|(port, entries)| (port, port_plan(entries)))
        .collect()
}

fn port_plan(entries: Vec<(ServerRef, bool, Vec<String>)>) -> PortPlan {
    let tls = entries.iter().any(|(_, t, _)| *t);
    let mut p = PortPlan {
        tls,
        ..PortPlan::default()
    };
    for (server, is_tls, hosts) in entries {
        if is_tls != tls {
            p.dropped.push(server);
            continue;
        }
        for h in hosts {
            match p.hosts.get_mut(&h) {
                Some(claim) if claim.serving != server => claim.losers.push(server.clone()),
                // A server that names a host twice still serves it.
                Some(_) => {}
                None => {
                    p.hosts.insert(
                        h,
                        Claim {
                            serving: server.clone(),
                            losers: Vec::new(),
                        },
                    );
                }
            }
        }
        p.servers.push(server);
    }
    p
}

/// A server that is not served, and the one that is served in its place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Conflict {
    /// `loser` claims `host` on `port`, which `serving` serves.
    Host {
        port: u16,
        host: String,
        serving: ServerRef,
        loser: ServerRef,
    },
    /// `dropped` is a plain server on a port whose TLS servers (the first
    /// being `serving`) are served instead.
    Protocol {
        port: u16,
        serving: ServerRef,
        dropped: ServerRef,
    },
}

impl Conflict {
    /// The server that is not served.
    pub fn loser(&self) -> &ServerRef {
        match self {
            Conflict::Host { loser, .. } => loser,
            Conflict::Protocol { dropped, .. } => dropped,
        }
    }

    /// The server served in its place.
    pub fn serving(&self) -> &ServerRef {
        match self {
            Conflict::Host { serving, .. } | Conflict::Protocol { serving, .. } => serving,
        }
    }

    /// Says what is served, naming both Gateways; it reads after the
    /// losing Gateway's name.
    pub fn message(&self) -> String {
        let (serving, loser) = (self.serving(), self.loser());
        match self {
            Conflict::Host { port, host, .. } => format!(
                "ConflictingGateways: spec.servers[{}] claims host {host} on port {port}, as {serving} does; {} serves it (the first by namespace/name), {} does not",
                loser.index,
                serving.gateway_name(),
                loser.gateway_name()
            ),
            Conflict::Protocol { port, .. } => format!(
                "ConflictingGateways: spec.servers[{}] serves plain text on port {port}, where {serving} serves TLS; a port serves one or the other: its TLS servers are served, this server is not",
                loser.index
            ),
        }
    }
}

/// `Gateway ns/name: ConflictingGateways: ...`, as `apply` prints it.
impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.loser().gateway_name(), self.message())
    }
}

/// Every conflict among the Gateways one process serves.
pub fn conflicts(gateways: &[&Gateway]) -> Vec<Conflict> {
    let mut out = Vec::new();
    for (port, p) in plan(gateways) {
        if let Some(first) = p.servers.first() {
            out.extend(p.dropped.into_iter().map(|dropped| Conflict::Protocol {
                port,
                serving: first.clone(),
                dropped,
            }));
        }
        for (host, claim) in p.hosts {
            for loser in claim.losers {
                out.push(Conflict::Host {
                    port,
                    host: host.clone(),
                    serving: claim.serving.clone(),
                    loser,
                });
            }
        }
    }
    out
}

/// How many distinct selectors are combined pairwise in [`across_workloads`];
/// beyond this, each selector alone is considered.
const MAX_PAIRED_SELECTORS: usize = 16;

/// Conflicts among Gateways that are not all served by one process: a
/// process serves the Gateways whose selector its labels include, so each
/// distinct selector (and each pair of compatible selectors, when there are
/// few) stands for the labels of one possible process. Used where the
/// process's labels are unknown (`apply`); sorted, without duplicates.
pub fn across_workloads(gateways: &[&Gateway]) -> Vec<Conflict> {
    let selectors: BTreeSet<&BTreeMap<String, String>> =
        gateways.iter().map(|g| &g.spec.selector).collect();
    let mut label_sets: Vec<BTreeMap<String, String>> =
        selectors.iter().map(|s| (*s).clone()).collect();
    if selectors.len() <= MAX_PAIRED_SELECTORS {
        for (i, a) in selectors.iter().enumerate() {
            for b in selectors.iter().skip(i + 1) {
                let compatible = b.iter().all(|(k, v)| a.get(k).is_none_or(|av| av == v));
                if compatible {
                    let mut both = (*a).clone();
                    both.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
                    label_sets.push(both);
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    for labels in &label_sets {
        let served: Vec<&Gateway> = gateways
            .iter()
            .copied()
            .filter(|g| {
                g.spec
                    .selector
                    .iter()
                    .all(|(k, v)| labels.get(k) == Some(v))
            })
            .collect();
        found.extend(conflicts(&served));
    }
    found.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(ns: &str, name: &str, selector: &str, servers: &[(u32, &str, &str)]) -> Gateway {
        let servers: Vec<String> = servers
            .iter()
            .map(|(port, proto, hosts)| {
                let hosts: Vec<String> = hosts.split(',').map(|h| format!("{h:?}")).collect();
                format!(
                    r#"{{"port":{{"number":{port},"name":"p{port}","protocol":"{proto}"}},"hosts":[{}]}}"#,
                    hosts.join(",")
                )
            })
            .collect();
        let selector = selector
            .split_once('=')
            .map_or(String::new(), |(k, v)| format!("{k:?}:{v:?}"));
        let json = format!(
            r#"{{"apiVersion":"networking.istio.io/v1","kind":"Gateway","metadata":{{"name":"{name}","namespace":"{ns}"}},"spec":{{"selector":{{{selector}}},"servers":[{}]}}}}"#,
            servers.join(",")
        );
        serde_json::from_str(&json).unwrap()
    }

    fn names(c: &[Conflict]) -> Vec<String> {
        c.iter()
            .map(|c| format!("{} < {}", c.loser(), c.serving()))
            .collect()
    }

    #[test]
    fn first_by_namespace_and_name_serves() {
        let b = gw("default", "b", "", &[(443, "HTTPS", "a.com,*.x.com")]);
        let a = gw(
            "default",
            "a",
            "",
            &[(443, "HTTPS", "A.com"), (443, "HTTPS", "ns/*.x.com")],
        );
        let z = gw(
            "aaa",
            "z",
            "",
            &[(443, "HTTPS", "*.x.com"), (8443, "HTTPS", "a.com")],
        );
        let found = conflicts(&[&b, &a, &z]);
        assert_eq!(
            names(&found),
            [
                "Gateway default/a spec.servers[1] < Gateway aaa/z spec.servers[0]",
                "Gateway default/b spec.servers[0] < Gateway aaa/z spec.servers[0]",
                "Gateway default/b spec.servers[0] < Gateway default/a spec.servers[0]",
            ]
        );
        let plan = plan(&[&b, &a, &z]);
        assert_eq!(plan[&443].hosts["a.com"].serving.gateway, "a");
        assert_eq!(plan[&8443].hosts["a.com"].serving.gateway, "z");
    }

    #[test]
    fn plain_servers_beside_tls_are_dropped() {
        let a = gw("default", "a", "", &[(443, "HTTP", "a.com")]);
        let b = gw("default", "b", "", &[(443, "HTTPS", "b.com")]);
        let found = conflicts(&[&a, &b]);
        assert_eq!(
            names(&found),
            ["Gateway default/a spec.servers[0] < Gateway default/b spec.servers[0]"]
        );
        assert!(matches!(found[0], Conflict::Protocol { port: 443, .. }));
    }

    #[test]
    fn workloads_by_selector() {
        let a = gw(
            "default",
            "a",
            "istio=ingressgateway",
            &[(443, "HTTPS", "a.com")],
        );
        let b = gw("default", "b", "istio=other", &[(443, "HTTPS", "a.com")]);
        let c = gw("default", "c", "", &[(443, "HTTPS", "a.com")]);
        // a and b never share a process; c (no selector) shares one with each.
        assert_eq!(
            names(&across_workloads(&[&a, &b, &c])),
            [
                "Gateway default/c spec.servers[0] < Gateway default/a spec.servers[0]",
                "Gateway default/c spec.servers[0] < Gateway default/b spec.servers[0]",
            ]
        );
    }
}
