//! What the TLS handshake refuses, seen with the walkthrough's curl command:
//! no client certificate on a MUTUAL host, one from the other host's CA, an
//! expired one, one whose usage excludes clientAuth, a revoked one, no SNI, an
//! unknown SNI; a host whose credential is missing or invalid (while the
//! other host keeps serving); and OPTIONAL_MUTUAL.
//!
//! A refusal means curl fails with no HTTP status at all (`000`) and no
//! request reaches a backend. Each refusal test also shows the same setup
//! serving the walkthrough's own client, so the refusal is the point tested.
#![allow(clippy::unwrap_used)]

use crate::support;
use crate::support::{
    FRONTEND, FRONTEND_BODY, GATEWAY_YAML, INVENTORY, INVENTORY_BODY, START_TIMEOUT, Walkthrough,
    poll,
};
use gatehouse::pki::LeafSpec;

#[test]
fn no_client_certificate_on_a_mutual_host() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    for host in [FRONTEND, INVENTORY] {
        for http2 in [false, true] {
            let curl = w.site.walkthrough_curl(host, port).no_client_cert();
            let curl = curl.http2_if(http2);
            curl.run().assert_refused();
        }
    }
    assert_eq!(w.backend_hits(), 0);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn client_certificate_from_the_other_hosts_ca() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let (front, inv) = (w.site.pki(FRONTEND), w.site.pki(INVENTORY));
    // Inventory's client certificate on frontend, and the reverse.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .client_cert(&inv.client_cert, &inv.client_key)
        .run()
        .assert_refused();
    w.site
        .walkthrough_curl(INVENTORY, port)
        .client_cert(&front.client_cert, &front.client_key)
        .run()
        .assert_refused();
    assert_eq!(w.backend_hits(), 0);
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);
}

#[test]
fn expired_client_certificate() {
    let w = Walkthrough::new();
    let (cert, key) =
        w.site
            .issue_client(FRONTEND, "expired", &LeafSpec::client("expired").expired());
    let gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .client_cert(&cert, &key)
        .run()
        .assert_refused();
    assert_eq!(w.backend_hits(), 0);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn not_yet_valid_client_certificate() {
    let w = Walkthrough::new();
    let (cert, key) = w.site.issue_client(
        FRONTEND,
        "future",
        &LeafSpec::client("future").not_yet_valid(),
    );
    let gw = w.start();
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .client_cert(&cert, &key)
        .run()
        .assert_refused();
    assert_eq!(w.backend_hits(), 0);
}

#[test]
fn client_certificate_without_client_auth_usage() {
    let w = Walkthrough::new();
    // Issued by the right CA, but its extended key usage says serverAuth only.
    let spec = LeafSpec::client("server-only")
        .client_auth(false)
        .server_auth(true);
    let (cert, key) = w.site.issue_client(FRONTEND, "server-only", &spec);
    let gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .client_cert(&cert, &key)
        .run()
        .assert_refused();
    // The server's own certificate and key, used as a client certificate.
    let pki = w.site.pki(FRONTEND);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .client_cert(&pki.server_cert, &pki.server_key)
        .run()
        .assert_refused();
    assert_eq!(w.backend_hits(), 0);
    // No extended key usage at all: for any purpose (RFC 5280), as OpenSSL
    // and Envoy take it (istio.io's own tasks make such client certificates).
    let spec = LeafSpec::client("no-eku")
        .client_auth(false)
        .server_auth(false);
    let (cert, key) = w.site.issue_client(FRONTEND, "no-eku", &spec);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .client_cert(&cert, &key)
        .run()
        .assert_body(FRONTEND_BODY);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn client_certificate_revoked_in_the_crl() {
    let w = Walkthrough::with_secrets(&[INVENTORY]);
    let pki = w.site.pki(FRONTEND);
    // The walkthrough's secret, plus a CRL under `ca.crl` that revokes one client.
    let (revoked_cert, revoked_key) = w
        .site
        .walkthrough_secret_revoking(FRONTEND, "revoked-client");
    w.site
        .cli(&["pki", "client", FRONTEND, "good-client", "--out", "."])
        .ok();
    let (good_cert, good_key) = pki.named_client("good-client");
    let gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .client_cert(&revoked_cert, &revoked_key)
        .run()
        .assert_refused();
    assert_eq!(w.backend_hits(), 0);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .client_cert(&good_cert, &good_key)
        .run()
        .assert_body(FRONTEND_BODY);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
}

#[test]
fn no_sni_is_refused() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let pki = w.site.pki(FRONTEND);
    // curl sends no SNI when the URL names an IP address.
    for host_header in [FRONTEND, INVENTORY] {
        w.site
            .curl(&format!("https://127.0.0.1:{port}/"))
            .host_header(host_header)
            .cacert(&pki.ca_chain)
            .client_cert(&pki.client_cert, &pki.client_key)
            .run()
            .assert_refused();
    }
    // openssl without -servername (and -noservername to be sure).
    let out = w.site.s_client(
        port,
        &["-noservername", "-CAfile", pki.ca_chain.to_str().unwrap()],
    );
    assert_ne!(out.code, Some(0), "{}", out.stdout);
    assert!(
        !out.stdout.contains("-----BEGIN CERTIFICATE-----"),
        "{}",
        out.stdout
    );
    assert_eq!(w.backend_hits(), 0);
}

#[test]
fn unknown_sni_is_refused() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let pki = w.site.pki(FRONTEND);
    for name in [
        "unknown.foocorp.com",
        "foocorp.com",
        "frontend.foocorp.com.evil.example",
    ] {
        w.site
            .curl(&format!("https://{name}:{port}/"))
            .resolve(name, port)
            .host_header(FRONTEND)
            .cacert(&pki.ca_chain)
            .client_cert(&pki.client_cert, &pki.client_key)
            .run()
            .assert_refused();
        let out = w.site.s_client(port, &["-servername", name]);
        assert_ne!(out.code, Some(0), "{name}: {}", out.stdout);
        assert!(
            !out.stdout.contains("-----BEGIN CERTIFICATE-----"),
            "{name}: {}",
            out.stdout
        );
    }
    assert_eq!(w.backend_hits(), 0);
}

