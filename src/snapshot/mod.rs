//! Compiles the validated objects and the current credentials into the one
//! immutable [`Snapshot`] the data plane reads, published with one swap.
//!
//! Nothing here does I/O, and nothing on the request path takes a lock: the
//! data plane loads an `Arc<Snapshot>` and keeps the `Arc`s it started with.

pub mod routes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rustls::ServerConfig;

use crate::config::gateway::{Gateway, ServerTls, TlsMode};
use crate::config::host;
use crate::config::virtual_service::{DirectBody, HttpRoute, VirtualService};
use crate::config::{ServiceEntry, duration};
use crate::secret::sds::{Sds, Wanted};
use crate::tls::sni::SniTable;
use crate::tls::{self, SessionState};
use crate::upstream;
use routes::{Action, Route, RouteMatch, VirtualHost, WeightedUpstream};

/// Whether a server can complete handshakes now.
#[derive(Debug, Clone)]
pub enum TlsState {
    Ready(Arc<ServerConfig>),
    /// No usable credential: handshakes for this server are refused.
    Unavailable(String),
}

/// One Gateway server: its hosts, TLS and routes.
#[derive(Debug)]
pub struct Server {
    /// `namespace/gateway/port-name`: stable across snapshots.
    pub id: String,
    /// Host patterns (the host part of `ns/host`).
    pub hosts: Vec<String>,
    /// `None` for plain HTTP servers.
    pub tls: Option<TlsState>,
    pub mutual: bool,
    pub https_redirect: bool,
    /// Shared with later snapshots that only change credentials.
    pub vhosts: Arc<Vec<VirtualHost>>,
    /// The SDS resource its certificate comes from (TLS servers).
    pub credential: Option<String>,
    /// Its `tls` settings, to rebuild its config when the credential changes.
    pub tls_settings: ServerTls,
}

impl Server {
    /// Whether this server serves `host_name` (a request's Host, port stripped).
    pub fn serves(&self, host_name: &str) -> bool {
        self.hosts.iter().any(|h| host::matches(h, host_name))
    }
}

/// All servers on one Gateway port.
#[derive(Debug)]
pub struct Listener {
    pub port: u16,
    pub tls: bool,
    pub servers: Vec<Arc<Server>>,
    pub sni: Arc<SniTable>,
    pub by_id: Arc<HashMap<String, usize>>,
}

impl Listener {
    /// The server for a TLS ClientHello's SNI.
    pub fn server_for_sni(&self, sni: Option<&str>) -> Option<&Arc<Server>> {
        self.sni.lookup(sni).and_then(|i| self.servers.get(i))
    }

    /// A plain-HTTP listener picks its server by Host.
    pub fn server_for_host(&self, host_name: &str) -> Option<&Arc<Server>> {
        // The same table and precedence as SNI: exact, longest wildcard, `*`.
        self.server_for_sni(Some(host_name))
    }

    pub fn server_by_id(&self, id: &str) -> Option<&Arc<Server>> {
        self.by_id.get(id).and_then(|i| self.servers.get(*i))
    }

    /// Whose a request's host is, for a connection bound to `server`: the
    /// owner is the server the handshake would pick for that name (exact,
    /// longest `*.` wildcard, `*`). A wildcard or `*` server also *matches*
    /// hosts a more specific server owns; answering for those would bypass
    /// the owner's TLS (its client CA), so they are [`HostOwner::Other`].
    pub fn owner_of(&self, server: &Arc<Server>, host_name: &str) -> HostOwner {
        match self.server_for_sni(Some(host_name)) {
            Some(o) if Arc::ptr_eq(o, server) && server.serves(host_name) => HostOwner::This,
            Some(o) if !Arc::ptr_eq(o, server) => HostOwner::Other,
            _ => HostOwner::Nobody,
        }
    }
}

/// See [`Listener::owner_of`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOwner {
    /// The connection's own server: route the request.
    This,
    /// Another server on this port: 421 Misdirected Request.
    Other,
    /// Nobody on this port: 404.
    Nobody,
}

/// Everything the data plane serves, at one instant.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub version: u64,
    pub listeners: BTreeMap<u16, Arc<Listener>>,
}

/// The objects the control loop hands to [`compile`], borrowed from its
/// last-good state (nothing is copied per compile).
#[derive(Debug, Default)]
pub struct Model<'a> {
    pub gateways: Vec<&'a Gateway>,
    /// In creation order.
    pub virtual_services: Vec<&'a VirtualService>,
    pub service_entries: Vec<&'a ServiceEntry>,
}

