//! What wakes the dir store's watchers: inotify (the `notify` crate) on the
//! store's root directory, one instance per opened store shared by all of
//! its watches. A change to the log, the head or the lock file (a writer
//! finished, or died holding it) bumps a counter that watchers wait on.
//!
//! Watchers still look every [`FALLBACK_POLL`] on their own, for
//! filesystems where inotify reports nothing (NFS, some FUSE mounts) or
//! when no inotify instance can be had; an idle store otherwise costs no
//! CPU. This module must never decide what changed: it only says "look".

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

/// How long a watcher waits without a wake-up before it looks anyway.
pub const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// The files in the root whose changes can mean a new commit: the log
/// (appended), the head (renamed into place) and the lock (closed by a
/// writer that finished or died).
const WATCHED: &[&str] = &["log.jsonl", "head.json", "lock"];

/// A change counter and the condition watchers wait on.
#[derive(Default)]
struct Signal {
    changes: Mutex<u64>,
    changed: Condvar,
}

impl Signal {
    fn bump(&self) {
        let mut n = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        *n = n.wrapping_add(1);
        self.changed.notify_all();
    }
}

/// Wakes the watchers of one store.
pub(super) struct Wakeup {
    signal: Arc<Signal>,
    /// Kept alive for the store's life; `None` when inotify is unavailable.
    _watcher: Option<RecommendedWatcher>,
}

/// Whether an inotify event may mean a commit. Opens (every reader makes
/// them, the watchers too) never do; anything else on a watched file or
/// an overflow might.
fn relevant(event: &notify::Event) -> bool {
    if matches!(event.kind, EventKind::Access(AccessKind::Open(_))) {
        return false;
    }
    event.need_rescan()
        || event.paths.is_empty()
        || event.paths.iter().any(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| WATCHED.contains(&n))
        })
}

impl Wakeup {
    /// Watches `root`; on failure (no inotify instance left, a filesystem
    /// without inotify) it logs why and leaves watchers on the slow poll.
    pub(super) fn new(root: &Path) -> Wakeup {
        let signal = Arc::new(Signal::default());
        let sink = Arc::clone(&signal);
        let handler = move |event: notify::Result<notify::Event>| {
            // An error may have cost an event: look again.
            if event.as_ref().map_or(true, relevant) {
                sink.bump();
            }
        };
        let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
            w.watch(root, RecursiveMode::NonRecursive)?;
            Ok(w)
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(path = %root.display(), error = %e, "cannot watch the store with inotify; watchers poll every {} s", FALLBACK_POLL.as_secs());
                None
            }
        };
        Wakeup {
            signal,
            _watcher: watcher,
        }
    }

    /// The change count now: pass it to [`wait`](Self::wait) after looking.
    pub(super) fn current(&self) -> u64 {
        *self
            .signal
            .changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the count moves past `seen` or `timeout` passes, and
    /// returns the count. A change between `current` and `wait` is never
    /// lost: the count has already moved.
    pub(super) fn wait(&self, seen: u64, timeout: Duration) -> u64 {
        let changes = self
            .signal
            .changes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (changes, _) = self
            .signal
            .changed
            .wait_timeout_while(changes, timeout, |n| *n == seen)
            .unwrap_or_else(PoisonError::into_inner);
        *changes
    }
}
