//! `gatehouse --store kube` as a kubectl for its kinds: `create secret`,
//! `apply` (server-side, field manager `gatehouse`), `get` and `delete`
//! against a real API server, each checked with kubectl.
#![allow(clippy::unwrap_used)]

use super::site::KubeSite;
use crate::support::{GATEWAY_YAML, Site, VIRTUAL_SERVICES_YAML};

/// `gatehouse create secret`: created, and the API server records
/// `gatehouse` as the field manager.
fn create_secret_with_field_manager_gatehouse(k: &KubeSite) {
    let args = Site::walkthrough_secret_args(crate::support::FRONTEND);
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    // `create secret generic NAME -n istio-system --from-file=...` as the site writes it.
    if !args.contains(&"-n") {
        args.extend(["-n", "istio-system"]);
    }
    let out = k.cli(&args);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("secret/frontend-credential created"),
        "{out:?}"
    );
    let managers = k
        .kubectl(&[
            "get",
            "secret",
            "frontend-credential",
            "-n",
            "istio-system",
            "-o",
            "jsonpath={.metadata.managedFields[*].manager}",
        ])
        .ok();
    assert_eq!(managers.stdout.trim(), "gatehouse", "{managers:?}");
}

/// Bad input: one line naming the file and field, exit 1, nothing written.
fn bad_input_is_refused_and_nothing_written(k: &KubeSite) {
    k.site.write("bad.yaml", "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad}\nspec: {hosts: [x.example.com], htp: []}\n");
    let out = k.cli(&["apply", "-f", "bad.yaml"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.contains("bad.yaml") && out.stderr.contains("htp"),
        "{out:?}"
    );
    let none = k.kubectl(&["get", "virtualservice", "bad", "-n", "default"]);
    assert_ne!(none.code, Some(0), "{none:?}");
}

#[test]
fn create_secret_apply_get_and_delete_work_against_the_api_server() {
    let k = KubeSite::new();
    create_secret_with_field_manager_gatehouse(&k);

    k.site.write("gateway.yaml", GATEWAY_YAML);
    k.site.write("virtualservices.yaml", VIRTUAL_SERVICES_YAML);
    let out = k.cli(&["apply", "-f", "gateway.yaml", "-f", "virtualservices.yaml"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    for line in [
        "gateway.networking.istio.io/foocorp-gateway created",
        "virtualservice.networking.istio.io/frontend created",
        "virtualservice.networking.istio.io/inventory created",
    ] {
        assert!(out.stdout.contains(line), "{line:?} in {out:?}");
    }
    let listed = k
        .kubectl(&["get", "virtualservices", "-n", "default", "-o", "name"])
        .ok();
    assert_eq!(
        listed.stdout.lines().collect::<Vec<_>>(),
        [
            "virtualservice.networking.istio.io/frontend",
            "virtualservice.networking.istio.io/inventory"
        ],
    );
    let again = k.cli(&["apply", "-f", "virtualservices.yaml"]);
    assert!(
        again
            .stdout
            .contains("virtualservice.networking.istio.io/frontend unchanged"),
        "{again:?}"
    );

    let got = k.cli(&["get", "virtualservices"]);
    assert!(
        got.stdout.contains("frontend") && got.stdout.contains("inventory"),
        "{got:?}"
    );
    let yaml = k.cli(&[
        "get",
        "secret",
        "frontend-credential",
        "-n",
        "istio-system",
        "-o",
        "yaml",
    ]);
    assert!(
        yaml.stdout.contains("name: frontend-credential"),
        "{yaml:?}"
    );
    assert!(!yaml.stdout.contains("managedFields"), "{yaml:?}");

    bad_input_is_refused_and_nothing_written(&k);

    let out = k.cli(&["delete", "-f", "virtualservices.yaml"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("virtualservice.networking.istio.io \"frontend\" deleted"),
        "{out:?}"
    );
    let left = k
        .kubectl(&["get", "virtualservices", "-n", "default", "-o", "name"])
        .ok();
    assert_eq!(left.stdout.trim(), "", "{left:?}");
}
