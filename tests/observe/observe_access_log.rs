//! The access log as an operator reads it, through the walkthrough with
//! curl and `openssl s_client`: every JSON field of a 200 (TLS version
//! and cipher, the client certificate's subject, SANs and SHA-256 as
//! OpenSSL reads them from the certificate, the route, the upstream, its
//! time, the response flags, the request id the backend got), of a
//! resumed session, and of the answers without a backend (404 `NR`, 503
//! `UF`, 504 `UT`, each with a request id); and the text format: one
//! line per request with the same facts, which no certificate subject,
//! SAN or Host header can split or add a field to.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse::pki::LeafSpec;
use serde_json::{Value, json};

use crate::support::{
    self, Backend, FRONTEND, FRONTEND_BODY, Gateway, Site, Walkthrough, frontend_vs_with,
    run_bounded, service_entry,
};

const DOWN_HOST: &str = "down.example.com";
const SLOW_HOST: &str = "slow.example.com";
const SERVER: &str = "default/foocorp-gateway/https-frontend";
const FRONTEND_CLUSTER: &str = "outbound|80||frontend.ux.svc.cluster.local";

/// Every field a JSON access line may have (`docs/access-log.md`).
const JSON_FIELDS: [&str; 24] = [
    "message",
    "client",
    "sni",
    "host",
    "method",
    "path",
    "protocol",
    "status",
    "bytes",
    "duration_ms",
    "server",
    "route",
    "upstream_cluster",
    "upstream",
    "upstream_ms",
    "response_flags",
    "request_id",
    "tls_version",
    "cipher",
    "resumed",
    "client_subject",
    "client_sha256",
    "client_uri_san",
    "client_dns_san",
];

/// Every `key=` of a text access line, after its positional fields.
const TEXT_KEYS: [&str; 17] = [
    "sni",
    "host",
    "upstream",
    "cert",
    "protocol",
    "server",
    "route",
    "upstream_cluster",
    "upstream_ms",
    "response_flags",
    "request_id",
    "tls_version",
    "cipher",
    "resumed",
    "client_sha256",
    "client_uri_san",
    "client_dns_san",
];

// ------------------------------------------------------------ the world

/// The walkthrough with two routes in front of frontend's `/` (which is
/// then `http[2]`): `/down` (`http[0]`) to a port nobody listens on, and
/// one named `slow` with a 300 ms timeout to a backend that answers after
/// 5 s.
struct World {
    w: Walkthrough,
    _slow: Backend,
}

fn world() -> World {
    let w = Walkthrough::new();
    let slow = Backend::slow("slow", Duration::from_secs(5));
    let routes = format!(
        "  - match:
    - uri:
        prefix: /down
    route:
    - destination:
        host: {DOWN_HOST}
        port:
          number: 80
  - name: slow
    match:
    - uri:
        prefix: /slow
    timeout: 300ms
    route:
    - destination:
        host: {SLOW_HOST}
        port:
          number: 80
"
    );
    w.site.apply("observe/vs.yaml", &frontend_vs_with(&routes));
    let entries = format!(
        "{}---\n{}",
        service_entry("down", DOWN_HOST, support::closed_port()),
        service_entry("slow", SLOW_HOST, slow.port())
    );
    w.site.apply("observe/se.yaml", &entries);
    World { w, _slow: slow }
}

/// A client certificate of frontend with a URI SAN and two DNS SANs.
fn buyer(site: &Site) -> (PathBuf, PathBuf) {
    let spec = LeafSpec::client("buyer")
        .organization("FooCorp")
        .uri("spiffe://foocorp.com/ns/ux/sa/buyer")
        .dns("buyer.foocorp.com")
        .dns("buyer.corp.internal");
    site.issue_client(FRONTEND, "buyer", &spec)
}

// ------------------------------------------------------------ oracles

/// What OpenSSL reads from a certificate: the oracle the log is held to.
struct CertFacts {
    subject: String,
    sha256: String,
    uris: Vec<String>,
    dns: Vec<String>,
}

