//! Scale-out: watches across etcd trouble. While every member of a
//! three-member cluster is restarted in turn, a stream of VirtualService
//! versions applied through the CLI reaches a store watch exactly once each,
//! in order, and a replica ends up serving the last one. A replica whose
//! only etcd member was down while history was compacted relists when it
//! returns and serves the newest config, deletions included; a watch from a
//! compacted revision says so instead of skipping changes.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::etcd::{Cluster, EtcdSite, Replica, frontend_vs};
use crate::support::try_poll;
use crate::support::{Backend, FRONTEND, FRONTEND_BODY, INVENTORY, INVENTORY_BODY};
use gatehouse::store::{EtcdOptions, EventType, ObjectKey, Store, StoreError};

/// Writes `site`'s walkthrough (frontend at version 0) through the CLI.
fn walkthrough(site: &EtcdSite) -> (Backend, Backend) {
    for host in [FRONTEND, INVENTORY] {
        site.site.pki_init(host);
        site.create_walkthrough_secret(host);
    }
    let frontend = Backend::start(FRONTEND_BODY);
    let inventory = Backend::start(INVENTORY_BODY);
    site.write_walkthrough_objects(&frontend, &inventory, 0);
    site.cli(&["apply", "-f", "foocorp/"]).ok();
    (frontend, inventory)
}

#[track_caller]
fn wait_version(site: &EtcdSite, r: &Replica, version: u32, within: Duration) -> Duration {
    site.client(FRONTEND)
        .wait_body(r.addr(), "/version", &format!("version {version}"), within)
        .unwrap_or_else(|last| {
            panic!(
                "replica {} did not serve version {version} within {within:?}: {last}; log:\n{}",
                r.name,
                r.log()
            )
        })
}

/// The frontend version a stored VirtualService value carries.
fn version_of(value: &[u8]) -> u32 {
    let v: serde_json::Value = serde_json::from_slice(value).unwrap();
    let body = v["spec"]["http"][0]["directResponse"]["body"]["string"]
        .as_str()
        .unwrap();
    body.strip_prefix("version ").unwrap().parse().unwrap()
}

#[test]
fn every_change_arrives_once_across_member_restarts() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3);
    let url = cluster.url();
    let site = Arc::new(EtcdSite::new(&url));
    let _backends = walkthrough(&site);
    let replica = site.start_replica("r", &url);
    wait_version(&site, &replica, 0, Duration::from_secs(10));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let store = gatehouse::store::open_with(&url, EtcdOptions::default()).unwrap();
    let (_, from) = rt.block_on(store.list(None, None)).unwrap();
    let mut events = rt.block_on(store.watch(from)).unwrap();

    // A writer applies version after version through the CLI (every member
    // named) until told to stop. A write cut off by its member's death is
    // reported as failed (it may or may not have landed) and is tried again;
    // if it had landed, the retry is `unchanged` and makes no revision.
    let written = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (site, written, stop, url) = (site.clone(), written.clone(), stop.clone(), url.clone());
        std::thread::spawn(move || {
            let mut retries = Vec::new();
            let mut version = 1;
            while !stop.load(Ordering::SeqCst) && version < 1000 {
                let rel = format!("versions/{version}.yaml");
                site.write(&rel, &frontend_vs(version));
                let out = site.cli_via(&url, &["apply", "-f", &rel]);
                if out.code == Some(0) {
                    written.store(version, Ordering::SeqCst);
                    version += 1;
                } else {
                    retries.push(out.stderr.trim().to_owned());
                    assert!(retries.len() < 20, "the writer keeps failing: {retries:#?}");
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            retries
        })
    };
    let progressed = |by: u32| {
        let from = written.load(Ordering::SeqCst);
        try_poll(Duration::from_secs(15), || {
            (written.load(Ordering::SeqCst) >= from + by).then_some(())
        })
        .expect("the writer made no progress");
    };
    progressed(3);
    for i in 0..3 {
        cluster.stop(i);
        progressed(3);
        cluster.restart(i);
        progressed(3);
    }
    stop.store(true, Ordering::SeqCst);
    let retries = writer.join().unwrap();
    let last = written.load(Ordering::SeqCst);

    // The watch saw versions 1..=last, each once, in order, and nothing else.
    let key = ObjectKey::new("VirtualService", "default", "frontend");
    let mut seen = Vec::new();
    let mut last_rev = from;
    rt.block_on(async {
        while seen.last() != Some(&last) {
            let e = tokio::time::timeout(Duration::from_secs(15), events.recv())
                .await
                .unwrap_or_else(|_| panic!("the watch stalled after versions {seen:?}"))
                .expect("the watch ended")
                .unwrap_or_else(|e| panic!("the watch failed after versions {seen:?}: {e}"));
            assert_eq!((&e.object.key, e.event_type), (&key, EventType::Modified));
            assert!(e.revision > last_rev, "{} after {last_rev}", e.revision);
            last_rev = e.revision;
            seen.push(version_of(&e.object.value));
        }
    });
    assert_eq!(seen, (1..=last).collect::<Vec<_>>());

    // The replica serves the last one and is live.
    let took = wait_version(&site, &replica, last, Duration::from_secs(10));
    replica.wait_ready("ready: live", Duration::from_secs(10));
    eprintln!(
        "{last} versions across 3 member restarts (writes retried: {retries:?}); replica served the last after {took:?}; total {:?}",
        started.elapsed()
    );
}

