//! `GET /metrics` on the admin port of a running walkthrough gateway,
//! scraped before and after real clients (curl with the walkthrough's
//! flags, `openssl s_client`, the in-process rustls client, raw TCP) cause
//! each handshake refusal, requests, connections and SDS events: each
//! counter must move by exactly what was done, the credential expiry
//! gauges must equal the served certificates' notAfter, and every scrape
//! is parsed whole by Python's `prometheus_client` OpenMetrics parser
//! (Debian's python3-prometheus-client), which fails the test if it
//! refuses a byte.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::client::{self, Kind};
use crate::support::{
    Backend, COMMAND_TIMEOUT, FRONTEND, FRONTEND_BODY, FRONTEND_SERVICE, GATEWAY_YAML, INVENTORY,
    INVENTORY_BODY, Site, Walkthrough, closed_port, command, frontend_vs_with, poll,
    run_bounded_input, service_entry,
};
use gatehouse::pki::LeafSpec;

/// The walkthrough's two Gateway servers, as the `server` label names them.
const FRONTEND_SERVER: &str = "default/foocorp-gateway/https-frontend";
const INVENTORY_SERVER: &str = "default/foocorp-gateway/https-inventory";

/// Parses an exposition read on stdin with the OpenMetrics parser and
/// prints every sample as `[name, labels, value]`; any parse error ends
/// it with a traceback and a non-zero exit.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;

/// A Python with `prometheus_client`: `python3` on PATH, else Debian's.
fn python() -> &'static str {
    for p in ["python3", "/usr/bin/python3"] {
        let mut c = command(p);
        c.args(["-c", "import prometheus_client.openmetrics.parser"]);
        if run_bounded_input(c, b"", COMMAND_TIMEOUT).code == Some(0) {
            return p;
        }
    }
    panic!(
        "no python3 with prometheus_client: install python3-prometheus-client (scripts/test.sh does)"
    );
}

type Labels = BTreeMap<String, String>;

/// One scrape, as the parser read it.
struct Scrape {
    samples: Vec<(String, Labels, f64)>,
}

impl Scrape {
    /// The sample `name{labels}` (exactly these labels), or 0 when absent
    /// (a series that has not moved yet).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: Labels = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        self.samples
            .iter()
            .find(|(n, l, _)| n == name && *l == want)
            .map_or(0.0, |s| s.2)
    }

    /// Every series of `name`.
    fn series(&self, name: &str) -> BTreeMap<Labels, f64> {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, v)| (l.clone(), *v))
            .collect()
    }
}

/// `GET /metrics`: asserts the status and the OpenMetrics content type,
/// then parses the whole body with the real parser.
fn scrape(admin: SocketAddr) -> Scrape {
    let (head, body) = get(admin, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    let mut c = command(python());
    c.args(["-c", PARSE]);
    let out = run_bounded_input(c, body.as_bytes(), COMMAND_TIMEOUT);
    assert_eq!(
        out.code,
        Some(0),
        "the OpenMetrics parser refused the exposition: {}\n--- exposition:\n{body}",
        out.stderr
    );
    let raw: Vec<(String, Labels, f64)> = serde_json::from_str(&out.stdout).unwrap();
    Scrape { samples: raw }
}

/// A plain HTTP/1.1 GET with `Connection: close`: the head and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// The walkthrough's Gateway with inventory's server allowing only client
/// certificates whose SAN is `inventory.foocorp.com` (its own client's).
fn gateway_with_inventory_allow_list() -> String {
    let block = "      mode: MUTUAL\n      credentialName: \"inventory-credential\"\n";
    assert!(GATEWAY_YAML.contains(block));
    GATEWAY_YAML.replacen(
        block,
        &format!("{block}      subjectAltNames:\n      - {INVENTORY}\n"),
        1,
    )
}

/// frontend-credential as the walkthrough makes it, plus a CRL (`ca.crl`)
/// that revokes a client certificate issued for the purpose; returns that
/// certificate and its key.
fn frontend_secret_with_revoked_client(site: &Site) -> (PathBuf, PathBuf) {
    site.walkthrough_secret_revoking(FRONTEND, "revoked-client")
}

/// Bytes that are not TLS, on a new connection; waits for the close.
fn send_garbage(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: frontend.foocorp.com\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
}

/// The notAfter of every certificate in a PEM file, as unix seconds.
fn not_afters(path: &Path) -> Vec<i64> {
    let pem = std::fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&pem)
        .map(|p| {
            let p = p.unwrap();
            p.parse_x509().unwrap().validity().not_after.timestamp()
        })
        .collect()
}

