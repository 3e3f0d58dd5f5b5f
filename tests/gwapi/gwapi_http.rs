//! HTTPRoute over an HTTP listener, with the Gateway API's own examples:
//! basic-http (path, header, query and method matches), the three
//! http-request-header examples, redirects and rewrites from
//! http-redirect-rewrite, and traffic-splitting's weights over 400
//! requests.

use crate::common::{CLASS, example, http_gateway, ours, service, until};
use crate::support::{Backend, Curl, Gateway, Site};

fn get<'a>(site: &'a Site, port: u16, host: &str, path: &str) -> Curl<'a> {
    site.curl(&format!("http://127.0.0.1:{port}{path}"))
        .host_header(host)
}

#[test]
fn basic_http_serves_its_matches() {
    let site = Site::new();
    let (one, two) = (Backend::start("service1"), Backend::start("service2"));
    let manifests = format!(
        "{CLASS}---\n{}{}{}",
        ours(&example("basic-http.yaml"), "my-gateway"),
        service("my-service1", "default", 8080, one.port()),
        service("my-service2", "default", 8080, two.port()),
    );
    site.apply("basic.yaml", &manifests);
    let gw = site.start_gateway(&[80]);
    let port = gw.port(80);
    get(&site, port, "foo.com", "/bar")
        .run()
        .assert_body("service1");
    get(&site, port, "foo.com", "/bar/baz")
        .run()
        .assert_body("service1");
    // A prefix matches whole path elements only.
    get(&site, port, "foo.com", "/barn")
        .run()
        .assert_status(404);
    let second = "/some/thing?great=example";
    get(&site, port, "foo.com", second)
        .header("magic: foo")
        .run()
        .assert_body("service2");
    for (what, curl) in [
        ("no header", get(&site, port, "foo.com", second)),
        (
            "wrong query",
            get(&site, port, "foo.com", "/some/thing?great=other").header("magic: foo"),
        ),
        (
            "POST",
            get(&site, port, "foo.com", second)
                .header("magic: foo")
                .arg("-XPOST"),
        ),
    ] {
        let out = curl.run();
        assert_eq!(out.status, 404, "{what}: {out:?}");
    }
    get(&site, port, "bar.com", "/bar").run().assert_status(404);
    assert_eq!(two.hits(), 1);
}

#[test]
fn request_header_add_set_and_remove() {
    let site = Site::new();
    let echo = Backend::start("echo");
    let base = format!(
        "{CLASS}---\n{}---\n{}",
        http_gateway("acme-gw"),
        service("echo", "default", 8080, echo.port())
    );
    site.apply("base.yaml", &base);
    site.apply(
        "add.yaml",
        &ours(&example("http-request-header-add.yaml"), "acme-gw"),
    );
    let gw = site.start_gateway(&[80]);
    let port = gw.port(80);
    let h = "any.example";
    get(&site, port, h, "/add-a-request-header")
        .header("my-header-name: from-client")
        .run()
        .assert_body("echo");
    assert_eq!(
        echo.last().all("my-header-name"),
        ["from-client", "my-header-value"]
    );

    site.apply(
        "set.yaml",
        &ours(&example("http-request-header-set.yaml"), "acme-gw"),
    );
    let set = || {
        get(&site, port, h, "/edit-a-request-header")
            .header("my-header-name: old")
            .run()
    };
    until(set, |o| o.status == 200).assert_body("echo");
    assert_eq!(echo.last().one("my-header-name"), "my-new-header-value");

    site.apply(
        "remove.yaml",
        &ours(&example("http-request-header-remove.yaml"), "acme-gw"),
    );
    let remove = || {
        get(&site, port, h, "/remove-a-request-header")
            .header("x-request-id: mine")
            .run()
    };
    until(remove, |o| o.status == 200).assert_body("echo");
    assert!(
        echo.last().all("x-request-id").is_empty(),
        "{:?}",
        echo.last()
    );
    // The route was replaced: the old paths are gone.
    get(&site, port, h, "/add-a-request-header")
        .run()
        .assert_status(404);
}

