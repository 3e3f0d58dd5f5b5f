//! Connections under pressure: with the connection limit taken up by idle
//! keep-alive mTLS connections, a new client still connects and is served
//! (an idle connection is closed to make room, and the log says how many
//! were), and the admin endpoint answers quickly; with nothing idle to
//! close, a new connection is refused, not queued for ever.
//!
//! The figure is 10,000 idle connections, and that is the default
//! here (about 20 s in a debug build on two cores);
//! `EDGE_OVERLOAD_CONNECTIONS=N` changes it. Each process needs an
//! open-files limit a little above N: the test raises its own soft limit to
//! the hard one, and skips with a printed reason if the hard one is too low.

use std::time::{Duration, Instant};

use crate::support::client::{self, Target};
use crate::support::{Backend, FRONTEND, FRONTEND_BODY, Walkthrough, http_get, poll, try_poll};

const DEFAULT_CONNECTIONS: usize = 10_000;
/// Connections opened at once while filling the limit.
const OPENING_AT_ONCE: usize = 32;

fn connections_wanted() -> usize {
    std::env::var("EDGE_OVERLOAD_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CONNECTIONS)
}

/// Raises this process's soft open-files limit to the hard one; whether it
/// is now at least `need`.
fn enough_files(need: u64) -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let now = getrlimit(Resource::Nofile);
    let hard = now.maximum.unwrap_or(u64::MAX);
    if now.current.unwrap_or(u64::MAX) < hard {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: now.maximum,
                maximum: now.maximum,
            },
        )
        .map_err(|e| format!("cannot raise the open-files limit: {e}"))?;
    }
    if hard < need {
        return Err(format!(
            "the open-files hard limit is {hard}, {need} needed"
        ));
    }
    Ok(())
}

fn frontend_target(w: &Walkthrough, port: u16) -> Target {
    w.site
        .client(FRONTEND)
        .target(([127, 0, 0, 1], port).into())
}

/// Opens `n` connections to `target`, each served one request (200), and
/// keeps them open: the senders, with the runtime that drives them.
fn open_idle(
    rt: &tokio::runtime::Runtime,
    target: &Target,
    n: usize,
) -> Vec<hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>> {
    rt.block_on(async {
        let mut kept = Vec::with_capacity(n);
        let mut started = 0;
        let mut set = tokio::task::JoinSet::new();
        while kept.len() < n {
            while started < n && set.len() < OPENING_AT_ONCE {
                let t = target.clone();
                set.spawn(async move {
                    let mut opened = client::connect(&t).await?;
                    let status = client::request(&mut opened.sender, &t).await?;
                    Ok::<_, client::Fail>((status, opened.sender))
                });
                started += 1;
            }
            let Some(done) = set.join_next().await else {
                break;
            };
            let (status, sender) = done
                .unwrap()
                .unwrap_or_else(|(f, m)| panic!("connection {} of {n}: {f:?} {m}", kept.len() + 1));
            assert_eq!(status, 200);
            kept.push(sender);
        }
        kept
    })
}

#[test]
fn with_the_limit_full_of_idle_connections_a_new_client_is_served() {
    fill_then_serve_a_new_client(connections_wanted());
}

/// A sparse room: its few idle connections sit in few of the 64 shards.
#[test]
fn with_a_small_limit_full_of_idle_connections_a_new_client_is_served() {
    fill_then_serve_a_new_client(3);
}

