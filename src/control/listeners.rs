//! The listeners the published snapshot asks for: bound here, served on the
//! data-plane runtime, closed when their Gateway port goes away.
//!
//! A port that cannot be bound is kept as a failure (shown by `/ready`,
//! which says not ready while there is one) and retried; it must never
//! stop the other listeners from serving.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;

use super::{ListenerError, RunOptions};
use crate::proxy::Shared;
use crate::snapshot::Snapshot;

/// Every Gateway port: serving, or failed to bind and why.
#[derive(Default)]
pub(super) struct Listeners {
    running: BTreeMap<u16, (SocketAddr, watch::Sender<bool>)>,
    failed: BTreeMap<u16, ListenerError>,
}

impl Listeners {
    /// Closes the listeners the snapshot no longer has and binds those it
    /// has and are not serving (failed ones are tried again).
    pub(super) fn reconcile(&mut self, snap: &Snapshot, opts: &RunOptions, shared: &Arc<Shared>) {
        let wanted: Vec<u16> = snap.listeners.keys().copied().collect();
        self.failed.retain(|p, _| wanted.contains(p));
        let stale: Vec<u16> = self
            .running
            .keys()
            .filter(|p| !wanted.contains(p))
            .copied()
            .collect();
        for p in stale {
            if let Some((addr, tx)) = self.running.remove(&p) {
                let _ = tx.send(true);
                tracing::info!(port = p, %addr, "listener closed");
            }
        }
        for port in wanted {
            if !self.running.contains_key(&port) {
                self.open(port, opts, shared);
            }
        }
    }

    fn open(&mut self, port: u16, opts: &RunOptions, shared: &Arc<Shared>) {
        let addr = opts
            .listen
            .get(&port)
            .copied()
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
        match shared.bind(addr) {
            Ok(l) => {
                let real = l.local_addr().unwrap_or(addr);
                let (tx, rx) = watch::channel(false);
                shared.spawn_listener(l, port, rx);
                println!("listening on {real} for gateway port {port}");
                tracing::info!(port, addr = %real, "listener up");
                self.failed.remove(&port);
                self.running.insert(port, (real, tx));
            }
            Err(e) => {
                let error = ListenerError {
                    port,
                    addr,
                    error: e.to_string(),
                };
                // Said once per cause, not on every retry.
                if self.failed.get(&port) != Some(&error) {
                    eprintln!(
                        "error: cannot listen on {addr} for gateway port {port}: {e} (map it elsewhere with --listen {port}=127.0.0.1:PORT)"
                    );
                    tracing::error!(port, %addr, error = %e, "cannot bind listener; retrying");
                }
                self.failed.insert(port, error);
            }
        }
    }

    /// Whether some port failed to bind (and is worth another try).
    pub(super) fn has_failures(&self) -> bool {
        !self.failed.is_empty()
    }

    pub(super) fn running(&self) -> Vec<(u16, SocketAddr)> {
        self.running.iter().map(|(p, (a, _))| (*p, *a)).collect()
    }

    pub(super) fn failures(&self) -> Vec<ListenerError> {
        self.failed.values().cloned().collect()
    }
}