#[test]
fn missing_credential_refuses_that_host_only() {
    // The Gateway names inventory-credential, which does not exist.
    let w = Walkthrough::with_secrets(&[FRONTEND]);
    let gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_refused();
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .http2()
        .run()
        .assert_body(FRONTEND_BODY);
    assert_eq!(w.inventory.hits(), 0);

    // Creating the secret brings the host up without a restart.
    w.site.create_walkthrough_secret(INVENTORY);
    poll(
        "inventory to serve once its secret exists",
        START_TIMEOUT,
        || {
            let out = w.site.walkthrough_curl(INVENTORY, port).run();
            (out.status == 200).then_some(out)
        },
    )
    .assert_body(INVENTORY_BODY);
}

#[test]
fn invalid_credential_refuses_that_host_only() {
    let w = Walkthrough::with_secrets(&[FRONTEND]);
    let (front, inv) = (w.site.pki(FRONTEND), w.site.pki(INVENTORY));
    // Inventory's certificate with frontend's key: stored only because
    // validation is switched off.
    let args = |validate: bool| {
        let mut a = vec![
            "create".to_owned(),
            "-n".into(),
            "istio-system".into(),
            "secret".into(),
            "generic".into(),
            "inventory-credential".into(),
            format!("--from-file=key={}", front.server_key.display()),
            format!("--from-file=cert={}", inv.server_cert.display()),
            format!("--from-file=cacert={}", inv.ca_chain.display()),
        ];
        if !validate {
            a.push("--validate=false".into());
        }
        a
    };
    let with_validation = args(true);
    let refused = w.site.cli(
        &with_validation
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        refused.code,
        Some(1),
        "a mismatched key was accepted: {refused:?}"
    );
    let without = args(false);
    w.site
        .cli(&without.iter().map(String::as_str).collect::<Vec<_>>())
        .ok();

    assert_inventory_down_frontend_up(&w, "key");
}

/// Inventory refuses handshakes (curl over HTTP/1.1 and HTTP/2, and
/// `openssl s_client` gets no certificate), frontend serves, and
/// `proxy-config secret` shows inventory's credential rejected, naming the
/// secret key (`field`) that is wrong.
fn assert_inventory_down_frontend_up(w: &Walkthrough, field: &str) {
    let gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_refused();
    w.site
        .walkthrough_curl(INVENTORY, port)
        .http2()
        .run()
        .assert_refused();
    let out = w.site.s_client(port, &["-servername", INVENTORY]);
    assert!(
        !out.stdout.contains("-----BEGIN CERTIFICATE-----"),
        "{}",
        out.stdout
    );
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    assert_eq!(w.inventory.hits(), 0);

    // The operator can see why.
    let admin = gw.admin().to_string();
    let out = w
        .site
        .cli(&["proxy-config", "secret", "--admin", &admin])
        .ok();
    let row = out
        .stdout
        .lines()
        .find(|l| l.starts_with("inventory-credential "))
        .unwrap_or_else(|| panic!("no inventory-credential row:\n{}", out.stdout));
    let columns: Vec<&str> = row
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(columns.get(2), Some(&"REJECTED"), "{row}");
    let why = columns.last().unwrap();
    assert!(
        why.starts_with(&format!("{field}: ")),
        "the reason does not name {field:?}: {row}"
    );
}

