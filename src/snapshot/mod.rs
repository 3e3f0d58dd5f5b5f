//! Compiles the checked objects and the current credentials into the one
//! immutable [`Snapshot`] the data plane reads, published with one swap.
//!
//! The compiler reads only the checked form (`config::checked`): nothing
//! here parses a string or substitutes a default for a bad value. Nothing
//! here does I/O, and nothing on the request path takes a lock: the data
//! plane loads an `Arc<Snapshot>` and keeps the `Arc`s it started with.

mod compile;
mod compiler;
pub mod l4;
pub mod routes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use rustls::ServerConfig;

use crate::config::checked::destination_rule::CheckedDestinationRule;
use crate::config::checked::{
    CheckedGateway, CheckedServiceEntry, CheckedVirtualService, ServerProtocol,
};
use crate::config::gateway::{Gateway, ServerTls};
use crate::config::host;
use crate::secret::sds::Wanted;
use crate::tls::sni::SniTable;
pub use compile::compile;
pub use compiler::{Compiler, with_credentials};
use routes::VirtualHost;

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
    pub id: Arc<str>,
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
    /// `Some` for PASSTHROUGH and TCP servers: their connection routes.
    pub l4: Option<l4::L4>,
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
    /// A TLS listener with a PASSTHROUGH server: the ClientHello is read
    /// and kept before any server is chosen (`proxy/hello.rs`).
    pub passthrough: bool,
    /// A TCP listener: every connection is copied to its route.
    pub tcp: bool,
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

/// The checked objects the control loop hands to [`compile`], borrowed
/// from its last-good state (nothing is copied per compile).
#[derive(Debug, Default)]
pub struct Model<'a> {
    pub gateways: Vec<&'a CheckedGateway>,
    /// In creation order.
    pub virtual_services: Vec<&'a CheckedVirtualService>,
    pub service_entries: Vec<&'a CheckedServiceEntry>,
    /// The process's `--labels`: what `match[].sourceLabels` are held to.
    pub labels: BTreeMap<String, String>,
    /// In creation order (the oldest rule for a host wins, as in Istio).
    pub destination_rules: Vec<&'a CheckedDestinationRule>,
    /// The selected Gateways as written, for what reads their TLS file
    /// paths (`secret::files`).
    pub gateway_sources: Vec<&'a Gateway>,
    /// Kubernetes Services and EndpointSlices, for discovery
    /// (`upstream::kube`).
    pub services: Vec<&'a crate::config::discovery::CheckedService>,
    pub endpoint_slices: Vec<&'a crate::config::discovery::CheckedEndpointSlice>,
}

/// Whether a Gateway's selector picks this process.
pub fn selects(g: &CheckedGateway, labels: &BTreeMap<String, String>) -> bool {
    g.selects(labels)
}

/// The credentials the selected Gateways reference, with the hosts each covers.
pub fn wanted_credentials(gateways: &[&CheckedGateway]) -> Wanted {
    let mut wanted: Wanted = BTreeMap::new();
    for s in gateways.iter().flat_map(|g| &g.servers) {
        if s.protocol != ServerProtocol::Tls {
            continue;
        }
        if let Some(name) = crate::secret::files::resource_name(&s.tls) {
            let hosts: BTreeSet<String> = s.hosts.iter().map(|h| h.host.clone()).collect();
            wanted.entry(name).or_default().extend(hosts);
        }
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(hosts: &[&str]) -> Listener {
        let servers: Vec<Arc<Server>> = hosts
            .iter()
            .map(|h| {
                Arc::new(Server {
                    id: (*h).into(),
                    hosts: vec![(*h).to_owned()],
                    tls: None,
                    mutual: false,
                    https_redirect: false,
                    vhosts: Arc::new(Vec::new()),
                    credential: None,
                    tls_settings: ServerTls::default(),
                    l4: None,
                })
            })
            .collect();
        let mut sni = SniTable::default();
        let mut by_id = HashMap::new();
        for (i, s) in servers.iter().enumerate() {
            sni.insert(&s.hosts[0], i);
            by_id.insert(s.id.to_string(), i);
        }
        Listener {
            port: 443,
            tls: true,
            passthrough: false,
            tcp: false,
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
