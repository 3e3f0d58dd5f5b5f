//! Table tests of the translation and of the status it computes.

use std::sync::Arc;

use super::super::Object;
use super::super::status::{Condition, Report};
use super::{Translated, translate};
use crate::config::checked::route::{Matcher, RouteAction};
use crate::config::load::{NamespacePolicy, Source, parse_source};
use crate::config::{Resource, Secret};

const CLASS: &str = "
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: gh}
spec: {controllerName: gatehouse.io/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: other}
spec: {controllerName: acme.io/gateway-controller}
";

fn objects(yaml: &str) -> Vec<Object> {
    let ns = NamespacePolicy {
        namespace: "default".into(),
        explicit: false,
    };
    let src = Source {
        name: "t.yaml".into(),
        text: format!("{CLASS}---\n{yaml}"),
    };
    parse_source(&src, &ns)
        .unwrap()
        .into_iter()
        .filter_map(|l| match l.resource {
            Resource::GatewayApi(o) => Some(*o),
            _ => None,
        })
        .collect()
}

/// Translates with Secrets `default/cert` and `infra/cert` present.
fn run(yaml: &str) -> Translated {
    let objs = objects(yaml);
    let refs: Vec<_> = objs.iter().map(|o| (7, o)).collect();
    let secret = |ns: &str, name: &str| {
        (name == "cert" && (ns == "default" || ns == "infra")).then(|| {
            let s: Secret = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": ns},
                "stringData": {"tls.crt": "x", "tls.key": "y"},
            }))
            .unwrap();
            (3, Arc::new(s))
        })
    };
    translate(&refs, &secret)
}

fn find<'a>(c: &'a [Condition], kind: &str) -> &'a Condition {
    c.iter().find(|c| c.kind == kind).unwrap()
}

fn route_cond(r: &Report, name: &str, kind: &str) -> (bool, &'static str) {
    let p = &r.routes[&("default".to_owned(), name.to_owned())][0];
    let c = find(&p.conditions, kind);
    (c.status, c.reason)
}

fn listener_cond(r: &Report, gw: &str, i: usize, kind: &str) -> (bool, &'static str) {
    let g = &r.gateways[&("default".to_owned(), gw.to_owned())];
    let c = find(&g.listeners[i].conditions, kind);
    (c.status, c.reason)
}

const GATEWAY: &str = "
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, generation: 4}
spec:
  gatewayClassName: gh
  listeners:
  - {name: http, protocol: HTTP, port: 80, hostname: '*.example.com'}
  - name: https
    protocol: HTTPS
    port: 443
    tls: {certificateRefs: [{name: cert}]}
  - name: elsewhere
    protocol: HTTPS
    port: 8443
    tls: {certificateRefs: [{name: cert, namespace: infra}]}
  - name: missing
    protocol: HTTPS
    port: 9443
    tls: {certificateRefs: [{name: nope}]}
  - {name: tcp, protocol: TCP, port: 9000}
  - name: grpc-only
    protocol: HTTP
    port: 81
    allowedRoutes: {kinds: [{kind: GRPCRoute}]}
";

#[test]
fn gateway_and_listener_conditions() {
    let t = run(GATEWAY);
    let g = &t.status.gateways[&("default".to_owned(), "gw".to_owned())];
    assert_eq!(find(&g.conditions, "Accepted").reason, "Accepted");
    assert_eq!(
        find(&g.conditions, "Programmed").observed_generation,
        Some(4)
    );
    assert_eq!(
        listener_cond(&t.status, "gw", 0, "Programmed"),
        (true, "Programmed")
    );
    assert_eq!(
        listener_cond(&t.status, "gw", 1, "ResolvedRefs"),
        (true, "ResolvedRefs")
    );
    assert_eq!(
        listener_cond(&t.status, "gw", 2, "ResolvedRefs"),
        (false, "RefNotPermitted")
    );
    assert_eq!(
        listener_cond(&t.status, "gw", 3, "ResolvedRefs"),
        (false, "InvalidCertificateRef")
    );
    assert_eq!(
        listener_cond(&t.status, "gw", 4, "Accepted"),
        (false, "UnsupportedProtocol")
    );
    assert_eq!(
        listener_cond(&t.status, "gw", 5, "ResolvedRefs"),
        (false, "InvalidRouteKinds")
    );
    let served: Vec<_> = t.gateways.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        served,
        ["gw/http", "gw/https"],
        "refused listeners are not served"
    );
    assert_eq!(
        t.gateways[1].servers[0].tls.credential_name.as_deref(),
        Some("k8s-gateway:default/cert")
    );
    assert!(t.secrets.contains_key("k8s-gateway:default/cert"));
    assert_eq!(
        t.status.classes.len(),
        1,
        "only our own class gets a status"
    );
}

