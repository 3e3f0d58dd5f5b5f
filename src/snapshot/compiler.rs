//! What the compiler keeps between compiles so that one changed credential
//! among ten thousand rebuilds one `ServerConfig`, and the rotation path
//! ([`with_credentials`]) that rebuilds only the servers a changed secret
//! feeds. Nothing here does I/O.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rustls::ServerConfig;

use super::{Listener, Server, Snapshot, TlsState};
use crate::config::gateway::{ServerTls, TlsMode};
use crate::secret::sds::Sds;
use crate::tls::{self, SessionState};

/// What a server's `ServerConfig` was built from: if none of it changed,
/// the next compile reuses the config (and its session state).
struct CachedConfig {
    tls: ServerTls,
    hosts: Vec<String>,
    certified: Arc<rustls::sign::CertifiedKey>,
    trust_fingerprint: String,
    policy_fingerprint: String,
    config: Arc<ServerConfig>,
}

/// Who may share a client verifier: the same trust, mode and allow-lists.
type VerifierKey = (String, bool, crate::tls::ExtraChecks);

/// State kept across compiles, so one changed credential among ten
/// thousand rebuilds one config:
/// - session caches and ticket keys per client policy (`tls::session`: the
///   fingerprint of the mode, the CA bundle and CRLs and the allow-lists).
///   A change of policy gets fresh ones, so sessions from the old policy
///   never resume; each server binds its sessions to its own identity, so
///   sharing them never lets one server's session resume on another;
/// - client verifiers per (trust, mode, allow-lists);
/// - built configs per server, reused while their inputs are unchanged;
/// - each cluster's load-balancing, outlier and circuit-breaker state
///   (`upstream::Registry`).
#[derive(Default)]
pub struct Compiler {
    pub(super) upstreams: crate::upstream::Registry,
    sessions: HashMap<String, SessionState>,
    verifiers: HashMap<VerifierKey, Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    configs: HashMap<String, CachedConfig>,
    /// TLS origination towards backends, per cluster.
    pub(super) origins: crate::proxy::transport::Origins,
}

impl std::fmt::Debug for Compiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiler")
            .field("servers", &self.configs.len())
            .field("policies", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// The inputs of one server's `ServerConfig`.
struct ConfigInputs<'a> {
    id: &'a str,
    hosts: &'a [String],
    tls: &'a ServerTls,
    cred: &'a crate::secret::credential::ServerCredential,
    trust: Option<&'a crate::secret::credential::TrustBundle>,
}

impl Compiler {
    /// A compiler whose upstream TLS clients connect with `base`.
    pub fn new(base: crate::proxy::transport::Base) -> Compiler {
        Compiler {
            origins: crate::proxy::transport::Origins::new(base),
            ..Compiler::default()
        }
    }

    fn session_for(
        &mut self,
        policy: &str,
        verifier: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    ) -> Result<SessionState, String> {
        if let Some(s) = self.sessions.get(policy) {
            return Ok(s.clone());
        }
        let s = SessionState::new(policy.to_owned(), verifier).map_err(|e| e.to_string())?;
        self.sessions.insert(policy.to_owned(), s.clone());
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
    fn config_for(&mut self, i: &ConfigInputs<'_>) -> Result<Arc<ServerConfig>, String> {
        let trust_fp = i.trust.map(|t| t.fingerprint.clone()).unwrap_or_default();
        let policy = tls::policy_fingerprint(i.tls, i.trust);
        if let Some(c) = self.configs.get(i.id)
            && c.tls == *i.tls
            && c.hosts == i.hosts
            && Arc::ptr_eq(&c.certified, &i.cred.certified)
            && c.policy_fingerprint == policy
        {
            return Ok(c.config.clone());
        }
        let verifier = match i.trust {
            Some(t) if i.tls.effective_mode().is_mutual() => Some(self.verifier_for(i.tls, t)?),
            _ => None,
        };
        let session = self.session_for(&policy, verifier)?;
        let server = tls::ServerIdentity {
            id: i.id,
            hosts: i.hosts,
        };
        let config =
            tls::server_config(server, i.tls, i.cred, &session).map_err(|e| e.to_string())?;
        self.configs.insert(
            i.id.to_owned(),
            CachedConfig {
                tls: i.tls.clone(),
                hosts: i.hosts.to_vec(),
                certified: i.cred.certified.clone(),
                trust_fingerprint: trust_fp,
                policy_fingerprint: policy,
                config: config.clone(),
            },
        );
        Ok(config)
    }

    /// Forgets servers that are gone, and policies and verifiers nobody uses.
    pub(super) fn retain(&mut self, live: &std::collections::HashSet<String>) {
        self.configs.retain(|k, _| live.contains(k));
        let policies: std::collections::HashSet<&str> = self
            .configs
            .values()
            .map(|c| c.policy_fingerprint.as_str())
            .collect();
        let trusts: std::collections::HashSet<&str> = self
            .configs
            .values()
            .map(|c| c.trust_fingerprint.as_str())
            .collect();
        self.sessions.retain(|k, _| policies.contains(k.as_str()));
        self.verifiers.retain(|k, _| trusts.contains(k.0.as_str()));
    }
}

/// A server's TLS state from its credential (and client CA for mutual
/// modes); fails closed with the reason.
pub(super) fn tls_state(
    (id, hosts): (&str, &[String]),
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
        compiler.config_for(&ConfigInputs {
            id,
            hosts,
            tls: tls_settings,
            cred,
            trust,
        })
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
    compiler.origins.refresh_credentials(changed, sds);
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
                    (&s.id, s.hosts.as_slice()),
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
                    l4: s.l4.clone(),
                })
            })
            .collect();
        listeners.insert(
            *port,
            Arc::new(Listener {
                port: l.port,
                tls: l.tls,
                passthrough: l.passthrough,
                tcp: l.tcp,
                servers,
                sni: l.sni.clone(),
                by_id: l.by_id.clone(),
            }),
        );
    }
    Snapshot { version, listeners }
}
