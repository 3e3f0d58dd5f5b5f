//! cross-namespace-routing: a shared Gateway in `infra-ns` whose HTTPS
//! listener admits routes from namespaces labelled
//! `shared-gateway-access: "true"`; routes from those namespaces serve,
//! one from `no-external-access` is NotAllowedByListeners; a backendRef
//! to another namespace's Service is refused (RefNotPermitted, 500) until
//! a ReferenceGrant allows it.

use crate::common::{CLASS, example, ours, route_condition, service, until};
use crate::support::{Backend, Gateway, Site};

const HOST: &str = "foo.example.com";

/// The example applied, with a Secret for its listener and Services for its
/// routes; the gateway serving it, its HTTPS port, and the backends.
fn shared_gateway(site: &Site) -> (Gateway, u16, Vec<Backend>) {
    let backends: Vec<(&str, &str, Backend)> = [
        ("home", "site-ns"),
        ("login-v1", "site-ns"),
        ("login-v2", "site-ns"),
        ("store", "store-ns"),
    ]
    .into_iter()
    .map(|(n, ns)| (n, ns, Backend::start(n)))
    .collect();
    site.pki_init(HOST);
    let pki = site.pki(HOST);
    let (crt, key) = (pki.server_cert.display(), pki.server_key.display());
    site.cli(&[
        "create",
        "-n",
        "infra-ns",
        "secret",
        "generic",
        "foo-example-com",
        &format!("--from-file=tls.crt={crt}"),
        &format!("--from-file=tls.key={key}"),
    ])
    .ok();
    let mut manifests = format!("{CLASS}---\n");
    for f in [
        "0-namespaces.yaml",
        "gateway.yaml",
        "site-route.yaml",
        "store-route.yaml",
    ] {
        manifests.push_str(&ours(
            &example(&format!("cross-namespace-routing/{f}")),
            "shared-gateway",
        ));
    }
    for (n, ns, b) in &backends {
        manifests.push_str(&service(n, ns, 8080, b.port()));
    }
    site.apply("all.yaml", &manifests);
    let gw = site.start_gateway(&[443]);
    let port = gw.port(443);
    (gw, port, backends.into_iter().map(|(_, _, b)| b).collect())
}

#[test]
fn routes_from_labelled_namespaces_serve() {
    let site = Site::new();
    let (_gw, port, backends) = shared_gateway(&site);
    let curl = |path: &str| {
        site.walkthrough_curl(HOST, port)
            .no_client_cert()
            .path(path)
    };
    curl("/").run().assert_body("home");
    curl("/store/x").run().assert_body("store");
    let logins = curl("/login").run_repeated(100, std::time::Duration::from_secs(30));
    assert!(logins.iter().all(|t| t.status == 200));
    let (v1, v2) = (backends[1].hits(), backends[2].hits());
    assert_eq!(v1 + v2, 100);
    assert!(v2 <= 30 && v1 >= 70, "90/10 split: v1 {v1}, v2 {v2}");
    assert_eq!(
        route_condition(&site, "site-ns", "login", "Accepted"),
        ("True".into(), "Accepted".into())
    );

    // A namespace without the label: not allowed by the listener, not served.
    let outsider = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: outsider
  namespace: no-external-access
spec:
  parentRefs:
  - name: shared-gateway
    namespace: infra-ns
  rules:
  - matches:
    - path:
        value: /outsider
    backendRefs:
    - name: home
      namespace: site-ns
      port: 8080
";
    site.apply("outsider.yaml", outsider);
    let c = route_condition(&site, "no-external-access", "outsider", "Accepted");
    assert_eq!(c, ("False".into(), "NotAllowedByListeners".into()));
    assert_eq!(
        curl("/outsider").run().body,
        "home\n",
        "the outsider's path falls to / (home)"
    );
}

#[test]
fn a_backend_in_another_namespace_needs_a_reference_grant() {
    let site = Site::new();
    let (_gw, port, _backends) = shared_gateway(&site);
    let curl = |path: &str| {
        site.walkthrough_curl(HOST, port)
            .no_client_cert()
            .path(path)
    };
    // site-ns's route to store-ns's Service: refused without a grant.
    let borrowing = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: borrow
  namespace: site-ns
spec:
  parentRefs:
  - name: shared-gateway
    namespace: infra-ns
  rules:
  - matches:
    - path:
        value: /borrow
    backendRefs:
    - name: store
      namespace: store-ns
      port: 8080
";
    site.apply("borrow.yaml", borrowing);
    until(|| curl("/borrow").run(), |o| o.status == 500).assert_status(500);
    let c = route_condition(&site, "site-ns", "borrow", "ResolvedRefs");
    assert_eq!(c, ("False".into(), "RefNotPermitted".into()));
    let grant = "apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: site-to-store
  namespace: store-ns
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: site-ns
  to:
  - group: \"\"
    kind: Service
";
    site.apply("grant.yaml", grant);
    until(|| curl("/borrow").run(), |o| o.status == 200).assert_body("store");
    let c = route_condition(&site, "site-ns", "borrow", "ResolvedRefs");
    assert_eq!(c, ("True".into(), "ResolvedRefs".into()));
}
