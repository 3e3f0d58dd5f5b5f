//! [`Gateway`]: `gatehouse run` as a child process on port 0, with the
//! addresses it prints and its log; killed when dropped. [`Printed`] reads
//! those lines for it and for the etcd harness's replicas.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{START_TIMEOUT, Site};

/// A line of `gatehouse run`'s stdout that tells a test where to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printed {
    /// `admin on ADDR`.
    Admin(SocketAddr),
    /// `listening on ADDR for gateway port PORT`.
    Listening { port: u16, addr: SocketAddr },
}

impl Printed {
    pub fn parse(line: &str) -> Option<Printed> {
        if let Some(a) = line.strip_prefix("admin on ") {
            return a.trim().parse().ok().map(Printed::Admin);
        }
        let rest = line.strip_prefix("listening on ")?;
        let (addr, port) = rest.split_once(" for gateway port ")?;
        Some(Printed::Listening {
            port: port.trim().parse().ok()?,
            addr: addr.parse().ok()?,
        })
    }
}

/// A unique number for this process's log file names.
fn unique() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

impl Site {
    /// Starts `gatehouse run` with each Gateway port in `ports` on
    /// `127.0.0.1:0`; returns once every one of them is listening.
    pub fn start_gateway(&self, ports: &[u16]) -> Gateway {
        self.start_gateway_with(ports, &[])
    }

    /// As [`Site::start_gateway`], with more `run` arguments.
    pub fn start_gateway_with(&self, ports: &[u16], args: &[&str]) -> Gateway {
        let mut c = self.command();
        c.args(["run", "--admin", "127.0.0.1:0"]).args(args);
        for p in ports {
            c.arg("--listen").arg(format!("{p}=127.0.0.1:0"));
        }
        let log_path = self.path(format!("gateway-{}.log", unique()));
        let log = std::fs::File::create(&log_path).unwrap();
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut gw = Gateway {
            child,
            lines,
            log_path,
            admin: None,
            listeners: BTreeMap::new(),
        };
        gw.read_until(START_TIMEOUT, |gw| {
            gw.admin.is_some() && ports.iter().all(|p| gw.listeners.contains_key(p))
        });
        gw
    }
}

/// A running `gatehouse run`; killed when dropped.
pub struct Gateway {
    child: Child,
    lines: mpsc::Receiver<String>,
    log_path: PathBuf,
    admin: Option<SocketAddr>,
    listeners: BTreeMap<u16, SocketAddr>,
}

impl Gateway {
    /// Reads stdout lines until `done` holds; panics after `timeout`.
    fn read_until(&mut self, timeout: Duration, done: impl Fn(&Gateway) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.note(&line),
                Err(e) => panic!(
                    "gatehouse run did not print the expected lines within {timeout:?} ({e}); stderr:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// Waits (at most `timeout`) for a new `listening on` line for
    /// `gateway_port`, as when a Gateway port is added while running, and
    /// returns its local port.
    pub fn wait_new_listener(&mut self, gateway_port: u16, timeout: Duration) -> u16 {
        self.listeners.remove(&gateway_port);
        self.read_until(timeout, |gw| gw.listeners.contains_key(&gateway_port));
        self.port(gateway_port)
    }

    fn note(&mut self, line: &str) {
        match Printed::parse(line) {
            Some(Printed::Admin(a)) => self.admin = Some(a),
            Some(Printed::Listening { port, addr }) => {
                self.listeners.insert(port, addr);
            }
            None => {}
        }
    }

    /// The real local port serving Gateway port `gateway_port`.
    #[track_caller]
    pub fn port(&self, gateway_port: u16) -> u16 {
        self.listeners
            .get(&gateway_port)
            .unwrap_or_else(|| panic!("no listener for gateway port {gateway_port}"))
            .port()
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin.unwrap()
    }

    /// `GET /config_dump` from its admin endpoint, parsed.
    #[track_caller]
    pub fn config_dump(&self) -> serde_json::Value {
        let (status, body) = super::http_get(self.admin(), "/config_dump").unwrap();
        assert_eq!(status, 200, "/config_dump: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Everything the gateway has logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The process id of `gatehouse run`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
