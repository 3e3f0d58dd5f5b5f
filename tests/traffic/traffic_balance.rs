//! DestinationRule `loadBalancer`, `connectionPool` and
//! `outlierDetection`, and subsets by weight, through the walkthrough's
//! gateway with curl and real backends: round robin spreads evenly; least
//! request sends less to a busy endpoint; consistent hashing by header,
//! cookie (the gateway sets it) and source IP sticks; Istio's Circuit
//! Breaking task overflows with 503 `UO` in the access log and the
//! overflow metric; outlier detection ejects a failing endpoint and
//! brings it back; Istio's Request Routing and Traffic Shifting tasks
//! split by subset and weight.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{self, Backend, FRONTEND, Failing, Gateway, Walkthrough};

/// The reviews service: a STATIC ServiceEntry whose endpoints are the
/// `backends` (each `127.0.0.1` on its own port, labelled `version: vN`
/// from 1), a DestinationRule with `policy` (YAML under `spec:`, after
/// `host`) and the frontend's VirtualService with `http` (its `http:`
/// entries).
fn reviews(backends: &[&Backend], policy: &str, http: &str) -> String {
    let endpoints: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            format!(
                "  - address: 127.0.0.1\n    ports: {{http: {}}}\n    labels: {{app: reviews, version: v{}}}\n",
                b.port(),
                i + 1
            )
        })
        .collect();
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports:
  - {{number: 9080, name: http, protocol: HTTP}}
  resolution: STATIC
  endpoints:
{endpoints}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
{policy}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: frontend
spec:
  hosts:
  - frontend.foocorp.com
  gateways:
  - foocorp-gateway
  http:
{http}"
    )
}

/// Every request to reviews, whatever its subset.
const ALL_TO_REVIEWS: &str = "  - route:\n    - destination:\n        host: reviews\n";

/// Applies `yaml` to the walkthrough (asserting no warning) and starts the
/// gateway with JSON logs.
fn start(w: &Walkthrough, yaml: &str) -> Gateway {
    let applied = w.site.apply("task/reviews.yaml", yaml);
    assert_eq!(applied.stderr, "", "apply warned");
    w.site.start_gateway_with(&[443], &["--log-format", "json"])
}

fn backends(n: usize) -> Vec<Backend> {
    (1..=n).map(|i| Backend::start(&format!("v{i}"))).collect()
}

fn hits(bs: &[Backend]) -> Vec<usize> {
    bs.iter().map(Backend::hits).collect()
}

/// One request with `headers`: its body (the backend's name) and the
/// response's `set-cookie`.
fn get(w: &Walkthrough, gw: &Gateway, headers: &[&str]) -> (String, Option<String>) {
    let mut c = w.site.walkthrough_curl(FRONTEND, gw.port(443)).path("/");
    for h in headers {
        c = c.header(h);
    }
    let out = c.run();
    out.assert_status(200);
    let cookie = out.header("set-cookie").map(str::to_owned);
    (out.body.trim().to_owned(), cookie)
}

/// `n` requests on one connection, each answered 200.
fn repeat(w: &Walkthrough, gw: &Gateway, n: usize) {
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/")
        .run_repeated(n, Duration::from_secs(60));
    assert!(out.iter().all(|t| t.status == 200), "{out:?}");
}

/// The access lines' fields once `n` are written.
fn access(gw: &Gateway, n: usize) -> Vec<Value> {
    support::poll("access lines", support::START_TIMEOUT, || {
        let lines: Vec<Value> = gw
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .map(|v| v["fields"].clone())
            .collect();
        (lines.len() >= n).then_some(lines)
    })
}

#[test]
fn round_robin_takes_the_endpoints_in_turn() {
    let w = Walkthrough::new();
    let bs = backends(3);
    let refs: Vec<&Backend> = bs.iter().collect();
    let yaml = reviews(
        &refs,
        "  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}",
        ALL_TO_REVIEWS,
    );
    let gw = start(&w, &yaml);
    repeat(&w, &gw, 30);
    assert_eq!(hits(&bs), [10, 10, 10]);
}

