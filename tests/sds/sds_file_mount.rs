//! File-mounted certificates (the walkthrough's first method): the frontend
//! server reads `tls.serverCertificate`, `privateKey` and `caCertificates`
//! from a directory laid out the way the kubelet mounts a Secret
//! (`tls.crt -> ..data/tls.crt`, `..data -> ..<version>`), and 20
//! rotations by atomic symlink swap (`ln -s ..vN ..data_tmp && mv -T
//! ..data_tmp ..data`, then the old version removed) under continuous mTLS
//! load cause zero failed requests, each new serial seen within a second.
//! A bad version (a key that does not match) is rejected like a bad
//! secret: the last good files keep serving.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::load;
use crate::support::load::{Conn, Kind, Load, LoadOptions, Report, Target, probe};
use crate::support::{
    FRONTEND, FRONTEND_BODY, Gateway, INVENTORY, INVENTORY_BODY, Walkthrough, poll,
};
use gatehouse::pki::{Ca, HostLayout, Issued, LeafSpec};

const ROTATIONS: usize = 20;
const SEEN_WITHIN: Duration = Duration::from_secs(1);

/// The walkthrough's Gateway with the frontend server reading files.
fn gateway(mount: &Path) -> String {
    let m = mount.display();
    format!(
        "apiVersion: networking.istio.io/v1alpha3
kind: Gateway
metadata:
  name: foocorp-gateway
  namespace: default
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: https-frontend
      protocol: HTTPS
    tls:
      mode: MUTUAL
      serverCertificate: {m}/tls.crt
      privateKey: {m}/tls.key
      caCertificates: {m}/ca.crt
    hosts:
    - \"frontend.foocorp.com\"
  - port:
      number: 443
      name: https-inventory
      protocol: HTTPS
    tls:
      mode: MUTUAL
      credentialName: \"inventory-credential\"
    hosts:
    - \"inventory.foocorp.com\"
"
    )
}

/// A Secret volume as the kubelet writes it.
struct Mount {
    dir: PathBuf,
    ca: String,
    version: Option<PathBuf>,
}

