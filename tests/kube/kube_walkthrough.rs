//! The walkthrough on a real API server, as its user types it: `kubectl
//! create secret`, `kubectl apply -f` the Gateway and VirtualServices, a
//! Service and EndpointSlice per backend, two `gatehouse run --store kube`
//! replicas. Then the walkthrough's curl commands, a rotation with
//! `kubectl create secret … --dry-run=client -o yaml | kubectl apply -f -`
//! under load, and the API server stopped, restarted and its etcd compacted.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::site::{KubeSite, SERVE_TIMEOUT};
use crate::support::etcd::Replica;
use crate::support::load::{Target, rotate_under_load};
use crate::support::{Backend, FRONTEND, FRONTEND_BODY, INVENTORY, INVENTORY_BODY, try_poll};
use gatehouse::pki::{HostLayout, LeafSpec};

/// The issue's bound for a rotation to be served.
const WITHIN: Duration = Duration::from_secs(1);

/// Whether `r` answers `host` with `body` to the walkthrough's curl.
fn serves(k: &KubeSite, r: &Replica, host: &str, body: &str) -> bool {
    let Some(port) = r.listening() else {
        return false;
    };
    let out = k.site.walkthrough_curl(host, port).run();
    out.status == 200 && out.body.contains(body)
}

#[track_caller]
fn wait_serving(k: &KubeSite, r: &Replica) {
    let ok = try_poll(SERVE_TIMEOUT, || {
        (serves(k, r, FRONTEND, FRONTEND_BODY) && serves(k, r, INVENTORY, INVENTORY_BODY))
            .then_some(())
    });
    assert!(
        ok.is_some(),
        "replica {} does not serve the walkthrough; log:\n{}",
        r.name,
        r.log()
    );
}

fn frontend_target(k: &KubeSite, r: &Replica) -> Target {
    let pki = k.site.pki(FRONTEND);
    let read = |p| std::fs::read(k.site.path(p)).unwrap();
    Target::new(
        r.addr(),
        FRONTEND,
        &read(&pki.ca_chain),
        &read(&pki.client_cert),
        &read(&pki.client_key),
    )
}

/// A new frontend server certificate from the intermediate the clients
/// trust, in `rotation/I/`; returns its serial.
fn new_frontend_cert(k: &KubeSite, i: usize) -> String {
    let leaf = HostLayout::new(k.site.path("."), FRONTEND)
        .load_intermediate()
        .unwrap()
        .issue(&LeafSpec::server(FRONTEND))
        .unwrap();
    k.site
        .write(&format!("rotation/{i}/cert.pem"), &leaf.cert_pem);
    k.site
        .write(&format!("rotation/{i}/key.pem"), &leaf.key_pem);
    leaf.serial_hex
}

/// The walkthrough's rotation, as a Kubernetes user does it.
fn rotate_with_kubectl(k: &KubeSite, i: usize) {
    let script = format!(
        "kubectl create -n istio-system secret generic frontend-credential \
         --from-file=key=rotation/{i}/key.pem --from-file=cert=rotation/{i}/cert.pem \
         --from-file=cacert=frontend.foocorp.com/2_intermediate/certs/ca-chain.cert.pem \
         --dry-run=client -o yaml | kubectl apply -f -"
    );
    let out = k.shell(&script).ok();
    assert!(
        out.stdout.contains("secret/frontend-credential configured"),
        "{out:?}"
    );
}

