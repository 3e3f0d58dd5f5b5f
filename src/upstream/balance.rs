//! Load balancing: which endpoint of a cluster gets a request, by the
//! DestinationRule's `loadBalancer` (gatehouse's default without one is
//! round robin: docs/load-balancing.md says why). ROUND_ROBIN takes the
//! endpoints in turn; LEAST_REQUEST draws two and takes the one with
//! fewer requests in flight (Envoy's power of two choices); RANDOM draws
//! one; `consistentHash` walks the ring from the request's key (no key:
//! random, as Envoy). Ejected endpoints are skipped (outlier detection)
//! unless fewer than `minHealthPercent` are healthy; a new endpoint warms
//! up over `warmupDurationSecs` (slow start: its share grows from 10%).
//!
//! No lock and no allocation per pick; it must never pick an endpoint
//! the configuration did not name, or an ejected one while others serve.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::limits::Limits;
use super::outlier::{self, EndpointState, Outcome};
use super::registry::ClusterState;
use super::ring::Ring;
use super::{Endpoints, Upstream};
use crate::config::checked::destination_rule::{HashKey, LbAlgorithm};

/// Envoy's slow start `min_weight_percent`: a new endpoint's share starts
/// at a tenth of the others'.
const WARMUP_MIN_PER_MILLE: u64 = 100;

/// The balancing state of one `Upstream` (see `registry`).
#[derive(Debug, Default)]
pub struct Balance {
    pub(super) cluster: Arc<ClusterState>,
    /// The endpoints' names (`ip:port`, `name:port`), in order.
    pub(super) keys: Vec<String>,
    /// Their states, in the same order.
    pub(super) endpoints: Vec<Arc<EndpointState>>,
    /// Static endpoints by address.
    by_addr: HashMap<SocketAddr, usize>,
    pub(super) ring: Option<Arc<Ring>>,
    pub(super) limits: Option<Arc<Limits>>,
}

impl Balance {
    /// Fresh state for `endpoints` (`registry::Registry::attach` swaps in
    /// the kept state).
    pub(super) fn new(endpoints: &Endpoints) -> Balance {
        let (keys, by_addr): (Vec<String>, _) = match endpoints {
            Endpoints::Static(a) => (
                a.iter().map(ToString::to_string).collect(),
                a.iter().enumerate().map(|(i, a)| (*a, i)).collect(),
            ),
            Endpoints::Dns(n) => (
                n.iter().map(|(h, p)| format!("{h}:{p}")).collect(),
                HashMap::new(),
            ),
        };
        let endpoints = ClusterState::default().endpoints_for(&keys);
        Balance {
            keys,
            endpoints,
            by_addr,
            ..Balance::default()
        }
    }
}

/// A uniform draw in `0..n` (n > 0).
fn draw(n: usize) -> usize {
    crate::proxy::chance::per_million() as usize % n
}

impl Upstream {
    /// The `consistentHash` key this cluster hashes, if it does.
    pub fn hash_key(&self) -> Option<&HashKey> {
        match &self.policy.load_balancer.as_ref()?.algorithm {
            LbAlgorithm::Hash(k) => Some(k),
            _ => None,
        }
    }

    /// The circuit-breaker limits of this cluster, if its DestinationRule
    /// sets any.
    pub fn limits(&self) -> Option<&Arc<Limits>> {
        self.balance.limits.as_ref()
    }

    /// The state of the endpoint `addr` was picked from.
    pub fn endpoint_of(&self, addr: SocketAddr) -> Option<&Arc<EndpointState>> {
        if let Some(i) = self.balance.by_addr.get(&addr) {
            return self.balance.endpoints.get(*i);
        }
        // A DNS endpoint: the one last resolved to `addr`.
        self.balance
            .endpoints
            .iter()
            .find(|e| e.resolved.load().as_deref() == Some(&addr))
    }

