//! The drain of the data plane at shutdown: one switch that listeners,
//! connections and the admin endpoint watch, and a count of open
//! connections to wait on.
//!
//! Turning the switch makes listeners stop accepting, every connection shut
//! down gracefully (HTTP/2 GOAWAY; HTTP/1.1 `Connection: close` on the
//! response in flight, an idle one closed at once) and `/ready` answer 503.
//! It must never cut a connection itself: the process does that by exiting
//! when its drain deadline passes.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, watch};

/// Whether the process is draining, and how many connections are open.
#[derive(Debug)]
pub struct Drain {
    draining: watch::Sender<bool>,
    open: AtomicUsize,
    all_closed: Notify,
}

impl Default for Drain {
    fn default() -> Self {
        Drain {
            draining: watch::Sender::new(false),
            open: AtomicUsize::new(0),
            all_closed: Notify::new(),
        }
    }
}

impl Drain {
    /// Starts the drain; returns how many connections were open then.
    pub fn start(&self) -> usize {
        self.draining.send_replace(true);
        self.open()
    }

    pub fn is_draining(&self) -> bool {
        *self.draining.borrow()
    }

    /// Connections accepted and not yet closed (handshakes included).
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Resolves once the drain has started.
    pub async fn started(&self) {
        let mut rx = self.draining.subscribe();
        // The sender lives as long as `self`, so this cannot fail.
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Resolves once no connection is open.
    pub async fn all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            tokio::pin!(notified);
            // Registered before the count is read, so a close between the
            // read and the await still wakes us.
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Counts one open connection until the guard is dropped.
    pub fn connection(self: &std::sync::Arc<Self>) -> ConnectionGuard {
        self.open.fetch_add(1, Ordering::AcqRel);
        ConnectionGuard(self.clone())
    }
}

/// One open connection, counted by [`Drain`].
#[derive(Debug)]
pub struct ConnectionGuard(std::sync::Arc<Drain>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::Drain;

    #[tokio::test]
    async fn all_closed_waits_for_the_last_connection() {
        let drain = Arc::new(Drain::default());
        let a = drain.connection();
        let b = drain.connection();
        assert_eq!(drain.start(), 2);
        assert!(drain.is_draining());
        drop(a);
        let waiting = tokio::time::timeout(Duration::from_millis(50), drain.all_closed()).await;
        assert!(waiting.is_err(), "one connection is still open");
        let d = drain.clone();
        let closer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(b);
            d.open()
        });
        tokio::time::timeout(Duration::from_secs(5), drain.all_closed())
            .await
            .expect("all_closed resolves when the last connection closes");
        assert_eq!(closer.await.ok(), Some(0));
    }
}
