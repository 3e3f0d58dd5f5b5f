//! `compile`: checked Gateways, VirtualServices and ServiceEntries, plus
//! the current credentials, into a [`Snapshot`]. Every value it reads was
//! typed and checked by validation, so nothing here can fail or fall back:
//! a server whose credential is missing fails closed, every other one
//! serves.

mod l4;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::compiler::{Compiler, tls_state};
use super::l4::L4;
use super::routes::{Action, MirrorTarget, Route, RouteId, VirtualHost, WeightedUpstream};
use super::{Listener, Model, Server, Snapshot};
use crate::config::checked::route::RouteAction;
use crate::config::checked::{
    self, CheckedGateway, CheckedServer, CheckedServiceEntry, CheckedVirtualService, HttpRoute,
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

/// Upstreams shared by every route that names the same `host:port` and
/// subset.
type Upstreams = HashMap<(String, u16, Option<String>), Arc<Upstream>>;

/// Where destinations resolve: the ServiceEntries by host and the
/// DestinationRules.
struct Lookup<'m> {
    entries: HashMap<&'m str, &'m CheckedServiceEntry>,
    /// Kubernetes Services, for hosts no ServiceEntry names.
    services: upstream::kube::Services<'m>,
    rules: upstream::RuleIndex<'m>,
    /// TLS origination per cluster, kept by the compiler between compiles.
    origins: std::cell::RefCell<crate::proxy::transport::Origins>,
    sds: &'m Sds,
    /// Where clusters keep their balancing state across compiles.
    registry: upstream::Registry,
}

fn weighted_upstream(
    d: &checked::route::Destination,
    look: &Lookup<'_>,
    upstreams: &mut Upstreams,
) -> WeightedUpstream {
    WeightedUpstream {
        upstream: shared_upstream(
            d.host.as_str(),
            d.port,
            d.subset.as_deref(),
            look,
            upstreams,
        ),
        weight: d.weight,
        headers: d.headers.clone(),
    }
}

fn compile_route(
    id: RouteId,
    r: &HttpRoute,
    look: &Lookup<'_>,
    upstreams: &mut Upstreams,
) -> Route {
    let action = match &r.action {
        RouteAction::Redirect(rd) => Action::Redirect(rd.clone()),
        RouteAction::Direct(d) => Action::Direct(d.clone()),
        RouteAction::Forward(dests) => Action::Forward(
            dests
                .iter()
                .map(|d| weighted_upstream(d, look, upstreams))
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
                upstream: shared_upstream(&m.host, m.port, m.subset.as_deref(), look, upstreams),
                millionths: m.millionths,
            })
            .collect(),
    }
}

/// The one `Upstream` of `host:port` (and subset) in this compile, made
/// on first use.
fn shared_upstream(
    host: &str,
    port: Option<u16>,
    subset: Option<&str>,
    look: &Lookup<'_>,
    upstreams: &mut Upstreams,
) -> Arc<Upstream> {
    let rule = upstream::rule_for(&look.rules, host);
    let within = (&look.entries, &look.services);
    let mut up = upstream::resolve_in(host, port, subset, within, rule);
    let key = (up.host.clone(), up.port, up.subset.clone());
    upstreams
        .entry(key)
        .or_insert_with(|| {
            look.registry.attach(&mut up);
            Arc::new(look.origins.borrow_mut().attach(up, look.sds))
        })
        .clone()
}

/// A route as it applies on Gateway `gw`: its `match[]` entries whose
/// source conditions hold there (`MatchSource`); `None` when it had
/// entries and none holds. Borrowed unless some entry was dropped.
fn on_gateway<'r>(
    r: &'r HttpRoute,
    gw: &CheckedGateway,
    labels: &BTreeMap<String, String>,
) -> Option<std::borrow::Cow<'r, HttpRoute>> {
    let holds = |m: &&checked::route::RouteMatch| m.source.applies(&gw.namespace, &gw.name, labels);
    if r.matches.iter().all(|m| holds(&m)) {
        return Some(std::borrow::Cow::Borrowed(r));
    }
    let kept: Vec<_> = r.matches.iter().filter(holds).cloned().collect();
    if kept.is_empty() {
        return None;
    }
    let mut owned = r.clone();
    owned.matches = kept;
    Some(std::borrow::Cow::Owned(owned))
}

