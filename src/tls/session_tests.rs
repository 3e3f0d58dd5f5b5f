//! Reads sessions that real rustls handshakes stored (so a rustls upgrade
//! that changes the encoding fails here, not silently in production), and
//! checks that a [`Bound`] view never hands one server's session to another.

use std::sync::{Arc, Mutex};

use rustls::server::{ProducesTickets, StoresServerSessions, WebPkiClientVerifier};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

use super::*;
use crate::crypto::provider;
use crate::pki::{Ca, Issued, KeyType, LeafSpec};

/// Records every plaintext it is handed (tickets and stored sessions).
#[derive(Debug, Default)]
struct Recorder {
    seen: Mutex<Vec<Vec<u8>>>,
}

impl Recorder {
    fn last(&self) -> Vec<u8> {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("nothing stored")
    }
}

impl ProducesTickets for Recorder {
    fn enabled(&self) -> bool {
        true
    }
    fn lifetime(&self) -> u32 {
        60
    }
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.seen.lock().unwrap().push(plain.to_vec());
        Some(vec![0; 16])
    }
    fn decrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

impl StoresServerSessions for Recorder {
    fn put(&self, _: Vec<u8>, value: Vec<u8>) -> bool {
        self.seen.lock().unwrap().push(value);
        true
    }
    fn get(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn take(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn can_cache(&self) -> bool {
        true
    }
}

struct Pki {
    ca: Ca,
    server: Issued,
    client: Issued,
}

fn pki() -> Pki {
    let ca = Ca::new_root("session test root", KeyType::default()).unwrap();
    let server = ca.issue(&LeafSpec::server("srv.test")).unwrap();
    let client = ca.issue(&LeafSpec::client("client.test")).unwrap();
    Pki { ca, server, client }
}

/// A full handshake in memory; returns what the server stored.
fn stored_session(p: &Pki, tls12: bool, with_client_cert: bool) -> Vec<u8> {
    let mut roots = RootCertStore::empty();
    roots.add(p.ca.cert_der().clone()).unwrap();
    let roots = Arc::new(roots);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let recorder = Arc::new(Recorder::default());
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(p.server.chain_der().unwrap(), p.server.key_der().unwrap())
        .unwrap();
    if tls12 {
        // Session ids: the cache stores the session.
        server.session_storage = recorder.clone();
    } else {
        server.ticketer = recorder.clone();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if tls12 {
        &[&rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut client = if with_client_cert {
        builder
            .with_client_auth_cert(p.client.chain_der().unwrap(), p.client.key_der().unwrap())
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    if tls12 {
        client.resumption = rustls::client::Resumption::in_memory_sessions(8)
            .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
    }
    let mut c = ClientConnection::new(Arc::new(client), "srv.test".try_into().unwrap()).unwrap();
    let mut s = ServerConnection::new(Arc::new(server)).unwrap();
    for _ in 0..10 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets().unwrap();
        }
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets().unwrap();
        }
    }
    assert!(!c.is_handshaking() && !s.is_handshaking());
    recorder.last()
}

#[test]
fn reads_the_client_chain_rustls_stores() {
    let p = pki();
    let want = p.client.cert_der().unwrap();
    for tls12 in [false, true] {
        let session = stored_session(&p, tls12, true);
        let chain = session_client_chain(&session).unwrap().unwrap();
        assert_eq!(chain.first(), Some(&want), "tls12={tls12}");
        let session = stored_session(&p, tls12, false);
        assert_eq!(
            session_client_chain(&session).unwrap(),
            None,
            "tls12={tls12}"
        );
    }
}

#[test]
fn unreadable_sessions_are_errors_not_panics() {
    let p = pki();
    let session = stored_session(&p, false, true);
    for cut in 0..session.len() {
        // Every truncation either fails or (past the chain) reads the chain.
        if let Ok(Some(chain)) = session_client_chain(&session[..cut]) {
            assert!(!chain.is_empty());
        }
    }
    assert!(session_client_chain(&[7, 0, 0]).is_err());
    assert!(session_client_chain(&[]).is_err());
}

#[test]
fn a_bound_view_keeps_each_servers_sessions_its_own() {
    let state = SessionState::new("p".into(), None).unwrap();
    let a = state.bound("ns/gw/https-a", &["a.test".to_owned()]);
    let b = state.bound("ns/gw/https-b", &["a.test".to_owned()]);
    let ticket = a.encrypt(b"session").unwrap();
    assert_eq!(a.decrypt(&ticket).as_deref(), Some(&b"session"[..]));
    assert_eq!(b.decrypt(&ticket), None);
    assert!(a.put(b"id".to_vec(), b"value".to_vec()));
    assert_eq!(b.get(b"id"), None);
    assert_eq!(a.get(b"id").as_deref(), Some(&b"value"[..]));
    // The same id with other hosts is another identity.
    let a2 = state.bound("ns/gw/https-a", &["b.test".to_owned()]);
    assert_eq!(a2.decrypt(&ticket), None);
}

#[test]
fn policies_differ_by_mode_trust_and_lists() {
    use crate::config::gateway::ServerTls;
    let with = |mode: TlsMode| ServerTls {
        mode: Some(mode),
        ..ServerTls::default()
    };
    let simple = with(TlsMode::Simple);
    let mutual = with(TlsMode::Mutual);
    let optional = with(TlsMode::OptionalMutual);
    let san = ServerTls {
        subject_alt_names: vec!["client.test".into()],
        ..with(TlsMode::Mutual)
    };
    let spki = ServerTls {
        verify_certificate_spki: vec!["abc".into()],
        ..with(TlsMode::Mutual)
    };
    let hash = ServerTls {
        verify_certificate_hash: vec!["ab:cd".into()],
        ..with(TlsMode::Mutual)
    };
    let all = [
        policy_fingerprint(&simple, None),
        policy_fingerprint(&mutual, None),
        policy_fingerprint(&optional, None),
        policy_fingerprint(&san, None),
        policy_fingerprint(&spki, None),
        policy_fingerprint(&hash, None),
    ];
    for (i, x) in all.iter().enumerate() {
        for y in &all[i + 1..] {
            assert_ne!(x, y);
        }
    }
    assert_eq!(policy_fingerprint(&mutual, None), all[1]);
}
