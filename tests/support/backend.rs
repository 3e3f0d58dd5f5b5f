//! In-process HTTP/1.1 backends that count and record what reaches them,
//! and can fail their first requests (a status, a reset, a delay).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

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

/// How a backend fails its first requests ([`Backend::failing`]).
#[derive(Debug, Clone, Copy)]
pub enum Failing {
    /// Answers with this status (and a short body).
    Status(u16),
    /// Closes the connection without an answer.
    Reset,
    /// Answers as usual after this long.
    Delay(Duration),
    /// Answers 200 with this `grpc-status` in the headers and no body (a
    /// gRPC trailers-only answer as an HTTP/1.1 backend can give it).
    Grpc(u32),
}

struct BackendState {
    body: String,
    delay: Duration,
    /// Requests still to fail, and how.
    fail_left: AtomicUsize,
    failure: Failing,
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
        Backend::with(body, delay, 0, Failing::Reset)
    }

    /// A backend whose first `n` requests fail as `how` says; it answers
    /// the rest as [`Backend::start`] does.
    pub fn failing(body: &str, n: usize, how: Failing) -> Backend {
        Backend::with(body, Duration::ZERO, n, how)
    }

    fn with(body: &str, delay: Duration, fail_first: usize, failure: Failing) -> Backend {
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
            fail_left: AtomicUsize::new(fail_first),
            failure,
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
                        answer(st.clone(), req)
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
        self.requests()
            .pop()
            .expect("the backend received no request")
    }
}

/// One request: recorded, then answered (or failed, while the backend
/// still has failures to give).
async fn answer(
    st: Arc<BackendState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    st.hits.fetch_add(1, Ordering::SeqCst);
    st.seen.lock().unwrap().push(Seen {
        method: req.method().to_string(),
        path: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
    });
    let failing = st
        .fail_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let mut delay = st.delay;
    if failing {
        match st.failure {
            Failing::Status(code) => {
                let mut r = Response::new(Full::new(Bytes::from(format!("failing with {code}\n"))));
                *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap();
                return Ok(r);
            }
            // hyper closes the connection of a service that fails.
            Failing::Reset => return Err(std::io::Error::other("reset on purpose")),
            Failing::Delay(d) => delay = d,
            Failing::Grpc(status) => {
                let mut r = Response::new(Full::new(Bytes::new()));
                r.headers_mut()
                    .insert("grpc-status", status.to_string().parse().unwrap());
                return Ok(r);
            }
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Ok(Response::new(Full::new(Bytes::from(st.body.clone()))))
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
