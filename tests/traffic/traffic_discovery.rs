//! Kubernetes service discovery with the embedded dir store: the
//! walkthrough's `frontend.ux.svc.cluster.local`, with no ServiceEntry,
//! resolves through a Service and its EndpointSlices (`gatehouse apply`
//! of both, `gatehouse run --store dir:…`), to real backends on
//! 127.0.0.1, driven by curl with the walkthrough's flags.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    self, Backend, FRONTEND, FRONTEND_BODY, Failing, GATEWAY_YAML, Gateway, Site,
    VIRTUAL_SERVICES_YAML,
};

/// The walkthrough without its ServiceEntries: certificates, the
/// frontend's secret, the Gateway and the VirtualServices as published.
fn site() -> Site {
    let site = Site::new();
    site.pki_init(FRONTEND);
    site.create_walkthrough_secret(FRONTEND);
    site.apply("foocorp/gateway.yaml", GATEWAY_YAML);
    site.apply("foocorp/virtualservices.yaml", VIRTUAL_SERVICES_YAML);
    site
}

/// Service `ux/frontend` with `ports`: `(name, port, targetPort)`.
fn service(ports: &[(&str, u16, u16)]) -> String {
    let ports: String = ports
        .iter()
        .map(|(name, port, target)| {
            format!(
                "  - name: {name}\n    port: {port}\n    targetPort: {target}\n    protocol: TCP\n"
            )
        })
        .collect();
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: frontend
  namespace: ux
  labels: {{app: frontend}}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.10
  selector: {{app: frontend}}
  sessionAffinity: None
  ports:
{ports}"
    )
}

/// EndpointSlice `ux/NAME` of Service frontend in `api` (`v1` or
/// `v1beta1`), with `ports` `(name, port)` and `endpoints`
/// `(address, ready)`: `ready` as written, or left out when `None`.
fn slice(
    name: &str,
    api: &str,
    ports: &[(&str, u16)],
    endpoints: &[(&str, Option<bool>)],
) -> String {
    let ports: String = ports
        .iter()
        .map(|(n, p)| format!("- name: {n}\n  port: {p}\n  protocol: TCP\n"))
        .collect();
    let topology = if api == "v1" {
        "  nodeName: node-1\n  zone: zone-a\n"
    } else {
        "  topology: {kubernetes.io/hostname: node-1}\n"
    };
    let endpoints: String = endpoints
        .iter()
        .map(|(ip, ready)| {
            let conditions = match ready {
                Some(r) => format!("  conditions: {{ready: {r}, serving: {r}}}\n"),
                None => String::new(),
            };
            format!("- addresses: [\"{ip}\"]\n{conditions}{topology}")
        })
        .collect();
    format!(
        "apiVersion: discovery.k8s.io/{api}
kind: EndpointSlice
metadata:
  name: {name}
  namespace: ux
  labels:
    kubernetes.io/service-name: frontend
    endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io
  ownerReferences:
  - {{apiVersion: v1, kind: Service, name: frontend, uid: 0c9d5e3a-0000-4000-8000-000000000001}}
addressType: IPv4
ports:
{ports}endpoints:
{endpoints}"
    )
}

/// A one-port Service (`http` 80 → 8080) and one slice `frontend-a` in
/// `api` whose `http` port is each backend's, all on 127.0.0.1 and ready.
fn one_slice(api: &str, port: u16) -> String {
    format!(
        "{}---\n{}",
        service(&[("http", 80, 8080)]),
        slice("frontend-a", api, &[("http", port)], &[("127.0.0.1", None)])
    )
}

/// The walkthrough's curl for the frontend: (status, body).
fn get(site: &Site, gw: &Gateway) -> (u16, String) {
    let out = site.walkthrough_curl(FRONTEND, gw.port(443)).run();
    (out.status, out.body.trim().to_owned())
}

fn get_ok(site: &Site, gw: &Gateway) -> String {
    let (status, body) = get(site, gw);
    assert_eq!(status, 200, "{body}");
    body
}