#[test]
fn without_a_load_balancer_it_is_round_robin_too() {
    let w = Walkthrough::new();
    let bs = backends(2);
    let refs: Vec<&Backend> = bs.iter().collect();
    let yaml = reviews(&refs, "  trafficPolicy: {}", ALL_TO_REVIEWS);
    let gw = start(&w, &yaml);
    repeat(&w, &gw, 20);
    assert_eq!(hits(&bs), [10, 10]);
}

/// A slow and a fast endpoint. First 16 requests at once: those that land
/// on the slow one (some do: all 16 on the fast one is a chance of 2^-16)
/// stay in flight for 6 s. Then 60 more at once: round
/// robin would give the slow one 30; least request gives it one only when
/// both of its two draws are the slow one (a quarter), as it has more
/// requests in flight than the fast one.
#[test]
fn least_request_sends_less_to_the_busy_endpoint() {
    let w = Walkthrough::new();
    let slow = Backend::slow("slow", Duration::from_secs(6));
    let fast = Backend::start("fast");
    let yaml = reviews(
        &[&slow, &fast],
        "  trafficPolicy:\n    loadBalancer: {simple: LEAST_REQUEST}",
        ALL_TO_REVIEWS,
    );
    let gw = start(&w, &yaml);
    let port = gw.port(443);
    let burst = |n: usize| {
        w.site
            .walkthrough_curl(FRONTEND, port)
            .path("/")
            .http1_1()
            .arg("--parallel")
            .arg("--parallel-max")
            .arg(&n.to_string())
            .run_repeated(n, Duration::from_secs(60))
    };
    std::thread::scope(|s| {
        let preload = s.spawn(|| burst(16));
        let busy = support::poll(
            "a request in flight on the slow one",
            support::START_TIMEOUT,
            || (slow.hits() + fast.hits() >= 16 && slow.hits() > 0).then(|| slow.hits()),
        );
        let out = burst(60);
        assert!(out.iter().all(|t| t.status == 200), "{out:?}");
        let to_slow = slow.hits() - busy;
        // Binomial(60, 1/4): mean 15, sd 3.4; 30 is over 4 sd above.
        assert!(to_slow < 30, "slow {to_slow} of 60 (fast {})", fast.hits());
        assert!(preload.join().unwrap().iter().all(|t| t.status == 200));
    });
}

#[test]
fn a_header_hash_sticks_each_user_to_one_endpoint() {
    let w = Walkthrough::new();
    let bs = backends(3);
    let refs: Vec<&Backend> = bs.iter().collect();
    let yaml = reviews(
        &refs,
        "  trafficPolicy:\n    loadBalancer:\n      consistentHash: {httpHeaderName: x-user}",
        ALL_TO_REVIEWS,
    );
    let gw = start(&w, &yaml);
    let mut owner = BTreeMap::new();
    for round in 0..3 {
        for user in 0..8 {
            let (body, _) = get(&w, &gw, &[&format!("x-user: user{user}")]);
            let first = owner.entry(user).or_insert_with(|| body.clone());
            assert_eq!(*first, body, "user{user} moved in round {round}");
        }
    }
    let distinct: std::collections::BTreeSet<&String> = owner.values().collect();
    assert!(distinct.len() >= 2, "8 users all on {distinct:?}");
}

#[test]
fn a_cookie_hash_sets_the_cookie_then_sticks() {
    let w = Walkthrough::new();
    let bs = backends(3);
    let refs: Vec<&Backend> = bs.iter().collect();
    let yaml = reviews(
        &refs,
        "  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: session, path: /, ttl: 60s}",
        ALL_TO_REVIEWS,
    );
    let gw = start(&w, &yaml);
    for _ in 0..3 {
        let (first, cookie) = get(&w, &gw, &[]);
        let cookie = cookie.expect("a Set-Cookie for the missing hash cookie");
        let (pair, attrs) = cookie.split_once(';').unwrap();
        assert!(pair.starts_with("session=\""), "{cookie}");
        assert_eq!(attrs, " Max-Age=60; Path=/; HttpOnly", "{cookie}");
        for _ in 0..5 {
            let (body, again) = get(&w, &gw, &[&format!("cookie: {pair}")]);
            assert_eq!(body, first, "the cookie {pair} moved");
            assert_eq!(again, None, "a cookie sent is not set again");
        }
    }
}

