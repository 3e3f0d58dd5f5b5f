//! Fault: a route's `fault` as Envoy's fault filter applies it, decided
//! per request: first the delay (held before the upstream is picked, `DI`),
//! then the abort (answered here, `FI`), each on its own draw.
//!
//! It must never reach a backend for an aborted request, and costs a
//! request nothing when its route has no fault.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};

use super::Body;
use super::facts::{Facts, Flag};
use super::respond::local;
use crate::proxy::chance;
use crate::snapshot::routes::{AbortWith, Fault};

/// Envoy's body for an aborted request.
const ABORT_BODY: &str = "fault filter abort";

/// Applies `f` to one request: waits out the delay if it is drawn, and
/// returns the abort's answer if that is drawn. A delay is a wait like
/// any other: one that would outlast `whole_request` (the whole-request
/// deadline) ends there, with the deadline's 408.
pub(super) async fn inject(
    f: &Fault,
    whole_request: Duration,
    facts: &mut Facts,
) -> Option<Response<Body>> {
    if let Some(d) = &f.delay
        && d.share.hit(chance::per_million())
    {
        facts.flags.set(Flag::DelayInjected);
        if d.duration >= whole_request {
            tokio::time::sleep(whole_request).await;
            facts.flags.set(Flag::StreamIdleTimeout);
            return Some(local(StatusCode::REQUEST_TIMEOUT, "request timeout"));
        }
        tokio::time::sleep(d.duration).await;
    }
    let a = f.abort.as_ref()?;
    if !a.share.hit(chance::per_million()) {
        return None;
    }
    facts.flags.set(Flag::FaultInjected);
    Some(answer(a.with))
}

/// The answer of an aborted request: the status with Envoy's text, or for
/// gRPC a trailers-only 200 carrying the `grpc-status`.
fn answer(with: AbortWith) -> Response<Body> {
    match with {
        AbortWith::Http(status) => local(status, ABORT_BODY),
        AbortWith::Grpc(code) => {
            let mut r = Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed());
            *r.status_mut() = StatusCode::OK;
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            h.insert("grpc-status", HeaderValue::from(u16::from(code)));
            h.insert("grpc-message", HeaderValue::from_static(ABORT_BODY));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::routes::{Abort, Delay, Share};
    use std::time::Instant;

    const LONG: Duration = Duration::from_secs(300);

    #[tokio::test]
    async fn all_and_nothing() {
        let always = Fault {
            delay: Some(Delay {
                duration: Duration::from_millis(20),
                share: Share::ALL,
            }),
            abort: Some(Abort {
                with: AbortWith::Http(StatusCode::SERVICE_UNAVAILABLE),
                share: Share::ALL,
            }),
        };
        let mut facts = Facts::new(Instant::now());
        let started = Instant::now();
        let r = inject(&always, LONG, &mut facts).await.unwrap();
        assert!(started.elapsed() >= Duration::from_millis(20));
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(facts.flags.to_string(), "DI,FI");
        let never = Fault {
            delay: always.delay.map(|d| Delay {
                share: Share::NONE,
                ..d
            }),
            abort: Some(Abort {
                with: AbortWith::Grpc(14),
                share: Share::NONE,
            }),
        };
        let mut facts = Facts::new(Instant::now());
        assert!(inject(&never, LONG, &mut facts).await.is_none());
        assert!(facts.flags.is_empty());
        // A delay past the whole-request deadline ends at the deadline.
        let forever = Fault {
            delay: Some(Delay {
                duration: Duration::from_secs(3600),
                share: Share::ALL,
            }),
            abort: None,
        };
        let mut facts = Facts::new(Instant::now());
        let started = Instant::now();
        let r = inject(&forever, Duration::from_millis(50), &mut facts)
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(facts.flags.to_string(), "SI,DI");
        let grpc = answer(AbortWith::Grpc(14));
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "14");
    }
}