/// Asserts that every `gatehouse_tls_handshakes_total` series moved by
/// exactly `want` (server, result → delta), and every other by nothing.
#[track_caller]
fn assert_handshakes_moved(before: &Scrape, after: &Scrape, want: &[(&str, &str, f64)]) {
    let name = "gatehouse_tls_handshakes_total";
    let (b, a) = (before.series(name), after.series(name));
    let mut deltas: BTreeMap<(String, String), f64> = BTreeMap::new();
    for labels in b.keys().chain(a.keys()) {
        let delta = a.get(labels).copied().unwrap_or(0.0) - b.get(labels).copied().unwrap_or(0.0);
        let key = (labels["server"].clone(), labels["result"].clone());
        deltas.insert(key, delta);
    }
    deltas.retain(|_, d| *d != 0.0);
    let want: BTreeMap<(String, String), f64> = want
        .iter()
        .map(|(s, r, d)| (((*s).to_owned(), (*r).to_owned()), *d))
        .collect();
    assert_eq!(deltas, want, "handshake counters moved otherwise");
}

/// The client certificates the walkthrough does not make, each refused
/// for its own reason: `(cert, key)` paths relative to the site.
struct Refusable {
    revoked: (PathBuf, PathBuf),
    expired: (PathBuf, PathBuf),
    server_only: (PathBuf, PathBuf),
    /// From inventory's CA, with a SAN outside its `subjectAltNames`.
    stranger: (PathBuf, PathBuf),
}

/// The walkthrough with frontend's CRL and inventory's allow-list, and the
/// certificates each refusal needs.
fn refusing_walkthrough() -> (Walkthrough, Refusable) {
    let w = Walkthrough::with_secrets(&[INVENTORY]);
    let revoked = frontend_secret_with_revoked_client(&w.site);
    w.site
        .apply("foocorp/gateway.yaml", &gateway_with_inventory_allow_list());
    let expired = LeafSpec::client("expired").expired();
    let server_only = LeafSpec::client("server-only")
        .client_auth(false)
        .server_auth(true);
    let stranger = LeafSpec::client("stranger.foocorp.com");
    let certs = Refusable {
        revoked,
        expired: w.site.issue_client(FRONTEND, "expired", &expired),
        server_only: w.site.issue_client(FRONTEND, "server-only", &server_only),
        stranger: w.site.issue_client(INVENTORY, "stranger", &stranger),
    };
    (w, certs)
}

