//! HTTPS listeners: frontend-cert-validation (client certificates checked
//! against each port's ConfigMap CA, refused without one), and
//! tls-cert-cross-namespace (a certificateRef to another namespace is
//! refused with RefNotPermitted until its ReferenceGrant exists).

use crate::common::{CLASS, example, ours, service, status, until};
use crate::support::{Backend, Site, issue, kubectl_secret_yaml};

/// A ConfigMap `name` holding `pem` as `ca.crt` (JSON: no indenting).
fn ca_config_map(name: &str, pem: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"ca.crt": pem},
    })
    .to_string()
}

/// The `(status, reason)` of a listener's condition.
fn listener_condition(site: &Site, ns: &str, gw: &str, i: usize, kind: &str) -> (String, String) {
    let s = status(site, "gateway.gateway.networking.k8s.io", ns, gw);
    let c = s["listeners"][i]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} in {s}"));
    (
        c["status"].as_str().unwrap().into(),
        c["reason"].as_str().unwrap().into(),
    )
}

fn route(name: &str, ns: &str, gw: &str, backend: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: {name}
  namespace: {ns}
spec:
  parentRefs:
  - name: {gw}
  rules:
  - backendRefs:
    - name: {backend}
      port: 80
---
"
    )
}

#[test]
fn frontend_cert_validation_per_port() {
    let site = Site::new();
    let app = Backend::start("app");
    let (foo, bar) = ("foo.example.com", "bar.example.com");
    for host in [foo, bar] {
        site.pki_init(host);
        let pki = site.pki(host);
        let name = format!("{}-cert", host.replace('.', "-"));
        let (crt, key) = (pki.server_cert.display(), pki.server_key.display());
        site.cli(&[
            "create",
            "secret",
            "generic",
            &name,
            &format!("--from-file=tls.crt={crt}"),
            &format!("--from-file=tls.key={key}"),
        ])
        .ok();
        let ca = std::fs::read_to_string(site.path(&pki.ca_chain)).unwrap();
        site.apply(
            &format!("{host}-ca.json"),
            &ca_config_map(&format!("{}-ca-cert", host.replace('.', "-")), &ca),
        );
    }
    let manifests = format!(
        "{CLASS}---\n{}{}{}",
        ours(
            &example("frontend-cert-validation.yaml"),
            "client-validation-basic"
        ),
        route("app", "default", "client-validation-basic", "app"),
        service("app", "default", 80, app.port()),
    );
    site.apply("gw.yaml", &manifests);
    let gw = site.start_gateway(&[443, 8443]);
    let (p443, p8443) = (gw.port(443), gw.port(8443));
    site.walkthrough_curl(foo, p443).run().assert_body("app");
    site.walkthrough_curl(foo, p443)
        .no_client_cert()
        .run()
        .assert_refused();
    site.walkthrough_curl(bar, p8443).run().assert_body("app");
    // Port 8443's own CA (perPort), not the default: foo's client is refused there.
    let foo_pki = site.pki(foo);
    site.walkthrough_curl(bar, p8443)
        .client_cert(&foo_pki.client_cert, &foo_pki.client_key)
        .run()
        .assert_refused();
    site.walkthrough_curl(bar, p8443)
        .no_client_cert()
        .run()
        .assert_refused();
    for i in 0..2 {
        let c = listener_condition(
            &site,
            "default",
            "client-validation-basic",
            i,
            "ResolvedRefs",
        );
        assert_eq!(c, ("True".into(), "ResolvedRefs".into()));
    }
}

#[test]
fn a_certificate_in_another_namespace_needs_a_reference_grant() {
    let site = Site::new();
    let app = Backend::start("app");
    let host = "foo.example.com";
    let cred = issue("*.example.com", None);
    site.write("ca.pem", &cred.ca);
    let secret = kubectl_secret_yaml(
        "wildcard-example-com-cert",
        "gateway-api-example-ns2",
        &[
            ("tls.crt", cred.cert.as_bytes()),
            ("tls.key", cred.key.as_bytes()),
        ],
    );
    site.apply("secret.yaml", &secret);
    let published = example("tls-cert-cross-namespace.yaml");
    let (gateway, grant) = published.split_once("\n---").unwrap();
    let ns1 = "gateway-api-example-ns1";
    let manifests = format!(
        "{CLASS}---\n{}{}{}",
        ours(gateway, "cross-namespace-tls-gateway"),
        route("app", ns1, "cross-namespace-tls-gateway", "app"),
        service("app", ns1, 80, app.port()),
    );
    site.apply("gw.yaml", &manifests);
    // Its only listener is refused, so port 443 is not even bound: the
    // gateway starts with the admin endpoint alone.
    let mut gw = site.start_gateway_with(&[], &["--listen", "443=127.0.0.1:0"]);
    let c = listener_condition(&site, ns1, "cross-namespace-tls-gateway", 0, "ResolvedRefs");
    assert_eq!(c, ("False".into(), "RefNotPermitted".into()));

    site.apply("grant.yaml", grant);
    // Panics unless 443 starts listening only now.
    let port = gw.wait_new_listener(443, std::time::Duration::from_secs(15));
    let curl = || {
        site.curl(&format!("https://{host}:{port}/"))
            .resolve(host, port)
            .cacert("ca.pem")
            .run()
    };
    until(curl, |o| o.status == 200).assert_body("app");
    let c = listener_condition(&site, ns1, "cross-namespace-tls-gateway", 0, "ResolvedRefs");
    assert_eq!(c, ("True".into(), "ResolvedRefs".into()));
}

