//! Leases: what counts a request against its cluster and endpoint while
//! it is in flight. An attempt's [`send`] counts it active on the endpoint
//! it goes to (least request reads that count), reports what came of it
//! to outlier detection when it ends, and closes its connection once it
//! served `maxRequestsPerConnection`. A request's circuit-breaker
//! admission is held by its response body ([`hold`]) until the body has
//! gone to the client, as Envoy's cluster counts a request until its
//! stream ends.
//!
//! It must never leave a count raised: every count is given back in a
//! `Drop`, whether the request ends, fails or is abandoned.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, SizeHint};
use hyper_util::client::legacy::connect::{HttpInfo, capture_connection};

use super::super::Shared;
use super::super::transport::Answer;
use super::Body;
use super::body::ClientBody;
use crate::upstream::Upstream;
use crate::upstream::limits::Admission;
use crate::upstream::outlier::{EndpointState, Outcome};

/// One attempt on one endpoint: active while it lives; its outcome, if
/// one was seen, goes to outlier detection when it is dropped.
struct Lease<'a> {
    dest: &'a Upstream,
    endpoint: Option<&'a EndpointState>,
    outcome: Option<Outcome>,
}

impl<'a> Lease<'a> {
    fn begin(dest: &'a Upstream, addr: SocketAddr) -> Lease<'a> {
        let endpoint = dest.endpoint_of(addr).map(AsRef::as_ref);
        if let Some(e) = endpoint {
            e.active.fetch_add(1, Ordering::Relaxed);
        }
        Lease {
            dest,
            endpoint,
            outcome: None,
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(e) = self.endpoint else {
            return;
        };
        e.active.fetch_sub(1, Ordering::Relaxed);
        if let Some(o) = self.outcome {
            self.dest.report(e, o);
        }
    }
}

/// Sends `req` to `addr` of `dest` (the primary request or a retry) as
/// one leased attempt.
pub(super) async fn send(
    shared: &Shared,
    dest: &Upstream,
    addr: SocketAddr,
    mut req: Request<ClientBody>,
) -> Result<Response<Answer>, super::super::transport::Error> {
    let mut lease = Lease::begin(dest, addr);
    let per_connection = dest.limits().filter(|l| l.limits_connections());
    if per_connection.is_some_and(|l| l.one_request_per_connection())
        && !super::super::transport::goes_h2c(dest, req.version())
    {
        // Each connection serves one request: both ends close it after
        // (HTTP/1 only: HTTP/2 has no such header; its poisoned
        // connection is not used again).
        req.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    let captured = per_connection.map(|_| capture_connection(&mut req));
    let answer = super::super::transport::send(shared, dest, addr, req).await;
    lease.outcome = Some(match &answer {
        Ok(r) => Outcome::Status(r.status().as_u16()),
        Err(_) => Outcome::NoAnswer,
    });
    if let (Some(limits), Some(captured)) = (per_connection, captured)
        && let Some(conn) = captured.connection_metadata().as_ref()
    {
        let mut ext = http::Extensions::new();
        conn.get_extras(&mut ext);
        let local = ext.get::<HttpInfo>().map(HttpInfo::local_addr);
        if limits.connection_spent(local) {
            // Not reused once this exchange ends: the pool drops it.
            conn.poison();
        }
    }
    answer
}

/// An attempt on `addr` of `dest` cut off by a timeout: for outlier
/// detection, no answer (Envoy counts a timeout as a gateway error).
pub(super) fn timed_out(dest: &Upstream, addr: SocketAddr) {
    if let Some(e) = dest.endpoint_of(addr) {
        dest.report(e, Outcome::NoAnswer);
    }
}

/// `resp` with `admission` held until its body has been sent (or
/// dropped).
pub(super) fn hold(resp: Response<Body>, admission: Admission) -> Response<Body> {
    resp.map(|inner| {
        Held {
            inner,
            _admission: admission,
        }
        .boxed()
    })
}

/// A response body that holds its request's admission.
struct Held {
    inner: Body,
    _admission: Admission,
}

impl hyper::body::Body for Held {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
