//! The PROXY protocol: behind a TCP load balancer (`--proxy-protocol`),
//! the client's address comes from the balancer's v1 or v2 header and is
//! what the backend sees in `x-forwarded-for` and what the access log
//! shows; a connection without the header is closed. Towards a `tcp[]`
//! route's backend, a DestinationRule's `trafficPolicy.proxyProtocol`
//! makes the gateway send one. The balancer here is a relay thread that
//! writes the header, then copies bytes both ways, as HAProxy's
//! `send-proxy` does.

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::traffic_passthrough::{echo_backend, service_entry};
use crate::support::{FRONTEND, FRONTEND_BODY, Walkthrough, poll};

/// A v2 header for `203.0.113.7:40000` → `127.0.0.1:443` (written out
/// byte by byte from the spec, not by the gateway's own encoder).
const V2_HEADER: [u8; 28] = [
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, // signature
    0x21, // version 2, PROXY
    0x11, // TCP over IPv4
    0x00, 0x0c, // 12 bytes of addresses
    203, 0, 113, 7, // source
    127, 0, 0, 1, // destination
    0x9c, 0x40, // source port 40000
    0x01, 0xbb, // destination port 443
];

/// A load balancer on loopback: each connection to it is relayed to
/// `target` after `header`. Stops serving when dropped.
struct Balancer {
    port: u16,
    stop: Arc<AtomicBool>,
}

impl Balancer {
    fn start(target: u16, header: Vec<u8>) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().take(64) {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { return };
                let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                    return;
                };
                if upstream.write_all(&header).is_err() {
                    return;
                }
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let mut client = client;
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut u2);
                    let _ = u2.shutdown(Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut upstream, &mut client);
                    let _ = client.shutdown(Shutdown::Write);
                });
            }
        });
        Balancer { port, stop }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[test]
fn behind_a_balancer_the_client_address_comes_from_its_header() {
    let w = Walkthrough::new();
    let gw = w
        .site
        .start_gateway_with(&[443], &["--proxy-protocol", "--log-format", "json"]);
    let port = gw.port(443);
    let v1 = Balancer::start(
        port,
        b"PROXY TCP4 198.51.100.20 127.0.0.1 51000 443\r\n".to_vec(),
    );
    let v2 = Balancer::start(port, V2_HEADER.to_vec());
    for (balancer, client) in [(&v1, "198.51.100.20"), (&v2, "203.0.113.7")] {
        for h2 in [false, true] {
            let out = w
                .site
                .walkthrough_curl(FRONTEND, balancer.port)
                .http2_if(h2)
                .run();
            out.assert_body(FRONTEND_BODY);
            let seen = w.frontend.last();
            assert_eq!(seen.one("x-forwarded-for"), client);
            assert_eq!(seen.one("x-envoy-external-address"), client);
        }
    }
    // curl's own v1 header (its real address).
    let out = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .arg("--haproxy-protocol")
        .run();
    out.assert_body(FRONTEND_BODY);
    assert_eq!(w.frontend.last().one("x-forwarded-for"), "127.0.0.1");
    // No header: closed before TLS, nothing reaches the backend.
    let hits = w.frontend.hits();
    let out = w.site.walkthrough_curl(FRONTEND, port).run();
    assert_ne!(out.code, Some(0), "served without a PROXY header: {out:?}");
    assert_eq!(w.frontend.hits(), hits);
    let log = poll("the access log lines", Duration::from_secs(5), || {
        let log = gw.log();
        log.contains("203.0.113.7").then_some(log)
    });
    assert!(log.contains("198.51.100.20"), "{log}");
    assert!(
        log.contains("needs a PROXY header first"),
        "no line for the refused connection: {log}"
    );
}

#[test]
fn a_destination_rule_sends_the_header_to_a_tcp_backend() {
    let w = Walkthrough::new();
    let echo = echo_backend();
    w.site.apply(
        "se.yaml",
        &service_entry(
            "tcp-echo",
            "tcp-echo.default.svc.cluster.local",
            9000,
            "TCP",
            echo.port,
        ),
    );
    let out = w.site.apply(
        "tcp.yaml",
        "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp-echo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port: {number: 31400, name: tcp, protocol: TCP}
    hosts: [\"*\"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: tcp-echo
spec:
  hosts: [\"*\"]
  gateways: [tcp-echo-gateway]
  tcp:
  - route:
    - destination: {host: tcp-echo, port: {number: 9000}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: tcp-echo
spec:
  host: tcp-echo
  trafficPolicy:
    proxyProtocol: {version: V1}
",
    );
    assert!(
        out.stderr.contains("proxyProtocol") && out.stderr.contains("tcp[] routes"),
        "apply should say where the header is sent: {}",
        out.stderr
    );
    let gw = w.site.start_gateway_with(&[31400], &["--proxy-protocol"]);
    let port = gw.port(31400);
    let balancer = Balancer::start(port, V2_HEADER.to_vec());
    let first = poll(
        "the echo through the gateway",
        Duration::from_secs(10),
        || {
            let s = TcpStream::connect(("127.0.0.1", balancer.port)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            let mut w = s.try_clone().ok()?;
            w.write_all(b"hello\n").ok()?;
            let mut lines = BufReader::new(s).lines();
            let header = lines.next()?.ok()?;
            let hello = lines.next()?.ok()?;
            Some((header, hello))
        },
    );
    // The backend got the header first (the client as the balancer named
    // it, the gateway's own listening address), then the client's bytes.
    assert!(
        first
            .0
            .starts_with("echo: PROXY TCP4 203.0.113.7 127.0.0.1 40000 "),
        "{first:?}"
    );
    assert_eq!(
        first.0.trim_end().rsplit(' ').next(),
        Some(&*port.to_string())
    );
    assert_eq!(first.1, "echo: hello");
}
