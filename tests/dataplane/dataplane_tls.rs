//! TLS details seen with `openssl s_client`: a session from one host never
//! resumes on another (which would skip that host's client-certificate
//! check), while it does resume on its own host; `minProtocolVersion`,
//! `maxProtocolVersion` and `cipherSuites` take effect; ALPN offers `h2`
//! and `http/1.1`.
#![allow(clippy::unwrap_used)]

use crate::support::{FRONTEND, GATEWAY_YAML, INVENTORY, Out, Walkthrough};

/// `openssl s_client` to `sni` sending one `Connection: close` request and
/// waiting for the answer (so TLS 1.3 session tickets have arrived).
fn request(w: &Walkthrough, port: u16, sni: &str, args: &[&str]) -> Out {
    let ca = w.site.pki(sni).ca_chain;
    let mut all = vec![
        "-servername",
        sni,
        "-CAfile",
        ca.to_str().unwrap(),
        "-ign_eof",
    ];
    all.extend_from_slice(args);
    let input = format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n");
    w.site.s_client_input(port, &all, input.as_bytes())
}

fn client_cert_args(w: &Walkthrough, host: &str) -> [String; 4] {
    let pki = w.site.pki(host);
    [
        "-cert".into(),
        pki.client_cert.to_str().unwrap().into(),
        "-key".into(),
        pki.client_key.to_str().unwrap().into(),
    ]
}

fn reused(out: &Out) -> bool {
    out.stdout.lines().any(|l| l.starts_with("Reused, "))
}

#[test]
fn sessions_resume_only_on_their_own_host() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let front_cert = client_cert_args(&w, FRONTEND);
    let front_cert: Vec<&str> = front_cert.iter().map(String::as_str).collect();
    for version in ["-tls1_2", "-tls1_3"] {
        let sess = w.site.path(format!("session{version}.pem"));
        let sess = sess.to_str().unwrap();

        let mut args = vec![version, "-sess_out", sess];
        args.extend(&front_cert);
        let out = request(&w, port, FRONTEND, &args).ok();
        assert!(
            out.stdout.contains("HTTP/1.1 200 OK"),
            "{version}:\n{}",
            out.stdout
        );
        assert!(!reused(&out));

        // Same host: resumed, and still answered.
        let out = request(&w, port, FRONTEND, &[version, "-sess_in", sess]).ok();
        assert!(
            reused(&out),
            "{version}: not resumed on its own host:\n{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("HTTP/1.1 200 OK"),
            "{version}:\n{}",
            out.stdout
        );

        // Another host, no client certificate: a full handshake, refused.
        let out = request(&w, port, INVENTORY, &[version, "-sess_in", sess]);
        assert!(
            !reused(&out),
            "{version}: frontend's session resumed on inventory:\n{}",
            out.stdout
        );
        assert!(
            !out.stdout.contains("HTTP/1.1"),
            "{version}: inventory answered:\n{}",
            out.stdout
        );
        assert_ne!(out.code, Some(0), "{version}");
    }
    assert_eq!(w.inventory.hits(), 0);
}

/// The walkthrough's Gateway with `lines` added to frontend's `tls:` block.
fn frontend_tls(w: &Walkthrough, lines: &str) {
    let yaml = GATEWAY_YAML.replacen(
        "      credentialName: \"frontend-credential\"\n",
        &format!("      credentialName: \"frontend-credential\"\n{lines}"),
        1,
    );
    assert_ne!(yaml, GATEWAY_YAML);
    w.site.apply("foocorp/gateway.yaml", &yaml);
}

/// What `openssl s_client` negotiated with frontend: `(protocol, cipher)`,
/// or `None` when the handshake failed.
fn negotiated(w: &Walkthrough, port: u16, args: &[&str]) -> Option<(String, String)> {
    let cert = client_cert_args(w, FRONTEND);
    let mut all: Vec<&str> = cert.iter().map(String::as_str).collect();
    all.extend_from_slice(args);
    let out = request(w, port, FRONTEND, &all);
    if out.code != Some(0) || !out.stdout.contains("HTTP/1.1 200 OK") {
        return None;
    }
    let line = out.stdout.lines().find(|l| l.starts_with("New, "))?;
    let (proto, cipher) = line.strip_prefix("New, ")?.split_once(", Cipher is ")?;
    Some((proto.to_owned(), cipher.to_owned()))
}

#[test]
fn min_protocol_version_tls13() {
    let w = Walkthrough::new();
    frontend_tls(&w, "      minProtocolVersion: TLSV1_3\n");
    let gw = w.start();
    let port = gw.port(443);
    assert_eq!(negotiated(&w, port, &["-tls1_2"]), None);
    assert_eq!(negotiated(&w, port, &["-tls1_3"]).unwrap().0, "TLSv1.3");
    // Inventory keeps the default (1.2 and 1.3).
    let inv = client_cert_args(&w, INVENTORY);
    let mut args: Vec<&str> = inv.iter().map(String::as_str).collect();
    args.push("-tls1_2");
    let out = request(&w, port, INVENTORY, &args);
    assert!(out.stdout.contains("HTTP/1.1 200 OK"), "{}", out.stdout);
}

#[test]
fn max_protocol_version_and_cipher_suites() {
    let w = Walkthrough::new();
    frontend_tls(
        &w,
        "      maxProtocolVersion: TLSV1_2\n      cipherSuites:\n      - ECDHE-ECDSA-AES128-GCM-SHA256\n",
    );
    let gw = w.start();
    let port = gw.port(443);
    assert_eq!(negotiated(&w, port, &["-tls1_3"]), None);
    assert_eq!(
        negotiated(&w, port, &[]),
        Some(("TLSv1.2".into(), "ECDHE-ECDSA-AES128-GCM-SHA256".into()))
    );
    assert_eq!(
        negotiated(&w, port, &["-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"]),
        None
    );
}

#[test]
fn alpn_offers_h2_and_http11() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let cert = client_cert_args(&w, FRONTEND);
    for (offer, want) in [("h2,http/1.1", "h2"), ("http/1.1", "http/1.1")] {
        let mut args: Vec<&str> = cert.iter().map(String::as_str).collect();
        args.extend(["-alpn", offer, "-servername", FRONTEND]);
        args.extend([
            "-CAfile",
            "frontend.foocorp.com/2_intermediate/certs/ca-chain.cert.pem",
        ]);
        let out = w.site.s_client(port, &args).ok();
        assert!(
            out.stdout.contains(&format!("ALPN protocol: {want}")),
            "{offer}:\n{}",
            out.stdout
        );
    }
}
