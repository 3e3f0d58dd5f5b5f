//! HTTP/2 floods, driven by `h2/flood.py` (Python's `h2` framing libraries
//! over TLS with the walkthrough's client certificate): rapid reset,
//! CONTINUATION, SETTINGS, PING, PRIORITY and empty-DATA floods each end in
//! GOAWAY ENHANCE_YOUR_CALM and a closed connection, with the backend
//! reached by a bounded number of requests (or none); the 101st concurrent
//! stream is refused; and other clients are served throughout.

use std::time::{Duration, Instant};

use crate::support::{
    Backend, COMMAND_TIMEOUT, FRONTEND, FRONTEND_BODY, Gateway, Walkthrough, command, run_bounded,
};

const ENHANCE_YOUR_CALM: u64 = 0xb;
const REFUSED_STREAM: u64 = 0x7;
/// SETTINGS_MAX_CONCURRENT_STREAMS.
const MAX_CONCURRENT_STREAMS: &str = "3";

/// A Python 3 that has the `h2` package (Debian's `python3-h2` lives
/// under /usr/bin, whatever `python3` is first on PATH).
fn python() -> &'static str {
    static FOUND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        for p in ["/usr/bin/python3", "python3"] {
            let ok = command(p)
                .args(["-c", "import h2, hpack, hyperframe"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return p;
            }
        }
        panic!("no python3 with the h2 package: apt-get install python3-h2");
    })
}

/// What `flood.py` printed.
fn flood(w: &Walkthrough, port: u16, mode: &str, count: usize) -> serde_json::Value {
    let pki = w.site.pki(FRONTEND);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/edge/h2/flood.py");
    let mut c = w.site.program(python());
    c.arg(script)
        .args(["--port", &port.to_string(), "--host", FRONTEND])
        .arg("--ca")
        .arg(&pki.ca_chain)
        .arg("--cert")
        .arg(&pki.client_cert)
        .arg("--key")
        .arg(&pki.client_key)
        .args(["--mode", mode, "--count", &count.to_string()])
        .args(["--deadline", "10"]);
    let out = run_bounded(c, COMMAND_TIMEOUT);
    assert_eq!(out.code, Some(0), "flood.py {mode}: {out:?}");
    let line = out.stdout.lines().last().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("flood.py {mode} printed no JSON ({e}): {out:?}"));
    assert_eq!(report["alpn"], "h2", "{mode}: {report}");
    report
}

/// The flood ended in GOAWAY ENHANCE_YOUR_CALM and the server closed.
#[track_caller]
fn assert_calmed(mode: &str, report: &serde_json::Value, gw: &Gateway) {
    assert_eq!(
        report["goaway"]["error_code"].as_u64(),
        Some(ENHANCE_YOUR_CALM),
        "{mode}: no GOAWAY ENHANCE_YOUR_CALM: {report}\n{}",
        gw.log()
    );
    assert_eq!(report["closed"], true, "{mode}: still open: {report}");
}

/// Another client, on its own connection, is served meanwhile.
#[track_caller]
fn assert_others_served(w: &Walkthrough, port: u16) {
    let out = w.site.walkthrough_curl(FRONTEND, port).http2().run();
    assert_eq!(out.body, format!("{FRONTEND_BODY}\n"), "{out:?}");
}

/// The gateway's resident memory, from /proc.
fn rss_kib(gw: &Gateway) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", gw.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn rapid_reset_gets_goaway_and_reaches_the_backend_a_bounded_number_of_times() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let report = flood(&w, port, "rapid-reset", 5000);
    assert_calmed("rapid-reset", &report, &gw);
    let sent = report["sent"].as_u64().unwrap();
    // Streams h2 hands over before the reset budgets run out may be
    // forwarded (and cancelled): at most the 100 resets a second of the
    // frame budget plus the 50 pending-accept resets of h2.
    let hits = w.frontend.hits();
    println!("rapid reset: {sent} streams sent, {hits} reached the backend: {report}");
    assert!(
        hits <= 150,
        "{hits} of {sent} reset streams reached the backend"
    );
    assert_others_served(&w, port);
    assert!(
        gw.log().contains("HTTP/2 frame flood") || report["goaway"]["debug"] == "too_many_resets",
        "{report}\n{}",
        gw.log()
    );
}