/// Whether a Gateway's selector picks this process.
pub fn selects(g: &Gateway, labels: &BTreeMap<String, String>) -> bool {
    g.spec
        .selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

/// The credentials the selected Gateways reference, with the hosts each covers.
pub fn wanted_credentials(gateways: &[&Gateway]) -> Wanted {
    let mut wanted: Wanted = BTreeMap::new();
    for g in gateways {
        for s in &g.spec.servers {
            let Some(tls) = &s.tls else { continue };
            let proto = s.port.as_ref().map(|p| p.protocol.to_ascii_uppercase());
            if !matches!(proto.as_deref(), Some("HTTPS" | "TLS")) {
                continue;
            }
            if let Some(name) = crate::secret::files::resource_name(tls) {
                let hosts: BTreeSet<String> = s
                    .hosts
                    .iter()
                    .map(|h| host::gateway_host_name(h).to_ascii_lowercase())
                    .collect();
                wanted.entry(name).or_default().extend(hosts);
            }
        }
    }
    wanted
}

/// What a server's `ServerConfig` was built from: if none of it changed,
/// the next compile reuses the config (and its session state).
struct CachedConfig {
    tls: ServerTls,
    certified: Arc<rustls::sign::CertifiedKey>,
    trust_fingerprint: String,
    config: Arc<ServerConfig>,
}

/// Who may share a client verifier: the same trust, mode and allow-lists.
type VerifierKey = (String, bool, crate::tls::ExtraChecks);

/// State kept across compiles, so one changed credential among ten
/// thousand rebuilds one config:
/// - session caches and ticket keys per client trust (the fingerprint of the
///   CA bundle and CRLs; "" for servers without client auth). A change of
///   trust gets fresh ones, so sessions from the old trust state never
///   resume; rustls itself refuses to resume a session under another SNI,
///   so sharing them between servers never lets host A's session resume on
///   host B;
/// - client verifiers per (trust, mode, allow-lists);
/// - built configs per server, reused while their inputs are unchanged.
#[derive(Default)]
pub struct Compiler {
    sessions: HashMap<String, SessionState>,
    verifiers: HashMap<VerifierKey, Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    configs: HashMap<String, CachedConfig>,
}

impl std::fmt::Debug for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler")
            .field("servers", &self.configs.len())
            .field("trust_states", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Compiler {
    fn session_for(&mut self, trust_fingerprint: &str) -> Result<SessionState, String> {
        if let Some(s) = self.sessions.get(trust_fingerprint) {
            return Ok(s.clone());
        }
        let s = SessionState::new(trust_fingerprint.to_owned()).map_err(|e| e.to_string())?;
        self.sessions
            .insert(trust_fingerprint.to_owned(), s.clone());
        Ok(s)
    }

    fn verifier_for(
        &mut self,
        tls_settings: &ServerTls,
        trust: &crate::secret::credential::TrustBundle,
    ) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String> {
        let key = (
            trust.fingerprint.clone(),
            tls_settings.effective_mode() == TlsMode::OptionalMutual,
            crate::tls::ExtraChecks::from_tls(tls_settings),
        );
        if let Some(v) = self.verifiers.get(&key) {
            return Ok(v.clone());
        }
        let v = tls::client_verifier(tls_settings, trust).map_err(|e| e.to_string())?;
        self.verifiers.insert(key, v.clone());
        Ok(v)
    }

    /// The server's config, rebuilt only when its inputs changed.
    fn config_for(
        &mut self,
        id: &str,
        tls_settings: &ServerTls,
        cred: &crate::secret::credential::ServerCredential,
        trust: Option<&crate::secret::credential::TrustBundle>,
    ) -> Result<Arc<ServerConfig>, String> {
        let fp = trust.map(|t| t.fingerprint.clone()).unwrap_or_default();
        if let Some(c) = self.configs.get(id)
            && c.tls == *tls_settings
            && Arc::ptr_eq(&c.certified, &cred.certified)
            && c.trust_fingerprint == fp
        {
            return Ok(c.config.clone());
        }
        let session = self.session_for(&fp)?;
        let verifier = match trust {
            Some(t) => Some(self.verifier_for(tls_settings, t)?),
            None => None,
        };
        let config = tls::server_config(tls_settings, cred, verifier, &session)
            .map_err(|e| e.to_string())?;
        self.configs.insert(
            id.to_owned(),
            CachedConfig {
                tls: tls_settings.clone(),
                certified: cred.certified.clone(),
                trust_fingerprint: fp,
                config: config.clone(),
            },
        );
        Ok(config)
    }

    /// Forgets servers that are gone, and trust states nobody uses.
    fn retain(&mut self, live: &std::collections::HashSet<String>) {
        self.configs.retain(|k, _| live.contains(k));
        let used: std::collections::HashSet<&str> = self
            .configs
            .values()
            .map(|c| c.trust_fingerprint.as_str())
            .collect();
        self.sessions.retain(|k, _| used.contains(k.as_str()));
        self.verifiers.retain(|k, _| used.contains(k.0.as_str()));
    }
}

/// The (namespace, name) of the Gateways a VirtualService binds to.
fn bound_gateways(vs: &VirtualService) -> impl Iterator<Item = (&str, &str)> {
    vs.spec
        .gateways
        .iter()
        .map(move |g| match g.split_once('/') {
            Some((ns, name)) => (ns, name),
            None => (vs.metadata.ns(), g.as_str()),
        })
}

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
        if server_host == "*" || server_host.starts_with('*') {
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

/// Whether a server host entry (`ns/host`) admits VirtualServices of `vs_ns`.
fn namespace_admits(entry: &str, gw_ns: &str, vs_ns: &str) -> bool {
    match entry.split_once('/') {
        None | Some(("*", _)) => true,
        Some((".", _)) => vs_ns == gw_ns,
        Some(("~", _)) => false,
        Some((ns, _)) => ns == vs_ns,
    }
}

fn compile_route(
    r: &HttpRoute,
    entries: &HashMap<String, &ServiceEntry>,
    upstreams: &mut HashMap<(String, u16), Arc<upstream::Upstream>>,
) -> Result<Route, String> {
    let matches = r
        .matches
        .iter()
        .map(RouteMatch::compile)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let action = if let Some(rd) = &r.redirect {
        Action::Redirect {
            uri: rd.uri.clone(),
            authority: rd.authority.clone(),
            scheme: rd.scheme.clone(),
            port: rd.port.and_then(|p| u16::try_from(p).ok()),
            code: rd
                .redirect_code
                .and_then(|c| u16::try_from(c).ok())
                .unwrap_or(301),
        }
    } else if let Some(d) = &r.direct_response {
        let body = match &d.body {
            Some(DirectBody::String(s)) => bytes::Bytes::from(s.clone()),
            Some(DirectBody::Bytes(b)) => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map(bytes::Bytes::from)
                    .unwrap_or_default()
            }
            None => bytes::Bytes::new(),
        };
        Action::Direct {
            status: u16::try_from(d.status).unwrap_or(500),
            body,
        }
    } else {
        let total: i64 = r.route.iter().map(|d| d.weight.unwrap_or(0)).sum();
        let dests = r
            .route
            .iter()
            .map(|d| {
                let port = d
                    .destination
                    .port
                    .and_then(|p| u16::try_from(p.number).ok());
                let up = upstream::resolve(&d.destination.host, port, entries);
                let key = (up.host.clone(), up.port);
                let up = upstreams.entry(key).or_insert_with(|| Arc::new(up)).clone();
                // Istio: with no weights, or a single destination, traffic is shared evenly.
                let weight = if total == 0 {
                    1
                } else {
                    u32::try_from(d.weight.unwrap_or(0)).unwrap_or(0)
                };
                WeightedUpstream {
                    upstream: up,
                    weight,
                }
            })
            .collect();
        Action::Forward(dests)
    };
    Ok(Route {
        name: r.name.clone(),
        matches,
        action,
        timeout: r.timeout.as_deref().and_then(duration::parse),
        rewrite_uri: r.rewrite.as_ref().and_then(|w| w.uri.clone()),
        rewrite_authority: r.rewrite.as_ref().and_then(|w| w.authority.clone()),
        request_headers: r.headers.as_ref().and_then(|h| h.request.clone()),
        response_headers: r.headers.as_ref().and_then(|h| h.response.clone()),
    })
}

/// Builds the snapshot. Problems are logged and fail closed for the server
/// they concern; every other server keeps working.
pub fn compile(model: &Model<'_>, sds: &Sds, compiler: &mut Compiler, version: u64) -> Snapshot {
    let entries = upstream::index(&model.service_entries);
    let mut upstreams = HashMap::new();
    // VirtualServices by the Gateway they bind to, each with a host index.
    let mut by_gateway: HashMap<(&str, &str), VsIndex> = HashMap::new();
    for (i, vs) in model.virtual_services.iter().enumerate() {
        for key in bound_gateways(vs) {
            let idx = by_gateway.entry(key).or_default();
            if idx.all.last() == Some(&i) {
                continue;
            }
            idx.all.push(i);
            for h in &vs.spec.hosts {
                let h = h.to_ascii_lowercase();
                if h.starts_with('*') {
                    idx.wildcard.push((h, i));
                } else {
                    idx.exact.entry(h).or_default().push(i);
                }
            }
        }
    }
    // Each VirtualService's routes are compiled once, however many servers use them.
    let mut routes_of: HashMap<usize, Vec<Route>> = HashMap::new();
    let mut live_ids = std::collections::HashSet::new();
    let mut ports: BTreeMap<u16, Vec<Arc<Server>>> = BTreeMap::new();
    let no_vs = VsIndex::default();
    let mut candidates = Vec::new();
    for gw in &model.gateways {
        let index = by_gateway
            .get(&(gw.metadata.ns(), gw.metadata.name.as_str()))
            .unwrap_or(&no_vs);
        for (i, s) in gw.spec.servers.iter().enumerate() {
            let Some(port) = &s.port else { continue };
            let Ok(number) = u16::try_from(port.number) else {
                continue;
            };
            let port_name = if port.name.is_empty() {
                i.to_string()
            } else {
                port.name.clone()
            };
            let id = format!("{}/{}/{}", gw.metadata.ns(), gw.metadata.name, port_name);
            live_ids.insert(id.clone());
            let hosts: Vec<String> = s
                .hosts
                .iter()
                .map(|h| host::gateway_host_name(h).to_ascii_lowercase())
                .collect();
            let proto = port.protocol.to_ascii_uppercase();
            let is_tls = matches!(proto.as_str(), "HTTPS" | "TLS");
            let tls_settings = s.tls.clone().unwrap_or_default();
            let mode = tls_settings.effective_mode();
            let credential = crate::secret::files::resource_name(&tls_settings);
            let tls_state =
                is_tls.then(|| tls_state(&id, &tls_settings, credential.as_deref(), sds, compiler));
            candidates.clear();
            for h in &hosts {
                index.candidates(h, &mut candidates);
            }
            candidates.sort_unstable();
            candidates.dedup();
            let mut vhosts = Vec::new();
            for &vi in &candidates {
                let vs = model.virtual_services[vi];
                let admitted: Vec<String> = vs
                    .spec
                    .hosts
                    .iter()
                    .filter(|vh| {
                        s.hosts.iter().any(|sh| {
                            namespace_admits(sh, gw.metadata.ns(), vs.metadata.ns())
                                && host::intersects(vh, host::gateway_host_name(sh))
                        })
                    })
                    .map(|h| h.to_ascii_lowercase())
                    .collect();
                if admitted.is_empty() {
                    continue;
                }
                let routes = routes_of.entry(vi).or_insert_with(|| {
                    let mut compiled = Vec::new();
                    for (j, r) in vs.spec.http.iter().enumerate() {
                        match compile_route(r, &entries, &mut upstreams) {
                            Ok(c) => compiled.push(c),
                            Err(e) => tracing::warn!(
                                virtualservice = %format!("{}/{}", vs.metadata.ns(), vs.metadata.name),
                                route = j,
                                error = %e,
                                "route skipped"
                            ),
                        }
                    }
                    compiled
                });
                vhosts.push(VirtualHost {
                    hosts: admitted,
                    routes: routes.clone(),
                });
            }
            ports.entry(number).or_default().push(Arc::new(Server {
                id,
                hosts,
                tls: tls_state,
                mutual: mode.is_mutual() && mode != TlsMode::OptionalMutual,
                https_redirect: !is_tls && tls_settings.https_redirect,
                vhosts: Arc::new(vhosts),
                credential: credential.filter(|_| is_tls),
                tls_settings,
            }));
        }
    }
    compiler.retain(&live_ids);
    let mut listeners = BTreeMap::new();
    for (port, servers) in ports {
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
            by_id.insert(s.id.clone(), i);
            for h in &s.hosts {
                sni.insert(h, i);
            }
        }
        listeners.insert(
            port,
            Arc::new(Listener {
                port,
                tls,
                servers,
                sni: Arc::new(sni),
                by_id: Arc::new(by_id),
            }),
        );
    }
    Snapshot { version, listeners }
}

/// A server's TLS state from its credential (and client CA for mutual
/// modes); fails closed with the reason.
fn tls_state(
    id: &str,
    tls_settings: &ServerTls,
    credential: Option<&str>,
    sds: &Sds,
    compiler: &mut Compiler,
) -> TlsState {
    let state = (|| {
        let cred_name = credential.ok_or_else(|| "no certificate source".to_owned())?;
        let cred = sds
            .server_credential(cred_name)
            .ok_or_else(|| format!("credential {cred_name} is not ready"))?;
        let trust = if tls_settings.effective_mode().is_mutual() {
            Some(
                sds.trust(cred_name)
                    .ok_or_else(|| format!("client CA for {cred_name} is not ready"))?,
            )
        } else {
            None
        };
        compiler.config_for(id, tls_settings, cred, trust)
    })();
    match state {
        Ok(c) => TlsState::Ready(c),
        Err(why) => {
            tracing::warn!(server = %id, reason = %why, "server refuses handshakes");
            TlsState::Unavailable(why)
        }
    }
}

/// A snapshot that differs from `prev` only in the named credentials: the
/// servers that use them get a new TLS state; routes, SNI tables and every
/// other server are shared with `prev`. This is the path of a rotation,
/// so it costs one config build, not a compile of every object.
pub fn with_credentials(
    prev: &Snapshot,
    changed: &[String],
    sds: &Sds,
    compiler: &mut Compiler,
    version: u64,
) -> Snapshot {
    let changed: std::collections::HashSet<&str> = changed.iter().map(String::as_str).collect();
    let uses_changed = |s: &Server| s.credential.as_deref().is_some_and(|c| changed.contains(c));
    let mut listeners = BTreeMap::new();
    for (port, l) in &prev.listeners {
        if !l.servers.iter().any(|s| uses_changed(s)) {
            listeners.insert(*port, l.clone());
            continue;
        }
        let servers = l
            .servers
            .iter()
            .map(|s| {
                if !uses_changed(s) {
                    return s.clone();
                }
                let tls = tls_state(
                    &s.id,
                    &s.tls_settings,
                    s.credential.as_deref(),
                    sds,
                    compiler,
                );
                Arc::new(Server {
                    id: s.id.clone(),
                    hosts: s.hosts.clone(),
                    tls: Some(tls),
                    mutual: s.mutual,
                    https_redirect: s.https_redirect,
                    vhosts: s.vhosts.clone(),
                    credential: s.credential.clone(),
                    tls_settings: s.tls_settings.clone(),
                })
            })
            .collect();
        listeners.insert(
            *port,
            Arc::new(Listener {
                port: l.port,
                tls: l.tls,
                servers,
                sni: l.sni.clone(),
                by_id: l.by_id.clone(),
            }),
        );
    }
    Snapshot { version, listeners }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(hosts: &[&str]) -> Listener {
        let servers: Vec<Arc<Server>> = hosts
            .iter()
            .map(|h| {
                Arc::new(Server {
                    id: (*h).to_owned(),
                    hosts: vec![(*h).to_owned()],
                    tls: None,
                    mutual: false,
                    https_redirect: false,
                    vhosts: Arc::new(Vec::new()),
                    credential: None,
                    tls_settings: ServerTls::default(),
                })
            })
            .collect();
        let mut sni = SniTable::default();
        let mut by_id = HashMap::new();
        for (i, s) in servers.iter().enumerate() {
            sni.insert(&s.hosts[0], i);
            by_id.insert(s.id.clone(), i);
        }
        Listener {
            port: 443,
            tls: true,
            servers,
            sni: Arc::new(sni),
            by_id: Arc::new(by_id),
        }
    }

    #[test]
    fn host_owners() {
        use HostOwner::{Nobody, Other, This};
        let l = listener(&["frontend.foocorp.com", "*.foocorp.com", "*"]);
        let [front, wild, any] = [0, 1, 2].map(|i| l.servers[i].clone());
        let cases = [
            (&front, "frontend.foocorp.com", This),
            (&front, "shop.foocorp.com", Other),
            (&front, "example.com", Other),
            (&wild, "shop.foocorp.com", This),
            (&wild, "frontend.foocorp.com", Other),
            (&wild, "example.com", Other),
            (&any, "example.com", This),
            (&any, "frontend.foocorp.com", Other),
            (&any, "shop.foocorp.com", Other),
        ];
        for (server, host, want) in cases {
            assert_eq!(
                l.owner_of(server, host),
                want,
                "{} asked for {host}",
                server.id
            );
        }
        let l = listener(&["frontend.foocorp.com", "inventory.foocorp.com"]);
        let front = l.servers[0].clone();
        assert_eq!(l.owner_of(&front, "inventory.foocorp.com"), Other);
        assert_eq!(l.owner_of(&front, "nobody.foocorp.com"), Nobody);
    }
}
