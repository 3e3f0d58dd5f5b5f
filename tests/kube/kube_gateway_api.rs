//! The Gateway API on a real API server: the cross-namespace-routing
//! example (a shared HTTPS Gateway in `infra-ns`, routes from labelled
//! namespaces, Services with EndpointSlices) applied with kubectl and
//! served by two `--store kube` replicas; the status one of them writes
//! (elected by the Lease), with the spec's reasons: Accepted, Programmed,
//! ResolvedRefs, NotAllowedByListeners, RefNotPermitted.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::Value;

use super::site::{KubeSite, service_on};
use crate::support::etcd::Replica;
use crate::support::gateway_api::{CLASS, example, ours};
use crate::support::{Backend, try_poll};

const HOST: &str = "foo.example.com";

/// Routes the example does not have: one from a namespace the listener
/// does not allow, one to a backend in another namespace with no
/// ReferenceGrant.
const EXTRA_ROUTES: &str = "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: outsider, namespace: no-external-access}
spec:
  parentRefs: [{name: shared-gateway, namespace: infra-ns}]
  rules: [{matches: [{path: {value: /outsider}}], backendRefs: [{name: outsider, port: 8080}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: borrow, namespace: site-ns}
spec:
  parentRefs: [{name: shared-gateway, namespace: infra-ns}]
  rules: [{matches: [{path: {value: /borrow}}], backendRefs: [{name: store, namespace: store-ns, port: 8080}]}]
";

fn get_json(k: &KubeSite, what: &[&str]) -> Value {
    let mut args = vec!["get"];
    args.extend(what);
    args.extend(["-o", "json"]);
    serde_json::from_str(&k.kubectl(&args).ok().stdout).unwrap()
}

/// `(status, reason)` of condition `kind` in `conditions`.
fn condition(conditions: &Value, kind: &str) -> Option<(String, String)> {
    let c = conditions.as_array()?.iter().find(|c| c["type"] == kind)?;
    Some((
        c["status"].as_str()?.to_owned(),
        c["reason"].as_str()?.to_owned(),
    ))
}

fn pair(a: &str, b: &str) -> Option<(String, String)> {
    Some((a.to_owned(), b.to_owned()))
}

fn route_condition(k: &KubeSite, ns: &str, name: &str, kind: &str) -> Option<(String, String)> {
    let v = get_json(k, &["httproute", name, "-n", ns]);
    condition(&v["status"]["parents"][0]["conditions"], kind)
}

type Backends = [(&'static str, &'static str, Backend); 5];

/// The example and [`EXTRA_ROUTES`] on the API server, with a Service and
/// EndpointSlice per backend and the Gateway's certificate.
fn set_up() -> (KubeSite, Backends) {
    let k = KubeSite::new();
    k.kubectl_apply(CLASS);
    k.kubectl_apply(&example("cross-namespace-routing/0-namespaces.yaml"));
    k.site.pki_init(HOST);
    let out = k.kubectl(&[
        "create",
        "secret",
        "tls",
        "foo-example-com",
        "-n",
        "infra-ns",
        "--cert=foo.example.com/3_application/certs/foo.example.com.cert.pem",
        "--key=foo.example.com/3_application/private/foo.example.com.key.pem",
    ]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let backends = [
        ("home", "site-ns"),
        ("login-v1", "site-ns"),
        ("login-v2", "site-ns"),
        ("store", "store-ns"),
        ("outsider", "no-external-access"),
    ]
    .map(|(name, ns)| (name, ns, Backend::start(name)));
    for (name, ns, b) in &backends {
        k.kubectl_apply(&service_on(name, ns, 8080, b.port()));
    }
    for f in ["gateway.yaml", "site-route.yaml", "store-route.yaml"] {
        k.kubectl_apply(&ours(
            &example(&format!("cross-namespace-routing/{f}")),
            "shared-gateway",
        ));
    }
    k.kubectl_apply(EXTRA_ROUTES);

    (k, backends)
}

/// Each replica serves the example's paths; the outsider is not attached.
fn serves_every_path(k: &KubeSite, replicas: &[Replica; 2], backends: &Backends) {
    let ca = "foo.example.com/2_intermediate/certs/ca-chain.cert.pem";
    for r in replicas {
        for (path, body) in [("/", "home"), ("/login", "login"), ("/store", "store")] {
            let ok = try_poll(Duration::from_secs(15), || {
                let port = r.listening()?;
                let out = k
                    .site
                    .curl(&format!("https://{HOST}:{port}{path}"))
                    .resolve(HOST, port)
                    .cacert(ca)
                    .run();
                (out.status == 200 && out.body.contains(body)).then_some(())
            });
            assert!(
                ok.is_some(),
                "replica {} does not serve {path}; log:\n{}",
                r.name,
                r.log()
            );
        }
        // The outsider's route is not attached: its path falls to home's `/`.
        let out = k
            .site
            .curl(&format!("https://{HOST}:{}/outsider", r.port()))
            .resolve(HOST, r.port())
            .cacert(ca)
            .run();
        out.assert_body("home");
    }
    assert_eq!(
        backends[4].2.hits(),
        0,
        "the outsider's backend was reached"
    );
}

/// The Gateway's, its class's and the routes' status, as kubectl shows it.
fn status_as_the_spec_says(k: &KubeSite, replicas: &[Replica; 2]) {
    // Status, as `kubectl get` shows it.
    let written = try_poll(Duration::from_secs(20), || {
        let gw = get_json(
            k,
            &[
                "gateway.gateway.networking.k8s.io",
                "shared-gateway",
                "-n",
                "infra-ns",
            ],
        );
        (condition(&gw["status"]["conditions"], "Programmed") == pair("True", "Programmed"))
            .then_some(gw)
    });
    let Some(gw) = written else {
        panic!(
            "no Programmed status on the Gateway; logs:\n{}\n{}",
            replicas[0].log(),
            replicas[1].log()
        );
    };
    assert_eq!(
        condition(&gw["status"]["conditions"], "Accepted"),
        pair("True", "Accepted"),
        "{gw}"
    );
    let listener = &gw["status"]["listeners"][0];
    assert_eq!(listener["attachedRoutes"], 4, "{listener}");
    assert_eq!(
        condition(&listener["conditions"], "ResolvedRefs"),
        pair("True", "ResolvedRefs"),
        "{listener}"
    );
    assert!(
        gw["status"]["conditions"][0]["lastTransitionTime"].is_string(),
        "{gw}"
    );
    let class = get_json(k, &["gatewayclass", "gatehouse"]);
    assert_eq!(
        condition(&class["status"]["conditions"], "Accepted"),
        pair("True", "Accepted"),
        "{class}"
    );
    assert_eq!(
        route_condition(k, "site-ns", "home", "Accepted"),
        pair("True", "Accepted")
    );
    assert_eq!(
        route_condition(k, "no-external-access", "outsider", "Accepted"),
        pair("False", "NotAllowedByListeners")
    );
    assert_eq!(
        route_condition(k, "site-ns", "borrow", "ResolvedRefs"),
        pair("False", "RefNotPermitted")
    );
}

#[test]
fn cross_namespace_routing_serves_and_reports_status_from_one_replica() {
    let (k, backends) = set_up();
    let replicas = ["a", "b"].map(|n| k.replica_with(n, &["--secret-namespaces", "infra-ns"]));
    serves_every_path(&k, &replicas, &backends);
    status_as_the_spec_says(&k, &replicas);
    // One replica holds the Lease and wrote the status; the other did not.
    let lease = get_json(&k, &["lease", "gatehouse-status", "-n", "istio-system"]);
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let leaders: Vec<&str> = replicas
        .iter()
        .filter(|r| r.log().contains("leading=true"))
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(leaders.len(), 1, "leaders {leaders:?}, holder {holder}");
    let managers = k
        .kubectl(&[
            "get",
            "gateway.gateway.networking.k8s.io",
            "shared-gateway",
            "-n",
            "infra-ns",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .ok();
    assert!(managers.stdout.contains("gatehouse"), "{managers:?}");
}
