//! HTTP/1.1 to a plain backend without a client task in between: the
//! request's own task writes the request, reads the answer and, through
//! the answer's body ([`DirectBody`]), drives the upstream connection until
//! the exchange ends; the connection then goes back to its backend's idle
//! list for the next request. No channel hop, no extra wake-up per
//! request (hyper-util's pooled client sends each request to a
//! connection task and back).
//!
//! Idle connections are kept per backend address (at most
//! `MAX_IDLE_PER_BACKEND`, the newest reused first) for the process's idle timeout;
//! one is polled once before it is reused, so a connection the backend
//! closed while idle is seen and dropped, and a request that could not be
//! written on a reused connection is sent again on a new one.
//!
//! It must not change what the backend sees: the same connector (counted,
//! no Nagle, the connect timeout), the request in origin form with the
//! Host the handler set, HTTP/1.1.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, Uri, Version};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::super::counted::{Counted, CountingConnector};
use super::super::handler::body::ClientBody;
use super::MAX_IDLE_PER_BACKEND;

type Io = Counted<TokioIo<tokio::net::TcpStream>>;
type Conn = Pin<Box<http1::Connection<Io, ClientBody>>>;

/// Why a request sent directly got no answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectError {
    #[error("upstream connect: {0}")]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Http(#[from] hyper::Error),
    #[error("bad upstream request target")]
    Target,
}

/// One upstream connection: its sender and its connection state.
struct Bound {
    send: http1::SendRequest<ClientBody>,
    conn: Conn,
}

struct Idle {
    bound: Bound,
    since: Instant,
}

/// The per-backend idle lists.
#[derive(Clone)]
pub struct Direct {
    inner: Arc<Inner>,
}

struct Inner {
    connector: CountingConnector,
    idle_timeout: Duration,
    idle: Mutex<HashMap<SocketAddr, VecDeque<Idle>>>,
}

