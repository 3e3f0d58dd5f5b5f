//! A latency histogram that a request records into without a lock: one
//! atomic add per bucket hit and one for the sum. prometheus-client's own
//! `Histogram` takes a mutex on every `observe`, which would be the one
//! lock on the request path; this type encodes through the same
//! `EncodeMetric` so the exposition is prometheus-client's.
//!
//! It must never report a `_count` that differs from its `+Inf` bucket (a
//! strict OpenMetrics parser refuses that): the count is the sum of the
//! buckets read at scrape time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

/// Upper bounds in seconds, from 0.5 ms to a minute: a proxy's answers
/// (local ones in microseconds) up to the longest route timeouts.
pub const LATENCY_BOUNDS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The same bounds in nanoseconds, for the comparison on the request path.
const BOUNDS_NS: [u64; 16] = {
    let mut out = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = (LATENCY_BOUNDS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

#[derive(Debug, Default)]
struct Inner {
    /// One count per bound, then the `+Inf` bucket (not cumulative).
    buckets: [AtomicU64; 17],
    sum_ns: AtomicU64,
}

/// A histogram of durations over [`LATENCY_BOUNDS`]; clones share counts.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    inner: Arc<Inner>,
}

impl Latency {
    /// Records one duration: two relaxed atomic adds, no lock.
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.partition_point(|b| *b < ns);
        self.inner.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.inner.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

impl TypedMetric for Latency {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0u64); 17];
        let mut count = 0u64;
        for (i, slot) in buckets.iter_mut().enumerate() {
            let n = self.inner.buckets[i].load(Ordering::Relaxed);
            count += n;
            *slot = (LATENCY_BOUNDS.get(i).copied().unwrap_or(f64::INFINITY), n);
        }
        let sum = self.inner.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_lands_in_the_first_bucket_that_holds_it() {
        let h = Latency::default();
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(3600));
        let counts: Vec<u64> = h
            .inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        assert_eq!(counts[0], 2, "<= 0.5 ms: {counts:?}");
        assert_eq!(counts[3], 1, "<= 5 ms: {counts:?}");
        assert_eq!(counts[16], 1, "+Inf: {counts:?}");
        assert_eq!(counts.iter().sum::<u64>(), 4);
    }
}
