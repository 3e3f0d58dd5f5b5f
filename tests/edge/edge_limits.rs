//! Request limits on HTTP/1.1 and HTTP/2: the header section's size and
//! count (431), the body (`--max-request-body`, 413), header names with
//! `_` (`--headers-with-underscores`), stalled bodies and readers
//! (`--stream-idle-timeout`), and `Upgrade: h2c`. Each case asserts what
//! the client sees and what the backend received.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::h2py::{self, H2Request};
use crate::raw;
use crate::support::{
    Backend, FRONTEND, FRONTEND_BODY, INVENTORY_BODY, Walkthrough, frontend_vs_with, to_inventory,
};

const HOST: &str = "Host: frontend.foocorp.com\r\n";

/// `n` header fields `x-hI: v`.
fn fields(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("x-h{i}"), "v".to_owned()))
        .collect()
}

/// One request over raw TLS: exactly one status, one of `want`, and the
/// connection closed.
#[track_caller]
fn assert_one_status_closed(name: &str, got: &raw::Raw, want: &[u16]) {
    let statuses = got.statuses();
    assert!(
        statuses.len() == 1 && want.contains(&statuses[0]) && got.closed,
        "{name}: statuses {statuses:?} (want one of {want:?}), closed {}\n{}",
        got.closed,
        got.text.chars().take(600).collect::<String>()
    );
}

#[test]
fn oversized_or_overfull_http1_heads_are_431_closed_and_never_forwarded() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let big = "a".repeat(70 * 1024);
    let many: String = (0..100).map(|i| format!("X-H{i}: v\r\n")).collect();
    let wide: String = (0..90)
        .map(|i| format!("X-W{i}: {}\r\n", "b".repeat(700)))
        .collect();
    let huge = "a".repeat(200 * 1024);
    let cases: [(&str, String, &[u16]); 5] = [
        // Far past the read buffer: hyper's own 431, before the head
        // ends.
        (
            "a 200 KB header line",
            format!("GET / HTTP/1.1\r\n{HOST}X-Huge: {huge}\r\n\r\n"),
            &[431],
        ),
        (
            "a 70 KB header line",
            format!("GET / HTTP/1.1\r\n{HOST}X-Big: {big}\r\n\r\n"),
            &[431],
        ),
        (
            "a 70 KB request target",
            format!("GET /?q={big} HTTP/1.1\r\n{HOST}\r\n"),
            &[414, 431],
        ),
        (
            "101 header fields",
            format!("GET / HTTP/1.1\r\n{HOST}{many}\r\n"),
            &[431],
        ),
        (
            "90 fields of 700 bytes (63 KB)",
            format!("GET / HTTP/1.1\r\n{HOST}{wide}\r\n"),
            &[431],
        ),
    ];
    for (name, bytes, want) in &cases {
        let got = raw::send(&w, port, FRONTEND, bytes.as_bytes());
        assert_one_status_closed(name, &got, want);
        assert_eq!(w.backend_hits(), 0, "{name} reached a backend");
    }
    // Under the limits (90 fields, a 50 KB line) the same client is
    // served. (Not 100: the gateway adds five headers of its own, and the
    // test backend, hyper with its defaults, takes at most 100.)
    let fifty = "c".repeat(50 * 1024);
    let fits: String = (0..88).map(|i| format!("X-H{i}: v\r\n")).collect();
    for rest in [format!("X-Big: {fifty}\r\n"), fits] {
        let bytes = format!("GET / HTTP/1.1\r\n{HOST}{rest}Connection: close\r\n\r\n");
        let got = raw::send(&w, port, FRONTEND, bytes.as_bytes());
        assert_eq!(
            got.statuses(),
            [200],
            "{} bytes of header fields: {}",
            rest.len(),
            &got.text[..got.text.len().min(300)]
        );
    }
    assert_eq!(w.frontend.hits(), 2);
}

