//! The three load modes: keep-alive, a handshake per request, and idle
//! connections held open.
//!
//! Each run ends by itself: loops stop at their deadline and every network
//! step has its own timeout, so a run lasts at most its duration plus one
//! timeout.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::cli::{HandshakesArgs, IdleArgs, KeepaliveArgs, Target};
use crate::conn::{Client, Conn, Stream};
use crate::report::{ErrorKind, Recorder, Report, RunInfo};

fn seconds(name: &str, v: f64, max: f64) -> anyhow::Result<Duration> {
    if v.is_finite() && v >= 0.0 && v <= max {
        Ok(Duration::from_secs_f64(v))
    } else {
        anyhow::bail!("{name} must be between 0 and {max} seconds, not {v}")
    }
}

fn info(mode: &'static str, target: &Target, connections: usize) -> RunInfo {
    RunInfo {
        mode,
        target: target.connect.to_string(),
        sni: target.sni.clone(),
        http2: target.http2,
        group: format!("{:?}", target.group).to_lowercase(),
        connections,
    }
}

/// Pause after a failed connect so a refusing server is not hammered.
const BACKOFF: Duration = Duration::from_millis(10);

/// The combinations of `keepalive`'s options that it does not run.
fn check_keepalive(args: &KeepaliveArgs) -> anyhow::Result<()> {
    if args.connections == 0 || args.connections > 100_000 {
        anyhow::bail!("--connections must be between 1 and 100000");
    }
    if args.streams == 0 || args.streams > 1000 {
        anyhow::bail!("--streams must be between 1 and 1000");
    }
    if args.streams > 1 && (!args.target.http2 || args.rate.is_some()) {
        anyhow::bail!("--streams above 1 needs --http2, and no --rate");
    }
    if args.new_connection_every > 0 && args.target.http2 {
        anyhow::bail!("--new-connection-every is for HTTP/1.1 (no --http2)");
    }
    Ok(())
}

/// N connections, each with one request in flight (or `--streams` HTTP/2
/// streams), for a fixed time; with `--rate`, each connection sends on a
/// fixed schedule and latency is counted from the scheduled time, so a
/// stall is not hidden by waiting.
pub async fn keepalive(args: KeepaliveArgs) -> anyhow::Result<Report> {
    let duration = seconds("--duration", args.duration, 3600.0)?;
    let warmup = seconds("--warmup", args.warmup, 600.0)?;
    check_keepalive(&args)?;
    let interval = match args.rate {
        None => None,
        Some(r) if r.is_finite() && r > 0.0 => {
            Some(Duration::from_secs_f64(args.connections as f64 / r))
        }
        Some(r) => anyhow::bail!("--rate must be a positive number, not {r}"),
    };
    let client = Arc::new(Client::new(&args.target, false)?);
    let start = Instant::now();
    let counted_from = start + warmup;
    let end = counted_from + duration;
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        let client = client.clone();
        // Spread the connections' schedules over one interval.
        let phase = interval.map(|iv| iv.mul_f64(i as f64 / args.connections as f64));
        let window = Window {
            start,
            counted_from,
            end,
        };
        if args.streams > 1 {
            tasks.push(tokio::spawn(keepalive_h2_conn(
                client,
                window,
                args.streams,
            )));
        } else {
            let schedule = Schedule {
                phase,
                interval,
                new_connection_every: args.new_connection_every,
            };
            tasks.push(tokio::spawn(keepalive_conn(client, window, schedule)));
        }
    }
    let rec = join(tasks).await;
    let elapsed = Instant::now().saturating_duration_since(counted_from);
    let mut report = Report::new(
        info("keepalive", &args.target, args.connections),
        elapsed,
        rec,
    );
    if let Some(rate) = args.rate {
        report.extra.insert("target_rate".into(), rate.into());
    }
    if args.streams > 1 {
        report.extra.insert("streams".into(), args.streams.into());
    }
    if args.new_connection_every > 0 {
        report.extra.insert(
            "new_connection_every".into(),
            args.new_connection_every.into(),
        );
    }
    Ok(report)
}

