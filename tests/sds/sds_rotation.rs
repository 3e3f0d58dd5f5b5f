//! Rotation without failures: under continuous mTLS load on the frontend
//! (keep-alive connections and fresh ones, resuming and not), 20 rotations
//! of `frontend-credential`, each applied as another writer would
//! (`create secret generic … --dry-run=client -o yaml`, then `apply -f`),
//! cause zero failed requests, and new full handshakes show each new
//! serial soon after the apply returns.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use crate::support::load;
use crate::support::load::{Conn, Kind, Load, LoadOptions, Report, Target};
use crate::support::{FRONTEND, FRONTEND_BODY, Gateway, Walkthrough};
use gatehouse::pki::{HostLayout, LeafSpec};

const ROTATIONS: usize = 20;
/// The goal is 100 ms; the assertion is generous so a loaded machine does
/// not fail it, and the measured numbers are printed for the record.
const SEEN_WITHIN: Duration = Duration::from_secs(1);

/// The frontend client of the walkthrough: trusts the frontend CA chain and
/// presents the frontend client certificate.
fn frontend_target(w: &Walkthrough, port: u16) -> Target {
    let pki = w.site.pki(FRONTEND);
    let read = |p| std::fs::read(w.site.path(p)).unwrap();
    Target::new(
        ([127, 0, 0, 1], port).into(),
        FRONTEND,
        &read(&pki.ca_chain),
        &read(&pki.client_cert),
        &read(&pki.client_key),
    )
}

/// Prepares rotation `i`: a new server certificate and key from the
/// frontend intermediate (the CA the clients already trust), and the
/// Secret manifest `create secret generic --dry-run=client -o yaml` prints
/// for it. Returns (manifest path, new serial).
fn prepare_rotation(w: &Walkthrough, i: usize) -> (String, String) {
    let layout = HostLayout::new(w.site.dir.path(), FRONTEND);
    let leaf = layout
        .load_intermediate()
        .unwrap()
        .issue(&LeafSpec::server(FRONTEND))
        .unwrap();
    let manifest = w.site.frontend_secret_manifest(
        &format!("rotation/{i}"),
        &leaf.cert_pem,
        &leaf.key_pem,
        &[],
    );
    (manifest, leaf.serial_hex)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// After a rotation was seen, no full handshake that began later showed an
/// older certificate; some sessions resumed; and every new serial showed
/// within [`SEEN_WITHIN`] of its apply (`seen`: apply returned, first full
/// handshake with the new serial).
fn no_stale_handshake_and_each_rotation_seen_in_time(
    report: &Report,
    first_serial: String,
    rotations: &[(String, String)],
    seen: &[(Instant, Instant)],
) {
    let serials: Vec<String> = std::iter::once(first_serial)
        .chain(rotations.iter().map(|(_, s)| s.clone()))
        .collect();
    let firsts: Vec<Instant> = seen.iter().map(|(_, first)| *first).collect();
    if let Some(h) = load::stale_handshake(report, &serials, &firsts) {
        panic!(
            "a full handshake begun after its rotation was seen showed an older certificate: {h:?}"
        );
    }

    let kinds = |k: Kind| report.handshakes.iter().filter(|h| h.kind == k).count();
    assert!(
        kinds(Kind::Resumed) > 0,
        "no session was resumed: {}",
        report.summary()
    );
    let latencies: Vec<Duration> = seen
        .iter()
        .map(|(applied, first)| first.saturating_duration_since(*applied))
        .collect();
    let (median, worst) = load::median_worst(&latencies);
    eprintln!(
        "secret rotation: {ROTATIONS} rotations, new serial seen after apply returned: median {:.1} ms, worst {:.1} ms; {} requests ok, 0 failed, {} full and {} resumed handshakes",
        millis(median),
        millis(worst),
        report.ok,
        kinds(Kind::Full),
        kinds(Kind::Resumed),
    );
    assert!(worst <= SEEN_WITHIN, "worst rotation latency {worst:?}");
}

/// Applies each rotation's manifest and waits for its serial to show in a
/// full handshake under `load`; returns (apply returned, first full
/// handshake with the new serial completed) for each.
fn rotate_under_load(
    w: &Walkthrough,
    gw: &Gateway,
    load: &Load,
    rotations: &[(String, String)],
) -> Vec<(Instant, Instant)> {
    let mut seen: Vec<(Instant, Instant)> = Vec::new();
    for (i, (manifest, serial)) in rotations.iter().enumerate() {
        w.site.cli(&["apply", "-f", manifest]).ok();
        let applied = Instant::now();
        let first = load.wait_full_handshake(serial, SEEN_WITHIN);
        let Some(first) = first else {
            panic!(
                "rotation {i}: no new handshake showed serial {serial} within {SEEN_WITHIN:?} of the apply; {}\ngateway log:\n{}",
                load.report().summary(),
                gw.log()
            );
        };
        seen.push((applied, first));
        // Let the load run on this certificate for a moment.
        assert!(
            load.wait_ok(30, Duration::from_secs(10)),
            "rotation {i}: requests stopped succeeding: {}",
            load.report().summary()
        );
    }
    seen
}

#[test]
fn twenty_rotations_under_load_fail_no_request_and_show_each_new_serial() {
    let w = Walkthrough::new();
    let gw = w.start();
    let target = frontend_target(&w, gw.port(443));
    w.site
        .walkthrough_curl(FRONTEND, gw.port(443))
        .run()
        .assert_body(FRONTEND_BODY);
    let first_serial =
        load::serial_of_pem(&std::fs::read(w.site.path(w.site.pki(FRONTEND).server_cert)).unwrap());

    let rotations: Vec<(String, String)> =
        (0..ROTATIONS).map(|i| prepare_rotation(&w, i)).collect();

    // A keep-alive connection opened before every rotation.
    let mut early = Conn::open(&target.without_resumption()).unwrap();
    assert_eq!(early.get(), Ok(200));

    let load = Load::start(
        &target,
        LoadOptions {
            keepalive: 2,
            fresh: 2,
            fresh_resuming: 1,
            requests_per_conn: 50,
            pause: Duration::from_millis(2),
            max_duration: Duration::from_secs(120),
        },
    );
    assert!(
        load.wait_ok(50, Duration::from_secs(10)),
        "the load never got going: {}",
        load.report().summary()
    );

    let seen = rotate_under_load(&w, &gw, &load, &rotations);
    let report = load.stop();
    assert_eq!(
        early.get(),
        Ok(200),
        "the connection opened before the rotations"
    );
    assert_eq!(early.serial, first_serial);

    assert_eq!(
        report.failed(),
        0,
        "requests failed during rotation: {}",
        report.summary()
    );

    no_stale_handshake_and_each_rotation_seen_in_time(&report, first_serial, &rotations, &seen);

    let pushes = gw
        .log()
        .matches("RESOURCE NAME:frontend-credential, EVENT: pushed key/cert pair to proxy")
        .count();
    assert!(
        pushes > ROTATIONS,
        "{pushes} push lines for {ROTATIONS} rotations:\n{}",
        gw.log()
    );
    let secret = w
        .site
        .cli(&["proxy-config", "secret", "--admin", &gw.admin().to_string()])
        .ok()
        .stdout;
    let last = &rotations[ROTATIONS - 1].1;
    assert!(
        secret.lines().any(|l| l.starts_with("frontend-credential ")
            && l.contains("ACTIVE")
            && l.contains(last.as_str())),
        "proxy-config secret should show the last serial {last} ACTIVE:\n{secret}"
    );
}
