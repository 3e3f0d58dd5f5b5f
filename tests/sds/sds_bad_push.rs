//! Last good wins: bad credentials pushed by another writer (`apply
//! --validate=false`) are rejected with a reason, and the certificate that
//! was serving keeps serving, with zero failed requests under load.
//!
//! Each bad version of `frontend-credential`: a key that does not match the
//! certificate, garbage PEM, an encrypted key (`openssl pkcs8 -topk8 -v2
//! aes-256-cbc`), an expired certificate, a certificate for another host.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support;
use crate::support::load;
use crate::support::load::{Load, LoadOptions, Target, probe};
use crate::support::{
    FRONTEND, FRONTEND_BODY, Gateway, INVENTORY, INVENTORY_BODY, Walkthrough, poll,
};
use gatehouse::pki::{Ca, HostLayout, LeafSpec};

/// One bad push: what goes into the secret and what the reason must say.
struct Bad {
    name: &'static str,
    cert: String,
    key: String,
    reason: &'static [&'static str],
    /// Whether `apply` (with validation) can tell on its own: a secret does
    /// not know the hosts it will serve, so a wrong host only shows in the
    /// gateway.
    cli_refuses: bool,
}

const GARBAGE_PEM: &str =
    "-----BEGIN CERTIFICATE-----\nthis is not base64 at all!\n-----END CERTIFICATE-----\n";

/// `openssl pkcs8 -topk8 -v2 aes-256-cbc -passout pass:x` of `key_pem`.
fn encrypt_key(w: &Walkthrough, key_pem: &str) -> String {
    let plain = w.site.write("bad/plain.key.pem", key_pem);
    let out = support::command("openssl")
        .args([
            "pkcs8",
            "-topk8",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:x",
            "-in",
        ])
        .arg(&plain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(plain).unwrap();
    let pem = String::from_utf8(out.stdout).unwrap();
    assert!(
        pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{pem}"
    );
    pem
}

fn bad_versions(w: &Walkthrough, ca: &Ca) -> Vec<Bad> {
    let leaf = |spec: &LeafSpec| ca.issue(spec).unwrap();
    let (a, b) = (
        leaf(&LeafSpec::server(FRONTEND)),
        leaf(&LeafSpec::server(FRONTEND)),
    );
    let c = leaf(&LeafSpec::server(FRONTEND));
    let expired = leaf(&LeafSpec::server(FRONTEND).expired());
    let wrong = leaf(&LeafSpec::server("wrong.foocorp.com"));
    vec![
        Bad {
            name: "mismatched-key",
            cert: a.cert_pem.clone(),
            key: b.key_pem.clone(),
            reason: &["key", "does not match the certificate"],
            cli_refuses: true,
        },
        Bad {
            name: "garbage-pem",
            cert: GARBAGE_PEM.to_owned(),
            key: a.key_pem.clone(),
            reason: &["cert", "not valid PEM"],
            cli_refuses: true,
        },
        Bad {
            name: "encrypted-key",
            cert: c.cert_pem.clone(),
            key: encrypt_key(w, &c.key_pem),
            reason: &["key", "encrypted"],
            cli_refuses: true,
        },
        Bad {
            name: "expired",
            cert: expired.cert_pem.clone(),
            key: expired.key_pem.clone(),
            reason: &["cert", "expired"],
            cli_refuses: true,
        },
        Bad {
            name: "wrong-host",
            cert: wrong.cert_pem.clone(),
            key: wrong.key_pem.clone(),
            reason: &[
                "does not cover host frontend.foocorp.com",
                "wrong.foocorp.com",
            ],
            cli_refuses: false,
        },
    ]
}

/// Writes `frontend-credential` with this cert and key (and the walkthrough
/// CA) as `create secret generic --validate=false --dry-run=client -o yaml`
/// prints it; returns the manifest's path.
fn manifest(w: &Walkthrough, name: &str, cert: &str, key: &str) -> String {
    w.site
        .frontend_secret_manifest(&format!("push/{name}"), cert, key, &["--validate=false"])
}

/// `frontend-credential`'s entry in `proxy-config secret -o json`.
fn frontend_entry(w: &Walkthrough, gw: &Gateway) -> serde_json::Value {
    let out = w
        .site
        .cli(&[
            "proxy-config",
            "secret",
            "--admin",
            &gw.admin().to_string(),
            "-o",
            "json",
        ])
        .ok();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["resource"] == "frontend-credential")
        .cloned()
        .unwrap_or_else(|| panic!("no frontend-credential in {v}"))
}

