//! Mirroring: a copy of a request sent to each of the route's mirrors
//! (`mirror`, `mirrors`), for the share of requests each one asks for,
//! fire-and-forget. The copy carries the request's final headers with
//! `Host` suffixed with `-shadow` (before the port, as Envoy does); its
//! answer is read and thrown away; its failures are logged at debug.
//!
//! A copy has the primary's deadline (the route's timeout, else
//! `--upstream-response-timeout`).
//!
//! It must never delay or change the primary request: copies run on tasks
//! of their own, and only requests whose body was held whole are copied.
//! At most [`MAX_IN_FLIGHT`] copies are in flight in the process; past
//! that a copy is dropped, never queued, so a slow mirror cannot pile up
//! tasks or memory.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::HeaderValue;
use http::header::HOST;
use http_body_util::BodyExt;

use super::super::Shared;
use super::retry::Head;
use crate::snapshot::routes::Route;

/// The most mirrored requests in flight in the process at once.
pub const MAX_IN_FLIGHT: usize = 256;

/// Mirrored requests in flight now.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// A seat among the [`MAX_IN_FLIGHT`], given back when dropped.
struct Seat;

impl Seat {
    fn take() -> Option<Seat> {
        let before = IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        if before >= MAX_IN_FLIGHT {
            IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        Some(Seat)
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts a copy of the request for each mirror whose share this request
/// falls in. Returns at once.
pub(super) fn copy(route: &Route, head: &Head, body: &Bytes, shared: &Shared) {
    if route.mirrors.is_empty() {
        return;
    }
    let Some(shadow_host) = head.headers.get(HOST).and_then(shadow) else {
        return;
    };
    // A copy has the primary's deadline.
    let (timeout, _) = super::forward::upstream_deadline(route, shared);
    for m in &route.mirrors {
        if !chosen(m.millionths) {
            continue;
        }
        let Some(seat) = Seat::take() else {
            tracing::debug!(mirror = %m.upstream.host, "mirror skipped: {MAX_IN_FLIGHT} copies in flight");
            continue;
        };
        let mut headers = head.headers.clone();
        headers.insert(HOST, shadow_host.clone());
        let copy = Head {
            method: head.method.clone(),
            version: head.version,
            headers,
            path_and_query: head.path_and_query.clone(),
        };
        let body = body.clone();
        let upstream = m.upstream.clone();
        let client = super::super::transport::client(shared, &upstream).clone();
        tokio::spawn(async move {
            let _seat = seat;
            let sent = async {
                let addr = upstream.pick().await.map_err(|e| e.to_string())?;
                let req = copy
                    .request(addr, &body)
                    .ok_or_else(|| "bad request target".to_owned())?;
                let resp = client.request(req).await.map_err(|e| e.to_string())?;
                // Read and drop the answer, so the connection can be reused.
                let mut b = resp.into_body();
                while let Some(frame) = b.frame().await {
                    frame.map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            };
            match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(mirror = %upstream.host, error = %e, "mirror failed"),
                Err(_) => tracing::debug!(mirror = %upstream.host, "mirror timed out"),
            }
        });
    }
}

/// Whether this request falls in a share of `millionths` out of a million.
fn chosen(millionths: u32) -> bool {
    if millionths >= 1_000_000 {
        return true;
    }
    if millionths == 0 {
        return false;
    }
    let mut b = [0u8; 4];
    if aws_lc_rs::rand::fill(&mut b).is_err() {
        return false;
    }
    u32::from_le_bytes(b) % 1_000_000 < millionths
}

/// `host-shadow`, or `host-shadow:port` (Envoy's form).
fn shadow(host: &HeaderValue) -> Option<HeaderValue> {
    let h = host.to_str().ok()?;
    let shadowed = match h.rsplit_once(':') {
        Some((name, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && (!name.contains(':') || name.ends_with(']')) =>
        {
            format!("{name}-shadow:{port}")
        }
        _ => format!("{h}-shadow"),
    };
    HeaderValue::from_str(&shadowed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_host_as_envoy_writes_it() {
        for (host, want) in [
            ("v1.example.com", "v1.example.com-shadow"),
            ("v1.example.com:8080", "v1.example.com-shadow:8080"),
            ("[::1]:443", "[::1]-shadow:443"),
            ("::1", "::1-shadow"),
        ] {
            let got = shadow(&HeaderValue::from_static(host)).unwrap();
            assert_eq!(got.to_str().unwrap(), want);
        }
    }

    #[test]
    fn shares() {
        assert!(chosen(1_000_000) && !chosen(0));
        let n = (0..10_000).filter(|_| chosen(250_000)).count();
        // 10,000 draws at p = 0.25: sd ~43; 6 sd either side.
        assert!((2_240..=2_760).contains(&n), "{n}");
    }

    #[test]
    fn seats_are_bounded() {
        let seats: Vec<_> = std::iter::from_fn(Seat::take)
            .take(MAX_IN_FLIGHT + 5)
            .collect();
        assert!(seats.len() <= MAX_IN_FLIGHT);
        assert!(Seat::take().is_none());
        drop(seats);
        assert!(Seat::take().is_some());
    }
}