/// Streams reset only after the server took them: h2 does not count those
/// resets, gatehouse's frame budget does.
#[test]
fn resets_of_streams_already_taken_are_counted_too() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let report = flood(&w, port, "slow-reset", 5000);
    assert_calmed("slow-reset", &report, &gw);
    let sent = report["sent"].as_u64().unwrap();
    let hits = w.frontend.hits();
    println!("slow reset: {sent} streams sent, {hits} reached the backend: {report}");
    // 100 resets a second: at most about 100 streams, each of which may
    // have been forwarded before its reset came.
    assert!(sent <= 150, "{sent} streams were opened and reset");
    assert!(
        hits <= 150,
        "{hits} of {sent} reset streams reached the backend"
    );
    assert!(gw.log().contains("HTTP/2 frame flood"), "{}", gw.log());
    assert_others_served(&w, port);
}

#[test]
fn a_continuation_flood_gets_goaway_with_memory_bounded() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    let before = rss_kib(&gw);
    let report = flood(&w, port, "continuation", 100_000);
    assert_calmed("continuation", &report, &gw);
    // h2 allows a header block as many CONTINUATIONs as the 60 KiB header
    // list limit needs (5 frames of 16 KiB), not one more.
    assert_eq!(
        report["goaway"]["debug"], "too_many_continuations",
        "{report}"
    );
    let grown = rss_kib(&gw).saturating_sub(before);
    assert!(grown < 20 * 1024, "the gateway grew by {grown} KiB");
    assert_eq!(
        w.backend_hits(),
        0,
        "a header block that never ended was forwarded"
    );
    assert_others_served(&w, port);
}

#[test]
fn settings_ping_priority_and_empty_data_floods_get_goaway() {
    let w = Walkthrough::new();
    let gw = w.start();
    let port = gw.port(443);
    for mode in ["settings", "ping", "priority", "empty-data"] {
        let start = Instant::now();
        let report = flood(&w, port, mode, 100_000);
        assert_calmed(mode, &report, &gw);
        println!("{mode}: {report}");
        // The server answered at most the budget's worth (100 a second;
        // a flood may straddle two seconds) plus the opening SETTINGS.
        let answered =
            report["pongs"].as_u64().unwrap() + report["settings_acks"].as_u64().unwrap();
        assert!(
            answered <= 2 * 100 + 1,
            "{mode}: {answered} frames answered: {report}"
        );
        assert!(start.elapsed() < Duration::from_secs(10), "{mode}: slow");
        assert_others_served(&w, port);
    }
    assert_eq!(
        gw.log().matches("HTTP/2 frame flood").count(),
        4,
        "one log line per flood:\n{}",
        gw.log()
    );
    // The four curl requests, and at most the head of the empty-DATA
    // flood's POST (its headers were whole, so it may be forwarded).
    let hits = w.frontend.hits();
    assert!(
        (4..=5).contains(&hits),
        "{hits} requests reached the backend"
    );
}

#[test]
fn a_client_within_the_budget_is_served_on_one_connection() {
    let w = Walkthrough::new();
    let gw = w.start();
    let report = flood(&w, gw.port(443), "get", 150);
    assert!(report["goaway"].is_null(), "{report}");
    let statuses = report["statuses"].as_object().unwrap();
    assert_eq!(statuses.len(), 150, "{report}");
    assert!(statuses.values().all(|s| s == "200"), "{report}");
    assert_eq!(w.frontend.hits(), 150);
}

#[test]
fn the_101st_concurrent_stream_is_refused() {
    let w = Walkthrough::new();
    // A backend slow enough that 100 streams are still open when the
    // 101st arrives.
    let slow = Backend::slow(FRONTEND_BODY, Duration::from_secs(2));
    w.site
        .apply_service_entries(slow.port(), w.inventory.port());
    let gw = w.start();
    let report = flood(&w, gw.port(443), "streams", 101);
    assert_eq!(
        report["settings"][MAX_CONCURRENT_STREAMS].as_u64(),
        Some(100),
        "{report}"
    );
    let resets: Vec<(u64, u64)> = report["resets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap()))
        .collect();
    assert_eq!(resets, vec![(201, REFUSED_STREAM)], "{report}");
    let statuses = report["statuses"].as_object().unwrap();
    assert_eq!(statuses.len(), 100, "{report}");
    assert!(statuses.values().all(|s| s == "200"), "{report}");
    assert_eq!(slow.hits(), 100, "the refused stream reached the backend");
}
