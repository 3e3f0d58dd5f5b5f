use std::sync::Arc;
use std::time::Duration;

use super::{Room, Seat};

/// An open connection: idle or busy; an idle one leaves when asked.
fn connection(seat: Seat, idle: bool) -> tokio::task::JoinHandle<Option<u64>> {
    tokio::spawn(async move {
        loop {
            seat.asked().await;
            if idle && let Some(n) = seat.claim() {
                return Some(n);
            }
        }
    })
}

#[tokio::test]
async fn a_full_room_sheds_one_idle_connection_for_a_new_one() {
    let room = Room::new(3);
    let busy = connection(room.try_enter().unwrap(), false);
    let idle_a = connection(room.try_enter().unwrap(), true);
    let idle_b = connection(room.try_enter().unwrap(), true);
    assert!(room.try_enter().is_none(), "the room is full");
    // Let the connections start waiting.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let seat = tokio::time::timeout(Duration::from_secs(5), room.enter_shedding())
        .await
        .unwrap();
    assert!(seat.is_some(), "an idle connection made room");
    // Exactly one idle connection left; the busy one never does.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let left = [idle_a.is_finished(), idle_b.is_finished()];
    assert_eq!(left.iter().filter(|l| **l).count(), 1, "{left:?}");
    assert!(!busy.is_finished());
    assert_eq!(room.shed_count(), 1);
    assert_eq!(room.wanted.load(std::sync::atomic::Ordering::Relaxed), 0);
    busy.abort();
    idle_a.abort();
    idle_b.abort();
}

#[tokio::test]
async fn with_nothing_idle_a_new_connection_is_refused_in_bounded_time() {
    let room = Room::new(2);
    let a = connection(room.try_enter().unwrap(), false);
    let b = connection(room.try_enter().unwrap(), false);
    let start = tokio::time::Instant::now();
    assert!(room.enter_shedding().await.is_none());
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(2));
    assert_eq!(room.shed_count(), 0);
    // Nothing is left asked for, so no later idle connection is shed for it.
    assert_eq!(room.wanted.load(std::sync::atomic::Ordering::Relaxed), 0);
    a.abort();
    b.abort();
}

#[tokio::test]
async fn a_seat_freed_by_a_normal_close_is_taken_without_shedding() {
    let room: Arc<Room> = Room::new(1);
    let seat = room.try_enter().unwrap();
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(seat);
    });
    assert!(room.enter_shedding().await.is_some());
    closer.await.unwrap();
    assert_eq!(room.shed_count(), 0);
}
