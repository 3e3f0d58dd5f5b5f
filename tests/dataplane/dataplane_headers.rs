//! What the backend receives: `x-forwarded-client-cert` in Envoy's format
//! (checked against what `openssl x509` prints for the same certificate,
//! since Envoy's Subject is OpenSSL's RFC 2253 rendering), a client-sent one
//! replaced or removed, and `x-forwarded-for`, `x-forwarded-proto`,
//! `x-request-id` and `host`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use crate::support;
use crate::support::{
    FRONTEND, FRONTEND_BODY, GATEWAY_YAML, INVENTORY, INVENTORY_BODY, Seen, Site, Walkthrough,
    run_bounded,
};

/// `openssl x509 -in CERT ARGS`, stdout trimmed.
fn openssl_x509(site: &Site, cert: &Path, args: &[&str]) -> String {
    let mut c = site.program("openssl");
    c.arg("x509").arg("-in").arg(cert).args(args);
    let out = run_bounded(c, support::COMMAND_TIMEOUT).ok();
    out.stdout.trim().to_owned()
}

/// The value Envoy would set for `cert`, from OpenSSL's view of it: the
/// SHA-256 of the DER, the RFC 2253 subject (quoted, its `"` and `\`
/// escaped), the URI SANs (`URI=` when none), the DNS SANs.
fn expected_xfcc(site: &Site, cert: &Path, uris: &[&str], dns: &[&str]) -> String {
    let fp = openssl_x509(site, cert, &["-noout", "-fingerprint", "-sha256"]);
    let hash = fp
        .split_once('=')
        .unwrap()
        .1
        .replace(':', "")
        .to_lowercase();
    let subject = openssl_x509(site, cert, &["-noout", "-subject", "-nameopt", "RFC2253"]);
    let subject = subject.strip_prefix("subject=").unwrap().trim();
    // Between quotes with `"` and `\` escaped, so that an XFCC reader gets
    // OpenSSL's RFC 2253 text back exactly.
    let subject = subject.replace('\\', "\\\\").replace('"', "\\\"");
    let mut want = format!("Hash={hash};Subject=\"{subject}\"");
    if uris.is_empty() {
        want.push_str(";URI=");
    }
    for u in uris {
        want.push_str(&format!(";URI={u}"));
    }
    for d in dns {
        want.push_str(&format!(";DNS={d}"));
    }
    want
}

/// A client certificate made by the openssl CLI from `host`'s intermediate
/// CA, with an unusual subject and SANs; returns relative `(cert, key)`.
fn openssl_client(site: &Site, host: &str, subject: &str, san: &str) -> (PathBuf, PathBuf) {
    let pki = site.pki(host);
    let (cert, key) = pki.named_client("openssl-made");
    let csr = PathBuf::from("openssl-made.csr");
    let ext = site.write(
        "openssl-made.ext",
        format!(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName={san}\n"
        ),
    );
    let run = |args: &[&str]| {
        let mut c = site.program("openssl");
        c.args(args);
        run_bounded(c, support::COMMAND_TIMEOUT).ok();
    };
    run(&[
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-utf8",
        "-multivalue-rdn",
        "-subj",
        subject,
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        csr.to_str().unwrap(),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        pki.intermediate_cert.to_str().unwrap(),
        "-CAkey",
        pki.intermediate_key.to_str().unwrap(),
        "-set_serial",
        "0x4a11ce",
        "-days",
        "2",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]);
    (cert, key)
}

#[test]
fn xfcc_for_the_walkthrough_client_is_envoys() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    for host in [FRONTEND, INVENTORY] {
        let want = expected_xfcc(
            &w.site,
            &w.site.path(&w.site.pki(host).client_cert),
            &[],
            &[host],
        );
        assert!(want.contains(&format!("Subject=\"CN={host}\"")), "{want}");
        let backend = if host == FRONTEND {
            &w.frontend
        } else {
            &w.inventory
        };
        for http2 in [false, true] {
            let curl = w.site.walkthrough_curl(host, port);
            let out = curl.http2_if(http2).run();
            assert_eq!(out.status, 200, "{out:?}");
            assert_eq!(
                backend.last().one("x-forwarded-client-cert"),
                want,
                "http2={http2}"
            );
        }
    }
}