/// `n` requests on one connection, each answered 200.
fn repeat(site: &Site, gw: &Gateway, n: usize) {
    let out = site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .run_repeated(n, Duration::from_secs(60));
    assert!(out.iter().all(|t| t.status == 200), "{out:?}");
}

/// The frontend's cluster as `/config_dump` shows it.
fn cluster(gw: &Gateway) -> Value {
    let dump = gw.config_dump();
    let clusters = dump["clusters"].as_array().cloned().unwrap_or_default();
    clusters
        .into_iter()
        .find(|c| c["host"] == support::FRONTEND_SERVICE)
        .unwrap_or_else(|| panic!("no frontend cluster in {dump}"))
}

#[test]
fn a_service_and_a_v1beta1_slice_route_the_walkthrough_host() {
    let site = site();
    let backend = Backend::start(FRONTEND_BODY);
    let applied = site.apply("ux/frontend.yaml", &one_slice("v1beta1", backend.port()));
    assert_eq!(applied.stderr, "", "apply warned about fields it tolerates");
    let gw = site.start_gateway(&[443]);
    assert_eq!(get_ok(&site, &gw), FRONTEND_BODY);
    assert_eq!(backend.hits(), 1);
    let c = cluster(&gw);
    assert_eq!(c["name"], "outbound|80||frontend.ux.svc.cluster.local");
    assert_eq!(c["resolution"], "STATIC");
    assert_eq!(
        c["endpoints"],
        serde_json::json!([format!("127.0.0.1:{}", backend.port())])
    );
    let listed = site.cli(&["get", "endpointslices", "-n", "ux"]).ok();
    assert!(listed.stdout.contains("frontend-a"), "{}", listed.stdout);
    let admin = gw.admin().to_string();
    let table = site
        .cli(&["proxy-config", "clusters", "--admin", &admin])
        .ok();
    let row = table
        .stdout
        .lines()
        .find(|l| l.starts_with(support::FRONTEND_SERVICE))
        .unwrap_or_else(|| panic!("{}", table.stdout));
    let endpoint = format!("127.0.0.1:{}", backend.port());
    assert!(row.contains(" STATIC ") && row.contains(&endpoint), "{row}");
}

#[test]
fn a_v1_slice_works_too() {
    let site = site();
    let backend = Backend::start(FRONTEND_BODY);
    site.apply("ux/frontend.yaml", &one_slice("v1", backend.port()));
    let gw = site.start_gateway(&[443]);
    assert_eq!(get_ok(&site, &gw), FRONTEND_BODY);
}

#[test]
fn two_slices_for_one_service_share_the_requests() {
    let site = site();
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let yaml = format!(
        "{}---\n{}---\n{}",
        service(&[("http", 80, 8080)]),
        slice(
            "frontend-a",
            "v1beta1",
            &[("http", a.port())],
            &[("127.0.0.1", Some(true))]
        ),
        slice(
            "frontend-b",
            "v1beta1",
            &[("http", b.port())],
            &[("127.0.0.1", None)]
        ),
    );
    site.apply("ux/frontend.yaml", &yaml);
    let gw = site.start_gateway(&[443]);
    repeat(&site, &gw, 20);
    assert_eq!((a.hits(), b.hits()), (10, 10));
}

