//! Trust changes and deletions reach clients that already hold sessions.
//!
//! When the CA that signed a client's certificate is replaced, that
//! client's new full handshakes and its resumption attempts both fail within
//! a second (sessions from the old trust state are not accepted), for TLS
//! 1.3 tickets and TLS 1.2 sessions, whether the CA lives in
//! `frontend-credential-cacert` or in the secret's own `cacert`.
//!
//! Deleting `frontend-credential` stops new frontend handshakes (and says
//! so in the log) while inventory keeps serving, and a keep-alive
//! connection opened before the delete still completes its requests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::load;
use crate::support::load::{Conn, Kind, Target, probe, probe_until};
use crate::support::{FRONTEND, FRONTEND_BODY, Gateway, INVENTORY, INVENTORY_BODY, Walkthrough};
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Resumption, Tls12ClientSessionValue,
    Tls13ClientSessionValue,
};
use rustls::{ClientConfig, NamedGroup, RootCertStore};
use rustls_pki_types::ServerName;

const WITHIN: Duration = Duration::from_secs(1);
/// A host whose tree is only used as "another CA".
const OTHER: &str = "other.foocorp.com";

fn read(w: &Walkthrough, p: impl AsRef<std::path::Path>) -> Vec<u8> {
    std::fs::read(w.site.path(p)).unwrap()
}

/// A client session cache that counts the sessions (TLS 1.3 tickets, TLS
/// 1.2 sessions) it hands to a new connection to resume: proof that a
/// client offered to resume.
#[derive(Debug)]
struct CountingStore {
    inner: ClientSessionMemoryCache,
    offered: AtomicUsize,
}

impl CountingStore {
    fn offered(&self) -> usize {
        self.offered.load(Ordering::SeqCst)
    }

    fn count<T>(&self, v: Option<T>) -> Option<T> {
        if v.is_some() {
            self.offered.fetch_add(1, Ordering::SeqCst);
        }
        v
    }
}

impl ClientSessionStore for CountingStore {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.inner.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.inner.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.inner.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.count(self.inner.tls12_session(server_name))
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.inner.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        self.inner.insert_tls13_ticket(server_name, value);
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        self.count(self.inner.take_tls13_ticket(server_name))
    }
}

/// `target` with a fresh [`CountingStore`] as its session cache.
fn with_counted_resumption(target: &Target) -> (Target, Arc<CountingStore>) {
    let store = Arc::new(CountingStore {
        inner: ClientSessionMemoryCache::new(64),
        offered: AtomicUsize::new(0),
    });
    let resumption = Resumption::store(store.clone());
    (target.with_config(|c| c.resumption = resumption), store)
}

