//! VirtualService `retries`, through the walkthrough with curl: a backend
//! that fails its first requests (503, a reset connection, a slow answer)
//! is retried as `attempts`, `retryOn` and `perTryTimeout` say; when the
//! retries run out the client gets the last answer with `URX` in the
//! access log; a connection refused by one endpoint is retried on the
//! other; a body that streams (over 64 KiB, or chunked) is sent once; the
//! route's timeout bounds every attempt together; and an unknown `retryOn`
//! condition is refused at `apply` with the field named.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    self, Backend, CurlOut, FRONTEND, FRONTEND_BODY, Failing, Gateway, Walkthrough,
    frontend_vs_with, service_entry,
};

/// The walkthrough with one route in front of frontend's `/`: `/retry`
/// goes to `retry.example.com` with `retries` (the YAML of its value).
fn world(backend: &Backend, retries: &str, timeout: Option<&str>) -> Walkthrough {
    let w = Walkthrough::new();
    let timeout = timeout.map_or(String::new(), |t| format!("    timeout: {t}\n"));
    let routes = format!(
        "  - match:
    - uri:
        prefix: /retry
{timeout}    retries: {retries}
    route:
    - destination:
        host: retry.example.com
        port:
          number: 80
"
    );
    w.site.apply("traffic/vs.yaml", &frontend_vs_with(&routes));
    w.site.apply(
        "traffic/se.yaml",
        &service_entry("retry", "retry.example.com", backend.port()),
    );
    w
}

fn start(w: &Walkthrough) -> Gateway {
    w.site.start_gateway_with(&[443], &["--log-format", "json"])
}

/// One request to the retrying route, with the walkthrough's curl.
fn retry_request(w: &Walkthrough, gw: &Gateway) -> CurlOut {
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/retry")
        .run()
}

/// The access lines' fields of requests for `path`, once `n` are written.
fn access(gw: &Gateway, path: &str, n: usize) -> Vec<Value> {
    support::poll("access lines", support::START_TIMEOUT, || {
        let lines: Vec<Value> = gw
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["target"] == "access" && v["fields"]["path"] == path)
            .map(|v| v["fields"].clone())
            .collect();
        (lines.len() >= n).then_some(lines)
    })
}

#[test]
fn three_attempts_outlast_two_failures() {
    for retry_on in ["retryOn: 5xx", "retryOn: gateway-error", "retryOn: \"503\""] {
        let backend = Backend::failing("third time lucky", 2, Failing::Status(503));
        let w = world(&backend, &format!("{{attempts: 3, {retry_on}}}"), None);
        let gw = start(&w);
        let out = retry_request(&w, &gw);
        out.assert_status(200);
        out.assert_body("third time lucky");
        assert_eq!(backend.hits(), 3, "{retry_on}");
        let line = &access(&gw, "/retry", 1)[0];
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["response_flags"], "-", "{line}");
    }
}

#[test]
fn the_admin_view_shows_the_policy() {
    let backend = Backend::start("unused");
    let w = world(
        &backend,
        "{attempts: 3, perTryTimeout: 2s, retryOn: \"gateway-error,409\"}",
        None,
    );
    let gw = start(&w);
    // The admin view catches up with the first compile on its own time.
    let policies = support::poll(
        "the retry policy in /config_dump",
        support::START_TIMEOUT,
        || {
            let dump = gw.config_dump();
            let found: Vec<Value> = crate::traffic_mirror::with_key(&dump, "retries")
                .into_iter()
                .map(|r| r["retries"].clone())
                .filter(|p| !p.is_null())
                .collect();
            (!found.is_empty()).then_some(found)
        },
    );
    assert_eq!(
        policies,
        [serde_json::json!({
            "attempts": 3,
            "per_try_timeout_ms": 2000,
            "retry_on": ["gateway-error", "retriable-status-codes"],
            "retriable_status_codes": [409],
        })]
    );
}

#[test]
fn istio_default_conditions_retry_a_503() {
    // No retryOn: Istio's default conditions, whose status codes are 503.
    let backend = Backend::failing("second time", 1, Failing::Status(503));
    let w = world(&backend, "{attempts: 2}", None);
    let gw = start(&w);
    let out = retry_request(&w, &gw);
    out.assert_body("second time");
    assert_eq!(backend.hits(), 2);
    // ... and not a 500, which those conditions do not name.
    let backend = Backend::failing("unused", 1, Failing::Status(500));
    let w = world(&backend, "{attempts: 2}", None);
    let gw = start(&w);
    let out = retry_request(&w, &gw);
    out.assert_status(500);
    assert_eq!(backend.hits(), 1);
}

