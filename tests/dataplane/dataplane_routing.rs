//! Requests after the handshake: a connection belongs to its server (421
//! for another server's host, 404 for nobody's, over HTTP/1.1 and HTTP/2),
//! config changes served without a restart, a plain-HTTP server that
//! redirects to https, and upstream failures as status codes (504 on a
//! route timeout, 503 when the backend refuses connections).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support;
use crate::support::{
    Backend, FRONTEND, FRONTEND_BODY, GATEWAY_YAML, INVENTORY, INVENTORY_BODY, START_TIMEOUT,
    Walkthrough, closed_port, frontend_vs_with, poll, service_entry, to_inventory,
};

/// How soon an applied change must be served.
const LIVE_WITHIN: Duration = Duration::from_secs(1);

#[test]
fn another_servers_host_is_misdirected_and_never_forwarded() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    // Frontend's SNI and client certificate, asking for inventory: over
    // HTTP/1.1 by Host, over HTTP/2 by :authority (curl sends -H Host as
    // :authority), in any case and with a port.
    for host in [
        INVENTORY,
        "INVENTORY.FooCorp.com",
        "inventory.foocorp.com:443",
    ] {
        let out = w
            .site
            .walkthrough_curl(FRONTEND, port)
            .host_header(host)
            .http1_1()
            .run();
        out.assert_status(421);
        assert_eq!(out.http_version, "1.1");
        let out = w
            .site
            .walkthrough_curl(FRONTEND, port)
            .host_header(host)
            .http2()
            .run();
        out.assert_status(421);
        assert_eq!(out.http_version, "2");
    }
    // And the other way round.
    w.site
        .walkthrough_curl(INVENTORY, port)
        .host_header(FRONTEND)
        .run()
        .assert_status(421);
    assert_eq!((w.frontend.hits(), w.inventory.hits()), (0, 0));

    // The same connection setup still reaches its own host.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    assert_eq!(w.inventory.hits(), 0);
}

#[test]
fn a_host_nobody_serves_is_not_found() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    for http2 in [false, true] {
        let curl = w
            .site
            .walkthrough_curl(FRONTEND, port)
            .host_header("nobody.foocorp.com");
        let out = curl.http2_if(http2).run();
        out.assert_status(404);
    }
    // A path no route matches (the walkthrough routes `exact: /` only).
    w.site
        .walkthrough_curl(FRONTEND, port)
        .path("/admin")
        .run()
        .assert_status(404);
    assert_eq!(w.backend_hits(), 0);
}

const MAINTENANCE_ROUTE: &str = "  - match:
    - uri:
        exact: /
    directResponse:
      status: 503
      body:
        string: down for maintenance
";

#[test]
fn virtual_service_changes_are_served_without_restart() {
    let w = Walkthrough::new();
    let mut gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .path("/api/stock")
        .run()
        .assert_status(404);

    // A second route, to the other backend.
    w.site.apply(
        "frontend-api.yaml",
        &frontend_vs_with(&to_inventory("    - uri:\n        prefix: /api\n")),
    );
    let applied = Instant::now();
    poll("the /api route to be served", LIVE_WITHIN, || {
        let out = w
            .site
            .walkthrough_curl(FRONTEND, port)
            .path("/api/stock")
            .run();
        (out.status == 200).then_some(out)
    })
    .assert_body(INVENTORY_BODY);
    eprintln!("route served {:?} after apply", applied.elapsed());
    assert_eq!(w.inventory.last().path, "/api/stock");
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);

    // A direct response in front of everything. (The polls that ran
    // before the change was live reached the backend: count from the
    // first direct response on.)
    w.site
        .apply("frontend-down.yaml", &frontend_vs_with(MAINTENANCE_ROUTE));
    poll("the direct response to be served", LIVE_WITHIN, || {
        let out = w.site.walkthrough_curl(FRONTEND, port).run();
        (out.status == 503).then_some(out)
    });
    let hits = w.backend_hits();
    let out = w.site.walkthrough_curl(FRONTEND, port).run();
    assert_eq!(out.status, 503, "{out:?}");
    assert_eq!(out.body, "down for maintenance", "{out:?}");
    assert_eq!(
        w.backend_hits(),
        hits,
        "a direct response reached a backend"
    );

    // Deleting the VirtualService removes its routes.
    w.site
        .cli(&["delete", "-n", "default", "virtualservice", "frontend"])
        .ok();
    poll("the deleted routes to be gone", LIVE_WITHIN, || {
        let out = w.site.walkthrough_curl(FRONTEND, port).run();
        (out.status == 404).then_some(())
    });
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);
    assert!(gw.running(), "the gateway restarted or died:\n{}", gw.log());
}

