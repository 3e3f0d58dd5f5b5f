//! `compile`: checked Gateways, VirtualServices and ServiceEntries, plus
//! the current credentials, into a [`Snapshot`]. Every value it reads was
//! typed and checked by validation, so nothing here can fail or fall back:
//! a server whose credential is missing fails closed, every other one
//! serves.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::compiler::{Compiler, tls_state};
use super::routes::{Action, MirrorTarget, Route, RouteId, VirtualHost, WeightedUpstream};
use super::{Listener, Model, Server, Snapshot};
use crate::config::checked::route::RouteAction;
use crate::config::checked::{
    CheckedGateway, CheckedServer, CheckedServiceEntry, CheckedVirtualService, HttpRoute,
    ServerProtocol,
};
use crate::config::gateway::TlsMode;
use crate::config::host;
use crate::secret::sds::Sds;
use crate::tls::sni::SniTable;
use crate::upstream::{self, Upstream};

/// The VirtualServices bound to one Gateway, indexed by host so that a
/// server finds its candidates without scanning them all.
#[derive(Default)]
struct VsIndex {
    /// Indices into `Model::virtual_services`, in creation order.
    all: Vec<usize>,
    exact: HashMap<String, Vec<usize>>,
    /// (pattern `*.suffix` or `*`, index)
    wildcard: Vec<(String, usize)>,
}

impl VsIndex {
    /// Candidate VirtualServices for a server host, in creation order.
    fn candidates(&self, server_host: &str, out: &mut Vec<usize>) {
        if server_host.starts_with('*') {
            out.extend_from_slice(&self.all);
            return;
        }
        if let Some(v) = self.exact.get(server_host) {
            out.extend_from_slice(v);
        }
        for (pattern, i) in &self.wildcard {
            if host::intersects(pattern, server_host) {
                out.push(*i);
            }
        }
    }
}

/// VirtualServices by the Gateway they bind to, each with a host index.
fn index_by_gateway<'m>(
    virtual_services: &[&'m CheckedVirtualService],
) -> HashMap<(&'m str, &'m str), VsIndex> {
    let mut by_gateway: HashMap<(&str, &str), VsIndex> = HashMap::new();
    for (i, vs) in virtual_services.iter().enumerate() {
        for (ns, name) in &vs.gateways {
            let idx = by_gateway.entry((ns.as_str(), name.as_str())).or_default();
            if idx.all.last() == Some(&i) {
                continue;
            }
            idx.all.push(i);
            for h in &vs.hosts {
                if h.starts_with('*') {
                    idx.wildcard.push((h.clone(), i));
                } else {
                    idx.exact.entry(h.clone()).or_default().push(i);
                }
            }
        }
    }
    by_gateway
}

/// Upstreams shared by every route that names the same `host:port`.
type Upstreams = HashMap<(String, u16), Arc<Upstream>>;

fn compile_route(
    id: RouteId,
    r: &HttpRoute,
    entries: &HashMap<&str, &CheckedServiceEntry>,
    upstreams: &mut Upstreams,
) -> Route {
    let action = match &r.action {
        RouteAction::Redirect(rd) => Action::Redirect(rd.clone()),
        RouteAction::Direct(d) => Action::Direct(d.clone()),
        RouteAction::Forward(dests) => Action::Forward(
            dests
                .iter()
                .map(|d| WeightedUpstream {
                    upstream: shared_upstream(&d.host, d.port, entries, upstreams),
                    weight: d.weight,
                })
                .collect(),
        ),
    };
    Route {
        id: Arc::new(id),
        name: r.name.clone(),
        matches: r.matches.clone(),
        action,
        timeout: r.timeout,
        rewrite: r.rewrite.clone(),
        request_headers: r.request_headers.clone(),
        response_headers: r.response_headers.clone(),
        fault: r.fault,
        cors: r.cors.clone(),
        retries: r.retries.clone(),
        mirrors: r
            .mirrors
            .iter()
            .map(|m| MirrorTarget {
                upstream: shared_upstream(&m.host, m.port, entries, upstreams),
                millionths: m.millionths,
            })
            .collect(),
    }
}

/// The one `Upstream` of `host:port` in this compile, made on first use.
fn shared_upstream(
    host: &str,
    port: Option<u16>,
    entries: &HashMap<&str, &CheckedServiceEntry>,
    upstreams: &mut Upstreams,
) -> Arc<Upstream> {
    let up = upstream::resolve(host, port, entries);
    let key = (up.host.clone(), up.port);
    upstreams.entry(key).or_insert_with(|| Arc::new(up)).clone()
}

/// What every server of one compile shares.
struct Context<'m> {
    model: &'m Model<'m>,
    entries: HashMap<&'m str, &'m CheckedServiceEntry>,
    upstreams: Upstreams,
    /// Each VirtualService's routes, compiled once however many servers use them.
    routes_of: HashMap<usize, Vec<Route>>,
}

