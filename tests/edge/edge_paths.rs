//! Paths that try to reach another route (RFC 3986 §6, as Envoy's
//! `normalize_path` + `merge_slashes`): the path a route is chosen for is
//! the path the backend receives, so `/public/%2E%2E/admin` is `/admin`
//! for the router and for the backend alike; escaped slashes are refused
//! (or, with `--path-with-escaped-slashes keep`, kept encoded), and `%00`
//! always is. Sent with `curl --path-as-is` (curl would resolve the dots
//! itself) and raw bytes.

use crate::raw;
use crate::support::{
    FRONTEND, FRONTEND_BODY, INVENTORY_BODY, Walkthrough, frontend_vs_with, to_inventory,
};

/// The frontend host with an internal `/admin` (the inventory backend),
/// a public `/public` and `/` (the frontend backend).
fn paths_vs() -> String {
    let public = "  - match:
    - uri:
        prefix: /public
    route:
    - destination:
        host: frontend.ux.svc.cluster.local
        port:
          number: 80
";
    let admin = to_inventory("    - uri:\n        prefix: /admin\n");
    frontend_vs_with(&format!("{admin}{public}"))
}

/// Where a request went: the backend's body and the path (with query) it
/// received, or a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    Admin(&'static str),
    Public(&'static str),
    Refused(u16),
}

fn setup() -> Walkthrough {
    let w = Walkthrough::new();
    w.site.apply("paths-vs.yaml", &paths_vs());
    w
}

/// Sends `path` as is over HTTP/1.1 or HTTP/2 and checks where it went:
/// the status, which backend got it and the path it saw, or that no
/// backend got anything.
#[track_caller]
fn check(w: &Walkthrough, port: u16, path: &str, want: Reached, http2: bool) {
    let hits = w.backend_hits();
    let out = w
        .site
        .walkthrough_curl(FRONTEND, port)
        .arg("--path-as-is")
        .path(path)
        .http2_if(http2)
        .run();
    let case = format!("{path} http2={http2}: {out:?}");
    match want {
        Reached::Refused(status) => {
            out.assert_status(status);
            assert_eq!(w.backend_hits(), hits, "{case}: reached a backend");
        }
        Reached::Admin(seen) | Reached::Public(seen) => {
            let (backend, body) = match want {
                Reached::Admin(_) => (&w.inventory, INVENTORY_BODY),
                _ => (&w.frontend, FRONTEND_BODY),
            };
            out.assert_body(body);
            assert_eq!(w.backend_hits(), hits + 1, "{case}");
            assert_eq!(backend.last().path, seen, "{case}");
        }
    }
}

#[test]
fn dot_segments_in_any_spelling_route_and_forward_as_the_same_path() {
    let w = setup();
    let gw = w.site.start_gateway(&[443]);
    let port = gw.port(443);
    let cases = [
        ("/%2e%2e/admin", Reached::Admin("/admin")),
        ("/public/%2E%2E/admin", Reached::Admin("/admin")),
        ("/public/.%2e/admin/x", Reached::Admin("/admin/x")),
        ("/public/../admin", Reached::Admin("/admin")),
        ("//admin", Reached::Admin("/admin")),
        ("/./admin", Reached::Admin("/admin")),
        ("/%61dmin", Reached::Admin("/admin")),
        ("/admin/../public/x", Reached::Public("/public/x")),
        ("/public//a/./b/../c/", Reached::Public("/public/a/c/")),
        ("/%2e%2e/%2e%2e/", Reached::Public("/")),
        // Other escapes stay encoded (upper-case hex); the query is untouched.
        (
            "/public/caf%c3%a9?next=/%2e%2e/admin",
            Reached::Public("/public/caf%C3%A9?next=/%2e%2e/admin"),
        ),
        ("/public/..%2fadmin", Reached::Refused(400)),
        ("/public/%2e%2e%2Fadmin", Reached::Refused(400)),
        ("/public/a%5Cb", Reached::Refused(400)),
        ("/public/%00", Reached::Refused(400)),
        ("/public/a%zz", Reached::Refused(400)),
    ];
    for http2 in [false, true] {
        for (path, want) in cases {
            check(&w, port, path, want, http2);
        }
    }
}

#[test]
fn escaped_slashes_kept_are_never_separators() {
    let w = setup();
    let gw = w
        .site
        .start_gateway_with(&[443], &["--path-with-escaped-slashes", "keep"]);
    let port = gw.port(443);
    let cases = [
        // One segment named `..%2Fadmin`: the public route, kept encoded.
        ("/public/..%2fadmin", Reached::Public("/public/..%2Fadmin")),
        (
            "/public/%2e%2e%2fadmin",
            Reached::Public("/public/..%2Fadmin"),
        ),
        ("/public/a%5cb", Reached::Public("/public/a%5Cb")),
        ("/public/x/..%2F/../y", Reached::Public("/public/x/y")),
        ("/%2e%2e/admin", Reached::Admin("/admin")),
        ("/public/%00", Reached::Refused(400)),
    ];
    for http2 in [false, true] {
        for (path, want) in cases {
            check(&w, port, path, want, http2);
        }
    }
}

#[test]
fn a_backslash_is_never_a_separator() {
    let w = setup();
    for (args, want) in [
        (&[][..], None),
        (
            &["--path-with-escaped-slashes", "keep"][..],
            Some("/public/..%5Cadmin"),
        ),
    ] {
        let gw = w.site.start_gateway_with(&[443], args);
        let hits = w.backend_hits();
        let raw = raw::send(
            &w,
            gw.port(443),
            FRONTEND,
            b"GET /public/..\\admin HTTP/1.1\r\nHost: frontend.foocorp.com\r\nConnection: close\r\n\r\n",
        );
        match want {
            None => {
                assert_eq!(raw.statuses(), [400], "{args:?}: {raw:?}");
                assert_eq!(w.backend_hits(), hits, "{args:?}");
            }
            Some(seen) => {
                assert_eq!(raw.statuses(), [200], "{args:?}: {raw:?}");
                assert_eq!(w.inventory.hits(), 0, "{args:?}");
                assert_eq!(w.frontend.last().path, seen);
            }
        }
    }
}

#[test]
fn path_with_escaped_slashes_takes_only_reject_or_keep() {
    let w = Walkthrough::new();
    for value in ["drop", "unescape", ""] {
        w.site
            .assert_run_refuses("--path-with-escaped-slashes", value);
    }
}