    /// Chooses an endpoint index, or `None` when none may be used (none
    /// configured, or all ejected). `hash` is the request's key hash for
    /// `consistentHash`.
    pub(super) fn choose(&self, hash: Option<u64>) -> Option<usize> {
        let eps = &self.balance.endpoints;
        if eps.is_empty() {
            return None;
        }
        let now = outlier::now_ms();
        // Without outlier detection nobody is ejected: no scan.
        let all = match &self.policy.outlier {
            None => true,
            Some(o) => {
                let name = self.cluster();
                let mut usable = 0;
                for e in eps {
                    usable += usize::from(e.available(now, &name));
                }
                // Below minHealthPercent, outlier detection steps aside.
                let all = usable * 100 < o.min_health_percent as usize * eps.len();
                if usable == 0 && !all {
                    return None;
                }
                all
            }
        };
        let ok = |i: usize| all || !eps[i].ejected(now);
        let next_ok = |from: usize| {
            (0..eps.len())
                .map(|k| (from + k) % eps.len())
                .find(|i| ok(*i))
        };
        let algorithm = self
            .policy
            .load_balancer
            .as_ref()
            .map_or(&LbAlgorithm::RoundRobin, |l| &l.algorithm);
        match algorithm {
            LbAlgorithm::Hash(_) => match (hash, &self.balance.ring) {
                (Some(h), Some(ring)) => ring.walk(h).find(|i| ok(*i)),
                _ => next_ok(draw(eps.len())),
            },
            LbAlgorithm::Random => next_ok(draw(eps.len())),
            LbAlgorithm::RoundRobin => self.warmed(now, || {
                let n = self.balance.cluster.next.fetch_add(1, Ordering::Relaxed);
                next_ok(n % eps.len())
            }),
            LbAlgorithm::LeastRequest => self.warmed(now, || {
                let a = next_ok(draw(eps.len()))?;
                let b = next_ok(draw(eps.len()))?;
                let load = |i: usize| eps[i].active.load(Ordering::Relaxed);
                Some(if load(b) < load(a) { b } else { a })
            }),
        }
    }

    /// A pick by `pick`, under slow start: an endpoint still warming up
    /// (`warmupDurationSecs` since it was first seen) is kept with the
    /// chance of its share, else another pick is made (a few at most).
    fn warmed(&self, now: u64, mut pick: impl FnMut() -> Option<usize>) -> Option<usize> {
        let Some(window) = self.policy.load_balancer.as_ref().and_then(|l| l.warmup) else {
            return pick();
        };
        let window = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut last = None;
        for _ in 0..4 {
            let i = pick()?;
            let age = now.saturating_sub(self.balance.endpoints[i].added_ms);
            let per_mille = (age.saturating_mul(1000) / window).max(WARMUP_MIN_PER_MILLE);
            if per_mille >= 1000 || (draw(1000) as u64) < per_mille {
                return Some(i);
            }
            last = Some(i);
        }
        last
    }