/// A kubectl-style Secret manifest for inventory-credential.
fn inventory_secret_yaml(site: &support::Site, cert: &str, key: &str, cacert: &str) -> String {
    use base64::Engine;
    let b64 = |rel: &str| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(site.path(rel)).unwrap())
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: inventory-credential\n  namespace: istio-system\ntype: Opaque\ndata:\n  cert: {}\n  key: {}\n  cacert: {}\n",
        b64(cert),
        b64(key),
        b64(cacert)
    )
}

#[test]
fn invalid_credential_applied_with_validate_false_refuses_that_host_only() {
    let front_key = support::Pki::new(FRONTEND).server_key;
    let inv = support::Pki::new(INVENTORY);
    // (what, cert, key, the secret key the rejection must name)
    let cases = [
        ("mismatched key", inv.server_cert.clone(), front_key, "key"),
        (
            "garbage certificate",
            "garbage.pem".into(),
            inv.server_key.clone(),
            "cert",
        ),
    ];
    for (what, cert, key, field) in cases {
        let w = Walkthrough::with_secrets(&[FRONTEND]);
        w.site.write(
            "garbage.pem",
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
        );
        let yaml = inventory_secret_yaml(
            &w.site,
            cert.to_str().unwrap(),
            key.to_str().unwrap(),
            inv.ca_chain.to_str().unwrap(),
        );
        w.site.write("inventory-secret.yaml", &yaml);
        let refused = w.site.cli(&["apply", "-f", "inventory-secret.yaml"]);
        assert_eq!(
            refused.code,
            Some(1),
            "{what}: applied with validation: {refused:?}"
        );
        w.site
            .cli(&["apply", "--validate=false", "-f", "inventory-secret.yaml"])
            .ok();
        assert_inventory_down_frontend_up(&w, field);
    }
}

/// The walkthrough with frontend switched to OPTIONAL_MUTUAL.
fn optional_mutual() -> Walkthrough {
    let w = Walkthrough::new();
    let yaml = GATEWAY_YAML.replacen("mode: MUTUAL", "mode: OPTIONAL_MUTUAL", 1);
    assert_ne!(yaml, GATEWAY_YAML);
    w.site.apply("foocorp/gateway.yaml", &yaml);
    w
}

#[test]
fn optional_mutual_serves_without_a_certificate() {
    let w = optional_mutual();
    let gw = w.start();
    let port = gw.port(443);
    for http2 in [false, true] {
        let curl = w.site.walkthrough_curl(FRONTEND, port).no_client_cert();
        let curl = curl.http2_if(http2);
        curl.run().assert_body(FRONTEND_BODY);
        assert!(
            w.frontend.last().all("x-forwarded-client-cert").is_empty(),
            "{:?}",
            w.frontend.last()
        );
    }
    // With the walkthrough's client certificate it is forwarded.
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    let xfcc = w.frontend.last().one("x-forwarded-client-cert").to_owned();
    assert!(
        xfcc.contains("Subject=\"CN=frontend.foocorp.com\""),
        "{xfcc}"
    );
    // Inventory is still MUTUAL.
    w.site
        .walkthrough_curl(INVENTORY, port)
        .no_client_cert()
        .run()
        .assert_refused();
    assert_eq!(w.inventory.hits(), 0);
}

#[test]
fn optional_mutual_refuses_an_invalid_certificate() {
    let w = optional_mutual();
    let (exp_cert, exp_key) =
        w.site
            .issue_client(FRONTEND, "expired", &LeafSpec::client("expired").expired());
    let gw = w.start();
    let port = gw.port(443);
    let inv = w.site.pki(INVENTORY);
    let before = w.frontend.hits();
    for (cert, key) in [(inv.client_cert, inv.client_key), (exp_cert, exp_key)] {
        w.site
            .walkthrough_curl(FRONTEND, port)
            .client_cert(&cert, &key)
            .run()
            .assert_refused();
    }
    assert_eq!(w.frontend.hits(), before);
}