/// Fills a listener's limit of `n` with idle connections, then asserts a
/// new client is served, `/ready` answers within 100 ms, and one
/// connection was shed.
fn fill_then_serve_a_new_client(n: usize) {
    // Each process (this one, the gateway) holds one socket per connection.
    let need = n as u64 + 512;
    if let Err(why) = enough_files(need) {
        println!("skipped: {why}");
        return;
    }
    let w = Walkthrough::new();
    let limit = n.to_string();
    let gw = w.site.start_gateway_with(
        &[443],
        &[
            "--max-connections",
            &limit,
            "--max-connections-total",
            &limit,
            // hyper's HTTP/1 header deadline also runs while a keep-alive
            // connection waits for its next request: keep the first ones
            // open while the last are made.
            "--request-headers-timeout",
            "300s",
        ],
    );
    let target = frontend_target(&w, gw.port(443));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    let kept = open_idle(&rt, &target, n);
    let filled = start.elapsed();
    assert_eq!(w.frontend.hits(), n);
    // The limit is full of idle connections: a new client is served.
    let start = Instant::now();
    let answer = client::get(&target, "/").unwrap();
    let new_client = start.elapsed();
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (200, format!("{FRONTEND_BODY}\n").as_str())
    );
    // The admin endpoint answers at once, with all of them open.
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        let start = Instant::now();
        let (status, _) = http_get(gw.admin(), "/ready").unwrap();
        worst = worst.max(start.elapsed());
        assert_eq!(status, 200);
    }
    println!(
        "{n} idle connections opened in {filled:?}; the new client was served in \
         {new_client:?}; /ready answered within {worst:?}"
    );
    assert!(worst < Duration::from_millis(100), "/ready took {worst:?}");
    // One idle connection made room, and the log counts it.
    let line = try_poll(Duration::from_secs(5), || {
        gw.log()
            .lines()
            .find(|l| l.contains("idle connection closed to make room"))
            .map(str::to_owned)
    });
    let line = line.unwrap_or_else(|| {
        let log = gw.log();
        let notable: Vec<&str> = log.lines().filter(|l| !l.contains("INFO access")).collect();
        panic!(
            "no shed log line; the gateway logged:\n{}",
            notable.join("\n")
        )
    });
    assert!(line.contains("shed=1"), "{line}");
    drop(kept);
}

#[test]
fn with_nothing_idle_to_close_a_new_connection_is_refused() {
    let w = Walkthrough::new();
    let slow = Backend::slow(FRONTEND_BODY, Duration::from_secs(4));
    w.site
        .apply_service_entries(slow.port(), w.inventory.port());
    let gw = w
        .site
        .start_gateway_with(&[443], &["--max-connections", "2"]);
    let target = frontend_target(&w, gw.port(443));
    // Two connections, each with a request in flight for 4 s.
    let busy: Vec<_> = (0..2)
        .map(|_| {
            let t = target.clone();
            std::thread::spawn(move || client::get(&t, "/"))
        })
        .collect();
    poll("two requests in flight", Duration::from_secs(10), || {
        (slow.hits() == 2).then_some(())
    });
    let start = Instant::now();
    let refused = client::get(&target, "/");
    let waited = start.elapsed();
    assert!(refused.is_err(), "{refused:?}");
    assert!(waited < Duration::from_secs(3), "refused after {waited:?}");
    assert_eq!(slow.hits(), 2, "the refused client reached the backend");
    for b in busy {
        assert_eq!(b.join().unwrap().unwrap().status, 200);
    }
    assert!(
        gw.log()
            .contains("no idle connection to close; connection refused"),
        "{}",
        gw.log()
    );
}

#[test]
fn the_default_total_limit_comes_from_the_open_files_limit() {
    let w = Walkthrough::new();
    let gw = w.start();
    // The gateway raises its soft limit to the hard one it inherited.
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(1 << 20);
    let total = (hard.saturating_sub(256) / 2).clamp(1, 50_000);
    let line = poll("the open-files log line", Duration::from_secs(5), || {
        gw.log()
            .lines()
            .find(|l| l.contains("open-files limit raised"))
            .map(str::to_owned)
    });
    assert!(
        line.contains(&format!("soft={hard} hard={hard}"))
            && line.contains(&format!("max_connections_total={total} "))
            && line.contains("max_connections_per_listener=10000"),
        "{line}"
    );
    // An explicit flag wins.
    let gw = w
        .site
        .start_gateway_with(&[443], &["--max-connections-total", "77"]);
    let log = gw.log();
    assert!(log.contains("max_connections_total=77 "), "{log}");
}

#[test]
fn connection_and_frame_budget_flags_out_of_range_are_usage_errors() {
    let w = Walkthrough::new();
    for (flag, value) in [
        ("--max-connections-total", "0"),
        ("--max-connections-total", "10000001"),
        ("--max-connections-total", "lots"),
        ("--h2-max-control-frames", "9"),
        ("--h2-max-control-frames", "1000001"),
    ] {
        w.site.assert_run_refuses(flag, value);
    }
}