impl Direct {
    pub fn new(connector: CountingConnector, idle_timeout: Duration) -> Direct {
        Direct {
            inner: Arc::new(Inner {
                connector,
                idle_timeout,
                idle: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Sends `req` (its URI names the endpoint `addr`) and returns the
    /// answer whose body drives the connection.
    pub async fn send(
        &self,
        addr: SocketAddr,
        mut req: Request<ClientBody>,
    ) -> Result<Response<DirectBody>, DirectError> {
        *req.version_mut() = Version::HTTP_11;
        let origin_form = match req.uri().path_and_query() {
            Some(pq) => Uri::from(pq.clone()),
            None => Uri::from_static("/"),
        };
        *req.uri_mut() = origin_form;
        let mut req = Some(req);
        loop {
            let (bound, reused) = match self.reuse(addr).await {
                Some(b) => (b, true),
                None => (self.connect(addr).await?, false),
            };
            let Some(r) = req.take() else {
                return Err(DirectError::Target);
            };
            match exchange(bound, r).await {
                Ok((resp, bound)) => {
                    let pool = (bound, self.inner.clone(), addr);
                    return Ok(resp.map(|body| DirectBody::new(body, pool)));
                }
                // Not written: a reused connection the backend closed
                // just now. Once more on a new connection.
                Err((e, back)) => match back {
                    Some(r) if reused => req = Some(r),
                    _ => return Err(e),
                },
            }
        }
    }

    /// The newest idle connection to `addr` that is still open.
    async fn reuse(&self, addr: SocketAddr) -> Option<Bound> {
        loop {
            let mut idle = self.inner.take(addr)?;
            let open = poll_fn(|cx| {
                Poll::Ready(
                    idle.bound.conn.as_mut().poll(cx).is_pending() && idle.bound.send.is_ready(),
                )
            })
            .await;
            if open {
                return Some(idle.bound);
            }
        }
    }

    async fn connect(&self, addr: SocketAddr) -> Result<Bound, DirectError> {
        let mut connector = self.inner.connector.clone();
        let uri: Uri = format!("http://{addr}")
            .parse()
            .map_err(|_| DirectError::Target)?;
        let io = tower_service::Service::call(&mut connector, uri)
            .await
            .map_err(|e| DirectError::Connect(e.into()))?;
        let (send, conn) = http1::handshake(io).await?;
        Ok(Bound {
            send,
            conn: Box::pin(conn),
        })
    }
}

impl Inner {
    fn take(&self, addr: SocketAddr) -> Option<Idle> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(&addr)?;
        loop {
            let i = list.pop_back()?;
            if i.since.elapsed() < self.idle_timeout {
                return Some(i);
            }
        }
    }

    fn put(&self, addr: SocketAddr, bound: Bound) {
        let Ok(mut idle) = self.idle.lock() else {
            return;
        };
        let list = idle.entry(addr).or_default();
        // The oldest goes first when full or past its time.
        while list.len() >= MAX_IDLE_PER_BACKEND
            || list
                .front()
                .is_some_and(|i| i.since.elapsed() >= self.idle_timeout)
        {
            list.pop_front();
        }
        list.push_back(Idle {
            bound,
            since: Instant::now(),
        });
    }
}

/// A failed exchange: the error, and the request if it was never written.
type Failed = (DirectError, Option<Request<ClientBody>>);

/// Writes `req` and reads the answer's head, driving the connection from
/// this task.
async fn exchange(
    mut bound: Bound,
    req: Request<ClientBody>,
) -> Result<(Response<Incoming>, Option<Bound>), Failed> {
    let mut answer = std::pin::pin!(bound.send.try_send_request(req));
    let mut open = true;
    let head = poll_fn(|cx| {
        if open && bound.conn.as_mut().poll(cx).is_ready() {
            open = false;
        }
        answer.as_mut().poll(cx)
    })
    .await;
    match head {
        Ok(resp) => Ok((resp, open.then_some(bound))),
        Err(mut e) => {
            let back = e.take_message();
            Err((DirectError::Http(e.into_error()), back))
        }
    }
}

/// An answer's body from a direct exchange: reading it drives the
/// connection; once it has ended and the connection is idle again, the
/// connection goes back to its backend's idle list.
pub struct DirectBody {
    body: Incoming,
    ended: bool,
    /// The connection, while it is open, and where it goes back to.
    home: Option<(Bound, Arc<Inner>, SocketAddr)>,
}

impl DirectBody {
    fn new(body: Incoming, home: (Option<Bound>, Arc<Inner>, SocketAddr)) -> DirectBody {
        let (bound, inner, addr) = home;
        DirectBody {
            body,
            ended: false,
            home: bound.map(|b| (b, inner, addr)),
        }
    }

    /// Drives the connection; forgets it if it closed.
    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some((bound, _, _)) = &mut self.home
            && bound.conn.as_mut().poll(cx).is_ready()
        {
            self.home = None;
        }
    }
}

impl hyper::body::Body for DirectBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let mut frame = Pin::new(&mut this.body).poll_frame(cx);
        if frame.is_pending() && this.home.is_some() {
            this.drive(cx);
            frame = Pin::new(&mut this.body).poll_frame(cx);
        }
        if let Poll::Ready(None) = frame {
            this.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for DirectBody {
    fn drop(&mut self) {
        if !(self.ended || hyper::body::Body::is_end_stream(&self.body)) {
            // Cut off mid-body: the connection closes with it.
            return;
        }
        // Let the connection see the exchange's end; reused only if it is
        // idle and open now.
        let mut cx = Context::from_waker(Waker::noop());
        self.drive(&mut cx);
        if let Some((bound, inner, addr)) = self.home.take()
            && bound.send.is_ready()
        {
            // The noop waker's interest is replaced when the next request
            // polls the connection (`reuse`), before anything is sent.
            inner.put(addr, bound);
        }
    }
}
