//! Several writers at once: two instances in two threads, and real
//! processes (this test binary re-executed as a writer). Nothing may be lost,
//! revisions must be unique, and a watcher must see every change once.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support;
use gatehouse::store::{DirStore, EventType, ObjectKey, Outcome, Put, Store};

const CHILD_ROLE: &str = "GATEHOUSE_STORE_TEST_CHILD";
const CHILD_DIR: &str = "GATEHOUSE_STORE_TEST_DIR";
const CHILD_PREFIX: &str = "GATEHOUSE_STORE_TEST_PREFIX";
const CHILD_COUNT: &str = "GATEHOUSE_STORE_TEST_COUNT";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `count` single-object applies of `<prefix>-<i>`, each checked.
fn write_many(store: &DirStore, prefix: &str, count: usize) -> Vec<u64> {
    let rt = runtime();
    (0..count)
        .map(|i| {
            let key = ObjectKey::new("Gateway", "ns", format!("{prefix}-{i}"));
            let value = format!("{{\"writer\":\"{prefix}\",\"i\":{i}}}");
            let result = rt.block_on(store.apply(vec![Put::new(key.clone(), value)]));
            let result = result.unwrap();
            assert_eq!(result[0].0, key);
            assert_eq!(result[0].1, Outcome::Created);
            result[0].2
        })
        .collect()
}

/// The entry point of a re-executed child; a no-op in a normal test run.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    assert_eq!(role, "writer");
    let dir = std::env::var(CHILD_DIR).unwrap();
    let prefix = std::env::var(CHILD_PREFIX).unwrap();
    let count = std::env::var(CHILD_COUNT).unwrap().parse().unwrap();
    write_many(&DirStore::open(dir).unwrap(), &prefix, count);
}

fn spawn_writer(dir: &Path, prefix: &str, count: usize) -> std::process::Child {
    support::this_test(concat!(module_path!(), "::child_process_entry"))
        .env(CHILD_ROLE, "writer")
        .env(CHILD_DIR, dir)
        .env(CHILD_PREFIX, prefix)
        .env(CHILD_COUNT, count.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every object is there with its writer's value, and every resource
/// version is unique.
fn assert_complete(store: &DirStore, writers: &[(&str, usize)]) {
    let (objects, revision) = runtime().block_on(store.list(None, None)).unwrap();
    let total: usize = writers.iter().map(|(_, n)| n).sum();
    assert_eq!(objects.len(), total, "objects lost");
    assert_eq!(revision, total as u64);
    let versions: BTreeSet<u64> = objects.iter().map(|o| o.resource_version).collect();
    assert_eq!(versions, (1..=total as u64).collect(), "versions unique");
    let by_name: BTreeMap<_, _> = objects
        .iter()
        .map(|o| (o.key.name.clone(), o.value.clone()))
        .collect();
    for (prefix, count) in writers {
        for i in 0..*count {
            let value = format!("{{\"writer\":\"{prefix}\",\"i\":{i}}}");
            assert_eq!(by_name[&format!("{prefix}-{i}")], value.as_bytes());
        }
    }
}

#[test]
fn two_instances_in_two_threads_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = DirStore::open(tmp.path()).unwrap();
    let b = DirStore::open(tmp.path()).unwrap();
    let started = Instant::now();
    let (rev_a, rev_b) = std::thread::scope(|s| {
        let ta = s.spawn(|| write_many(&a, "a", 200));
        let tb = s.spawn(|| write_many(&b, "b", 200));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    println!(
        "400 applies from two instances took {:?}",
        started.elapsed()
    );
    // Each writer saw its own versions increase.
    assert!(rev_a.windows(2).all(|w| w[0] < w[1]));
    assert!(rev_b.windows(2).all(|w| w[0] < w[1]));
    let all: BTreeSet<u64> = rev_a.iter().chain(&rev_b).copied().collect();
    assert_eq!(all.len(), 400, "a revision was handed out twice");
    assert_complete(&a, &[("a", 200), ("b", 200)]);
    assert_complete(
        &DirStore::open(tmp.path()).unwrap(),
        &[("a", 200), ("b", 200)],
    );
}

#[test]
fn real_processes_write_concurrently_and_a_watcher_sees_it_all() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    let rt = runtime();
    let mut rx = rt.block_on(store.watch(0)).unwrap();

    let children = [
        spawn_writer(tmp.path(), "p1", 150),
        spawn_writer(tmp.path(), "p2", 150),
    ];
    // This process writes too, through its own instance.
    write_many(&DirStore::open(tmp.path()).unwrap(), "me", 100);
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "writer failed: {status}");
    }
    assert_complete(&store, &[("p1", 150), ("p2", 150), ("me", 100)]);

    // The watcher saw every change exactly once, in order.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut names = BTreeSet::new();
    let mut next = 1;
    while next <= 400 {
        assert!(
            Instant::now() < deadline,
            "only {} events arrived",
            next - 1
        );
        let event = match rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(1), rx.recv()).await })
        {
            Ok(Some(event)) => event.unwrap(),
            Ok(None) => panic!("watch ended"),
            Err(_) => continue,
        };
        assert_eq!(event.revision, next);
        assert_eq!(event.event_type, EventType::Added);
        assert!(
            names.insert(event.object.key.name),
            "a change arrived twice"
        );
        next += 1;
    }
    assert_eq!(names.len(), 400);
}
