//! Session resumption bound to one server and its whole client policy.
//!
//! Session caches and ticket keys belong to a *policy*: the TLS mode, the
//! client CA bundle and CRLs, and the `subjectAltNames`, SPKI and hash
//! allow-lists ([`policy_fingerprint`]). Servers with the same policy share
//! one cache and one ticketer (ten thousand SIMPLE hosts cost one), but
//! every server reaches them through its own [`Bound`] view, which seals
//! the server's identity (its id and hosts) into every ticket and prefixes
//! every session id with it: a session made by one server never resumes on
//! another, even with the same policy, on another port or Gateway.
//!
//! On a resumption attempt the client certificate the session carries is
//! verified again by the server's current verifier, now (its dates, the
//! current CRLs, the allow-lists): a session whose certificate no longer
//! passes is not resumed, so the client gets a full handshake and the
//! verdict (and alert) of a full handshake. Nothing here runs on a full
//! handshake but one prefix copy when a ticket is issued.
//!
//! It never resumes a session it cannot read: a ticket or cached session
//! whose contents do not parse is a full handshake, not a resumption.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ProducesTickets, StoresServerSessions};

use super::{ExtraChecks, TlsError};
use crate::config::gateway::{ServerTls, TlsMode};
use crate::secret::credential::TrustBundle;

/// The session cache and ticket keys of one client policy, and the
/// verifier that policy uses (`None` without client authentication).
#[derive(Clone)]
pub struct SessionState {
    pub policy_fingerprint: String,
    pub cache: Arc<dyn StoresServerSessions>,
    pub ticketer: Arc<dyn ProducesTickets>,
    pub verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl std::fmt::Debug for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionState")
            .field("policy_fingerprint", &self.policy_fingerprint)
            .finish_non_exhaustive()
    }
}

impl SessionState {
    pub fn new(
        policy_fingerprint: String,
        verifier: Option<Arc<dyn ClientCertVerifier>>,
    ) -> Result<SessionState, TlsError> {
        Ok(SessionState {
            policy_fingerprint,
            // TLS 1.3 and ticket-capable TLS 1.2 clients resume with
            // stateless tickets; this cache only serves TLS 1.2 session
            // IDs, so it stays small (it is allocated per policy).
            cache: rustls::server::ServerSessionMemoryCache::new(64),
            ticketer: rustls::crypto::aws_lc_rs::Ticketer::new()
                .map_err(|e| TlsError::Config(format!("session tickets: {e}")))?,
            verifier,
        })
    }

    /// This policy's sessions as one server sees them.
    pub fn bound(&self, server_id: &str, hosts: &[String]) -> Arc<Bound> {
        Arc::new(Bound {
            server: server_id.into(),
            tag: identity_tag(server_id, hosts),
            state: self.clone(),
        })
    }
}

/// The fingerprint of a server's complete client policy: TLS mode, client
/// CAs and CRLs, and the allow-lists. Servers with equal fingerprints may
/// share session keys (each still binds its sessions to itself).
pub fn policy_fingerprint(tls: &ServerTls, trust: Option<&TrustBundle>) -> String {
    let mut text = String::new();
    let mode = match tls.effective_mode() {
        TlsMode::Mutual => "MUTUAL",
        TlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
        _ => "SIMPLE",
    };
    // Each field on its own line, each list item length-prefixed, so no
    // two policies can print the same text.
    text.push_str(mode);
    if tls.effective_mode().is_mutual() {
        match trust {
            Some(t) => {
                text.push_str(&format!("\ntrust {} {}", t.roots.len(), t.fingerprint));
            }
            None => text.push_str("\ntrust none"),
        }
        let checks = ExtraChecks::from_tls(tls);
        for (name, list) in [
            ("san", &checks.subject_alt_names),
            ("spki", &checks.spki_sha256),
            ("hash", &checks.cert_sha256),
        ] {
            text.push_str(&format!("\n{name} {}", list.len()));
            for item in list {
                text.push_str(&format!(" {}:{item}", item.len()));
            }
        }
    }
    crate::crypto::sha256_hex(text.as_bytes())
}