#[test]
fn a_not_ready_endpoint_gets_no_request_and_none_ready_is_503_uh() {
    let site = site();
    let (ready, not_ready) = (Backend::start("ready"), Backend::start("not ready"));
    // Each backend is its own slice's port, so a request to the
    // not-ready endpoint would show in its hits.
    let yaml = format!(
        "{}---\n{}---\n{}",
        service(&[("http", 80, 8080)]),
        slice(
            "frontend-a",
            "v1beta1",
            &[("http", ready.port())],
            &[("127.0.0.1", Some(true))]
        ),
        slice(
            "frontend-b",
            "v1beta1",
            &[("http", not_ready.port())],
            &[("127.0.0.1", Some(false))]
        ),
    );
    site.apply("ux/frontend.yaml", &yaml);
    let gw = site.start_gateway_with(&[443], &["--log-format", "json"]);
    repeat(&site, &gw, 20);
    assert_eq!((ready.hits(), not_ready.hits()), (20, 0));

    let none_ready = slice(
        "frontend-a",
        "v1beta1",
        &[("http", ready.port())],
        &[("127.0.0.1", Some(false))],
    );
    site.apply("ux/frontend-a.yaml", &none_ready);
    let (status, body) = support::poll("503 once none is ready", support::START_TIMEOUT, || {
        let (status, body) = get(&site, &gw);
        (status != 200).then_some((status, body))
    });
    assert_eq!(status, 503, "{body}");
    // Until the update arrived, requests still reached the ready one;
    // from then on, none reaches either.
    let hits = ready.hits();
    assert_eq!(get(&site, &gw).0, 503);
    assert_eq!((ready.hits(), not_ready.hits()), (hits, 0));
    let flagged = access_503(&gw);
    assert_eq!(flagged["response_flags"], "UH", "{flagged}");
}

/// The fields of the first access line with status 503 (JSON logs).
fn access_503(gw: &Gateway) -> Value {
    support::poll("a 503 access line", support::START_TIMEOUT, || {
        gw.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["target"] == "access" && v["fields"]["status"] == 503)
            .map(|v| v["fields"].clone())
    })
}

#[test]
fn the_port_is_found_by_name_when_the_target_port_differs() {
    let site = site();
    let (http, admin) = (Backend::start(FRONTEND_BODY), Backend::start("admin"));
    // Port 80 (`http`, targetPort 8080) and 81 (`admin`): the slice lists
    // `admin` first, so only the name picks the right one.
    let yaml = format!(
        "{}---\n{}",
        service(&[("http", 80, 8080), ("admin", 81, 9090)]),
        slice(
            "frontend-a",
            "v1beta1",
            &[("admin", admin.port()), ("http", http.port())],
            &[("127.0.0.1", None)]
        ),
    );
    site.apply("ux/frontend.yaml", &yaml);
    let gw = site.start_gateway(&[443]);
    assert_eq!(get_ok(&site, &gw), FRONTEND_BODY);
    assert_eq!((http.hits(), admin.hits()), (1, 0));
}

#[test]
fn a_slice_update_is_served_within_a_second_without_a_restart() {
    let site = site();
    let (old, new) = (Backend::start("old"), Backend::start("new"));
    site.apply("ux/frontend.yaml", &one_slice("v1beta1", old.port()));
    let mut gw = site.start_gateway(&[443]);
    assert_eq!(get_ok(&site, &gw), "old");
    let pid = gw.pid();
    let replaced = slice(
        "frontend-a",
        "v1beta1",
        &[("http", new.port())],
        &[("127.0.0.1", None)],
    );
    site.write("ux/frontend-a.yaml", &replaced);
    site.cli(&["apply", "-f", "ux/frontend-a.yaml"]).ok();
    let applied = Instant::now();
    let body = support::poll_every(Duration::from_millis(50), Duration::from_secs(5), || {
        let body = get_ok(&site, &gw);
        (body == "new").then_some(body)
    });
    let took = applied.elapsed();
    assert_eq!(body.as_deref(), Some("new"), "not served in 5 s");
    assert!(took < Duration::from_secs(1), "served after {took:?}");
    assert!(gw.running() && gw.pid() == pid, "restarted");
}

