//! SIGTERM and SIGINT drain `gatehouse run`. With keep-alive mTLS clients
//! (HTTP/1.1 and HTTP/2) each holding a request that a slow backend has not
//! answered yet, SIGTERM turns `/ready` to 503 while those requests are
//! still in flight, refuses new connections, answers every in-flight
//! request (0 failed; HTTP/1.1 answers carry `connection: close`), closes
//! every connection (HTTP/2 by GOAWAY) and exits 0 well within
//! `--drain-timeout`. A drain whose requests outlive `--drain-timeout`
//! cuts them and exits 0 in time, saying how many it cut.
#![allow(clippy::unwrap_used)]

use crate::support;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use support::{
    Backend, FRONTEND, FRONTEND_BODY, GATEWAY_YAML, INVENTORY, INVENTORY_BODY, Site,
    VIRTUAL_SERVICES_YAML, poll,
};
use tokio::task::JoinHandle;

/// How long the backend holds every request: the window in which the
/// signal arrives and `/ready` and new connections are checked.
const BACKEND_DELAY: Duration = Duration::from_secs(3);
const CLIENTS_PER_PROTOCOL: usize = 4;

/// The walkthrough with a frontend backend that answers after `delay`.
fn site_with_slow_frontend(delay: Duration) -> (Site, Backend, Backend) {
    let site = Site::new();
    for host in [FRONTEND, INVENTORY] {
        site.pki_init(host);
        site.create_walkthrough_secret(host);
    }
    site.apply("foocorp/gateway.yaml", GATEWAY_YAML);
    site.apply("foocorp/virtualservices.yaml", VIRTUAL_SERVICES_YAML);
    let frontend = Backend::slow(FRONTEND_BODY, delay);
    let inventory = Backend::start(INVENTORY_BODY);
    site.apply_service_entries(frontend.port(), inventory.port());
    (site, frontend, inventory)
}

/// `gatehouse run` as a child whose signals and exit status this test
/// needs (the shared harness keeps its child to itself).
struct Run {
    child: Child,
    admin: SocketAddr,
    listener: SocketAddr,
    log: PathBuf,
}