fn openssl_x509(site: &Site, cert: &Path, args: &[&str]) -> String {
    let mut c = site.program("openssl");
    c.arg("x509").arg("-in").arg(site.path(cert)).arg("-noout");
    c.args(args);
    run_bounded(c, support::COMMAND_TIMEOUT).ok().stdout
}

fn cert_facts(site: &Site, cert: &Path) -> CertFacts {
    let subject = openssl_x509(site, cert, &["-subject", "-nameopt", "RFC2253"]);
    let subject = subject.trim().strip_prefix("subject=").unwrap().to_owned();
    let fp = openssl_x509(site, cert, &["-fingerprint", "-sha256"]);
    let sha256 = fp
        .trim()
        .split_once('=')
        .unwrap()
        .1
        .replace(':', "")
        .to_lowercase();
    let san = openssl_x509(site, cert, &["-ext", "subjectAltName"]);
    let (mut uris, mut dns) = (Vec::new(), Vec::new());
    for entry in san.lines().skip(1).flat_map(|l| l.trim().split(", ")) {
        if let Some(u) = entry.strip_prefix("URI:") {
            uris.push(u.to_owned());
        } else if let Some(d) = entry.strip_prefix("DNS:") {
            dns.push(d.to_owned());
        }
    }
    CertFacts {
        subject,
        sha256,
        uris,
        dns,
    }
}

/// A list as the log joins it: `,`, or `-` for none.
fn joined(v: &[String]) -> String {
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(",")
    }
}

// ------------------------------------------------------------ JSON lines

/// The `fields` of every JSON access line so far; panics on a log line
/// that is not JSON.
fn json_lines(gw: &Gateway) -> Vec<Value> {
    gw.log()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v["target"] == "access")
        .map(|v| v["fields"].clone())
        .collect()
}

/// The `n`-th JSON access line (from 1), once it is written.
fn json_line(gw: &Gateway, n: usize) -> Value {
    let line = support::poll("a JSON access line", support::START_TIMEOUT, || {
        json_lines(gw).get(n - 1).cloned()
    });
    let names: BTreeSet<&str> = line
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let unknown: Vec<_> = names.difference(&JSON_FIELDS.into()).copied().collect();
    assert!(
        unknown.is_empty(),
        "undocumented fields {unknown:?}: {line}"
    );
    line
}

/// Each `(field, value)` of `want` is in `line` as is.
#[track_caller]
fn assert_fields(line: &Value, want: &[(&str, Value)]) {
    for (name, value) in want {
        assert_eq!(&line[*name], value, "field {name} of {line}");
    }
}

/// A request id as the gateway makes them: UUID form.
#[track_caller]
fn assert_uuid(id: &str) {
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "request id {id:?}");
    assert!(
        id.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit()),
        "{id:?}"
    );
}

// ------------------------------------------------------------ text lines

/// A text access line read as a log reader would: the positional fields
/// (client, request line, status, bytes, duration), then `key=value`
/// pairs, quoted values unescaped. Panics on anything that is neither: a
/// stray quote, a value that runs on, a repeated key, a bad escape.
#[derive(Debug, Default)]
struct TextLine {
    positional: Vec<String>,
    keyed: BTreeMap<String, String>,
}

impl TextLine {
    fn get(&self, key: &str) -> &str {
        self.keyed
            .get(key)
            .unwrap_or_else(|| panic!("no {key}= in {self:?}"))
    }
}

/// The part of `line` after the logger's `TIMESTAMP  INFO access: `, when
/// it is an access line (not a line that holds those words further on).
fn access_part(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once(' ')?;
    rest.trim_start().strip_prefix("INFO access: ")
}

