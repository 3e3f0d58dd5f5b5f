//! Scale-out, done when #2: static stability. With a three-member etcd
//! cluster and two replicas, stopping one member (the leader) changes
//! nothing: both serve, and a change applied through the CLI (which still
//! lists the stopped member) reaches both. With every member stopped, both
//! keep serving and say they are behind; a replica restarted meanwhile
//! serves from its local cache and says so. When the members come back
//! with their data, changes reach both replicas again.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::etcd::{Client, Cluster, EtcdSite, Replica};
use crate::support::{Backend, FRONTEND, FRONTEND_BODY, INVENTORY, INVENTORY_BODY};

/// A change through a healthy cluster reaches a replica in milliseconds;
/// this is the bound for the assertion, not the goal.
const CHANGE_WITHIN: Duration = Duration::from_secs(5);
/// After etcd returns, a replica reconnects with backoff (at most 5 s
/// between tries) and may also wait out a call timeout.
const RECONNECT_WITHIN: Duration = Duration::from_secs(20);

/// Asserts that `r` serves both hosts and frontend `version`.
#[track_caller]
fn assert_serves(r: &Replica, fe: &Client, inv: &Client, version: u32) {
    let addr = r.addr();
    for (client, body) in [(fe, FRONTEND_BODY), (inv, INVENTORY_BODY)] {
        let answer = client.get(addr, "/");
        assert!(
            matches!(&answer, Ok(a) if a.status == 200 && a.body == format!("{body}\n")),
            "replica {}: {answer:?}; log:\n{}",
            r.name,
            r.log()
        );
    }
    assert_eq!(
        fe.body(addr, "/version"),
        Some(format!("version {version}")),
        "replica {}",
        r.name
    );
}

#[track_caller]
fn wait_version(r: &Replica, fe: &Client, version: u32, within: Duration) -> Duration {
    fe.wait_body(r.addr(), "/version", &format!("version {version}"), within)
        .unwrap_or_else(|last| {
            panic!(
                "replica {} did not serve version {version} within {within:?}: {last}; log:\n{}",
                r.name,
                r.log()
            )
        })
}

/// With every member down: `r` says it is behind (in `/ready`, `/status`
/// and its log) and keeps serving version 2.
fn behind_but_serving(r: &Replica, fe: &Client, inv: &Client) {
    r.wait_ready("ready: behind", Duration::from_secs(10));
    assert!(
        r.log()
            .contains("lost the store's watch: serving the last good config"),
        "replica {} logged nothing about being behind:\n{}",
        r.name,
        r.log()
    );
    assert_serves(r, fe, inv, 2);
    let ready = r.ready();
    assert_eq!(
        r.status()["source"].as_str(),
        ready.strip_prefix("ready: "),
        "/status and /ready of replica {} disagree",
        r.name
    );
}

/// The replica's cache holds secrets: it is 0600 and sealed with the
/// store's key, not readable even to root.
fn the_cache_is_private_and_sealed(cache: &Path) {
    let mode = std::fs::metadata(cache).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the cache {} holds secrets", cache.display());
    let bytes = std::fs::read(cache).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    for needle in [
        "BEGIN",
        "LS0tLS1CRUdJTi",
        "frontend-credential",
        "\"objects\"",
    ] {
        assert!(
            !text.contains(needle),
            "the cache shows {needle:?} in clear"
        );
    }
}

/// Once etcd is back: `r` serves version 3, is live and says it is in sync
/// again. Returns how long after `back` version 3 was served.
fn in_sync_again(r: &Replica, fe: &Client, inv: &Client, back: Instant) -> Duration {
    wait_version(r, fe, 3, RECONNECT_WITHIN);
    let caught_up = back.elapsed();
    r.wait_ready("ready: live", RECONNECT_WITHIN);
    assert!(
        r.log().contains("in sync with the store again"),
        "{}",
        r.log()
    );
    assert_serves(r, fe, inv, 3);
    caught_up
}

/// With every member down, the CLI says plainly that it cannot reach etcd.
fn cli_cannot_reach_etcd(site: &EtcdSite) {
    let out = site.cli(&["get", "virtualservice"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stderr.starts_with("error: etcd") && out.stderr.trim_end().lines().count() == 1,
        "{out:?}"
    );
}

#[test]
fn replicas_ride_out_member_and_cluster_outages() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3);
    let url = cluster.url();
    let site = EtcdSite::new(&url);
    for host in [FRONTEND, INVENTORY] {
        site.site.pki_init(host);
        site.create_walkthrough_secret(host);
    }
    let frontend = Backend::start(FRONTEND_BODY);
    let inventory = Backend::start(INVENTORY_BODY);
    site.write_walkthrough_objects(&frontend, &inventory, 1);
    site.cli(&["apply", "-f", "foocorp/"]).ok();
    let a = site.start_replica("a", &url);
    let b = site.start_replica("b", &url);
    let (fe, inv) = (site.client(FRONTEND), site.client(INVENTORY));
    for r in [&a, &b] {
        wait_version(r, &fe, 1, CHANGE_WITHIN);
        assert_serves(r, &fe, &inv, 1);
        assert_eq!(r.ready(), "ready: live");
    }

    // 1. The leader stops: nothing changes for the replicas or the CLI.
    let leader = cluster.leader();
    cluster.stop(leader);
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    cluster.wait_healthy(&rest);
    for r in [&a, &b] {
        assert_serves(r, &fe, &inv, 1);
    }
    // The CLI keeps naming every member, the stopped one too, as a user's
    // GATEHOUSE_STORE would: every command must still work.
    for _ in 0..6 {
        let out = site.cli(&["get", "virtualservice", "frontend"]).ok();
        assert!(out.stdout.contains("frontend"), "{out:?}");
    }
    site.apply_version_via(&url, 2);
    let applied = Instant::now();
    for r in [&a, &b] {
        wait_version(r, &fe, 2, CHANGE_WITHIN);
        assert_serves(r, &fe, &inv, 2);
        assert_eq!(r.ready(), "ready: live", "replica {}", r.name);
    }
    let one_down = applied.elapsed();

    // 2. Every member stops: both replicas keep serving what they had,
    // and their readiness says they are behind.
    for &i in &rest {
        cluster.stop(i);
    }
    for r in [&a, &b] {
        behind_but_serving(r, &fe, &inv);
    }
    cli_cannot_reach_etcd(&site);

    // 3. A replica restarted while etcd is down serves from its cache.
    let cache = a.cache.clone();
    drop(a);
    the_cache_is_private_and_sealed(&cache);
    let a = site.start_replica("a", &url);
    a.wait_ready(
        "ready: serving from cache (store unreachable)",
        Duration::from_secs(10),
    );
    wait_version(&a, &fe, 2, CHANGE_WITHIN);
    assert_serves(&a, &fe, &inv, 2);
    assert_serves(&b, &fe, &inv, 2);
    assert!(
        a.log().contains("serving from the local cache"),
        "{}",
        a.log()
    );

    // 4. The members return with their data: changes reach both again.
    cluster.restart_all(&[0, 1, 2]);
    let back = Instant::now();
    site.apply_version_via(&url, 3);
    let mut caught_up = Vec::new();
    for r in [&a, &b] {
        caught_up.push(in_sync_again(r, &fe, &inv, back));
    }
    eprintln!(
        "one member down: change served after {:?}; after etcd returned: a at {:?}, b at {:?}; total {:?}",
        one_down,
        caught_up[0],
        caught_up[1],
        started.elapsed()
    );
}
