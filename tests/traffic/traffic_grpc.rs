//! gRPC end to end and HTTP/2 to backends: tonic's client over the
//! walkthrough's mutual TLS (ALPN h2) to `gatehouse run`, which speaks
//! h2c (HTTP/2 with prior knowledge) to a tonic backend on a ServiceEntry
//! port of protocol `GRPC`. Unary and the three streaming kinds pass with
//! their trailers; the backend's statuses pass as they are; the gateway's
//! own answers are gRPC statuses (UNIMPLEMENTED for no route, UNAVAILABLE
//! for a backend that is down, DEADLINE_EXCEEDED when `grpc-timeout`
//! passes), never a bare HTTP error; `retryOn: unavailable` retries; and
//! HTTP/2 to a backend is chosen by the port's protocol `HTTP2`,
//! `h2UpgradePolicy: UPGRADE` or `useClientProtocol`.

use std::time::{Duration, Instant};

use tonic::Code;

use crate::support::grpc::{GrpcBackend, GrpcClient};
use crate::support::{self, FRONTEND, Gateway, Walkthrough, frontend_vs_with};

/// The gRPC service's host, as a ServiceEntry names it.
const GRPC_HOST: &str = "grpc.example.com";

/// A STATIC ServiceEntry: `host` port 50051 (`protocol`) goes to
/// `127.0.0.1:port`.
fn service_entry(host: &str, protocol: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1beta1
kind: ServiceEntry
metadata:
  name: grpc-echo
  namespace: default
spec:
  hosts:
  - {host}
  ports:
  - number: 50051
    name: grpc
    protocol: {protocol}
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      grpc: {port}
"
    )
}

/// A route in front of the frontend's own: `prefix` goes to
/// `grpc.example.com:50051`, with `extra` (lines of the route, indented
/// by four) before its destination.
fn grpc_route(prefix: &str, extra: &str) -> String {
    format!(
        "  - match:
    - uri:
        prefix: {prefix}
{extra}    route:
    - destination:
        host: {GRPC_HOST}
        port:
          number: 50051
"
    )
}

/// The walkthrough with `routes` in front of the frontend's `/`, and the
/// gRPC ServiceEntry (port `protocol`) pointing at `port`.
fn world(routes: &str, protocol: &str, port: u16) -> Walkthrough {
    let w = Walkthrough::new();
    w.site.apply("grpc/vs.yaml", &frontend_vs_with(routes));
    w.site
        .apply("grpc/se.yaml", &service_entry(GRPC_HOST, protocol, port));
    w
}

fn start(w: &Walkthrough) -> Gateway {
    w.site.start_gateway_with(&[443], &["--log-format", "json"])
}

/// The walkthrough's client certificate in tonic's gRPC client.
fn client(w: &Walkthrough, gw: &Gateway) -> GrpcClient {
    let pki = w.site.pki(FRONTEND);
    let read = |p: &std::path::Path| std::fs::read(w.site.path(p)).unwrap();
    GrpcClient::new(
        FRONTEND,
        gw.port(443),
        &read(&pki.ca_chain),
        &read(&pki.client_cert),
        &read(&pki.client_key),
    )
}

/// The walkthrough with the `test.Echo` route to `backend`.
fn echo_world(backend: &GrpcBackend) -> Walkthrough {
    world(&grpc_route("/test.Echo/", ""), "GRPC", backend.port())
}

