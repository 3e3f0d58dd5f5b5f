//! Retries: a request whose body is held whole (`body::read_whole`) sent
//! up to `1 + attempts` times, as the route's `retries` say. Each attempt
//! is bounded by `perTryTimeout` and all of them by the route's timeout
//! (the deadline of the first); each retry waits a jittered back-off
//! (Envoy's default: 25 ms doubling to at most 250 ms) and picks an
//! endpoint again, another one than those tried when the destination has
//! several. When the retries run out on a retriable failure the last
//! answer (or the gateway's for no answer) goes to the client with Envoy's
//! `URX` flag.
//!
//! It must never send a streamed body twice: it gets a body held whole,
//! or a gRPC call's streamed body with the copy `tee` kept of it, which a
//! retry sends only when the copy is whole (the body ended within 64 KiB
//! and without trailers); a route without `retries` makes one attempt
//! here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::super::transport::Answer;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};

use super::super::Shared;
use super::Body;
use super::body::ClientBody;
use super::facts::{Facts, Flag};
use super::forward::{self, Upstream};
use super::respond::local;
use crate::snapshot::routes::{NoAnswer, Outcome, RetryPolicy};

/// Envoy's default retry back-off: the base interval and the cap.
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_MAX: Duration = Duration::from_millis(250);
/// How many picks a retry makes to find an endpoint not yet tried (as
/// Istio's `host_selection_retry_max_attempts`).
const REPICKS: usize = 5;
/// How long a retry of a streamed gRPC body waits for the first attempt to
/// have sent the body's end (it often follows the backend's answer by a
/// frame).
const COPY_GRACE: Duration = Duration::from_secs(1);

/// The request as it goes upstream, without its body and endpoint: sent
/// again as it is by each attempt and by the mirrors.
pub(super) struct Head {
    pub method: Method,
    /// The client's HTTP version (the transport decides what goes out).
    pub version: http::Version,
    pub headers: HeaderMap,
    pub path_and_query: String,
}

impl Head {
    /// The request to `addr` with `body`.
    pub(super) fn request(&self, addr: SocketAddr, body: &Bytes) -> Option<Request<ClientBody>> {
        self.request_with(addr, ClientBody::replay(body.clone()))
    }

    fn request_with(&self, addr: SocketAddr, body: ClientBody) -> Option<Request<ClientBody>> {
        let mut r = Request::new(body);
        *r.method_mut() = self.method.clone();
        *r.uri_mut() = forward::upstream_uri(addr, &self.path_and_query)?;
        *r.version_mut() = self.version;
        *r.headers_mut() = self.headers.clone();
        Some(r)
    }
}

/// The body each attempt sends.
pub(super) enum Replay {
    /// Held whole before the first attempt.
    Whole(Bytes),
    /// A gRPC call's body, streamed to the first attempt while a copy is
    /// kept (`tee`): a retry sends the copy, once the body has ended whole.
    Copied(ClientBody, super::tee::Copied),
}

/// What one attempt came to.
enum Attempt {
    Answer(Box<Response<Answer>>),
    NoAnswer(NoAnswer),
    /// The route's deadline passed.
    Deadline,
}

/// Sends the request, retrying as the route says: the answer to give the
/// client (the backend's, or the gateway's for why there is none), with
/// the flags, the last endpoint and the upstream's time in `facts`.
pub(super) async fn send(
    head: &Head,
    body: Replay,
    shared: &Shared,
    up: &Upstream<'_>,
    facts: &mut Facts,
) -> Result<Response<Answer>, Response<Body>> {
    let (timeout, upstream_bound) = forward::deadline(up, shared);
    let start = Instant::now();
    let deadline = start + timeout;
    let policy = up.route.retries.as_ref();
    let attempts = policy.map_or(0, |p| p.attempts);
    let mut addr = up.addr;
    let mut tried = Vec::new();
    let mut retries = 0;
    let (mut held, mut first, mut copied) = match body {
        Replay::Whole(b) => (Some(b), None, None),
        Replay::Copied(b, rx) => (None, Some(b), Some(rx)),
    };
    // The retry in flight holds one of the cluster's `maxRetries`.
    let mut _retry_slot = None;
    loop {
        facts.upstream = Some(addr);
        let body = match (first.take(), &held) {
            (Some(b), _) => b,
            (None, Some(b)) => ClientBody::replay(b.clone()),
            (None, None) => return Err(local(StatusCode::BAD_REQUEST, "no body to send")),
        };
        let Some(req) = head.request_with(addr, body) else {
            return Err(local(StatusCode::BAD_REQUEST, "bad request target"));
        };
        let outcome = attempt(req, shared, up.dest, policy, deadline, addr).await;
        let mut retriable = policy.is_some_and(|p| match &outcome {
            Attempt::Answer(r) => p.retriable(Outcome::Answer(r.status(), r.headers())),
            Attempt::NoAnswer(why) => p.retriable(Outcome::NoAnswer(*why)),
            Attempt::Deadline => false,
        });
        if retriable && retries < attempts && held.is_none() {
            held = copy_of(copied.take(), deadline).await;
            // A streamed body that could not be kept whole is sent once.
            retriable = held.is_some();
        }
        if !retriable || retries >= attempts || Instant::now() >= deadline {
            facts.upstream_time = Some(start.elapsed());
            if retriable && retries >= attempts {
                facts.flags.set(Flag::UpstreamRetryLimitExceeded);
            }
            return match outcome {
                Attempt::Answer(r) => Ok(*r),
                Attempt::NoAnswer(why) => Err(no_answer(why, facts)),
                Attempt::Deadline => Err(forward::timed_out(upstream_bound, facts)),
            };
        }
        if let Some(limits) = up.dest.limits() {
            let Some(slot) = limits.retry() else {
                // Envoy's retry overflow: the answer so far goes out.
                tracing::debug!(upstream = %addr, "maxRetries in flight: not retried");
                facts.upstream_time = Some(start.elapsed());
                return match outcome {
                    Attempt::Answer(r) => Ok(*r),
                    Attempt::NoAnswer(why) => Err(no_answer(why, facts)),
                    Attempt::Deadline => Err(forward::timed_out(upstream_bound, facts)),
                };
            };
            _retry_slot = Some(slot);
        }
        retries += 1;
        tracing::debug!(retry = retries, upstream = %addr, "retrying upstream request");
        backoff(retries, deadline).await;
        tried.push(addr);
        if let Some(next) = repick(up.dest, &tried).await {
            addr = next;
        }
    }
}

