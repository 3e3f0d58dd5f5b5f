//! Scale-out, done when #3: two writers race to change one object from the
//! same resource version, each through a different etcd member. Exactly
//! one wins; the other gets a conflict error that names the object and both
//! versions; nothing is lost (the loser re-reads, applies again, and a
//! watch shows both changes in order, once each). A multi-object apply with
//! one stale object writes nothing.
//!
//! The first tests go through the library (`Store::apply` with
//! `expected_version`) to race two writers many times; the last one races
//! two real `gatehouse apply` runs whose manifests carry the
//! `metadata.resourceVersion` they were read at.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use crate::support::etcd;
use crate::support::etcd::{Cluster, frontend_vs};
use gatehouse::store::{
    AnyStore, EtcdOptions, EventType, ObjectKey, Outcome, Put, Store, StoreError, WatchReceiver,
};

const ROUNDS: u32 = 10;

/// The JSON bytes of frontend VirtualService `version`, as the CLI stores them.
fn vs_json(version: u32) -> Vec<u8> {
    let v: serde_json::Value = serde_saphyr::from_str(&frontend_vs(version)).unwrap();
    serde_json::to_vec(&v).unwrap()
}

fn open(url: &str) -> AnyStore {
    gatehouse::store::open_with(url, EtcdOptions::default()).unwrap()
}

/// The loser's error says what happened, naming both versions.
fn conflict_names_both_versions(
    err: &StoreError,
    key: &ObjectKey,
    rv: u64,
    winner_rv: u64,
    round: u32,
) {
    match err {
        StoreError::Conflict {
            key: k,
            expected,
            actual,
        } => assert_eq!((k, *expected, *actual), (key, rv, winner_rv)),
        other => panic!("round {round}: want a conflict, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "conflict on VirtualService/default/frontend: expected resource version {rv}, found {winner_rv}"
        )
    );
}

/// A watcher saw every accepted change once, in order, and no other.
async fn watch_saw_exactly(
    events: &mut WatchReceiver,
    key: &ObjectKey,
    first_rv: u64,
    expected_values: &[Vec<u8>],
) {
    let mut seen = Vec::new();
    let mut last_rev = first_rv;
    while seen.len() < expected_values.len() {
        let e = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .expect("the watch stalled")
            .expect("the watch ended")
            .unwrap();
        assert_eq!((&e.object.key, e.event_type), (key, EventType::Modified));
        assert!(
            e.revision > last_rev,
            "out of order: {e:?} after {last_rev}"
        );
        last_rev = e.revision;
        seen.push(e.object.value);
    }
    assert!(seen == expected_values, "the watch saw other changes");
    let extra = tokio::time::timeout(Duration::from_millis(300), events.recv()).await;
    assert!(extra.is_err(), "an extra event: {extra:?}");
}

#[test]
fn racing_writers_one_wins_one_gets_a_conflict_nothing_is_lost() {
    let cluster = Cluster::start(3);
    // Two writers, as two operators on two machines, each on its own member.
    let writer_a = Arc::new(open(&cluster.url_of(&[0])));
    let writer_b = Arc::new(open(&cluster.url_of(&[1])));
    let reader = open(&cluster.url_of(&[2]));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let key = ObjectKey::new("VirtualService", "default", "frontend");
    rt.block_on(async {
        let created = writer_a
            .apply(vec![Put {
                key: key.clone(),
                value: vs_json(0),
                expected_version: Some(0),
            }])
            .await
            .unwrap();
        assert_eq!(created[0].1, Outcome::Created);
        let first_rv = created[0].2;
        let mut events = reader.watch(first_rv).await.unwrap();

        // Each round: both writers start from the same version at once.
        let mut expected_values = Vec::new();
        for round in 1..=ROUNDS {
            let rv = reader.get(&key).await.unwrap().unwrap().resource_version;
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let (va, vb) = (vs_json(round * 100 + 1), vs_json(round * 100 + 2));
            let race = |w: Arc<AnyStore>, value: Vec<u8>| {
                let (barrier, key) = (barrier.clone(), key.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    w.apply(vec![Put {
                        key,
                        value,
                        expected_version: Some(rv),
                    }])
                    .await
                })
            };
            let ta = race(writer_a.clone(), va.clone());
            let tb = race(writer_b.clone(), vb.clone());
            let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
            let (winner, loser_store, loser_value, winner_value, err) = match (ra, rb) {
                (Ok(w), Err(e)) => (w, &writer_b, vb, va, e),
                (Err(e), Ok(w)) => (w, &writer_a, va, vb, e),
                other => panic!("round {round}: want exactly one winner, got {other:?}"),
            };
            assert_eq!(winner[0].1, Outcome::Configured, "round {round}");
            let winner_rv = winner[0].2;
            assert!(winner_rv > rv, "round {round}");
            conflict_names_both_versions(&err, &key, rv, winner_rv, round);
            // The store holds the winner's value, at the winner's version.
            let now = reader.get(&key).await.unwrap().unwrap();
            assert_eq!(
                (now.resource_version, &now.value),
                (winner_rv, &winner_value)
            );
            // Nothing is lost: the loser re-reads and applies again.
            let retried = loser_store
                .apply(vec![Put {
                    key: key.clone(),
                    value: loser_value.clone(),
                    expected_version: Some(winner_rv),
                }])
                .await
                .unwrap();
            assert_eq!(retried[0].1, Outcome::Configured);
            expected_values.push(winner_value);
            expected_values.push(loser_value);
        }

        watch_saw_exactly(&mut events, &key, first_rv, &expected_values).await;
    });
}