#[test]
fn a_source_ip_hash_sticks() {
    let w = Walkthrough::new();
    let bs = backends(3);
    let refs: Vec<&Backend> = bs.iter().collect();
    let yaml = reviews(
        &refs,
        "  trafficPolicy:\n    loadBalancer:\n      consistentHash: {useSourceIp: true}",
        ALL_TO_REVIEWS,
    );
    let gw = start(&w, &yaml);
    repeat(&w, &gw, 20);
    let mut h = hits(&bs);
    h.sort_unstable();
    assert_eq!(h, [0, 0, 20]);
}

/// The value of the metric line starting with `prefix`.
fn metric(gw: &Gateway, prefix: &str) -> Option<f64> {
    let (_, body) = support::http_get(gw.admin(), "/metrics").ok()?;
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Istio's "Circuit Breaking" task: its DestinationRule as published
/// (`httpbin` renamed `reviews`), then concurrent requests to a backend
/// that takes its time: one in flight and one waiting at most, so some
/// get 503 with `UO`, counted in `gatehouse_upstream_overflows_total`.
#[test]
fn the_istio_circuit_breaking_task_overflows_with_uo() {
    let w = Walkthrough::new();
    let slow = Backend::slow("v1", Duration::from_millis(1500));
    let yaml = reviews(
        &[&slow],
        "  trafficPolicy:
    connectionPool:
      tcp:
        maxConnections: 1
      http:
        http1MaxPendingRequests: 1
        maxRequestsPerConnection: 1
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100",
        ALL_TO_REVIEWS,
    );
    let gw = start(&w, &yaml);
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/")
        .http1_1()
        .arg("--parallel")
        .arg("--parallel-max")
        .arg("6")
        .run_repeated(6, Duration::from_secs(60));
    let ok = out.iter().filter(|t| t.status == 200).count();
    let overflowed = out.iter().filter(|t| t.status == 503).count();
    assert_eq!(ok + overflowed, 6, "{out:?}");
    assert!(ok >= 1 && overflowed >= 1, "{out:?}");
    let lines = access(&gw, 6);
    let uo = lines.iter().filter(|l| l["response_flags"] == "UO").count();
    assert_eq!(uo, overflowed, "{lines:?}");
    let counted = support::poll("the overflow metric", support::START_TIMEOUT, || {
        metric(
            &gw,
            "gatehouse_upstream_overflows_total{upstream=\"reviews.default.svc.cluster.local:9080\"",
        )
    });
    assert_eq!(counted, overflowed as f64);
    // An overflow is not the endpoint's failure: it was never ejected.
    assert!(!gw.log().contains("endpoint ejected"));
    assert_eq!(get(&w, &gw, &[]).0, "v1");
}

/// One failing endpoint of two: after `consecutive5xxErrors` it gets
/// nothing for `baseEjectionTime`, then it is back (recovered by then).
#[test]
fn outlier_detection_ejects_a_failing_endpoint_and_brings_it_back() {
    let w = Walkthrough::new();
    let failing = Backend::failing("recovered", 3, Failing::Status(500));
    let good = Backend::start("good");
    let yaml = reviews(
        &[&failing, &good],
        "  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 1s
      baseEjectionTime: 2s
      maxEjectionPercent: 100",
        ALL_TO_REVIEWS,
    );
    let gw = start(&w, &yaml);
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let out = w
            .site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .path("/")
            .run();
        statuses.push(out.status);
    }
    let ejected_at = Instant::now();
    assert_eq!(statuses, [500, 200, 500, 200, 500, 200]);
    assert!(gw.log().contains("outlier detection: endpoint ejected"));
    repeat(&w, &gw, 10);
    assert_eq!(failing.hits(), 3, "an ejected endpoint got requests");
    assert_eq!(good.hits(), 13);
    // Back after its ejection time: it answers again.
    std::thread::sleep(Duration::from_millis(2100).saturating_sub(ejected_at.elapsed()));
    let bodies: Vec<String> = (0..4).map(|_| get(&w, &gw, &[]).0).collect();
    assert!(bodies.iter().any(|b| b == "recovered"), "{bodies:?}");
    assert!(
        gw.log()
            .contains("endpoint returned to the load balancing pool")
    );
}

