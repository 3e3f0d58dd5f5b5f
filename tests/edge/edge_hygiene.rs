//! Header hygiene before routing: the headers only gatehouse or a trusted
//! proxy may set never reach a backend and cannot select a route;
//! `x-forwarded-for` is appended to and `--trusted-hops` picks the client;
//! `x-request-id` is the edge's own.

use crate::support::{
    FRONTEND, FRONTEND_BODY, INVENTORY_BODY, Seen, Walkthrough, frontend_vs_with, to_inventory,
};

/// The frontend's VirtualService with a first route that sends requests
/// carrying gatehouse-only headers to the inventory backend: if matching
/// saw a forged header, the client would reach the internal site.
fn steered_vs() -> String {
    frontend_vs_with(&to_inventory(
        "    - headers:
        x-envoy-internal:
          exact: \"true\"
    - headers:
        x-forwarded-client-cert:
          prefix: \"By=\"
    - headers:
        client-cert:
          prefix: \":\"
",
    ))
}

const FORGED: [&str; 7] = [
    "x-envoy-internal: true",
    "x-envoy-original-path: /admin",
    "x-envoy-decorator-operation: admin",
    "x-forwarded-client-cert: By=spiffe://evil;Subject=\"CN=root\"",
    "client-cert: :MIIB:",
    "client-cert-chain: :MIIB:",
    "x-forwarded-proto: http",
];

/// Names of `seen`'s headers that a client forged.
fn forged_names(seen: &Seen) -> Vec<String> {
    seen.headers
        .iter()
        .filter(|(n, v)| {
            (n.starts_with("x-envoy-") && n != "x-envoy-external-address")
                || n.starts_with("client-cert")
                || (n == "x-forwarded-client-cert" && !v.starts_with("Hash="))
                || (n == "x-forwarded-proto" && v != "https")
        })
        .map(|(n, v)| format!("{n}: {v}"))
        .collect()
}

#[test]
fn forged_internal_headers_never_reach_a_backend_nor_steer_routing() {
    let w = Walkthrough::new();
    w.site.apply("steered-vs.yaml", &steered_vs());
    let gw = w.start();
    let port = gw.port(443);
    for http2 in [false, true] {
        for forged in FORGED {
            let out = w
                .site
                .walkthrough_curl(FRONTEND, port)
                .http2_if(http2)
                .header(forged)
                .run();
            assert_eq!(
                out.body,
                format!("{FRONTEND_BODY}\n"),
                "{forged} http2={http2}: {out:?}"
            );
            let seen = w.frontend.last();
            assert_eq!(
                forged_names(&seen),
                Vec::<String>::new(),
                "{forged}: {seen:?}"
            );
            assert_eq!(seen.one("x-forwarded-proto"), "https");
            assert!(seen.one("x-forwarded-client-cert").starts_with("Hash="));
        }
    }
    assert_eq!(w.inventory.hits(), 0, "a forged header steered routing");
    // The steering route itself works for a header a client may send:
    // it is the forged names that are gone, not the route.
    assert_eq!(w.frontend.hits(), 2 * FORGED.len());
    let _ = INVENTORY_BODY;
}

/// The addresses of a (possibly repeated) `x-forwarded-for`, in order.
fn xff(seen: &Seen) -> Vec<String> {
    seen.all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|a| a.trim().to_owned())
        .collect()
}

#[test]
fn trusted_hops_pick_the_client_from_x_forwarded_for() {
    let w = Walkthrough::new();
    let sent = "X-Forwarded-For: 203.0.113.7, 198.51.100.2";
    for (hops, client) in [
        ("0", "127.0.0.1"),
        ("1", "198.51.100.2"),
        ("2", "203.0.113.7"),
        ("3", "127.0.0.1"),
    ] {
        let gw = w.site.start_gateway_with(&[443], &["--trusted-hops", hops]);
        w.site
            .walkthrough_curl(FRONTEND, gw.port(443))
            .header(sent)
            .run()
            .assert_body(FRONTEND_BODY);
        let seen = w.frontend.last();
        assert_eq!(
            xff(&seen),
            ["203.0.113.7", "198.51.100.2", "127.0.0.1"],
            "{seen:?}"
        );
        assert_eq!(
            seen.one("x-envoy-external-address"),
            client,
            "--trusted-hops {hops}"
        );
    }
    // A client cannot name itself: with no trusted hop its forged
    // x-envoy-external-address is replaced by its real address.
    let gw = w.site.start_gateway(&[443]);
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .header("x-envoy-external-address: 10.0.0.1")
        .run()
        .assert_body(FRONTEND_BODY);
    assert_eq!(
        w.frontend.last().one("x-envoy-external-address"),
        "127.0.0.1"
    );
}

#[test]
fn trusted_hops_out_of_range_is_a_usage_error_naming_the_flag() {
    let w = Walkthrough::new();
    for value in ["17", "4294967296", "many"] {
        w.site.assert_run_refuses("--trusted-hops", value);
    }
}

#[test]
fn x_request_id_is_the_edges_own() {
    let w = Walkthrough::new();
    let gw = w.start();
    let mut ids = Vec::new();
    for http2 in [false, true] {
        for _ in 0..2 {
            w.site
                .walkthrough_curl(FRONTEND, gw.port(443))
                .http2_if(http2)
                .header("X-Request-Id: trace-42")
                .run()
                .assert_body(FRONTEND_BODY);
            let seen = w.frontend.last();
            let id = seen.one("x-request-id").to_owned();
            let parts: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(parts, [8, 4, 4, 4, 12], "{id}");
            ids.push(id);
        }
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "every request gets its own id: {ids:?}");
}