/// Length of the identity tag sealed into tickets and session ids.
const TAG_LEN: usize = 16;

/// A server's identity as a fixed-size tag: its id and its hosts.
fn identity_tag(server_id: &str, hosts: &[String]) -> [u8; TAG_LEN] {
    let mut text = format!("{}:{server_id}", server_id.len());
    for h in hosts {
        text.push_str(&format!("\n{}:{h}", h.len()));
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&digest.as_ref()[..TAG_LEN]);
    tag
}

/// One server's view of its policy's session cache and ticketer.
pub struct Bound {
    server: Arc<str>,
    tag: [u8; TAG_LEN],
    state: SessionState,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("server", &self.server)
            .field("policy", &self.state.policy_fingerprint)
            .finish_non_exhaustive()
    }
}

impl Bound {
    fn key(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(TAG_LEN + key.len());
        k.extend_from_slice(&self.tag);
        k.extend_from_slice(key);
        k
    }

    /// Whether a stored session may resume under the current policy: its
    /// client certificate (if any) passes the current verifier now, and a
    /// session without one only resumes where a certificate is optional.
    fn admit(&self, session: &[u8]) -> bool {
        let Some(verifier) = &self.state.verifier else {
            return true;
        };
        let verdict = match session_client_chain(session) {
            Err(why) => Err(format!("the session does not parse: {why}")),
            Ok(None) if verifier.client_auth_mandatory() => {
                Err("the session has no client certificate and one is required".to_owned())
            }
            Ok(None) => Ok(()),
            Ok(Some(chain)) => match chain.split_first() {
                None => Err("the session holds an empty certificate chain".to_owned()),
                Some((leaf, rest)) => verifier
                    .verify_client_cert(leaf, rest, UnixTime::now())
                    .map(|_| ())
                    .map_err(|e| format!("its client certificate: {e}")),
            },
        };
        match verdict {
            Ok(()) => true,
            Err(reason) => {
                tracing::info!(server = %self.server, %reason, "resumption refused; a full handshake follows");
                false
            }
        }
    }
}

impl ProducesTickets for Bound {
    fn enabled(&self) -> bool {
        self.state.ticketer.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.state.ticketer.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.state.ticketer.encrypt(&self.key(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let mut plain = self.state.ticketer.decrypt(cipher)?;
        if plain.get(..TAG_LEN) != Some(&self.tag[..]) {
            return None;
        }
        plain.drain(..TAG_LEN);
        self.admit(&plain).then_some(plain)
    }
}

impl StoresServerSessions for Bound {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.state.cache.put(self.key(&key), value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        let value = self.state.cache.get(&self.key(key))?;
        self.admit(&value).then_some(value)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        let value = self.state.cache.take(&self.key(key))?;
        self.admit(&value).then_some(value)
    }

    fn can_cache(&self) -> bool {
        self.state.cache.can_cache()
    }
}

/// A reader over rustls's encoding of a stored server session.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u24(&mut self) -> Result<usize, String> {
        let b = self.take(3)?;
        Ok((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("unexpected flag {other}")),
        }
    }
}

/// The client certificate chain inside a stored server session (rustls
/// 0.23's `ServerSessionValue` encoding: optional SNI, version, suite,
/// master secret, extended-master-secret flag, then the optional chain).
/// Anything unexpected is an error, so an unreadable session fails closed;
/// the unit tests read sessions that a real rustls handshake stored.
fn session_client_chain(session: &[u8]) -> Result<Option<Vec<CertificateDer<'_>>>, String> {
    let mut r = Reader(session);
    if r.flag()? {
        let n = usize::from(r.u8()?);
        r.take(n)?;
    }
    r.take(2)?; // protocol version
    r.take(2)?; // cipher suite
    let n = usize::from(r.u8()?);
    r.take(n)?; // master secret
    r.flag()?; // extended master secret
    if !r.flag()? {
        return Ok(None);
    }
    let total = r.u24()?;
    let mut list = Reader(r.take(total)?);
    let mut chain = Vec::new();
    while !list.0.is_empty() {
        let n = list.u24()?;
        chain.push(CertificateDer::from(list.take(n)?));
    }
    Ok(Some(chain))
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
