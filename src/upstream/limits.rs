//! Circuit breaking: a DestinationRule's `connectionPool` limits for one
//! cluster, Envoy's per-cluster circuit breakers. A request is admitted
//! while the cluster has fewer than `http2MaxRequests` requests in flight
//! and a connection free under `tcp.maxConnections` (an HTTP/1.1
//! connection carries one request at a time); else it waits for one,
//! while fewer than `http1MaxPendingRequests` others wait; else it
//! overflows (503 with Envoy's `UO`). `maxRetries` bounds the retries in
//! flight to the cluster at once; `maxRequestsPerConnection` closes a
//! connection after that many requests.
//!
//! No lock on the request path but a semaphore's: counts are atomics.
//! It must never admit more than the limits say, nor keep a slot after
//! its request ended (each is released by a guard's `Drop`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::checked::destination_rule::ConnectionPool;

/// The limits of one cluster, and what is in use under them.
#[derive(Debug)]
pub struct Limits {
    /// What these limits were made from (reused while it is unchanged).
    pub(super) pool: ConnectionPool,
    connections: Option<Arc<Semaphore>>,
    max_pending: u32,
    pending: AtomicU32,
    max_requests: u32,
    requests: AtomicU32,
    max_retries: u32,
    retries: AtomicU32,
    /// `maxRequestsPerConnection` (0: no limit).
    per_connection: u32,
    /// Requests so far per connection (by its local address), for a
    /// per-connection limit over 1.
    served: Mutex<HashMap<SocketAddr, u32>>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// A limit was full: 503 `UO`.
    Overflow,
    /// It waited for a connection past its deadline.
    Timeout,
}