#[test]
fn http2_header_blocks_over_the_size_or_count_limit_are_431_and_never_forwarded() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    // 150 small fields: far under the size limit, over the count (today
    // forwarded: h2 has no count limit of its own).
    let many = h2py::send(
        &w,
        port,
        FRONTEND,
        &H2Request {
            headers: fields(150),
            ..H2Request::default()
        },
    );
    assert_eq!(many.status, Some(431), "{many:?}");
    // Only the stream is refused: no GOAWAY, the connection stays open.
    assert!(many.goaway.is_none() && !many.closed, "{many:?}");
    // One 70 KB field: over SETTINGS_MAX_HEADER_LIST_SIZE (60 KiB).
    let big = h2py::send(
        &w,
        port,
        FRONTEND,
        &H2Request {
            headers: vec![("x-big".into(), "a".repeat(70 * 1024))],
            ..H2Request::default()
        },
    );
    assert!(
        big.status == Some(431) || big.reset.is_some(),
        "want 431 or a reset stream: {big:?}"
    );
    // curl over HTTP/2, as a user would.
    let mut curl = w.site.walkthrough_curl(FRONTEND, port).http2();
    for (n, v) in fields(150) {
        curl = curl.header(&format!("{n}: {v}"));
    }
    let out = curl.run();
    out.assert_status(431);
    assert_eq!(out.http_version, "2");
    assert_eq!(w.backend_hits(), 0, "an over-limit request was forwarded");
    // 90 fields are served.
    let ok = h2py::send(
        &w,
        port,
        FRONTEND,
        &H2Request {
            headers: fields(90),
            ..H2Request::default()
        },
    );
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (Some(200), format!("{FRONTEND_BODY}\n").as_str())
    );
    assert_eq!(w.frontend.hits(), 1);
}

/// A walkthrough whose frontend backend answers after `delay` (so a
/// request still sending its body has no response yet).
fn walkthrough_with_slow_frontend(delay: Duration) -> (Walkthrough, Backend) {
    let w = Walkthrough::new();
    let slow = Backend::slow(FRONTEND_BODY, delay);
    w.site
        .apply_service_entries(slow.port(), w.inventory.port());
    (w, slow)
}

#[test]
fn request_bodies_over_max_request_body_are_413() {
    let (w, slow) = walkthrough_with_slow_frontend(Duration::from_secs(2));
    let gw = w
        .site
        .start_gateway_with(&[443], &["--max-request-body", "1K"]);
    let port = gw.port(443);
    let x2000 = "x".repeat(2000);
    // A declared length over the limit: refused before anything is read.
    let cl = format!("POST / HTTP/1.1\r\n{HOST}Content-Length: 2000\r\n\r\n{x2000}");
    assert_one_status_closed(
        "Content-Length 2000",
        &raw::send(&w, port, FRONTEND, cl.as_bytes()),
        &[413],
    );
    // A chunked body whose first chunk is over: read before forwarding.
    let chunked = format!(
        "POST / HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\n7d0\r\n{x2000}\r\n0\r\n\r\n"
    );
    assert_one_status_closed(
        "a first chunk of 2000",
        &raw::send(&w, port, FRONTEND, chunked.as_bytes()),
        &[413],
    );
    // HTTP/2 with a length (curl sends content-length with --data).
    let out = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .http2()
        .arg("--data")
        .arg(&x2000)
        .run();
    out.assert_status(413);
    assert_eq!(slow.hits(), 0, "an over-limit body was forwarded");

    // Bodies that grow over the limit as they stream: the upstream request
    // is aborted mid-body (the backend saw its head, never a whole body)
    // and the client gets 413, its HTTP/1 connection closed.
    let mut tls = raw::connect(&w, port, FRONTEND);
    let first = format!(
        "POST / HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\n1f4\r\n{}\r\n",
        "x".repeat(500)
    );
    tls.write_all(first.as_bytes()).unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    tls.write_all(format!("3e8\r\n{}\r\n0\r\n\r\n", "x".repeat(1000)).as_bytes())
        .unwrap();
    tls.flush().unwrap();
    let (got, closed) = raw::read_to_close(&mut tls, Duration::from_secs(10));
    let got = String::from_utf8_lossy(&got);
    assert!(
        got.starts_with("HTTP/1.1 413") && closed,
        "closed {closed}: {got}"
    );
    // HTTP/2 without a length: DATA over the limit.
    let h2 = h2py::send(
        &w,
        port,
        FRONTEND,
        &H2Request {
            method: "POST",
            body: vec![500, 1000],
            pause: Duration::from_millis(300),
            ..H2Request::default()
        },
    );
    assert!(
        h2.status == Some(413) || h2.reset.is_some(),
        "want 413 or a reset stream: {h2:?}"
    );
    // At the limit exactly: served.
    let at = format!(
        "POST / HTTP/1.1\r\n{HOST}Content-Length: 1024\r\nConnection: close\r\n\r\n{}",
        "x".repeat(1024)
    );
    assert_eq!(
        raw::send(&w, port, FRONTEND, at.as_bytes()).statuses(),
        [200]
    );
}