/// The redirect-rewrite example's Gateway with its http-to-https redirect
/// route, `example-svc` behind it; the gateway and its port 80.
fn redirect_gateway(site: &Site, svc: &Backend) -> (Gateway, u16) {
    let base = format!(
        "{CLASS}---\n{}{}",
        ours(
            &example("http-redirect-rewrite/gateway-redirect-http-https.yaml"),
            "redirect-gateway"
        ),
        service("example-svc", "default", 80, svc.port())
    );
    site.apply("base.yaml", &base);
    let gw_yaml = "http-redirect-rewrite/httproute-redirect-http.yaml";
    site.apply("r1.yaml", &ours(&example(gw_yaml), "redirect-gateway"));
    let gw = site.start_gateway(&[80]);
    let port = gw.port(80);
    (gw, port)
}

#[test]
fn redirects() {
    let site = Site::new();
    let svc = Backend::start("example-svc");
    let (_gw, port) = redirect_gateway(&site, &svc);
    let out = get(&site, port, "redirect.example", "/a/b?x=1").run();
    out.assert_status(301);
    assert_eq!(
        out.header("location"),
        Some("https://redirect.example/a/b?x=1")
    );

    let cases = [
        (
            "httproute-redirect-full.yaml",
            "/cayenne/pepper",
            302,
            "http://redirect.example/paprika",
        ),
        (
            "httproute-redirect-307.yaml",
            "/api/v1/x",
            307,
            "http://api.example.com/api/v2",
        ),
        (
            "httproute-redirect-308.yaml",
            "/old-api",
            308,
            "http://api.example.com/new-api",
        ),
    ];
    for (file, path, code, location) in cases {
        let yaml = ours(
            &example(&format!("http-redirect-rewrite/{file}")),
            "redirect-gateway",
        );
        site.apply(file, &yaml);
        let host = location.split('/').nth(2).unwrap();
        let out = until(|| get(&site, port, host, path).run(), |o| o.status == code);
        out.assert_status(code);
        assert_eq!(out.header("location"), Some(location), "{file}");
    }
    let post = ours(
        &example("http-redirect-rewrite/httproute-redirect-303.yaml"),
        "redirect-gateway",
    );
    site.apply("303.yaml", &post);
    let form = || {
        get(&site, port, "forms.example.com", "/submit-form")
            .arg("-XPOST")
            .run()
    };
    let out = until(form, |o| o.status == 303);
    out.assert_status(303);
    assert_eq!(
        out.header("location"),
        Some("http://forms.example.com/thank-you")
    );
    get(&site, port, "forms.example.com", "/submit-form")
        .run()
        .assert_status(404);
}

#[test]
fn rewrites() {
    let site = Site::new();
    let svc = Backend::start("example-svc");
    let (_gw, port) = redirect_gateway(&site, &svc);
    for (file, path, want) in [
        (
            "httproute-rewrite-prefix-path.yaml",
            "/cardamom/seeds?q=1",
            "/fennel/seeds?q=1",
        ),
        (
            "httproute-rewrite-full-path.yaml",
            "/cardamom/seeds",
            "/fennel",
        ),
        ("httproute-rewrite.yaml", "/any/path", "/any/path"),
    ] {
        let yaml = ours(
            &example(&format!("http-redirect-rewrite/{file}")),
            "redirect-gateway",
        );
        site.apply(file, &yaml);
        let out = until(
            || get(&site, port, "rewrite.example", path).run(),
            |o| o.status == 200 && svc.requests().last().is_some_and(|r| r.path == want),
        );
        out.assert_body("example-svc");
        let seen = svc.last();
        assert_eq!(
            (seen.path.as_str(), seen.one("host")),
            (want, "elsewhere.example"),
            "{file}"
        );
    }
}