/// Two rotations with kubectl under mTLS load through both `replicas`:
/// each serves the new serial within [`WITHIN`], no request fails, and
/// no key material reaches a log.
fn rotate_with_kubectl_under_load(k: &KubeSite, replicas: &[Replica; 2]) {
    let targets: Vec<_> = replicas
        .iter()
        .map(|r| (r, frontend_target(k, r)))
        .collect();
    let mut kubectl = Vec::new();
    let (seen, _) = rotate_under_load(&targets, 2, WITHIN, |i| {
        let serial = new_frontend_cert(k, i);
        let started = Instant::now();
        rotate_with_kubectl(k, i);
        kubectl.push(started.elapsed());
        (serial, started)
    });
    for r in replicas {
        let log = r.log();
        for needle in ["BEGIN", "LS0tLS1CRUdJTi"] {
            assert!(
                !log.contains(needle),
                "replica {} logged {needle:?}",
                r.name
            );
        }
    }
    // From the start of the kubectl pipeline, so the figure includes
    // kubectl's own run; a replica often serves the new certificate
    // before kubectl has exited.
    eprintln!(
        "rotations first served after the kubectl pipeline started: {seen:?} (kubectl ran {kubectl:?})"
    );
}

#[test]
fn walkthrough_with_kubectl_on_two_replicas_and_rotation_under_load() {
    let k = KubeSite::new();
    let frontend = Backend::start(FRONTEND_BODY);
    let inventory = Backend::start(INVENTORY_BODY);
    k.walkthrough(&frontend, &inventory);
    let replicas = [k.replica("a"), k.replica("b")];
    for r in &replicas {
        wait_serving(&k, r);
        // The walkthrough's own curl commands, on each replica.
        for (host, body) in [(FRONTEND, FRONTEND_BODY), (INVENTORY, INVENTORY_BODY)] {
            k.site
                .walkthrough_curl(host, r.port())
                .run()
                .assert_body(body);
        }
        let log = r.log();
        assert!(
            log.contains(
                "RESOURCE NAME:inventory-credential, EVENT: pushed key/cert pair to proxy"
            ),
            "replica {}:\n{log}",
            r.name
        );
    }
    assert!(frontend.hits() >= 2 && inventory.hits() >= 2);

    rotate_with_kubectl_under_load(&k, &replicas);
}

#[test]
fn serving_survives_the_api_server_going_away_and_a_compaction() {
    let mut k = KubeSite::new();
    let frontend = Backend::start(FRONTEND_BODY);
    let inventory = Backend::start(INVENTORY_BODY);
    k.walkthrough(&frontend, &inventory);
    let r = k.replica("a");
    wait_serving(&k, &r);

    k.api.stop();
    // Serving never stops while the API server is away.
    let until = Instant::now() + Duration::from_secs(3);
    let mut answered = 0;
    while Instant::now() < until {
        assert!(
            serves(&k, &r, FRONTEND, FRONTEND_BODY),
            "a request failed with the API server down; log:\n{}",
            r.log()
        );
        answered += 1;
    }
    assert!(answered >= 3);

    k.api.restart();
    // Changes made once it is back, then etcd compacted past every
    // resourceVersion the replica's watches have seen: they must relist.
    let out = k.kubectl(&["delete", "virtualservice", "inventory"]).ok();
    assert!(out.stdout.contains("deleted"), "{out:?}");
    let serial = new_frontend_cert(&k, 9);
    rotate_with_kubectl(&k, 9);
    let compacted = k.api.compact_etcd();
    eprintln!("etcd compacted at revision {compacted}");

    let gone = try_poll(Duration::from_secs(30), || {
        let out = k.site.walkthrough_curl(INVENTORY, r.port()).run();
        (out.status == 404).then_some(())
    });
    assert!(
        gone.is_some(),
        "the VirtualService deleted after the restart is still served; log:\n{}",
        r.log()
    );
    let fe = k.site.client(FRONTEND);
    let rotated = try_poll(Duration::from_secs(30), || {
        let a = fe.get(r.addr(), "/").ok()?;
        (a.status == 200 && a.serial == serial).then_some(())
    });
    assert!(
        rotated.is_some(),
        "the Secret rotated after the restart is not served; log:\n{}",
        r.log()
    );
    assert!(serves(&k, &r, FRONTEND, FRONTEND_BODY));
}
