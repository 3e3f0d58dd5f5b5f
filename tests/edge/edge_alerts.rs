//! A refused handshake says why with a TLS alert, as `openssl s_client` and
//! a rustls client see it: `unrecognized_name` (112) for an SNI nobody
//! serves and for no SNI without a `*` server, `handshake_failure` (40)
//! for a server without a usable credential, and `certificate_required`
//! (116) for a MUTUAL server's client that presents no certificate. The
//! backends receive nothing.
#![allow(clippy::unwrap_used)]

use crate::support::client::{Target, probe};
use crate::support::{FRONTEND, INVENTORY, Out, Walkthrough};

/// `openssl s_client` to the gateway with `args`, no client certificate,
/// sending one request and reading until the gateway closes (so a TLS 1.3
/// alert that follows the handshake is read, not raced by stdin's end).
fn s_client(w: &Walkthrough, port: u16, args: &[&str]) -> Out {
    let ca = w.site.pki(FRONTEND).ca_chain;
    let mut all = vec!["-ign_eof", "-CAfile", ca.to_str().unwrap()];
    all.extend_from_slice(args);
    w.site
        .s_client_input(port, &all, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
}

/// openssl names the alert (`tlsv1 unrecognized name`, or its number).
#[track_caller]
fn saw_alert(out: &Out, names: &[&str]) {
    let all = format!("{}\n{}", out.stdout, out.stderr).to_ascii_lowercase();
    assert!(
        names.iter().any(|n| all.contains(n)),
        "openssl did not report any of {names:?}:\n{all}"
    );
    assert!(!all.contains("http/1.1 "), "answered:\n{all}");
    assert_ne!(out.code, Some(0));
}

/// A rustls client of `sni` without a client certificate.
fn rustls_client(w: &Walkthrough, port: u16, sni: &str) -> Target {
    let pki = w.site.pki(FRONTEND);
    let ca = std::fs::read(w.site.path(&pki.ca_chain)).unwrap();
    let config = gatehouse::tls::client::mtls_config(&ca, None, &[b"http/1.1"]).unwrap();
    Target {
        addr: ([127, 0, 0, 1], port).into(),
        host: sni.to_owned(),
        config,
    }
}

#[test]
fn an_unknown_sni_gets_unrecognized_name() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    for version in ["-tls1_2", "-tls1_3"] {
        let out = s_client(&w, port, &[version, "-servername", "nobody.foocorp.com"]);
        saw_alert(&out, &["unrecognized name", "alert number 112"]);
    }
    let p = probe(&rustls_client(&w, port, "nobody.foocorp.com"));
    let why = p.result.unwrap_err();
    assert!(why.contains("UnrecognisedName"), "{why}");
    assert_eq!(w.backend_hits(), 0);
    assert!(gw.log().contains("no server for this SNI"), "{}", gw.log());
}

#[test]
fn no_sni_without_a_catch_all_server_gets_unrecognized_name() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let out = s_client(&w, port, &["-noservername"]);
    saw_alert(&out, &["unrecognized name", "alert number 112"]);
    assert_eq!(w.backend_hits(), 0);
}

#[test]
fn a_server_without_a_usable_credential_gets_handshake_failure() {
    // frontend's secret was never created: its server has no credential.
    let w = Walkthrough::with_secrets(&[INVENTORY]);
    let gw = w.start();
    let port = gw.port(443);
    for version in ["-tls1_2", "-tls1_3"] {
        let out = s_client(&w, port, &[version, "-servername", FRONTEND]);
        saw_alert(&out, &["handshake failure", "alert number 40"]);
    }
    let p = probe(&rustls_client(&w, port, FRONTEND));
    let why = p.result.unwrap_err();
    assert!(why.contains("HandshakeFailure"), "{why}");
    assert_eq!(w.backend_hits(), 0);
}

#[test]
fn a_missing_client_certificate_under_mutual_gets_certificate_required() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let out = s_client(&w, port, &["-tls1_3", "-servername", FRONTEND]);
    saw_alert(&out, &["certificate required", "alert number 116"]);
    // TLS 1.2 has no certificate_required of its own; rustls sends it
    // anyway, which OpenSSL names by number.
    let out = s_client(&w, port, &["-tls1_2", "-servername", FRONTEND]);
    saw_alert(
        &out,
        &[
            "certificate required",
            "alert number 116",
            "handshake failure",
            "bad certificate",
        ],
    );
    // rustls negotiates TLS 1.3: the alert arrives instead of the answer.
    let seen = crate::raw::exchange(&rustls_client(&w, port, FRONTEND).config, port, FRONTEND);
    assert!(!seen.ok(), "{seen:?}");
    let why = seen.error.unwrap_or_default();
    assert!(why.contains("CertificateRequired"), "{why}");
    assert_eq!(w.backend_hits(), 0);
}