/// A client config like `gatehouse::tls::client::mtls_config`, offering
/// TLS 1.2 only (resumption by session ID or TLS 1.2 ticket).
fn tls12_config(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Arc<ClientConfig> {
    use gatehouse::crypto::provider;
    use gatehouse::secret::credential::{parse_certs, parse_key};
    let mut roots = RootCertStore::empty();
    for c in parse_certs("ca", ca_pem).unwrap() {
        roots.add(c).unwrap();
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            parse_certs("cert", cert_pem).unwrap(),
            parse_key("key", key_pem).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client of `host` with the walkthrough's client certificate.
fn target(w: &Walkthrough, port: u16, host: &str, tls12: bool) -> Target {
    let pki = w.site.pki(host);
    let (ca, cert, key) = (
        read(w, &pki.ca_chain),
        read(w, &pki.client_cert),
        read(w, &pki.client_key),
    );
    let addr = ([127, 0, 0, 1], port).into();
    let mut t = Target::new(addr, host, &ca, &cert, &key);
    if tls12 {
        t.config = tls12_config(&ca, &cert, &key);
    }
    t
}

/// Where the replacement CA is written.
#[derive(Debug, Clone, Copy)]
enum Via {
    /// A new `frontend-credential-cacert` secret (which wins over `cacert`).
    CacertSecret,
    /// `frontend-credential` itself, same key and cert, another `cacert`.
    SecretCacert,
    /// `frontend-credential` with the same key and cert and no CA at all.
    Removed,
}

fn replace_frontend_ca(w: &Walkthrough, via: Via) {
    let other = w.site.pki(OTHER).ca_chain;
    let other_ca = format!("--from-file=cacert={}", other.display());
    match via {
        Via::CacertSecret => {
            w.site
                .cli(&[
                    "create",
                    "-n",
                    "istio-system",
                    "secret",
                    "generic",
                    "frontend-credential-cacert",
                    &other_ca,
                ])
                .ok();
        }
        Via::SecretCacert | Via::Removed => {
            let pki = w.site.pki(FRONTEND);
            let key = format!("--from-file=key={}", pki.server_key.display());
            let cert = format!("--from-file=cert={}", pki.server_cert.display());
            let mut args = vec![
                "create",
                "-n",
                "istio-system",
                "secret",
                "generic",
                "frontend-credential",
                &key,
                &cert,
                "--dry-run=client",
                "-o",
                "yaml",
            ];
            if let Via::SecretCacert = via {
                args.push(&other_ca);
            }
            let out = w.site.cli(&args).ok();
            w.site.write("other-ca-secret.yaml", &out.stdout);
            w.site.cli(&["apply", "-f", "other-ca-secret.yaml"]).ok();
        }
    }
}

/// A working, resumable session on `resuming`.
fn a_resumable_session(resuming: &Target) {
    let first = probe(resuming);
    assert!(first.ok(), "first connection: {first:?}");
    assert_eq!(first.kind, Some(Kind::Full), "{first:?}");
    let again = probe(resuming);
    assert!(again.ok(), "second connection: {again:?}");
    assert_eq!(
        again.kind,
        Some(Kind::Resumed),
        "the session did not resume: {again:?}"
    );
    // Another resumption, so a TLS 1.3 client holds spare tickets.
    assert!(probe(resuming).ok());
}

/// After the replacement, the new CA is the one in force: its client
/// certificate is accepted, and the push was logged. Returns that client.
fn the_new_ca_is_in_force(w: &Walkthrough, gw: &Gateway, port: u16) -> Target {
    // The new CA is the one in force: its client certificate is accepted.
    let other = w.site.pki(OTHER);
    let newcomer = Target::new(
        ([127, 0, 0, 1], port).into(),
        FRONTEND,
        &read(w, w.site.pki(FRONTEND).ca_chain),
        &read(w, &other.client_cert),
        &read(w, &other.client_key),
    );
    let p = probe(&newcomer);
    assert!(p.ok(), "a client of the new CA: {p:?}");
    assert!(
        gw.log()
            .matches("RESOURCE NAME:frontend-credential-cacert, EVENT: pushed root cert to proxy")
            .count()
            >= 2,
        "{}",
        gw.log()
    );
    newcomer
}

fn client_loses_new_and_resumed_handshakes_when_its_ca_is_replaced(tls12: bool, via: Via) {
    let w = Walkthrough::new();
    w.site.pki_init(OTHER);
    let gw = w.start();
    let port = gw.port(443);
    let full = target(&w, port, FRONTEND, tls12).without_resumption();
    let (resuming, store) = with_counted_resumption(&target(&w, port, FRONTEND, tls12));

    a_resumable_session(&resuming);

    replace_frontend_ca(&w, via);
    let applied = Instant::now();

    let (last, took, refused) = probe_until(&full, WITHIN, |p| !p.ok());
    assert!(
        refused,
        "{via:?}: a new full handshake still succeeded {took:?} after the CA was replaced: {last:?}\n{}",
        gw.log()
    );
    let offered = store.offered();
    let resumed = probe(&resuming);
    let elapsed = applied.elapsed();
    assert!(
        store.offered() > offered,
        "{via:?}: the client had no session left to offer; the test proves nothing"
    );
    assert_ne!(
        resumed.kind,
        Some(Kind::Resumed),
        "{via:?}: the server resumed a session from the old trust state: {resumed:?}"
    );
    assert!(
        !resumed.ok(),
        "{via:?}: the resumption attempt succeeded: {resumed:?}"
    );
    assert!(
        elapsed <= WITHIN,
        "{via:?}: new and resumed handshakes took {elapsed:?} to fail"
    );
    eprintln!(
        "{} {via:?}: full handshakes refused {took:?} and the resumption attempt {elapsed:?} after the CA change",
        if tls12 { "TLS 1.2" } else { "TLS 1.3" }
    );

    if let Via::Removed = via {
        // No client CA at all: the MUTUAL server refuses everyone, says so,
        // and the other host is untouched.
        assert!(
            gw.log()
                .contains("RESOURCE NAME:frontend-credential-cacert, EVENT: root cert removed"),
            "{}",
            gw.log()
        );
        w.site
            .walkthrough_curl(INVENTORY, port)
            .run()
            .assert_body(INVENTORY_BODY);
        return;
    }
    let newcomer = the_new_ca_is_in_force(&w, &gw, port);
    // Inventory never noticed.
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);

    if let Via::CacertSecret = via {
        // Without `frontend-credential-cacert`, the CA inside
        // `frontend-credential` is back in force.
        w.site
            .cli(&[
                "delete",
                "-n",
                "istio-system",
                "secret",
                "frontend-credential-cacert",
            ])
            .ok();
        let (last, took, ok) = probe_until(&full, WITHIN, load::Probe::ok);
        assert!(
            ok,
            "the secret's own CA did not come back within {took:?}: {last:?}"
        );
        assert!(
            !probe(&newcomer).ok(),
            "the removed CA still admits its clients"
        );
    }
}

#[test]
fn tls13_client_loses_new_and_resumed_handshakes_when_cacert_secret_replaces_its_ca() {
    client_loses_new_and_resumed_handshakes_when_its_ca_is_replaced(false, Via::CacertSecret);
}

#[test]
fn tls12_client_loses_new_and_resumed_handshakes_when_the_secret_cacert_changes() {
    client_loses_new_and_resumed_handshakes_when_its_ca_is_replaced(true, Via::SecretCacert);
}

#[test]
fn tls13_client_loses_new_and_resumed_handshakes_when_the_secret_cacert_changes() {
    client_loses_new_and_resumed_handshakes_when_its_ca_is_replaced(false, Via::SecretCacert);
}

#[test]
fn tls13_client_loses_new_and_resumed_handshakes_when_its_ca_is_removed_from_the_secret() {
    client_loses_new_and_resumed_handshakes_when_its_ca_is_replaced(false, Via::Removed);
}

#[test]
fn deleting_the_secret_stops_new_frontend_handshakes_but_open_connections_finish() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let frontend = target(&w, port, FRONTEND, false);
    let fresh = frontend.without_resumption();
    let mut open = Conn::open(&fresh).unwrap();
    assert_eq!(open.get(), Ok(200));
    assert!(probe(&frontend).ok());

    w.site
        .cli(&[
            "delete",
            "-n",
            "istio-system",
            "secret",
            "frontend-credential",
        ])
        .ok();
    let deleted = Instant::now();
    let (last, took, refused) = probe_until(&fresh, WITHIN, |p| !p.ok());
    assert!(
        refused,
        "frontend still served {took:?} after the delete: {last:?}"
    );
    let resumed = probe(&frontend);
    assert!(!resumed.ok(), "a resumed session still served: {resumed:?}");
    assert!(deleted.elapsed() <= WITHIN, "took {:?}", deleted.elapsed());
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_refused();
    assert!(
        gw.log().contains(
            "RESOURCE NAME:frontend-credential, EVENT: secret deleted; new handshakes for its servers are refused"
        ),
        "{}",
        gw.log()
    );

    // Inventory keeps serving, new connections included.
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);
    assert!(probe(&target(&w, port, INVENTORY, false)).ok());

    // The connection opened before the delete completes its requests.
    let hits = w.frontend.hits();
    assert_eq!(open.get(), Ok(200), "the open keep-alive connection");
    assert_eq!(open.get(), Ok(200), "the open keep-alive connection, again");
    assert_eq!(w.frontend.hits(), hits + 2);

    let secret = w
        .site
        .cli(&["proxy-config", "secret", "--admin", &gw.admin().to_string()])
        .ok()
        .stdout;
    assert!(
        secret
            .lines()
            .any(|l| l.starts_with("frontend-credential ") && l.contains("WARMING")),
        "{secret}"
    );

    // Creating it again serves again, without a restart.
    w.site.create_walkthrough_secret(FRONTEND);
    let (last, took, ok) = probe_until(&fresh, WITHIN, load::Probe::ok);
    assert!(
        ok,
        "frontend did not come back {took:?} after the secret was created again: {last:?}"
    );
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
}
