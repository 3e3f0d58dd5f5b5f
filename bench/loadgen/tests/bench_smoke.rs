//! A short smoke run of the benchmark's load generator against the real
//! gatehouse, so `bench/` cannot rot: the walkthrough's setup, one loadgen
//! backend, `keepalive` and `handshakes` for two seconds each with `--json`,
//! then HTTP/2 with several streams per connection and the mixed load.
//! Numbers are not checked (timing goals belong to the benchmark), only that
//! requests succeed, nothing fails, and the reports parse.
//!
//! It lives in the loadgen's crate so that Cargo builds the loadgen binary
//! for it; the gateway binary is its sibling in the same target directory,
//! built by `cargo test --workspace` (the gateway package has integration
//! tests of its own, so its binary is built before any test runs).
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const LOADGEN: &str = env!("CARGO_BIN_EXE_gatehouse-loadgen");
const HOST: &str = "frontend.foocorp.com";

/// The gateway binary beside the loadgen's (same profile, same target dir).
fn gatehouse_bin() -> PathBuf {
    let bin =
        Path::new(LOADGEN).with_file_name(format!("gatehouse{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo test --workspace`, or `cargo build -p gatehouse` first",
        bin.display()
    );
    bin
}

/// Kills the child it holds when dropped, so a failing test leaves nothing.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The first stdout line of `child` that contains `needle`, within 30 s.
fn wait_for_line(stdout: ChildStdout, needle: &'static str) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains(needle) {
                let _ = tx.send(line);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no line with {needle:?} within 30 s"))
}

fn ok(out: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn gatehouse(store: &Path, args: &[&str]) -> String {
    let out = Command::new(gatehouse_bin())
        .arg("--store")
        .arg(format!("dir:{}", store.display()))
        .args(args)
        .env_remove("GATEHOUSE_STORE")
        .output()
        .unwrap();
    ok(out, &format!("gatehouse {args:?}"))
}

fn path(p: PathBuf) -> String {
    p.display().to_string()
}

/// Runs one loadgen mode against `addr` and returns its parsed `--json`.
fn loadgen(mode: &str, addr: &str, pki: &Path, extra: &[&str]) -> serde_json::Value {
    let host_dir = pki.join(HOST);
    let out = Command::new(LOADGEN)
        .arg(mode)
        .args(["--connect", addr, "--sni", HOST, "--json"])
        .arg("--ca")
        .arg(host_dir.join("2_intermediate/certs/ca-chain.cert.pem"))
        .arg("--cert")
        .arg(host_dir.join(format!("4_client/certs/{HOST}.cert.pem")))
        .arg("--key")
        .arg(host_dir.join(format!("4_client/private/{HOST}.key.pem")))
        .args(extra)
        .output()
        .unwrap();
    let stdout = ok(out, &format!("loadgen {mode}"));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{mode} --json: {e}\n{stdout}"))
}

fn assert_clean(report: &serde_json::Value, mode: &str) {
    let ok = report["requests_ok"].as_u64().unwrap();
    assert!(ok > 0, "{mode}: no successful request: {report:#}");
    assert_eq!(
        report["errors_total"].as_u64(),
        Some(0),
        "{mode}: errors: {report:#}"
    );
    assert!(report["requests_per_s"].as_f64().unwrap() > 0.0);
    for p in ["p50_ms", "p90_ms", "p99_ms", "max_ms"] {
        assert!(report["latency"][p].as_f64().is_some(), "{mode}: no {p}");
    }
}

/// The walkthrough's frontend half: certificates, the secret, the Gateway
/// and routes, and a ServiceEntry that sends the frontend to the backend.
fn configure_walkthrough(store: &Path, pki: &Path, dir: &Path, ip: &str, port: &str) {
    gatehouse(
        store,
        &["pki", "init", HOST, "--out", &path(pki.to_path_buf())],
    );
    let h = pki.join(HOST);
    gatehouse(
        store,
        &[
            "create",
            "-n",
            "istio-system",
            "secret",
            "generic",
            "frontend-credential",
            &format!(
                "--from-file=key={}",
                path(h.join(format!("3_application/private/{HOST}.key.pem")))
            ),
            &format!(
                "--from-file=cert={}",
                path(h.join(format!("3_application/certs/{HOST}.cert.pem")))
            ),
            &format!(
                "--from-file=cacert={}",
                path(h.join("2_intermediate/certs/ca-chain.cert.pem"))
            ),
        ],
    );
    // The repository root is two levels above this crate (bench/loadgen).
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/foocorp");
    gatehouse(store, &["apply", "-f", &path(examples)]);
    let entry = dir.join("serviceentry.yaml");
    std::fs::write(
        &entry,
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: frontend, namespace: default}}\nspec:\n  hosts: [frontend.ux.svc.cluster.local]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: {ip}, ports: {{http: {port}}}}}]\n"
        ),
    )
    .unwrap();
    gatehouse(store, &["apply", "-f", &path(entry)]);
}

