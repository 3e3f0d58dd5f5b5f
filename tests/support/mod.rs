//! The one test harness: the walkthrough's world on one machine, for every
//! integration test binary.
//!
//! A [`Site`] is a scratch directory with its own store and the
//! walkthrough's certificate tree (made by `gatehouse pki init`); store
//! objects are written through the real CLI, and [`Site::snapshot`] proves a
//! command changed nothing. [`Backend`]s are small HTTP servers in process
//! that count and record what reaches them. A [`Gateway`] is `gatehouse run`
//! as a child process on port 0, killed when dropped. [`Curl`] and
//! [`Site::s_client`] drive it with the real `curl` and `openssl s_client`,
//! with the walkthrough's own flags; [`client`] is the one in-process mTLS
//! client (one request, or one kept connection) and [`load`] keeps many of
//! its connections busy. [`etcd`] adds a real etcd cluster and gateway
//! replicas that share it. [`browser`] drives headless Chromium.
//!
//! Every command a test starts goes through [`command`], which strips the
//! environment of everything that changes where gatehouse, curl, openssl or
//! etcd read and write, so a developer's own store, key or proxy can never
//! leak into a test. Every wait here is bounded by time and count, everything
//! listens on loopback only, and no child process outlives its test. Nothing
//! here sets process-wide state (no `std::env::set_var`): tests of one binary
//! run in parallel threads.
//!
//! A test binary includes it once as `mod support;` (a file in `tests/`) or
//! `#[path = "../support/mod.rs"] mod support;` (a grouped binary's
//! `main.rs`); each uses a different part, hence `dead_code`.
#![allow(dead_code, clippy::unwrap_used)]

mod backend;
pub mod browser;
pub mod client;
mod curl;
pub mod etcd;
mod gateway;
#[allow(dead_code)]
pub mod gateway_api;
pub mod grpc;
pub mod kube;
pub mod load;
mod manifests;
mod process;
mod site;
pub mod tls_backend;
mod walkthrough;
pub mod xfcc;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use backend::{Backend, Failing, Seen};
#[allow(unused_imports)]
pub use client::{Answer, Client};
#[allow(unused_imports)]
pub use curl::{Curl, CurlOut, Transfer};
#[allow(unused_imports)]
pub use gateway::Gateway;
#[allow(unused_imports)]
pub use manifests::{Cred, b64, frontend_vs_with, issue, kubectl_secret_yaml, to_inventory};
#[allow(unused_imports)]
pub use process::{Out, command, no_panic, run_bounded, run_bounded_input, this_test};
#[allow(unused_imports)]
pub use site::{Pki, Site, service_entry};
#[allow(unused_imports)]
pub use walkthrough::Walkthrough;

pub const FRONTEND: &str = "frontend.foocorp.com";
pub const INVENTORY: &str = "inventory.foocorp.com";
pub const FRONTEND_BODY: &str = "Welcome to FooCorp - Public Site";
pub const INVENTORY_BODY: &str = "FooCorp - Inventory [INTERNAL]";
pub const FRONTEND_SERVICE: &str = "frontend.ux.svc.cluster.local";
pub const INVENTORY_SERVICE: &str = "inventory.corp-services.svc.cluster.local";

/// The walkthrough's YAML, byte for byte as published.
pub const GATEWAY_YAML: &str = include_str!("../../examples/foocorp/gateway.yaml");
pub const VIRTUAL_SERVICES_YAML: &str = include_str!("../../examples/foocorp/virtualservices.yaml");

/// How long a gateway may take to print its `listening on` lines.
pub const START_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest any one command (CLI, curl, openssl, etcdctl) may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How often [`poll`] and [`try_poll`] look again.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------- waiting

/// The one wait loop: calls `f` every `every` until it returns `Some`, for
/// at most `timeout` (and so at most `timeout / every + 1` tries); `None`
/// when time ran out.
pub fn poll_every<T>(
    every: Duration,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let tries = timeout.as_millis() / every.as_millis().max(1) + 1;
    for _ in 0..=tries {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
    None
}

/// [`poll_every`] at [`POLL_EVERY`].
pub fn try_poll<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    poll_every(POLL_EVERY, timeout, f)
}

/// [`try_poll`] that panics, naming `what`, when time runs out.
#[track_caller]
pub fn poll<T>(what: &str, timeout: Duration, f: impl FnMut() -> Option<T>) -> T {
    try_poll(timeout, f).unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for {what}"))
}

// ---------------------------------------------------------------- ports

/// A loopback port nobody listens on: [`free_port`], so that no other test
/// of the binary binding port 0 can be given it.
pub fn closed_port() -> u16 {
    free_port()
}

/// A loopback port that is free now, below Linux's ephemeral range
/// (32768-60999), for a process that is told its port (`gatehouse demo
/// --port`, an etcd member): neither another test's port-0 listener nor an
/// outgoing connection can take it before the process binds it, or while a
/// stopped process is down and will come back on the same port.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id()
        .wrapping_mul(2_654_435_761)
        .wrapping_add(SEQ.fetch_add(7919, Ordering::SeqCst))
        .wrapping_add(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
    for i in 0..2000u32 {
        let port = 20_000 + (seed.wrapping_add(i.wrapping_mul(104_729)) % 12_000);
        let port = u16::try_from(port).unwrap();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port between 20000 and 32000");
}

/// A plain HTTP/1.0 GET on loopback (an admin endpoint, etcd's `/health`):
/// the status and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    http_get_with(addr, path, &[]).map(|(status, _, body)| (status, body))
}

/// [`http_get`] with more request header lines (`"Authorization: Bearer x"`):
/// the status, the response head and the body.
pub fn http_get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[&str],
) -> Result<(u16, String, String), String> {
    let timeout = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n").map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no end of headers")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, head.to_owned(), body.to_owned()))
}
