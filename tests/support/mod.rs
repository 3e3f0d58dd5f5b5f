//! The data-plane test harness: the walkthrough's world on one machine.
//!
//! A [`Site`] is a scratch directory with its own store and the
//! walkthrough's certificate tree (made by `gatehouse pki init`); store
//! objects are written through the real CLI. [`Backend`]s are small HTTP
//! servers in process that count and record what reaches them. A
//! [`Gateway`] is `gatehouse run` as a child process on port 0, killed when
//! dropped. [`Curl`] and [`Site::s_client`] drive it with the real `curl` and
//! `openssl s_client`, with the walkthrough's own flags.
//!
//! Every wait here is bounded, everything listens on loopback only, and no
//! child process outlives its test.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
/// The longest any one client command may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(
            self.code,
            Some(0),
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `cmd` with empty stdin, killing it if it outlives `timeout`.
pub fn run_bounded(cmd: Command, timeout: Duration) -> Out {
    run_bounded_input(cmd, b"", timeout)
}

/// Runs `cmd` with `input` on its stdin, killing it if it outlives `timeout`.
pub fn run_bounded_input(mut cmd: Command, input: &[u8], timeout: Duration) -> Out {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    {
        let mut stdin = child.stdin.take().unwrap();
        // The command may exit before reading it all; that is its answer.
        let _ = stdin.write_all(input);
    }
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Out {
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Calls `f` every 20 ms until it returns `Some`, for at most `timeout`.
#[track_caller]
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}
mod backend;
mod curl;

// Each test crate uses some of these.
#[allow(unused_imports)]
pub use backend::{Backend, Seen};
#[allow(unused_imports)]
pub use curl::{Curl, CurlOut};

// ---------------------------------------------------------------- the site

/// A scratch directory with a store, the walkthrough's certificate tree
/// (paths relative to it, as in the walkthrough) and the CLI.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Default for Site {
    fn default() -> Self {
        Site::new()
    }
}

impl Site {
    pub fn new() -> Site {
        Site {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        c.current_dir(self.dir.path())
            .arg("--store")
            .arg(format!("dir:{}", self.path("store").display()))
            .env_remove("GATEHOUSE_STORE")
            .env_remove("RUST_LOG")
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.path("xdg"));
        c
    }

    /// `gatehouse --store dir:… ARGS`, run in the site directory.
    pub fn cli(&self, args: &[&str]) -> Out {
        let mut c = self.command();
        c.args(args);
        run_bounded(c, COMMAND_TIMEOUT)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Writes `yaml` to `rel` and runs `gatehouse apply -f rel`.
    pub fn apply(&self, rel: &str, yaml: &str) -> Out {
        self.write(rel, yaml);
        self.cli(&["apply", "-f", rel]).ok()
    }

    /// `gatehouse pki init HOST --out .`: the walkthrough's tree for HOST.
    pub fn pki_init(&self, host: &str) {
        self.cli(&["pki", "init", host, "--out", "."]).ok();
    }

    /// The paths of `host`'s tree, relative to the site (as curl sees them).
    pub fn pki(&self, host: &str) -> Pki {
        Pki::new(host)
    }

    /// Issues a client certificate from `host`'s intermediate CA with the
    /// library (for the unusual ones the CLI will not make); returns the
    /// `(cert, key)` paths relative to the site.
    pub fn issue_client(
        &self,
        host: &str,
        name: &str,
        spec: &gatehouse::pki::LeafSpec,
    ) -> (PathBuf, PathBuf) {
        let layout = gatehouse::pki::HostLayout::new(self.dir.path(), host);
        let issued = layout.load_intermediate().unwrap().issue(spec).unwrap();
        let (cert, key) = self.pki(host).named_client(name);
        issued
            .write_files(&self.path(&cert), &self.path(&key), false)
            .unwrap();
        (cert, key)
    }

    /// The walkthrough's `kubectl create -n istio-system secret generic
    /// SERVICE-credential …` with `gatehouse` in place of `kubectl`.
    /// Writes `cert` and `key` under `dir` and the `frontend-credential`
    /// manifest `create secret generic ... --dry-run=client -o yaml` prints
    /// for them (with the frontend CA and any `extra` flags) to
    /// `dir/secret.yaml`; returns that path, ready for `apply -f`.
    pub fn frontend_secret_manifest(
        &self,
        dir: &str,
        cert: &str,
        key: &str,
        extra: &[&str],
    ) -> String {
        self.write(&format!("{dir}/cert.pem"), cert);
        self.write(&format!("{dir}/key.pem"), key);
        let cacert = format!(
            "--from-file=cacert={}",
            self.pki(FRONTEND).ca_chain.display()
        );
        let key_arg = format!("--from-file=key={dir}/key.pem");
        let cert_arg = format!("--from-file=cert={dir}/cert.pem");
        let mut args = vec![
            "create",
            "-n",
            "istio-system",
            "secret",
            "generic",
            "frontend-credential",
            &key_arg,
            &cert_arg,
            &cacert,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--dry-run=client", "-o", "yaml"]);
        let out = self.cli(&args).ok();
        let path = format!("{dir}/secret.yaml");
        self.write(&path, &out.stdout);
        path
    }

    pub fn create_walkthrough_secret(&self, host: &str) -> Out {
        let service = host.split('.').next().unwrap();
        self.cli(&[
            "create",
            "-n",
            "istio-system",
            "secret",
            "generic",
            &format!("{service}-credential"),
            &format!("--from-file=key={host}/3_application/private/{host}.key.pem"),
            &format!("--from-file=cert={host}/3_application/certs/{host}.cert.pem"),
            &format!("--from-file=cacert={host}/2_intermediate/certs/ca-chain.cert.pem"),
        ])
        .ok()
    }

    /// The two backends' ServiceEntries (STATIC, 127.0.0.1).
    pub fn apply_service_entries(&self, frontend_port: u16, inventory_port: u16) {
        let yaml = format!(
            "{}---\n{}",
            service_entry("frontend", FRONTEND_SERVICE, frontend_port),
            service_entry("inventory", INVENTORY_SERVICE, inventory_port)
        );
        self.apply("serviceentries.yaml", &yaml);
    }

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

    /// `openssl s_client -connect 127.0.0.1:PORT ARGS` with empty stdin.
    pub fn s_client(&self, port: u16, args: &[&str]) -> Out {
        self.s_client_input(port, args, b"")
    }

    /// `openssl s_client -connect 127.0.0.1:PORT ARGS` reading `input`.
    pub fn s_client_input(&self, port: u16, args: &[&str], input: &[u8]) -> Out {
        let mut c = Command::new("openssl");
        c.current_dir(self.dir.path())
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(args);
        run_bounded_input(c, input, COMMAND_TIMEOUT)
    }
}

fn unique() -> usize {
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// A STATIC ServiceEntry: `host` port 80 (`http`) goes to `127.0.0.1:port`.
pub fn service_entry(name: &str, host: &str, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: {name}
  namespace: default
spec:
  hosts:
  - {host}
  location: MESH_INTERNAL
  ports:
  - number: 80
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: 127.0.0.1
    ports:
      http: {port}
"
    )
}

/// The walkthrough's paths for one host, relative to the site directory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub host: String,
    pub ca_chain: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub intermediate_cert: PathBuf,
    pub intermediate_key: PathBuf,
    pub crl: PathBuf,
}

impl Pki {
    pub fn new(host: &str) -> Pki {
        let l = gatehouse::pki::HostLayout::new("", host);
        Pki {
            host: host.to_owned(),
            ca_chain: l.ca_chain,
            server_cert: l.server_cert,
            server_key: l.server_key,
            client_cert: l.client_cert,
            client_key: l.client_key,
            intermediate_cert: l.intermediate_cert,
            intermediate_key: l.intermediate_key,
            crl: l.crl,
        }
    }