/// One handshake refused for each reason, each seen refused by its client.
fn cause_each_refusal(site: &Site, port: u16, certs: &Refusable) {
    let front = || site.walkthrough_curl(FRONTEND, port);
    let unknown = "unknown.foocorp.com";
    site.curl(&format!("https://{unknown}:{port}/"))
        .resolve(unknown, port)
        .cacert(&site.pki(FRONTEND).ca_chain)
        .run()
        .assert_refused();
    front().no_client_cert().run().assert_refused();
    let inv = site.pki(INVENTORY);
    let other_ca = (inv.client_cert, inv.client_key);
    for (cert, key) in [
        &other_ca,
        &certs.expired,
        &certs.revoked,
        &certs.server_only,
    ] {
        front().client_cert(cert, key).run().assert_refused();
    }
    let (cert, key) = &certs.stranger;
    site.walkthrough_curl(INVENTORY, port)
        .client_cert(cert, key)
        .run()
        .assert_refused();
    send_garbage(port);
    // TLS 1.1, which gatehouse does not speak.
    let old = site.s_client(
        port,
        &[
            "-servername",
            FRONTEND,
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
    );
    assert!(
        old.code != Some(0) && !old.stdout.contains("-----BEGIN CERTIFICATE-----"),
        "{old:?}"
    );
}

#[test]
fn each_refusal_reason_moves_its_counter_and_the_exposition_parses() {
    let (w, certs) = refusing_walkthrough();
    let gw = w.start();
    let port = gw.port(443);
    let before = scrape(gw.admin());

    let site = &w.site;
    let front = || site.walkthrough_curl(FRONTEND, port);
    front().run().assert_body(FRONTEND_BODY);
    front().host_header(INVENTORY).run().assert_status(421);
    site.walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);
    cause_each_refusal(site, port, &certs);

    let after = scrape(gw.admin());
    assert_handshakes_moved(
        &before,
        &after,
        &[
            (FRONTEND_SERVER, "success", 2.0),
            (INVENTORY_SERVER, "success", 1.0),
            ("", "unknown_sni", 1.0),
            (FRONTEND_SERVER, "no_client_cert", 1.0),
            (FRONTEND_SERVER, "unknown_ca", 1.0),
            (FRONTEND_SERVER, "expired", 1.0),
            (FRONTEND_SERVER, "revoked", 1.0),
            (FRONTEND_SERVER, "bad_eku", 1.0),
            (INVENTORY_SERVER, "allow_list_mismatch", 1.0),
            ("", "protocol", 2.0),
        ],
    );
    assert_eq!(w.backend_hits(), 2, "only the two 200s reached a backend");
    assert_requests_moved(&before, &after);
    assert_expiry_is_not_after(&w.site, &after);
    assert_process_metrics(&after);
}

/// The 200s and the 421 with their labels; latency counted per route and
/// per destination.
#[track_caller]
fn assert_requests_moved(before: &Scrape, after: &Scrape) {
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let requests = "gatehouse_requests_total";
    let ok = [
        ("server", FRONTEND_SERVER),
        ("virtual_service", "default/frontend"),
        ("route", "0"),
        ("method", "GET"),
        ("code", "200"),
    ];
    assert_eq!(delta(requests, &ok), 1.0);
    let misdirected = [
        ("server", FRONTEND_SERVER),
        ("virtual_service", ""),
        ("route", ""),
        ("method", "GET"),
        ("code", "421"),
    ];
    assert_eq!(delta(requests, &misdirected), 1.0);
    let inventory_ok = [
        ("server", INVENTORY_SERVER),
        ("virtual_service", "default/inventory"),
        ("route", "0"),
        ("method", "GET"),
        ("code", "200"),
    ];
    assert_eq!(delta(requests, &inventory_ok), 1.0);
    let total: f64 = after.series(requests).values().sum::<f64>()
        - before.series(requests).values().sum::<f64>();
    assert_eq!(total, 3.0, "three requests were answered");
    let route = [
        ("server", FRONTEND_SERVER),
        ("virtual_service", "default/frontend"),
        ("route", "0"),
    ];
    assert_eq!(
        delta("gatehouse_request_duration_seconds_count", &route),
        1.0
    );
    let upstream = format!("{FRONTEND_SERVICE}:80");
    assert_eq!(
        delta(
            "gatehouse_upstream_request_duration_seconds_count",
            &[("subset", ""), ("upstream", &upstream)]
        ),
        1.0
    );
    assert_eq!(
        delta(
            "gatehouse_tls_sessions_total",
            &[("server", FRONTEND_SERVER), ("kind", "full")]
        ),
        2.0
    );
}

