//! Tailing the change log for one `watch` (see the parent module for the
//! design): a thread that reads what was committed since it last looked,
//! then sleeps until the store's [`Wakeup`](super::wakeup::Wakeup) says
//! something changed, or [`FALLBACK_POLL`] passes.
//!
//! A watcher must never send an event twice, out of order, or before the
//! head says its change is applied, and must never wait for a busy writer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Inner;
use super::wakeup::FALLBACK_POLL;
use crate::store::log::{self, Head};
use crate::store::{Event, Object, StoreError, WatchReceiver};

/// How long a watcher waits before it looks again while a writer holds the
/// lock: its own look at the lock file wakes it, so without a pause it
/// would spin until the writer is done.
const BUSY_PAUSE: Duration = Duration::from_millis(1);
/// Events a watcher buffers before it waits for the receiver.
const WATCH_BUFFER: usize = 1024;

/// Starts a watch of every event after `from_revision`, given a consistent
/// `head`.
pub(super) fn start(
    inner: Arc<Inner>,
    head: Head,
    from_revision: u64,
) -> Result<WatchReceiver, StoreError> {
    let (tx, rx) = mpsc::channel(WATCH_BUFFER);
    // Starting at the head skips reading history the watcher would drop.
    let (offset, seen) = if from_revision >= head.revision {
        (head.log_offset, head.revision)
    } else {
        (0, 0)
    };
    let watcher = Watcher {
        inner,
        from_revision,
        offset,
        seen,
        busy: false,
    };
    std::thread::Builder::new()
        .name("store-watch".to_owned())
        .spawn(move || watcher.run(tx))
        .map_err(|e| StoreError::Background(format!("cannot start a watch thread: {e}")))?;
    Ok(rx)
}

/// Tails the log for one `watch`.
struct Watcher {
    inner: Arc<Inner>,
    from_revision: u64,
    /// The log offset read up to: always a head's offset.
    offset: u64,
    /// The revision of the last event read, sent or not.
    seen: u64,
    /// The last look found a writer at work: look again soon.
    busy: bool,
}

impl Watcher {
    fn run(mut self, tx: mpsc::Sender<Result<Event, StoreError>>) {
        let inner = Arc::clone(&self.inner);
        let wakeup = inner.wakeup();
        let mut changes = wakeup.current();
        while !tx.is_closed() {
            let mut events = Vec::new();
            let result = self.poll(|event| {
                events.push(event);
                // Send in chunks so a long history is never all in memory.
                if events.len() >= WATCH_BUFFER {
                    return events
                        .drain(..)
                        .all(|event| tx.blocking_send(Ok(event)).is_ok());
                }
                true
            });
            for event in events {
                if tx.blocking_send(Ok(event)).is_err() {
                    return;
                }
            }
            if let Err(e) = result {
                tracing::warn!(error = %e, "store watch stopped");
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if self.busy {
                std::thread::sleep(BUSY_PAUSE);
            }
            changes = wakeup.wait(changes, FALLBACK_POLL);
        }
    }

    /// Reads the changes committed since the last poll and hands each event
    /// past `from_revision` to `emit`, which returns `false` to stop.
    fn poll(&mut self, mut emit: impl FnMut(Event) -> bool) -> Result<(), StoreError> {
        let inner = &*self.inner;
        self.busy = false;
        let len = log::log_len(&inner.log)?;
        if len == self.offset {
            return Ok(());
        }
        let head = match log::read_head(&inner.head) {
            Ok(head) if head.log_offset == len => head,
            // A writer is busy or died. If it is busy, read what is already
            // applied and come back; never wait on the lock, which a busy
            // writer may take again at once.
            lockless => {
                let idle = inner.head_if_idle()?;
                self.busy = idle.is_none();
                match (idle, lockless) {
                    (Some(head), _) | (None, Ok(head)) => head,
                    (None, Err(_)) => return Ok(()),
                }
            }
        };
        if head.log_offset < self.offset {
            return Err(StoreError::corrupt(
                &inner.log,
                format!("shrank below byte {} that a watcher read", self.offset),
            ));
        }
        let mut stopped = false;
        log::for_each(&inner.log, self.offset, head.log_offset, |tx| {
            for record in tx.events {
                if record.revision != self.seen + 1 {
                    return Err(StoreError::corrupt(
                        &inner.log,
                        format!(
                            "revision {} follows revision {}",
                            record.revision, self.seen
                        ),
                    ));
                }
                self.seen = record.revision;
                if record.revision <= self.from_revision {
                    continue;
                }
                let key = record.key();
                let value = record.value.decode().map_err(|e| {
                    StoreError::corrupt(&inner.log, format!("revision {}: {e}", record.revision))
                })?;
                let object = Object {
                    key,
                    resource_version: record.revision,
                    value,
                };
                let event = Event {
                    revision: record.revision,
                    event_type: record.event_type,
                    object,
                };
                if !emit(event) {
                    stopped = true;
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if !stopped {
            self.offset = head.log_offset;
        }
        Ok(())
    }
}