#[test]
fn the_service_deleted_falls_back_to_dns_of_the_host() {
    let site = site();
    let backend = Backend::start(FRONTEND_BODY);
    site.apply("ux/frontend.yaml", &one_slice("v1beta1", backend.port()));
    let gw = site.start_gateway_with(&[443], &["--log-format", "json"]);
    assert_eq!(get_ok(&site, &gw), FRONTEND_BODY);
    site.cli(&["delete", "service", "frontend", "-n", "ux"])
        .ok();
    // frontend.ux.svc.cluster.local has no DNS name here: 503.
    let (status, body) = support::poll(
        "503 once the Service is gone",
        support::START_TIMEOUT,
        || {
            let (status, body) = get(&site, &gw);
            (status != 200).then_some((status, body))
        },
    );
    assert_eq!(status, 503, "{body}\n{}", gw.log());
    assert_eq!(cluster(&gw)["resolution"], "DNS");
    // Until the delete arrived, requests still reached the backend; from
    // then on, none does.
    let hits = backend.hits();
    assert_eq!(get(&site, &gw).0, 503);
    assert_eq!(backend.hits(), hits);
    assert_eq!(access_503(&gw)["response_flags"], "UH");
}

#[test]
fn a_service_entry_for_the_host_wins_over_the_service() {
    let site = site();
    let (by_entry, by_service) = (Backend::start("entry"), Backend::start("service"));
    site.apply("ux/frontend.yaml", &one_slice("v1beta1", by_service.port()));
    let entry = support::service_entry("frontend", support::FRONTEND_SERVICE, by_entry.port());
    site.apply("serviceentries.yaml", &entry);
    let gw = site.start_gateway(&[443]);
    assert_eq!(get_ok(&site, &gw), "entry");
    site.cli(&["delete", "serviceentry", "frontend"]).ok();
    let body = support::poll("the Service's endpoint", support::START_TIMEOUT, || {
        let body = get_ok(&site, &gw);
        (body == "service").then_some(body)
    });
    assert_eq!(body, "service");
}

#[test]
fn a_slice_with_port_0_is_refused_naming_the_field() {
    let site = site();
    site.write(
        "ux/bad.yaml",
        slice("bad", "v1beta1", &[("http", 0)], &[("127.0.0.1", None)]),
    );
    let out = site.cli(&["apply", "-f", "ux/bad.yaml"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains("ports[0].port"), "{}", out.stderr);
    assert!(
        out.stderr.contains("EndpointSlice ux/bad"),
        "{}",
        out.stderr
    );
    let listed = site.cli(&["get", "endpointslices", "-n", "ux"]);
    assert!(!listed.stdout.contains("bad"), "{listed:?}");
}

#[test]
fn an_fqdn_slice_is_stored_with_a_warning_and_not_used() {
    let site = site();
    let backend = Backend::start(FRONTEND_BODY);
    let fqdn = slice(
        "frontend-a",
        "v1",
        &[("http", backend.port())],
        &[("localhost", None)],
    )
    .replace("addressType: IPv4", "addressType: FQDN");
    let yaml = format!("{}---\n{fqdn}", service(&[("http", 80, 8080)]));
    let applied = site.apply("ux/frontend.yaml", &yaml);
    assert!(
        applied.stderr.starts_with("Warning: ")
            && applied.stderr.contains("EndpointSlice ux/frontend-a")
            && applied.stderr.contains("addressType")
            && applied.stderr.contains("FQDN endpoints are not used"),
        "{}",
        applied.stderr
    );
    let gw = site.start_gateway(&[443]);
    let (status, _) = get(&site, &gw);
    assert_eq!((status, backend.hits()), (503, 0));
}

/// A slice `NAME` whose only endpoint is `backend`, ready.
fn slice_of(name: &str, backend: &Backend) -> String {
    slice(
        name,
        "v1beta1",
        &[("http", backend.port())],
        &[("127.0.0.1", None)],
    )
}

#[test]
fn a_slice_update_keeps_an_ejected_endpoint_ejected() {
    let site = site();
    let failing = Backend::failing("failing", 1000, Failing::Status(500));
    let (good, new) = (Backend::start("good"), Backend::start("new"));
    let rule = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: frontend, namespace: ux}
spec:
  host: frontend.ux.svc.cluster.local
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100
";
    let yaml = format!(
        "{}---\n{}---\n{}---\n{rule}",
        service(&[("http", 80, 8080)]),
        slice_of("frontend-a", &failing),
        slice_of("frontend-b", &good),
    );
    site.apply("ux/frontend.yaml", &yaml);
    let gw = site.start_gateway(&[443]);
    let statuses = |n: usize| -> Vec<u16> {
        site.walkthrough_curl(FRONTEND, gw.port(443))
            .run_repeated(n, Duration::from_secs(60))
            .iter()
            .map(|t| t.status)
            .collect()
    };
    let first = statuses(6);
    assert_eq!(failing.hits(), 1, "{first:?}");
    // A third endpoint arrives: the snapshot is compiled again, and the
    // failing endpoint must stay ejected (a fresh state would give it a
    // third of the requests again).
    site.apply("ux/frontend-c.yaml", &slice_of("frontend-c", &new));
    support::poll("the new endpoint", support::START_TIMEOUT, || {
        statuses(1);
        (new.hits() > 0).then_some(())
    });
    let later = statuses(12);
    assert!(later.iter().all(|s| *s == 200), "{later:?}");
    assert_eq!(failing.hits(), 1, "the ejection was forgotten");
}

