//! `gatehouse demo`: the Quickstart. It must print both walkthrough answers
//! and curl commands that, pasted into a shell, print the same answers.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::support::{self, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn demo_once_prints_both_answers_and_the_curl_commands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let out = support::command(BIN)
        .args(["demo", "--once", "--port", &port.to_string(), "--dir"])
        .arg(dir.path().join("demo"))
        .output()
        .expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("Welcome to FooCorp - Public Site"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FooCorp - Inventory [INTERNAL]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("RESOURCE NAME:frontend-credential, EVENT: pushed key/cert pair to proxy"),
        "{stdout}"
    );
    assert!(
        stdout.contains("RESOURCE NAME:inventory-credential, EVENT: pushed key/cert pair to proxy"),
        "{stdout}"
    );
    for host in ["frontend.foocorp.com", "inventory.foocorp.com"] {
        assert!(
            stdout.contains(&format!("--resolve {host}:{port}:127.0.0.1")),
            "{stdout}"
        );
        assert!(
            stdout.contains(&format!("--cert {host}/4_client/certs/{host}.cert.pem")),
            "{stdout}"
        );
    }
    // It used its own store, inside its folder.
    assert!(dir.path().join("demo/store").is_dir());
}

#[test]
fn demo_says_what_to_do_when_the_port_is_taken() {
    let dir = tempfile::tempdir().expect("tempdir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let out = support::command(BIN)
        .args(["demo", "--once", "--port", &port.to_string(), "--dir"])
        .arg(dir.path().join("demo"))
        .output()
        .expect("run demo");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("port {port}")), "{stderr}");
    assert!(stderr.contains("--port"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// The printed curl commands work when pasted into a shell while the demo serves.
#[test]
fn pasted_curl_commands_print_the_same_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = support::command(BIN)
        .args(["demo", "--port", &port.to_string(), "--dir"])
        .arg(dir.path().join("demo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let guard = Kill(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("demo did not reach 'Serving on'");
        let done = line.starts_with("Serving on");
        lines.push(line);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    // The block after "Try it yourself": a `cd`, then two curl commands.
    let tail = text
        .split("Try it yourself from another terminal:")
        .nth(1)
        .expect("instructions");
    let script: String = tail
        .lines()
        .take_while(|l| !l.starts_with("Serving on"))
        .map(|l| format!("{l}\n"))
        .collect();
    let script = script.replace("\ncurl", "\ncurl -sS");
    let out = support::command("bash")
        .arg("-c")
        .arg(format!("set -e\n{script}"))
        .output()
        .expect("bash");
    let answers = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pasted commands failed:\n{script}\n{answers}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        answers.contains("Welcome to FooCorp - Public Site"),
        "{answers}"
    );
    assert!(
        answers.contains("FooCorp - Inventory [INTERNAL]"),
        "{answers}"
    );
    dashboard_and_proxy_config_answer(&text);
    drop(guard);
}

/// The demo's printed dashboard serves the page and metrics that counted
/// its handshakes (its own two requests and the two pasted ones), and the
/// printed `proxy-config` command shows both hosts.
fn dashboard_and_proxy_config_answer(printed: &str) {
    let url = printed
        .lines()
        .find_map(|l| l.strip_prefix("dashboard: http://"))
        .expect("a dashboard line");
    let admin: std::net::SocketAddr = url.trim_end_matches("/ui").parse().expect("address");
    let (status, page) = support::http_get(admin, "/ui").expect("GET /ui");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("gatehouse"), "{page}");
    let (status, metrics) = support::http_get(admin, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "{metrics}");
    let successes: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("gatehouse_tls_handshakes_total{") && l.contains("result=\"success\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(
        successes >= 4.0,
        "{successes} successful handshakes:\n{metrics}"
    );
    let out = support::command(BIN)
        .args(["proxy-config", "all", "--admin", &admin.to_string()])
        .output()
        .expect("proxy-config");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    for host in ["frontend.foocorp.com", "inventory.foocorp.com"] {
        assert!(shown.contains(host), "{shown}");
    }
}
