//! The RBAC of `deploy/kubernetes/rbac.yaml`, checked against a real API
//! server with `kubectl auth can-i --as` the ServiceAccount the Deployment
//! runs as, and with that account's own token: what the provider reads,
//! the status it writes, nothing more.

use super::DEPLOY;
use crate::support::kube::{ApiServer, GATEHOUSE_SA};

/// Only the RBAC of deploy/kubernetes (with its Namespace and
/// ServiceAccount): nothing else is bound on this server. With the CRDs:
/// `kubectl auth can-i` resolves a resource through discovery.
fn rbac_only() -> ApiServer {
    let api = ApiServer::start();
    for file in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        api.kubectl(&["apply", "--server-side", "-f", &format!("{DEPLOY}/{file}")])
            .ok();
    }
    api
}

/// `kubectl auth can-i VERB RESOURCE [SCOPE]` as the ServiceAccount.
fn can_i(api: &ApiServer, verb: &str, resource: &str, scope: &[&str]) -> bool {
    let mut args = vec!["auth", "can-i", "--as", GATEHOUSE_SA, verb, resource];
    args.extend_from_slice(scope);
    let out = api.kubectl(&args);
    match (out.code, out.stdout.trim()) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        _ => panic!("kubectl auth can-i {verb} {resource} {scope:?}: {out:?}"),
    }
}

const ALL: &[&str] = &["-A"];
const OWN: &[&str] = &["-n", "istio-system"];
const OTHER: &[&str] = &["-n", "default"];

/// What the provider reads, with the scope it reads it in.
const READS: &[(&str, &[&str])] = &[
    ("secrets", OWN),
    ("configmaps", OWN),
    ("gateways.networking.istio.io", ALL),
    ("virtualservices.networking.istio.io", ALL),
    ("destinationrules.networking.istio.io", ALL),
    ("serviceentries.networking.istio.io", ALL),
    ("services", ALL),
    ("namespaces", ALL),
    ("endpointslices.discovery.k8s.io", ALL),
    ("gatewayclasses.gateway.networking.k8s.io", ALL),
    ("gateways.gateway.networking.k8s.io", ALL),
    ("httproutes.gateway.networking.k8s.io", ALL),
    ("grpcroutes.gateway.networking.k8s.io", ALL),
    ("tlsroutes.gateway.networking.k8s.io", ALL),
    ("referencegrants.gateway.networking.k8s.io", ALL),
    ("backendtlspolicies.gateway.networking.k8s.io", ALL),
];

#[test]
fn reads_what_the_provider_needs_and_writes_nothing() {
    let api = rbac_only();
    // One thread per resource: some 130 kubectl runs, mostly waiting.
    std::thread::scope(|threads| {
        for (resource, scope) in READS {
            let api = &api;
            threads.spawn(move || {
                for verb in ["get", "list", "watch"] {
                    assert!(
                        can_i(api, verb, resource, scope),
                        "cannot {verb} {resource} {scope:?}"
                    );
                }
                for verb in ["create", "update", "patch", "delete", "deletecollection"] {
                    assert!(
                        !can_i(api, verb, resource, scope),
                        "can {verb} {resource} {scope:?}"
                    );
                }
            });
        }
    });
    // The Istio kinds in every namespace, one by one too.
    assert!(can_i(
        &api,
        "watch",
        "virtualservices.networking.istio.io",
        &["-n", "ux"]
    ));
    assert!(!can_i(&api, "get", "pods", ALL));
    assert!(!can_i(&api, "*", "*", ALL));
    assert_writes_only_status_and_leases(&api);
}