#[test]
fn loadgen_keepalive_and_handshakes_against_gatehouse() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let pki = dir.path().join("pki");

    // The shared backend, on a port the OS picks.
    let mut backend = Command::new(LOADGEN)
        .args(["--threads", "1", "backend", "--listen", "127.0.0.1:0"])
        .args(["--body", "smoke\n", "--max-seconds", "120"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let backend_out = backend.stdout.take().unwrap();
    let _backend = Running(backend);
    let line = wait_for_line(backend_out, "listening on");
    let backend_addr = line.rsplit(' ').next().unwrap().to_owned();
    let (ip, port) = backend_addr.rsplit_once(':').unwrap();

    configure_walkthrough(&store, &pki, dir.path(), ip, port);

    let mut gw = Command::new(gatehouse_bin())
        .arg("--store")
        .arg(format!("dir:{}", store.display()))
        .args([
            "run",
            "--listen",
            "443=127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .env_remove("GATEHOUSE_STORE")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let gw_out = gw.stdout.take().unwrap();
    let _gw = Running(gw);
    let line = wait_for_line(gw_out, "listening on");
    let addr = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();

    let ka = loadgen("keepalive", &addr, &pki, &["-c", "4", "--duration", "2"]);
    assert_clean(&ka, "keepalive");
    assert_eq!(ka["mode"], "keepalive");
    assert_eq!(ka["protocol"], "http/1.1");
    assert_eq!(ka["group"], "x25519");
    // One handshake per connection, at least; none resumed.
    assert!(ka["handshakes"]["full"].as_u64().unwrap() >= 4, "{ka:#}");

    let hs = loadgen("handshakes", &addr, &pki, &["-c", "2", "--duration", "2"]);
    assert_clean(&hs, "handshakes");
    // Resumption is off unless asked: every request was a full handshake.
    assert_eq!(hs["handshakes"]["resumed"].as_u64(), Some(0), "{hs:#}");
    assert_eq!(
        hs["handshakes"]["full"].as_u64(),
        Some(hs["requests_ok"].as_u64().unwrap()),
        "{hs:#}"
    );

    http2_and_mixed(&addr, &pki);
}

/// compare.sh's (f) and (g): HTTP/2 with several streams in flight per
/// connection (h2 really negotiated, or the run counts `alpn` errors), and
/// the mixed load, whose every Nth request makes a new connection.
fn http2_and_mixed(addr: &str, pki: &Path) {
    let h2 = loadgen(
        "keepalive",
        addr,
        pki,
        &["--http2", "-c", "2", "--duration", "1"],
    );
    assert_clean(&h2, "keepalive --http2");
    assert_eq!(h2["protocol"], "h2");

    let streams = loadgen(
        "keepalive",
        addr,
        pki,
        &["--http2", "-c", "2", "--streams", "4", "--duration", "2"],
    );
    assert_clean(&streams, "keepalive --http2 --streams 4");
    assert_eq!(streams["protocol"], "h2");
    assert_eq!(streams["extra"]["streams"], 4);
    // Two connections, each made once: the streams share them.
    assert_eq!(
        streams["handshakes"]["full"].as_u64(),
        Some(2),
        "{streams:#}"
    );

    let mixed = loadgen(
        "keepalive",
        addr,
        pki,
        &["-c", "2", "--new-connection-every", "5", "--duration", "2"],
    );
    assert_clean(&mixed, "keepalive --new-connection-every 5");
    // Each connection makes a handshake per 5 requests (the last one may
    // have served fewer), none resumed.
    let ok = mixed["requests_ok"].as_u64().unwrap();
    let full = mixed["handshakes"]["full"].as_u64().unwrap();
    assert!(ok / 5 <= full && full <= ok / 5 + 2, "{mixed:#}");
    assert_eq!(
        mixed["handshakes"]["resumed"].as_u64(),
        Some(0),
        "{mixed:#}"
    );

    // The options it does not combine are refused, not ignored.
    let out = Command::new(LOADGEN)
        .args(["keepalive", "--connect", addr, "--sni", HOST])
        .args(["--ca", "x", "--cert", "x", "--key", "x", "--streams", "4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--http2"));
}

#[test]
fn loadgen_refuses_a_remote_address() {
    let out = Command::new(LOADGEN)
        .args(["keepalive", "--connect", "192.0.2.1:443", "--sni", HOST])
        .args(["--ca", "x", "--cert", "x", "--key", "x", "--duration", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-remote"), "{stderr}");
}