#[test]
fn a_batch_with_one_stale_object_writes_nothing() {
    let cluster = Cluster::start(1);
    let store = open(&cluster.url());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let frontend = ObjectKey::new("VirtualService", "default", "frontend");
        let other = ObjectKey::new("VirtualService", "default", "other");
        let rv = store
            .apply(vec![Put::new(frontend.clone(), vs_json(1))])
            .await
            .unwrap()[0]
            .2;
        store
            .apply(vec![Put::new(frontend.clone(), vs_json(2))])
            .await
            .unwrap();
        let (_, before) = store.list(None, None).await.unwrap();
        // A new object and an update from a version that is no longer current.
        let err = store
            .apply(vec![
                Put {
                    key: other.clone(),
                    value: vs_json(7),
                    expected_version: Some(0),
                },
                Put {
                    key: frontend.clone(),
                    value: vs_json(3),
                    expected_version: Some(rv),
                },
            ])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Conflict { key, expected, .. } if *key == frontend && *expected == rv),
            "{err:?}"
        );
        let (objects, after) = store.list(None, None).await.unwrap();
        assert_eq!(after, before, "the failed apply made a revision");
        assert_eq!(objects.len(), 1, "{objects:?}");
        assert_eq!(objects[0].value, vs_json(2));
        assert!(store.get(&other).await.unwrap().is_none());
    });
}

/// The same race through the CLI, as two operators would run it: both read
/// the object (`get -o yaml` gives `metadata.resourceVersion`), both change
/// it, both `apply` at once through different members. The manifest's
/// resourceVersion is an optimistic lock: exactly one apply wins, the other
/// exits 1 with a conflict, and the winner's change is what is stored.
#[test]
fn two_cli_applies_of_one_read_version_exactly_one_wins() {
    let cluster = Cluster::start(3);
    let site = etcd::EtcdSite::new(&cluster.url());
    site.apply("vs0.yaml", &frontend_vs(0));
    let read = site.cli(&["get", "vs", "frontend", "-o", "yaml"]).ok();
    let rv_line = read
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("resourceVersion:"))
        .unwrap()
        .trim()
        .to_owned();
    let with_rv = |version: u32| {
        frontend_vs(version).replacen(
            "  name: frontend\n",
            &format!("  name: frontend\n  {rv_line}\n"),
            1,
        )
    };
    site.write("a.yaml", &with_rv(1));
    site.write("b.yaml", &with_rv(2));
    let (url_a, url_b) = (cluster.url_of(&[0]), cluster.url_of(&[1]));
    let site = Arc::new(site);
    let (sa, sb) = (site.clone(), site.clone());
    let a = std::thread::spawn(move || sa.cli_via(&url_a, &["apply", "-f", "a.yaml"]));
    let b = std::thread::spawn(move || sb.cli_via(&url_b, &["apply", "-f", "b.yaml"]));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    let codes = [a.code, b.code];
    assert!(
        codes.contains(&Some(0)) && codes.contains(&Some(1)),
        "exactly one must win: a={a:?} b={b:?}"
    );
    let (winner, loser) = if a.code == Some(0) { (1, &b) } else { (2, &a) };
    assert!(loser.stderr.contains("conflict"), "{}", loser.stderr);
    assert_eq!(loser.stderr.trim().lines().count(), 1, "{}", loser.stderr);
    let now = site.cli(&["get", "vs", "frontend", "-o", "yaml"]).ok();
    assert!(
        now.stdout.contains(&format!("version {winner}")),
        "the winner's change must be stored: {}",
        now.stdout
    );
}
