//! Upstream HTTP/1.1 connections are reused, and a backend that closes
//! them (after each answer, or when they have been idle a while) costs no
//! request: the gateway drops a closed connection before reusing it, and
//! sends a request it could not write again on a new one
//! (`proxy/transport/direct.rs`).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::support::{FRONTEND, Gateway, Walkthrough};

/// When the raw backend closes a connection it has answered on.
#[derive(Clone, Copy)]
enum Closes {
    /// Never (until the gateway does).
    Never,
    /// Right after each answer, with no `Connection: close` to warn.
    AfterEach,
    /// When no next request has come within this long.
    WhenIdle(Duration),
    /// Never, and each answer comes this long after its request.
    NeverAndSlow(Duration),
}

/// A plain HTTP/1.1 backend on 127.0.0.1 that answers every GET with
/// `ok`, counting connections and requests, and closes as told.
struct RawBackend {
    port: u16,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl RawBackend {
    fn start(closes: Closes) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        // The thread ends with the test process; each connection's thread
        // ends when either side closes.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let r = r.clone();
                std::thread::spawn(move || serve(stream, closes, &r));
            }
        });
        RawBackend {
            port,
            connections,
            requests,
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Answers the requests of one connection (GETs: a head, no body).
fn serve(stream: TcpStream, closes: Closes, requests: &AtomicUsize) {
    let idle = match closes {
        Closes::WhenIdle(d) => Some(d),
        _ => Some(Duration::from_secs(30)),
    };
    stream.set_read_timeout(idle).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut head = 0;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => head += 1,
            }
        }
        if head == 0 {
            return;
        }
        requests.fetch_add(1, Ordering::SeqCst);
        if let Closes::NeverAndSlow(delay) = closes {
            std::thread::sleep(delay);
        }
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n";
        if writer.write_all(answer).is_err() {
            return;
        }
        if matches!(closes, Closes::AfterEach) {
            return;
        }
    }
}

/// The walkthrough with the frontend routed to `backend` through a STATIC
/// ServiceEntry, and the gateway started.
fn gateway_to(w: &Walkthrough, backend: &RawBackend) -> Gateway {
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: raw
spec:
  hosts: [raw.default.svc.cluster.local]
  ports:
  - {{number: 8080, name: http, protocol: HTTP}}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {{http: {}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: frontend
spec:
  hosts: [frontend.foocorp.com]
  gateways: [foocorp-gateway]
  http:
  - route:
    - destination: {{host: raw.default.svc.cluster.local, port: {{number: 8080}}}}
",
        backend.port
    );
    let applied = w.site.apply("task/raw.yaml", &yaml);
    assert_eq!(applied.stderr, "", "apply warned");
    w.site.start_gateway(&[443])
}

/// `n` requests, each on its own client connection, `gap` apart: every
/// one answered `ok`.
fn requests(w: &Walkthrough, gw: &Gateway, n: usize, gap: Duration) {
    for i in 0..n {
        let out = w.site.walkthrough_curl(FRONTEND, gw.port(443)).run();
        assert_eq!(
            (out.status, out.body.as_str()),
            (200, "ok\n"),
            "request {i}: {out:?}\nlog:\n{}",
            gw.log()
        );
        std::thread::sleep(gap);
    }
}

#[test]
fn an_upstream_connection_is_reused() {
    let w = Walkthrough::new();
    let b = RawBackend::start(Closes::Never);
    let gw = gateway_to(&w, &b);
    requests(&w, &gw, 10, Duration::ZERO);
    assert_eq!(b.requests(), 10);
    assert_eq!(b.connections(), 1, "ten requests one after another");
}

#[test]
fn a_backend_closing_after_each_answer_fails_no_request() {
    let w = Walkthrough::new();
    let b = RawBackend::start(Closes::AfterEach);
    let gw = gateway_to(&w, &b);
    // Back to back, and with room for the close to arrive first.
    requests(&w, &gw, 20, Duration::ZERO);
    requests(&w, &gw, 5, Duration::from_millis(50));
    assert_eq!(b.requests(), 25);
    assert_eq!(b.connections(), 25);
}

#[test]
fn a_backend_closing_idle_connections_fails_no_request() {
    let w = Walkthrough::new();
    let b = RawBackend::start(Closes::WhenIdle(Duration::from_millis(100)));
    let gw = gateway_to(&w, &b);
    requests(&w, &gw, 6, Duration::from_millis(250));
    assert_eq!(b.requests(), 6);
    assert_eq!(b.connections(), 6, "each idle connection was closed");
}

#[test]
fn a_burst_of_concurrent_requests_leaves_its_connections_to_the_next() {
    let w = Walkthrough::new();
    let b = RawBackend::start(Closes::NeverAndSlow(Duration::from_millis(300)));
    let gw = gateway_to(&w, &b);
    // 100 streams on one HTTP/2 connection, all in flight at once (the
    // backend takes 300 ms over each): 100 upstream connections.
    let burst = || {
        let transfers = w
            .site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .http2()
            .arg("--parallel")
            .arg("--parallel-max")
            .arg("100")
            .run_repeated(100, Duration::from_secs(60));
        let statuses: Vec<u16> = transfers.iter().map(|t| t.status).collect();
        assert!(
            statuses.iter().all(|s| *s == 200),
            "{statuses:?}\nlog:\n{}",
            gw.log()
        );
    };
    burst();
    let first = b.connections();
    assert!(first > 64, "only {first} requests were in flight at once");
    burst();
    assert_eq!(b.requests(), 200);
    assert_eq!(
        b.connections(),
        first,
        "the second burst opened connections the first had left idle"
    );
}