/// The expiry gauges equal the notAfter of the certificates served: the
/// server certificate (kind=cert) and the earliest of the CA bundle
/// (kind=ca), for both hosts.
#[track_caller]
fn assert_expiry_is_not_after(site: &Site, s: &Scrape) {
    let name = "gatehouse_credential_expiry_timestamp_seconds";
    for (host, credential) in [
        (FRONTEND, "frontend-credential"),
        (INVENTORY, "inventory-credential"),
    ] {
        let pki = site.pki(host);
        let cert = not_afters(&site.path(&pki.server_cert))[0];
        let ca = *not_afters(&site.path(&pki.ca_chain)).iter().min().unwrap();
        let cacert = format!("{credential}-cacert");
        let labels = |resource: &str, kind: &'static str| {
            [
                ("namespace", "istio-system".to_owned()),
                ("resource", resource.to_owned()),
                ("kind", kind.to_owned()),
            ]
        };
        let value = |l: [(&str, String); 3]| {
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.value(name, &l)
        };
        assert_eq!(value(labels(credential, "cert")), cert as f64, "{host}");
        assert_eq!(value(labels(&cacert, "ca")), ca as f64, "{host}");
    }
    assert_eq!(s.series(name).len(), 4, "{:?}", s.series(name));
}

/// Build info, config generation and last apply.
#[track_caller]
fn assert_process_metrics(s: &Scrape) {
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        s.value("gatehouse_build_info", &[("version", version)]),
        1.0
    );
    assert!(s.value("gatehouse_config_generation", &[]) >= 1.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let applied = s.value("gatehouse_config_last_apply_timestamp_seconds", &[]);
    assert!(
        applied > now - 600.0 && applied <= now + 1.0,
        "{applied} vs {now}"
    );
    assert_eq!(
        s.value(
            "gatehouse_sds_pushes_total",
            &[("resource", "frontend-credential")]
        ),
        1.0
    );
}

#[test]
fn connections_sessions_credentials_and_timeouts_are_counted() {
    // Inventory's secret is missing: its server has no credential.
    let w = Walkthrough::with_secrets(&[FRONTEND]);
    let gw = w
        .site
        .start_gateway_with(&[443], &["--handshake-timeout", "1s"]);
    let port = gw.port(443);
    let admin = gw.admin();
    let before = scrape(admin);

    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_refused();
    // A client that connects and says nothing meets the deadline.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let _ = silent.read_to_end(&mut rest);
    // A session, then its resumption.
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let target = w.site.client(FRONTEND).target(addr);
    let first = client::probe(&target);
    let second = client::probe(&target);
    assert_eq!(
        (first.kind, second.kind, first.result, second.result),
        (Some(Kind::Full), Some(Kind::Resumed), Ok(200), Ok(200))
    );
    let after = scrape(admin);
    assert_handshakes_moved(
        &before,
        &after,
        &[
            (INVENTORY_SERVER, "no_credential", 1.0),
            ("", "timeout", 1.0),
            (FRONTEND_SERVER, "success", 2.0),
        ],
    );
    for (kind, n) in [("full", 1.0), ("resumed", 1.0)] {
        let labels = [("server", FRONTEND_SERVER), ("kind", kind)];
        let name = "gatehouse_tls_sessions_total";
        assert_eq!(after.value(name, &labels) - before.value(name, &labels), n);
    }
    // Two requests, one pooled upstream connection.
    assert_eq!(
        after.value("gatehouse_upstream_connections_active", &[]),
        1.0
    );
    assert_open_connections_counted(&w, admin, addr);
    assert_rejection_counted(&w, admin);
}

/// An open client connection is counted on its Gateway port while open.
#[track_caller]
fn assert_open_connections_counted(w: &Walkthrough, admin: SocketAddr, addr: SocketAddr) {
    let name = "gatehouse_downstream_connections_active";
    let open_now = || scrape(admin).value(name, &[("port", "443")]);
    poll(
        "no open connection counted",
        Duration::from_secs(10),
        || (open_now() == 0.0).then_some(()),
    );
    let conn = client::Conn::open(&w.site.client(FRONTEND).target(addr)).unwrap();
    assert_eq!(open_now(), 1.0);
    drop(conn);
    poll(
        "the closed connection uncounted",
        Duration::from_secs(10),
        || (open_now() == 0.0).then_some(()),
    );
}