/// Every rule of the Role and ClusterRole that allows more than reading is
/// on a `/status` subresource or on Leases, and none uses a wildcard.
fn assert_writes_only_status_and_leases(api: &ApiServer) {
    for what in [
        ["clusterrole", "gatehouse", "--all-namespaces"],
        ["role", "gatehouse", "--namespace=istio-system"],
    ] {
        let out = api
            .kubectl(&["get", what[0], what[1], what[2], "-o", "json"])
            .ok();
        let role: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let rules = role["rules"].as_array().unwrap();
        assert!(!rules.is_empty(), "{} has no rules", what[0]);
        for rule in rules {
            let strings = |field: &str| -> Vec<String> {
                rule[field]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let (verbs, resources) = (strings("verbs"), strings("resources"));
            assert!(
                !verbs.contains(&"*".to_owned()) && !resources.contains(&"*".to_owned()),
                "wildcard in {rule}"
            );
            let writes = verbs
                .iter()
                .any(|v| !["get", "list", "watch"].contains(&v.as_str()));
            let allowed = resources
                .iter()
                .all(|r| r.ends_with("/status") || r == "leases");
            assert!(
                !writes || allowed,
                "{} writes more than status: {rule}",
                what[0]
            );
        }
    }
}

#[test]
fn reads_secrets_only_in_its_own_namespace() {
    let api = rbac_only();
    assert!(can_i(&api, "list", "secrets", OWN));
    assert!(!can_i(&api, "get", "secrets", OTHER));
    assert!(!can_i(&api, "list", "secrets", OTHER));
    assert!(!can_i(&api, "get", "secrets", ALL));
    assert!(!can_i(&api, "list", "secrets", ALL));
    assert!(!can_i(&api, "create", "secrets", OWN));
    assert!(!can_i(&api, "patch", "secrets", OWN));

    // What the provider sees: its own namespace's Secrets, and Forbidden
    // for another's.
    api.kubectl(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "default",
        "--from-literal=k=v",
    ])
    .ok();
    api.kubectl(&[
        "create",
        "secret",
        "generic",
        "mine",
        "-n",
        "istio-system",
        "--from-literal=k=v",
    ])
    .ok();
    let own = api
        .kubectl(&[
            "get",
            "secrets",
            "-n",
            "istio-system",
            "--as",
            GATEHOUSE_SA,
            "-o",
            "name",
        ])
        .ok();
    assert!(own.stdout.contains("secret/mine"), "{own:?}");
    let other = api.kubectl(&["get", "secret", "s", "-n", "default", "--as", GATEHOUSE_SA]);
    assert_eq!(other.code, Some(1), "{other:?}");
    assert!(
        other.stderr.contains("Forbidden")
            && other.stderr.contains("cannot get resource \"secrets\""),
        "{other:?}"
    );
}

#[test]
fn writes_only_gateway_api_status_and_its_lease() {
    let api = rbac_only();
    for kind in [
        "gatewayclasses",
        "gateways",
        "httproutes",
        "grpcroutes",
        "tlsroutes",
        "backendtlspolicies",
    ] {
        let resource = format!("{kind}.gateway.networking.k8s.io");
        for verb in ["update", "patch"] {
            let status = [ALL, &["--subresource", "status"]].concat();
            assert!(
                can_i(&api, verb, &resource, &status),
                "cannot {verb} {resource}/status"
            );
        }
    }
    let status = [ALL, &["--subresource", "status"]].concat();
    assert!(!can_i(
        &api,
        "patch",
        "referencegrants.gateway.networking.k8s.io",
        &status
    ));
    assert!(!can_i(&api, "patch", "gateways.networking.istio.io", ALL));
    assert!(!can_i(
        &api,
        "patch",
        "gateways.networking.istio.io",
        &status
    ));
    assert!(!can_i(
        &api,
        "patch",
        "gateways.gateway.networking.k8s.io",
        ALL
    ));

    for verb in ["get", "create", "update"] {
        assert!(
            can_i(&api, verb, "leases.coordination.k8s.io", OWN),
            "cannot {verb} leases"
        );
    }
    assert!(!can_i(&api, "delete", "leases.coordination.k8s.io", OWN));
    assert!(!can_i(&api, "create", "leases.coordination.k8s.io", OTHER));
}

/// The ServiceAccount's own token (not impersonation): what the provider
/// in the Deployment sees.
#[test]
fn service_account_token_reads_own_secrets_and_is_forbidden_elsewhere() {
    let api = rbac_only();
    api.kubectl(&[
        "create",
        "secret",
        "generic",
        "s",
        "-n",
        "default",
        "--from-literal=k=v",
    ])
    .ok();
    let sa = api.kubeconfig_service_account("istio-system", "gatehouse");
    let whoami = api.kubectl_with(&sa, &["get", "secrets", "-n", "default"]);
    assert_eq!(whoami.code, Some(1), "{whoami:?}");
    assert!(
        whoami.stderr.contains(
            "User \"system:serviceaccount:istio-system:gatehouse\" cannot list resource \"secrets\""
        ),
        "{whoami:?}"
    );
    let own = api.kubectl_with(&sa, &["get", "secrets", "-n", "istio-system"]);
    assert_eq!(own.code, Some(0), "{own:?}");
    let vs = api.kubectl_with(&sa, &["get", "virtualservices.networking.istio.io", "-A"]);
    assert_eq!(vs.code, Some(0), "{vs:?}");
    let write = api.kubectl_with(&sa, &["create", "configmap", "x", "-n", "istio-system"]);
    assert!(
        write
            .stderr
            .contains("cannot create resource \"configmaps\""),
        "{write:?}"
    );
}
