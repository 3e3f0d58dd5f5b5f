//! Scale-out, done when #1: a three-member etcd cluster and two gateway
//! replicas. The walkthrough, written once through the CLI, is served by
//! both replicas within 1 s; rotating the frontend credential (`create
//! secret … --dry-run=client -o yaml`, then `apply -f`) makes both present
//! the new certificate within 1 s, with no failed request under mTLS load
//! through both; neither replica logs key material.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support;
use crate::support::etcd;
use crate::support::etcd::{Cluster, EtcdSite, Replica};
use crate::support::load;
use crate::support::load::Target;
use crate::support::{Backend, FRONTEND, FRONTEND_BODY, INVENTORY, INVENTORY_BODY, Site};
use gatehouse::pki::{HostLayout, LeafSpec};

/// The issue's bound for "served by both replicas".
const WITHIN: Duration = Duration::from_secs(1);
const ROTATIONS: usize = 3;

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Whether `r` serves both hosts of the walkthrough right now.
fn serves_walkthrough(r: &Replica, fe: &etcd::Client, inv: &etcd::Client) -> bool {
    let Some(port) = r.listening() else {
        return false;
    };
    let addr = ([127, 0, 0, 1], port).into();
    fe.body(addr, "/").as_deref() == Some(&format!("{FRONTEND_BODY}\n"))
        && inv.body(addr, "/").as_deref() == Some(&format!("{INVENTORY_BODY}\n"))
}

/// The frontend's load target on replica `r`.
fn frontend_target(site: &EtcdSite, r: &Replica) -> Target {
    let pki = site.site.pki(FRONTEND);
    let read = |p| std::fs::read(site.path(p)).unwrap();
    Target::new(
        r.addr(),
        FRONTEND,
        &read(&pki.ca_chain),
        &read(&pki.client_cert),
        &read(&pki.client_key),
    )
}

