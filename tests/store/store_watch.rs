//! Watching: from the revision of a list, every later change arrives exactly
//! once and in order, including changes made through another instance.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use gatehouse::store::{DirStore, Event, EventType, ObjectKey, Put, Store, WatchReceiver};

fn key(name: &str) -> ObjectKey {
    ObjectKey::new("Gateway", "ns", name)
}

fn put(name: &str, value: &str) -> Put {
    Put::new(key(name), value.as_bytes().to_vec())
}

/// Receives exactly `n` events, failing the test after 10 s.
async fn receive(rx: &mut WatchReceiver, n: usize) -> Vec<Event> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) => events.push(event.unwrap()),
            Ok(None) => panic!("watch ended after {} events", events.len()),
            Err(_) => panic!("timed out after {} of {n} events", events.len()),
        }
    }
    events
}

/// Nothing more arrives within a few poll intervals.
async fn assert_quiet(rx: &mut WatchReceiver) {
    let extra = tokio::time::timeout(Duration::from_millis(100), rx.recv()).await;
    assert!(extra.is_err(), "unexpected event: {extra:?}");
}

#[tokio::test]
async fn a_watch_from_a_list_sees_every_later_change_once_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    // History before the list must not be replayed.
    store
        .apply(vec![put("old", "1"), put("keep", "1")])
        .await
        .unwrap();
    let (_, revision) = store.list(None, None).await.unwrap();
    assert_eq!(revision, 2);
    let mut rx = store.watch(revision).await.unwrap();

    // (revision, type, name, value) of every change, as the writer saw it.
    let mut expected = Vec::new();
    for round in 0..30 {
        let batch: Vec<Put> = (0..5)
            .map(|i| put(&format!("obj-{i}"), &format!("{{\"round\":{round}}}")))
            .collect();
        for (k, outcome, rev) in store.apply(batch).await.unwrap() {
            let event_type = if round == 0 {
                EventType::Added
            } else {
                EventType::Modified
            };
            assert_ne!(outcome, gatehouse::store::Outcome::Unchanged);
            expected.push((rev, event_type, k.name, format!("{{\"round\":{round}}}")));
        }
        // An unchanged apply makes no event.
        store.apply(vec![put("keep", "1")]).await.unwrap();
        if round % 7 == 3 {
            let deleted = store.delete(vec![key("obj-4"), key("old")]).await.unwrap();
            let (_, rev) = store.list(None, None).await.unwrap();
            let mut rev_of = rev + 1 - deleted.iter().filter(|d| **d).count() as u64;
            for (name, existed, last) in [
                ("obj-4", deleted[0], format!("{{\"round\":{round}}}")),
                ("old", deleted[1], "1".to_owned()),
            ] {
                if existed {
                    expected.push((rev_of, EventType::Deleted, name.to_owned(), last));
                    rev_of += 1;
                }
            }
            store
                .apply(vec![put("obj-4", &format!("{{\"round\":{round}}}"))])
                .await
                .unwrap();
            let rev = store.list(None, None).await.unwrap().1;
            expected.push((
                rev,
                EventType::Added,
                "obj-4".to_owned(),
                format!("{{\"round\":{round}}}"),
            ));
        }
    }

    let events = receive(&mut rx, expected.len()).await;
    let got: Vec<_> = events
        .iter()
        .map(|e| {
            assert_eq!(e.object.resource_version, e.revision);
            (
                e.revision,
                e.event_type,
                e.object.key.name.clone(),
                String::from_utf8(e.object.value.clone()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    let revisions: Vec<u64> = events.iter().map(|e| e.revision).collect();
    let want: Vec<u64> = (revision + 1..=revision + expected.len() as u64).collect();
    assert_eq!(revisions, want, "every revision once, in order, no gaps");
    assert_quiet(&mut rx).await;
}

#[tokio::test]
async fn a_watch_from_zero_replays_history_into_the_listed_state() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    for i in 0..50 {
        store
            .apply(vec![put(&format!("o{}", i % 7), &i.to_string())])
            .await
            .unwrap();
        if i % 5 == 0 {
            store
                .delete(vec![key(&format!("o{}", i % 3))])
                .await
                .unwrap();
        }
    }
    let (objects, revision) = store.list(None, None).await.unwrap();
    let mut rx = store.watch(0).await.unwrap();
    let events = receive(&mut rx, revision as usize).await;
    let mut state = std::collections::BTreeMap::new();
    for event in events {
        match event.event_type {
            EventType::Deleted => assert!(state.remove(&event.object.key).is_some()),
            _ => {
                state.insert(event.object.key.clone(), event.object);
            }
        }
    }
    assert_eq!(state.into_values().collect::<Vec<_>>(), objects);
    assert_quiet(&mut rx).await;

    // A watch from the current revision starts quiet, then sees the next change.
    let mut rx = store.watch(revision).await.unwrap();
    assert_quiet(&mut rx).await;
    store.apply(vec![put("next", "1")]).await.unwrap();
    let next = receive(&mut rx, 1).await;
    assert_eq!(
        (next[0].revision, next[0].object.key.name.as_str()),
        (revision + 1, "next")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_sees_another_instances_change_quickly() {
    let tmp = tempfile::tempdir().unwrap();
    // Two instances share nothing but the directory, like two processes.
    let watcher_side = DirStore::open(tmp.path()).unwrap();
    let writer_side = DirStore::open(tmp.path()).unwrap();
    let (_, revision) = watcher_side.list(None, None).await.unwrap();
    let mut rx = watcher_side.watch(revision).await.unwrap();

    let mut latencies = Vec::new();
    for i in 0..20u64 {
        let started = Instant::now();
        writer_side
            .apply(vec![put("latency", &i.to_string())])
            .await
            .unwrap();
        let committed = started.elapsed();
        let event = receive(&mut rx, 1).await.remove(0);
        let seen = started.elapsed();
        assert_eq!(event.revision, revision + i + 1);
        latencies.push((seen, committed));
        tokio::time::sleep(Duration::from_millis(7 * (i % 5))).await;
    }
    let mut seen: Vec<Duration> = latencies.iter().map(|(s, _)| *s).collect();
    seen.sort();
    let mut after_commit: Vec<Duration> = latencies
        .iter()
        .map(|(s, c)| s.saturating_sub(*c))
        .collect();
    after_commit.sort();
    println!(
        "cross-instance watch latency: apply start to event median {:?}, max {:?}; \
         apply return to event median {:?}, max {:?}",
        seen[seen.len() / 2],
        seen[seen.len() - 1],
        after_commit[after_commit.len() / 2],
        after_commit[after_commit.len() - 1],
    );
    // The goal is 100 ms (measured above); the bound here only catches a
    // watcher that does not see other instances at all.
    assert!(seen[seen.len() - 1] < Duration::from_secs(2), "{seen:?}");
}

#[tokio::test]
async fn a_dropped_receiver_ends_the_watch_without_disturbing_others() {
    let tmp = tempfile::tempdir().unwrap();
    let store = DirStore::open(tmp.path()).unwrap();
    let dropped = store.watch(0).await.unwrap();
    let mut kept = store.watch(0).await.unwrap();
    drop(dropped);
    for i in 0..3 {
        store.apply(vec![put("x", &i.to_string())]).await.unwrap();
    }
    let events = receive(&mut kept, 3).await;
    assert_eq!(
        events.iter().map(|e| e.revision).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}