#[test]
fn a_replica_relists_after_a_compaction_it_missed() {
    let started = Instant::now();
    let mut cluster = Cluster::start(3);
    let site = EtcdSite::new(&cluster.url());
    let _backends = walkthrough(&site);
    // The replica knows only member 0; writers use the other two.
    let replica = site.start_replica("r", &cluster.url_of(&[0]));
    let others = cluster.url_of(&[1, 2]);
    wait_version(&site, &replica, 0, Duration::from_secs(10));
    let inv = site.client(INVENTORY);
    assert_eq!(
        inv.body(replica.addr(), "/").as_deref(),
        Some(format!("{INVENTORY_BODY}\n").as_str())
    );
    let before = cluster.revision();

    // Its member goes away: it keeps serving, and says it is behind.
    cluster.stop(0);
    cluster.wait_healthy(&[1, 2]);
    replica.wait_ready("ready: behind", Duration::from_secs(10));
    wait_version(&site, &replica, 0, Duration::from_secs(1));

    // Meanwhile: new versions, a deletion, and a compaction of all history.
    for v in 1..=5 {
        site.apply_version_via(&others, v);
    }
    site.cli_via(&others, &["delete", "virtualservice", "inventory"])
        .ok();
    let rev = cluster.revision();
    let out = cluster.etcdctl(&["compact", &rev.to_string()]).ok();
    assert!(
        out.stdout.contains(&format!("compacted revision {rev}")),
        "{out:?}"
    );

    // A watch from before the compaction is told to list again.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = gatehouse::store::open_with(&others, EtcdOptions::default()).unwrap();
    rt.block_on(async {
        let mut events = store.watch(before).await.unwrap();
        let first = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("the watch said nothing")
            .expect("the watch ended silently");
        assert!(
            matches!(first, Err(StoreError::Compacted { revision }) if revision == rev),
            "{first:?}"
        );
        assert!(events.recv().await.is_none(), "the watch went on");
    });

    // The member returns: the replica relists and serves the newest config.
    cluster.restart(0);
    let back = Instant::now();
    wait_version(&site, &replica, 5, Duration::from_secs(20));
    let converged = back.elapsed();
    replica.wait_ready("ready: live", Duration::from_secs(10));
    let gone = inv.get(replica.addr(), "/").unwrap();
    assert_eq!(
        gone.status, 404,
        "the deleted VirtualService still routes: {gone:?}"
    );
    eprintln!(
        "replica converged {converged:?} after its member returned; total {:?}",
        started.elapsed()
    );
}