#[test]
fn service_entry_changes_are_served_without_restart() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let other = Backend::start("FooCorp - Public Site v2");
    w.site.apply(
        "frontend-v2.yaml",
        &service_entry("frontend", support::FRONTEND_SERVICE, other.port()),
    );
    poll("the new endpoint to be used", LIVE_WITHIN, || {
        let out = w.site.walkthrough_curl(FRONTEND, port).run();
        out.body.contains("v2").then_some(out)
    })
    .assert_body("FooCorp - Public Site v2");
}

#[test]
fn plain_http_server_redirects_to_https() {
    let w = Walkthrough::new();
    w.site.apply(
        "http-gateway.yaml",
        "apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: foocorp-http
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 80
      name: http
      protocol: HTTP
    hosts:
    - \"frontend.foocorp.com\"
    - \"inventory.foocorp.com\"
    tls:
      httpsRedirect: true
",
    );
    let gw = w.site.start_gateway(&[80, 443]);
    let http = gw.port(80);
    for (host, path) in [(FRONTEND, "/"), (INVENTORY, "/stock/items?sku=42")] {
        let out = w
            .site
            .curl(&format!("http://{host}:{http}{path}"))
            .resolve(host, http)
            .run();
        out.assert_status(301);
        assert_eq!(
            out.redirect_url.as_deref(),
            Some(format!("https://{host}{path}").as_str()),
            "{out:?}"
        );
    }
    assert_eq!(w.backend_hits(), 0);
    // The HTTPS port is unaffected.
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn route_timeout_answers_504() {
    let w = Walkthrough::new();
    let slow = Backend::slow("too late", Duration::from_secs(5));
    w.site.apply(
        "slow.yaml",
        &format!(
            "{}---\n{}",
            service_entry("slow", "slow.ux.svc.cluster.local", slow.port()),
            frontend_vs_with(
                "  - match:
    - uri:
        prefix: /slow
    timeout: 1s
    route:
    - destination:
        host: slow.ux.svc.cluster.local
        port:
          number: 80
"
            )
        ),
    );
    let gw = w.start();
    let port = gw.port(443);
    let started = Instant::now();
    let out = w.site.walkthrough_curl(FRONTEND, port).path("/slow").run();
    let took = started.elapsed();
    out.assert_status(504);
    assert_eq!(slow.hits(), 1, "the request never reached the slow backend");
    assert!(
        took < Duration::from_secs(5),
        "504 came only after the backend answered ({took:?})"
    );
    // Other routes are unaffected.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn backend_refusing_connections_answers_503() {
    let w = Walkthrough::new();
    w.site.apply(
        "closed.yaml",
        &service_entry("inventory", support::INVENTORY_SERVICE, closed_port()),
    );
    let gw = w.start();
    let port = gw.port(443);
    for http2 in [false, true] {
        let curl = w.site.walkthrough_curl(INVENTORY, port);
        let out = curl.http2_if(http2).run();
        out.assert_status(503);
    }
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn gateway_changes_are_served_without_restart() {
    let w = Walkthrough::new();
    let mut gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .no_client_cert()
        .run()
        .assert_refused();

    // Frontend switched from MUTUAL to SIMPLE.
    let simple = GATEWAY_YAML.replacen("mode: MUTUAL", "mode: SIMPLE", 1);
    w.site.apply("foocorp/gateway.yaml", &simple);
    poll(
        "frontend to serve without a client certificate",
        LIVE_WITHIN,
        || {
            let out = w
                .site
                .walkthrough_curl(FRONTEND, port)
                .no_client_cert()
                .run();
            (out.status == 200).then_some(out)
        },
    )
    .assert_body(FRONTEND_BODY);
    // Inventory is untouched.
    w.site
        .walkthrough_curl(INVENTORY, port)
        .no_client_cert()
        .run()
        .assert_refused();

    // The Gateway deleted: its port closes.
    w.site
        .cli(&["delete", "-n", "default", "gateway", "foocorp-gateway"])
        .ok();
    poll("the listener to close", LIVE_WITHIN, || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });

    // Applied again: a new listener, serving the walkthrough again.
    w.site.apply("foocorp/gateway.yaml", GATEWAY_YAML);
    let port = gw.wait_new_listener(443, START_TIMEOUT);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);
    assert!(gw.running(), "the gateway restarted or died:\n{}", gw.log());
}