/// A Secret update that SDS refuses (inventory's certificate with
/// frontend's key, stored with `--validate=false`) counts one rejection.
#[track_caller]
fn assert_rejection_counted(w: &Walkthrough, admin: SocketAddr) {
    let (front, inv) = (w.site.pki(FRONTEND), w.site.pki(INVENTORY));
    w.site
        .cli(&[
            "create",
            "-n",
            "istio-system",
            "secret",
            "generic",
            "inventory-credential",
            &format!("--from-file=key={}", front.server_key.display()),
            &format!("--from-file=cert={}", inv.server_cert.display()),
            &format!("--from-file=cacert={}", inv.ca_chain.display()),
            "--validate=false",
        ])
        .ok();
    let labels = [("resource", "inventory-credential")];
    poll("the rejection counted", Duration::from_secs(10), || {
        let s = scrape(admin);
        (s.value("gatehouse_sds_rejections_total", &labels) == 1.0).then_some(())
    });
    let s = scrape(admin);
    assert_eq!(s.value("gatehouse_sds_pushes_total", &labels), 0.0);
}

/// A backend that takes each connection, reads the request and closes
/// without answering, `n` times.
fn resetting_backend(n: usize) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
        }
    });
    port
}

#[test]
fn upstream_failures_timeouts_and_resets_are_counted_per_destination() {
    let w = Walkthrough::new();
    let slow = Backend::slow("too late", Duration::from_secs(5));
    let reset_port = resetting_backend(1);
    let route = |name: &str, prefix: &str, host: &str, extra: &str| {
        format!(
            "  - name: {name}\n    match:\n    - uri:\n        prefix: {prefix}\n{extra}    route:\n    - destination:\n        host: {host}\n        port:\n          number: 80\n"
        )
    };
    let routes = [
        route(
            "slow",
            "/slow",
            "slow.ux.svc.cluster.local",
            "    timeout: 1s\n",
        ),
        route("closed", "/closed", "closed.ux.svc.cluster.local", ""),
        route("reset", "/reset", "reset.ux.svc.cluster.local", ""),
    ]
    .concat();
    w.site.apply(
        "failing.yaml",
        &[
            service_entry("slow", "slow.ux.svc.cluster.local", slow.port()),
            service_entry("closed", "closed.ux.svc.cluster.local", closed_port()),
            service_entry("reset", "reset.ux.svc.cluster.local", reset_port),
            frontend_vs_with(&routes),
        ]
        .join("---\n"),
    );
    let gw = w.start();
    let port = gw.port(443);
    let before = scrape(gw.admin());
    let curl = |path: &str| w.site.walkthrough_curl(FRONTEND, port).path(path).run();
    curl("/slow").assert_status(504);
    curl("/closed").assert_status(503);
    curl("/reset").assert_status(503);
    let after = scrape(gw.admin());
    let delta = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    for (host, failures, timeouts, resets) in [
        ("slow.ux.svc.cluster.local:80", 0.0, 1.0, 0.0),
        ("closed.ux.svc.cluster.local:80", 1.0, 0.0, 0.0),
        ("reset.ux.svc.cluster.local:80", 0.0, 0.0, 1.0),
    ] {
        let l = [("subset", ""), ("upstream", host)];
        assert_eq!(
            (
                delta("gatehouse_upstream_connect_failures_total", &l),
                delta("gatehouse_upstream_timeouts_total", &l),
                delta("gatehouse_upstream_resets_total", &l),
                delta("gatehouse_upstream_request_duration_seconds_count", &l),
            ),
            (failures, timeouts, resets, 1.0),
            "{host}"
        );
    }
    // A named route is labelled by its name.
    for (route, code) in [("slow", "504"), ("closed", "503"), ("reset", "503")] {
        let labels = [
            ("server", FRONTEND_SERVER),
            ("virtual_service", "default/frontend"),
            ("route", route),
            ("method", "GET"),
            ("code", code),
        ];
        assert_eq!(delta("gatehouse_requests_total", &labels), 1.0, "{route}");
    }
}
