//! TLS passthrough and TCP routes: a PASSTHROUGH server hands the client's
//! TLS connection, unopened, to the backend of its VirtualService's
//! `tls[]` route (the client sees the backend's own certificate), next to
//! the walkthrough's terminated mTLS hosts on the same port 443; a TCP
//! server copies bytes to its `tcp[]` route's backend.
//!
//! The backends here are the test's own: a rustls server with a
//! certificate from a CA made for it (so only the backend can present it)
//! and a TCP echo server, both on loopback threads that stop when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::{FRONTEND, FRONTEND_BODY, Site, Walkthrough, issue, poll};

const NGINX: &str = "nginx.example.com";

/// The Istio task "Ingress Gateway without TLS Termination", as istio.io
/// publishes it: the Gateway's server (HTTPS, PASSTHROUGH) and the
/// VirtualService's `tls` route to `my-nginx:443`.
const ISTIO_TASK_YAML: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: mygateway
spec:
  selector:
    istio: ingressgateway # use istio default ingress gateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    tls:
      mode: PASSTHROUGH
    hosts:
    - nginx.example.com
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: nginx
spec:
  hosts:
  - nginx.example.com
  gateways:
  - mygateway
  tls:
  - match:
    - port: 443
      sniHosts:
      - nginx.example.com
    route:
    - destination:
        host: my-nginx
        port:
          number: 443
";

/// A ServiceEntry that puts `host:port` on a loopback backend.
pub(crate) fn service_entry(
    name: &str,
    host: &str,
    port: u16,
    protocol: &str,
    backend: u16,
) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}
spec:
  hosts: [{host}]
  location: MESH_INTERNAL
  ports:
  - {{number: {port}, name: p, protocol: {protocol}}}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {{p: {backend}}}
"
    )
}

/// A loopback server thread; stops when dropped.
pub(crate) struct Server {
    pub(crate) port: u16,
    stop: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

impl Server {
    pub(crate) fn start(handle: impl Fn(TcpStream) + Send + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let (s, h) = (stop.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                h.fetch_add(1, Ordering::SeqCst);
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                handle(conn);
            }
        });
        Server { port, stop, hits }
    }

    pub(crate) fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A TLS backend that terminates its own TLS with a certificate for