/// The frontend's VirtualService with a first route, chosen by a header
/// whose name holds `_`, to the inventory backend: a dropped header must
/// not steer routing.
fn underscore_vs() -> String {
    frontend_vs_with(&to_inventory(
        "    - headers:
        x_team:
          exact: \"ops\"
",
    ))
}

#[test]
fn headers_with_underscores_are_rejected_dropped_or_allowed_as_configured() {
    let w = Walkthrough::new();
    w.site.apply("underscore-vs.yaml", &underscore_vs());
    let reject = w.start();
    let drop = w
        .site
        .start_gateway_with(&[443], &["--headers-with-underscores", "drop"]);
    let allow = w
        .site
        .start_gateway_with(&[443], &["--headers-with-underscores", "allow"]);
    let curl = |gw: &crate::support::Gateway, http2: bool| {
        w.site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .http2_if(http2)
            .header("x_team: ops")
            .run()
    };
    for http2 in [false, true] {
        curl(&reject, http2).assert_status(400);
        assert_eq!(
            w.backend_hits(),
            0,
            "rejected, yet forwarded (http2 {http2})"
        );
    }
    for http2 in [false, true] {
        // Dropped before routing: the steering route does not match and
        // the frontend never sees the header.
        curl(&drop, http2).assert_body(FRONTEND_BODY);
        let seen = w.frontend.last();
        assert!(seen.all("x_team").is_empty(), "{seen:?}");
        assert_eq!(w.inventory.hits(), 0, "a dropped header steered routing");
    }
    for http2 in [false, true] {
        curl(&allow, http2).assert_body(INVENTORY_BODY);
        assert_eq!(w.inventory.last().one("x_team"), "ops");
    }
    assert_eq!(w.frontend.hits(), 2);
    assert_eq!(w.inventory.hits(), 2);
}

#[test]
fn stalled_request_bodies_get_408_and_the_connection_closes() {
    let (w, slow) = walkthrough_with_slow_frontend(Duration::from_secs(10));
    let gw = w
        .site
        .start_gateway_with(&[443], &["--stream-idle-timeout", "1s"]);
    let port = gw.port(443);
    // Slow POST: 10 of 100 declared bytes, then nothing.
    let start = Instant::now();
    let bytes = format!("POST / HTTP/1.1\r\n{HOST}Content-Length: 100\r\n\r\n0123456789");
    let got = raw::send(&w, port, FRONTEND, bytes.as_bytes());
    assert_one_status_closed("a stalled HTTP/1.1 body", &got, &[408]);
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "{:?}",
        start.elapsed()
    );
    // The backend saw the head, and the upstream request was aborted: the
    // client's 408 came from the gateway, 9 s before the backend answers.
    assert_eq!(slow.hits(), 1);
    // A chunked body that stalls before its first chunk: never forwarded.
    let bytes = format!("POST / HTTP/1.1\r\n{HOST}Transfer-Encoding: chunked\r\n\r\n");
    let got = raw::send(&w, port, FRONTEND, bytes.as_bytes());
    assert_one_status_closed("a stalled chunked body", &got, &[408]);
    assert_eq!(slow.hits(), 1);
    // The same over HTTP/2: 408 or the stream reset.
    let h2 = h2py::send(
        &w,
        port,
        FRONTEND,
        &H2Request {
            method: "POST",
            body: vec![10],
            end: false,
            ..H2Request::default()
        },
    );
    assert!(
        h2.status == Some(408) || h2.reset.is_some(),
        "want 408 or a reset stream: {h2:?}"
    );
    assert_eq!(slow.hits(), 2);
}