#[test]
fn listeners_sharing_a_port_keep_hosts_apart() {
    let site = Site::new();
    let app = Backend::start("app");
    let (foo, bar) = ("foo.example.com", "bar.example.com");
    let mut listeners = String::new();
    for host in [foo, bar] {
        site.pki_init(host);
        let pki = site.pki(host);
        let name = host.replace('.', "-");
        let (crt, key) = (pki.server_cert.display(), pki.server_key.display());
        site.cli(&[
            "create",
            "secret",
            "generic",
            &name,
            &format!("--from-file=tls.crt={crt}"),
            &format!("--from-file=tls.key={key}"),
        ])
        .ok();
        listeners.push_str(&format!(
            "  - name: {name}\n    protocol: HTTPS\n    port: 443\n    hostname: {host}\n    tls:\n      certificateRefs:\n      - name: {name}\n"
        ));
    }
    let manifests = format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: shared
spec:
  gatewayClassName: gatehouse
  listeners:
{listeners}---
{}{}",
        route("app", "default", "shared", "app"),
        service("app", "default", 80, app.port()),
    );
    site.apply("gw.yaml", &manifests);
    let gw = site.start_gateway(&[443]);
    let port = gw.port(443);
    let curl = |host| site.walkthrough_curl(host, port).no_client_cert();
    curl(foo).run().assert_body("app");
    curl(bar).run().assert_body("app");
    // SNI foo, Host bar: the other listener's host on this connection.
    curl(foo).host_header(bar).run().assert_status(421);
    // No listener for this name: no default certificate, the handshake ends.
    site.curl(&format!("https://baz.example.com:{port}/"))
        .resolve("baz.example.com", port)
        .cacert(site.pki(foo).ca_chain)
        .run()
        .assert_refused();
    assert_eq!(app.hits(), 2);
    let s = status(&site, "gtw", "default", "shared");
    assert_eq!(s["listeners"][0]["attachedRoutes"], 1, "{s}");
    assert_eq!(s["listeners"][1]["attachedRoutes"], 1, "{s}");
}

#[test]
fn a_rotated_certificate_is_served() {
    let site = Site::new();
    let app = Backend::start("app");
    let host = "foo.example.com";
    let (old, new) = (issue(host, None), issue(host, None));
    site.write("old-ca.pem", &old.ca);
    site.write("new-ca.pem", &new.ca);
    let secret = |c: &crate::support::Cred| {
        kubectl_secret_yaml(
            "foo",
            "default",
            &[
                ("tls.crt", c.cert.as_bytes()),
                ("tls.key", c.key.as_bytes()),
            ],
        )
    };
    let manifests = format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: gatehouse
  listeners:
  - name: https
    protocol: HTTPS
    port: 443
    hostname: {host}
    tls:
      certificateRefs:
      - name: foo
---
{}{}---
{}",
        route("app", "default", "gw", "app"),
        service("app", "default", 80, app.port()),
        secret(&old),
    );
    site.apply("gw.yaml", &manifests);
    let gw = site.start_gateway(&[443]);
    let port = gw.port(443);
    let curl = |ca: &str| {
        site.curl(&format!("https://{host}:{port}/"))
            .resolve(host, port)
            .cacert(ca)
            .run()
    };
    curl("old-ca.pem").assert_body("app");
    curl("new-ca.pem").assert_refused();
    site.apply("rotate.yaml", &secret(&new));
    until(|| curl("new-ca.pem"), |o| o.status == 200).assert_body("app");
    curl("old-ca.pem").assert_refused();
    assert!(
        gw.log().contains(
            "RESOURCE NAME:k8s-gateway:default/foo, EVENT: pushed key/cert pair to proxy"
        ),
        "{}",
        gw.log()
    );
}
