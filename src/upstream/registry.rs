//! What a cluster's balancing keeps across recompiles: the round-robin
//! position, each endpoint's state (requests in flight, error counts,
//! ejections, when it was first seen), the hash ring and the
//! circuit-breaker counts. A recompile that leaves a cluster and its
//! endpoints as they were hands the new `Upstream` the same state, so an
//! unrelated `apply` never resets an ejection or forgets a request in
//! flight.
//!
//! The registry holds weak references: a cluster (or endpoint) that no
//! snapshot names any more is dropped with the last snapshot that did.
//! Its lock is taken only by the compiler (on the control plane), never on
//! the request path.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use super::Upstream;
use super::limits::Limits;
use super::outlier::EndpointState;
use super::ring::{MIN_RING_SIZE, Ring};
use crate::config::checked::destination_rule::{ConnectionPool, Keepalive, LbAlgorithm};

/// Where a cluster's own connection pool lives, made by the proxy on first
/// use (`proxy::pool`): this module only keeps it, whatever its type.
pub type TransportSlot = OnceLock<Box<dyn Any + Send + Sync>>;

/// What a cluster's own connection pool is made from: `tcp.connectTimeout`,
/// `tcp.tcpKeepalive`, `http.idleTimeout`.
type TransportKey = (Option<Duration>, Option<Keepalive>, Option<Duration>);

/// One cluster's state.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// The round-robin position.
    pub(super) next: AtomicUsize,
    endpoints: Mutex<HashMap<String, Weak<EndpointState>>>,
    ring: Mutex<Option<(Vec<String>, Arc<Ring>)>>,
    limits: Mutex<Option<Arc<Limits>>>,
    transport: Mutex<Option<(TransportKey, Arc<TransportSlot>)>>,
}

/// The clusters' states by cluster name; a clone shares them.
#[derive(Debug, Clone, Default)]
pub struct Registry(Arc<Mutex<HashMap<String, Weak<ClusterState>>>>);

impl Registry {
    /// Gives `up` its cluster's kept state (made on first sight), its
    /// endpoints' states, its ring when it hashes, and its limits.
    pub fn attach(&self, up: &mut Upstream) {
        let name = up.cluster_name();
        let cluster = {
            let Ok(mut map) = self.0.lock() else {
                return;
            };
            if let Some(c) = map.get(&name).and_then(Weak::upgrade) {
                c
            } else {
                // A good moment to forget clusters nobody serves.
                map.retain(|_, w| w.strong_count() > 0);
                let c = Arc::new(ClusterState::default());
                map.insert(name, Arc::downgrade(&c));
                c
            }
        };
        let keys = up.balance.keys.clone();
        up.balance.endpoints = cluster.endpoints_for(&keys);
        up.balance.ring = match up.policy.load_balancer.as_ref().map(|l| &l.algorithm) {
            Some(LbAlgorithm::Hash(_)) => Some(cluster.ring_for(&keys)),
            _ => None,
        };
        up.balance.limits = up
            .policy
            .connection_pool
            .as_ref()
            .and_then(|p| cluster.limits_for(p));
        up.transport = up
            .policy
            .connection_pool
            .as_ref()
            .and_then(|p| cluster.transport_for(p));
        up.balance.cluster = cluster;
    }
}

impl ClusterState {
    /// The states of endpoints named `keys`, kept ones where they exist.
    pub(super) fn endpoints_for(&self, keys: &[String]) -> Vec<Arc<EndpointState>> {
        let fresh = || keys.iter().map(|k| Arc::new(EndpointState::new(k.clone())));
        let Ok(mut map) = self.endpoints.lock() else {
            return fresh().collect();
        };
        map.retain(|_, w| w.strong_count() > 0);
        keys.iter()
            .map(|k| {
                if let Some(e) = map.get(k).and_then(Weak::upgrade) {
                    return e;
                }
                let e = Arc::new(EndpointState::new(k.clone()));
                map.insert(k.clone(), Arc::downgrade(&e));
                e
            })
            .collect()
    }

    /// The ring over `keys`, rebuilt only when they changed.
    fn ring_for(&self, keys: &[String]) -> Arc<Ring> {
        let Ok(mut kept) = self.ring.lock() else {
            return Arc::new(Ring::new(keys, MIN_RING_SIZE));
        };
        if let Some((k, r)) = kept.as_ref()
            && k == keys
        {
            return r.clone();
        }
        let r = Arc::new(Ring::new(keys, MIN_RING_SIZE));
        *kept = Some((keys.to_vec(), r.clone()));
        r
    }

    /// The slot of the cluster's own connection pool when `pool` sets what
    /// the shared one cannot vary (kept while those settings are
    /// unchanged, so its idle connections survive a recompile).
    fn transport_for(&self, pool: &ConnectionPool) -> Option<Arc<TransportSlot>> {
        let key = (
            pool.connect_timeout,
            pool.keepalive.clone(),
            pool.idle_timeout,
        );
        if key == (None, None, None) {
            return None;
        }
        let Ok(mut kept) = self.transport.lock() else {
            return Some(Arc::default());
        };
        if let Some((k, slot)) = kept.as_ref()
            && *k == key
        {
            return Some(slot.clone());
        }
        let slot: Arc<TransportSlot> = Arc::default();
        *kept = Some((key, slot.clone()));
        Some(slot)
    }

    /// The limits of `pool`, the kept ones (and their counts of what is in
    /// flight) while the settings are unchanged.
    fn limits_for(&self, pool: &ConnectionPool) -> Option<Arc<Limits>> {
        let Ok(mut kept) = self.limits.lock() else {
            return Limits::new(pool).map(Arc::new);
        };
        if let Some(l) = kept.as_ref()
            && l.pool == *pool
        {
            return Some(l.clone());
        }
        let l = Limits::new(pool).map(Arc::new);
        kept.clone_from(&l);
        l
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Endpoints;

    fn up(addrs: &[&str]) -> Upstream {
        let addrs = addrs.iter().map(|a| a.parse().unwrap()).collect();
        Upstream::new("svc".into(), 80, Endpoints::Static(addrs))
    }

    #[test]
    fn a_recompile_keeps_the_endpoints_state() {
        let reg = Registry::default();
        let mut a = up(&["10.0.0.1:80", "10.0.0.2:80"]);
        reg.attach(&mut a);
        a.balance.endpoints[1]
            .active
            .store(7, std::sync::atomic::Ordering::Relaxed);
        let mut b = up(&["10.0.0.2:80", "10.0.0.3:80"]);
        reg.attach(&mut b);
        assert!(Arc::ptr_eq(&a.balance.cluster, &b.balance.cluster));
        assert!(Arc::ptr_eq(
            &a.balance.endpoints[1],
            &b.balance.endpoints[0]
        ));
        assert_eq!(
            b.balance.endpoints[0]
                .active
                .load(std::sync::atomic::Ordering::Relaxed),
            7
        );
        drop(a);
        drop(b);
        let mut c = up(&["10.0.0.2:80"]);
        reg.attach(&mut c);
        assert_eq!(
            c.balance.endpoints[0]
                .active
                .load(std::sync::atomic::Ordering::Relaxed),
            0,
            "nobody kept it: fresh"
        );
    }
}