#[test]
fn a_client_that_stops_reading_is_disconnected_after_the_stream_idle_timeout() {
    let w = Walkthrough::new();
    // Far more than the kernel's socket buffers hold on loopback.
    let size = 32 << 20;
    let big = Backend::start(&"x".repeat(size));
    w.site.apply_service_entries(big.port(), w.inventory.port());
    let gw = w
        .site
        .start_gateway_with(&[443], &["--stream-idle-timeout", "1s"]);
    let port = gw.port(443);
    let mut tls = raw::connect(&w, port, FRONTEND);
    tls.write_all(format!("GET / HTTP/1.1\r\n{HOST}\r\n").as_bytes())
        .unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let (got, closed) = raw::read_to_close(&mut tls, Duration::from_secs(20));
    assert!(
        closed,
        "the connection of a client that stopped reading stayed open"
    );
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &got[..got.len().min(200)]
    );
    assert!(
        got.len() < size,
        "all {} bytes arrived: nothing was cut",
        got.len()
    );
    // A client that reads gets it all.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .arg("-o")
        .arg("/dev/null")
        .run()
        .assert_status(200);
}

#[test]
fn upgrade_h2c_is_never_honoured_nor_passed_to_a_backend() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let settings = "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA";
    let out = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .http1_1()
        .header("Upgrade: h2c")
        .header(settings)
        .header("Connection: Upgrade, HTTP2-Settings")
        .run();
    out.assert_body(FRONTEND_BODY);
    assert_eq!(out.http_version, "1.1");
    // Without the Connection line that names them, as a smuggler sends it.
    let raw_upgrade =
        format!("GET / HTTP/1.1\r\n{HOST}Upgrade: h2c\r\n{settings}\r\nConnection: close\r\n\r\n");
    let got = raw::send(&w, port, FRONTEND, raw_upgrade.as_bytes());
    assert_eq!(got.statuses(), [200], "{}", got.text);
    for seen in w.frontend.requests() {
        for name in ["upgrade", "http2-settings", "connection"] {
            assert!(
                seen.all(name).is_empty(),
                "{name} reached the backend: {seen:?}"
            );
        }
    }
    assert_eq!(w.frontend.hits(), 2);
}

/// HTTP/2 only by ALPN: a client that negotiated `http/1.1` (and so is
/// watched byte by byte as HTTP/1) and then sends the HTTP/2 connection
/// preface gets no HTTP/2 (no SETTINGS frame back), and nothing reaches a
/// backend. The preface with a GET after it, in HTTP/2 frames: a SETTINGS
/// frame, then a HEADERS frame would follow; the preface alone suffices.
#[test]
fn an_http2_preface_without_alpn_h2_is_not_served_as_http2() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS
    let got = raw::send(&w, port, FRONTEND, &bytes);
    // A server speaking HTTP/2 would answer with its own SETTINGS frame:
    // 3 length bytes, then type 4. An HTTP/1.1 server answers 4xx/5xx
    // text or closes.
    let head = got.text.as_bytes();
    assert!(
        head.is_empty() || head.starts_with(b"HTTP/1.1 "),
        "answered as HTTP/2: {:?}",
        got.text
    );
    assert!(got.closed, "the connection stayed open: {:?}", got.text);
    assert_eq!(w.backend_hits(), 0);
}

/// The other way round: a client that negotiated `h2` and then speaks
/// HTTP/1.1 (which would skip the HTTP/1 byte watch) is closed, and a
/// request that would be refused anyway (Content-Length with
/// Transfer-Encoding) reaches no backend.
#[test]
fn http1_on_a_connection_that_negotiated_h2_is_closed() {
    let w = Walkthrough::new();
    let gw = w.start();
    let bytes = format!(
        "POST / HTTP/1.1\r\n{HOST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    );
    let got = raw::send_alpn(&w, gw.port(443), FRONTEND, b"h2", bytes.as_bytes());
    assert!(got.closed, "the connection stayed open: {:?}", got.text);
    assert!(got.statuses().is_empty(), "answered: {:?}", got.text);
    assert_eq!(w.backend_hits(), 0);
}

#[test]
fn limit_flags_out_of_range_are_usage_errors_naming_the_flag() {
    let site = crate::support::Site::new();
    for (flag, value) in [
        ("--max-request-body", "2T"),
        ("--max-request-body", "1.5M"),
        ("--max-request-body", "lots"),
        ("--headers-with-underscores", "maybe"),
        ("--stream-idle-timeout", "0s"),
        ("--stream-idle-timeout", "25h"),
    ] {
        site.assert_run_refuses(flag, value);
    }
}
