//! The walkthrough end to end: its certificates, YAML and secrets, two
//! backends, `gatehouse run`, and its two `curl` commands over HTTP/1.1 and
//! HTTP/2; the SDS and access log lines; the certificate each SNI gets as
//! `openssl s_client` shows it; TLS 1.0 and 1.1 refused.
#![allow(clippy::unwrap_used)]

use crate::support;
use crate::support::{FRONTEND, FRONTEND_BODY, INVENTORY, INVENTORY_BODY, Walkthrough};

#[test]
fn walkthrough_curl_commands_print_each_backend() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);

    let out = w.site.walkthrough_curl(FRONTEND, port).run();
    out.assert_body(FRONTEND_BODY);
    let out = w.site.walkthrough_curl(INVENTORY, port).run();
    out.assert_body(INVENTORY_BODY);
    assert_eq!((w.frontend.hits(), w.inventory.hits()), (1, 1));
    assert_eq!(w.frontend.last().path, "/");
    assert_eq!(w.inventory.last().path, "/");
}

#[test]
fn walkthrough_over_http1_and_http2() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    for (host, body) in [(FRONTEND, FRONTEND_BODY), (INVENTORY, INVENTORY_BODY)] {
        let out = w.site.walkthrough_curl(host, port).http1_1().run();
        out.assert_body(body);
        assert_eq!(out.http_version, "1.1", "{out:?}");

        let out = w.site.walkthrough_curl(host, port).http2().run();
        out.assert_body(body);
        assert_eq!(out.http_version, "2", "{out:?}");
    }
    assert_eq!((w.frontend.hits(), w.inventory.hits()), (2, 2));
}

#[test]
fn sds_push_and_access_log_lines() {
    let w = Walkthrough::new();
    let gw = w.start();
    let log = gw.log();
    for name in ["frontend-credential", "inventory-credential"] {
        let line = format!("RESOURCE NAME:{name}, EVENT: pushed key/cert pair to proxy");
        assert!(log.contains(&line), "no {line:?} in:\n{log}");
    }

    let port = gw.port(443);
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);
    let access = support::poll("the access log line", support::START_TIMEOUT, || {
        gw.log()
            .lines()
            .find(|l| l.contains(" access: ") && l.contains("sni=inventory.foocorp.com"))
            .map(str::to_owned)
    });
    for part in [
        "127.0.0.1:",
        "host=inventory.foocorp.com",
        "\"GET /\"",
        " 200 ",
        &format!("upstream={}", w.inventory.addr),
        "cert=\"CN=inventory.foocorp.com\"",
    ] {
        assert!(
            access.contains(part),
            "{part:?} missing from the access log line {access:?}"
        );
    }
}

/// The subject and issuer lines `openssl s_client -showcerts` prints for
/// certificate `depth` of the chain the server sent.
fn chain_entry(stdout: &str, depth: usize) -> Option<(String, String)> {
    let prefix = format!(" {depth} s:");
    let mut lines = stdout.lines().skip_while(|l| !l.starts_with(&prefix));
    let subject = lines.next()?.strip_prefix(&prefix)?.to_owned();
    let issuer = lines.next()?.trim().strip_prefix("i:")?.to_owned();
    Some((subject, issuer))
}

#[test]
fn s_client_sees_each_hosts_certificate() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    for host in [FRONTEND, INVENTORY] {
        let pki = w.site.pki(host);
        let out = w.site.s_client(
            port,
            &[
                "-servername",
                host,
                "-showcerts",
                "-CAfile",
                pki.ca_chain.to_str().unwrap(),
                "-cert",
                pki.client_cert.to_str().unwrap(),
                "-key",
                pki.client_key.to_str().unwrap(),
            ],
        );
        let out = out.ok();
        let (subject, issuer) = chain_entry(&out.stdout, 0)
            .unwrap_or_else(|| panic!("no certificate chain shown:\n{}", out.stdout));
        assert_eq!(subject, format!("CN = {host}"), "{}", out.stdout);
        assert_eq!(
            issuer,
            format!("O = gatehouse pki, CN = {host} Intermediate CA"),
            "{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("Verify return code: 0 (ok)"),
            "the chain does not verify against {host}'s CA:\n{}",
            out.stdout
        );
        // The served certificate is byte for byte the secret's `cert`.
        let served = pem_blocks(&out.stdout);
        let want = std::fs::read_to_string(w.site.path(&pki.server_cert)).unwrap();
        assert_eq!(served.first(), pem_blocks(&want).first(), "{host}");
    }
}