/// A request's place in its cluster; released when dropped.
#[derive(Debug)]
pub struct Admission {
    limits: Arc<Limits>,
    _connection: Option<OwnedSemaphorePermit>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.limits.requests.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A retry's place in its cluster; released when dropped.
#[derive(Debug)]
pub struct RetrySlot(Arc<Limits>);

impl Drop for RetrySlot {
    fn drop(&mut self) {
        self.0.retries.fetch_sub(1, Ordering::AcqRel);
    }
}

fn limit(v: Option<u32>) -> u32 {
    v.filter(|n| *n > 0).unwrap_or(u32::MAX)
}

impl Limits {
    /// The limits of `pool`; `None` when it sets none of them (nothing to
    /// count).
    pub fn new(pool: &ConnectionPool) -> Option<Limits> {
        let any = pool.max_connections.is_some()
            || pool.http1_max_pending_requests.is_some()
            || pool.http2_max_requests.is_some()
            || pool.max_retries.is_some()
            || pool.max_requests_per_connection.is_some_and(|n| n > 0);
        if !any {
            return None;
        }
        let connections = pool
            .max_connections
            .filter(|n| *n > 0)
            .map(|n| Arc::new(Semaphore::new((n as usize).min(Semaphore::MAX_PERMITS))));
        Some(Limits {
            pool: pool.clone(),
            connections,
            max_pending: limit(pool.http1_max_pending_requests),
            pending: AtomicU32::new(0),
            max_requests: limit(pool.http2_max_requests),
            requests: AtomicU32::new(0),
            max_retries: limit(pool.max_retries),
            retries: AtomicU32::new(0),
            per_connection: pool.max_requests_per_connection.unwrap_or(0),
            served: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a request, waiting at most `wait` for a connection.
    pub async fn admit(self: &Arc<Self>, wait: Duration) -> Result<Admission, Refused> {
        if self.requests.fetch_add(1, Ordering::AcqRel) >= self.max_requests {
            self.requests.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Overflow);
        }
        // From here the request counts; the admission releases it.
        let mut admission = Admission {
            limits: self.clone(),
            _connection: None,
        };
        let Some(sem) = &self.connections else {
            return Ok(admission);
        };
        if let Ok(p) = sem.clone().try_acquire_owned() {
            admission._connection = Some(p);
            return Ok(admission);
        }
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.max_pending {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::Overflow);
        }
        let got = tokio::time::timeout(wait, sem.clone().acquire_owned()).await;
        self.pending.fetch_sub(1, Ordering::AcqRel);
        match got {
            Ok(Ok(p)) => {
                admission._connection = Some(p);
                Ok(admission)
            }
            Ok(Err(_)) => Err(Refused::Overflow),
            Err(_) => Err(Refused::Timeout),
        }
    }

    /// A place for one more retry, or `None` when `maxRetries` are in
    /// flight already.
    pub fn retry(self: &Arc<Self>) -> Option<RetrySlot> {
        if self.retries.fetch_add(1, Ordering::AcqRel) >= self.max_retries {
            self.retries.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(RetrySlot(self.clone()))
    }

    /// Whether `maxRequestsPerConnection` is set (connections must be
    /// watched).
    pub fn limits_connections(&self) -> bool {
        self.per_connection > 0
    }

    /// Whether `maxRequestsPerConnection` is 1.
    pub fn one_request_per_connection(&self) -> bool {
        self.per_connection == 1
    }

    /// Whether the connection at `local` has served its
    /// `maxRequestsPerConnection` with this request (it must then close).
    pub fn connection_spent(&self, local: Option<SocketAddr>) -> bool {
        match (self.per_connection, local) {
            (0, _) => false,
            (1, _) | (_, None) => true,
            (n, Some(local)) => {
                let Ok(mut served) = self.served.lock() else {
                    return true;
                };
                // Connections closed by the backend leave their count
                // behind: forget them all now and then.
                if served.len() > 4096 {
                    served.clear();
                }
                let count = served.entry(local).or_insert(0);
                *count += 1;
                if *count >= n {
                    served.remove(&local);
                    return true;
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(conns: u32, pending: u32) -> Arc<Limits> {
        let p = ConnectionPool {
            max_connections: Some(conns),
            http1_max_pending_requests: Some(pending),
            ..ConnectionPool::default()
        };
        Arc::new(Limits::new(&p).unwrap())
    }

    #[tokio::test]
    async fn one_connection_one_pending_then_overflow() {
        let l = pool(1, 1);
        let wait = Duration::from_millis(50);
        let first = l.admit(wait).await.unwrap();
        // The second waits (and times out here, nobody releasing).
        assert_eq!(l.admit(wait).await.unwrap_err(), Refused::Timeout);
        let l2 = l.clone();
        let waiting = tokio::spawn(async move { l2.admit(Duration::from_secs(5)).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(l.admit(wait).await.unwrap_err(), Refused::Overflow);
        drop(first);
        assert!(
            waiting.await.unwrap(),
            "the pending request got the connection"
        );
        assert!(l.admit(wait).await.is_ok());
    }

    #[tokio::test]
    async fn max_requests_and_retries_overflow_at_once() {
        let p = ConnectionPool {
            http2_max_requests: Some(1),
            max_retries: Some(1),
            ..ConnectionPool::default()
        };
        let l = Arc::new(Limits::new(&p).unwrap());
        let a = l.admit(Duration::ZERO).await.unwrap();
        assert_eq!(
            l.admit(Duration::ZERO).await.unwrap_err(),
            Refused::Overflow
        );
        drop(a);
        assert!(l.admit(Duration::ZERO).await.is_ok());
        let r = l.retry().unwrap();
        assert!(l.retry().is_none());
        drop(r);
        assert!(l.retry().is_some());
        assert!(Limits::new(&ConnectionPool::default()).is_none());
    }

    #[test]
    fn a_connection_is_spent_after_its_requests() {
        let p = ConnectionPool {
            max_requests_per_connection: Some(2),
            ..ConnectionPool::default()
        };
        let l = Limits::new(&p).unwrap();
        let a: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:1001".parse().unwrap();
        assert!(!l.connection_spent(Some(a)));
        assert!(!l.connection_spent(Some(b)));
        assert!(l.connection_spent(Some(a)));
        assert!(!l.connection_spent(Some(a)), "a new connection, same port");
    }
}