impl Run {
    fn start(site: &Site, drain_timeout: &str) -> Run {
        let log = site.path("run.log");
        let mut c = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
        c.current_dir(site.dir.path())
            .arg("--store")
            .arg(format!("dir:{}", site.path("store").display()))
            .args([
                "run",
                "--admin",
                "127.0.0.1:0",
                "--listen",
                "443=127.0.0.1:0",
            ])
            .args(["--drain-timeout", drain_timeout]);
        for (k, _) in std::env::vars() {
            if k.starts_with("GATEHOUSE_") || k == "RUST_LOG" {
                c.env_remove(k);
            }
        }
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (mut admin, mut listener) = (None, None);
        let deadline = Instant::now() + support::START_TIMEOUT;
        while admin.is_none() || listener.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|e| {
                let _ = child.kill();
                panic!(
                    "gatehouse run did not start ({e}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
            if let Some(a) = line.strip_prefix("admin on ") {
                admin = a.parse().ok();
            } else if let Some(rest) = line.strip_prefix("listening on ") {
                listener = rest.split_whitespace().next().and_then(|a| a.parse().ok());
            }
        }
        Run {
            child,
            admin: admin.unwrap(),
            listener: listener.unwrap(),
            log,
        }
    }

    /// Sends a signal with the real `kill`.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }

    /// The exit status, if the process ends within `within`.
    fn wait(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The frontend's mTLS client config, offering `alpn`.
fn client_config(site: &Site, alpn: &[u8]) -> Arc<ClientConfig> {
    let pki = site.pki(FRONTEND);
    let read = |p: &PathBuf| std::fs::read(site.path(p)).unwrap();
    gatehouse::tls::client::mtls_config(
        &read(&pki.ca_chain),
        Some((&read(&pki.client_cert), &read(&pki.client_key))),
        &[alpn],
    )
    .unwrap()
}

/// What one keep-alive client saw of its second request (the one in flight
/// when the signal came) and of its connection afterwards.
#[derive(Debug)]
struct Seen {
    http2: bool,
    status: u16,
    body: String,
    connection_header: Option<String>,
    /// The server ended the connection after the answer.
    closed_by_server: bool,
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;
type Sender2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

enum Conn {
    H1(Sender),
    H2(Sender2),
}

/// Opens an mTLS connection with HTTP/1.1 or HTTP/2; the handle is the
/// connection's task, which ends when the server closes it.
async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    http2: bool,
) -> Result<(Conn, JoinHandle<()>), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(FRONTEND.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let io = TokioIo::new(tls);
    if http2 {
        let (sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((Conn::H2(sender), task))
    } else {
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("h1 handshake: {e}"))?;
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok((Conn::H1(sender), task))
    }
}

/// One GET /: status, body and the `connection` header.
async fn get(conn: &mut Conn, http2: bool) -> Result<(u16, String, Option<String>), String> {
    let mut req = hyper::Request::get(format!("https://{FRONTEND}/"));
    if !http2 {
        req = req.header("host", FRONTEND);
    }
    let req = req.body(Empty::<Bytes>::new()).unwrap();
    let resp = match conn {
        Conn::H1(s) => {
            s.ready().await.map_err(|e| format!("not ready: {e}"))?;
            s.send_request(req).await
        }
        Conn::H2(s) => {
            s.ready().await.map_err(|e| format!("not ready: {e}"))?;
            s.send_request(req).await
        }
    }
    .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let connection = resp
        .headers()
        .get("connection")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((
        status,
        String::from_utf8_lossy(&body).into_owned(),
        connection,
    ))
}

/// A keep-alive client: one request to warm the connection, then a second
/// one, which the test signals the gateway under.
async fn keep_alive_client(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    http2: bool,
) -> Result<Seen, String> {
    let (mut conn, task) = connect(addr, config, http2).await?;
    let (first, _, _) = get(&mut conn, http2).await?;
    if first != 200 {
        return Err(format!("warm-up request: {first}"));
    }
    let (status, body, connection_header) = get(&mut conn, http2).await?;
    let closed_by_server = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .is_ok();
    Ok(Seen {
        http2,
        status,
        body,
        connection_header,
        closed_by_server,
    })
}

fn ready(site: &Site, admin: SocketAddr) -> support::CurlOut {
    site.curl(&format!("http://{admin}/ready")).run()
}

#[test]
fn sigterm_answers_every_request_in_flight_then_exits_0() {
    let (site, frontend, _inventory) = site_with_slow_frontend(BACKEND_DELAY);
    let mut gw = Run::start(&site, "15s");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut clients = Vec::new();
    for http2 in [false, true] {
        let config = client_config(&site, if http2 { b"h2" } else { b"http/1.1" });
        for _ in 0..CLIENTS_PER_PROTOCOL {
            clients.push(rt.spawn(keep_alive_client(gw.listener, config.clone(), http2)));
        }
    }
    // Every client's second request has reached the backend: all are in
    // flight, on keep-alive connections.
    let n = 2 * CLIENTS_PER_PROTOCOL;
    poll(
        "every second request in flight",
        Duration::from_secs(30),
        || (frontend.hits() == 2 * n).then_some(()),
    );
    assert_eq!(ready(&site, gw.admin).status, 200);
    let signalled = Instant::now();
    gw.signal("TERM");

    let not_ready = poll("/ready to say draining", Duration::from_secs(5), || {
        let r = ready(&site, gw.admin);
        (r.status == 503).then_some(r)
    });
    assert_eq!(
        not_ready.body.trim_end(),
        "not ready: draining (shutting down)"
    );
    poll(
        "new connections to be refused",
        Duration::from_secs(5),
        || {
            TcpStream::connect_timeout(&gw.listener, Duration::from_secs(1))
                .is_err()
                .then_some(())
        },
    );
    assert!(
        clients.iter().all(|c| !c.is_finished()),
        "/ready turned 503 and the listener closed while the requests were still in flight"
    );

    let seen: Vec<Result<Seen, String>> = clients
        .into_iter()
        .map(|c| rt.block_on(c).unwrap())
        .collect();
    assert_every_answer_complete(&seen, &gw);
    let status = gw
        .wait(Duration::from_secs(15))
        .expect("exits within --drain-timeout");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", gw.log());
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert_drain_logged(&gw.log(), n);
    println!("drain: {n} in-flight requests answered, exit 0 after {took:?}");
}

/// Every in-flight request got the backend's answer, and the server closed
/// its connection (HTTP/1.1 with `connection: close`).
fn assert_every_answer_complete(seen: &[Result<Seen, String>], gw: &Run) {
    let failed: Vec<&String> = seen.iter().filter_map(|s| s.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "requests in flight failed: {failed:?}\n{}",
        gw.log()
    );
    for s in seen.iter().flatten() {
        assert_eq!(
            (s.status, s.body.as_str()),
            (200, format!("{FRONTEND_BODY}\n").as_str()),
            "{s:?}"
        );
        assert!(
            s.closed_by_server,
            "the connection stayed open after the drain: {s:?}"
        );
        if !s.http2 {
            assert_eq!(s.connection_header.as_deref(), Some("close"), "{s:?}");
        }
    }
}

/// The drain's start line names the signal and the connections; its end
/// line says every connection closed.
fn assert_drain_logged(log: &str, n: usize) {
    let start = log
        .lines()
        .find(|l| l.contains("drain started"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        start.contains(&format!("connections={n}")) && start.contains("SIGTERM"),
        "{start}"
    );
    let end = log
        .lines()
        .find(|l| l.contains("drain finished"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(end.contains("every connection closed"), "{end}");
}

#[test]
fn a_drain_that_outlives_drain_timeout_cuts_what_is_left_and_exits_0_in_time() {
    let (site, frontend, _inventory) = site_with_slow_frontend(Duration::from_secs(60));
    let mut gw = Run::start(&site, "1s");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let config = client_config(&site, b"http/1.1");
    let addr = gw.listener;
    let client = rt.spawn(async move {
        let (mut conn, _task) = connect(addr, config, false).await?;
        get(&mut conn, false).await
    });
    poll("the request in flight", Duration::from_secs(10), || {
        (frontend.hits() == 1).then_some(())
    });
    let signalled = Instant::now();
    gw.signal("INT");
    let status = gw
        .wait(Duration::from_secs(10))
        .expect("exits after --drain-timeout");
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(0), "{}", gw.log());
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "exited {took:?} after SIGINT with --drain-timeout 1s"
    );
    let answer = rt.block_on(client).unwrap();
    assert!(answer.is_err(), "the cut request got an answer: {answer:?}");
    let log = gw.log();
    let end = log
        .lines()
        .find(|l| l.contains("drain timed out"))
        .unwrap_or_else(|| panic!("no drain end line:\n{log}"));
    assert!(
        end.contains("cut=1") && end.contains("connections=1"),
        "{end}"
    );
}