/// The whole copy of a streamed body, once its first attempt has sent it
/// all; `None` when it grew too large, failed, or was not sent to its end
/// within [`COPY_GRACE`] (or the deadline): the client is still streaming
/// to a backend that has answered already, and a retry would have to wait
/// for a client that may be waiting for that answer.
async fn copy_of(copied: Option<super::tee::Copied>, deadline: Instant) -> Option<Bytes> {
    let rx = copied?;
    let until = deadline.min(Instant::now() + COPY_GRACE);
    match tokio::time::timeout_at(until.into(), rx).await {
        Ok(Ok(b)) => Some(b),
        _ => None,
    }
}

/// One attempt, bounded by the per-try timeout and the deadline.
async fn attempt(
    req: Request<ClientBody>,
    shared: &Shared,
    dest: &crate::upstream::Upstream,
    policy: Option<&RetryPolicy>,
    deadline: Instant,
    addr: SocketAddr,
) -> Attempt {
    let left = deadline.saturating_duration_since(Instant::now());
    let per_try = policy.and_then(|p| p.per_try_timeout).filter(|t| *t < left);
    let bound = per_try.unwrap_or(left);
    match tokio::time::timeout(bound, super::lease::send(shared, dest, addr, req)).await {
        Ok(Ok(r)) => Attempt::Answer(Box::new(r)),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, upstream = %addr, "upstream request failed");
            Attempt::NoAnswer(if e.is_connect() {
                NoAnswer::ConnectFailure
            } else if refused_stream(&e) {
                NoAnswer::RefusedStream
            } else {
                NoAnswer::Reset
            })
        }
        Err(_) => {
            super::lease::timed_out(dest, addr);
            if per_try.is_some() {
                Attempt::NoAnswer(NoAnswer::PerTryTimeout)
            } else {
                Attempt::Deadline
            }
        }
    }
}

/// An HTTP/2 backend's REFUSED_STREAM somewhere in the error's chain
/// (hyper shows the h2 reason in its error's text only).
fn refused_stream(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("refused stream") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The gateway's answer when the last attempt got none from the backend.
fn no_answer(why: NoAnswer, facts: &mut Facts) -> Response<Body> {
    match why {
        NoAnswer::ConnectFailure => forward::unreachable(true, facts),
        NoAnswer::Reset | NoAnswer::RefusedStream => forward::unreachable(false, facts),
        NoAnswer::PerTryTimeout => forward::timed_out(true, facts),
    }
}

/// Waits before retry `n` (from 1): a random time up to 25 ms, 50 ms,
/// 100 ms, ... at most 250 ms, and never past the deadline.
async fn backoff(n: u32, deadline: Instant) {
    let ceiling = backoff_ceiling(n);
    let mut b = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let ceiling_ms = u32::try_from(ceiling.as_millis()).unwrap_or(250);
    let wait = Duration::from_millis(u64::from(u32::from_le_bytes(b) % (ceiling_ms + 1)));
    let left = deadline.saturating_duration_since(Instant::now());
    tokio::time::sleep(wait.min(left)).await;
}

/// The longest wait before retry `n` (from 1).
fn backoff_ceiling(n: u32) -> Duration {
    BACKOFF_BASE
        .saturating_mul(1 << n.saturating_sub(1).min(8))
        .min(BACKOFF_MAX)
}

/// An endpoint for the next attempt: one not tried yet when the
/// destination has one within a few picks, else the last picked.
async fn repick(dest: &crate::upstream::Upstream, tried: &[SocketAddr]) -> Option<SocketAddr> {
    let mut last = None;
    for _ in 0..REPICKS {
        match dest.pick().await {
            Ok(a) if !tried.contains(&a) => return Some(a),
            Ok(a) => last = Some(a),
            Err(e) => tracing::debug!(error = %e, "no endpoint for a retry"),
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_250ms() {
        let ms: Vec<u128> = (1..=6).map(|n| backoff_ceiling(n).as_millis()).collect();
        assert_eq!(ms, [25, 50, 100, 200, 250, 250]);
        assert_eq!(backoff_ceiling(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn refused_stream_is_found_in_the_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (SendRequest)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let inner = std::io::Error::other(
            "stream error received: refused stream before processing any application logic",
        );
        assert!(refused_stream(&Outer(inner)));
        assert!(!refused_stream(&Outer(std::io::Error::other("reset"))));
    }
}