    /// `4_client/certs/NAME.cert.pem` and `4_client/private/NAME.key.pem`.
    pub fn named_client(&self, name: &str) -> (PathBuf, PathBuf) {
        let l = gatehouse::pki::HostLayout::new("", &self.host);
        (l.client_cert_named(name), l.client_key_named(name))
    }
}

// ---------------------------------------------------------------- gatehouse run

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
        if let Some(a) = line.strip_prefix("admin on ") {
            self.admin = a.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("listening on ")
            && let Some((addr, port)) = rest.split_once(" for gateway port ")
            && let (Ok(addr), Ok(port)) = (addr.parse(), port.trim().parse())
        {
            self.listeners.insert(port, addr);
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

    /// Everything the gateway has logged so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
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

// ---------------------------------------------------------------- the walkthrough

/// The walkthrough set up on a [`Site`]: both hosts' certificates, the
/// secrets, the Gateway and VirtualServices as published, the two backends
/// and their ServiceEntries. Nothing is running yet.
pub struct Walkthrough {
    pub site: Site,
    pub frontend: Backend,
    pub inventory: Backend,
}

impl Default for Walkthrough {
    fn default() -> Self {
        Walkthrough::new()
    }
}

impl Walkthrough {
    pub fn new() -> Walkthrough {
        Walkthrough::with_secrets(&[FRONTEND, INVENTORY])
    }

    /// As [`Walkthrough::new`], creating only the listed hosts' secrets.
    pub fn with_secrets(hosts: &[&str]) -> Walkthrough {
        let site = Site::new();
        for host in [FRONTEND, INVENTORY] {
            site.pki_init(host);
        }
        for host in hosts {
            site.create_walkthrough_secret(host);
        }
        site.apply("foocorp/gateway.yaml", GATEWAY_YAML);
        site.apply("foocorp/virtualservices.yaml", VIRTUAL_SERVICES_YAML);
        let frontend = Backend::start(FRONTEND_BODY);
        let inventory = Backend::start(INVENTORY_BODY);
        site.apply_service_entries(frontend.port(), inventory.port());
        Walkthrough {
            site,
            frontend,
            inventory,
        }
    }

    /// `gatehouse run` serving Gateway port 443.
    pub fn start(&self) -> Gateway {
        self.site.start_gateway(&[443])
    }

    /// Requests that reached either backend.
    pub fn backend_hits(&self) -> usize {
        self.frontend.hits() + self.inventory.hits()
    }
}