/// When a run starts, when its counting starts (after the warm-up) and when
/// it ends.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    counted_from: Instant,
    end: Instant,
}

/// When one connection of [`keepalive`] sends, and when it starts anew.
#[derive(Clone, Copy)]
struct Schedule {
    phase: Option<Duration>,
    interval: Option<Duration>,
    /// Every Nth request closes the connection (0: never).
    new_connection_every: u64,
}

/// One keep-alive connection of [`keepalive`]: reconnects after a transport
/// error (or every Nth request, for the mixed load), sends on its schedule
/// when there is one.
async fn keepalive_conn(client: Arc<Client>, window: Window, schedule: Schedule) -> Recorder {
    let Window {
        start,
        counted_from,
        end,
    } = window;
    let Schedule {
        phase,
        interval,
        new_connection_every: every,
    } = schedule;
    let mut rec = Recorder::default();
    let mut conn: Option<Conn> = None;
    let mut next = phase.map(|p| start + p);
    let mut on_conn: u64 = 0;
    while Instant::now() < end {
        // In the mixed load the handshake counts in the request's latency.
        let began = Instant::now();
        if conn.is_none() {
            match client.connect().await {
                Ok(c) => {
                    rec.handshake(c.resumed);
                    conn = Some(c);
                    on_conn = 0;
                }
                Err(f) => {
                    if Instant::now() >= counted_from {
                        rec.fail(f);
                    }
                    tokio::time::sleep(BACKOFF).await;
                    continue;
                }
            }
        }
        let Some(c) = conn.as_mut() else { continue };
        let sent = match (next, interval) {
            (Some(at), Some(iv)) => {
                if at >= end {
                    break;
                }
                tokio::time::sleep_until(at).await;
                next = Some(at + iv);
                at
            }
            _ if every > 0 => began,
            _ => Instant::now(),
        };
        on_conn += 1;
        let close = every > 0 && on_conn >= every;
        let result = client.get(c, close).await;
        // A status error leaves the connection usable; anything else
        // means a new one.
        if close || matches!(&result, Err(f) if !matches!(f.kind, ErrorKind::Status(_))) {
            conn = None;
        }
        if sent < counted_from {
            continue;
        }
        match result {
            Ok(()) => rec.ok(sent.elapsed()),
            Err(f) => rec.fail(f),
        }
    }
    rec
}

/// One HTTP/2 connection of [`keepalive`] with `streams` requests in
/// flight: one task per stream; a transport error on any of them ends them
/// all and the connection is made anew.
async fn keepalive_h2_conn(client: Arc<Client>, window: Window, streams: usize) -> Recorder {
    let mut rec = Recorder::default();
    while Instant::now() < window.end {
        let conn = match client.connect().await {
            Ok(c) => c,
            Err(f) => {
                if Instant::now() >= window.counted_from {
                    rec.fail(f);
                }
                tokio::time::sleep(BACKOFF).await;
                continue;
            }
        };
        rec.handshake(conn.resumed);
        let broken = Arc::new(AtomicBool::new(false));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..streams {
            let Some(stream) = conn.stream() else { break };
            set.spawn(h2_stream(client.clone(), stream, window, broken.clone()));
        }
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                rec.merge(r);
            }
        }
    }
    rec
}

/// One stream's requests, one after another, until the end or until the
/// connection breaks.
async fn h2_stream(
    client: Arc<Client>,
    mut stream: Stream,
    window: Window,
    broken: Arc<AtomicBool>,
) -> Recorder {
    let mut rec = Recorder::default();
    while Instant::now() < window.end && !broken.load(Ordering::Relaxed) {
        let sent = Instant::now();
        let result = client.get_stream(&mut stream).await;
        if matches!(&result, Err(f) if !matches!(f.kind, ErrorKind::Status(_))) {
            broken.store(true, Ordering::Relaxed);
        }
        if sent < window.counted_from {
            continue;
        }
        match result {
            Ok(()) => rec.ok(sent.elapsed()),
            Err(f) => rec.fail(f),
        }
    }
    rec
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Recorder>>) -> Recorder {
    let mut all = Recorder::default();
    for t in tasks {
        if let Ok(r) = t.await {
            all.merge(r);
        }
    }
    all
}

