//! Load runs for the SDS and etcd tests, over the harness's one mTLS
//! client ([`super::client`], whose names are re-exported here).
//!
//! [`Load::start`] runs a mix of keep-alive connections (several requests
//! each) and fresh connections (one request each) on its own thread until
//! stopped or until its time bound, counts successes and failures by kind,
//! and records every new handshake with its time, kind and the serial of
//! the certificate the server presented.
//!
//! It names the rest of the harness as `crate::support`, so a test file may
//! also include it on its own with `#[path = "support/load.rs"] mod load;`
//! next to `mod support;`.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::client::{connect, request};
use crate::support::poll_every;

// The client's names, where the tests have always found them.
#[allow(unused_imports)]
pub use crate::support::client::{
    Answer, Client, Conn, Failure, Kind, Probe, Target, get, probe, probe_until, serial_of_pem,
};

/// Failure messages kept for the report (the counts keep counting).
const MAX_SAMPLES: usize = 20;

/// Which load worker made a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Worker {
    KeepAlive,
    Fresh,
    FreshResuming,
}

/// One completed client handshake.
#[derive(Debug, Clone)]
pub struct Handshake {
    pub start: Instant,
    pub end: Instant,
    pub kind: Kind,
    /// Serial of the server's leaf (for a resumed session: the one the
    /// session was made with).
    pub serial: String,
    pub worker: Worker,
}

/// What a load run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub ok: u64,
    pub failures: BTreeMap<Failure, u64>,
    /// The first failure messages, with the time they happened.
    pub samples: Vec<(Instant, String)>,
    pub handshakes: Vec<Handshake>,
}

impl Report {
    /// The serials served by full (not resumed) handshakes.
    pub fn full_serials(&self) -> std::collections::BTreeSet<&str> {
        self.handshakes
            .iter()
            .filter(|h| h.kind == Kind::Full)
            .map(|h| h.serial.as_str())
            .collect()
    }

    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    pub fn summary(&self) -> String {
        format!(
            "{} ok, {} failed {:?}, {} handshakes; first failures: {:#?}",
            self.ok,
            self.failed(),
            self.failures,
            self.handshakes.len(),
            self.samples
        )
    }

    fn fail(&mut self, f: Failure, msg: String) {
        *self.failures.entry(f).or_default() += 1;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push((Instant::now(), msg));
        }
    }
}

/// The mix a load run keeps going.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Workers that send `requests_per_conn` requests per connection.
    pub keepalive: usize,
    /// Workers that open a new connection per request, never resuming.
    pub fresh: usize,
    /// Workers that open a new connection per request, resuming when they can.
    pub fresh_resuming: usize,
    pub requests_per_conn: usize,
    /// Pause between two requests of one worker.
    pub pause: Duration,
    /// The run stops by itself after this long.
    pub max_duration: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            keepalive: 2,
            fresh: 2,
            fresh_resuming: 1,
            requests_per_conn: 10,
            pause: Duration::from_millis(2),
            max_duration: Duration::from_secs(60),
        }
    }
}

/// A load run in the background.
pub struct Load {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    pub fn start(target: &Target, opts: LoadOptions) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(Report::default()));
        let (s, r, t) = (stop.clone(), report.clone(), target.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(run(t, opts, s, r));
        });
        Load {
            stop,
            report,
            thread: Some(thread),
        }
    }

    /// What the run has seen so far.
    pub fn report(&self) -> Report {
        self.report.lock().unwrap().clone()
    }

    /// Waits until a full handshake shows `serial`; returns when the first
    /// such handshake completed, or `None` after `within`.
    pub fn wait_full_handshake(&self, serial: &str, within: Duration) -> Option<Instant> {
        // The answer is the handshake's own end time, so a fine step only
        // makes the caller's next step start sooner.
        poll_every(Duration::from_millis(1), within, || {
            self.report
                .lock()
                .unwrap()
                .handshakes
                .iter()
                .filter(|h| h.kind == Kind::Full && h.serial == serial)
                .map(|h| h.end)
                .min()
        })
    }

    /// Waits until at least `n` more requests succeeded, for up to `within`.
    pub fn wait_ok(&self, n: u64, within: Duration) -> bool {
        let ok = || self.report.lock().unwrap().ok;
        let want = ok() + n;
        poll_every(Duration::from_millis(2), within, || {
            (ok() >= want).then_some(())
        })
        .is_some()
    }

    /// Stops every worker (each finishes its request in flight) and returns
    /// the final report.
    pub fn stop(mut self) -> Report {
        self.halt();
        self.report()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
            && !std::thread::panicking()
        {
            panic!("the load thread panicked");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.halt();
    }
}

/// What the workers of one run share.
struct Run {
    opts: LoadOptions,
    deadline: Instant,
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
}

impl Run {
    fn running(&self) -> bool {
        !self.stop.load(Ordering::SeqCst) && Instant::now() < self.deadline
    }

    fn fail(&self, f: Failure, worker: Worker, msg: &str) {
        self.report
            .lock()
            .unwrap()
            .fail(f, format!("{worker:?}: {msg}"));
    }
}