/// The subsets of Istio's bookinfo `reviews` DestinationRule.
const SUBSETS: &str = "  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
  - name: v3
    labels: {version: v3}";

/// Istio's "Request Routing" task (`virtual-service-reviews-test-v2`):
/// `end-user: jason` goes to v2, everyone else to v1.
#[test]
fn the_istio_request_routing_task_routes_by_subset() {
    let w = Walkthrough::new();
    let bs = backends(3);
    let refs: Vec<&Backend> = bs.iter().collect();
    let http = "  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination:
        host: reviews
        subset: v2
  - route:
    - destination:
        host: reviews
        subset: v1
";
    let gw = start(&w, &reviews(&refs, SUBSETS, http));
    for _ in 0..3 {
        assert_eq!(get(&w, &gw, &["end-user: jason"]).0, "v2");
        assert_eq!(get(&w, &gw, &[]).0, "v1");
    }
    assert_eq!(hits(&bs), [3, 3, 0]);
}

/// Istio's "Traffic Shifting" task (`virtual-service-reviews-50-v3`): 50%
/// to v1 and 50% to v3, measured over 400 requests.
#[test]
fn the_istio_traffic_shifting_task_splits_fifty_fifty() {
    let w = Walkthrough::new();
    let bs = backends(3);
    let refs: Vec<&Backend> = bs.iter().collect();
    let http = "  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 50
    - destination:
        host: reviews
        subset: v3
      weight: 50
";
    let gw = start(&w, &reviews(&refs, SUBSETS, http));
    repeat(&w, &gw, 400);
    let h = hits(&bs);
    assert_eq!(h[0] + h[2], 400);
    assert_eq!(h[1], 0);
    // Binomial(400, 0.5): sd 10; 5 sd either side fails once in ~1.7M.
    assert!((150..=250).contains(&h[0]), "{h:?}");
}

/// A loopback port whose listen queue is full, so that a connect there
/// hangs (its SYN is dropped), with what keeps it full.
fn hanging_port() -> (std::net::TcpListener, Vec<std::net::TcpStream>, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let mut held = Vec::new();
    for _ in 0..1000 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(s) => held.push(s),
            Err(_) => return (l, held, addr.port()),
        }
    }
    panic!("the listen queue of {addr} never filled");
}

/// `tcp.connectTimeout` bounds the connect: a backend that never accepts
/// gets 503 `UF` after 300 ms, not the gateway's default 5 s.
#[test]
fn connect_timeout_bounds_the_connect() {
    let w = Walkthrough::new();
    let (_listener, _held, port) = hanging_port();
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: reviews
spec:
  hosts: [reviews.default.svc.cluster.local]
  ports:
  - {{number: 9080, name: http, protocol: HTTP}}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports: {{http: {port}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp:
        connectTimeout: 300ms
        tcpKeepalive: {{time: 60s, interval: 10s, probes: 3}}
      http:
        idleTimeout: 30s
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: frontend
spec:
  hosts:
  - frontend.foocorp.com
  gateways:
  - foocorp-gateway
  http:
{ALL_TO_REVIEWS}"
    );
    let gw = start(&w, &yaml);
    let t = Instant::now();
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/")
        .run();
    let took = t.elapsed();
    out.assert_status(503);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    assert_eq!(access(&gw, 1)[0]["response_flags"], "UF");
}

/// `maxRequestsPerConnection: 1` closes each upstream connection after its
/// request: none stays open in the pool, where without it one does
/// (`gatehouse_upstream_connections_active`).
#[test]
fn max_requests_per_connection_closes_spent_connections() {
    for (policy, pooled) in [
        (
            "  trafficPolicy:\n    connectionPool:\n      http: {maxRequestsPerConnection: 1}",
            0.0,
        ),
        ("  trafficPolicy: {}", 1.0),
    ] {
        let w = Walkthrough::new();
        let b = Backend::start("v1");
        let gw = start(&w, &reviews(&[&b], policy, ALL_TO_REVIEWS));
        repeat(&w, &gw, 5);
        assert_eq!(b.hits(), 5);
        let open = support::poll("the pool to settle", support::START_TIMEOUT, || {
            metric(&gw, "gatehouse_upstream_connections_active ").filter(|n| *n == pooled)
        });
        assert_eq!(open, pooled, "{policy}");
    }
}

/// Istio's TCP traffic task's Gateway and VirtualService, with a
/// DestinationRule of one connection at most.
const TCP_LIMITED: &str = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: tcp-echo-gateway
spec:
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
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 500ms}
";

