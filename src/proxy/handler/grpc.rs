//! gRPC requests (`content-type: application/grpc…`): their deadline
//! (`grpc-timeout`) and the gateway's own answers to them.
//!
//! A gRPC client reads its call's outcome from `grpc-status`, not from the
//! HTTP status: every answer the gateway gives itself (no route, no
//! healthy upstream, a timeout, a refused request) becomes, for a gRPC
//! request, HTTP 200 with `grpc-status` and `grpc-message` in the headers
//! and no body (a "trailers-only" answer), as Envoy's local replies do.
//! The code follows gRPC's HTTP-to-gRPC table (Envoy's
//! `httpToGrpcStatus`), except that a deadline that passed at the gateway
//! (504, 408) is DEADLINE_EXCEEDED, which is what the client asked to be
//! told. Answers from the backend pass as they are.
//!
//! It must never touch a backend's answer: only responses `respond::local`
//! made (marked with [`Local`]) are rewritten.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as HttpBody, Frame};

use super::Body;

/// Marks a response the gateway made itself (`respond::local`).
#[derive(Debug, Clone, Copy)]
pub(super) struct Local;

/// gRPC status codes the gateway gives.
pub(super) mod code {
    pub const DEADLINE_EXCEEDED: u8 = 4;
    pub const UNKNOWN: u8 = 2;
    pub const PERMISSION_DENIED: u8 = 7;
    pub const UNIMPLEMENTED: u8 = 12;
    pub const INTERNAL: u8 = 13;
    pub const UNAVAILABLE: u8 = 14;
    pub const UNAUTHENTICATED: u8 = 16;
}

/// A gRPC call, as its request headers describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Call {
    /// `grpc-timeout`, when given and well formed.
    pub timeout: Option<Duration>,
    /// What the client speaks, so that an answer is labelled as it expects.
    pub flavor: Flavor,
}

/// gRPC, or gRPC-Web (binary or base64 text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flavor {
    Grpc,
    Web,
    WebText,
}

impl Flavor {
    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Flavor::Grpc => "application/grpc",
            Flavor::Web => "application/grpc-web+proto",
            Flavor::WebText => "application/grpc-web-text+proto",
        })
    }
}

impl Call {
    /// `Some` when the request is a gRPC call (gRPC or gRPC-Web).
    pub fn of(headers: &HeaderMap) -> Option<Call> {
        let ct = headers.get(header::CONTENT_TYPE)?.as_bytes();
        let flavor = if ct.starts_with(b"application/grpc-web-text") {
            Flavor::WebText
        } else if ct.starts_with(b"application/grpc-web") {
            Flavor::Web
        } else if ct.starts_with(b"application/grpc") {
            Flavor::Grpc
        } else {
            return None;
        };
        Some(Call {
            timeout: headers
                .get("grpc-timeout")
                .and_then(|v| parse_timeout(v.as_bytes())),
            flavor,
        })
    }
}

/// gRPC's `grpc-timeout`: at most 8 digits and a unit (`H`ours,
/// `M`inutes, `S`econds, `m`illi-, `u` micro-, `n`anoseconds).
fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The gRPC code for a gateway answer of HTTP `status`.
pub(super) fn code_for(status: StatusCode) -> u8 {
    match status.as_u16() {
        400 => code::INTERNAL,
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        404 => code::UNIMPLEMENTED,
        429 | 502 | 503 => code::UNAVAILABLE,
        408 | 504 => code::DEADLINE_EXCEEDED,
        _ => code::UNKNOWN,
    }
}

/// `resp` as a gRPC client must get it. An answer the gateway made
/// ([`Local`]) becomes a trailers-only answer whose `grpc-message` is its
/// text; a backend's answer to a call with a `grpc-timeout` streams until
/// that deadline (counted from `arrived`) and no longer: then it ends with
/// DEADLINE_EXCEEDED in its trailers ([`Bounded`]).
pub(super) async fn answer(
    call: Option<Call>,
    arrived: Instant,
    resp: Response<Body>,
) -> Response<Body> {
    let Some(call) = call else {
        return resp;
    };
    if resp.extensions().get::<Local>().is_none() {
        return match call.timeout {
            Some(t) => resp.map(|b| Bounded::new(b, arrived + t).boxed()),
            None => resp,
        };
    }
    let (mut parts, body) = resp.into_parts();
    // A local answer's body is a short text, already in memory.
    let text = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let code = code_for(parts.status);
    parts.status = StatusCode::OK;
    let h = &mut parts.headers;
    h.remove(header::CONTENT_LENGTH);
    h.insert(header::CONTENT_TYPE, call.flavor.content_type());
    h.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(text.trim_ascii())) {
        h.insert("grpc-message", v);
    }
    let empty = Full::new(Bytes::new()).map_err(|n| match n {}).boxed();
    Response::from_parts(parts, empty)
}

