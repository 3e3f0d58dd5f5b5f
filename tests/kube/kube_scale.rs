//! Scale on a real API server: 10,000 TLS Secrets and 10,000 Gateways
//! (one MUTUAL server each, `hN.scale.foocorp.com`, its own Secret). A
//! `gatehouse run --store kube` started on them becomes ready and serves
//! the last host; then one Secret updated with kubectl is served. The
//! figures are printed (run with `--nocapture`, in release for the note):
//! timings are measured here, not asserted beyond generous bounds.
#![allow(clippy::unwrap_used)]

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::site::KubeSite;
use crate::support::{FRONTEND, try_poll};
use gatehouse::pki::{HostLayout, LeafSpec};

const N: usize = 10_000;
/// kubectl processes creating objects at once.
const WRITERS: usize = 4;

fn host(i: usize) -> String {
    format!("h{i}.scale.foocorp.com")
}

/// One Secret `scale-I` (key, cert, cacert) and one Gateway for host I,
/// as JSON (kubectl reads a JSON List several times faster than YAML).
fn objects(i: usize, key: &str, cert: &str, ca: &str) -> [serde_json::Value; 2] {
    [
        serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": format!("scale-{i}"), "namespace": "istio-system"},
            "data": {"key": key, "cert": cert, "cacert": ca},
        }),
        serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": format!("scale-{i}"), "namespace": "default"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [{
                    "port": {"number": 443, "name": format!("https-{i}"), "protocol": "HTTPS"},
                    "hosts": [host(i)],
                    "tls": {"mode": "MUTUAL", "credentialName": format!("scale-{i}")},
                }],
            },
        }),
    ]
}

fn list(items: Vec<serde_json::Value>) -> String {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

#[test]
fn ten_thousand_secrets_and_gateways() {
    let k = KubeSite::new();
    let b64 = |s: &str| STANDARD.encode(s.as_bytes());
    let inter = HostLayout::new(k.site.path("."), FRONTEND)
        .load_intermediate()
        .unwrap();
    let leaf = inter
        .issue(&LeafSpec::server("*.scale.foocorp.com"))
        .unwrap();
    let pki = k.site.pki(FRONTEND);
    let ca = std::fs::read_to_string(k.site.path(&pki.ca_chain)).unwrap();
    let (key, cert, ca) = (b64(&leaf.key_pem), b64(&leaf.cert_pem), b64(&ca));
    let mut files: Vec<Vec<serde_json::Value>> = vec![Vec::new(); WRITERS];
    for i in 0..N {
        files[i % WRITERS].extend(objects(i, &key, &cert, &ca));
    }
    let mut script = String::new();
    for (w, items) in files.into_iter().enumerate() {
        k.site.write(&format!("scale/{w}.json"), list(items));
        write!(script, "kubectl create -f scale/{w}.json >/dev/null & ").unwrap();
    }
    script.push_str("wait");
    let t = Instant::now();
    let mut c = crate::support::command("sh");
    c.args(["-ec", &script])
        .current_dir(k.site.path("."))
        .env("KUBECONFIG", k.kubeconfig());
    let out = crate::support::run_bounded(c, Duration::from_secs(900)).ok();
    let created = t.elapsed();
    let count = k
        .kubectl(&["get", "secrets", "-n", "istio-system", "-o", "name"])
        .ok();
    assert_eq!(
        count
            .stdout
            .lines()
            .filter(|l| l.contains("scale-"))
            .count(),
        N,
        "{out:?}"
    );

    eprintln!("scale: {N} Secrets + {N} Gateways created with kubectl in {created:?}");
    let read = |p: &std::path::PathBuf| std::fs::read(k.site.path(p)).unwrap();
    let client_for = |h: &str| {
        crate::support::Client::new(
            h,
            &read(&pki.ca_chain),
            &read(&pki.client_cert),
            &read(&pki.client_key),
        )
    };
    let started = Instant::now();
    let r = k.replica("scale");
    let client = client_for(&host(N - 1));
    let ready = try_poll(Duration::from_secs(120), || {
        let port = r.listening()?;
        let a = client.get(([127, 0, 0, 1], port).into(), "/").ok()?;
        (a.serial == leaf.serial_hex).then_some(started.elapsed())
    });
    let Some(ready) = ready else {
        panic!("the last of {N} hosts was not served; log:\n{}", r.log());
    };

    // One Secret updated with kubectl: its host serves the new certificate.
    let fresh = inter
        .issue(&LeafSpec::server("*.scale.foocorp.com"))
        .unwrap();
    let one = N / 2;
    let [secret, _] = objects(one, &b64(&fresh.key_pem), &b64(&fresh.cert_pem), &ca);
    k.site.write("scale/one.json", secret.to_string());
    k.kubectl(&["apply", "-f", "scale/one.json"]).ok();
    let applied = Instant::now();
    // A new client per try: one that resumed a session from before the
    // update would keep seeing the old certificate, as it should.
    let updated = try_poll(Duration::from_secs(30), || {
        let a = client_for(&host(one)).get(r.addr(), "/").ok()?;
        (a.serial == fresh.serial_hex).then_some(applied.elapsed())
    });
    let Some(updated) = updated else {
        panic!("the updated Secret was not served; log:\n{}", r.log());
    };
    eprintln!(
        "scale: gatehouse run served the last host {ready:?} after start; one Secret update served {updated:?} after kubectl apply returned"
    );
}
