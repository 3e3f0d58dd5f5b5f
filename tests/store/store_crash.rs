//! Crash safety: a writer killed at any instant leaves every object old or
//! new (never torn), its batch entirely in or entirely out, and a store that
//! opens, lists and watches consistently.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support;
use gatehouse::store::{DirStore, EventType, Object, ObjectKey, Put, Store};

const CHILD_ROLE: &str = "GATEHOUSE_STORE_TEST_CHILD";
const CHILD_DIR: &str = "GATEHOUSE_STORE_TEST_DIR";
/// Objects per batch, and the padding that makes each one big.
const BATCH: usize = 40;
const PAD: usize = 32 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn big_key(i: usize) -> ObjectKey {
    ObjectKey::new("Secret", "ns", format!("big-{i}"))
}

fn big_value(generation: u64, i: usize) -> Vec<u8> {
    let pad = "x".repeat(PAD);
    format!("{{\"gen\":{generation},\"i\":{i},\"pad\":\"{pad}\"}}").into_bytes()
}

/// The entry point of a re-executed child; a no-op in a normal test run.
/// The child rewrites all `BATCH` objects in one apply, over and over, until
/// it is killed.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ROLE) else {
        return;
    };
    assert_eq!(role, "batcher");
    let store = DirStore::open(std::env::var(CHILD_DIR).unwrap()).unwrap();
    let rt = runtime();
    // Unique across children, so that every batch changes every object.
    let base = u64::from(std::process::id()) << 24;
    for generation in base.. {
        let puts = (0..BATCH)
            .map(|i| Put::new(big_key(i), big_value(generation, i)))
            .collect();
        rt.block_on(store.apply(puts)).unwrap();
    }
}

/// Checks the store is whole: every object parses and belongs to one batch,
/// no temporary file is left, and replaying a watch from zero gives exactly
/// the listed state. Returns the revision.
fn assert_consistent(store: &DirStore) -> u64 {
    let rt = runtime();
    let (objects, revision) = rt.block_on(store.list(None, None)).unwrap();
    assert!(
        objects.is_empty() || objects.len() == BATCH,
        "half a batch: {} objects",
        objects.len()
    );
    let mut generations = Vec::new();
    for object in &objects {
        let value: serde_json::Value = serde_json::from_slice(&object.value)
            .unwrap_or_else(|e| panic!("{} is torn: {e}", object.key));
        let i: usize = object.key.name["big-".len()..].parse().unwrap();
        assert_eq!(value["i"], i, "{}", object.key);
        assert_eq!(
            value["pad"].as_str().map(str::len),
            Some(PAD),
            "{}",
            object.key
        );
        generations.push(value["gen"].as_u64().unwrap());
        let got = rt.block_on(store.get(&object.key)).unwrap();
        assert_eq!(got.as_ref(), Some(object));
    }
    generations.dedup();
    assert!(
        generations.len() <= 1,
        "objects from different batches: {generations:?}"
    );
    assert_no_temp_files(store.root());

    let mut rx = rt.block_on(store.watch(0)).unwrap();
    let mut state: BTreeMap<ObjectKey, Object> = BTreeMap::new();
    for expected in 1..=revision {
        let event = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), rx.recv()).await })
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(event.revision, expected);
        match event.event_type {
            EventType::Deleted => {
                state.remove(&event.object.key);
            }
            _ => {
                state.insert(event.object.key.clone(), event.object);
            }
        }
    }
    assert_eq!(state.into_values().collect::<Vec<_>>(), objects);
    revision
}

fn assert_no_temp_files(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with('.'),
            "temporary file left: {}",
            path.display()
        );
        if path.is_dir() {
            assert_no_temp_files(&path);
        }
    }
}

/// Whether the log holds more than the head says is applied: the kill
/// landed inside a write (and nobody has repaired yet). Reads the files the
/// way `dir.rs` documents them.
fn interrupted(dir: &Path) -> bool {
    let log_len = std::fs::metadata(dir.join("log.jsonl")).map_or(0, |m| m.len());
    let head_offset = std::fs::read(dir.join("head.json"))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|head| head["log_offset"].as_u64())
        .unwrap_or(0);
    log_len != head_offset
}

/// Starts a writer child, lets it run for `delay`, and kills it.
fn kill_writer_after(dir: &Path, delay: Duration) {
    let mut child = support::this_test(concat!(module_path!(), "::child_process_entry"))
        .env(CHILD_ROLE, "batcher")
        .env(CHILD_DIR, dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the writer must die, not finish: {status}"
    );
}

#[test]
fn a_writer_killed_mid_apply_leaves_objects_old_or_new() {
    let tmp = tempfile::tempdir().unwrap();
    DirStore::open(tmp.path()).unwrap();
    let mut last_revision = 0;
    let mut interrupted_kills = 0;
    let delays = [150, 260, 90, 410, 205, 330, 120, 475];
    for delay in delays {
        kill_writer_after(tmp.path(), Duration::from_millis(delay));
        if interrupted(tmp.path()) {
            interrupted_kills += 1;
        }
        // Opening repairs; everything must be whole afterwards.
        let store = DirStore::open(tmp.path()).unwrap();
        let revision = assert_consistent(&store);
        assert!(revision >= last_revision, "revision went back");
        last_revision = revision;
    }
    println!(
        "{interrupted_kills} of {} kills landed inside a write; final revision {last_revision}",
        delays.len()
    );
    assert!(last_revision > 0, "the writer never committed anything");
}