fn parse_text(line: &str) -> TextLine {
    let rest = access_part(line).unwrap_or_else(|| panic!("not an access line: {line:?}"));
    let c: Vec<char> = rest.chars().collect();
    let mut out = TextLine::default();
    let mut i = 0;
    while i < c.len() {
        let start = i;
        while i < c.len() && !matches!(c[i], ' ' | '=' | '"') {
            i += 1;
        }
        let key = if i < c.len() && c[i] == '=' {
            let k: String = c[start..i].iter().collect();
            i += 1;
            Some(k)
        } else {
            i = start;
            None
        };
        let value = if c.get(i) == Some(&'"') {
            unquote(&c, &mut i, line)
        } else {
            let s = i;
            while i < c.len() && c[i] != ' ' {
                assert!(!matches!(c[i], '"' | '='), "stray {:?} in {line:?}", c[i]);
                i += 1;
            }
            c[s..i].iter().collect()
        };
        assert!(i == c.len() || c[i] == ' ', "a value runs on in {line:?}");
        i += 1;
        match key {
            Some(k) => {
                let again = out.keyed.insert(k.clone(), value);
                assert!(again.is_none(), "{k}= twice in {line:?}");
            }
            None => out.positional.push(value),
        }
    }
    out
}

/// The quoted value at `c[*i]`, unescaped; leaves `*i` after its end.
fn unquote(c: &[char], i: &mut usize, line: &str) -> String {
    let mut next = || {
        let ch = *c
            .get(*i)
            .unwrap_or_else(|| panic!("unterminated quote in {line:?}"));
        *i += 1;
        ch
    };
    assert_eq!(next(), '"');
    let mut v = String::new();
    loop {
        match next() {
            '"' => return v,
            '\\' => match next() {
                e @ ('"' | '\\') => v.push(e),
                'n' => v.push('\n'),
                'r' => v.push('\r'),
                't' => v.push('\t'),
                'u' => {
                    assert_eq!(next(), '{', "{line:?}");
                    let mut hex = String::new();
                    loop {
                        match next() {
                            '}' => break,
                            h => hex.push(h),
                        }
                    }
                    let code = u32::from_str_radix(&hex, 16).unwrap();
                    v.push(char::from_u32(code).unwrap());
                }
                e => panic!("bad escape \\{e} in {line:?}"),
            },
            ch => {
                assert!(!ch.is_control(), "raw control character in {line:?}");
                v.push(ch);
            }
        }
    }
}

/// Every text access line so far, parsed.
fn text_lines(gw: &Gateway) -> Vec<TextLine> {
    gw.log()
        .lines()
        .filter(|l| access_part(l).is_some())
        .map(parse_text)
        .collect()
}

/// The `n`-th text access line (from 1), once it is written; it has
/// exactly the documented keys.
fn text_line(gw: &Gateway, n: usize) -> TextLine {
    let line = support::poll("a text access line", support::START_TIMEOUT, || {
        text_lines(gw).into_iter().nth(n - 1)
    });
    let keys: Vec<&str> = line.keyed.keys().map(String::as_str).collect();
    let mut want = TEXT_KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "{line:?}");
    assert_eq!(line.positional.len(), 5, "{line:?}");
    line
}

// ------------------------------------------------------------ tests

