//! Room for new connections under pressure: when a listener (or the
//! process) is at its connection limit, idle keep-alive connections are
//! asked to close so that a fresh client is served, as Envoy's overload
//! manager does; a new connection is refused only when nothing idle can be
//! shed in time.
//!
//! A [`Room`] is a limit (a semaphore of permits) and a way to ask its idle
//! connections to leave. Open connections wait on one of its [`SHARDS`]
//! notifiers (by a per-connection number); a new connection that finds the
//! room full raises `wanted` and wakes one shard, then two, four and so on
//! every 20 ms until it has room, so in a crowded room an ask wakes about
//! 1/64 of the connections, not all ten thousand. A woken connection
//! with no request in flight claims one unit of `wanted` and closes
//! gracefully (HTTP/2 GOAWAY; HTTP/1.1 closed between requests). Nothing
//! here runs on the request path: each connection waits on its shard from
//! a small task of its own (`handler::watch_for_shedding`), and the
//! connection's task only polls a lock-free channel from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Notifiers per room.
pub const SHARDS: usize = 64;
/// How long a new connection waits for an idle one to make room.
const WAIT_FOR_ROOM: Duration = Duration::from_secs(1);
/// How often a waiting connection asks the next shard.
const ASK_EVERY: Duration = Duration::from_millis(20);

/// One connection limit and the idle connections it may shed.
#[derive(Debug)]
pub struct Room {
    permits: Arc<Semaphore>,
    /// Idle connections asked to close and not yet claimed.
    wanted: AtomicUsize,
    shards: Vec<Notify>,
    /// Next shard to wake; also numbers connections into shards.
    next: AtomicUsize,
    /// New connections waiting for room now.
    waiting: AtomicUsize,
    /// Idle connections shed so far.
    shed: AtomicU64,
}

impl Room {
    pub fn new(limit: usize) -> Arc<Room> {
        Arc::new(Room {
            permits: Arc::new(Semaphore::new(limit)),
            wanted: AtomicUsize::new(0),
            shards: (0..SHARDS).map(|_| Notify::new()).collect(),
            next: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
        })
    }

    /// A permit at once, if there is room.
    fn try_enter(self: &Arc<Self>) -> Option<Seat> {
        let permit = self.permits.clone().try_acquire_owned().ok()?;
        Some(self.seat(permit))
    }

    fn seat(self: &Arc<Self>, permit: OwnedSemaphorePermit) -> Seat {
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % SHARDS;
        Seat {
            room: self.clone(),
            shard,
            _permit: permit,
        }
    }

    /// Waits for a permit while asking idle connections to make room;
    /// `None` when none left in time (or too many already wait).
    async fn enter_shedding(self: &Arc<Self>) -> Option<Seat> {
        let cap = (self.shards.len() * 16).max(1);
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= cap {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        self.wanted.fetch_add(1, Ordering::AcqRel);
        let deadline = tokio::time::Instant::now() + WAIT_FOR_ROOM;
        // One shard first, then twice as many each time: a crowded room
        // finds an idle connection at the first ask, a sparse one within
        // seven (all 64 shards).
        let mut wake = 1;
        let permit = loop {
            for _ in 0..wake {
                let shard = self.next.fetch_add(1, Ordering::Relaxed) % SHARDS;
                self.shards[shard].notify_waiters();
            }
            wake = (wake * 2).min(SHARDS);
            let step = (tokio::time::Instant::now() + ASK_EVERY).min(deadline);
            match tokio::time::timeout_at(step, self.permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => break Some(p),
                Ok(Err(_)) => break None,
                Err(_) if tokio::time::Instant::now() >= deadline => break None,
                Err(_) => {}
            }
        };
        // Whatever the outcome, this connection asks for nothing more.
        let _ = self
            .wanted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| w.checked_sub(1));
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.map(|p| self.seat(p))
    }

    /// Idle connections this room has shed.
    pub fn shed_count(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }
}

/// A connection's place in a room: its permit and its shard.
#[derive(Debug)]
pub struct Seat {
    room: Arc<Room>,
    shard: usize,
    _permit: OwnedSemaphorePermit,
}

impl Seat {
    /// Resolves when this connection's shard is woken by a new one.
    pub async fn asked(&self) {
        self.room.shards[self.shard].notified().await;
    }

    /// Called by an idle connection that was woken: whether it should
    /// leave (it took one unit of `wanted`). Counts the shed.
    pub fn claim(&self) -> Option<u64> {
        self.room
            .wanted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| w.checked_sub(1))
            .ok()?;
        Some(self.room.shed.fetch_add(1, Ordering::Relaxed) + 1)
    }
}

/// The two rooms a connection sits in: its listener's and the process's.
#[derive(Debug)]
pub struct Seats {
    pub listener: Seat,
    pub total: Seat,
}

impl Seats {
    /// Resolves when either room asks this connection's shard.
    pub async fn asked(&self) {
        tokio::select! {
            () = self.listener.asked() => {}
            () = self.total.asked() => {}
        }
    }

    /// An idle connection that was woken: whether it leaves, and how many
    /// connections its room has shed with it.
    pub fn claim(&self) -> Option<u64> {
        self.listener.claim().or_else(|| self.total.claim())
    }
}

/// Seats for a new connection in `listener` and `total`: at once when both
/// have room, else (on a task of its own, so the accept loop never waits)
/// after idle connections made room. `on_room` gets the connection and its
/// seats; a connection that found no room is closed and logged.
pub fn admit<F, Fut>(
    stream: TcpStream,
    peer: std::net::SocketAddr,
    port: u16,
    listener: &Arc<Room>,
    total: &Arc<Room>,
    on_room: F,
) where
    F: FnOnce(TcpStream, Seats) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (l, t) = (listener.try_enter(), total.try_enter());
    if let (Some(listener), Some(total)) = (l, t) {
        tokio::spawn(on_room(stream, Seats { listener, total }));
        return;
    }
    let (listener, total) = (listener.clone(), total.clone());
    tokio::spawn(async move {
        // Each room that was full sheds on its own account.
        let l = match listener.try_enter() {
            Some(s) => Some(s),
            None => listener.enter_shedding().await,
        };
        let t = match (l.is_some(), total.try_enter()) {
            (false, _) => None,
            (true, Some(s)) => Some(s),
            (true, None) => total.enter_shedding().await,
        };
        match (l, t) {
            (Some(listener), Some(total)) => on_room(stream, Seats { listener, total }).await,
            _ => tracing::warn!(
                port,
                %peer,
                "connection limit reached and no idle connection to close; connection refused"
            ),
        }
    });
}

#[cfg(test)]
mod tests;