#[test]
fn a_live_watcher_sees_each_change_once_across_killed_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    let rt = runtime();
    let mut rx = rt.block_on(store.watch(0)).unwrap();
    // Collect on a task while writers come and go.
    let collector = rt.spawn(async move {
        let mut events = Vec::new();
        while let Some(event) = rx.recv().await {
            let event = event.unwrap();
            let done = event.object.key.name == "done";
            events.push(event);
            if done {
                break;
            }
        }
        events
    });
    let mut interrupted_kills = 0;
    for delay in [180, 95, 310, 240] {
        kill_writer_after(tmp.path(), Duration::from_millis(delay));
        interrupted_kills += usize::from(interrupted(tmp.path()));
    }
    // The watcher (or this write) repairs; the marker ends the collection.
    rt.block_on(store.apply(vec![Put::new(gw("done"), "1")]))
        .unwrap();
    let events = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(20), collector).await })
        .unwrap()
        .unwrap();
    let (objects, revision) = rt.block_on(store.list(None, None)).unwrap();
    let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
    assert_eq!(revisions, (1..=revision).collect::<Vec<_>>());
    let mut state = BTreeMap::new();
    for event in events {
        assert_ne!(event.event_type, EventType::Deleted);
        state.insert(event.object.key.clone(), event.object);
    }
    assert_eq!(state.into_values().collect::<Vec<_>>(), objects);
    println!(
        "{interrupted_kills} of 4 kills were still unrepaired when looked at; {revision} events"
    );
}

/// Appends raw bytes to the change log, as a writer would have.
fn append_to_log(dir: &Path, bytes: &[u8]) {
    let mut log = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("log.jsonl"))
        .unwrap();
    log.write_all(bytes).unwrap();
}

fn change_line(events: &[(u64, &str, &str, &str)]) -> String {
    let events: Vec<_> = events
        .iter()
        .map(|(revision, event_type, name, value)| {
            serde_json::json!({
                "revision": revision, "type": event_type, "kind": "Gateway",
                "namespace": "ns", "name": name, "value": value,
            })
        })
        .collect();
    format!("{}\n", serde_json::json!({ "events": events }))
}

fn gw(name: &str) -> ObjectKey {
    ObjectKey::new("Gateway", "ns", name)
}

#[tokio::test]
async fn a_torn_log_tail_is_not_a_change() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    store.apply(vec![Put::new(gw("a"), "1")]).await.unwrap();
    // A writer died halfway through appending revision 2.
    let line = change_line(&[(2, "Modified", "a", "2")]);
    append_to_log(tmp.path(), &line.as_bytes()[..line.len() / 2]);

    // A reader in a live instance repairs before reading.
    let (objects, revision) = store.list(None, None).await.unwrap();
    assert_eq!((objects[0].value.as_slice(), revision), (&b"1"[..], 1));
    let result = store.apply(vec![Put::new(gw("b"), "1")]).await.unwrap();
    assert_eq!(result[0].2, 2, "the torn revision is reused, never seen");
    assert_eq!(assert_revisions(&store).await, [1, 2]);
}

#[tokio::test]
async fn a_committed_but_unapplied_change_is_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    let mut rx = store.watch(0).await.unwrap();
    store
        .apply(vec![Put::new(gw("a"), "1"), Put::new(gw("d"), "1")])
        .await
        .unwrap();
    // A writer died after its commit point, before touching object files.
    append_to_log(
        tmp.path(),
        change_line(&[
            (3, "Modified", "a", "2"),
            (4, "Added", "b", "1"),
            (5, "Deleted", "d", "1"),
        ])
        .as_bytes(),
    );
    assert_eq!(store.get(&gw("a")).await.unwrap().unwrap().value, b"2");
    assert_eq!(
        store.get(&gw("b")).await.unwrap().unwrap().resource_version,
        4
    );
    assert_eq!(store.get(&gw("d")).await.unwrap(), None);
    assert_eq!(store.list(None, None).await.unwrap().1, 5);
    assert_eq!(assert_revisions(&store).await, [1, 2, 3, 4, 5]);

    // The live watcher saw the replayed change too, once.
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push((event.revision, event.event_type));
    }
    assert_eq!(
        seen[2..],
        [
            (3, EventType::Modified),
            (4, EventType::Added),
            (5, EventType::Deleted)
        ]
    );
    let extra = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
    assert!(extra.is_err(), "{extra:?}");
}

/// The revisions a watch from zero delivers, once the store is quiet.
async fn assert_revisions(store: &DirStore) -> Vec<u64> {
    let (_, revision) = store.list(None, None).await.unwrap();
    let mut rx = store.watch(0).await.unwrap();
    let mut revisions = Vec::new();
    for _ in 0..revision {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        revisions.push(event.revision);
    }
    revisions
}