#[test]
fn grpc_conditions_read_grpc_status() {
    for (status, retry_on, want_hits) in [
        (14, "unavailable", 2),
        (8, "resource-exhausted", 2),
        (13, "internal", 2),
        (4, "deadline-exceeded", 2),
        (1, "cancelled", 2),
        (13, "unavailable,cancelled", 1),
    ] {
        let backend = Backend::failing("ok", 1, Failing::Grpc(status));
        let w = world(
            &backend,
            &format!("{{attempts: 1, retryOn: \"{retry_on}\"}}"),
            None,
        );
        let gw = start(&w);
        let out = retry_request(&w, &gw);
        assert_eq!(
            backend.hits(),
            want_hits,
            "grpc-status {status} under {retry_on}"
        );
        let want_body = if want_hits == 2 { "ok\n" } else { "" };
        assert_eq!(
            (out.status, out.body.as_str()),
            (200, want_body),
            "{status}"
        );
    }
}

#[test]
fn a_retried_request_is_mirrored_once() {
    let backend = Backend::failing("after one 503", 1, Failing::Status(503));
    let shadow = Backend::start("shadow");
    let w = world(
        &backend,
        "{attempts: 2, retryOn: 5xx}\n    mirror: {host: shadow.example.com}",
        None,
    );
    w.site.apply(
        "traffic/shadow.yaml",
        &service_entry("shadow", "shadow.example.com", shadow.port()),
    );
    let gw = start(&w);
    retry_request(&w, &gw).assert_body("after one 503");
    assert_eq!(backend.hits(), 2);
    support::poll("the copy", Duration::from_secs(5), || {
        (shadow.hits() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(shadow.hits(), 1);
}

#[test]
fn one_attempt_against_two_failures_is_urx() {
    let backend = Backend::failing("too late", 2, Failing::Status(503));
    let w = world(&backend, "{attempts: 1, retryOn: 5xx}", None);
    let gw = start(&w);
    let out = retry_request(&w, &gw);
    // The backend's own last answer reaches the client.
    out.assert_status(503);
    assert_eq!(out.body, "failing with 503\n");
    assert_eq!(backend.hits(), 2);
    let line = &access(&gw, "/retry", 1)[0];
    assert_eq!(line["status"], 503, "{line}");
    assert_eq!(line["response_flags"], "URX", "{line}");
    // A condition that does not name 503 sends it back at once.
    let backend = Backend::failing("unused", 2, Failing::Status(503));
    let w = world(&backend, "{attempts: 3, retryOn: connect-failure}", None);
    let gw = start(&w);
    let out = retry_request(&w, &gw);
    out.assert_status(503);
    assert_eq!(backend.hits(), 1);
    assert_eq!(access(&gw, "/retry", 1)[0]["response_flags"], "-");
}

#[test]
fn a_reset_is_retried_under_reset_and_answered_uc_urx_when_it_lasts() {
    let backend = Backend::failing("after a reset", 1, Failing::Reset);
    let w = world(&backend, "{attempts: 2, retryOn: reset}", None);
    let gw = start(&w);
    let curl = || retry_request(&w, &gw);
    curl().assert_body("after a reset");
    assert_eq!(backend.hits(), 2);
    let backend = Backend::failing("unused", 5, Failing::Reset);
    let w = world(&backend, "{attempts: 2, retryOn: reset}", None);
    let gw = start(&w);
    let out = retry_request(&w, &gw);
    out.assert_status(503);
    assert_eq!(backend.hits(), 3);
    assert_eq!(access(&gw, "/retry", 1)[0]["response_flags"], "UC,URX");
}

/// A ServiceEntry with two endpoints for `retry.example.com`: a port
/// nobody listens on, then `live`.
fn two_endpoints(closed: u16, live: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: retry
  namespace: default
spec:
  hosts:
  - retry.example.com
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {closed}
  - address: 127.0.0.1
    ports:
      http: {live}
"
    )
}

#[test]
fn a_connect_failure_is_retried_on_the_other_endpoint() {
    let live = Backend::start("the live one");
    let closed = support::closed_port();
    for (retries, want_ok) in [
        ("{attempts: 1, retryOn: connect-failure}", 6),
        ("{attempts: 0}", 3),
    ] {
        let w = world(&live, retries, None);
        w.site
            .apply("traffic/se.yaml", &two_endpoints(closed, live.port()));
        let gw = start(&w);
        let statuses: Vec<u16> = (0..6).map(|_| retry_request(&w, &gw).status).collect();
        // Round robin: without retries every other request meets the
        // closed port (503 UF); with one retry each one ends on the live one.
        let ok = statuses.iter().filter(|s| **s == 200).count();
        assert_eq!(ok, want_ok, "{retries}: {statuses:?}");
        let lines = access(&gw, "/retry", 6);
        let live_addr = format!("127.0.0.1:{}", live.port());
        for l in &lines {
            if l["status"] == 200 {
                assert_eq!(l["upstream"], live_addr.as_str(), "{l}");
            } else {
                assert_eq!(l["response_flags"], "UF", "{l}");
            }
        }
    }
}

#[test]
fn a_streamed_body_is_never_retried() {
    let big = "x".repeat(100 * 1024);
    let small = "y".repeat(1024);
    for (body, chunked, want_hits, want_status) in [
        (&big, false, 1, 503),
        (&small, true, 1, 503),
        (&small, false, 3, 200),
    ] {
        let backend = Backend::failing("took the body", 2, Failing::Status(503));
        let w = world(&backend, "{attempts: 3, retryOn: 5xx}", None);
        w.site.write("body.txt", body);
        let gw = start(&w);
        let mut curl = w
            .site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .path("/retry")
            .arg("--data-binary")
            .arg("@body.txt")
            // curl's HTTP/2 reports the reset of an upload answered early
            // as a stream error in place of the answer.
            .http1_1();
        if chunked {
            curl = curl.header("Transfer-Encoding: chunked");
        }
        let out = curl.run();
        let what = format!("{} bytes, chunked {chunked}", body.len());
        assert_eq!(out.status, want_status, "{what}: {out:?}");
        assert_eq!(backend.hits(), want_hits, "{what}");
        if !chunked {
            // Each attempt carried the whole body.
            for seen in backend.requests() {
                assert_eq!(seen.one("content-length"), body.len().to_string());
            }
        }
    }
}

#[test]
fn per_try_timeout_bounds_each_attempt() {
    let backend = Backend::failing("fast enough", 1, Failing::Delay(Duration::from_secs(5)));
    let w = world(
        &backend,
        "{attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}",
        None,
    );
    let gw = start(&w);
    let started = Instant::now();
    let out = retry_request(&w, &gw);
    let took = started.elapsed();
    out.assert_body("fast enough");
    assert_eq!(backend.hits(), 2);
    assert!(took < Duration::from_secs(3), "{took:?}");
    // Every attempt slow: 504 with UT and URX after about 3 x 300 ms.
    let backend = Backend::failing("unused", 9, Failing::Delay(Duration::from_secs(5)));
    let w = world(
        &backend,
        "{attempts: 2, perTryTimeout: 300ms, retryOn: 5xx}",
        None,
    );
    let gw = start(&w);
    let started = Instant::now();
    let out = retry_request(&w, &gw);
    let took = started.elapsed();
    out.assert_status(504);
    assert_eq!(backend.hits(), 3);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(access(&gw, "/retry", 1)[0]["response_flags"], "UT,URX");
}

#[test]
fn the_route_timeout_bounds_all_attempts() {
    let backend = Backend::failing("unused", 9, Failing::Delay(Duration::from_secs(5)));
    let w = world(
        &backend,
        "{attempts: 5, perTryTimeout: 400ms, retryOn: 5xx}",
        Some("1s"),
    );
    let gw = start(&w);
    let started = Instant::now();
    let out = retry_request(&w, &gw);
    let took = started.elapsed();
    out.assert_status(504);
    // 400 ms, a back-off, 400 ms, then the second's last 200 ms or so.
    assert!((2..=3).contains(&backend.hits()), "{}", backend.hits());
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(access(&gw, "/retry", 1)[0]["response_flags"], "UT");
    // The walkthrough's own route is untouched.
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn an_unknown_condition_is_refused_at_apply() {
    let backend = Backend::start("unused");
    let w = world(&backend, "{attempts: 2}", None);
    let bad = frontend_vs_with(
        "  - match:
    - uri:
        prefix: /retry
    retries: {attempts: 2, retryOn: \"5xx,connect-faliure\"}
    route:
    - destination:
        host: retry.example.com
",
    );
    w.site.write("bad.yaml", &bad);
    let before = w.site.snapshot();
    let out = w.site.cli(&["apply", "-f", "bad.yaml"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let err = out.one_error();
    assert!(
        err.contains("spec.http[0].retries.retryOn")
            && err.contains("\"connect-faliure\" is not a retry policy"),
        "{err}"
    );
    assert_eq!(w.site.snapshot(), before);
}
