//! Outlier detection (a DestinationRule's `outlierDetection`, Envoy's
//! consecutive-errors detector): each endpoint counts its consecutive 5xx
//! answers and gateway errors (502, 503, 504, and a connection that failed,
//! was reset or timed out); at the threshold it is ejected for
//! `baseEjectionTime` times its ejection count, rounded up to the next
//! `interval` (Envoy un-ejects on its interval sweep), unless that would
//! eject more than `maxEjectionPercent` of the cluster. An ejected
//! endpoint gets no requests until its time passes; its return is noticed
//! by the next pick. Each ejection and return is logged.
//!
//! Lock-free: every field is an atomic, so reports and picks from many
//! requests never wait on each other. It must never eject for an answer
//! the client caused (a 4xx) or keep an endpoint out past its time.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::checked::destination_rule::Outlier;

/// Envoy's `max_ejection_time` default: no ejection lasts longer (unless
/// `baseEjectionTime` alone is longer).
const MAX_EJECTION: Duration = Duration::from_secs(300);
/// Envoy's `consecutive_5xx` default when `outlierDetection` is set
/// without `consecutive5xxErrors`.
const DEFAULT_5XX: u32 = 5;

/// Milliseconds since the process's first look at the clock (never 0, so
/// 0 can mean "not ejected").
pub(super) fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// What one attempt on an endpoint came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The backend answered with this status.
    Status(u16),
    /// No answer: the connection failed, was reset, or timed out (Envoy
    /// counts these as gateway errors unless local-origin errors are
    /// split, which gatehouse does not do).
    NoAnswer,
}

/// A passed-on connection's connect: a success resets the endpoint's
/// counts, a failure counts as a gateway error.
pub fn connect_outcome(ok: bool) -> Outcome {
    if ok {
        Outcome::Status(200)
    } else {
        Outcome::NoAnswer
    }
}

/// One endpoint's state, kept across recompiles (`registry`).
#[derive(Debug)]
pub struct EndpointState {
    /// The endpoint as logged: `ip:port` or `name:port`.
    pub name: String,
    /// Requests in flight to it (least request).
    pub active: AtomicU32,
    consecutive_5xx: AtomicU32,
    consecutive_gateway: AtomicU32,
    /// `now_ms` at which its ejection ends; 0 when it is not ejected.
    ejected_until: AtomicU64,
    /// How many times it was ejected (the ejection time's multiplier),
    /// less one for each ejection-time it then stayed healthy.
    ejections: AtomicU32,
    /// `now_ms` of its last return.
    returned_at: AtomicU64,
    /// `now_ms` when this gateway first saw it (slow start).
    pub added_ms: u64,
    /// A DNS endpoint's address as last resolved, so that an attempt on
    /// it finds its state by address.
    pub resolved: arc_swap::ArcSwapOption<std::net::SocketAddr>,
}

impl EndpointState {
    pub fn new(name: String) -> EndpointState {
        EndpointState {
            name,
            active: AtomicU32::new(0),
            consecutive_5xx: AtomicU32::new(0),
            consecutive_gateway: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            returned_at: AtomicU64::new(0),
            added_ms: now_ms(),
            resolved: arc_swap::ArcSwapOption::empty(),
        }
    }