#[test]
fn a_reference_grant_permits_a_certificate_in_another_namespace() {
    let grant = "
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: infra}
spec:
  from: [{group: gateway.networking.k8s.io, kind: Gateway, namespace: default}]
  to: [{group: '', kind: Secret}]
";
    let t = run(&format!("{GATEWAY}---{grant}"));
    assert_eq!(
        listener_cond(&t.status, "gw", 2, "ResolvedRefs"),
        (true, "ResolvedRefs")
    );
    assert!(t.secrets.contains_key("k8s-gateway:infra/cert"));
}

#[test]
fn a_gateway_of_another_class_is_not_served_nor_given_a_status() {
    let t = run(&GATEWAY.replace("gatewayClassName: gh", "gatewayClassName: other"));
    assert!(t.gateways.is_empty() && t.status.gateways.is_empty());
}

fn route(spec: &str) -> String {
    format!(
        "{GATEWAY}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, generation: 2}}
spec:
{spec}"
    )
}

#[test]
fn route_parent_conditions() {
    let cases = [
        (
            "  parentRefs: [{name: gw, sectionName: http}]\n  hostnames: [a.example.com]\n  rules: [{backendRefs: [{name: s, port: 80}]}]",
            "Accepted",
            (true, "Accepted"),
        ),
        (
            "  parentRefs: [{name: gw, sectionName: http}]\n  hostnames: [a.other.com]",
            "Accepted",
            (false, "NoMatchingListenerHostname"),
        ),
        (
            "  parentRefs: [{name: gw, sectionName: nosuch}]",
            "Accepted",
            (false, "NoMatchingParent"),
        ),
        (
            "  parentRefs: [{name: gw, sectionName: tcp}]",
            "Accepted",
            (false, "NotAllowedByListeners"),
        ),
        (
            "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: s, namespace: other, port: 80}]}]",
            "ResolvedRefs",
            (false, "RefNotPermitted"),
        ),
        (
            "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: s, kind: Pod, port: 80}]}]",
            "ResolvedRefs",
            (false, "InvalidKind"),
        ),
        (
            "  parentRefs: [{name: gw}]\n  rules: [{backendRefs: [{name: s}]}]",
            "ResolvedRefs",
            (false, "BackendNotFound"),
        ),
        (
            "  parentRefs: [{name: gw}]\n  rules: [{filters: [{type: RequestRedirect, requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]}]",
            "Accepted",
            (false, "UnsupportedValue"),
        ),
    ];
    for (spec, kind, want) in cases {
        let t = run(&route(spec));
        assert_eq!(route_cond(&t.status, "r", kind), want, "{spec}");
        let p = &t.status.routes[&("default".to_owned(), "r".to_owned())][0];
        assert!(
            p.conditions
                .iter()
                .all(|c| c.observed_generation == Some(2))
        );
    }
}