fn pem_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for l in text.lines() {
        if l == "-----BEGIN CERTIFICATE-----" {
            cur = Some(String::new());
        } else if l == "-----END CERTIFICATE-----" {
            blocks.extend(cur.take());
        } else if let Some(c) = cur.as_mut() {
            c.push_str(l);
        }
    }
    blocks
}

#[test]
fn tls_1_0_and_1_1_are_refused_1_2_and_1_3_served() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let pki = w.site.pki(FRONTEND);
    let base = [
        "-servername",
        FRONTEND,
        "-CAfile",
        pki.ca_chain.to_str().unwrap(),
        "-cert",
        pki.client_cert.to_str().unwrap(),
        "-key",
        pki.client_key.to_str().unwrap(),
    ];
    for (flag, protocol) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let mut args = base.to_vec();
        args.push(flag);
        let out = w.site.s_client(port, &args).ok();
        assert!(
            out.stdout.contains(&format!("Protocol  : {protocol}"))
                || out.stdout.contains(&format!("New, {protocol}")),
            "{flag}: not negotiated:\n{}",
            out.stdout
        );
        assert!(
            out.stdout.contains("-----BEGIN CERTIFICATE-----"),
            "{flag}:\n{}",
            out.stdout
        );
    }
    for flag in ["-tls1", "-tls1_1"] {
        // OpenSSL 3 will not even offer these at its default security level.
        for cipher in [None, Some("DEFAULT@SECLEVEL=0")] {
            let mut args = base.to_vec();
            args.push(flag);
            if let Some(c) = cipher {
                args.extend(["-cipher", c]);
            }
            let out = w.site.s_client(port, &args);
            assert_ne!(
                out.code,
                Some(0),
                "{flag} {cipher:?} was served:\n{}",
                out.stdout
            );
            assert!(
                !out.stdout.contains("-----BEGIN CERTIFICATE-----")
                    && !out.stdout.contains("Server certificate"),
                "{flag} {cipher:?}: a certificate was sent:\n{}",
                out.stdout
            );
        }
    }
    assert_eq!(w.backend_hits(), 0);
}

#[test]
fn access_log_as_json() {
    let w = Walkthrough::new();
    let gw = w.site.start_gateway_with(&[443], &["--log-format", "json"]);
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .http2()
        .run()
        .assert_body(FRONTEND_BODY);
    let line: serde_json::Value =
        support::poll("a JSON access log line", support::START_TIMEOUT, || {
            gw.log()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["target"] == "access")
        });
    let f = &line["fields"];
    assert!(
        f["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    assert_eq!(f["sni"], FRONTEND, "{line}");
    assert_eq!(f["host"], FRONTEND, "{line}");
    assert_eq!(f["method"], "GET", "{line}");
    assert_eq!(f["path"], "/", "{line}");
    assert_eq!(f["status"], 200, "{line}");
    assert_eq!(f["upstream"], w.frontend.addr.to_string(), "{line}");
    assert_eq!(f["client_subject"], "CN=frontend.foocorp.com", "{line}");
    assert!(f["duration_ms"].as_f64().is_some(), "{line}");
    // Every line is JSON, the SDS push lines included.
    for l in gw.log().lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(l).is_ok(),
            "not JSON: {l}"
        );
    }
}
