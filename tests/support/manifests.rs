//! Manifests and certificates made in process: base64, the Secret YAML
//! `kubectl create secret` prints, a fresh server credential from
//! `gatehouse::pki`, and the walkthrough's frontend VirtualService with
//! routes of a test's own in front.

use base64::Engine;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A Secret manifest in exactly the form `kubectl create secret generic
/// NAME --from-file=... --dry-run=client -o yaml` prints: keys sorted,
/// values base64 on one line, `creationTimestamp: null`.
pub fn kubectl_secret_yaml(name: &str, namespace: &str, data: &[(&str, &[u8])]) -> String {
    let mut sorted: Vec<_> = data.to_vec();
    sorted.sort_by_key(|(k, _)| *k);
    let mut s = String::from("apiVersion: v1\ndata:\n");
    for (k, v) in sorted {
        s.push_str(&format!("  {k}: {}\n", b64(v)));
    }
    s.push_str(&format!(
        "kind: Secret\nmetadata:\n  creationTimestamp: null\n  name: {name}\n  namespace: {namespace}\n"
    ));
    s
}

/// A server certificate and key for `host` from a fresh root and
/// intermediate: `(chain PEM (leaf, intermediate, root), key PEM, CA chain PEM)`.
pub struct Cred {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

pub fn issue(host: &str, spec: Option<gatehouse::pki::LeafSpec>) -> Cred {
    use gatehouse::pki::{Ca, KeyType, LeafSpec};
    let root = Ca::new_root(&format!("{host} root"), KeyType::EcdsaP256).unwrap();
    let inter = root.intermediate(&format!("{host} intermediate")).unwrap();
    let leaf = inter
        .issue(&spec.unwrap_or_else(|| LeafSpec::server(host)))
        .unwrap();
    Cred {
        cert: leaf.fullchain_pem(),
        key: leaf.key_pem.clone(),
        ca: inter.chain_pem(),
    }
}

/// The walkthrough's frontend VirtualService with `routes` (entries of
/// its `http:` list) in front of its own `/` route to the frontend.
pub fn frontend_vs_with(routes: &str) -> String {
    let (frontend, _) = super::VIRTUAL_SERVICES_YAML.split_once("---").unwrap();
    frontend.replacen("  http:\n", &format!("  http:\n{routes}"), 1)
}

/// An `http:` entry that sends what `matches` (entries of its `match:`
/// list) matches to the inventory backend.
pub fn to_inventory(matches: &str) -> String {
    format!(
        "  - match:\n{matches}    route:\n    - destination:\n        host: inventory.corp-services.svc.cluster.local\n        port:\n          number: 80\n"
    )
}