#[test]
fn unary_call_reaches_the_backend_over_h2c() {
    let backend = GrpcBackend::start();
    let w = echo_world(&backend);
    let gw = start(&w);
    let c = client(&w, &gw);
    // tonic fails a call whose trailers lack grpc-status: an OK answer
    // shows the trailers came through.
    let r = c.unary("Say", "world", None).unwrap();
    assert_eq!(r.get_ref().text, "hello world");
    let heard = backend.heard();
    assert_eq!(heard.len(), 1, "{heard:?}");
    let h = &heard[0];
    assert_eq!(h.version, http::Version::HTTP_2);
    assert_eq!(h.path, "/test.Echo/Say");
    // The client's authority is the :authority, and no Host header
    // differs from it (RFC 9113 §8.3.1).
    let authority = format!("{FRONTEND}:{}", gw.port(443));
    assert_eq!(h.authority.as_deref(), Some(authority.as_str()));
    assert_eq!(h.header("host"), None, "{h:?}");
    assert_eq!(h.header("te"), Some("trailers"), "{h:?}");
    assert_eq!(h.header("content-type"), Some("application/grpc"));
    assert!(h.header("x-forwarded-client-cert").is_some(), "{h:?}");
}

/// A backend that closes its HTTP/2 connection after each answer: the
/// gateway connects again for the next call, and no call fails.
#[test]
fn h2c_connections_are_made_again_when_the_backend_closes_them() {
    let backend = GrpcBackend::one_request_per_connection();
    let w = echo_world(&backend);
    let gw = start(&w);
    let c = client(&w, &gw);
    for i in 0..5 {
        let r = c.unary("Say", &i.to_string(), None).unwrap();
        assert_eq!(r.get_ref().text, format!("hello {i}"));
        // The next call goes out once the backend's goodbye has arrived,
        // or on the connection it closes (sent again on a new one).
    }
    assert_eq!(backend.heard().len(), 5);
    assert!(backend.connections() >= 2, "{}", backend.connections());
}

#[test]
fn server_streaming_passes_messages_and_trailers() {
    let backend = GrpcBackend::start();
    let w = echo_world(&backend);
    let gw = start(&w);
    let c = client(&w, &gw);
    let (got, end) = c.count("3");
    assert_eq!(got, ["1", "2", "3"]);
    assert!(end.is_ok(), "{end:?}");
    // A stream that ends in an error: its status, message and custom
    // metadata come in the real trailers, after the messages.
    let (got, end) = c.count("2!");
    assert_eq!(got, ["1", "2"]);
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    assert_eq!(status.message(), "stream broke");
    assert_eq!(
        status
            .metadata()
            .get("x-detail")
            .map(|v| v.to_str().unwrap()),
        Some("custom")
    );
}

#[test]
fn client_streaming_and_bidi_streaming_pass() {
    let backend = GrpcBackend::start();
    let w = echo_world(&backend);
    let gw = start(&w);
    let c = client(&w, &gw);
    assert_eq!(c.join(&["a", "b", "c"]).unwrap(), "a,b,c");
    // Each message is sent only once the answer to the one before came
    // back through the gateway: both directions stream at once.
    assert_eq!(
        c.chat(&["one", "two", "three"]).unwrap(),
        ["echo: one", "echo: two", "echo: three"]
    );
}

#[test]
fn the_backends_error_status_passes_with_its_message() {
    let backend = GrpcBackend::start();
    let w = echo_world(&backend);
    let gw = start(&w);
    let status = client(&w, &gw).unary("Say", "fail", None).unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert_eq!(status.message(), "out of stock");
    assert_eq!(
        status
            .metadata()
            .get("x-detail")
            .map(|v| v.to_str().unwrap()),
        Some("custom")
    );
}

