//! What the Gateway API tests share: the examples as published, turned to
//! gatehouse's GatewayClass; Services as ServiceEntries to local backends;
//! a bounded wait for the gateway to serve a change; an object's status.

use std::time::{Duration, Instant};

use crate::support::{CurlOut, Site};

/// Where the Gateway API v1.6.1 examples are.
pub const EXAMPLES: &str = "/work/shared/k8s/examples/gateway-api-v1.6.1";

/// gatehouse's GatewayClass, named `gatehouse`.
pub const CLASS: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: gatehouse
spec:
  controllerName: gatehouse.io/gateway-controller
";

/// An example file as published.
pub fn example(rel: &str) -> String {
    let path = format!("{EXAMPLES}/{rel}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An example with every `gatewayClassName` set to gatehouse's class, and
/// `parentRefs` to `gateway` added where it names none.
pub fn ours(yaml: &str, gateway: &str) -> String {
    let mut out = String::new();
    for doc in yaml.split("\n---") {
        let mut d: String = doc
            .lines()
            .map(|l| match l.split_once("gatewayClassName:") {
                Some((indent, _)) => format!("{indent}gatewayClassName: gatehouse"),
                None => l.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n");
        if d.contains("kind: HTTPRoute") && !d.contains("parentRefs") {
            d = d.replacen(
                "\nspec:\n",
                &format!("\nspec:\n  parentRefs:\n  - name: {gateway}\n"),
                1,
            );
        }
        out.push_str(&d);
        out.push_str("\n---\n");
    }
    out
}

/// A Gateway API Gateway of gatehouse's class with one HTTP listener on 80.
pub fn http_gateway(name: &str) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: {name}
spec:
  gatewayClassName: gatehouse
  listeners:
  - name: http
    protocol: HTTP
    port: 80
"
    )
}

/// Service `name` in `ns` on `port` as the dir store can have it: a
/// ServiceEntry for `name.ns.svc.cluster.local:port` to `127.0.0.1:backend`.
pub fn service(name: &str, ns: &str, port: u16, backend: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: {name}-{ns}
  namespace: default
spec:
  hosts:
  - {name}.{ns}.svc.cluster.local
  ports:
  - number: {port}
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {backend}
---
"
    )
}

/// Runs `request` until `ok` holds for its answer (at most 100 times and
/// 15 s), for a change the running gateway has yet to serve; returns the
/// last answer, which the caller asserts on.
pub fn until(request: impl Fn() -> CurlOut, ok: impl Fn(&CurlOut) -> bool) -> CurlOut {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut out = request();
    for _ in 0..100 {
        if ok(&out) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
        out = request();
    }
    out
}

/// `gatehouse get KIND NAME -n NS -o json`'s `status`.
pub fn status(site: &Site, kind: &str, ns: &str, name: &str) -> serde_json::Value {
    let out = site.cli(&["get", kind, name, "-n", ns, "-o", "json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v["status"].clone()
}

/// The `(status, reason)` of condition `kind` of a route's first parent.
pub fn route_condition(site: &Site, ns: &str, name: &str, kind: &str) -> (String, String) {
    let s = status(site, "httproute", ns, name);
    let c = s["parents"][0]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == kind))
        .cloned()
        .unwrap_or_else(|| panic!("no {kind} condition in {s}"));
    (
        c["status"].as_str().unwrap().to_owned(),
        c["reason"].as_str().unwrap().to_owned(),
    )
}