impl Mount {
    /// `..data` pointing at a first version, and the user-visible names
    /// pointing through `..data`.
    fn new(dir: PathBuf, ca: String, leaf: &Issued) -> Mount {
        std::fs::create_dir_all(&dir).unwrap();
        let mut m = Mount {
            dir,
            ca,
            version: None,
        };
        m.swap(0, leaf);
        for name in ["tls.crt", "tls.key", "ca.crt"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), m.dir.join(name)).unwrap();
        }
        m
    }

    /// Writes version `n` beside the current one, points `..data` at it in
    /// one rename, then removes the old version, as the kubelet does.
    fn swap(&mut self, n: usize, leaf: &Issued) {
        let name = format!("..v{n}");
        let version = self.dir.join(&name);
        std::fs::create_dir(&version).unwrap();
        std::fs::write(version.join("tls.crt"), &leaf.cert_pem).unwrap();
        std::fs::write(version.join("tls.key"), &leaf.key_pem).unwrap();
        std::fs::write(version.join("ca.crt"), &self.ca).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        // `mv -T ..data_tmp ..data`: rename(2) replaces the old link atomically.
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if let Some(old) = self.version.replace(version) {
            std::fs::remove_dir_all(old).unwrap();
        }
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The walkthrough with the frontend's certificate mounted from files,
/// running and answering; a frontend client; the CA that client trusts.
struct Setup {
    w: Walkthrough,
    ca: Ca,
    first: Issued,
    mount: Mount,
    gw: Gateway,
    port: u16,
    target: Target,
}

fn setup() -> Setup {
    let w = Walkthrough::with_secrets(&[INVENTORY]);
    let pki = w.site.pki(FRONTEND);
    let read = |p| std::fs::read(w.site.path(p)).unwrap();
    let ca = HostLayout::new(w.site.dir.path(), FRONTEND)
        .load_intermediate()
        .unwrap();
    let first = ca.issue(&LeafSpec::server(FRONTEND)).unwrap();
    let ca_chain = String::from_utf8(read(&pki.ca_chain)).unwrap();
    let mount = Mount::new(w.site.path("mount/frontend-certs"), ca_chain, &first);
    w.site.apply("foocorp/gateway.yaml", &gateway(&mount.dir));
    let gw = w.start();
    let port = gw.port(443);
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    let target = Target::new(
        ([127, 0, 0, 1], port).into(),
        FRONTEND,
        &read(&pki.ca_chain),
        &read(&pki.client_cert),
        &read(&pki.client_key),
    );
    Setup {
        w,
        ca,
        first,
        mount,
        gw,
        port,
        target,
    }
}

impl Mount {
    /// The SDS resource name of the mounted certificate.
    fn resource(&self) -> String {
        format!("file-cert:{0}/tls.crt~{0}/tls.key", self.dir.display())
    }
}

/// No full handshake that began after a swap was seen showed an older
/// certificate, and every new serial showed within [`SEEN_WITHIN`] of its
/// swap (`seen`: swapped, first full handshake with the new serial).
fn no_stale_handshake_and_each_swap_seen_in_time(
    report: &Report,
    leaves: &[Issued],
    seen: &[(Instant, Instant)],
) {
    let serials: Vec<String> = leaves.iter().map(|l| l.serial_hex.clone()).collect();
    let firsts: Vec<Instant> = seen.iter().map(|(_, f)| *f).collect();
    if let Some(h) = load::stale_handshake(report, &serials, &firsts) {
        panic!("a full handshake begun after its swap was seen showed an older certificate: {h:?}");
    }
    let latencies: Vec<Duration> = seen
        .iter()
        .map(|(s, f)| f.saturating_duration_since(*s))
        .collect();
    let (median, worst) = load::median_worst(&latencies);
    let kinds = |k: Kind| report.handshakes.iter().filter(|h| h.kind == k).count();
    eprintln!(
        "file-mounted rotation: {ROTATIONS} symlink swaps, new serial seen after the swap: median {:.1} ms, worst {:.1} ms; {} requests ok, 0 failed, {} full and {} resumed handshakes",
        millis(median),
        millis(worst),
        report.ok,
        kinds(Kind::Full),
        kinds(Kind::Resumed),
    );
    assert!(worst <= SEEN_WITHIN, "worst swap latency {worst:?}");
}

/// Each version was pushed once, whole (never read half old, half new),
/// and `proxy-config secret` shows the `last` serial ACTIVE.
fn each_version_pushed_once_whole(w: &Walkthrough, gw: &Gateway, mount: &Mount, last: &str) {
    let log = gw.log();
    let resource = mount.resource();
    let pushes = log
        .matches(&format!(
            "RESOURCE NAME:{resource}, EVENT: pushed key/cert pair to proxy"
        ))
        .count();
    assert_eq!(pushes, ROTATIONS + 1, "{log}");
    assert!(!log.contains("rejected"), "a swap was seen torn:\n{log}");
    let secret = w
        .site
        .cli(&["proxy-config", "secret", "--admin", &gw.admin().to_string()])
        .ok()
        .stdout;
    assert!(
        secret
            .lines()
            .any(|l| l.starts_with(&resource) && l.contains("ACTIVE") && l.contains(last)),
        "proxy-config secret should show {last} ACTIVE for {resource}:\n{secret}"
    );
}

#[test]
fn twenty_symlink_swaps_under_load_fail_no_request_and_show_each_new_serial() {
    let Setup {
        w,
        ca,
        first,
        mut mount,
        gw,
        port,
        target,
    } = setup();
    let leaves: Vec<Issued> = std::iter::once(first)
        .chain((0..ROTATIONS).map(|_| ca.issue(&LeafSpec::server(FRONTEND)).unwrap()))
        .collect();
    let mut early = Conn::open(&target.without_resumption()).unwrap();
    assert_eq!(early.get(), Ok(200));
    assert_eq!(early.serial, leaves[0].serial_hex);

    let load = Load::start(
        &target,
        LoadOptions {
            requests_per_conn: 50,
            max_duration: Duration::from_secs(120),
            ..LoadOptions::default()
        },
    );
    assert!(
        load.wait_ok(50, Duration::from_secs(10)),
        "{}",
        load.report().summary()
    );

    // (swapped, first full handshake with the new serial completed)
    let mut seen: Vec<(Instant, Instant)> = Vec::new();
    for (i, leaf) in leaves.iter().enumerate().skip(1) {
        mount.swap(i, leaf);
        let swapped = Instant::now();
        let Some(first) = load.wait_full_handshake(&leaf.serial_hex, SEEN_WITHIN) else {
            panic!(
                "swap {i}: no new handshake showed serial {} within {SEEN_WITHIN:?}; {}\ngateway log:\n{}",
                leaf.serial_hex,
                load.report().summary(),
                gw.log()
            );
        };
        seen.push((swapped, first));
        assert!(
            load.wait_ok(30, Duration::from_secs(10)),
            "swap {i}: requests stopped succeeding: {}",
            load.report().summary()
        );
    }
    let report = load.stop();
    assert_eq!(
        report.failed(),
        0,
        "requests failed during the swaps: {}",
        report.summary()
    );
    assert_eq!(
        early.get(),
        Ok(200),
        "the connection opened before the swaps"
    );

    no_stale_handshake_and_each_swap_seen_in_time(&report, &leaves, &seen);

    each_version_pushed_once_whole(&w, &gw, &mount, &leaves[ROTATIONS].serial_hex);
    w.site
        .walkthrough_curl(INVENTORY, port)
        .run()
        .assert_body(INVENTORY_BODY);
}

#[test]
fn a_bad_swap_is_rejected_and_the_last_good_files_keep_serving() {
    let Setup {
        w,
        ca,
        first,
        mut mount,
        gw,
        port: _,
        target,
    } = setup();
    let fresh = target.without_resumption();
    let load = Load::start(&target, LoadOptions::default());
    assert!(
        load.wait_ok(50, Duration::from_secs(10)),
        "{}",
        load.report().summary()
    );

    // A version whose key belongs to another certificate.
    let other = ca.issue(&LeafSpec::server(FRONTEND)).unwrap();
    let bad = Issued {
        key_pem: first.key_pem.clone(),
        ..other
    };
    mount.swap(1, &bad);
    let resource = mount.resource();
    let admin = gw.admin().to_string();
    let row = poll(
        "the bad version to be REJECTED",
        Duration::from_secs(2),
        || {
            let table = w
                .site
                .cli(&["proxy-config", "secret", "--admin", &admin])
                .ok()
                .stdout;
            table
                .lines()
                .find(|l| l.starts_with(&resource) && l.contains("REJECTED"))
                .map(str::to_owned)
        },
    );
    for part in [first.serial_hex.as_str(), "does not match the certificate"] {
        assert!(row.contains(part), "{part:?} missing from {row}");
    }
    assert!(
        gw.log().contains(&format!(
            "RESOURCE NAME:{resource}, EVENT: rejected secret {resource}: key: the private key does not match"
        )),
        "{}",
        gw.log()
    );
    for _ in 0..3 {
        let p = probe(&fresh);
        assert!(p.ok(), "{p:?}");
        assert_eq!(p.serial.as_deref(), Some(first.serial_hex.as_str()));
    }

    // The next good version is taken as usual.
    let good = ca.issue(&LeafSpec::server(FRONTEND)).unwrap();
    mount.swap(2, &good);
    assert!(
        load.wait_full_handshake(&good.serial_hex, SEEN_WITHIN)
            .is_some(),
        "{}",
        gw.log()
    );
    assert!(load.wait_ok(30, Duration::from_secs(10)));
    let report = load.stop();
    assert_eq!(report.failed(), 0, "{}", report.summary());
    let served = report.full_serials();
    assert_eq!(
        served,
        [first.serial_hex.as_str(), good.serial_hex.as_str()].into(),
        "certificates served under load"
    );
}