/// A new frontend server certificate from the intermediate the clients
/// trust, and the manifest `create secret … --dry-run=client -o yaml`
/// prints for it. Returns (manifest path, serial).
fn prepare_rotation(site: &EtcdSite, i: usize) -> (String, String) {
    let leaf = HostLayout::new(site.site.dir.path(), FRONTEND)
        .load_intermediate()
        .unwrap()
        .issue(&LeafSpec::server(FRONTEND))
        .unwrap();
    let dir = format!("rotation/{i}");
    site.write(&format!("{dir}/cert.pem"), &leaf.cert_pem);
    site.write(&format!("{dir}/key.pem"), &leaf.key_pem);
    let args = Site::create_secret_args(
        FRONTEND,
        &format!("{dir}/key.pem"),
        &format!("{dir}/cert.pem"),
        &["--dry-run=client", "-o", "yaml"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = site.cli(&args).ok();
    let manifest = format!("{dir}/secret.yaml");
    site.write(&manifest, &out.stdout);
    (manifest, leaf.serial_hex)
}

/// The walkthrough, once, through the CLI: both `replicas` serve it within
/// [`WITHIN`] of the apply, to the in-process client and to its curl commands.
fn walkthrough_served_by_both(
    site: &EtcdSite,
    replicas: [&Replica; 2],
    fe: &etcd::Client,
    inv: &etcd::Client,
) {
    site.create_walkthrough_secret(FRONTEND);
    site.create_walkthrough_secret(INVENTORY);
    let out = site.cli(&["apply", "-f", "foocorp/"]).ok();
    let applied = Instant::now();
    for line in [
        "gateway.networking.istio.io/foocorp-gateway created",
        "virtualservice.networking.istio.io/frontend created",
        "serviceentry.networking.istio.io/inventory created",
    ] {
        assert!(out.stdout.contains(line), "{line:?} in {out:?}");
    }
    let mut served = Vec::new();
    for r in replicas {
        let ok = support::try_poll(WITHIN, || serves_walkthrough(r, fe, inv).then_some(()));
        assert!(
            ok.is_some(),
            "replica {} did not serve the walkthrough within {WITHIN:?} of the apply; log:\n{}",
            r.name,
            r.log()
        );
        served.push(applied.elapsed());
    }
    // And with the walkthrough's own curl commands.
    for r in replicas {
        for (host, body) in [(FRONTEND, FRONTEND_BODY), (INVENTORY, INVENTORY_BODY)] {
            site.site
                .walkthrough_curl(host, r.port())
                .run()
                .assert_body(body);
        }
    }
    eprintln!(
        "walkthrough served by replica a after {}, by b after {}",
        millis(served[0]),
        millis(served[1])
    );
}

/// [`ROTATIONS`] rotations under load through both `replicas`: each shows
/// the new serial within [`WITHIN`], no request fails. Returns when each
/// replica first showed each serial after the apply, and the load reports.
fn rotate_under_load_through_both(
    site: &EtcdSite,
    replicas: [&Replica; 2],
    fe: &etcd::Client,
) -> (Vec<Duration>, Vec<load::Report>) {
    let rotations: Vec<(String, String)> =
        (0..ROTATIONS).map(|i| prepare_rotation(site, i)).collect();
    let targets: Vec<_> = replicas
        .iter()
        .map(|r| (*r, frontend_target(site, r)))
        .collect();
    let (seen_after, reports) = load::rotate_under_load(&targets, ROTATIONS, WITHIN, |i| {
        let (manifest, serial) = &rotations[i];
        let out = site.cli(&["apply", "-f", manifest]).ok();
        let applied = Instant::now();
        assert!(
            out.stdout.contains("secret/frontend-credential configured"),
            "{out:?}"
        );
        (serial.clone(), applied)
    });
    // A new connection to each replica now shows the last certificate.
    let last = &rotations[ROTATIONS - 1].1;
    for r in replicas {
        let answer = fe.get(r.addr(), "/").unwrap();
        assert_eq!(
            (answer.status, &answer.serial),
            (200, last),
            "replica {}",
            r.name
        );
    }
    (seen_after, reports)
}

/// `r` pushed every version and logged no key material.
fn pushed_every_version_and_no_key_material(r: &Replica) {
    let log = r.log();
    let pushes = log
        .matches("RESOURCE NAME:frontend-credential, EVENT: pushed key/cert pair")
        .count();
    assert!(
        pushes > ROTATIONS,
        "replica {}: {pushes} pushes; log:\n{log}",
        r.name
    );
    for needle in ["BEGIN", "LS0tLS1CRUdJTi"] {
        assert!(
            !log.contains(needle),
            "replica {} logged {needle:?}:\n{log}",
            r.name
        );
    }
}

#[test]
fn two_replicas_serve_the_walkthrough_and_rotate_together_under_load() {
    let started = Instant::now();
    let cluster = Cluster::start(3);
    let site = EtcdSite::new(&cluster.url());
    for host in [FRONTEND, INVENTORY] {
        site.site.pki_init(host);
    }
    let frontend = Backend::start(FRONTEND_BODY);
    let inventory = Backend::start(INVENTORY_BODY);
    site.write_walkthrough_objects(&frontend, &inventory, 1);

    // Two replicas on an empty store: live, nothing to serve yet.
    let a = site.start_replica("a", &cluster.url());
    let b = site.start_replica("b", &cluster.url());
    for r in [&a, &b] {
        r.wait_ready("ready: live", Duration::from_secs(10));
    }
    let fe = site.client(FRONTEND);
    let inv = site.client(INVENTORY);
    let setup = started.elapsed();

    walkthrough_served_by_both(&site, [&a, &b], &fe, &inv);

    let (seen_after, reports) = rotate_under_load_through_both(&site, [&a, &b], &fe);

    for r in [&a, &b] {
        pushed_every_version_and_no_key_material(r);
    }
    eprintln!(
        "rotations seen by full handshakes after apply returned (a, b per rotation; 0 = before it returned): {:?}; requests ok: a {}, b {}; setup {}, total {}",
        seen_after.iter().map(|d| millis(*d)).collect::<Vec<_>>(),
        reports[0].ok,
        reports[1].ok,
        millis(setup),
        millis(started.elapsed()),
    );
}