#[test]
fn an_external_name_service_goes_to_its_dns_name() {
    let site = site();
    let backend = Backend::start(FRONTEND_BODY);
    let port = backend.port();
    let vs = support::frontend_vs_with("").replace("number: 80", &format!("number: {port}"));
    site.apply("foocorp/frontend-vs.yaml", &vs);
    let external = "apiVersion: v1
kind: Service
metadata: {name: frontend, namespace: ux}
spec:
  type: ExternalName
  externalName: localhost
";
    site.apply("ux/frontend.yaml", external);
    let gw = site.start_gateway(&[443]);
    assert_eq!(get_ok(&site, &gw), FRONTEND_BODY);
    let c = cluster(&gw);
    assert_eq!(c["resolution"], "DNS");
    assert_eq!(
        c["endpoints"],
        serde_json::json!([format!("localhost:{port}")])
    );
}

/// A Service port whose `appProtocol` is `kubernetes.io/h2c` is spoken to
/// with HTTP/2 with prior knowledge: a gRPC call passes whole.
#[test]
fn an_h2c_app_protocol_speaks_http2_to_the_endpoints() {
    use crate::support::grpc::{GrpcBackend, GrpcClient};
    let site = site();
    let backend = GrpcBackend::start();
    let route = "  - match:
    - uri:
        prefix: /test.Echo/
    route:
    - destination:
        host: echo.ux.svc.cluster.local
        port:
          number: 50051
";
    site.apply(
        "foocorp/frontend-vs.yaml",
        &support::frontend_vs_with(route),
    );
    let yaml = format!(
        "apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: ux}}
spec:
  ports:
  - {{name: echo, port: 50051, targetPort: 9000, appProtocol: kubernetes.io/h2c}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-a
  namespace: ux
  labels: {{kubernetes.io/service-name: echo}}
addressType: IPv4
ports:
- {{name: echo, port: {}}}
endpoints:
- addresses: [127.0.0.1]
",
        backend.port()
    );
    site.apply("ux/echo.yaml", &yaml);
    let gw = site.start_gateway(&[443]);
    let pki = site.pki(FRONTEND);
    let read = |p: &std::path::Path| std::fs::read(site.path(p)).unwrap();
    let c = GrpcClient::new(
        FRONTEND,
        gw.port(443),
        &read(&pki.ca_chain),
        &read(&pki.client_cert),
        &read(&pki.client_key),
    );
    let r = c.unary("Say", "world", None).unwrap();
    assert_eq!(r.get_ref().text, "hello world");
    let heard = backend.heard();
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(heard[0].version, http::Version::HTTP_2);
}