#[test]
fn json_line_of_a_forwarded_request_has_every_fact() {
    let world = world();
    let w = &world.w;
    let (cert, key) = buyer(&w.site);
    let want = cert_facts(&w.site, &cert);
    let gw = w.site.start_gateway_with(&[443], &["--log-format", "json"]);
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .client_cert(&cert, &key)
        .http1_1()
        .arg("--tls13-ciphers")
        .arg("TLS_AES_128_GCM_SHA256")
        .run();
    out.assert_body(FRONTEND_BODY);
    let line = json_line(&gw, 1);
    let seen = w.frontend.last();
    assert_fields(
        &line,
        &[
            ("message", json!("request")),
            ("sni", json!(FRONTEND)),
            ("host", json!(FRONTEND)),
            ("method", json!("GET")),
            ("path", json!("/")),
            ("protocol", json!("HTTP/1.1")),
            ("status", json!(200)),
            ("bytes", json!(FRONTEND_BODY.len() + 1)),
            ("server", json!(SERVER)),
            ("route", json!("default/frontend/2")),
            ("upstream_cluster", json!(FRONTEND_CLUSTER)),
            ("upstream", json!(w.frontend.addr.to_string())),
            ("response_flags", json!("-")),
            ("request_id", json!(seen.one("x-request-id"))),
            ("tls_version", json!("TLSv1_3")),
            ("cipher", json!("TLS13_AES_128_GCM_SHA256")),
            ("resumed", json!(false)),
            ("client_subject", json!(want.subject)),
            ("client_sha256", json!(want.sha256)),
            (
                "client_uri_san",
                json!("spiffe://foocorp.com/ns/ux/sa/buyer"),
            ),
            (
                "client_dns_san",
                json!("buyer,buyer.foocorp.com,buyer.corp.internal"),
            ),
        ],
    );
    // The oracle agrees with what the certificate was made with.
    assert_eq!(joined(&want.uris), line["client_uri_san"]);
    assert_eq!(joined(&want.dns), line["client_dns_san"]);
    assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    let (total, upstream) = (line["duration_ms"].as_f64(), line["upstream_ms"].as_f64());
    assert!(
        total.zip(upstream).is_some_and(|(t, u)| u >= 0.0 && u <= t),
        "upstream_ms and duration_ms are numbers, the upstream's the smaller: {line}"
    );
    // HTTP/2 says so.
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .http2()
        .run()
        .assert_body(FRONTEND_BODY);
    let line = json_line(&gw, 2);
    assert_fields(
        &line,
        &[("protocol", json!("HTTP/2")), ("status", json!(200))],
    );
}

/// `openssl s_client` GETs `/` of frontend over TLS 1.3 with the
/// walkthrough's client certificate, saving its session to (or resuming
/// it from) `session`; returns what s_client printed.
fn s_client_get(site: &Site, port: u16, session: (&str, &str)) -> String {
    let pki = site.pki(FRONTEND);
    let ca = pki.ca_chain.to_str().unwrap();
    let cert = pki.client_cert.to_str().unwrap();
    let key = pki.client_key.to_str().unwrap();
    let request = format!("GET / HTTP/1.1\r\nHost: {FRONTEND}\r\nConnection: close\r\n\r\n");
    let out = site.s_client_input(
        port,
        &[
            "-servername",
            FRONTEND,
            "-CAfile",
            ca,
            "-cert",
            cert,
            "-key",
            key,
            "-tls1_3",
            "-ign_eof",
            session.0,
            session.1,
        ],
        request.as_bytes(),
    );
    assert!(out.stdout.contains(FRONTEND_BODY), "{out:?}");
    out.stdout
}

#[test]
fn json_line_says_whether_the_session_resumed() {
    let w = Walkthrough::new();
    let gw = w.site.start_gateway_with(&[443], &["--log-format", "json"]);
    let port = gw.port(443);
    let first = s_client_get(&w.site, port, ("-sess_out", "session.pem"));
    assert!(first.contains("New, TLSv1.3"), "{first}");
    let line = json_line(&gw, 1);
    assert_fields(
        &line,
        &[("resumed", json!(false)), ("tls_version", json!("TLSv1_3"))],
    );
    let again = s_client_get(&w.site, port, ("-sess_in", "session.pem"));
    assert!(again.contains("Reused, TLSv1.3"), "{again}");
    let line = json_line(&gw, 2);
    let pki = w.site.pki(FRONTEND);
    let want = cert_facts(&w.site, &pki.client_cert);
    // A resumed session still names its client: the certificate of the
    // session's full handshake.
    assert_fields(
        &line,
        &[
            ("resumed", json!(true)),
            ("status", json!(200)),
            ("client_subject", json!(want.subject)),
            ("client_sha256", json!(want.sha256)),
            ("client_uri_san", json!("-")),
            ("client_dns_san", json!(FRONTEND)),
            ("request_id", json!(w.frontend.last().one("x-request-id"))),
        ],
    );
}