impl Context<'_> {
    /// The virtual hosts one server gets from the VirtualServices bound to
    /// its Gateway: those whose hosts intersect the server's, from
    /// namespaces the server's host entries admit.
    fn vhosts(
        &mut self,
        gw: &CheckedGateway,
        s: &CheckedServer,
        index: &VsIndex,
    ) -> Vec<VirtualHost> {
        let mut candidates = Vec::new();
        for h in &s.hosts {
            index.candidates(&h.host, &mut candidates);
        }
        candidates.sort_unstable();
        candidates.dedup();
        let mut vhosts = Vec::new();
        for vi in candidates {
            let vs = self.model.virtual_services[vi];
            let admitted: Vec<String> = vs
                .hosts
                .iter()
                .filter(|vh| {
                    s.hosts.iter().any(|sh| {
                        sh.admits(&gw.namespace, &vs.namespace) && host::intersects(vh, &sh.host)
                    })
                })
                .cloned()
                .collect();
            if admitted.is_empty() {
                continue;
            }
            let (entries, upstreams) = (&self.entries, &mut self.upstreams);
            let routes = self.routes_of.entry(vi).or_insert_with(|| {
                let vs_name: Arc<str> = format!("{}/{}", vs.namespace, vs.name).into();
                vs.http
                    .iter()
                    .enumerate()
                    .map(|(index, r)| {
                        let id = RouteId {
                            virtual_service: vs_name.clone(),
                            index,
                            name: r.name.as_deref().map(Arc::from),
                        };
                        compile_route(id, r, entries, upstreams)
                    })
                    .collect()
            });
            vhosts.push(VirtualHost {
                hosts: admitted,
                routes: routes.clone(),
            });
        }
        vhosts
    }
}

/// Builds the snapshot. A server without a usable credential fails closed
/// (logged); every other server keeps working.
pub fn compile(model: &Model<'_>, sds: &Sds, compiler: &mut Compiler, version: u64) -> Snapshot {
    let mut cx = Context {
        model,
        entries: upstream::index(&model.service_entries),
        upstreams: HashMap::new(),
        routes_of: HashMap::new(),
    };
    let by_gateway = index_by_gateway(&model.virtual_services);
    let mut live_ids = HashSet::new();
    let mut ports: BTreeMap<u16, Vec<Arc<Server>>> = BTreeMap::new();
    let no_vs = VsIndex::default();
    for gw in &model.gateways {
        let index = by_gateway
            .get(&(gw.namespace.as_str(), gw.name.as_str()))
            .unwrap_or(&no_vs);
        for s in &gw.servers {
            live_ids.insert(s.id.clone());
            let is_tls = s.protocol == ServerProtocol::Tls;
            let mode = s.tls.effective_mode();
            let credential = crate::secret::files::resource_name(&s.tls);
            let hosts: Vec<String> = s.hosts.iter().map(|h| h.host.clone()).collect();
            let tls = is_tls.then(|| {
                tls_state(
                    (s.id.as_str(), hosts.as_slice()),
                    &s.tls,
                    credential.as_deref(),
                    sds,
                    compiler,
                )
            });
            let vhosts = cx.vhosts(gw, s, index);
            ports.entry(s.port).or_default().push(Arc::new(Server {
                id: s.id.as_str().into(),
                hosts,
                tls,
                mutual: mode.is_mutual() && mode != TlsMode::OptionalMutual,
                https_redirect: !is_tls && s.tls.https_redirect,
                vhosts: Arc::new(vhosts),
                credential: credential.filter(|_| is_tls),
                tls_settings: s.tls.clone(),
            }));
        }
    }
    compiler.retain(&live_ids);
    let listeners = ports
        .into_iter()
        .map(|(port, servers)| (port, Arc::new(listener(port, servers))))
        .collect();
    Snapshot { version, listeners }
}

/// One port's listener: its servers and their SNI table. TLS and plain
/// servers cannot share a port; the TLS ones are kept (logged).
fn listener(port: u16, servers: Vec<Arc<Server>>) -> Listener {
    let tls = servers.iter().any(|s| s.tls.is_some());
    if tls && servers.iter().any(|s| s.tls.is_none()) {
        tracing::warn!(
            port,
            "plain HTTP and HTTPS servers share one port: serving the HTTPS ones only"
        );
    }
    let servers: Vec<Arc<Server>> = servers
        .into_iter()
        .filter(|s| s.tls.is_some() == tls)
        .collect();
    let mut sni = SniTable::default();
    let mut by_id = HashMap::new();
    for (i, s) in servers.iter().enumerate() {
        by_id.insert(s.id.to_string(), i);
        for h in &s.hosts {
            sni.insert(h, i);
        }
    }
    Listener {
        port,
        tls,
        servers,
        sni: Arc::new(sni),
        by_id: Arc::new(by_id),
    }
}