#[test]
fn traffic_splitting_by_weight() {
    let site = Site::new();
    let (v1, v2) = (Backend::start("v1"), Backend::start("v2"));
    let base = format!(
        "{CLASS}---\n{}---\n{}{}{}",
        http_gateway("prod-web-gw"),
        service("foo-v1", "default", 8080, v1.port()),
        service("foo-v2", "default", 8080, v2.port()),
        ours(
            &example("traffic-splitting/traffic-split-2.yaml"),
            "prod-web-gw"
        ),
    );
    site.apply("split.yaml", &base);
    let gw = site.start_gateway(&[80]);
    let port = gw.port(80);
    let all = get(&site, port, "foo.example.com", "/")
        .run_repeated(400, std::time::Duration::from_secs(60));
    assert!(all.iter().all(|t| t.status == 200));
    // 90/10 of 400: v2's count is Binomial(400, 0.1), mean 40, sd 6.
    let (a, b) = (v1.hits(), v2.hits());
    assert_eq!(a + b, 400);
    assert!((16..=64).contains(&b), "v1 {a}, v2 {b}");

    // weight 0 gets nothing.
    site.apply(
        "split3.yaml",
        &ours(
            &example("traffic-splitting/traffic-split-3.yaml"),
            "prod-web-gw",
        ),
    );
    let before = v1.hits();
    let only_v2 = || get(&site, port, "foo.example.com", "/").run();
    until(only_v2, |o| o.body == "v2\n").assert_body("v2");
    let settled = v1.hits();
    get(&site, port, "foo.example.com", "/").run_repeated(50, std::time::Duration::from_secs(30));
    assert_eq!(
        v1.hits(),
        settled,
        "weight 0 got traffic (before the change: {before})"
    );
}

#[test]
fn cors_filter() {
    let site = Site::new();
    let backend = Backend::start("infra");
    let manifests = format!(
        "{CLASS}---\n{}---\n{}{}",
        http_gateway("same-namespace"),
        service("infra-backend-v1", "default", 8080, backend.port()),
        ours(
            &example("http-cors/httproute-all-fields-set.yaml"),
            "same-namespace"
        ),
    );
    let applied = site.apply("cors.yaml", &manifests);
    assert!(!applied.stderr.contains("Warning"), "{applied:?}");
    let gw = site.start_gateway(&[80]);
    let port = gw.port(80);
    let path = "/cors-behavior-creds-true";
    for origin in ["https://www.foo.com", "https://api.bar.com"] {
        let out = get(&site, port, "any.example", path)
            .arg("-XOPTIONS")
            .header(&format!("origin: {origin}"))
            .header("access-control-request-method: GET")
            .run();
        out.assert_status(200);
        assert_eq!(
            out.header("access-control-allow-origin"),
            Some(origin),
            "{out:?}"
        );
        assert_eq!(out.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(
            out.header("access-control-allow-methods"),
            Some("GET,OPTIONS")
        );
        assert_eq!(out.header("access-control-max-age"), Some("3600"));
    }
    assert_eq!(backend.hits(), 0, "a preflight reached the backend");
    let out = get(&site, port, "any.example", path)
        .header("origin: https://www.foo.com")
        .run();
    out.assert_body("infra");
    assert_eq!(
        out.header("access-control-expose-headers"),
        Some("x-header-3,x-header-4")
    );
    let other = get(&site, port, "any.example", path)
        .header("origin: https://evil.example")
        .run();
    other.assert_body("infra");
    assert_eq!(other.header("access-control-allow-origin"), None);
}

#[test]
fn request_mirror_and_request_timeout() {
    let site = Site::new();
    let (v1, v2) = (Backend::start("v1"), Backend::start("v2"));
    let slow = Backend::slow("slow", std::time::Duration::from_secs(3));
    let timeout = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: slow
spec:
  parentRefs:
  - name: mirror-gateway
  hostnames:
  - slow.example
  rules:
  - backendRefs:
    - name: slow
      port: 8080
    timeouts:
      request: 500ms
";
    let manifests = format!(
        "{CLASS}---\n{}---\n{}{}{}{}---\n{timeout}",
        http_gateway("mirror-gateway"),
        service("foo-v1", "default", 8080, v1.port()),
        service("foo-v2", "default", 8080, v2.port()),
        service("slow", "default", 8080, slow.port()),
        example("http-request-mirroring/httproute-mirroring.yaml"),
    );
    site.apply("mirror.yaml", &manifests);
    let gw = site.start_gateway(&[80]);
    let port = gw.port(80);
    get(&site, port, "mirror.example", "/copy")
        .run()
        .assert_body("v1");
    let copied = until(
        || get(&site, port, "mirror.example", "/copy").run(),
        |_| v2.hits() >= 1,
    );
    copied.assert_body("v1");
    assert!(v2.hits() >= 1, "the mirror got no copy");
    assert_eq!(v2.last().path, "/copy");
    let started = std::time::Instant::now();
    get(&site, port, "slow.example", "/")
        .run()
        .assert_status(504);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
