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
use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

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
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Out {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
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
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------- backends

/// One request as a backend received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// Names lower-cased, in arrival order, repeated names kept.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of header `name`; panics if it is absent or repeated.
    #[track_caller]
    pub fn one(&self, name: &str) -> &str {
        let all = self.all(name);
        assert_eq!(all.len(), 1, "header {name}: {all:?} in {:?}", self.headers);
        all[0]
    }
}

struct BackendState {
    body: String,
    delay: Duration,
    hits: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

/// An HTTP/1.1 server on `127.0.0.1:0` in its own runtime, answering every
/// request with one body (after `delay`), counting and recording requests.
pub struct Backend {
    pub addr: SocketAddr,
    state: Arc<BackendState>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Backend {
    pub fn start(body: &str) -> Backend {
        Backend::slow(body, Duration::ZERO)
    }

    pub fn slow(body: &str, delay: Duration) -> Backend {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(BackendState {
            body: format!("{body}\n"),
            delay,
            hits: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let st = st.clone();
                        async move {
                            st.hits.fetch_add(1, Ordering::SeqCst);
                            st.seen.lock().unwrap().push(Seen {
                                method: req.method().to_string(),
                                path: req.uri().to_string(),
                                headers: req
                                    .headers()
                                    .iter()
                                    .map(|(n, v)| {
                                        (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                                    })
                                    .collect(),
                            });
                            if !st.delay.is_zero() {
                                tokio::time::sleep(st.delay).await;
                            }
                            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(st.body.clone()))))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend {
            addr,
            state,
            runtime: Some(runtime),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// How many requests reached this backend.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    #[track_caller]
    pub fn last(&self) -> Seen {
        self.requests().pop().expect("the backend received no request")
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

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

    /// The walkthrough's `kubectl create -n istio-system secret generic
    /// SERVICE-credential …` with `gatehouse` in place of `kubectl`.
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
        let mut c = self.command();
        c.args(["run", "--admin", "127.0.0.1:0"]);
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
        let deadline = Instant::now() + START_TIMEOUT;
        while gw.admin.is_none() || ports.iter().any(|p| !gw.listeners.contains_key(p)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match gw.lines.recv_timeout(left) {
                Ok(line) => gw.note(&line),
                Err(e) => panic!(
                    "gatehouse run did not print its listening lines within {START_TIMEOUT:?} ({e}); stderr:\n{}",
                    gw.log()
                ),
            }
        }
        gw
    }

    /// `openssl s_client -connect 127.0.0.1:PORT ARGS` with empty stdin.
    pub fn s_client(&self, port: u16, args: &[&str]) -> Out {
        let mut c = Command::new("openssl");
        c.current_dir(self.dir.path())
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(args);
        run_bounded(c, COMMAND_TIMEOUT)
    }

    /// The walkthrough's curl command for `host` against `port`:
    /// `curl -HHost:HOST --resolve HOST:PORT:127.0.0.1 --cacert … --cert …
    /// --key … https://HOST:PORT/`.
    pub fn walkthrough_curl(&self, host: &str, port: u16) -> Curl<'_> {
        let pki = self.pki(host);
        Curl {
            site: self,
            host_header: Some(host.to_owned()),
            resolve: Some((host.to_owned(), port)),
            cacert: Some(pki.ca_chain.clone()),
            client: Some((pki.client_cert.clone(), pki.client_key.clone())),
            url: format!("https://{host}:{port}/"),
            extra: Vec::new(),
        }
    }

    /// A bare `curl URL`.
    pub fn curl(&self, url: &str) -> Curl<'_> {
        Curl {
            site: self,
            host_header: None,
            resolve: None,
            cacert: None,
            client: None,
            url: url.to_owned(),
            extra: Vec::new(),
        }
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

// ---------------------------------------------------------------- curl

/// A `curl` command line being built.
pub struct Curl<'a> {
    site: &'a Site,
    host_header: Option<String>,
    resolve: Option<(String, u16)>,
    cacert: Option<PathBuf>,
    client: Option<(PathBuf, PathBuf)>,
    url: String,
    extra: Vec<String>,
}

/// What curl did: its exit code, the body, and its `%{json}` write-out.
#[derive(Debug)]
pub struct CurlOut {
    pub code: Option<i32>,
    pub body: String,
    /// `%{http_code}`: 0 when no HTTP response arrived (curl prints `000`).
    pub status: u16,
    /// `%{http_version}`: `1.1`, `2`, or `0`.
    pub http_version: String,
    pub redirect_url: Option<String>,
    pub stderr: String,
}

impl Curl<'_> {
    /// Replaces the path of the URL (`/api`, `/x?y=1`).
    pub fn path(mut self, path: &str) -> Self {
        let scheme_end = self.url.find("://").map_or(0, |i| i + 3);
        let path_start = self.url[scheme_end..]
            .find('/')
            .map_or(self.url.len(), |i| scheme_end + i);
        self.url.truncate(path_start);
        self.url.push_str(path);
        self
    }

    /// `-HHost:HOST` in place of the current one.
    pub fn host_header(mut self, host: &str) -> Self {
        self.host_header = Some(host.to_owned());
        self
    }

    pub fn resolve(mut self, host: &str, port: u16) -> Self {
        self.resolve = Some((host.to_owned(), port));
        self
    }

    pub fn cacert(mut self, path: impl Into<PathBuf>) -> Self {
        self.cacert = Some(path.into());
        self
    }

    /// `--cert CERT --key KEY` in place of the current pair.
    pub fn client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client = Some((cert.into(), key.into()));
        self
    }

    /// Drops `--cert` and `--key`.
    pub fn no_client_cert(mut self) -> Self {
        self.client = None;
        self
    }

    /// Adds `-H 'NAME: VALUE'`.
    pub fn header(mut self, header: &str) -> Self {
        self.extra.push("-H".into());
        self.extra.push(header.to_owned());
        self
    }

    pub fn http2(self) -> Self {
        self.arg("--http2")
    }

    pub fn http1_1(self) -> Self {
        self.arg("--http1.1")
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.extra.push(arg.to_owned());
        self
    }

    pub fn run(self) -> CurlOut {
        let mut c = Command::new("curl");
        c.current_dir(self.site.dir.path())
            .env("HOME", self.site.dir.path())
            .env_remove("SSL_CERT_FILE")
            .env_remove("CURL_CA_BUNDLE")
            .args(["-sS", "--max-time", "10", "-w", "\\n%{json}"]);
        if let Some(h) = &self.host_header {
            c.arg(format!("-HHost:{h}"));
        }
        if let Some((host, port)) = &self.resolve {
            c.arg("--resolve").arg(format!("{host}:{port}:127.0.0.1"));
        }
        if let Some(ca) = &self.cacert {
            c.arg("--cacert").arg(ca);
        }
        if let Some((cert, key)) = &self.client {
            c.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        c.args(&self.extra).arg(&self.url);
        let out = run_bounded(c, COMMAND_TIMEOUT);
        let (body, json) = out
            .stdout
            .rsplit_once('\n')
            .unwrap_or_else(|| panic!("curl printed no write-out: {out:?}"));
        let w: serde_json::Value =
            serde_json::from_str(json).unwrap_or_else(|e| panic!("curl write-out {json:?}: {e}"));
        CurlOut {
            code: out.code,
            body: body.to_owned(),
            status: u16::try_from(w["http_code"].as_u64().unwrap_or(0)).unwrap(),
            http_version: w["http_version"].as_str().unwrap_or("").to_owned(),
            redirect_url: w["redirect_url"].as_str().map(str::to_owned),
            stderr: out.stderr,
        }
    }
}

impl CurlOut {
    /// Exit 0, status 200, and exactly `body` (plus the backend's newline).
    #[track_caller]
    pub fn assert_body(&self, body: &str) {
        assert_eq!(
            (self.code, self.status, self.body.as_str()),
            (Some(0), 200, format!("{body}\n").as_str()),
            "{self:?}"
        );
    }

    /// A status with curl exiting 0.
    #[track_caller]
    pub fn assert_status(&self, status: u16) {
        assert_eq!((self.code, self.status), (Some(0), status), "{self:?}");
    }

    /// The TLS handshake was refused: curl failed and no HTTP status came back.
    #[track_caller]
    pub fn assert_refused(&self) {
        assert!(
            self.code.is_some_and(|c| c != 0) && self.status == 0 && self.body.is_empty(),
            "expected the TLS handshake to be refused (curl fails, %{{http_code}} 000), got {self:?}"
        );
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
