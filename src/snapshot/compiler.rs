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
    pub(super) fn retain(&mut self, live: &std::collections::HashSet<String>) {
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

/// A server's TLS state from its credential (and client CA for mutual
/// modes); fails closed with the reason.
pub(super) fn tls_state(
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