/// A line through the gateway, or `None` when it closed instead.
fn echo_line(s: &std::net::TcpStream, text: &str) -> Option<String> {
    use std::io::{BufRead, BufReader, Write};
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    (&*s).write_all(format!("{text}\n").as_bytes()).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    (!line.is_empty()).then_some(line)
}

/// A `tcp[]` route's cluster with `maxConnections: 1`: while one
/// connection is open, a second waits its `connectTimeout` for room, then
/// is closed with `UO`; once the first closes, a new one goes through.
#[test]
fn max_connections_bounds_a_tcp_route() {
    use std::net::TcpStream;

    use crate::traffic_passthrough::{echo_backend, service_entry};

    let site = support::Site::new();
    let echo = echo_backend();
    let se = service_entry(
        "tcp-echo",
        "tcp-echo.default.svc.cluster.local",
        9000,
        "TCP",
        echo.port,
    );
    site.apply("se.yaml", &se);
    let out = site.apply("tcp.yaml", TCP_LIMITED);
    assert_eq!(out.stderr, "", "apply warned");
    let gw = site.start_gateway_with(&[31400], &["--log-format", "json"]);
    let port = gw.port(31400);
    let first = support::poll("the first connection", support::START_TIMEOUT, || {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        echo_line(&s, "one").map(|_| s)
    });
    let second = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let t = Instant::now();
    assert_eq!(
        echo_line(&second, "two"),
        None,
        "a second connection got through"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t.elapsed()
    );
    let uo = support::poll("the UO line", support::START_TIMEOUT, || {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["target"] == "access" && v["fields"]["response_flags"] == "UO")
    });
    assert_eq!(uo["fields"]["message"], "connection", "{uo}");
    drop(first);
    let third = support::poll("room again", support::START_TIMEOUT, || {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        echo_line(&s, "three")
    });
    assert_eq!(third, "echo: three\n");
}

/// `tcp.idleTimeout` on a `tcp[]` route's cluster: a connection quiet for
/// longer is closed (flag `SI`), where `--idle-timeout` is an hour.
#[test]
fn tcp_idle_timeout_closes_a_quiet_tcp_connection() {
    use std::io::Read;
    use std::net::TcpStream;

    use crate::traffic_passthrough::{echo_backend, service_entry};

    let site = support::Site::new();
    let echo = echo_backend();
    let se = service_entry(
        "tcp-echo",
        "tcp-echo.default.svc.cluster.local",
        9000,
        "TCP",
        echo.port,
    );
    site.apply("se.yaml", &se);
    let yaml = TCP_LIMITED.replace(
        "{maxConnections: 1, connectTimeout: 500ms}",
        "{idleTimeout: 400ms}",
    );
    let out = site.apply("tcp.yaml", &yaml);
    // Said to apply to TCP routes only, not silently taken.
    assert!(out.stderr.contains("tcp.idleTimeout"), "{}", out.stderr);
    let gw = site.start_gateway_with(&[31400], &["--log-format", "json"]);
    let port = gw.port(31400);
    let s = support::poll("a connection", support::START_TIMEOUT, || {
        let s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        echo_line(&s, "hello").map(|_| s)
    });
    let quiet = Instant::now();
    let mut rest = Vec::new();
    (&s).read_to_end(&mut rest).unwrap();
    let closed_after = quiet.elapsed();
    assert!(rest.is_empty(), "{rest:?}");
    assert!(
        closed_after >= Duration::from_millis(300) && closed_after < Duration::from_secs(4),
        "{closed_after:?}"
    );
    let si = support::poll("the SI line", support::START_TIMEOUT, || {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["target"] == "access" && v["fields"]["response_flags"] == "SI")
    });
    assert_eq!(si["fields"]["message"], "connection", "{si}");
}