/// `host` from a CA made for it; answers one HTTP request per connection
/// with `backend saw SNI <sni>`. Returns the server and its CA chain PEM.
fn tls_backend(host: &str) -> (Server, String) {
    let cred = issue(host, None);
    let chain = gatehouse::secret::credential::parse_certs("cert", cred.cert.as_bytes()).unwrap();
    let key = gatehouse::secret::credential::parse_key("key", cred.key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(gatehouse::crypto::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let config = Arc::new(config);
    let server = Server::start(move |tcp| {
        let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
            return;
        };
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
            match tls.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let sni = tls.conn.server_name().unwrap_or("-").to_owned();
        let body = format!("backend saw SNI {sni}\n");
        let _ = write!(
            tls,
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    (server, cred.ca)
}

/// A TCP backend that echoes each line back.
pub(crate) fn echo_backend() -> Server {
    Server::start(|tcp| {
        let mut out = tcp.try_clone().unwrap();
        for line in BufReader::new(tcp).lines() {
            let Ok(line) = line else { return };
            if writeln!(out, "echo: {line}").is_err() {
                return;
            }
        }
    })
}

/// `curl --resolve HOST:PORT:127.0.0.1 --cacert CA https://HOST:PORT/`:
/// trusting only the backend's CA.
fn curl_backend(site: &Site, host: &str, port: u16, ca: &str) -> crate::support::CurlOut {
    let ca_path = site.write("backend-ca.pem", ca);
    site.curl(&format!("https://{host}:{port}/"))
        .resolve(host, port)
        .cacert(ca_path)
        .run()
}

#[test]
fn the_istio_passthrough_task_applies_without_warning_and_the_client_sees_the_backend() {
    let site = Site::new();
    let (nginx, ca) = tls_backend(NGINX);
    let se = service_entry(
        "my-nginx",
        "my-nginx.default.svc.cluster.local",
        443,
        "TLS",
        nginx.port,
    );
    site.apply("se.yaml", &se);
    let out = site.apply("nginx.yaml", ISTIO_TASK_YAML);
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
    let gw = site.start_gateway(&[443]);
    let port = gw.port(443);
    // The Istio task's own check: curl with the backend's CA.
    let got = poll("the passthrough route", Duration::from_secs(10), || {
        let got = curl_backend(&site, NGINX, port, &ca);
        (got.status == 200).then_some(got)
    });
    assert_eq!(got.body, format!("backend saw SNI {NGINX}\n"), "{got:?}");
    // openssl sees the backend's own certificate: issued by the CA made
    // for the backend, which gatehouse never had.
    let out = site.s_client_input(port, &["-servername", NGINX, "-showcerts"], b"");
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        all.contains("CN=nginx.example.com intermediate")
            || all.contains("CN = nginx.example.com intermediate"),
        "{all}"
    );
    // One line per connection, with the route and bytes each way.
    let log = poll("the connection's log line", Duration::from_secs(5), || {
        let log = gw.log();
        log.contains("\"CONNECTION\"").then_some(log)
    });
    let line = log.lines().find(|l| l.contains("\"CONNECTION\"")).unwrap();
    assert!(line.contains("sni=nginx.example.com"), "{line}");
    assert!(line.contains("route=\"default/nginx tls[0]\""), "{line}");
    assert!(
        line.contains("upstream_cluster=outbound|443||my-nginx.default.svc.cluster.local"),
        "{line}"
    );
    assert!(!line.contains("bytes_sent=0 "), "{line}");
}

#[test]
fn passthrough_and_terminated_hosts_share_port_443() {
    let w = Walkthrough::new();
    let (nginx, ca) = tls_backend(NGINX);
    let se = service_entry(
        "my-nginx",
        "my-nginx.default.svc.cluster.local",
        443,
        "TLS",
        nginx.port,
    );
    w.site.apply("se.yaml", &se);
    w.site.apply(
        "nginx.yaml",
        &ISTIO_TASK_YAML.replace("protocol: HTTPS", "protocol: TLS"),
    );
    let gw = w.start();
    let port = gw.port(443);
    let got = poll("the passthrough route", Duration::from_secs(10), || {
        let got = curl_backend(&w.site, NGINX, port, &ca);
        (got.status == 200).then_some(got)
    });
    assert_eq!(got.body, format!("backend saw SNI {NGINX}\n"));
    // The terminated host still does mutual TLS with its own certificate.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    let no_cert = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .no_client_cert()
        .run();
    assert_ne!(no_cert.status, 200, "{no_cert:?}");
    // A terminated connection asking for the passthrough host: 421, and
    // the passthrough backend never sees it.
    let hits = nginx.hits();
    let misdirected = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .host_header(NGINX)
        .run();
    misdirected.assert_status(421);
    assert_eq!(nginx.hits(), hits);
    // An SNI nobody serves is refused at once, as before.
    let out = w
        .site
        .s_client_input(port, &["-servername", "nobody.example.com"], b"");
    let all = format!("{}\n{}", out.stdout, out.stderr).to_ascii_lowercase();
    assert!(
        all.contains("unrecognized name") || all.contains("alert number 112"),
        "{all}"
    );
    assert_eq!(nginx.hits(), hits);
}

#[test]
fn a_passthrough_sni_without_a_tls_route_is_refused() {
    let site = Site::new();
    let (nginx, _ca) = tls_backend(NGINX);
    let se = service_entry(
        "my-nginx",
        "my-nginx.default.svc.cluster.local",
        443,
        "TLS",
        nginx.port,
    );
    site.apply("se.yaml", &se);
    // The server takes every host of example.com; the route only nginx's.
    site.apply(
        "nginx.yaml",
        &ISTIO_TASK_YAML.replacen(
            "    - nginx.example.com\n---",
            "    - \"*.example.com\"\n---",
            1,
        ),
    );
    let gw = site.start_gateway(&[443]);
    let port = gw.port(443);
    poll("the passthrough route", Duration::from_secs(10), || {
        (nginx.hits() > 0
            || site.s_client_input(port, &["-servername", NGINX], b"").code == Some(0))
        .then_some(())
    });
    let hits = nginx.hits();
    let out = site.s_client_input(port, &["-servername", "shop.example.com"], b"");
    let all = format!("{}\n{}", out.stdout, out.stderr).to_ascii_lowercase();
    assert!(
        all.contains("unrecognized name") || all.contains("alert number 112"),
        "{all}"
    );
    assert_eq!(nginx.hits(), hits);
    assert!(
        gw.log().contains("no tls route for this SNI"),
        "{}",
        gw.log()
    );
}

#[test]
fn a_tcp_server_copies_bytes_to_its_tcp_route() {
    let site = Site::new();
    let echo = echo_backend();
    site.apply(
        "se.yaml",
        &service_entry(
            "tcp-echo",
            "tcp-echo.default.svc.cluster.local",
            9000,
            "TCP",
            echo.port,
        ),
    );
    let out = site.apply(
        "tcp.yaml",
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp-echo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 31400
      name: tcp
      protocol: TCP
    hosts:
    - \"*\"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts:
  - \"*\"
  gateways:
  - tcp-echo-gateway
  tcp:
  - match:
    - port: 31400
    route:
    - destination:
        host: tcp-echo
        port:
          number: 9000
",
    );
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
    let gw = site.start_gateway(&[31400]);
    let port = gw.port(31400);
    let line = poll(
        "the echo through the gateway",
        Duration::from_secs(10),
        || {
            let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            s.write_all(b"hello gatehouse\n").ok()?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).ok()?;
            (!line.is_empty()).then_some(line)
        },
    );
    assert_eq!(line, "echo: hello gatehouse\n");
    assert!(echo.hits() >= 1);
    let log = poll("the connection's log line", Duration::from_secs(5), || {
        let log = gw.log();
        log.contains("\"CONNECTION\"").then_some(log)
    });
    assert!(log.contains("route=\"default/tcp-echo tcp[0]\""), "{log}");
    assert_tcp_metrics(&gw);
}

#[test]
fn a_passthrough_backend_that_is_down_closes_the_connection_and_logs_uf() {
    let site = Site::new();
    let down = crate::support::closed_port();
    let se = service_entry(
        "my-nginx",
        "my-nginx.default.svc.cluster.local",
        443,
        "TLS",
        down,
    );
    site.apply("se.yaml", &se);
    site.apply("nginx.yaml", ISTIO_TASK_YAML);
    let gw = site.start_gateway_with(&[443], &["--log-format", "json"]);
    let port = gw.port(443);
    let out = curl_backend(&site, NGINX, port, "");
    assert!(out.code != Some(0) && out.status == 0, "{out:?}");
    // One JSON access line for the connection, flag UF, nothing sent back.
    let line = poll("the connection's JSON line", Duration::from_secs(5), || {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["target"] == "access" && v["fields"]["message"] == "connection")
    });
    let f = &line["fields"];
    assert_eq!(f["response_flags"], "UF", "{line}");
    assert_eq!(f["sni"], NGINX, "{line}");
    assert_eq!(f["route"], "default/nginx tls[0]", "{line}");
    assert_eq!(f["upstream"], format!("127.0.0.1:{down}"), "{line}");
    assert_eq!(f["bytes_sent"], 0, "{line}");
    assert!(f["bytes_received"].as_u64().unwrap() > 0, "{line}");
}

#[test]
fn auto_passthrough_routes_istio_sni_form_to_the_service_entry() {
    let site = Site::new();
    let (nginx, _ca) = tls_backend("my-nginx.default.svc.cluster.local");
    let host = "my-nginx.default.svc.cluster.local";
    site.apply(
        "se.yaml",
        &service_entry("my-nginx", host, 8443, "TLS", nginx.port),
    );
    let out = site.apply(
        "gw.yaml",
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: cross-network-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 15443
      name: tls
      protocol: TLS
    tls:
      mode: AUTO_PASSTHROUGH
    hosts:
    - \"*.local\"
",
    );
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
    let gw = site.start_gateway(&[15443]);
    let port = gw.port(15443);
    let sni = format!("outbound_.8443_._.{host}");
    let out = poll(
        "the auto-passthrough route",
        Duration::from_secs(10),
        || {
            let out = site.s_client_input(port, &["-servername", &sni], b"");
            out.stdout.contains("intermediate").then_some(out)
        },
    );
    // The backend's own certificate, from the CA made for it.
    assert!(
        out.stdout.contains(&format!("{host} intermediate")),
        "{}",
        out.stdout
    );
    assert!(nginx.hits() >= 1);
    // A subset no rule defines, or a port the entry lacks: refused.
    let hits = nginx.hits();
    for other in [
        format!("outbound_.8443_.v1_.{host}"),
        format!("outbound_.9999_._.{host}"),
    ] {
        let out = site.s_client_input(port, &["-servername", &other], b"");
        let all = format!("{}\n{}", out.stdout, out.stderr).to_ascii_lowercase();
        assert!(
            all.contains("unrecognized name") || all.contains("alert number 112"),
            "{other}: {all}"
        );
    }
    assert_eq!(nginx.hits(), hits);
    // A subset its DestinationRule defines: routed by Istio's SNI form.
    apply_subset_rule(&site, host);
    let sni = format!("outbound_.8443_.v1_.{host}");
    let out = poll("the subset's route", Duration::from_secs(10), || {
        let out = site.s_client_input(port, &["-servername", &sni], b"");
        out.stdout.contains("intermediate").then_some(out)
    });
    assert!(out.stdout.contains(&format!("{host} intermediate")));
    assert!(nginx.hits() > hits);
}

/// A DestinationRule for `host` that defines the subset `v1` (all its
/// endpoints).
fn apply_subset_rule(site: &Site, host: &str) {
    let out = site.apply(
        "dr.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: my-nginx
spec:
  host: {host}
  subsets:
  - name: v1
"
        ),
    );
    assert!(!out.stderr.contains("Warning"), "{}", out.stderr);
}

/// The echo connection of `a_tcp_server_copies_bytes_to_its_tcp_route`,
/// counted when it ended: one connection, its bytes each way.
fn assert_tcp_metrics(gw: &crate::support::Gateway) {
    let series = |name: &str, tail: &str| {
        format!(
            "{name}{{server=\"default/tcp-echo-gateway/tcp\",route=\"default/tcp-echo tcp[0]\",{tail}}}"
        )
    };
    let metrics = poll("the connection's metrics", Duration::from_secs(5), || {
        let (_, body) = crate::support::http_get(gw.admin(), "/metrics").ok()?;
        body.contains(&series("gatehouse_tcp_connections_total", "flags=\"-\""))
            .then_some(body)
    });
    for (direction, bytes) in [("received", 16), ("sent", 22)] {
        let want = format!(
            "{} {bytes}",
            series(
                "gatehouse_tcp_bytes_total",
                &format!("direction=\"{direction}\"")
            )
        );
        assert!(metrics.contains(&want), "no {want} in {metrics}");
    }
}
