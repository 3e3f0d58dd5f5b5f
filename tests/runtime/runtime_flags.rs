//! `gatehouse run`'s process flags and readiness: out-of-range durations
//! and counts are usage errors that name the flag (exit 1, the CLI's
//! convention) instead of a panic later; `--workers` sets the data-plane
//! threads while the control plane has its own; and `/ready` says 503,
//! naming the listener and the error, while a Gateway port cannot be
//! bound, then turns ready once the port is free.
#![allow(clippy::unwrap_used)]

use crate::support;

use std::net::TcpListener;
use std::time::Duration;

use support::{FRONTEND, FRONTEND_BODY, Site, Walkthrough, poll, try_poll};

/// How many threads of `pid` have the name `name` (as `ps -L` shows).
fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

#[test]
fn out_of_range_durations_and_counts_are_usage_errors_naming_the_flag() {
    let site = Site::new();
    let cases: &[(&str, &str, &str)] = &[
        ("--idle-timeout", "10000000000000000000s", "give 1ms to 24h"),
        ("--handshake-timeout", "25h", "give 1ms to 24h"),
        ("--request-headers-timeout", "0s", "give 1ms to 24h"),
        (
            "--request-timeout",
            "10000000000000000000s",
            "give 1ms to 24h",
        ),
        ("--upstream-connect-timeout", "0ms", "give 1ms to 24h"),
        ("--upstream-timeout", "90000s", "give 1ms to 24h"),
        ("--drain-timeout", "2h", "give 1ms to 1h"),
        ("--idle-timeout", "soon", "is not a duration"),
        ("--max-connections", "18446744073709551615", "1..=10000000"),
        ("--max-connections", "0", "1..=10000000"),
        ("--workers", "0", "1..=1024"),
        ("--workers", "100000", "1..=1024"),
    ];
    for (flag, value, why) in cases {
        let out = site.assert_run_refuses(flag, value);
        let stderr = out.stderr.trim_end();
        assert_eq!(stderr.lines().count(), 1, "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(value) && stderr.contains(why),
            "{flag} {value}: want a usage error naming the flag and saying {why:?}, got {stderr:?}"
        );
        assert!(out.stdout.is_empty(), "{flag} {value}: {out:?}");
    }
}

#[test]
fn the_largest_values_in_range_are_taken() {
    let site = Site::new();
    let mut gw = site.start_gateway_with(
        &[],
        &[
            "--idle-timeout",
            "24h",
            "--request-timeout",
            "86400s",
            "--max-connections",
            "10000000",
            "--workers",
            "1",
            "--drain-timeout",
            "1h",
        ],
    );
    // Ready once the first sync is served (a moment after the admin port).
    poll("/ready to say 200", Duration::from_secs(10), || {
        let ready = site.curl(&format!("http://{}/ready", gw.admin())).run();
        (ready.status == 200).then_some(())
    });
    assert!(gw.running(), "{}", gw.log());
}

#[test]
fn workers_sets_the_data_plane_threads_and_the_control_plane_has_its_own() {
    let default = std::thread::available_parallelism().unwrap().get();
    for (args, want) in [
        (vec!["--workers", "3"], 3),
        (vec!["--workers", "1"], 1),
        (vec![], default),
    ] {
        let site = Site::new();
        let gw = site.start_gateway_with(&[], &args);
        let line = format!("gatehouse run started workers={want}");
        poll(
            "the start line with the worker count",
            Duration::from_secs(5),
            || gw.log().contains(&line).then_some(()),
        );
        let pid = gw.pid();
        // No traffic yet, so no blocking-pool thread of the data plane. On
        // a loaded machine the workers may show a moment after the start
        // line: wait (bounded) for them, then the count must be exact.
        let seen = try_poll(Duration::from_secs(5), || {
            (threads_named(pid, "gatehouse-proxy") >= want).then_some(())
        });
        assert!(
            seen.is_some(),
            "{args:?}: data-plane threads never reached {want}"
        );
        assert_eq!(
            threads_named(pid, "gatehouse-proxy"),
            want,
            "{args:?}: data-plane threads\n{}",
            gw.log()
        );
        // The control thread is named as it starts; on a loaded machine the
        // kernel may show it a moment after the start line.
        poll(
            "a control-plane thread named gatehouse-ctl",
            Duration::from_secs(5),
            || (threads_named(pid, "gatehouse-ctl") >= 1).then_some(()),
        );
    }
}

#[test]
fn ready_is_503_naming_a_listener_whose_port_is_taken_until_it_is_free() {
    let w = Walkthrough::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("443=127.0.0.1:{port}");
    let mut gw = w.site.start_gateway_with(&[], &["--listen", &listen]);
    let ready_url = format!("http://{}/ready", gw.admin());
    let not_ready = poll(
        "/ready to name the listener",
        Duration::from_secs(10),
        || {
            let r = w.site.curl(&ready_url).run();
            r.body.contains("gateway port 443").then_some(r)
        },
    );
    not_ready.assert_status(503);
    assert!(
        not_ready.body.starts_with("not ready: ")
            && not_ready.body.contains(&format!(
                "cannot listen on 127.0.0.1:{port} for gateway port 443"
            ))
            && not_ready.body.contains("in use"),
        "{not_ready:?}"
    );
    let listeners = w
        .site
        .curl(&format!("http://{}/listeners", gw.admin()))
        .run();
    assert!(
        listeners.body.contains("\"error\"") && listeners.body.contains("in use"),
        "{listeners:?}"
    );
    assert!(
        gw.log().contains("cannot listen on"),
        "the failure is logged:\n{}",
        gw.log()
    );

    // Free the port: the retry binds it and the gateway turns ready.
    drop(taken);
    let port = gw.wait_new_listener(443, Duration::from_secs(10));
    let ready = poll("/ready to turn 200", Duration::from_secs(10), || {
        let r = w.site.curl(&ready_url).run();
        (r.status == 200).then_some(r)
    });
    assert_eq!(ready.body.trim_end(), "ready: live", "{ready:?}");
    w.site
        .walkthrough_curl(FRONTEND, port)
        .run()
        .assert_body(FRONTEND_BODY);
    assert!(gw.running());
}
