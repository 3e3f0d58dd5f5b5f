//! Resumption is bound to the whole client policy of one server.
//!
//! Clients that hold a session (a TLS 1.3 ticket, a TLS 1.2 ticket, a TLS
//! 1.2 session id) first resume it while nothing changes; then the policy
//! changes through the store as users change it (`gatehouse apply`,
//! `create secret`), or time passes the client certificate's notAfter, and
//! the same clients come back. A session the current policy would refuse
//! never resumes: the client gets a full handshake and its verdict, and
//! the backend sees nothing. One host on two ports never shares sessions.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::{Resumption, Tls12Resumption};
use rustls::{ClientConfig, RootCertStore};

use crate::raw::{Seen, exchange};
use crate::support::{FRONTEND, GATEWAY_YAML, Gateway, Site, Walkthrough, try_poll};

/// How a client resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Tls13Ticket,
    Tls12Ticket,
    Tls12SessionId,
}

const ALL: [Via; 3] = [Via::Tls13Ticket, Via::Tls12Ticket, Via::Tls12SessionId];

/// A client of frontend resuming `via`, presenting `cert` (a `(cert, key)`
/// pair of paths under the site) or no certificate.
fn client(site: &Site, via: Via, cert: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
    use gatehouse::crypto::provider;
    use gatehouse::secret::credential::{parse_certs, parse_key};
    let read = |p: &Path| std::fs::read(site.path(p)).unwrap();
    let mut roots = RootCertStore::empty();
    for c in parse_certs("ca", &read(&site.pki(FRONTEND).ca_chain)).unwrap() {
        roots.add(c).unwrap();
    }
    let versions: &[&rustls::SupportedProtocolVersion] = match via {
        Via::Tls13Ticket => &[&rustls::version::TLS13],
        _ => &[&rustls::version::TLS12],
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match cert {
        Some((c, k)) => builder
            .with_client_auth_cert(
                parse_certs("cert", &read(c)).unwrap(),
                parse_key("key", &read(k)).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls12 = match via {
        Via::Tls12SessionId => Tls12Resumption::SessionIdOnly,
        _ => Tls12Resumption::SessionIdOrTickets,
    };
    config.resumption = Resumption::in_memory_sessions(64).tls12_resumption(tls12);
    Arc::new(config)
}

/// One connection of `c` to `port`: handshake and `GET /`.
fn connect(c: &Arc<ClientConfig>, port: u16) -> Seen {
    exchange(c, port, FRONTEND)
}

/// The walkthrough's client certificate of frontend.
fn walkthrough_cert(site: &Site) -> (std::path::PathBuf, std::path::PathBuf) {
    let pki = site.pki(FRONTEND);
    (pki.client_cert, pki.client_key)
}

/// A full handshake answered 200, then a resumed one answered 200: the
/// session works while the policy is unchanged.
#[track_caller]
fn resumes_while_unchanged(c: &Arc<ClientConfig>, port: u16, via: Via) {
    let first = connect(c, port);
    assert!(first.ok(), "{via:?}: first request: {first:?}");
    assert_eq!(first.resumed, Some(false), "{via:?}");
    let again = connect(c, port);
    assert!(again.ok(), "{via:?}: resumed request: {again:?}");
    assert_eq!(
        again.resumed,
        Some(true),
        "{via:?}: an unchanged policy must resume: {again:?}"
    );
}

/// The session did not resume, the connection served nothing, and the
/// client saw the alert `alert` (a name of rustls's `AlertDescription`).
#[track_caller]
fn not_resumed_and_refused(seen: &Seen, via: Via, alert: &str) {
    assert_ne!(seen.resumed, Some(true), "{via:?}: resumed: {seen:?}");
    assert!(
        !seen.ok() && seen.response.is_empty(),
        "{via:?}: served: {seen:?}"
    );
    let why = seen.error.as_deref().unwrap_or_default();
    assert!(
        why.contains("received fatal alert") && why.contains(alert),
        "{via:?}: wanted the alert {alert}, got {seen:?}"
    );
}

/// Waits until a client like `c` that never resumes is refused (the new
/// policy is served), for at most 10 s.
#[track_caller]
fn wait_until_refused(c: &Arc<ClientConfig>, port: u16) {
    let mut fresh = ClientConfig::clone(c);
    fresh.resumption = Resumption::disabled();
    let fresh = Arc::new(fresh);
    let done = try_poll(Duration::from_secs(10), || {
        (!connect(&fresh, port).ok()).then_some(())
    });
    assert!(done.is_some(), "the new policy was not served within 10 s");
}

/// A client of each kind (see [`Via`]) presenting `cert`.
fn clients(site: &Site, cert: Option<(&Path, &Path)>) -> Vec<(Via, Arc<ClientConfig>)> {
    ALL.map(|v| (v, client(site, v, cert))).into()
}

/// Every client resumes while the policy is unchanged.
#[track_caller]
fn each_resumes(clients: &[(Via, Arc<ClientConfig>)], port: u16) {
    for (via, c) in clients {
        resumes_while_unchanged(c, port, *via);
    }
}

/// Once the new policy is served, no client resumes, each sees `alert`,
/// and the backend gets nothing.
#[track_caller]
fn each_refused(w: &Walkthrough, clients: &[(Via, Arc<ClientConfig>)], port: u16, alert: &str) {
    let hits = w.frontend.hits();
    for (via, c) in clients {
        not_resumed_and_refused(&connect(c, port), *via, alert);
    }
    assert_eq!(
        w.frontend.hits(),
        hits,
        "a refused client reached the backend"
    );
}

/// The walkthrough's Gateway with frontend's `mode: MUTUAL` line replaced
/// by `tls` (the lines of its `tls:` block after `mode`).
fn frontend_gateway(tls: &str) -> String {
    let frontend_block = "      mode: MUTUAL\n      credentialName: \"frontend-credential\"\n";
    assert!(GATEWAY_YAML.contains(frontend_block));
    GATEWAY_YAML.replacen(frontend_block, tls, 1)
}

#[test]
fn optional_mutual_to_mutual_does_not_resume_a_session_without_a_certificate() {
    let w = Walkthrough::new();
    w.site.apply(
        "foocorp/gateway.yaml",
        &frontend_gateway(
            "      mode: OPTIONAL_MUTUAL\n      credentialName: \"frontend-credential\"\n",
        ),
    );
    let gw = w.start();
    let port = gw.port(443);
    let clients = clients(&w.site, None);
    each_resumes(&clients, port);
    w.site.apply("foocorp/gateway.yaml", GATEWAY_YAML);
    wait_until_refused(&clients[0].1, port);
    each_refused(&w, &clients, port, "CertificateRequired");
}

#[test]
fn a_tightened_subject_alt_names_list_does_not_resume_an_excluded_client() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let (cert, key) = walkthrough_cert(&w.site);
    let clients = clients(&w.site, Some((&cert, &key)));
    each_resumes(&clients, port);
    w.site.apply(
        "foocorp/gateway.yaml",
        &frontend_gateway(
            "      mode: MUTUAL\n      credentialName: \"frontend-credential\"\n      subjectAltNames:\n      - someone-else.foocorp.com\n",
        ),
    );
    wait_until_refused(&clients[0].1, port);
    each_refused(&w, &clients, port, "AccessDenied");
}

#[test]
fn a_newly_revoked_client_certificate_does_not_resume() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let (cert, key) = walkthrough_cert(&w.site);
    let clients = clients(&w.site, Some((&cert, &key)));
    each_resumes(&clients, port);
    // Revoke the client's certificate and put the CRL in the secret, as a
    // user does: `pki revoke`, then `create secret --dry-run -o yaml | apply`.
    let cert_arg = cert.to_str().unwrap();
    w.site
        .cli(&["pki", "revoke", FRONTEND, cert_arg, "--out", "."])
        .ok();
    let crl = format!("--from-file=ca.crl={}", w.site.pki(FRONTEND).crl.display());
    let mut args = Site::walkthrough_secret_args(FRONTEND);
    args.extend([crl, "--dry-run=client".into(), "-o".into(), "yaml".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let manifest = w.site.cli(&args).ok().stdout;
    w.site.apply("revoked/secret.yaml", &manifest);
    wait_until_refused(&clients[0].1, port);
    each_refused(&w, &clients, port, "CertificateRevoked");
}

#[test]
fn an_expired_client_certificate_does_not_resume() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    // A client certificate that expires a few seconds from now.
    let mut spec = gatehouse::pki::LeafSpec::client("brief-client");
    let valid_for = Duration::from_secs(5);
    spec.not_after = time::OffsetDateTime::now_utc() + valid_for;
    let issued_at = Instant::now();
    let (cert, key) = w.site.issue_client(FRONTEND, "brief-client", &spec);
    let clients = clients(&w.site, Some((&cert, &key)));
    each_resumes(&clients, port);
    assert!(
        issued_at.elapsed() < valid_for,
        "too slow: the certificate expired before the sessions were made"
    );
    // Past notAfter (whole seconds, inclusive), with a margin.
    std::thread::sleep((valid_for + Duration::from_secs(2)).saturating_sub(issued_at.elapsed()));
    each_refused(&w, &clients, port, "CertificateExpired");
    let log = gw.log();
    assert!(
        log.contains("resumption refused")
            && log.contains("default/foocorp-gateway/https-frontend"),
        "no log line names the server and the refused resumption:\n{log}"
    );
}

/// One Gateway serving frontend on three ports: 443 OPTIONAL_MUTUAL, 8443
/// MUTUAL (another policy), 9443 OPTIONAL_MUTUAL again (the same policy).
fn three_ports(w: &Walkthrough) -> Gateway {
    let server = |port: u16, mode: &str| {
        format!(
            "  - port:\n      number: {port}\n      name: https-frontend-{port}\n      protocol: HTTPS\n    tls:\n      mode: {mode}\n      credentialName: \"frontend-credential\"\n    hosts:\n    - \"{FRONTEND}\"\n"
        )
    };
    let yaml = format!(
        "apiVersion: networking.istio.io/v1alpha3\nkind: Gateway\nmetadata:\n  name: foocorp-gateway\n  namespace: default\nspec:\n  selector:\n    istio: ingressgateway\n  servers:\n{}{}{}",
        server(443, "OPTIONAL_MUTUAL"),
        server(8443, "MUTUAL"),
        server(9443, "OPTIONAL_MUTUAL"),
    );
    w.site.apply("foocorp/gateway.yaml", &yaml);
    w.site.start_gateway(&[443, 8443, 9443])
}

#[test]
fn one_host_on_two_ports_never_shares_sessions() {
    let w = Walkthrough::new();
    let gw = three_ports(&w);
    for via in ALL {
        // A client without a certificate: its session from 443 is offered
        // to 8443 (the client's cache is by name, not port) and refused.
        let c = client(&w.site, via, None);
        resumes_while_unchanged(&c, gw.port(443), via);
        let hits = w.frontend.hits();
        not_resumed_and_refused(&connect(&c, gw.port(8443)), via, "CertificateRequired");
        assert_eq!(
            w.frontend.hits(),
            hits,
            "{via:?}: 8443 served a client without a certificate"
        );
        // The same policy on another port: a full handshake, served.
        let seen = connect(&c, gw.port(9443));
        assert!(seen.ok(), "{via:?}: {seen:?}");
        assert_eq!(
            seen.resumed,
            Some(false),
            "{via:?}: 443's session resumed on 9443"
        );
    }
}
