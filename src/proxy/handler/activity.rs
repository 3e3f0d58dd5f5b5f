//! A connection's activity (requests in flight, the last start or end)
//! for the idle timeout, and the watcher that gives an idle connection's
//! place to a new one under overload.

use std::sync::Arc;
use std::time::Instant;

/// Waits, on a task of its own, for a new connection to need this one's
/// place (`overload`); if this one is idle then, it claims the shed and
/// says so on the channel. A task of its own keeps the notifier (and its
/// lock) off the connection's task, which is woken on every read and write;
/// the channel is lock-free. The watcher ends when the guard is dropped.
pub(super) fn watch_for_shedding(
    seats: Arc<super::super::overload::Seats>,
    activity: Arc<Activity>,
) -> (tokio::sync::oneshot::Receiver<u64>, AbortOnDrop) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(async move {
        loop {
            seats.asked().await;
            if activity.quiet()
                && let Some(shed) = seats.claim()
            {
                let _ = tx.send(shed);
                return;
            }
        }
    });
    (rx, AbortOnDrop(task))
}

/// Aborts a task when dropped.
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// When a connection last started or finished a request, and how many it
/// has in flight: what the idle timeout looks at.
#[derive(Debug)]
pub(super) struct Activity {
    epoch: Instant,
    last_ms: std::sync::atomic::AtomicU64,
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.touch();
        Busy(self.clone())
    }

    pub(super) fn last(&self) -> Instant {
        self.epoch
            + std::time::Duration::from_millis(
                self.last_ms.load(std::sync::atomic::Ordering::Relaxed),
            )
    }

    /// No request in flight.
    pub(super) fn quiet(&self) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed) == 0
    }

    pub(super) fn idle_for(&self, idle: std::time::Duration) -> bool {
        self.in_flight.load(std::sync::atomic::Ordering::Relaxed) == 0
            && self.last().elapsed() >= idle
    }
}

/// A request in flight; its end counts as activity.
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.0.touch();
    }
}