async fn run(target: Target, opts: LoadOptions, stop: Arc<AtomicBool>, report: Arc<Mutex<Report>>) {
    let plain = target.without_resumption();
    let workers: Vec<(Worker, Target)> = std::iter::repeat_n(Worker::KeepAlive, opts.keepalive)
        .chain(std::iter::repeat_n(Worker::Fresh, opts.fresh))
        .chain(std::iter::repeat_n(
            Worker::FreshResuming,
            opts.fresh_resuming,
        ))
        .map(|w| (w, if w == Worker::Fresh { &plain } else { &target }.clone()))
        .collect();
    let deadline = Instant::now() + opts.max_duration;
    let run = Arc::new(Run {
        opts,
        deadline,
        stop,
        report,
    });
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|(w, t)| tokio::spawn(worker_loop(t, w, run.clone())))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn worker_loop(target: Target, worker: Worker, run: Arc<Run>) {
    let per_conn = match worker {
        Worker::KeepAlive => run.opts.requests_per_conn.max(1),
        _ => 1,
    };
    let pause = run.opts.pause;
    while run.running() {
        let start = Instant::now();
        let mut sender = match connect(&target).await {
            Ok(c) => {
                run.report.lock().unwrap().handshakes.push(Handshake {
                    start,
                    end: c.end,
                    kind: c.kind,
                    serial: c.serial,
                    worker,
                });
                c.sender
            }
            Err((f, msg)) => {
                run.fail(f, worker, &msg);
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        for i in 0..per_conn {
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            match request(&mut sender, &target).await {
                Ok(200) => run.report.lock().unwrap().ok += 1,
                Ok(status) => {
                    run.fail(Failure::Status(status), worker, &format!("status {status}"))
                }
                Err((f, msg)) => {
                    run.fail(f, worker, &msg);
                    break;
                }
            }
            // Stopping mid-connection is fine: the connection is just closed.
            if !run.running() {
                break;
            }
        }
        if worker != Worker::KeepAlive {
            tokio::time::sleep(pause).await;
        }
    }
}

/// The median and the worst of some latencies.
pub fn median_worst(latencies: &[Duration]) -> (Duration, Duration) {
    let mut v = latencies.to_vec();
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

/// For certificates served one after another (`serials[0]` first) where
/// rotation `i` to `serials[i + 1]` was first seen at `seen[i]`: the first
/// full handshake that began after a rotation was seen yet showed an older
/// certificate, if any (a stale snapshot).
pub fn stale_handshake<'a>(
    report: &'a Report,
    serials: &[String],
    seen: &[Instant],
) -> Option<&'a Handshake> {
    report
        .handshakes
        .iter()
        .filter(|h| h.kind == Kind::Full)
        .find(|h| {
            let idx = serials.iter().position(|s| *s == h.serial);
            seen.iter()
                .enumerate()
                .any(|(i, t)| h.start > *t && idx.is_none_or(|idx| idx <= i))
        })
}

/// `rotations` certificate rotations under mTLS load (keep-alive, fresh
/// and resuming connections) through each replica to its `Target`:
/// `rotate(i)` makes rotation `i` and returns its serial and the instant
/// timing starts from. Each replica must serve the serial within `within`,
/// the load must keep going, and no request may fail. Returns when each
/// replica first served each serial after that instant, and the reports.
pub fn rotate_under_load(
    replicas: &[(&crate::support::etcd::Replica, Target)],
    rotations: usize,
    within: Duration,
    mut rotate: impl FnMut(usize) -> (String, Instant),
) -> (Vec<Duration>, Vec<Report>) {
    let opts = LoadOptions {
        keepalive: 1,
        fresh: 1,
        fresh_resuming: 1,
        requests_per_conn: 20,
        pause: Duration::from_millis(3),
        max_duration: Duration::from_secs(60),
    };
    let loads: Vec<Load> = replicas
        .iter()
        .map(|(_, t)| Load::start(t, opts.clone()))
        .collect();
    let going = |wanted, what: &str| {
        for ((r, _), l) in replicas.iter().zip(&loads) {
            assert!(
                l.wait_ok(wanted, Duration::from_secs(10)),
                "load through replica {} {what}: {}",
                r.name,
                l.report().summary()
            );
        }
    };
    going(30, "never got going");
    let mut seen = Vec::new();
    for i in 0..rotations {
        let (serial, from) = rotate(i);
        for ((r, _), l) in replicas.iter().zip(&loads) {
            let Some(first) = l.wait_full_handshake(&serial, within) else {
                panic!(
                    "replica {} did not present serial {serial} within {within:?}: {}\nlog:\n{}",
                    r.name,
                    l.report().summary(),
                    r.log()
                );
            };
            seen.push(first.saturating_duration_since(from));
        }
        // Keep the load going on the new certificate before the next one.
        going(20, "stalled");
    }
    let reports: Vec<Report> = loads.into_iter().map(Load::stop).collect();
    for ((r, _), report) in replicas.iter().zip(&reports) {
        assert_eq!(
            report.failed(),
            0,
            "requests failed through replica {} during the rotations: {}",
            r.name,
            report.summary()
        );
    }
    (seen, reports)
}