/// What every server of one compile shares.
struct Context<'m> {
    model: &'m Model<'m>,
    look: Lookup<'m>,
    upstreams: Upstreams,
    /// Each VirtualService's routes on each Gateway (a `match[]` entry
    /// may name Gateways), compiled once however many servers use them.
    routes_of: HashMap<(usize, &'m str, &'m str), Vec<Route>>,
}

impl<'m> Context<'m> {
    /// The virtual hosts one server gets from the VirtualServices bound to
    /// its Gateway: those whose hosts intersect the server's, from
    /// namespaces the server's host entries admit.
    fn vhosts(
        &mut self,
        gw: &'m CheckedGateway,
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
            let (look, upstreams) = (&self.look, &mut self.upstreams);
            let labels = &self.model.labels;
            let key = (vi, gw.namespace.as_str(), gw.name.as_str());
            let routes = self.routes_of.entry(key).or_insert_with(|| {
                let vs_name: Arc<str> = format!("{}/{}", vs.namespace, vs.name).into();
                vs.http
                    .iter()
                    .enumerate()
                    .filter_map(|(index, r)| {
                        let id = RouteId {
                            virtual_service: vs_name.clone(),
                            index,
                            name: r.name.as_deref().map(Arc::from),
                        };
                        let r = on_gateway(r, gw, labels)?;
                        Some(compile_route(id, &r, look, upstreams))
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
        look: Lookup {
            entries: upstream::index(&model.service_entries),
            services: upstream::kube::Services::new(&model.services, &model.endpoint_slices),
            rules: upstream::RuleIndex::new(&model.destination_rules),
            origins: std::cell::RefCell::new(std::mem::take(&mut compiler.origins)),
            sds,
            registry: compiler.upstreams.clone(),
        },
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
            let l4 = cx.l4(gw, s, index);
            let vhosts = if l4.is_some() {
                Vec::new()
            } else {
                cx.vhosts(gw, s, index)
            };
            ports.entry(s.port).or_default().push(Arc::new(Server {
                id: s.id.as_str().into(),
                hosts,
                tls,
                mutual: mode.is_mutual() && mode != TlsMode::OptionalMutual,
                https_redirect: !is_tls && s.tls.https_redirect,
                vhosts: Arc::new(vhosts),
                credential: credential.filter(|_| is_tls),
                tls_settings: s.tls.clone(),
                l4,
            }));
        }
    }
    compiler.retain(&live_ids);
    compiler.origins = cx.look.origins.into_inner();
    compiler.origins.finish();
    let listeners = ports
        .into_iter()
        .map(|(port, servers)| (port, Arc::new(listener(port, servers))))
        .collect();
    Snapshot { version, listeners }
}

/// One port's listener: its servers and their SNI table. TLS servers
/// (terminated or PASSTHROUGH), TCP servers and plain servers cannot share
/// a port; the TLS ones are kept, else the TCP ones (logged).
fn listener(port: u16, servers: Vec<Arc<Server>>) -> Listener {
    let is_tls = |s: &Server| s.tls.is_some() || matches!(s.l4, Some(L4::Passthrough(_)));
    let is_tcp = |s: &Server| matches!(s.l4, Some(L4::Tcp(_)));
    let tls = servers.iter().any(|s| is_tls(s));
    let tcp = !tls && servers.iter().any(|s| is_tcp(s));
    let kind = |s: &Server| (is_tls(s), is_tcp(s));
    if servers.iter().any(|s| kind(s) != (tls, tcp)) {
        tracing::warn!(
            port,
            "plain HTTP, TCP and HTTPS servers share one port: serving the {} ones only",
            if tls { "HTTPS" } else { "TCP" }
        );
    }
    let servers: Vec<Arc<Server>> = servers
        .into_iter()
        .filter(|s| kind(s) == (tls, tcp))
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
        passthrough: servers
            .iter()
            .any(|s| matches!(s.l4, Some(L4::Passthrough(_)))),
        tcp,
        servers,
        sni: Arc::new(sni),
        by_id: Arc::new(by_id),
    }
}
