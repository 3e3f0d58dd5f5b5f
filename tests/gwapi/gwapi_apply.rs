//! `gatehouse apply` of Gateway API objects: what is accepted and not
//! applied warns (kubectl's `Warning:` line), bad input is one line naming
//! the field with exit 1 and nothing stored, and `kind: Gateway` is the
//! Gateway API's or Istio's by its apiVersion.

use crate::common::CLASS;
use crate::support::Site;

fn route(rule: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: r
spec:
  parentRefs:
  - name: gw
  rules:
  - backendRefs:
    - name: s
      port: 80
{rule}"
    )
}

#[test]
fn accepted_fields_that_are_not_applied_warn() {
    let site = Site::new();
    let yaml = route(
        "    sessionPersistence:
      sessionName: x
    timeouts:
      request: 5s
      backendRequest: 1s
",
    );
    let out = site.apply("r.yaml", &yaml);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("Warning:"))
        .collect();
    assert_eq!(
        lines,
        [
            "Warning: HTTPRoute default/r: spec.rules[0].sessionPersistence is not applied by gatehouse",
            "Warning: HTTPRoute default/r: spec.rules[0].timeouts.backendRequest is not applied by gatehouse: timeouts.request bounds the whole request",
        ],
        "{out:?}"
    );
    let got = site.cli(&["get", "httproute", "r", "-o", "yaml"]).ok();
    assert!(got.stdout.contains("ignoredFields"), "{}", got.stdout);
}

#[test]
fn bad_input_is_one_line_naming_the_field() {
    let site = Site::new();
    let cases = [
        (
            route("    matches:\n    - path: {type: Bogus, value: /x}\n"),
            "spec.rules[0].matches[0].path.type",
        ),
        (route("    bogus: 1\n"), "spec.rules[0]"),
        (
            route(
                "    filters:\n    - type: RequestRedirect\n      requestRedirect: {statusCode: 200}\n",
            ),
            "spec.rules[0].filters[0].requestRedirect.statusCode",
        ),
        (
            "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw}
spec:
  gatewayClassName: gatehouse
  listeners:
  - {name: https, protocol: HTTPS, port: 443}
"
            .into(),
            "spec.listeners[0].tls",
        ),
    ];
    let before = site.snapshot();
    for (yaml, field) in cases {
        site.write("bad.yaml", &yaml);
        let out = site.cli(&["apply", "-f", "bad.yaml"]);
        assert_eq!(out.code, Some(1), "{out:?}");
        // One line per problem, each naming the file, object and field.
        let err = out.stderr.trim();
        assert!(
            err.lines()
                .all(|l| l.starts_with("error: bad.yaml: document 1")),
            "{err}"
        );
        assert!(
            err.lines().any(|l| l.contains(field)),
            "want {field} in {err}"
        );
    }
    assert_eq!(site.snapshot(), before, "nothing stored");
}

#[test]
fn kind_gateway_is_chosen_by_api_group() {
    let site = Site::new();
    let both = format!(
        "{CLASS}---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: same-name}}
spec:
  gatewayClassName: gatehouse
  listeners:
  - {{name: http, protocol: HTTP, port: 80}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: same-name}}
spec:
  servers:
  - port: {{number: 80, name: http, protocol: HTTP}}
    hosts: ['*']
"
    );
    let out = site.apply("both.yaml", &both);
    assert!(
        out.stdout
            .contains("gateway.gateway.networking.k8s.io/same-name created"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("gateway.networking.istio.io/same-name created"),
        "{out:?}"
    );
    let k8s = site
        .cli(&[
            "get",
            "gateways.gateway.networking.k8s.io",
            "same-name",
            "-o",
            "json",
        ])
        .ok();
    assert!(k8s.stdout.contains("gatewayClassName"), "{}", k8s.stdout);
    let istio = site
        .cli(&["get", "gateway", "same-name", "-o", "json"])
        .ok();
    assert!(istio.stdout.contains("servers"), "{}", istio.stdout);
}
