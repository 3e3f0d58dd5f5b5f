//! What the Gateway API tests share: the examples as published, turned to
//! gatehouse's GatewayClass (`support::gateway_api`, beside `apiserver.sh`); Services as ServiceEntries to local backends;
//! a bounded wait for the gateway to serve a change; an object's status.

use std::time::{Duration, Instant};

use crate::support::{CurlOut, Site};

pub use crate::support::gateway_api::{CLASS, example, http_gateway, ours};

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
