//! `x-forwarded-client-cert` that cannot be forged or lost: a client
//! certificate whose subject and SANs hold every XFCC and RFC 2253
//! delimiter reaches the backend as exactly one XFCC whose fields read
//! back to the certificate's own (CVE-2023-27493 class); one with a
//! control character in a field is refused with 400 and a log line, and
//! its requests reach no backend.

use std::path::{Path, PathBuf};

use gatehouse::pki::LeafSpec;

use crate::support::xfcc::{parse, parse_dn, values};
use crate::support::{self, FRONTEND, FRONTEND_BODY, Site, Walkthrough, run_bounded};

/// `openssl x509 -in CERT ARGS -noout`, stdout trimmed: an oracle that is
/// not gatehouse's own code.
fn openssl_x509(site: &Site, cert: &Path, args: &[&str]) -> String {
    let mut c = site.program("openssl");
    c.arg("x509").arg("-in").arg(site.path(cert)).arg("-noout");
    c.args(args);
    run_bounded(c, support::COMMAND_TIMEOUT)
        .ok()
        .stdout
        .trim()
        .to_owned()
}

const CN: &str = "a,b;c\"d=e\\f+g<h>#i";
const O: &str = " x=y, z;\"w\"";
const URIS: [&str; 2] = ["urn:a;b=\"c\",d\\e", "spiffe://foocorp.com/ns/ux/sa/buyer"];
const DNS: [&str; 2] = ["x y;z=w,v", "buyer.foocorp.com"];

fn odd_client(site: &Site) -> (PathBuf, PathBuf) {
    let mut spec = LeafSpec::client(CN).organization(O);
    spec.dns = DNS.iter().map(|d| (*d).to_owned()).collect();
    spec.uris = URIS.iter().map(|u| (*u).to_owned()).collect();
    site.issue_client(FRONTEND, "odd", &spec)
}

#[test]
fn every_delimiter_in_subject_and_sans_reaches_the_backend_as_one_exact_xfcc() {
    let w = Walkthrough::new();
    let (cert, key) = odd_client(&w.site);
    let subject = openssl_x509(&w.site, &cert, &["-subject", "-nameopt", "RFC2253"]);
    let subject = subject.strip_prefix("subject=").unwrap().to_owned();
    let fingerprint = openssl_x509(&w.site, &cert, &["-fingerprint", "-sha256"]);
    let hash = fingerprint
        .split_once('=')
        .unwrap()
        .1
        .replace(':', "")
        .to_lowercase();
    let gw = w.start();
    for http2 in [false, true] {
        w.site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .client_cert(&cert, &key)
            .http2_if(http2)
            .run()
            .assert_body(FRONTEND_BODY);
        let seen = w.frontend.last();
        let all = seen.all("x-forwarded-client-cert");
        assert_eq!(all.len(), 1, "http2={http2}: {seen:?}");
        let elements = parse(all[0]).unwrap();
        assert_eq!(elements.len(), 1, "one element only: {}", all[0]);
        let e = &elements[0];
        let keys: Vec<&str> = e.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["Hash", "Subject", "URI", "URI", "DNS", "DNS"],
            "no field added or lost: {}",
            all[0]
        );
        assert_eq!(values(e, "Hash"), [hash.as_str()]);
        // OpenSSL's RFC 2253 rendering, byte for byte, as Envoy forwards it…
        assert_eq!(values(e, "Subject"), [subject.as_str()]);
        // …which reads back to the certificate's own attributes.
        assert_eq!(
            parse_dn(&subject).unwrap(),
            [
                ("CN".to_owned(), CN.to_owned()),
                ("O".to_owned(), O.to_owned())
            ]
        );
        assert_eq!(values(e, "URI"), URIS);
        assert_eq!(values(e, "DNS"), DNS);
    }
    assert_eq!(w.frontend.hits(), 2);
}

#[test]
fn a_control_character_in_a_certificate_field_is_400_logged_and_reaches_no_backend() {
    let w = Walkthrough::new();
    let cases = [
        (
            "cr-lf-cn",
            LeafSpec::client("evil\r\nx-admin: 1"),
            "subject's CN",
        ),
        (
            "nul-o",
            LeafSpec::client("buyer").organization("Foo\0Corp"),
            "subject's O",
        ),
        (
            "lf-uri",
            LeafSpec::client("buyer").uri("spiffe://foocorp.com/a\nb"),
            "URI SAN",
        ),
        (
            "cr-dns",
            LeafSpec::client("buyer").dns("buyer\r.foocorp.com"),
            "DNS SAN",
        ),
    ];
    let certs: Vec<_> = cases
        .iter()
        .map(|(name, spec, why)| (w.site.issue_client(FRONTEND, name, spec), *why))
        .collect();
    let gw = w.start();
    for ((cert, key), why) in &certs {
        for http2 in [false, true] {
            let out = w
                .site
                .walkthrough_curl(FRONTEND, gw.port(443))
                .client_cert(cert, key)
                .http2_if(http2)
                .run();
            assert_eq!((out.code, out.status), (Some(0), 400), "{why}: {out:?}");
            assert_eq!(out.body, "the client certificate cannot be forwarded\n");
        }
        let line = support::poll("the refusal's log line", support::START_TIMEOUT, || {
            gw.log()
                .lines()
                .find(|l| l.contains("cannot be forwarded") && l.contains(why))
                .map(str::to_owned)
        });
        assert!(
            line.contains("WARN") && line.contains("client=127.0.0.1:"),
            "{line}"
        );
        assert!(line.contains("cert_sha256="), "{line}");
    }
    assert_eq!(w.backend_hits(), 0, "a refused identity reached a backend");
    // The log names the client and the field, escaped and quoted (a
    // quoted value's `\` doubled): no line of it starts with what a CR LF
    // in the subject tried to inject, and no field of it can be forged.
    assert!(
        gw.log().lines().all(|l| !l.starts_with("x-admin")),
        "{}",
        gw.log()
    );
    assert!(
        gw.log()
            .contains("subject=\"CN=evil\\\\0D\\\\0Ax-admin: 1\""),
        "{}",
        gw.log()
    );
    // The walkthrough's own client still gets its identity through.
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .run()
        .assert_body(FRONTEND_BODY);
    assert!(
        w.frontend
            .last()
            .one("x-forwarded-client-cert")
            .contains("Subject=\"CN=frontend.foocorp.com\"")
    );
}