#[test]
fn no_route_is_unimplemented_not_404() {
    let backend = GrpcBackend::start();
    let w = world(&grpc_route("/test.Other/", ""), "GRPC", backend.port());
    let gw = start(&w);
    // `/test.Echo/Say` matches no route (only `/test.Other/`, and `/`).
    let status = client(&w, &gw).unary("Say", "x", None).unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    // The gateway's own words: tonic would say "grpc-status header
    // missing, mapped from HTTP status code 404" for a bare 404.
    assert_eq!(status.message(), "no route");
    assert_eq!(backend.heard().len(), 0);
    // What is on the wire: HTTP 200, a trailers-only gRPC answer.
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/test.Echo/Say")
        .http2()
        .header("content-type: application/grpc")
        .header("te: trailers")
        .arg("--data-binary")
        .arg("")
        .run();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.headers["grpc-status"], ["12"], "{out:?}");
    assert_eq!(out.headers["grpc-message"], ["no route"], "{out:?}");
    assert_eq!(out.body, "");
    assert_eq!(out.headers["content-type"], ["application/grpc"]);
    // A gRPC-Web client (HTTP/1.1 here) is answered in its own type.
    let web = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/test.Echo/Say")
        .http1_1()
        .header("content-type: application/grpc-web+proto")
        .arg("--data-binary")
        .arg("")
        .run();
    assert_eq!(web.status, 200, "{web:?}");
    assert_eq!(web.headers["grpc-status"], ["12"], "{web:?}");
    assert_eq!(web.headers["content-type"], ["application/grpc-web+proto"]);
    // A request that is not gRPC still gets the plain 404.
    let plain = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/test.Echo/Say")
        .run();
    assert_eq!(plain.status, 404, "{plain:?}");
}

#[test]
fn a_backend_that_is_down_is_unavailable_not_503() {
    let w = world(
        &grpc_route("/test.Echo/", ""),
        "GRPC",
        support::closed_port(),
    );
    let gw = start(&w);
    let status = client(&w, &gw).unary("Say", "x", None).unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(
        status.message(),
        "upstream connect error or disconnect/reset before headers"
    );
    // The access log keeps Envoy's flag; the status is the one sent.
    let line = access_line(&gw, "/test.Echo/Say");
    assert_eq!(line["response_flags"], "UF", "{line}");
    assert_eq!(line["status"], 200, "{line}");
}

/// The access line of the first request for `path`.
fn access_line(gw: &Gateway, path: &str) -> serde_json::Value {
    support::poll("the access line", support::START_TIMEOUT, || {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["target"] == "access" && v["fields"]["path"] == path)
            .map(|v| v["fields"].clone())
    })
}

/// A gRPC request message as it goes on the wire: uncompressed, its
/// length, then `Msg { text }` in protobuf.
fn framed(text: &str) -> Vec<u8> {
    let mut m = vec![0x0a, u8::try_from(text.len()).unwrap()];
    m.extend_from_slice(text.as_bytes());
    let mut f = vec![0];
    f.extend_from_slice(&u32::try_from(m.len()).unwrap().to_be_bytes());
    f.extend_from_slice(&m);
    f
}

#[test]
fn grpc_timeout_bounds_the_call_with_deadline_exceeded() {
    let backend = GrpcBackend::start();
    let w = echo_world(&backend);
    let gw = start(&w);
    // With curl: tonic's client ends a call at its own `grpc-timeout`,
    // which would hide the gateway's answer.
    w.site.write("slow.bin", framed("5000"));
    let started = Instant::now();
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/test.Echo/Slow")
        .http2()
        .header("content-type: application/grpc")
        .header("te: trailers")
        .header("grpc-timeout: 300m")
        .arg("--data-binary")
        .arg("@slow.bin")
        .run();
    let took = started.elapsed();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.headers["grpc-status"], ["4"], "{out:?}");
    assert_eq!(out.headers["grpc-message"], ["upstream request timeout"]);
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(backend.heard()[0].header("grpc-timeout"), Some("300m"));
    // Within its deadline the call is answered (tonic's client).
    let c = client(&w, &gw);
    let r = c.unary("Slow", "50", Some(Duration::from_secs(5))).unwrap();
    assert_eq!(r.get_ref().text, "slept");
}

