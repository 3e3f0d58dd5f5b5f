//! Counting one answered request: `gatehouse_requests_total`, the request
//! and upstream latency histograms, and the upstream UF / UT / UC counters.
//!
//! A family lookup hashes the label set and takes the family's read lock,
//! whose cache line every core then shares. A connection remembers the
//! series its last request counted into ([`ConnCache`]); the next request
//! of the same server, route, destination, method and status (what a
//! keep-alive client asking again does) counts into them directly: a
//! lock-free load, pointer compares and relaxed atomic adds. It must never
//! count into a series whose labels differ from the request's: a hit needs
//! the very same `Arc`s (so the same config values) and equal method and
//! code.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use prometheus_client::metrics::counter::Counter;

use super::labels::{MethodClass, RequestLabels, RouteLabels, UpstreamLabel};
use super::{Latency, Metrics};
use crate::proxy::handler::facts::{Facts, Flag, Flags};
use crate::snapshot::routes::RouteId;
use crate::upstream::Upstream;

/// The series one connection's last request counted into.
#[derive(Debug, Default)]
pub struct ConnCache(ArcSwapOption<Hit>);

#[derive(Debug)]
struct Hit {
    server: Option<Arc<str>>,
    route: Option<Arc<RouteId>>,
    destination: Option<Arc<Upstream>>,
    method: MethodClass,
    code: u16,
    requests: Counter,
    duration: Latency,
    upstream: Option<Latency>,
}

fn same<T: ?Sized>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

impl Hit {
    fn matches(&self, f: &Facts, method: MethodClass, code: u16) -> bool {
        self.code == code
            && self.method == method
            && same(self.route.as_ref(), f.route.as_ref())
            && same(self.server.as_ref(), f.server.as_ref())
            && same(self.destination.as_ref(), f.destination.as_ref())
    }
}

const UPSTREAM_FAILURES: [Flag; 4] = [
    Flag::UpstreamConnectFailure,
    Flag::UpstreamTimeout,
    Flag::UpstreamConnectionTermination,
    Flag::UpstreamOverflow,
];

impl Metrics {
    /// Records one answered request from what its steps learned; `cache`
    /// is its connection's.
    pub fn request(&self, facts: Facts, method: MethodClass, code: u16, cache: &ConnCache) {
        let elapsed = facts.start.elapsed();
        if let Some(hit) = &*cache.0.load()
            && hit.matches(&facts, method, code)
        {
            hit.requests.inc();
            hit.duration.observe(elapsed);
            if let (Some(h), Some(t)) = (&hit.upstream, facts.upstream_time) {
                h.observe(t);
            }
            if UPSTREAM_FAILURES.iter().any(|f| facts.flags.has(*f))
                && let Some(d) = facts.destination
            {
                self.upstream_failures(&UpstreamLabel(d), facts.flags);
            }
            return;
        }
        let hit = self.count_by_lookup(facts, method, code, elapsed);
        cache.0.store(Some(Arc::new(hit)));
    }

    /// The family lookups, and the series found, for the cache.
    fn count_by_lookup(
        &self,
        facts: Facts,
        method: MethodClass,
        code: u16,
        elapsed: Duration,
    ) -> Hit {
        let upstream = facts.destination.as_ref().map(|d| {
            let key = UpstreamLabel(d.clone());
            self.upstream_failures(&key, facts.flags);
            let h = self.upstream_duration.get_or_create(&key).clone();
            if let Some(t) = facts.upstream_time {
                h.observe(t);
            }
            h
        });
        let key = RequestLabels {
            route: RouteLabels {
                server: facts.server,
                route: facts.route,
            },
            method,
            code,
        };
        let requests = self.requests.get_or_create(&key).clone();
        requests.inc();
        let duration = self.request_duration.get_or_create(&key.route).clone();
        duration.observe(elapsed);
        Hit {
            server: key.route.server,
            route: key.route.route,
            destination: facts.destination,
            method,
            code,
            requests,
            duration,
            upstream,
        }
    }

    fn upstream_failures(&self, key: &UpstreamLabel, flags: Flags) {
        if flags.has(Flag::UpstreamConnectFailure) {
            self.upstream_connect_failures.get_or_create(key).inc();
        }
        if flags.has(Flag::UpstreamTimeout) {
            self.upstream_timeouts.get_or_create(key).inc();
        }
        if flags.has(Flag::UpstreamConnectionTermination) {
            self.upstream_resets.get_or_create(key).inc();
        }
        if flags.has(Flag::UpstreamOverflow) {
            self.upstream_overflows.get_or_create(key).inc();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn facts(server: &Arc<str>, route: &Arc<RouteId>) -> Facts {
        let mut f = Facts::new(Instant::now());
        f.server = Some(server.clone());
        f.route = Some(route.clone());
        f
    }

    fn count(m: &Metrics, vs: &str, code: &str) -> Option<String> {
        let text = m.encode(&crate::control::Status::default());
        let needle =
            format!("virtual_service=\"{vs}\",route=\"0\",method=\"GET\",code=\"{code}\"}} ");
        text.lines()
            .find(|l| l.starts_with("gatehouse_requests_total{") && l.contains(&needle))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_owned())
    }

    #[test]
    fn a_cached_series_is_used_only_for_the_same_labels() {
        let m = Metrics::new();
        let cache = ConnCache::default();
        let server: Arc<str> = Arc::from("default/gw/https");
        let a = Arc::new(RouteId {
            virtual_service: Arc::from("default/a"),
            index: 0,
            name: None,
        });
        // The same labels in another Arc (a recompiled snapshot): a miss,
        // but the same series.
        let a2 = Arc::new((*a).clone());
        let b = Arc::new(RouteId {
            virtual_service: Arc::from("default/b"),
            ..(*a).clone()
        });
        let get = MethodClass::Get;
        for (route, code) in [(&a, 200), (&a, 200), (&a2, 200), (&b, 200), (&a, 503)] {
            m.request(facts(&server, route), get, code, &cache);
        }
        assert_eq!(count(&m, "default/a", "200").as_deref(), Some("3"));
        assert_eq!(count(&m, "default/b", "200").as_deref(), Some("1"));
        assert_eq!(count(&m, "default/a", "503").as_deref(), Some("1"));
    }
}