#[test]
fn xfcc_subject_uri_and_dns_are_rendered_as_envoy_does() {
    let w = Walkthrough::new();
    // A multi-valued RDN, RFC 2253 specials, a leading '#', a non-ASCII
    // letter; a SPIFFE URI and two DNS names.
    let (cert, key) = openssl_client(
        &w.site,
        FRONTEND,
        "/C=US/ST=Zürich/O=FooCorp, Inc./OU=#supply \"chain\" <ops>; west/CN=buyer 7+UID=b7",
        "URI:spiffe://foocorp.com/ns/ux/sa/buyer,DNS:buyer.foocorp.com,DNS:buyer2.foocorp.com",
    );
    let want = expected_xfcc(
        &w.site,
        &w.site.path(&cert),
        &["spiffe://foocorp.com/ns/ux/sa/buyer"],
        &["buyer.foocorp.com", "buyer2.foocorp.com"],
    );
    let gw = w.start();
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .client_cert(&cert, &key)
        .run();
    out.assert_body(FRONTEND_BODY);
    assert_eq!(w.frontend.last().one("x-forwarded-client-cert"), want);
}

#[test]
fn client_sent_xfcc_is_replaced() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let want = expected_xfcc(
        &w.site,
        &w.site.path(&w.site.pki(FRONTEND).client_cert),
        &[],
        &[FRONTEND],
    );
    for http2 in [false, true] {
        let curl = w
            .site
            .walkthrough_curl(FRONTEND, port)
            .header("X-Forwarded-Client-Cert: Hash=00;Subject=\"CN=admin\";URI=spiffe://foocorp.com/admin")
            .header("x-forwarded-client-cert: By=spiffe://evil;Subject=\"CN=root\"");
        let out = curl.http2_if(http2).run();
        out.assert_body(FRONTEND_BODY);
        assert_eq!(
            w.frontend.last().all("x-forwarded-client-cert"),
            [want.as_str()],
            "http2={http2}"
        );
    }
}

#[test]
fn client_sent_xfcc_is_removed_without_a_client_certificate() {
    let w = Walkthrough::new();
    let yaml = GATEWAY_YAML.replacen("mode: MUTUAL", "mode: OPTIONAL_MUTUAL", 1);
    w.site.apply("foocorp/gateway.yaml", &yaml);
    let gw = w.start();
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .no_client_cert()
        .header("x-forwarded-client-cert: Hash=00;Subject=\"CN=inventory.foocorp.com\"")
        .run();
    out.assert_body(FRONTEND_BODY);
    assert_eq!(
        w.frontend.last().all("x-forwarded-client-cert"),
        Vec::<&str>::new()
    );
}

/// The addresses of a (possibly repeated) `x-forwarded-for`, in order.
fn xff(seen: &Seen) -> Vec<String> {
    seen.all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_owned())
        .collect()
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[test]
fn forwarded_headers_reach_the_backend() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    for http2 in [false, true] {
        // Nothing sent: the gateway sets them all.
        w.site
            .walkthrough_curl(INVENTORY, port)
            .http2_if(http2)
            .run()
            .assert_body(INVENTORY_BODY);
        let seen = w.inventory.last();
        assert_eq!(xff(&seen), ["127.0.0.1"], "{seen:?}");
        assert_eq!(seen.one("x-forwarded-proto"), "https");
        assert!(is_uuid(seen.one("x-request-id")), "{seen:?}");
        assert_eq!(seen.one("host"), INVENTORY);
        let first_id = seen.one("x-request-id").to_owned();

        // Sent by the client: XFF appended to (all of its lines, in order),
        // the scheme overwritten, the request id replaced by the edge's.
        w.site
            .walkthrough_curl(INVENTORY, port)
            .http2_if(http2)
            .header("X-Forwarded-For: 203.0.113.7")
            .header("X-Forwarded-For: 198.51.100.2, 192.0.2.1")
            .header("X-Forwarded-Proto: http")
            .header("X-Request-Id: trace-42")
            .run()
            .assert_body(INVENTORY_BODY);
        let seen = w.inventory.last();
        assert_eq!(
            xff(&seen),
            ["203.0.113.7", "198.51.100.2", "192.0.2.1", "127.0.0.1"],
            "{seen:?}"
        );
        assert_eq!(seen.one("x-forwarded-proto"), "https");
        assert!(is_uuid(seen.one("x-request-id")), "{seen:?}");
        assert_ne!(seen.one("x-request-id"), "trace-42");

        // Each request gets its own id.
        w.site
            .walkthrough_curl(INVENTORY, port)
            .http2_if(http2)
            .run()
            .assert_body(INVENTORY_BODY);
        assert_ne!(w.inventory.last().one("x-request-id"), first_id);
    }
}