/// A stream that outlives its `grpc-timeout` after its headers came is
/// ended by the gateway with DEADLINE_EXCEEDED in its trailers (tonic's
/// client bounds only the wait for the headers).
#[test]
fn grpc_timeout_ends_a_stream_that_outlives_it() {
    let backend = GrpcBackend::start();
    let w = echo_world(&backend);
    let gw = start(&w);
    let c = client(&w, &gw);
    let started = Instant::now();
    // 30 messages 100 ms apart: 3 s; the deadline is 600 ms.
    let (got, end) = c.server_stream("Drip", "30", Some(Duration::from_millis(600)));
    let took = started.elapsed();
    let status = end.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(status.message(), "deadline exceeded");
    assert!(!got.is_empty() && got.len() < 30, "{got:?}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    // Without a grpc-timeout the same stream runs to its end.
    let (got, end) = c.server_stream("Drip", "5", None);
    assert_eq!(got.len(), 5);
    assert!(end.is_ok(), "{end:?}");
}

/// Istio's route timeout is off by default: a gRPC call without one (and
/// without `grpc-timeout`) is not cut at `--upstream-timeout`; an HTTP
/// request is.
#[test]
fn grpc_calls_are_not_cut_by_the_default_upstream_timeout() {
    let backend = GrpcBackend::start();
    let w = echo_world(&backend);
    let gw = w
        .site
        .start_gateway_with(&[443], &["--upstream-timeout", "300ms"]);
    let c = client(&w, &gw);
    let r = c.unary("Slow", "1000", None).unwrap();
    assert_eq!(r.get_ref().text, "slept");
    // The route's own timeout applies.
    let w2 = world(
        &grpc_route("/test.Echo/", "    timeout: 200ms\n"),
        "GRPC",
        backend.port(),
    );
    let gw2 = start(&w2);
    let status = client(&w2, &gw2).unary("Slow", "3000", None).unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}

#[test]
fn retry_on_unavailable_reads_the_grpc_status() {
    let backend = GrpcBackend::flaky(2);
    let w = world(
        &grpc_route(
            "/test.Echo/",
            "    retries: {attempts: 3, retryOn: unavailable}\n",
        ),
        "GRPC",
        backend.port(),
    );
    let gw = start(&w);
    let c = client(&w, &gw);
    let r = c.unary("Flaky", "x", None).unwrap();
    assert_eq!(r.get_ref().text, "ok");
    assert_eq!(backend.calls("/test.Echo/Flaky"), 3);
}

/// A gRPC body over 64 KiB is not kept for a retry: sent once, and the
/// backend's UNAVAILABLE reaches the client.
#[test]
fn a_large_grpc_body_is_sent_once() {
    let backend = GrpcBackend::flaky(1);
    let w = world(
        &grpc_route(
            "/test.Echo/",
            "    retries: {attempts: 3, retryOn: unavailable}\n",
        ),
        "GRPC",
        backend.port(),
    );
    let gw = start(&w);
    let big = "x".repeat(100 * 1024);
    let status = client(&w, &gw).unary("Flaky", &big, None).unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "not yet");
    assert_eq!(backend.calls("/test.Echo/Flaky"), 1);
}

#[test]
fn without_retries_the_backends_unavailable_passes() {
    let backend = GrpcBackend::flaky(1);
    let w = echo_world(&backend);
    let gw = start(&w);
    let status = client(&w, &gw).unary("Flaky", "x", None).unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "not yet");
    assert_eq!(backend.calls("/test.Echo/Flaky"), 1);
}

/// A plain HTTP request (HTTP/1.1 from curl) to a ServiceEntry port of
/// protocol HTTP2 reaches the (HTTP/2-only) backend as HTTP/2.
#[test]
fn an_http2_port_gets_http2_from_an_http1_client() {
    let backend = GrpcBackend::start();
    let w = world(&grpc_route("/plain", ""), "HTTP2", backend.port());
    let gw = start(&w);
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/plain")
        .http1_1()
        .run();
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.http_version, "1.1");
    assert_eq!(out.body, "plain over HTTP/2");
    // The admin view says which clusters speak h2c (it catches up with
    // the first compile on its own time).
    let grpc_cluster = format!("outbound|50051||{GRPC_HOST}");
    let frontend_cluster = format!("outbound|80||{}", support::FRONTEND_SERVICE);
    let h2c = support::poll(
        "the clusters in /config_dump",
        support::START_TIMEOUT,
        || {
            let dump = gw.config_dump();
            let of = |name: &str| {
                dump["clusters"]
                    .as_array()?
                    .iter()
                    .find(|c| c["name"] == name)
                    .map(|c| c["h2c"].clone())
            };
            Some((of(&grpc_cluster)?, of(&frontend_cluster)?))
        },
    );
    assert_eq!(h2c, (true.into(), false.into()));
    let h = &backend.heard()[0];
    assert_eq!(h.version, http::Version::HTTP_2);
    // curl's Host (the walkthrough's `-HHost:`) as the :authority.
    assert_eq!(h.authority.as_deref(), Some(FRONTEND));
    assert_eq!(h.header("host"), None, "{h:?}");
}