#[test]
fn json_lines_of_answers_without_a_backend_have_flags_and_a_request_id() {
    let world = world();
    let w = &world.w;
    let gw = w.site.start_gateway_with(&[443], &["--log-format", "json"]);
    let port = gw.port(443);
    let curl = |path: &str| w.site.walkthrough_curl(FRONTEND, port).path(path).run();
    let no_upstream = |line: &Value| {
        assert_eq!(line["upstream"], "-", "{line}");
        assert_eq!(line["upstream_cluster"], "-", "{line}");
        assert!(line.get("upstream_ms").is_none(), "{line}");
    };

    curl("/nope").assert_status(404);
    let nr = json_line(&gw, 1);
    assert_fields(
        &nr,
        &[
            ("status", json!(404)),
            ("response_flags", json!("NR")),
            ("route", json!("-")),
            ("server", json!(SERVER)),
            ("path", json!("/nope")),
            ("bytes", json!("no route\n".len())),
        ],
    );
    no_upstream(&nr);
    assert_uuid(nr["request_id"].as_str().unwrap());

    curl("/down").assert_status(503);
    let uf = json_line(&gw, 2);
    let down_addr = uf["upstream"].as_str().unwrap().to_owned();
    assert_fields(
        &uf,
        &[
            ("status", json!(503)),
            ("response_flags", json!("UF")),
            ("route", json!("default/frontend/0")),
            (
                "upstream_cluster",
                json!(format!("outbound|80||{DOWN_HOST}")),
            ),
        ],
    );
    assert!(down_addr.starts_with("127.0.0.1:"), "{uf}");
    assert!(uf["upstream_ms"].as_f64().is_some(), "{uf}");
    assert_uuid(uf["request_id"].as_str().unwrap());

    curl("/slow").assert_status(504);
    let ut = json_line(&gw, 3);
    assert_fields(
        &ut,
        &[
            ("status", json!(504)),
            ("response_flags", json!("UT")),
            ("route", json!("default/frontend/slow")),
            (
                "upstream_cluster",
                json!(format!("outbound|80||{SLOW_HOST}")),
            ),
        ],
    );
    let waited = ut["upstream_ms"].as_f64().unwrap();
    assert!(
        (300.0..5000.0).contains(&waited),
        "the route's 300 ms: {ut}"
    );
    let ids: BTreeSet<&str> = [&nr, &uf, &ut]
        .iter()
        .map(|l| l["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "each request its own id");
    assert_eq!(w.backend_hits(), 0);
}

#[test]
fn text_line_is_one_line_with_the_same_facts() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .arg("--tls13-ciphers")
        .arg("TLS_CHACHA20_POLY1305_SHA256")
        .run()
        .assert_body(FRONTEND_BODY);
    let line = text_line(&gw, 1);
    let want = cert_facts(&w.site, &w.site.pki(FRONTEND).client_cert);
    let seen = w.frontend.last();
    let upstream = w.frontend.addr.to_string();
    let dns = joined(&want.dns);
    assert!(line.positional[0].starts_with("127.0.0.1:"), "{line:?}");
    assert_eq!(line.positional[1..4], ["GET /", "200", "33"], "{line:?}");
    assert!(line.positional[4].ends_with("ms"), "{line:?}");
    for (key, value) in [
        ("sni", FRONTEND),
        ("host", FRONTEND),
        ("upstream", upstream.as_str()),
        ("cert", want.subject.as_str()),
        ("protocol", "HTTP/2"),
        ("server", SERVER),
        ("route", "default/frontend/0"),
        ("upstream_cluster", FRONTEND_CLUSTER),
        ("response_flags", "-"),
        ("request_id", seen.one("x-request-id")),
        ("tls_version", "TLSv1_3"),
        ("cipher", "TLS13_CHACHA20_POLY1305_SHA256"),
        ("resumed", "false"),
        ("client_sha256", want.sha256.as_str()),
        ("client_uri_san", "-"),
        ("client_dns_san", dns.as_str()),
    ] {
        assert_eq!(line.get(key), value, "{key}= in {line:?}");
    }
    assert!(line.get("upstream_ms").parse::<f64>().is_ok(), "{line:?}");

    w.site
        .walkthrough_curl(FRONTEND, port)
        .path("/nope")
        .run()
        .assert_status(404);
    let nr = text_line(&gw, 2);
    assert_eq!(nr.positional[1..4], ["GET /nope", "404", "9"], "{nr:?}");
    assert_eq!(nr.get("response_flags"), "NR");
    assert_eq!((nr.get("route"), nr.get("upstream")), ("-", "-"));
    assert_eq!(nr.get("upstream_ms"), "-");
    assert_uuid(nr.get("request_id"));
}

#[test]
fn no_subject_san_or_host_splits_a_text_line_or_adds_a_field() {
    let w = Walkthrough::new();
    // A subject and a DNS SAN that try to end the value and add a field
    // (printable, so forwarded: 200)...
    let odd_cn = "evil\" forged=1 \\ x=";
    let odd_dns = "a b\" forged=2";
    let mut odd = LeafSpec::client(odd_cn);
    odd.dns = vec![odd_dns.to_owned(), "ok.example".to_owned()];
    let (odd_cert, odd_key) = w.site.issue_client(FRONTEND, "odd", &odd);
    // ...and one that tries a new line (refused with 400, and logged).
    let crlf = LeafSpec::client("evil\r\n2026-01-01T00:00:00Z  INFO access: forged=3");
    let (crlf_cert, crlf_key) = w.site.issue_client(FRONTEND, "crlf", &crlf);
    let odd_facts = cert_facts(&w.site, &odd_cert);
    let crlf_sha256 = cert_facts(&w.site, &crlf_cert).sha256;
    let gw = w.start();
    let port = gw.port(443);
    let curl = || w.site.walkthrough_curl(FRONTEND, port);

    curl()
        .client_cert(&odd_cert, &odd_key)
        .run()
        .assert_body(FRONTEND_BODY);
    let line = text_line(&gw, 1);
    assert_eq!(line.get("cert"), odd_facts.subject, "{line:?}");
    assert_eq!(line.get("client_dns_san"), format!("{odd_dns},ok.example"));
    assert_eq!(line.get("client_sha256"), odd_facts.sha256);

    let out = curl().client_cert(&crlf_cert, &crlf_key).run();
    assert_eq!(out.status, 400, "{out:?}");
    let line = text_line(&gw, 2);
    assert_eq!(
        line.get("cert"),
        "CN=evil\\0D\\0A2026-01-01T00:00:00Z  INFO access: forged=3",
        "the subject as escaped for logs: {line:?}"
    );
    assert_eq!(line.get("client_sha256"), crlf_sha256);
    assert_eq!(line.positional[2], "400");
    // The refusal's own WARN line quotes the subject too.
    assert!(
        gw.log()
            .contains("subject=\"CN=evil\\\\0D\\\\0A2026-01-01T00:00:00Z  INFO access: forged=3\""),
        "{}",
        gw.log()
    );

    let host = "x\" forged=4 \\";
    curl().host_header(host).http1_1().run().assert_status(404);
    let line = text_line(&gw, 3);
    assert_eq!(line.get("host"), host, "{line:?}");

    // Three requests, three access lines (a line the CR LF had started
    // would be a fourth), none with a field a value tried to add.
    assert_eq!(text_lines(&gw).len(), 3, "{}", gw.log());
    assert!(
        text_lines(&gw)
            .iter()
            .all(|l| !l.keyed.keys().any(|k| k.contains("forged"))),
        "{}",
        gw.log()
    );
}