/// Waits until `bad` is REJECTED with its reason while the admin view
/// still shows `serving`; then checks what a user reads: the
/// `proxy-config secret` row and the log line.
fn rejected_and_reported(w: &Walkthrough, gw: &Gateway, bad: &Bad, serving: &str) {
    let entry = poll(
        &format!("{} to be REJECTED", bad.name),
        Duration::from_secs(2),
        || {
            let e = frontend_entry(w, gw);
            let reason = e["reason"].as_str().unwrap_or("");
            (e["state"] == "REJECTED" && bad.reason.iter().all(|r| reason.contains(r))).then_some(e)
        },
    );
    let reason = entry["reason"].as_str().unwrap().to_owned();
    assert_eq!(
        entry["certs"][0]["serial"], serving,
        "{}: the admin view should still show the serving certificate: {entry}",
        bad.name
    );

    // What a user reads: the table row and the log line.
    let table = w
        .site
        .cli(&["proxy-config", "secret", "--admin", &gw.admin().to_string()])
        .ok()
        .stdout;
    let row = table
        .lines()
        .find(|l| l.starts_with("frontend-credential "))
        .unwrap_or_else(|| panic!("{table}"));
    for part in ["REJECTED", serving, reason.as_str()] {
        assert!(
            row.contains(part),
            "{}: {part:?} missing from the row:\n{table}",
            bad.name
        );
    }
    let line = format!(
        "RESOURCE NAME:frontend-credential, EVENT: rejected secret frontend-credential: {reason}; the last good credential keeps serving"
    );
    assert!(
        gw.log().contains(&line),
        "{}: no line {line:?} in\n{}",
        bad.name,
        gw.log()
    );
}

/// A good version after the bad ones is taken at once.
fn a_good_version_is_taken_at_once(w: &Walkthrough, gw: &Gateway, ca: &Ca, fresh: &Target) {
    let good = ca.issue(&LeafSpec::server(FRONTEND)).unwrap();
    let path = manifest(w, "good", &good.cert_pem, &good.key_pem);
    w.site.cli(&["apply", "-f", &path]).ok();
    poll(
        "the good version to be ACTIVE",
        Duration::from_secs(2),
        || {
            let e = frontend_entry(w, gw);
            (e["state"] == "ACTIVE" && e["certs"][0]["serial"] == good.serial_hex.as_str())
                .then_some(())
        },
    );
    let p = probe(fresh);
    assert!(p.ok(), "{p:?}");
    assert_eq!(p.serial.as_deref(), Some(good.serial_hex.as_str()));
}

#[test]
fn bad_pushes_are_rejected_with_a_reason_and_the_old_certificate_keeps_serving() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let pki = w.site.pki(FRONTEND);
    let read = |p| std::fs::read(w.site.path(p)).unwrap();
    let target = Target::new(
        ([127, 0, 0, 1], port).into(),
        FRONTEND,
        &read(&pki.ca_chain),
        &read(&pki.client_cert),
        &read(&pki.client_key),
    );
    let fresh = target.without_resumption();
    let serving = load::serial_of_pem(&read(&pki.server_cert));
    let ca = HostLayout::new(w.site.dir.path(), FRONTEND)
        .load_intermediate()
        .unwrap();
    let bads = bad_versions(&w, &ca);
    let manifests: Vec<String> = bads
        .iter()
        .map(|b| manifest(&w, b.name, &b.cert, &b.key))
        .collect();

    let load = Load::start(&target, LoadOptions::default());
    assert!(
        load.wait_ok(50, Duration::from_secs(10)),
        "{}",
        load.report().summary()
    );

    for (bad, path) in bads.iter().zip(&manifests) {
        if bad.cli_refuses {
            // The CLI itself refuses it; only --validate=false stores it.
            let refused = w.site.cli(&["apply", "-f", path]);
            assert_eq!(
                refused.code,
                Some(1),
                "{}: apply with validation: {refused:?}",
                bad.name
            );
        }
        w.site.cli(&["apply", "--validate=false", "-f", path]).ok();

        rejected_and_reported(&w, &gw, bad, &serving);

        // The old certificate still serves new handshakes.
        for _ in 0..3 {
            let p = probe(&fresh);
            assert!(p.ok(), "{}: {p:?}", bad.name);
            assert_eq!(p.serial.as_deref(), Some(serving.as_str()), "{}", bad.name);
        }
        assert!(
            load.wait_ok(30, Duration::from_secs(10)),
            "{}: requests stopped succeeding: {}",
            bad.name,
            load.report().summary()
        );
    }
    let report = load.stop();
    assert_eq!(report.failed(), 0, "requests failed: {}", report.summary());
    let served = report.full_serials();
    assert_eq!(
        served,
        [serving.as_str()].into(),
        "certificates served under load"
    );
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);

    a_good_version_is_taken_at_once(&w, &gw, &ca, &fresh);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
}