/// The same backend behind a port of protocol HTTP: HTTP/1.1 fails on
/// it, `h2UpgradePolicy: UPGRADE` makes it HTTP/2, and
/// `useClientProtocol` follows the client.
#[test]
fn destination_rule_chooses_http2() {
    let backend = GrpcBackend::start();
    let w = world(&grpc_route("/plain", ""), "HTTP", backend.port());
    let gw = start(&w);
    let get = |http2: bool| {
        w.site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .path("/plain")
            .http2_if(http2)
            .run()
    };
    // An HTTP/1.1 request to an HTTP/2-only backend: no answer.
    assert_eq!(get(false).status, 503);
    let rule = |http: &str| {
        format!(
            "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: grpc-echo
  namespace: default
spec:
  host: {GRPC_HOST}
  trafficPolicy:
    connectionPool:
      http: {http}
"
        )
    };
    let applied = w
        .site
        .apply("grpc/dr.yaml", &rule("{h2UpgradePolicy: UPGRADE}"));
    assert_eq!(applied.stderr, "", "no warning: {applied:?}");
    let out = support::poll("the upgrade applied", support::START_TIMEOUT, || {
        let out = get(false);
        (out.status == 200).then_some(out)
    });
    assert_eq!(out.body, "plain over HTTP/2");
    let applied = w
        .site
        .apply("grpc/dr.yaml", &rule("{useClientProtocol: true}"));
    assert_eq!(applied.stderr, "", "no warning: {applied:?}");
    support::poll("useClientProtocol applied", support::START_TIMEOUT, || {
        (get(false).status == 503).then_some(())
    });
    let out = get(true);
    assert_eq!(out.status, 200, "{out:?}");
    assert_eq!(out.body, "plain over HTTP/2");
}

/// Istio's gRPC ingress as istio.io writes it: a Gateway, a VirtualService
/// routing by the service's path prefix, a ServiceEntry port of protocol
/// GRPC: it applies with no warning and serves tonic's calls.
#[test]
fn istio_grpc_ingress_example_applies_without_warnings() {
    let backend = GrpcBackend::start();
    let w = Walkthrough::new();
    let yaml = format!(
        "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: frontend
  namespace: default
spec:
  hosts:
  - \"{FRONTEND}\"
  gateways:
  - foocorp-gateway
  http:
  - match:
    - uri:
        prefix: /test.Echo
    route:
    - destination:
        host: {GRPC_HOST}
        port:
          number: 50051
---
{}",
        service_entry(GRPC_HOST, "GRPC", backend.port())
    );
    let out = w.site.apply("grpc/istio.yaml", &yaml);
    assert_eq!(out.stderr, "", "{out:?}");
    // (It replaces the walkthrough's frontend VirtualService.)
    let gw = start(&w);
    let c = client(&w, &gw);
    let r = support::poll("the gRPC route", support::START_TIMEOUT, || {
        c.unary("Say", "istio", None).ok()
    });
    assert_eq!(r.get_ref().text, "hello istio");
}

/// `$GRPCURL`, else `grpcurl` on the PATH, if it runs.
fn grpcurl() -> Option<String> {
    let program = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".to_owned());
    let out = support::command(&program).arg("-version").output().ok()?;
    out.status.success().then_some(program)
}