/// A new connection for every request: connect, handshake, one GET with
/// `Connection: close`, drop. Latency covers all of it.
pub async fn handshakes(args: HandshakesArgs) -> anyhow::Result<Report> {
    let duration = seconds("--duration", args.duration, 3600.0)?;
    if args.concurrency == 0 || args.concurrency > 10_000 {
        anyhow::bail!("--concurrency must be between 1 and 10000");
    }
    let client = Arc::new(Client::new(&args.target, args.resume)?);
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            while Instant::now() < end {
                let t0 = Instant::now();
                let mut conn = match client.connect().await {
                    Ok(c) => c,
                    Err(f) => {
                        rec.fail(f);
                        tokio::time::sleep(BACKOFF).await;
                        continue;
                    }
                };
                rec.handshake(conn.resumed);
                match client.get(&mut conn, true).await {
                    Ok(()) => rec.ok(t0.elapsed()),
                    Err(f) => rec.fail(f),
                }
            }
            rec
        }));
    }
    let rec = join(tasks).await;
    let mut report = Report::new(
        info("handshakes", &args.target, args.concurrency),
        start.elapsed(),
        rec,
    );
    report.extra.insert("resume".into(), args.resume.into());
    Ok(report)
}

fn write_ready(path: &Path, open: usize) -> anyhow::Result<()> {
    // Write then rename, so a reader never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{open}\n"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Opens N connections (a handshake and one GET each), holds them, and
/// counts how many are still open at the end.
pub async fn idle(args: IdleArgs) -> anyhow::Result<Report> {
    let hold = seconds("--hold", args.hold, 3600.0)?;
    let open_timeout = seconds("--open-timeout", args.open_timeout, 3600.0)?;
    if args.connections > 100_000 || args.concurrency == 0 {
        anyhow::bail!("--connections must be at most 100000 and --concurrency at least 1");
    }
    let client = Arc::new(Client::new(&args.target, false)?);
    let start = Instant::now();
    let open_by = start + open_timeout;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.min(args.connections.max(1)) {
        let client = client.clone();
        let next = next.clone();
        let n = args.connections;
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            let mut held = Vec::new();
            while Instant::now() < open_by && next.fetch_add(1, Ordering::Relaxed) < n {
                let t0 = Instant::now();
                let mut conn = match client.connect().await {
                    Ok(c) => c,
                    Err(f) => {
                        rec.fail(f);
                        continue;
                    }
                };
                rec.handshake(conn.resumed);
                match client.get(&mut conn, false).await {
                    Ok(()) => {
                        rec.ok(t0.elapsed());
                        held.push(conn);
                    }
                    Err(f) => rec.fail(f),
                }
            }
            (rec, held)
        }));
    }
    let mut rec = Recorder::default();
    let mut held: Vec<Conn> = Vec::new();
    for t in tasks {
        if let Ok((r, h)) = t.await {
            rec.merge(r);
            held.extend(h);
        }
    }
    let opening = start.elapsed();
    let opened = held.len();
    if let Some(path) = &args.ready_file {
        write_ready(path, opened)?;
    }
    tokio::time::sleep(hold).await;
    let open_at_end = held.iter().filter(|c| c.is_open()).count();
    let mut report = Report::new(info("idle", &args.target, args.connections), opening, rec);
    report.extra.insert("opened".into(), opened.into());
    report
        .extra
        .insert("open_at_end".into(), open_at_end.into());
    report
        .extra
        .insert("open_seconds".into(), opening.as_secs_f64().into());
    report.extra.insert("hold_seconds".into(), args.hold.into());
    Ok(report)
}
