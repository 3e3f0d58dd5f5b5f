//! What a run measured: a per-task [`Recorder`] merged into one [`Report`],
//! printed as a table or as JSON.
//!
//! Latencies are kept exactly (microseconds, one entry per request) and
//! sorted once at the end; a ten-second run at 50,000 requests/s is 2 MB.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// Why one request or connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The TCP connect failed.
    Connect,
    /// The TLS handshake failed or the peer's certificate was refused.
    Tls,
    /// The server did not choose the protocol asked for (`--http2` and no
    /// `h2` in ALPN).
    Alpn,
    /// HTTP framing or the connection broke during a request.
    Http,
    /// The response status was not 2xx.
    Status(u16),
    /// Reading the response body failed.
    Body,
    /// A connect, handshake or request passed its deadline.
    Timeout,
}

impl ErrorKind {
    pub fn name(self) -> String {
        match self {
            ErrorKind::Connect => "connect".into(),
            ErrorKind::Tls => "tls".into(),
            ErrorKind::Alpn => "alpn".into(),
            ErrorKind::Http => "http".into(),
            ErrorKind::Status(code) => format!("status_{code}"),
            ErrorKind::Body => "body".into(),
            ErrorKind::Timeout => "timeout".into(),
        }
    }
}

/// One failure with its message (the first message of each kind is kept).
#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl std::fmt::Display) -> Failure {
        Failure {
            kind,
            message: message.to_string(),
        }
    }
}

/// What one task saw; merged at the end.
#[derive(Debug, Default)]
pub struct Recorder {
    pub latencies_us: Vec<u32>,
    pub errors: BTreeMap<ErrorKind, u64>,
    pub samples: BTreeMap<ErrorKind, String>,
    pub full_handshakes: u64,
    pub resumed_handshakes: u64,
}

impl Recorder {
    pub fn ok(&mut self, latency: Duration) {
        let us = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us.push(us);
    }

    pub fn fail(&mut self, failure: Failure) {
        *self.errors.entry(failure.kind).or_default() += 1;
        self.samples.entry(failure.kind).or_insert(failure.message);
    }

    pub fn handshake(&mut self, resumed: bool) {
        if resumed {
            self.resumed_handshakes += 1;
        } else {
            self.full_handshakes += 1;
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.latencies_us.extend(other.latencies_us);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
        for (k, m) in other.samples {
            self.samples.entry(k).or_insert(m);
        }
        self.full_handshakes += other.full_handshakes;
        self.resumed_handshakes += other.resumed_handshakes;
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

impl Latency {
    fn of(mut us: Vec<u32>) -> Latency {
        if us.is_empty() {
            return Latency::default();
        }
        us.sort_unstable();
        let sum: u64 = us.iter().map(|&v| u64::from(v)).sum();
        Latency {
            mean_ms: sum as f64 / us.len() as f64 / 1000.0,
            p50_ms: percentile(&us, 50.0),
            p90_ms: percentile(&us, 90.0),
            p99_ms: percentile(&us, 99.0),
            max_ms: percentile(&us, 100.0),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Handshakes {
    pub full: u64,
    pub resumed: u64,
}

/// The result of one run, as printed with `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub mode: &'static str,
    pub target: String,
    pub sni: String,
    pub protocol: &'static str,
    pub group: String,
    pub connections: usize,
    pub duration_s: f64,
    pub requests_ok: u64,
    pub errors_total: u64,
    pub errors: BTreeMap<String, u64>,
    pub error_samples: BTreeMap<String, String>,
    pub requests_per_s: f64,
    pub latency: Latency,
    pub handshakes: Handshakes,
    /// Mode-specific numbers (idle: connections open at the end, ...).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The fields of a [`Report`] that do not come from the recorder.
pub struct RunInfo {
    pub mode: &'static str,
    pub target: String,
    pub sni: String,
    pub http2: bool,
    pub group: String,
    pub connections: usize,
}

impl Report {
    pub fn new(info: RunInfo, elapsed: Duration, rec: Recorder) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let ok = rec.latencies_us.len() as u64;
        Report {
            mode: info.mode,
            target: info.target,
            sni: info.sni,
            protocol: if info.http2 { "h2" } else { "http/1.1" },
            group: info.group,
            connections: info.connections,
            duration_s: secs,
            requests_ok: ok,
            errors_total: rec.errors.values().sum(),
            errors: rec.errors.iter().map(|(k, n)| (k.name(), *n)).collect(),
            error_samples: rec
                .samples
                .iter()
                .map(|(k, m)| (k.name(), m.clone()))
                .collect(),
            requests_per_s: ok as f64 / secs,
            latency: Latency::of(rec.latencies_us),
            handshakes: Handshakes {
                full: rec.full_handshakes,
                resumed: rec.resumed_handshakes,
            },
            extra: BTreeMap::new(),
        }
    }

    /// A human-readable table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let l = &self.latency;
        let _ = writeln!(
            s,
            "{} {} sni={} {} group={} connections={}",
            self.mode, self.target, self.sni, self.protocol, self.group, self.connections
        );
        let _ = writeln!(
            s,
            "  {:<12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "requests/s", "ok", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
        );
        let _ = writeln!(
            s,
            "  {:<12.1} {:>12} {:>10.3} {:>10.3} {:>10.3} {:>10.3} {:>10}",
            self.requests_per_s,
            self.requests_ok,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.max_ms,
            self.errors_total
        );
        let _ = writeln!(
            s,
            "  handshakes: {} full, {} resumed; {:.2} s",
            self.handshakes.full, self.handshakes.resumed, self.duration_s
        );
        for (kind, n) in &self.errors {
            let sample = self.error_samples.get(kind).map_or("", String::as_str);
            let _ = writeln!(s, "  error {kind}: {n} (e.g. {sample})");
        }
        for (k, v) in &self.extra {
            let _ = writeln!(s, "  {k}: {v}");
        }
        s
    }

    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string_pretty(self)?);
        } else {
            print!("{}", self.table());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7000], 99.0), 7.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn merge_adds_errors_and_keeps_the_first_sample() {
        let mut a = Recorder::default();
        a.fail(Failure::new(ErrorKind::Tls, "first"));
        let mut b = Recorder::default();
        b.fail(Failure::new(ErrorKind::Tls, "second"));
        b.fail(Failure::new(ErrorKind::Status(502), "bad gateway"));
        b.ok(Duration::from_micros(1500));
        a.merge(b);
        assert_eq!(a.errors[&ErrorKind::Tls], 2);
        assert_eq!(a.samples[&ErrorKind::Tls], "first");
        assert_eq!(ErrorKind::Status(502).name(), "status_502");
        assert_eq!(a.latencies_us, vec![1500]);
    }
}