    /// Whether it may get requests at `now`; an ejection whose time has
    /// passed ends here (once: the one who ends it logs it).
    pub fn available(&self, now: u64, cluster: &dyn std::fmt::Display) -> bool {
        let until = self.ejected_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        if now < until {
            return false;
        }
        if self
            .ejected_until
            .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.returned_at.store(now, Ordering::Relaxed);
            tracing::info!(
                upstream = %cluster,
                endpoint = %self.name,
                "outlier detection: endpoint returned to the load balancing pool"
            );
        }
        true
    }

    /// Whether it is ejected at `now` (without ending an ejection).
    pub fn ejected(&self, now: u64) -> bool {
        let until = self.ejected_until.load(Ordering::Acquire);
        until != 0 && now < until
    }

    /// Counts `outcome`; `true` when the endpoint reached a threshold of
    /// `policy` (its counters start again: the caller decides whether it
    /// may be ejected).
    pub fn count(&self, outcome: Outcome, policy: &Outlier) -> bool {
        let (is_5xx, is_gateway) = match outcome {
            Outcome::Status(s) => ((500..600).contains(&s), matches!(s, 502..=504)),
            Outcome::NoAnswer => (true, true),
        };
        if !is_5xx {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway.store(0, Ordering::Relaxed);
            return false;
        }
        let mut reached = false;
        let limit_5xx = policy.consecutive_5xx.unwrap_or(DEFAULT_5XX);
        if limit_5xx > 0 && self.consecutive_5xx.fetch_add(1, Ordering::Relaxed) + 1 >= limit_5xx {
            reached = true;
        }
        if is_gateway {
            let limit = policy.consecutive_gateway.unwrap_or(0);
            if limit > 0 && self.consecutive_gateway.fetch_add(1, Ordering::Relaxed) + 1 >= limit {
                reached = true;
            }
        } else {
            self.consecutive_gateway.store(0, Ordering::Relaxed);
        }
        if reached {
            self.consecutive_5xx.store(0, Ordering::Relaxed);
            self.consecutive_gateway.store(0, Ordering::Relaxed);
        }
        reached
    }

    /// Ejects it at `now` for `baseEjectionTime` times its ejection count
    /// (at most five minutes, or the base time if longer), rounded up to
    /// the next `interval`. `false` when it was ejected already.
    pub fn eject(&self, now: u64, policy: &Outlier, cluster: &dyn std::fmt::Display) -> bool {
        if self.ejected(now) {
            return false;
        }
        let base = ms(policy.base_ejection).max(1);
        // Healthy for a whole ejection time since its return: the
        // multiplier steps down, as Envoy's sweep does.
        let prev = self.ejections.load(Ordering::Relaxed);
        let returned = self.returned_at.load(Ordering::Relaxed);
        let healthy = now.saturating_sub(returned);
        let steps = healthy / base.saturating_mul(u64::from(prev.max(1)));
        let n = u32::try_from(u64::from(prev).saturating_sub(steps))
            .unwrap_or(0)
            .saturating_add(1);
        self.ejections.store(n, Ordering::Relaxed);
        let max = ms(MAX_EJECTION).max(base);
        let time = base.saturating_mul(u64::from(n)).min(max);
        let interval = ms(policy.interval).max(1);
        let time = time.div_ceil(interval).saturating_mul(interval);
        self.ejected_until
            .store(now.saturating_add(time).max(1), Ordering::Release);
        tracing::warn!(
            upstream = %cluster,
            endpoint = %self.name,
            ejections = n,
            ejection_ms = time,
            "outlier detection: endpoint ejected"
        );
        true
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether ejecting one more of `total` endpoints, with `ejected` out
/// already, stays within `maxEjectionPercent` (Envoy's rule: the share
/// after the ejection at most the percentage).
pub fn may_eject(ejected: usize, total: usize, policy: &Outlier) -> bool {
    total > 0 && (ejected + 1) * 100 <= policy.max_ejection_percent as usize * total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(n5xx: Option<u32>, gw: Option<u32>) -> Outlier {
        Outlier {
            consecutive_5xx: n5xx,
            consecutive_gateway: gw,
            consecutive_local_origin: None,
            split_local_origin: false,
            interval: Duration::from_secs(1),
            base_ejection: Duration::from_secs(30),
            max_ejection_percent: 100,
            min_health_percent: 0,
        }
    }

    #[test]
    fn consecutive_errors_reach_the_threshold_and_a_success_resets_them() {
        let e = EndpointState::new("a".into());
        let p = policy(Some(3), None);
        assert!(!e.count(Outcome::Status(500), &p));
        assert!(!e.count(Outcome::Status(503), &p));
        assert!(!e.count(Outcome::Status(200), &p));
        assert!(!e.count(Outcome::Status(500), &p));
        assert!(!e.count(Outcome::Status(404), &p));
        assert!(!e.count(Outcome::NoAnswer, &p));
        assert!(!e.count(Outcome::Status(502), &p));
        assert!(e.count(Outcome::Status(500), &p));
    }

    #[test]
    fn gateway_errors_count_alone_and_zero_turns_a_count_off() {
        let e = EndpointState::new("a".into());
        let p = policy(Some(0), Some(2));
        assert!(!e.count(Outcome::Status(500), &p));
        assert!(!e.count(Outcome::Status(502), &p));
        assert!(e.count(Outcome::NoAnswer, &p));
        let p = policy(None, None);
        assert!((0..4).all(|_| !e.count(Outcome::Status(500), &p)));
        assert!(e.count(Outcome::Status(500), &p), "Envoy's default of 5");
    }

    #[test]
    fn an_ejection_lasts_base_times_count_then_ends_once() {
        let e = EndpointState::new("a".into());
        let p = policy(Some(1), None);
        assert!(e.eject(1_000, &p, &"c"));
        assert!(!e.eject(1_001, &p, &"c"), "already ejected");
        assert!(!e.available(30_999, &"c"));
        assert!(e.available(31_000, &"c"));
        // Ejected again soon after: twice as long.
        assert!(e.eject(32_000, &p, &"c"));
        assert!(!e.available(91_999, &"c"));
        assert!(e.available(92_000, &"c"));
    }

    #[test]
    fn the_ejection_percentage_bounds_how_many_are_out() {
        let mut p = policy(Some(1), None);
        p.max_ejection_percent = 10;
        assert!(!may_eject(0, 2, &p), "one of two is 50%");
        assert!(may_eject(0, 10, &p));
        assert!(!may_eject(1, 10, &p));
        p.max_ejection_percent = 100;
        assert!(may_eject(1, 2, &p));
        assert!(!may_eject(2, 2, &p));
    }
}
