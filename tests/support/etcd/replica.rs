//! [`Replica`]: `gatehouse run` as a child process, with the addresses it
//! prints, its admin endpoint and its log; killed when dropped.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::super::gateway::Printed;
use super::super::{START_TIMEOUT, http_get, try_poll};

/// What the replica has printed so far.
#[derive(Default)]
struct Seen {
    admin: Option<SocketAddr>,
    port443: Option<u16>,
    /// Every `listening on ADDR for gateway port N`: N to ADDR's port.
    ports: std::collections::BTreeMap<u16, u16>,
}

/// A running `gatehouse run`; killed when dropped.
pub struct Replica {
    pub name: String,
    child: Child,
    printed: Arc<Mutex<Seen>>,
    log: PathBuf,
    pub cache: PathBuf,
}

impl Replica {
    pub fn spawn(mut c: Command, name: &str, log: PathBuf, cache: PathBuf) -> Replica {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let printed = Arc::new(Mutex::new(Seen::default()));
        let p = printed.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut p = p.lock().unwrap();
                match Printed::parse(&line) {
                    Some(Printed::Admin(a)) => p.admin = Some(a),
                    Some(Printed::Listening { port, addr }) => {
                        if port == 443 {
                            p.port443 = Some(addr.port());
                        }
                        p.ports.insert(port, addr.port());
                    }
                    None => {}
                }
            }
        });
        let r = Replica {
            name: name.to_owned(),
            child,
            printed,
            log,
            cache,
        };
        if try_poll(START_TIMEOUT, || r.printed.lock().unwrap().admin).is_none() {
            panic!(
                "replica {name} did not print its admin address within {START_TIMEOUT:?}; log:\n{}",
                r.log()
            );
        }
        r
    }

    pub fn admin(&self) -> SocketAddr {
        self.printed.lock().unwrap().admin.unwrap()
    }

    /// The local port serving Gateway port 443, if it is open yet.
    pub fn listening(&self) -> Option<u16> {
        self.printed.lock().unwrap().port443
    }

    /// The local port serving Gateway port `gateway_port`, if it is open yet.
    pub fn port_of(&self, gateway_port: u16) -> Option<u16> {
        self.printed
            .lock()
            .unwrap()
            .ports
            .get(&gateway_port)
            .copied()
    }

    /// The local port serving Gateway port 443, waiting (bounded) for the
    /// replica to open it.
    #[track_caller]
    pub fn port(&self) -> u16 {
        try_poll(START_TIMEOUT, || self.printed.lock().unwrap().port443).unwrap_or_else(|| {
            panic!(
                "replica {} opened no listener for port 443 within {START_TIMEOUT:?}; log:\n{}",
                self.name,
                self.log()
            )
        })
    }

    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.port()).into()
    }

    /// The admin endpoint's `/ready` answer, e.g. `ready: live`.
    pub fn ready(&self) -> String {
        match http_get(self.admin(), "/ready") {
            Ok((_, body)) => body.trim().to_owned(),
            Err(e) => format!("(no answer: {e})"),
        }
    }

    /// Waits until `/ready` starts with `want`; panics with the log if not.
    #[track_caller]
    pub fn wait_ready(&self, want: &str, timeout: Duration) {
        let mut last = String::new();
        if try_poll(timeout, || {
            last = self.ready();
            last.starts_with(want).then_some(())
        })
        .is_none()
        {
            panic!(
                "replica {}: /ready still says {last:?} after {timeout:?}, want {want:?}; log:\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// The admin endpoint's `/status` JSON.
    pub fn status(&self) -> serde_json::Value {
        let (_, body) = http_get(self.admin(), "/status").unwrap();
        serde_json::from_str(&body).unwrap()
    }

    /// Everything the replica logged (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