#[test]
fn a_route_whose_backends_are_all_refused_answers_500() {
    let t = run(&route(
        "  parentRefs: [{name: gw, sectionName: https}]\n  rules: [{name: only, backendRefs: [{name: s, namespace: other, port: 80}]}]",
    ));
    let vs = &t.virtual_services[0];
    assert_eq!(
        vs.http[0].name.as_deref(),
        Some("default.r.only"),
        "named by its rule"
    );
    assert!(matches!(&vs.http[0].action, RouteAction::Direct(d) if d.status == 500));
    assert_eq!(
        listener_cond(&t.status, "gw", 1, "Accepted"),
        (true, "Accepted")
    );
    let g = &t.status.gateways[&("default".to_owned(), "gw".to_owned())];
    assert_eq!(g.listeners[1].attached_routes, 1);
}

#[test]
fn allowed_routes_from_namespaces() {
    let gw = GATEWAY.replace(
        "port: 443\n",
        "port: 443\n    allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: {shared: 'yes'}}}}\n",
    );
    let other = |labels: &str| {
        format!(
            "{gw}---
apiVersion: v1
kind: Namespace
metadata: {{name: site, labels: {{{labels}}}}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: r, namespace: site}}
spec:
  parentRefs: [{{name: gw, namespace: default}}]
"
        )
    };
    let cond = |t: &Translated| {
        let p = &t.status.routes[&("site".to_owned(), "r".to_owned())][0];
        find(&p.conditions, "Accepted").reason
    };
    assert_eq!(cond(&run(&other("shared: 'yes'"))), "Accepted");
    assert_eq!(cond(&run(&other("shared: 'no'"))), "NotAllowedByListeners");
}

#[test]
fn precedence_across_routes_of_a_listener() {
    let two = format!(
        "{GATEWAY}---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: a}}
spec:
  parentRefs: [{{name: gw, sectionName: https}}]
  rules:
  - matches: [{{path: {{value: /}}}}]
    backendRefs: [{{name: root, port: 80}}]
  - matches: [{{path: {{value: /shop}}, headers: [{{name: x, value: '1'}}]}}]
    backendRefs: [{{name: shop-h, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: b}}
spec:
  parentRefs: [{{name: gw, sectionName: https}}]
  rules:
  - matches: [{{path: {{value: /shop}}, method: GET}}]
    backendRefs: [{{name: shop-get, port: 80}}]
  - matches: [{{path: {{type: Exact, value: /shop}}}}]
    backendRefs: [{{name: exact, port: 80}}]
  - matches: [{{path: {{value: /shop/cart}}}}]
    backendRefs: [{{name: cart, port: 80}}]
"
    );
    let t = run(&two);
    assert_eq!(t.virtual_services.len(), 1);
    let order: Vec<String> = t.virtual_services[0]
        .http
        .iter()
        .map(
            |h| match (&h.action, &h.matches[0].uri.as_ref().unwrap().matcher) {
                (RouteAction::Forward(d), Matcher::Exact(p) | Matcher::Prefix(p)) => {
                    format!("{} {p}", d[0].host.split('.').next().unwrap())
                }
                _ => "?".into(),
            },
        )
        .collect();
    assert_eq!(
        order,
        [
            "exact /shop",
            "cart /shop/cart",
            "cart /shop/cart/",
            "shop-get /shop",
            "shop-get /shop/",
            "shop-h /shop",
            "shop-h /shop/",
            "root /",
        ]
    );
}

#[test]
fn frontend_validation_makes_a_listener_mutual() {
    let gw = format!(
        "{GATEWAY}
  tls:
    frontend:
      default:
        validation:
          caCertificateRefs: [{{kind: ConfigMap, group: '', name: ca}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: ca}}
data: {{ca.crt: PEM}}
"
    );
    let t = run(&gw);
    let tls = &t.gateways[1].servers[0].tls;
    assert_eq!(tls.mode, Some(crate::config::gateway::TlsMode::Mutual));
    let name = tls.credential_name.clone().unwrap();
    let ca = &t.secrets[&format!("{name}-cacert")].1;
    assert_eq!(ca.value("ca.crt"), Some(&b"PEM\n"[..]));
    let missing = run(&gw.replace("name: ca}]", "name: nope}]"));
    assert_eq!(
        listener_cond(&missing.status, "gw", 1, "ResolvedRefs"),
        (false, "InvalidCACertificateRef")
    );
}
