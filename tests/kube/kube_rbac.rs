//! Least privilege: `gatehouse run --store kube` as the API server's
//! unprivileged user `gatehouse`, bound to exactly the Role and
//! ClusterRole of `deploy/kubernetes/rbac.yaml`, serves the walkthrough;
//! Secrets outside its namespace answer Forbidden; a `credentialName` that
//! names another namespace's Secret is refused, naming the field.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::site::{KubeSite, SERVE_TIMEOUT};
use crate::support::etcd::Replica;
use crate::support::{
    Backend, COMMAND_TIMEOUT, FRONTEND, FRONTEND_BODY, INVENTORY, INVENTORY_BODY, run_bounded,
    try_poll,
};

/// The manifests' Role and ClusterRole (both named `gatehouse`), bound to
/// the user `gatehouse` as well as to the ServiceAccount they name.
fn bind_deploy_rbac_to_user(k: &KubeSite) {
    let root = env!("CARGO_MANIFEST_DIR");
    for f in ["namespace.yaml", "serviceaccount.yaml", "rbac.yaml"] {
        let path = format!("{root}/deploy/kubernetes/{f}");
        k.kubectl(&["apply", "--server-side", "-f", &path]).ok();
    }
    k.kubectl(&[
        "create",
        "rolebinding",
        "gatehouse-user",
        "--role=gatehouse",
        "--user=gatehouse",
        "-n",
        "istio-system",
    ])
    .ok();
    k.kubectl(&[
        "create",
        "clusterrolebinding",
        "gatehouse-user",
        "--clusterrole=gatehouse",
        "--user=gatehouse",
    ])
    .ok();
}

/// A Gateway whose credentialName names another namespace's Secret:
/// gatehouse apply refuses it; written with kubectl anyway, the running
/// gateway `r` refuses it with the same reason.
fn foreign_credential_name_is_refused(k: &KubeSite, r: &Replica) {
    let foreign = "apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: foreign, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [foreign.foocorp.com]
    tls: {mode: SIMPLE, credentialName: default/foreign}
";
    k.site.write("foreign.yaml", foreign);
    let out = k.cli(&["apply", "-f", "foreign.yaml"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("spec.servers[0].tls.credentialName")
            && out.stderr.contains("only in its own namespace"),
        "{out:?}"
    );
    k.kubectl(&["apply", "-f", "foreign.yaml"]).ok();
    let refused = try_poll(Duration::from_secs(10), || {
        let log = r.log();
        log.lines()
            .any(|l| {
                l.contains("Gateway/default/foreign") && l.contains("only in its own namespace")
            })
            .then_some(())
    });
    assert!(
        refused.is_some(),
        "no refusal naming the Gateway; log:\n{}",
        r.log()
    );
}

#[test]
fn the_provider_works_with_the_manifests_rbac_and_nothing_more() {
    let k = KubeSite::new();
    bind_deploy_rbac_to_user(&k);
    let frontend = Backend::start(FRONTEND_BODY);
    let inventory = Backend::start(INVENTORY_BODY);
    k.walkthrough(&frontend, &inventory);
    // A Secret the gateway must never read.
    k.kubectl(&[
        "create",
        "secret",
        "generic",
        "foreign",
        "-n",
        "default",
        "--from-literal=key=x",
    ])
    .ok();

    let as_gatehouse = k.api.kubeconfig_gatehouse();
    let r = k.replica_as("least", &as_gatehouse);
    let ok = try_poll(SERVE_TIMEOUT, || {
        let port = r.listening()?;
        let fe = k.site.walkthrough_curl(FRONTEND, port).run();
        let inv = k.site.walkthrough_curl(INVENTORY, port).run();
        (fe.body.contains(FRONTEND_BODY) && inv.body.contains(INVENTORY_BODY)).then_some(())
    });
    assert!(
        ok.is_some(),
        "the provider as user gatehouse does not serve the walkthrough; log:\n{}",
        r.log()
    );
    assert!(
        !r.log().to_lowercase().contains("forbidden"),
        "the provider hit a Forbidden with the manifests' RBAC; log:\n{}",
        r.log()
    );

    // The same user cannot read Secrets anywhere else: the API server's
    // Forbidden, through gatehouse's CLI and kubectl alike.
    let mut c = k.gatehouse_as(&as_gatehouse);
    c.args(["get", "secrets", "-n", "default"]);
    let out = run_bounded(c, COMMAND_TIMEOUT);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("forbidden")
            && out.stderr.contains("secrets")
            && out.stderr.lines().count() == 1,
        "{out:?}"
    );
    let out = k
        .api
        .kubectl_as_gatehouse(&["get", "secret", "foreign", "-n", "default"]);
    assert!(
        out.stderr.contains("Forbidden") || out.stderr.contains("forbidden"),
        "{out:?}"
    );
    let out = k
        .api
        .kubectl_as_gatehouse(&["auth", "can-i", "get", "secrets", "-n", "default"]);
    assert_eq!(out.stdout.trim(), "no", "{out:?}");

    foreign_credential_name_is_refused(&k, &r);
    let fe = k.site.walkthrough_curl(FRONTEND, r.port()).run();
    fe.assert_body(FRONTEND_BODY);
}