/// A backend's response body that ends at the call's deadline: past it,
/// the backend's stream is dropped (its HTTP/2 stream reset) and the
/// client gets trailers with DEADLINE_EXCEEDED, as if the stream had
/// ended there.
struct Bounded {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// The deadline passed: the trailers were sent, or are next.
    expired: bool,
    done: bool,
}

impl Bounded {
    fn new(inner: Body, deadline: Instant) -> Bounded {
        Bounded {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline.into())),
            expired: false,
            done: false,
        }
    }
}

impl HttpBody for Bounded {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if !self.expired {
            if let Poll::Ready(f) = Pin::new(&mut self.inner).poll_frame(cx) {
                return Poll::Ready(f);
            }
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.expired = true;
        }
        self.done = true;
        // Dropping the backend's body resets its stream.
        self.inner = Empty::new().map_err(|n| match n {}).boxed();
        let mut trailers = HeaderMap::new();
        trailers.insert(
            "grpc-status",
            HeaderValue::from(u16::from(code::DEADLINE_EXCEEDED)),
        );
        trailers.insert(
            "grpc-message",
            HeaderValue::from_static("deadline exceeded"),
        );
        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done || (!self.expired && self.inner.is_end_stream())
    }
}

/// gRPC's `grpc-message` encoding: printable ASCII but `%` as is, every
/// other byte `%XX`.
fn percent_encode(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x20..=0x7e).contains(&c) && c != b'%' {
            s.push(char::from(c));
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_as_grpc_writes_them() {
        let t = |s: &str| parse_timeout(s.as_bytes());
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("2M"), Some(Duration::from_secs(120)));
        assert_eq!(t("3S"), Some(Duration::from_secs(3)));
        assert_eq!(t("250m"), Some(Duration::from_millis(250)));
        assert_eq!(t("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(t("5n"), Some(Duration::from_nanos(5)));
        for bad in ["", "S", "123456789S", "1s", "-1S", "1.5S", "1 S"] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn gateway_statuses_map_to_grpc_codes() {
        let c = |n: u16| code_for(StatusCode::from_u16(n).unwrap());
        assert_eq!(c(404), code::UNIMPLEMENTED);
        assert_eq!(c(503), code::UNAVAILABLE);
        assert_eq!(c(429), code::UNAVAILABLE);
        assert_eq!(c(504), code::DEADLINE_EXCEEDED);
        assert_eq!(c(403), code::PERMISSION_DENIED);
        assert_eq!(c(401), code::UNAUTHENTICATED);
        assert_eq!(c(400), code::INTERNAL);
        assert_eq!(c(421), code::UNKNOWN);
    }

    #[test]
    fn messages_are_percent_encoded() {
        assert_eq!(percent_encode(b"no route"), "no route");
        assert_eq!(percent_encode("100% é\n".as_bytes()), "100%25 %C3%A9%0A");
    }

    #[test]
    fn only_grpc_content_types_are_calls() {
        let mut h = HeaderMap::new();
        assert_eq!(Call::of(&h), None);
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(Call::of(&h), None);
        for (ct, flavor) in [
            ("application/grpc", Flavor::Grpc),
            ("application/grpc+proto", Flavor::Grpc),
            ("application/grpc-web", Flavor::Web),
            ("application/grpc-web+proto", Flavor::Web),
            ("application/grpc-web-text", Flavor::WebText),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            let call = Call {
                timeout: None,
                flavor,
            };
            assert_eq!(Call::of(&h), Some(call), "{ct}");
        }
        h.insert("grpc-timeout", HeaderValue::from_static("10m"));
        assert_eq!(
            Call::of(&h).unwrap().timeout,
            Some(Duration::from_millis(10))
        );
    }
}