/// The `test.Echo` service as grpcurl reads it (it parses .proto files
/// itself: no protoc, no reflection service on the backend).
const ECHO_PROTO: &str = "syntax = \"proto3\";
package test;
message Msg { string text = 1; }
service Echo {
  rpc Say(Msg) returns (Msg);
  rpc Count(Msg) returns (stream Msg);
}
";

/// `grpcurl` with the walkthrough's client certificate: `method` of
/// `test.Echo` with `data`, through the gateway at `port`.
fn grpcurl_call(
    w: &Walkthrough,
    grpcurl: &str,
    port: u16,
    method: &str,
    data: &str,
) -> support::Out {
    w.site.write("echo.proto", ECHO_PROTO);
    let pki = w.site.pki(FRONTEND);
    let mut c = w.site.program(grpcurl);
    c.args(["-proto", "echo.proto", "-authority", FRONTEND])
        .args(["-servername", FRONTEND])
        .arg("-cacert")
        .arg(&pki.ca_chain)
        .arg("-cert")
        .arg(&pki.client_cert)
        .arg("-key")
        .arg(&pki.client_key)
        .args(["-d", data])
        .arg(format!("127.0.0.1:{port}"))
        .arg(format!("test.Echo/{method}"));
    support::run_bounded(c, support::COMMAND_TIMEOUT)
}

/// grpcurl, a client of another stack (Go's grpc), through the gateway:
/// a unary call, a server stream, and the gateway's UNIMPLEMENTED.
#[test]
fn grpcurl_calls_through_the_gateway() {
    let Some(grpcurl) = grpcurl() else {
        println!("skipped: no grpcurl (set GRPCURL or put grpcurl on the PATH)");
        return;
    };
    let backend = GrpcBackend::start();
    let w = echo_world(&backend);
    let gw = start(&w);
    let port = gw.port(443);
    let out = grpcurl_call(&w, &grpcurl, port, "Say", r#"{"text": "grpcurl"}"#);
    assert_eq!(out.code, Some(0), "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["text"], "hello grpcurl", "{out:?}");
    let out = grpcurl_call(&w, &grpcurl, port, "Count", r#"{"text": "2"}"#);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.matches("\"text\"").count(), 2, "{out:?}");
    // A method no route serves.
    let w2 = world(&grpc_route("/test.Other/", ""), "GRPC", backend.port());
    let gw2 = start(&w2);
    let out = grpcurl_call(&w2, &grpcurl, gw2.port(443), "Say", "{}");
    assert_ne!(out.code, Some(0), "{out:?}");
    assert!(out.stderr.contains("Code: Unimplemented"), "{out:?}");
    assert!(out.stderr.contains("Message: no route"), "{out:?}");
}

/// A mirror's copy goes over its own cluster's transport: a route to the
/// walkthrough's frontend (HTTP/1.1) mirrored to an HTTP2 port reaches
/// the HTTP/2-only backend as HTTP/2, `Host` suffixed `-shadow` as its
/// `:authority`.
#[test]
fn a_mirror_to_an_http2_port_speaks_http2() {
    let backend = GrpcBackend::start();
    let mirror = format!(
        "  - match:
    - uri:
        prefix: /plain
    route:
    - destination:
        host: {}
        port:
          number: 80
    mirror:
      host: {GRPC_HOST}
      port:
        number: 50051
",
        support::FRONTEND_SERVICE
    );
    let w = world(&mirror, "HTTP2", backend.port());
    let gw = start(&w);
    let out = w
        .site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .path("/plain")
        .run();
    assert_eq!(out.status, 200, "{out:?}");
    out.assert_body(support::FRONTEND_BODY);
    let heard = support::poll("the mirrored copy", support::START_TIMEOUT, || {
        backend.heard().into_iter().next()
    });
    assert_eq!(heard.version, http::Version::HTTP_2);
    assert_eq!(heard.path, "/plain");
    let shadow = format!("{FRONTEND}-shadow");
    assert_eq!(heard.authority.as_deref(), Some(shadow.as_str()));
}