    /// Counts `outcome` of a request to `endpoint`, and ejects it when it
    /// reached the outlier detection's threshold and the cluster may lose
    /// one more.
    pub fn report(&self, endpoint: &EndpointState, outcome: Outcome) {
        let Some(policy) = &self.policy.outlier else {
            return;
        };
        if !endpoint.count(outcome, policy) {
            return;
        }
        let now = outlier::now_ms();
        let eps = &self.balance.endpoints;
        let ejected = eps.iter().filter(|e| e.ejected(now)).count();
        let cluster = self.cluster();
        if outlier::may_eject(ejected, eps.len(), policy) {
            endpoint.eject(now, policy, &cluster);
        } else {
            tracing::debug!(
                upstream = %cluster,
                endpoint = %endpoint.name,
                "outlier detection: not ejected (maxEjectionPercent)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::checked::destination_rule::{ClusterPolicy, LoadBalancer, Outlier};
    use crate::upstream::Registry;

    fn up(n: usize, lb: LbAlgorithm) -> Upstream {
        let addrs = (0..n)
            .map(|i| SocketAddr::from(([10, 0, 0, u8::try_from(i).unwrap()], 80)))
            .collect();
        let mut u = Upstream::new("svc".into(), 80, Endpoints::Static(addrs));
        u.policy = Arc::new(ClusterPolicy {
            load_balancer: Some(LoadBalancer {
                algorithm: lb,
                warmup: None,
            }),
            outlier: Some(Outlier {
                consecutive_5xx: Some(1),
                consecutive_gateway: None,
                consecutive_local_origin: None,
                split_local_origin: false,
                interval: Duration::from_millis(1),
                base_ejection: Duration::from_secs(30),
                max_ejection_percent: 100,
                min_health_percent: 0,
            }),
            ..ClusterPolicy::default()
        });
        Registry::default().attach(&mut u);
        u
    }

    #[test]
    fn round_robin_takes_turns_and_skips_the_ejected() {
        let u = up(3, LbAlgorithm::RoundRobin);
        let picks: Vec<usize> = (0..6).filter_map(|_| u.choose(None)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        u.report(&u.balance.endpoints[1], Outcome::Status(503));
        let picks: Vec<usize> = (0..4).filter_map(|_| u.choose(None)).collect();
        assert_eq!(picks, [0, 2, 2, 0]);
        u.report(&u.balance.endpoints[0], Outcome::NoAnswer);
        u.report(&u.balance.endpoints[2], Outcome::NoAnswer);
        assert_eq!(u.choose(None), None, "all ejected: no healthy upstream");
    }

    #[test]
    fn below_min_health_percent_the_ejected_serve_again() {
        let mut u = up(2, LbAlgorithm::RoundRobin);
        let mut p = (*u.policy).clone();
        if let Some(o) = p.outlier.as_mut() {
            o.min_health_percent = 60;
        }
        u.policy = Arc::new(p);
        u.report(&u.balance.endpoints[0], Outcome::Status(500));
        // One of two healthy is 50%, below 60%: both take turns.
        let picks: Vec<usize> = (0..4).filter_map(|_| u.choose(None)).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn a_warming_endpoint_gets_a_smaller_share() {
        let mut u = up(2, LbAlgorithm::RoundRobin);
        let mut p = (*u.policy).clone();
        p.load_balancer = Some(LoadBalancer {
            algorithm: LbAlgorithm::RoundRobin,
            warmup: Some(Duration::from_millis(1)),
        });
        u.policy = Arc::new(p);
        // Endpoint 1 just appeared (as far as its age says); 0 is old.
        let mut new = EndpointState::new("10.0.0.1:80".into());
        new.added_ms = u64::MAX / 2;
        u.balance.endpoints[1] = Arc::new(new);
        // Seen at the clock's start: at least 1 ms, the whole window, ago.
        let mut old = EndpointState::new("10.0.0.0:80".into());
        old.added_ms = 0;
        u.balance.endpoints[0] = Arc::new(old);
        let to_new = (0..1000).filter(|_| u.choose(None) == Some(1)).count();
        // Round robin would give it 500; warming, about a tenth of that.
        assert!(to_new < 150, "{to_new}");
    }

    #[tokio::test]
    async fn a_dns_endpoint_is_found_by_its_resolved_address() {
        let names = vec![("127.0.0.1".to_owned(), 81), ("127.0.0.2".to_owned(), 82)];
        let u = Upstream::new("svc".into(), 80, Endpoints::Dns(names));
        let a = u.pick().await.unwrap();
        let b = u.pick().await.unwrap();
        assert_eq!(
            (a.to_string(), b.to_string()),
            ("127.0.0.1:81".into(), "127.0.0.2:82".into())
        );
        assert_eq!(u.endpoint_of(a).unwrap().name, "127.0.0.1:81");
        assert_eq!(u.endpoint_of(b).unwrap().name, "127.0.0.2:82");
        assert!(u.endpoint_of("127.0.0.3:83".parse().unwrap()).is_none());
    }

    #[test]
    fn least_request_prefers_the_idle() {
        let u = up(2, LbAlgorithm::LeastRequest);
        u.balance.endpoints[0].active.store(5, Ordering::Relaxed);
        let to_idle = (0..1000).filter(|_| u.choose(None) == Some(1)).count();
        // Only a draw of the busy one twice picks it: about a quarter.
        assert!(to_idle > 650, "{to_idle}");
    }

    #[test]
    fn a_hash_sticks_and_moves_only_when_its_endpoint_is_out() {
        let u = up(4, LbAlgorithm::Hash(HashKey::SourceIp));
        let h = super::super::ring::hash(b"192.0.2.7");
        let first = u.choose(Some(h)).unwrap();
        assert!((0..20).all(|_| u.choose(Some(h)) == Some(first)));
        u.report(&u.balance.endpoints[first], Outcome::Status(500));
        let second = u.choose(Some(h)).unwrap();
        assert_ne!(first, second);
        let spread: std::collections::HashSet<usize> = (0..64u32)
            .filter_map(|k| u.choose(Some(super::super::ring::hash(&k.to_le_bytes()))))
            .collect();
        assert!(spread.len() >= 3, "{spread:?}");
    }
}
